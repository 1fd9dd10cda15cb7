#!/usr/bin/env python3
"""Copy a benchmark checkpoint (make_bench_checkpoint.py, make_bench_paligemma.py: bf16
weights) into the layout the Hub's Gemma-2 2B ships in: every floating tensor stored as F32
(an exact upcast, the same values), config.json's torch_dtype "float32", the same shard names
and index. A model run on the copy computes bit-for-bit what it computes on the original in
fp32; only where the weights come from differs (read as they are instead of widened from
bf16 before each product). Nothing here is committed: about twice the original on disk.

usage: bench_checkpoint_f32.py SRC_DIR OUT_DIR
"""
import json, os, shutil, sys
import torch
from safetensors import safe_open
from safetensors.torch import save_file

if len(sys.argv) != 3:
    sys.exit(__doc__)
src, out = sys.argv[1:]
os.makedirs(out, exist_ok=True)
cfg = json.load(open(os.path.join(src, "config.json")))
def set_dtype(c):
    if isinstance(c, dict):
        for k, v in c.items():
            if k == "torch_dtype" or k == "dtype": c[k] = "float32"
            else: set_dtype(v)
set_dtype(cfg)
json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
for f in sorted(os.listdir(src)):
    p = os.path.join(src, f)
    if f.endswith(".safetensors"):
        with safe_open(p, "pt") as r:
            meta = r.metadata()
            t = {k: (lambda x: x.float() if x.is_floating_point() else x)(r.get_tensor(k)) for k in r.keys()}
        save_file(t, os.path.join(out, f), metadata=meta)
        print("wrote", f, flush=True)
    elif f != "config.json" and os.path.isfile(p):
        shutil.copy(p, os.path.join(out, f))
print("wrote", out)
