#!/usr/bin/env python3
"""Goldens for the steering dose-response (the `steer` stage of `reprshift run`,
docs/pipeline.md "Stage 4b: steer"; C side: rs_steer_pass / rs_log_prob_set /
rs_random_unit_dirs in src/analysis/steer.c, tests/test_steer.c).

transformers PaliGemmaForConditionalGeneration (fp32, eager) on the tiny fixture
tests/fixtures/models/paligemma-tiny-f32, one input: <image>x4 <bos> prompt "\n" (prefix,
token_type_ids 0) then a fixed suffix ending in <eos> (token_type_ids 1), the image and
prompt of tests/fixtures/generate/paligemma-tiny-f32.safetensors (g1).
Steering: a forward hook on language_model.layers[L] (blocks.L.hook_resid_post) adds
alpha * s * d to EVERY row, s = mean over the PREFIX rows of ||x_clean||_2 at that hook (clean,
unhooked pass). Directions: the unit "direction" of tests/fixtures/intervene/dir.safetensors,
and K random unit directions, entry j of direction k = normal_at(SEED, k*64 + j) (splitmix64 +
Box-Muller, mirrored from src/probe/synth.c) / its L2 norm (float64, then rounded to f32).
Read-outs per (hook, direction, alpha):
  logp.<set>  log sum_{t in set} softmax(logits[P-1])[t]   (P = prefix length; the first
              generated position), float64 from the fp32 logits
  ce          mean over the suffix tokens (incl. <eos>) of -log softmax(logits[t-1])[ids[t]]
Output tests/fixtures/steer/dose_golden.json.
Usage: /work/refenv/bin/python tools/reference/gen_steer_dose_goldens.py
"""
import json
import os

import numpy as np
import torch
import transformers
from safetensors.numpy import load_file as np_load
from transformers import PaliGemmaForConditionalGeneration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
M = 0xFFFFFFFFFFFFFFFF
SEED = 12345
K = 2
ALPHAS = [-3.0, 0.0, 1.5, 4.0]
HOOKS = [0, 1]
SUFFIX = [45, 200, 17, 99, 1]
TARGETS = {"a": [45], "b": [17, 230, 17]}


def splitmix64_at(seed, idx):
    z = (seed + (idx + 1) * 0x9E3779B97F4A7C15) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)


def uniform_at(seed, idx):
    return (splitmix64_at(seed, idx) >> 11) * 2.0 ** -53


def normal_at(seed, idx):
    u1, u2 = uniform_at(seed, 2 * idx), uniform_at(seed, 2 * idx + 1)
    return np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)


pdir = os.path.join(ROOT, "tests/fixtures/models/paligemma-tiny-f32")
pm = PaliGemmaForConditionalGeneration.from_pretrained(pdir, dtype=torch.float32, attn_implementation="eager").eval()
layers = pm.model.language_model.layers
c = pm.config
D = c.text_config.hidden_size
pg = np_load(os.path.join(ROOT, "tests/fixtures/generate/paligemma-tiny-f32.safetensors"))
prompt, pv = pg["g1.prompt"], pg["g1.pixel_values"]
N = (c.vision_config.image_size // c.vision_config.patch_size) ** 2
prefix = [c.image_token_index] * N + [c.text_config.bos_token_id] + prompt.tolist()
P = len(prefix)
ids = prefix + SUFFIX
T = len(ids)
inputs = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, T, dtype=torch.long),
          "token_type_ids": torch.tensor([[0] * P + [1] * len(SUFFIX)]),
          "pixel_values": torch.from_numpy(pv)[None]}

d_probe = torch.from_numpy(np_load(os.path.join(ROOT, "tests/fixtures/intervene/dir.safetensors"))["direction"])
d_probe = d_probe / d_probe.norm()
rand = []
for k in range(K):
    v = np.array([normal_at(SEED, k * D + j) for j in range(D)])
    rand.append((v / np.sqrt((v * v).sum())).astype(np.float32))


def run(L, fn):
    def h(m, inp, out):
        hs = out[0] if isinstance(out, tuple) else out
        new = fn(hs)
        return (new,) + tuple(out[1:]) if isinstance(out, tuple) else new
    hd = layers[L].register_forward_hook(h)
    try:
        with torch.no_grad():
            return pm(**inputs).logits[0].double().numpy()
    finally:
        hd.remove()


def readout(lg):
    ls = lg - lg.max(-1, keepdims=True)
    lp = ls - np.log(np.exp(ls).sum(-1, keepdims=True))
    out = {f"logp.{k}": float(np.log(np.exp(lp[P - 1, sorted(set(v))]).sum())) for k, v in TARGETS.items()}
    out["ce"] = float(np.mean([-lp[t - 1, ids[t]] for t in range(P, T)]))
    return out


cases = []
for L in HOOKS:
    seen = {}

    def cap(x):
        seen["x"] = x.clone()
        return x
    run(L, cap)
    s = seen["x"][0, :P].norm(dim=-1).mean().item()
    dirs = [("probe", d_probe)] + [(f"random{k}", torch.from_numpy(rand[k])) for k in range(K)]
    for name, d in dirs:
        for a in ALPHAS:
            r = readout(run(L, lambda x, a=a, d=d: x + (a * s) * d[None, None, :]))
            cases.append({"hook": f"blocks.{L}.hook_resid_post", "dir": name, "alpha": a, "scale": s, **r})
            print(cases[-1])

golden = {"generator": "tools/reference/gen_steer_dose_goldens.py", "transformers": transformers.__version__,
          "torch": torch.__version__, "seed": SEED, "K": K, "prompt": prompt.tolist(), "suffix": SUFFIX,
          "prefix_len": P, "targets": TARGETS, "random_dirs_head": [r[:4].tolist() for r in rand],
          "random_dirs_norm_check": [float(np.linalg.norm(r.astype(np.float64))) for r in rand], "cases": cases}
with open(os.path.join(ROOT, "tests/fixtures/steer/dose_golden.json"), "w") as f:
    json.dump(golden, f, indent=1)
    f.write("\n")
