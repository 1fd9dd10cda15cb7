"""Golden for tests/test_pipeline_languages.c: what `reprshift run` with a `languages` section
must put into RUN/acts/lang_es/{llm_text,vlm_text,vlm_caption}.

Inputs: three val2017 images of the bundled COCO sample (examples/data/coco-sample), one per
group (food 62554, vehicle 165518, animal 214753; the images of gen_pipeline_golden.py are not in
the sample, so the sample's translations cannot cover them), each with its first (lowest-id)
caption, read in Spanish: the `es` column of
examples/data/coco-sample/annotations/captions_translated.csv. Through the quickstart bundle
(examples/quickstart/models), computed with the reference stack only (tiny_run.py's set-up):
  * caption token ids: `tokenizers` (gemma2-tiny/tokenizer.json, its <bos> post-processor) on
    the Spanish text; checked first: the text alone (no <bos>) tokenizes to the same ids minus
    <bos>, with both bundled tokenizers (the pipeline relies on it);
  * llm_text: Gemma2ForCausalLM decoder layer L output (blocks.L.hook_resid_post; forward hook)
    for those ids, every token row (<bos> included);
  * vlm_text: PaliGemmaForConditionalGeneration on the same ids, text only (no image, no
    token_type_ids), every token row;
  * vlm_caption: PaliGemmaProcessor (image processor backend pil) with images=own image,
    text="caption es", suffix=Spanish caption; the model called with the processor's
    input_ids / token_type_ids / pixel_values; layer L output at the rows the pipeline keeps
    (the prefix <bos>, then the caption's suffix tokens, not the final <eos>), per token, and
    the processor's ids at those rows (asserted equal to the <bos> + caption ids above);
  * prompt_ids: the prompt "caption es\\n" tokenized alone (paligemma-tiny/tokenizer.json, no
    specials), asserted equal to the processor's ids between the prefix <bos> and the suffix.
Layers 1 and 3. Rows rounded to 6 decimals. Writes tests/fixtures/pipeline/golden_lang_es.json
(versions recorded inside).

    /work/refenv/bin/python tools/reference/gen_language_golden.py
"""
import csv
import json
import os
import sys

import tokenizers
import torch
from PIL import Image

from tiny_run import MODELS, ROOT, layer_hooks, load_tiny, versions, write_json

OUT = os.path.join(ROOT, "tests", "fixtures", "pipeline", "golden_lang_es.json")
SAMPLE = os.path.join(ROOT, "examples", "data", "coco-sample")
TRANSLATIONS = os.path.join(SAMPLE, "annotations", "captions_translated.csv")
LAYERS = [1, 3]
LANG = "es"
IMAGES = [62554, 165518, 214753]  # val2017: food, vehicle, animal


def rows_of(h, keep):
    return [[round(float(v), 6) for v in h[k].numpy()] for k in keep]


def main():
    with open(os.path.join(SAMPLE, "annotations", "captions_val2017.json"), encoding="utf-8") as f:
        coco = json.load(f)
    with open(TRANSLATIONS, encoding="utf-8", newline="") as f:
        tr = {int(r["caption_id"]): r for r in csv.DictReader(f)}
    files = {im["id"]: im["file_name"] for im in coco["images"]}
    tok, llm, vlm, proc, pproc = load_tiny()
    ptok = tokenizers.Tokenizer.from_file(os.path.join(MODELS, "paligemma-tiny", "tokenizer.json"))
    hl_out, hv_out = layer_hooks(llm), layer_hooks(vlm)
    prompt_text = f"caption {LANG}"
    prompt = ptok.encode(prompt_text + "\n", add_special_tokens=False).ids
    out = {"versions": versions(), "layers": LAYERS, "language": LANG, "prompt": prompt_text, "prompt_ids": prompt,
           "translations": os.path.relpath(TRANSLATIONS, ROOT), "inputs": []}
    feats = {k: {str(L): [] for L in LAYERS} for k in ("llm_text", "vlm_text", "vlm_caption")}
    for i, image_id in enumerate(IMAGES):
        ann = min((a for a in coco["annotations"] if a["image_id"] == image_id), key=lambda a: a["id"])
        t = tr[ann["id"]]
        assert int(t["image_id"]) == image_id and t["en"] == ann["caption"]
        cap = t[LANG]
        ids = tok.encode(cap).ids
        assert ids[0] == 2
        # the pipeline tokenizes the caption alone and prepends <bos>: must be the same ids
        assert tok.encode(cap, add_special_tokens=False).ids == ids[1:], cap
        assert ptok.encode(cap, add_special_tokens=False).ids == ids[1:], cap
        out["inputs"].append({"file": files[image_id], "image_id": image_id, "caption_id": ann["id"],
                              "caption_en": ann["caption"], "caption": cap, "label": "abc"[i], "ids": ids,
                              "tokens": tok.encode(cap).tokens})
        allrows = list(range(len(ids)))
        with torch.no_grad():
            hl = llm(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
            assert torch.equal(hl[2][0], hl_out[1])  # the hook agrees with hidden_states
            vlm(input_ids=torch.tensor([ids]), use_cache=False)
        for L in LAYERS:
            feats["llm_text"][str(L)].append(rows_of(hl_out[L], allrows))
            feats["vlm_text"][str(L)].append(rows_of(hv_out[L], allrows))

        with Image.open(os.path.join(SAMPLE, "val2017", files[image_id])) as im:
            img = im.convert("RGB")
        enc = pproc(images=img, text=prompt_text, suffix=cap, return_tensors="pt")
        eids, tt = enc["input_ids"], enc["token_type_ids"]
        with torch.no_grad():
            vlm(input_ids=eids, pixel_values=enc["pixel_values"], token_type_ids=tt, use_cache=False)
        bos = int((eids[0] == 2).nonzero()[0])
        first_sfx = int((tt[0] == 1).nonzero()[0])
        assert eids[0, bos + 1:first_sfx].tolist() == prompt, (eids[0, bos + 1:first_sfx].tolist(), prompt)
        assert int(eids[0, -1]) == 1
        keep = [bos] + list(range(first_sfx, eids.shape[1] - 1))  # <bos>, caption, not the final <eos>
        kept_ids = [int(eids[0, k]) for k in keep]
        assert kept_ids == ids, (kept_ids, ids)  # same caption ids as the LLM's <bos> + caption
        out["inputs"][-1]["vlm_caption_ids"] = kept_ids
        for L in LAYERS:
            feats["vlm_caption"][str(L)].append(rows_of(hv_out[L], keep))
    out["tokens"] = feats
    write_json(out, OUT)
    for k, v in feats.items():
        for L, per in v.items():
            mx = max(abs(x) for rows in per for r in rows for x in r)
            mx_nb = max(abs(x) for rows in per for r in rows[1:] for x in r)
            print(f"{k} layer {L}: {sum(len(r) for r in per)} rows, max |x| {mx:.4g} (without <bos> rows {mx_nb:.4g})",
                  file=sys.stderr)
    print(f"wrote {OUT}: {len(IMAGES)} inputs, layers {LAYERS}", file=sys.stderr)


if __name__ == "__main__":
    main()
