#!/usr/bin/env python3
"""Greedy-generation goldens for `reprshift generate` / src/model/generate.c, from
transformers' own `generate` (do_sample=False, KV cache, eager attention, fp32).

Models (all already committed; nothing here is trained or written besides the goldens):
  tests/fixtures/models/gemma2-tiny-f32       random weights, sliding_window 8, 4 layers
  tests/fixtures/models/paligemma-tiny-f32    random weights, sliding_window 8, 4 image tokens
  examples/quickstart/models/gemma2-tiny      trained on captions, sliding_window 16, tokenizer
  examples/quickstart/models/paligemma-tiny   trained, sliding_window 16, tokenizer + processor

Per run k the golden holds
  g{k}.prompt       int32 [P]     Gemma-2: the prompt ids (bos included);
                                  PaliGemma: the ids of prompt + "\\n" (no image tokens, no bos)
  g{k}.pixel_values f32 [3,S,S]   PaliGemma only (random in [-1, 1] for the random model; the
                                  PaliGemmaProcessor output for the quickstart images)
  g{k}.ids          int32 [n]     generate's new tokens (EOS included when it stopped there)
  g{k}.logits       f32 [n, V]    generate's output_logits (cached path; final soft-cap applied)
  g{k}.full_logits  f32 [n, V]    one forward of the whole sequence without a cache, the rows
                                  that predicted each new token (random models only)
The random models mostly repeat their last token; the trained quickstart models
(qs-*.safetensors, EOS off, 32 new tokens, prefixes and lengths past their window of 16)
generate varied text.
The metadata records the EOS ids, max_new_tokens, the smallest top-1/top-2 logit gap over
every greedy step (how far each pick is from a tie), and max|logits - full_logits|.

The quickstart runs (with EOS, 24 new tokens) also go to tests/fixtures/generate/cli_expected.json
(ids + decoded text, tokenizer.decode with skip_special_tokens=False) for tests/cli_generate.sh,
with the gemma2-tiny-f32 runs' prompt and generated ids (no tokenizer: --ids).

Usage: /work/refenv/bin/python tools/reference/gen_generate_goldens.py [--out tests/fixtures/generate]
"""

import argparse
import json
import os

import numpy as np
import torch
import transformers
from safetensors.numpy import save_file
from transformers import AutoImageProcessor, AutoTokenizer, Gemma2ForCausalLM, PaliGemmaForConditionalGeneration

GENERATOR = "tools/reference/gen_generate_goldens.py"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def eos_ids(model):
    e = model.generation_config.eos_token_id
    return [int(x) for x in (e if isinstance(e, (list, tuple)) else [e])]


def run_generate(model, inputs, n_new, full_extra, no_eos=False):
    """generate(greedy) + the no-cache full forward; returns ids, logits, full_logits, min gap.
    no_eos: generate exactly n_new tokens (the EOS is an ordinary token)."""
    P = inputs["input_ids"].shape[1]
    saved = model.generation_config.eos_token_id
    if no_eos:  # (a generation_config argument's None would be filled from the model's)
        model.generation_config.eos_token_id = None
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=n_new, do_sample=False, output_logits=True,
                             return_dict_in_generate=True, top_k=None, top_p=None, temperature=None)
    model.generation_config.eos_token_id = saved
    seq = out.sequences[0]
    new = seq[P:].numpy().astype(np.int32)
    logits = torch.stack(out.logits, 0)[:, 0].float().numpy()
    assert logits.shape[0] == len(new)
    # full forward of prompt + new[:-1] without a cache
    full_ids = seq[: P + len(new) - 1].unsqueeze(0)
    kw = full_extra(full_ids)
    with torch.no_grad():
        fl = model(input_ids=full_ids, use_cache=False, **kw).logits[0, P - 1:].float().numpy()
    assert fl.shape == logits.shape
    assert (np.argmax(fl, -1) == new).all(), "no-cache forward picks other tokens than generate"
    srt = np.sort(logits, -1)
    gap = float((srt[:, -1] - srt[:, -2]).min())
    return new, logits, fl, gap


def gemma2_runs(model_dir, prompts, n_new, no_eos=False, keep_full=True):
    m = Gemma2ForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    assert m.config._attn_implementation == "eager"
    tensors, runs = {}, []
    for k, ids in enumerate(prompts):
        inp = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
        new, lg, fl, gap = run_generate(m, inp, n_new, lambda full: {}, no_eos)
        tensors[f"g{k}.prompt"] = np.array(ids, dtype=np.int32)
        tensors[f"g{k}.ids"] = new
        tensors[f"g{k}.logits"] = lg
        if keep_full:
            tensors[f"g{k}.full_logits"] = fl
        runs.append(dict(prompt_len=len(ids), n_new=len(new), total=len(ids) + len(new), min_gap=gap,
                         cache_vs_full=float(np.abs(lg - fl).max())))
    return m, tensors, runs


def paligemma_runs(model_dir, cases, n_new, no_eos=False, keep_full=True):
    """cases: (pixel_values [3,S,S] float32, prompt ids of prompt + "\\n")."""
    m = PaliGemmaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32,
                                                          attn_implementation="eager").eval()
    c = m.config
    N = c.text_config.num_image_tokens if hasattr(c.text_config, "num_image_tokens") else None
    N = (c.vision_config.image_size // c.vision_config.patch_size) ** 2
    bos = c.text_config.bos_token_id
    tensors, runs = {}, []
    for k, (pv, pids) in enumerate(cases):
        ids = [c.image_token_index] * N + [bos] + list(pids)
        P = len(ids)
        inp = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, P, dtype=torch.long),
               "token_type_ids": torch.zeros(1, P, dtype=torch.long),
               "pixel_values": torch.from_numpy(pv)[None]}

        def full_extra(full):
            L = full.shape[1]
            tt = torch.zeros(1, L, dtype=torch.long)
            tt[0, P:] = 1
            return {"pixel_values": inp["pixel_values"], "token_type_ids": tt,
                    "attention_mask": torch.ones(1, L, dtype=torch.long)}

        new, lg, fl, gap = run_generate(m, inp, n_new, full_extra, no_eos)
        tensors[f"g{k}.prompt"] = np.array(pids, dtype=np.int32)
        tensors[f"g{k}.pixel_values"] = pv.astype(np.float32)
        tensors[f"g{k}.ids"] = new
        tensors[f"g{k}.logits"] = lg
        if keep_full:
            tensors[f"g{k}.full_logits"] = fl
        runs.append(dict(prefix_len=P, n_new=len(new), total=P + len(new), min_gap=gap,
                         cache_vs_full=float(np.abs(lg - fl).max())))
    return m, tensors, runs


def save(tensors, path, meta):
    md = {k: (v if isinstance(v, str) else json.dumps(v, sort_keys=True)) for k, v in meta.items()}
    save_file(dict(sorted(tensors.items())), path, metadata=md)
    os.chmod(path, 0o644)


def common_meta(m, n_new, runs, src):
    return {"generator": GENERATOR, "transformers": transformers.__version__, "torch": torch.__version__,
            "model": src, "eos_ids": eos_ids(m), "max_new_tokens": n_new, "runs": runs,
            "method": "generate(do_sample=False, output_logits=True), eager attention, fp32; "
                      "full_logits: model(prompt + ids[:-1], use_cache=False)"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/generate"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(2026)

    # 1. random Gemma-2 (window 8): prompts of 1..11 tokens, 20 new tokens (past the window)
    gdir = os.path.join(ROOT, "tests/fixtures/models/gemma2-tiny-f32")
    prompts = [[2], [2] + rng.integers(3, 512, 2).tolist(), [2] + rng.integers(3, 512, 6).tolist(),
               rng.integers(3, 512, 11).tolist()]
    n_new = 20
    m, t, runs = gemma2_runs(gdir, prompts, n_new)
    tiny_cli = [{"ids_in": t[f"g{k}.prompt"].tolist(), "ids": t[f"g{k}.ids"].tolist()} for k in range(len(prompts))]
    save(t, os.path.join(a.out, "gemma2-tiny-f32.safetensors"),
         common_meta(m, n_new, runs, "tests/fixtures/models/gemma2-tiny-f32"))
    print("gemma2-tiny-f32", runs)

    # 2. random PaliGemma (window 8, prefix 4 image + bos + prompt + \n)
    pdir = os.path.join(ROOT, "tests/fixtures/models/paligemma-tiny-f32")
    S = 28
    cases = []
    for L in (0, 2, 5):
        pv = rng.uniform(-1, 1, (3, S, S)).astype(np.float32)
        pids = [int(x) for x in rng.integers(3, 256, L)] + [108]
        cases.append((pv, pids))
    m, t, runs = paligemma_runs(pdir, cases, n_new)
    save(t, os.path.join(a.out, "paligemma-tiny-f32.safetensors"),
         common_meta(m, n_new, runs, "tests/fixtures/models/paligemma-tiny-f32"))
    print("paligemma-tiny-f32", runs)

    # 3. the trained quickstart models with their tokenizers: the CLI test's expectations
    qg = os.path.join(ROOT, "examples/quickstart/models/gemma2-tiny")
    qp = os.path.join(ROOT, "examples/quickstart/models/paligemma-tiny")
    tok = AutoTokenizer.from_pretrained(qg)
    texts = ["A cat", "Two dogs playing with a red ball on the",
             "A large brown dog is lying on a wooden floor next to a small white cat and a",
             "A man riding a bike down a street next to a bus. A woman with"]
    n_cli = 24
    qprompts = [tok(s)["input_ids"] for s in texts]
    m, t, runs = gemma2_runs(qg, qprompts, 32, no_eos=True, keep_full=False)
    save(t, os.path.join(a.out, "qs-gemma2-tiny.safetensors"),
         dict(common_meta(m, 32, runs, "examples/quickstart/models/gemma2-tiny"), eos_ids=[],
              note="EOS off (generation_config.eos_token_id = None): exactly max_new_tokens tokens; "
                   "no full_logits stored (max difference in runs.cache_vs_full)"))
    print("qs-gemma2-tiny", runs)
    m, t, runs = gemma2_runs(qg, qprompts, n_cli)
    cli = {"generator": GENERATOR, "transformers": transformers.__version__, "max_new_tokens": n_cli,
           "gemma2": [], "paligemma": [], "gemma2_tiny_f32_ids": tiny_cli}
    for k, s in enumerate(texts):
        ids = t[f"g{k}.ids"].tolist()
        cli["gemma2"].append({"text_in": s, "ids": ids, "text": tok.decode(ids, skip_special_tokens=False),
                              "min_gap": runs[k]["min_gap"]})
    ptok = AutoTokenizer.from_pretrained(qp)
    proc = AutoImageProcessor.from_pretrained(qp, backend="pil")
    from PIL import Image
    imgs = ["examples/data/coco-sample/val2017/" + f for f in
            sorted(os.listdir(os.path.join(ROOT, "examples/data/coco-sample/val2017")))[:2]]
    cases = []
    for p in imgs:
        pv = proc(images=Image.open(os.path.join(ROOT, p)).convert("RGB"), return_tensors="np")["pixel_values"][0]
        cases.append((pv.astype(np.float32), ptok("caption en\n", add_special_tokens=False)["input_ids"]))
    m, t, runs = paligemma_runs(qp, cases, 32, no_eos=True, keep_full=False)
    save(t, os.path.join(a.out, "qs-paligemma-tiny.safetensors"),
         dict(common_meta(m, 32, runs, "examples/quickstart/models/paligemma-tiny"), eos_ids=[],
              note="EOS off (generation_config.eos_token_id = None): exactly max_new_tokens tokens; "
                   "no full_logits stored (max difference in runs.cache_vs_full); images: " + ", ".join(imgs)))
    print("qs-paligemma-tiny", runs)
    m, t, runs = paligemma_runs(qp, cases, n_cli)
    for k, p in enumerate(imgs):
        ids = t[f"g{k}.ids"].tolist()
        cli["paligemma"].append({"image": p, "prompt": "caption en", "ids": ids,
                                 "text": ptok.decode(ids, skip_special_tokens=False), "min_gap": runs[k]["min_gap"]})
    with open(os.path.join(a.out, "cli_expected.json"), "w") as f:
        json.dump(cli, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    print(json.dumps(cli, indent=1))


if __name__ == "__main__":
    main()
