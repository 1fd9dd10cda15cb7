#!/usr/bin/env python3
"""transformers reference for bench_generate: the same checkpoint and prompts, fp32, eager
attention, generate(do_sample=False) with EOS off; per prompt the time of max_new_tokens=1
and of N, so decode tok/s = (N - 1) / (t_N - t_1), after one untimed 2-token warm-up run of
the first prompt (as bench_generate). Prints one JSON line."""
import argparse, json, resource, time
import torch
from transformers import AutoModelForCausalLM

p = argparse.ArgumentParser()
p.add_argument("--model", required=True)
p.add_argument("--ids-file", required=True)
p.add_argument("--new", type=int, default=32)
a = p.parse_args()
torch.set_num_threads(2)
t0 = time.time()
model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="eager").eval()
load_s = time.time() - t0
model.generation_config.eos_token_id = None
runs, t_first, t_all, warmup_s = [], 0.0, 0.0, None
for line in open(a.ids_file):
    if not line.strip():
        continue
    ids = torch.tensor([[int(x) for x in line.replace(",", " ").split()]])
    kw = dict(do_sample=False, top_k=None, top_p=None, temperature=None, attention_mask=torch.ones_like(ids))
    with torch.no_grad():
        if warmup_s is None:  # warm-up, untimed (one-time costs out of t_1, as bench_generate does)
            w = time.time(); model.generate(ids, max_new_tokens=2, **kw); warmup_s = round(time.time() - w, 3)
        t = time.time(); model.generate(ids, max_new_tokens=1, **kw); b = time.time()
        out = model.generate(ids, max_new_tokens=a.new, **kw); c = time.time()
    runs.append({"prompt_tokens": ids.shape[1], "first_s": round(b - t, 3), "all_s": round(c - b, 3),
                 "ids": out[0, ids.shape[1]:].tolist()})
    t_first += b - t
    t_all += c - b
n = len(runs)
print(json.dumps({"side": "transformers", "load_s": round(load_s, 2), "runs": runs, "new_tokens": a.new,
                  "decode_tok_s": round(n * (a.new - 1) / (t_all - t_first), 3),
                  "prefill_first_s": round(t_first / n, 3), "warmup_s": warmup_s,
                  "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, 2)}))
