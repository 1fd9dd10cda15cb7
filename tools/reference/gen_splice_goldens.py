#!/usr/bin/env python3
"""Goldens for spliced SAE evaluation ("CE loss recovered").

For the tiny Gemma-2 fixture tests/fixtures/models/gemma2-tiny-f32 this builds a JumpReLU
SAE at blocks.1.hook_resid_post with sae-lens's own class (random frame, so the
reconstruction is good but not exact), saves it in sae-lens format, and records with
transformers (eager, fp32) the next-token cross-entropy of every golden prompt when the
output of decoder layer 1 is (a) left alone, (b) replaced by the sae-lens reconstruction,
(c) replaced by zeros -- each with and without leaving BOS rows untouched.

usage: gen_splice_goldens.py [--out tests/fixtures/splice]
"""
import argparse, json, os
import numpy as np
import torch
import transformers
import sae_lens
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM
from sae_lens import SAE

p = argparse.ArgumentParser()
p.add_argument("--out", default="tests/fixtures/splice")
p.add_argument("--model", default="tests/fixtures/models/gemma2-tiny-f32")
a = p.parse_args()
os.makedirs(a.out, exist_ok=True)
torch.manual_seed(7)
LAYER, HOOK = 1, "blocks.1.hook_resid_post"

model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="eager")
model.eval()
assert model.config._attn_implementation == "eager"
D = model.config.hidden_size
gold = load_file(os.path.join(a.model, "golden.safetensors"))
prompts = [gold[f"p{k}.ids"].long() for k in range(4)]

# Typical activation scale at the hook, to size the SAE sensibly.
acts = []
h = model.model.layers[LAYER].register_forward_hook(lambda m, i, o: acts.append((o[0] if isinstance(o, tuple) else o).detach()))
with torch.no_grad():
    for ids in prompts:
        model(input_ids=ids[None])
h.remove()
X = torch.cat([x[0] for x in acts])
scale = X.norm(dim=-1).mean().item()

# A frame of n directions and their negatives: relu(x.w)w - relu(-x.w)w = (x.w)w, so the
# SAE is approximately linear reconstruction through a random (non-tight) frame.
n = 96
Wdir = torch.nn.functional.normalize(torch.randn(n, D), dim=-1)
W_dec = torch.cat([Wdir, -Wdir]) * (D / n) ** 0.5
W_enc = torch.cat([Wdir, -Wdir]).T.contiguous() * (D / n) ** 0.5
b_enc = torch.zeros(2 * n)
b_dec = X.mean(0) * 0.5
threshold = torch.full((2 * n,), 0.02 * scale)
cfg = {"d_in": D, "d_sae": 2 * n, "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": True,
       "normalize_activations": "none", "architecture": "jumprelu",
       "metadata": {"hook_name": HOOK, "model_name": "gemma2-tiny-f32"}}
sae_dir = os.path.join(a.out, "sae_l1_jumprelu")
os.makedirs(sae_dir, exist_ok=True)
json.dump(cfg, open(os.path.join(sae_dir, "cfg.json"), "w"))
save_file({"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec, "threshold": threshold},
          os.path.join(sae_dir, "sae_weights.safetensors"))
sae = SAE.load_from_disk(sae_dir, device="cpu")  # the reference encoder/decoder
sae.eval()

def ce_with(ids, mode, keep_bos):
    def hook(module, inp, out):
        hs = out[0] if isinstance(out, tuple) else out
        new = hs.clone()
        rows = torch.ones(hs.shape[1], dtype=torch.bool)
        if keep_bos:
            rows &= ids != model.config.bos_token_id
        if mode == "sae":
            new[0, rows] = sae.decode(sae.encode(hs[0, rows]))
        elif mode == "zero":
            new[0, rows] = 0
        return (new,) + tuple(out[1:]) if isinstance(out, tuple) else new
    hd = model.model.layers[LAYER].register_forward_hook(hook) if mode != "clean" else None
    with torch.no_grad():
        out = model(input_ids=ids[None], labels=ids[None])
    if hd:
        hd.remove()
    return out.loss.item()

tensors, rows = {}, []
for k, ids in enumerate(prompts):
    if len(ids) < 2:
        continue
    for keep in (True, False):
        r = {m: ce_with(ids, m, keep) for m in ("clean", "sae", "zero")}
        tag = "keepbos" if keep else "all"
        for m, v in r.items():
            tensors[f"p{k}.{tag}.ce_{m}"] = torch.tensor([v], dtype=torch.float64)
        rows.append({"prompt": k, "keep_bos": keep, **r})
    tensors[f"p{k}.ids"] = ids.to(torch.int32)
meta = {"generator": "tools/reference/gen_splice_goldens.py", "torch": torch.__version__,
        "transformers": transformers.__version__, "sae_lens": sae_lens.__version__, "model": a.model,
        "hook": HOOK, "rows": json.dumps(rows)}
save_file(tensors, os.path.join(a.out, "splice_golden.safetensors"), metadata=meta)
for r in rows:
    print(r)
