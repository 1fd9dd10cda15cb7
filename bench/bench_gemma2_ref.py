#!/usr/bin/env python3
"""transformers/torch reference for bench_gemma2: same checkpoint, same token ids, fp32 (--dtype
bfloat16: a bf16 run, the comparison for bench_gemma2 --precision bf16),
forward stopped after the hooked layer by truncating model.layers (as fast as the reference
can be made for "through layer L"). The model is loaded once; each --modes entry is then
timed on all inputs and prints one JSON line:

  bucket:ATTN  "used well": sequences sorted by token length, cut into consecutive buckets
               of at most --bucket sequences (default 64), each bucket right-padded to its
               own longest sequence (so padding is at most the spread of lengths inside a
               bucket), attention implementation ATTN (eager; see below);
  padded:ATTN  the old benchmark's way: inputs in file order, batches of --bucket sequences,
               each padded to its longest.

Every mode runs torch.inference_mode(), torch.set_num_threads(2) (the caller sets
OMP_WAIT_POLICY=PASSIVE), after one untimed warm-up forward on a small batch. The hooked
layer's output rows (padding dropped, input order) of every mode are compared with the first
mode's (max|diff| / max|ref|, "vs_first") and saved for the parity check against reprshift
(--save-prefix: PREFIX<batching>_<attn>.safetensors, key resid_post).

Attention implementations in transformers 5.24 for Gemma-2 (measured 2026-12-03): "sdpa" is
refused at load and at set_attn_implementation (Gemma2PreTrainedModel._supports_sdpa = False),
and forcing config._attn_implementation = "sdpa" fails in sdpa_attention_forward ("`sdpa`
attention does not support `softcap`"): sdpa cannot apply the attention-logit soft-cap.
"flex_attention" is correct (3.7e-7 of eager on a 2-layer toy model) but on CPU compiles with
inductor for every new padded shape (90 s for 20 sequences of that toy model), so it is no
candidate for a benchmark. That leaves eager as the fastest correct implementation."""
import argparse, json, resource, time
import torch
from transformers import AutoModelForCausalLM

p = argparse.ArgumentParser()
p.add_argument("--model", required=True)
p.add_argument("--ids-file", required=True)
p.add_argument("--layers", type=int, required=True, help="run layers 0..L-1")
p.add_argument("--modes", default="bucket:eager,padded:eager")
p.add_argument("--bucket", type=int, default=64, help="sequences per batch")
p.add_argument("--repeat", type=int, default=1,
               help="timed passes over all inputs; the fastest is reported, every pass in runs_tokens_per_s")
p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
               help="the model's dtype (bfloat16: the reference of --precision bf16)")
p.add_argument("--save-prefix", help="write each mode's last-layer rows (packed, no padding)")
a = p.parse_args()
torch.set_num_threads(2)
seqs = [[int(x) for x in line.replace(",", " ").split()] for line in open(a.ids_file) if line.strip()]
t0 = time.time()
model = AutoModelForCausalLM.from_pretrained(a.model, dtype=getattr(torch, a.dtype), attn_implementation="eager")
load_s = time.time() - t0
model.eval()
model.model.layers = model.model.layers[: a.layers]
tokens = sum(len(s) for s in seqs)
captured = []
hook = model.model.layers[-1].register_forward_hook(
    lambda m, i, o: captured.append((o[0] if isinstance(o, tuple) else o).detach()))


def batches(order):
    for b0 in range(0, len(order), a.bucket):
        idx = order[b0:b0 + a.bucket]
        T = max(len(seqs[i]) for i in idx)
        ids = torch.zeros(len(idx), T, dtype=torch.long)
        mask = torch.zeros(len(idx), T, dtype=torch.long)
        for j, i in enumerate(idx):
            ids[j, : len(seqs[i])] = torch.tensor(seqs[i])
            mask[j, : len(seqs[i])] = 1
        yield idx, ids, mask


def run(order):
    """Forward every batch; returns (seconds, padded tokens, rows in input order)."""
    rows = [None] * len(seqs)
    padded = 0
    captured.clear()
    t0 = time.time()
    for idx, ids, mask in batches(order):
        model.model(input_ids=ids, attention_mask=mask, use_cache=False)
        padded += ids.numel()
        out = captured.pop()
        for j, i in enumerate(idx):
            rows[i] = out[j, : len(seqs[i])]
    return time.time() - t0, padded, torch.cat(rows)


by_len = sorted(range(len(seqs)), key=lambda i: (len(seqs[i]), i))
first = None
with torch.inference_mode():
    for mode in a.modes.split(","):
        kind, attn = mode.split(":")
        model.set_attn_implementation(attn)
        order = by_len if kind == "bucket" else list(range(len(seqs)))
        # untimed warm-up: the first (shortest) few sequences of this mode's order
        warm = [seqs[i] for i in order[: min(8, len(order))]]
        T = max(len(s) for s in warm)
        ids = torch.zeros(len(warm), T, dtype=torch.long)
        mask = torch.zeros(len(warm), T, dtype=torch.long)
        for j, s in enumerate(warm):
            ids[j, : len(s)] = torch.tensor(s)
            mask[j, : len(s)] = 1
        model.model(input_ids=ids, attention_mask=mask, use_cache=False)
        captured.clear()
        runs, rows = [], None
        for _ in range(a.repeat):
            dt, padded, rows = run(order)
            runs.append(dt)
        best = min(runs)
        if first is None:
            first = rows
        vs_first = float((rows - first).abs().max() / first.abs().max())
        if a.save_prefix:
            from safetensors.torch import save_file
            save_file({"resid_post": rows.float().contiguous()}, f"{a.save_prefix}{kind}_{attn}.safetensors")
        print(json.dumps({"impl": "transformers", "mode": mode, "batching": kind, "attn": attn, "layers": a.layers,
                          "inputs": len(seqs), "tokens": tokens, "padded_tokens": padded, "bucket": a.bucket,
                          "dtype": a.dtype, "seconds": round(best, 3), "tokens_per_s": round(tokens / best, 2),
                          "repeat": a.repeat, "runs_tokens_per_s": [round(tokens / t, 2) for t in runs],
                          "vs_first": vs_first,
                          "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024, 2),
                          "load_s": round(load_s, 2), "torch": torch.__version__}), flush=True)
hook.remove()
