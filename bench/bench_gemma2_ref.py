#!/usr/bin/env python3
"""transformers/torch reference for bench_gemma2: same checkpoint, same token ids, fp32,
eager attention, batched with right padding (the reference's best batched path), forward
stopped after the hooked layer by truncating model.layers (as fast as the reference can
be made for "through layer L"). Prints one JSON line."""
import argparse, json, resource, time
import torch
from transformers import AutoModelForCausalLM

p = argparse.ArgumentParser()
p.add_argument("--model", required=True)
p.add_argument("--ids-file", required=True)
p.add_argument("--layers", type=int, required=True, help="run layers 0..L-1")
p.add_argument("--repeat", type=int, default=1)
p.add_argument("--save", help="write the last layer's output rows (packed, no padding) for a parity check")
a = p.parse_args()
torch.set_num_threads(2)
seqs = [[int(x) for x in line.replace(",", " ").split()] for line in open(a.ids_file) if line.strip()]
t0 = time.time()
model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="eager")
load_s = time.time() - t0
model.eval()
model.model.layers = model.model.layers[: a.layers]
T = max(len(s) for s in seqs)
ids = torch.zeros(len(seqs), T, dtype=torch.long)
mask = torch.zeros(len(seqs), T, dtype=torch.long)
for i, s in enumerate(seqs):
    ids[i, : len(s)] = torch.tensor(s)
    mask[i, : len(s)] = 1
tokens = sum(len(s) for s in seqs)
best = 1e30
captured = []
hook = model.model.layers[-1].register_forward_hook(
    lambda m, i, o: captured.append((o[0] if isinstance(o, tuple) else o).detach()))
with torch.inference_mode():
    for _ in range(a.repeat):
        captured.clear()
        t0 = time.time()
        model.model(input_ids=ids, attention_mask=mask, use_cache=False)
        best = min(best, time.time() - t0)
hook.remove()
if a.save:
    from safetensors.torch import save_file
    out = captured[-1]
    rows = torch.cat([out[i, : len(s)] for i, s in enumerate(seqs)])
    save_file({"resid_post": rows.float().contiguous()}, a.save)
print(json.dumps({"impl": "transformers", "layers": a.layers, "inputs": len(seqs), "tokens": tokens,
                  "seconds": round(best, 3), "tokens_per_s": round(tokens / best, 2),
                  "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024, 2),
                  "load_s": round(load_s, 2), "torch": torch.__version__}))
