#!/usr/bin/env python3
"""Independent check of the SAE-feature probes' features (docs/probes.md, "SAE-feature probes").

For a finished `reprshift run` with probes.features ["raw", "sae"] (e.g. the quickstart), this
re-computes the pooled SAE features of the caption stores with sae-lens (SAE.load_from_disk,
encode every token row, then the mean over the included tokens: not bos/eos/pad and not
whitespace-only pieces, all tokens when none is included) and compares, for every listed top
feature of probes.json "sae_features", its mean_activation and active_share with the run's.
It also reports how far the other order (pool, then encode) would be, to show that the order
matters. Usage (quickstart, pool "mean"):
    /work/refenv/bin/python tools/reference/check_sae_probe_features.py RUN_DIR examples/quickstart.json
"""
import json
import os
import sys

import numpy as np
import torch
from safetensors.numpy import load_file
from sae_lens import SAE

run, cfg_path = sys.argv[1], sys.argv[2]
cfg = json.load(open(cfg_path))
base = os.path.dirname(os.path.abspath(cfg_path))
models = {"LLM captions": ("llm_text", cfg["models"]["llm"]), "VLM captions": ("vlm_text", cfg["models"]["vlm"])}
probes = json.load(open(os.path.join(run, "results", "probes.json")))


def blank(piece):
    if piece in ("<0x09>", "<0x0A>", "<0x0D>", "<0x20>"):
        return True
    return piece != "" and piece.replace("\u2581", "").strip(" \n\t\r") == ""


def special_ids(model_dir):
    c = json.load(open(os.path.join(base, model_dir, "config.json")))
    c = c.get("text_config", c) if "bos_token_id" not in c else c
    return {c.get(k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")} | {0, 1, 2}


tok = json.load(open(os.path.join(base, cfg["models"]["llm"], "tokenizer.json")))
pieces = {i: p for p, i in tok["model"]["vocab"].items()} if isinstance(tok["model"]["vocab"], dict) else \
    {i: p for i, (p, _) in enumerate(tok["model"]["vocab"])}
worst, worst_other = 0.0, 0.0
for e in probes["sae_features"]:
    store, mdir = models[e["model"]]
    idx = json.load(open(os.path.join(run, "acts", store, "index.json")))
    A, off, ids = [], None, []
    for sh in idx["shards"]:
        t = load_file(os.path.join(run, "acts", store, sh["file"]))
        A.append(t[e["hook"]]); ids.append(t["token_ids"])
        o = t["offsets"]
        off = o if off is None else np.concatenate([off, o[1:] - o[0] + off[-1]])
    A, ids = np.concatenate(A), np.concatenate(ids)
    sae = SAE.load_from_disk(os.path.join(base, cfg["saes"]["path"].replace("{layer}", str(e["layer"]))), device="cpu")
    sp = special_ids(mdir)
    with torch.no_grad():
        F = sae.encode(torch.from_numpy(A)).numpy().astype(np.float64)
        pooled, other = [], []
        for i in range(len(off) - 1):
            rows = [t for t in range(off[i], off[i + 1]) if ids[t] not in sp and not blank(pieces.get(int(ids[t]), ""))]
            rows = rows or list(range(off[i], off[i + 1]))
            pooled.append(F[rows].mean(axis=0))
            other.append(sae.encode(torch.from_numpy(A[rows].mean(axis=0, keepdims=True))).numpy()[0])
    pooled, other = np.array(pooled), np.array(other)
    for f in e["top_features"]:
        j = f["feature"]
        d1 = abs(pooled[:, j].mean() - f["mean_activation"])
        d2 = abs((pooled[:, j] > 0).mean() - f["active_share"])
        d3 = abs(other[:, j].mean() - f["mean_activation"])
        worst = max(worst, d1, d2)
        worst_other = max(worst_other, d3)
    print(f"{e['model']:13s} {e['hook']}: {len(e['top_features'])} top features, max |mean diff| "
          f"{max(abs(pooled[:, f['feature']].mean() - f['mean_activation']) for f in e['top_features']):.2e}; "
          f"pool-then-encode would differ by up to "
          f"{max(abs(other[:, f['feature']].mean() - f['mean_activation']) for f in e['top_features']):.2e}")
print(f"max difference (encode per token, then pool): {worst:.3e}; other order: {worst_other:.3e}")
sys.exit(0 if worst < 1e-5 else 1)
