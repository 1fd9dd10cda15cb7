"""Goldens for tests/test_pipeline_golden.c: what `reprshift run` must put into its stores.

For three COCO-mini val2017 images and their first captions (from image_table.jsonl), with the
quickstart bundle (examples/quickstart/models), computed with the reference stack only:
  * caption token ids: `tokenizers` (gemma2-tiny/tokenizer.json, its <bos> post-processor);
  * llm_text:  Gemma2ForCausalLM decoder layer L output (blocks.L.hook_resid_post; forward hook), mean over
               the caption's non-special tokens (ids > 2);
  * vlm_text:  PaliGemmaForConditionalGeneration on the same ids, text only (no image, no
               token_type_ids: plain causal, positions from 1), same pooling;
  * vlm_image: Pillow open + convert("RGB"), SiglipImageProcessor (backend pil), input
               [<image>]x16 <bos> tok("caption en\n"), token_type_ids 0 (prefix-LM),
               layer L output averaged over the 16 image-token rows;
  * vlm_edits: the same after ImageEnhance.Brightness(0.6) and after GaussianBlur(2), in that
               order (variant-major, as the pipeline stores them).
  * conditions (captions read with an image): PaliGemmaProcessor (image processor backend
               pil) with images=IMG, text="caption en", suffix=caption, and the model called with
               the processor's input_ids / token_type_ids / pixel_values (prefix bidirectional,
               suffix causal). For every caption i and every image j (the own image, j = i, is
               condition vlm_caption; the pipeline's mismatched image is one of the others) and
               for a mid-grey 224x224 (128,128,128) image (vlm_blank): layer L output at the
               rows the pipeline keeps, the prefix <bos> then the caption's suffix tokens
               (not the final <eos>), per token; plus the processor's ids at those rows.
  * conditions CE: with the quickstart SAE of layer L (sae_lens.SAE.load_from_disk) spliced into the
               decoder layer L output (blocks.L.hook_resid_post) on the caption's token rows only
               (reconstruction sae.decode(sae.encode(x)); zeros for the zero-ablation), the summed
               next-token CE of the caption's own predictions (caption token j predicting j+1,
               j = 1..n-2 in <bos>-caption numbering) for the LLM, the decoder alone, every image
               and the grey image; clean / spliced / zero sums and the count per caption.
Layers 1 and 3. Writes tests/fixtures/pipeline/golden.json (versions recorded inside).

    /work/refenv/bin/python tools/reference/gen_pipeline_golden.py
"""
import os
import sys

import tokenizers
import torch
from PIL import Image, ImageEnhance, ImageFilter

from tiny_run import MODELS, ROOT, decoder_layers, layer_hooks, load_tiny, open_rgb, val_rows, versions, write_json

OUT = os.path.join(ROOT, "tests", "fixtures", "pipeline", "golden.json")
LAYERS = [1, 3]
IMAGE_TOKEN = 1024


def pooled(hs, mask):
    return [float(v) for v in hs[mask].double().mean(0).float().numpy()]


def main():
    picked = val_rows(3)
    tok, llm, vlm, proc, pproc = load_tiny()
    ptok = tokenizers.Tokenizer.from_file(os.path.join(MODELS, "paligemma-tiny", "tokenizer.json"))
    hl_out, hv_out = layer_hooks(llm), layer_hooks(vlm)
    prompt = ptok.encode("caption en\n", add_special_tokens=False).ids
    prefix = [IMAGE_TOKEN] * 16 + [2] + prompt
    out = {"versions": versions(),
           "layers": LAYERS, "prompt_ids": prompt, "inputs": [], "edits": ["brightness=0.6", "blur=2"]}
    feats = {k: {str(L): [] for L in LAYERS} for k in ("llm_text", "vlm_text", "vlm_image", "vlm_edits")}
    images = []
    for i, r in enumerate(picked):
        cap = r["captions"][0] if "captions" in r else r["caption0"]
        ids = tok.encode(cap).ids
        assert ids[0] == 2
        out["inputs"].append({"file": os.path.basename(r["file"]), "caption": cap, "label": "abc"[i], "ids": ids})
        with torch.no_grad():
            hl = llm(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
            assert torch.equal(hl[2][0], hl_out[1])  # the hook agrees with hidden_states
            vlm(input_ids=torch.tensor([ids]), use_cache=False)
        m = torch.tensor(ids) > 2
        for L in LAYERS:
            feats["llm_text"][str(L)].append(pooled(hl_out[L], m))
            feats["vlm_text"][str(L)].append(pooled(hv_out[L], m))
        images.append(open_rgb(r))

    def vlm_image_feats(img):
        pv = proc(images=img, return_tensors="pt")["pixel_values"]
        ids = torch.tensor([prefix])
        with torch.no_grad():
            vlm(input_ids=ids, pixel_values=pv, token_type_ids=torch.zeros_like(ids), use_cache=False)
        m = ids[0] == IMAGE_TOKEN
        return {str(L): pooled(hv_out[L], m) for L in LAYERS}

    for img in images:
        f = vlm_image_feats(img)
        for L in LAYERS:
            feats["vlm_image"][str(L)].append(f[str(L)])
    for edit in (lambda im: ImageEnhance.Brightness(im).enhance(0.6), lambda im: im.filter(ImageFilter.GaussianBlur(2))):
        for img in images:
            f = vlm_image_feats(edit(img))
            for L in LAYERS:
                feats["vlm_edits"][str(L)].append(f[str(L)])
    out["features"] = feats

    # captions read with an image (the run's condition stores)
    def suffix_rows(img, cap):
        enc = pproc(images=img, text="caption en", suffix=cap, return_tensors="pt")
        ids, tt = enc["input_ids"], enc["token_type_ids"]
        with torch.no_grad():
            vlm(input_ids=ids, pixel_values=enc["pixel_values"], token_type_ids=tt, use_cache=False)
        bos = int((ids[0] == 2).nonzero()[0])
        first_sfx = int((tt[0] == 1).nonzero()[0])
        keep = [bos] + list(range(first_sfx, ids.shape[1] - 1))  # <bos>, caption, not the final <eos>
        assert int(ids[0, -1]) == 1
        return ([int(ids[0, k]) for k in keep],
                {str(L): [[round(float(v), 6) for v in hv_out[L][k].numpy()] for k in keep] for L in LAYERS})

    grey = Image.new("RGB", (224, 224), (128, 128, 128))
    cond = {"with_image": [], "blank": []}
    for i, inp in enumerate(out["inputs"]):
        row = []
        for j, img in enumerate(images):
            kept_ids, f = suffix_rows(img, inp["caption"])
            assert kept_ids == inp["ids"], (kept_ids, inp["ids"])  # same caption ids as the LLM's <bos> + caption
            row.append(f)
        cond["with_image"].append(row)
        kept_ids, f = suffix_rows(grey, inp["caption"])
        cond["blank"].append(f)
    out["conditions"] = cond

    # spliced CE over the caption in every condition
    import torch.nn.functional as F
    from sae_lens import SAE
    saes = {L: SAE.load_from_disk(os.path.join(MODELS, "sae", f"blocks.{L}.hook_resid_post"), device="cpu")
            for L in LAYERS}
    state = {"L": None, "rows": None, "mode": None}

    def splice_hooks(model):
        for L, mod in decoder_layers(model):
            def hook(m, a, o, L=L):
                if state["L"] != L or state["mode"] is None:
                    return None
                h = (o[0] if isinstance(o, tuple) else o).clone()
                r = state["rows"]
                if state["mode"] == "zero":
                    h[0, r] = 0
                else:
                    sae = saes[L]
                    h[0, r] = sae.decode(sae.encode(h[0, r]))
                return (h,) + tuple(o[1:]) if isinstance(o, tuple) else h
            mod.register_forward_hook(hook)
    splice_hooks(llm)
    splice_hooks(vlm)

    def ce_sums(run, ids, cap0, n_cap):
        """run(): logits [1, T, V]; caption token 1 at row cap0, n_cap caption tokens."""
        rows = list(range(cap0, cap0 + n_cap))
        counted = list(range(cap0, cap0 + n_cap - 1))
        res = {}
        for L in LAYERS:
            for mode in ("clean", "spliced", "zero"):
                state.update(L=L, rows=rows, mode=None if mode == "clean" else mode)
                with torch.no_grad():
                    lp = F.log_softmax(run().double()[0], dim=-1)
                state.update(mode=None)
                s = float(sum(-lp[r, ids[r + 1]] for r in counted))
                res.setdefault(str(L), {})[mode] = s
            res[str(L)]["n"] = len(counted)
        return res

    ce = {"llm": [], "vlm_text": [], "with_image": [], "blank": []}
    for i, inp in enumerate(out["inputs"]):
        ids = inp["ids"]
        n_cap = len(ids) - 1
        t = torch.tensor([ids])
        ce["llm"].append(ce_sums(lambda: llm(input_ids=t).logits, ids, 1, n_cap))
        ce["vlm_text"].append(ce_sums(lambda: vlm(input_ids=t, use_cache=False).logits, ids, 1, n_cap))
        row = []
        for img in images + [grey]:
            enc = pproc(images=img, text="caption en", suffix=inp["caption"], return_tensors="pt")
            eids = enc["input_ids"][0].tolist()
            cap0 = int((enc["token_type_ids"][0] == 1).nonzero()[0])
            assert eids[cap0:cap0 + n_cap] == ids[1:]
            row.append(ce_sums(lambda: vlm(input_ids=enc["input_ids"], pixel_values=enc["pixel_values"],
                                           token_type_ids=enc["token_type_ids"], use_cache=False).logits,
                               eids, cap0, n_cap))
        ce["with_image"].append(row[:-1])
        ce["blank"].append(row[-1])
    out["conditions_ce"] = ce
    write_json(out, OUT)
    print(f"wrote {OUT}: {len(picked)} inputs, layers {LAYERS}", file=sys.stderr)


if __name__ == "__main__":
    main()
