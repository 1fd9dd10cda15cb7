#!/usr/bin/env python3
"""transformers/torch reference for bench_paligemma: same checkpoint, same images, fp32.
--through vision runs model.model.vision_tower (post-LN features, batches of --batch
images); --through N runs the vision tower, projector and decoder layers 0..N-1
(model.language_model.layers truncated, the fastest "through layer N-1" the reference
allows) on <image>xN <bos> "caption en\\n" [+ the image's caption suffix: --suffix-ids, line i
= caption ids + <eos>], token_type_ids 0 on the prefix and 1 on the suffix (prefix-LM), right
padding with an attention mask. Pixels come from SiglipImageProcessorPil (Pillow resize, as
reprshift's preprocessing: identical pixels, docs/images.md); transformers 5's
SiglipImageProcessor is the torchvision one, whose resize differs (1.2e-2 on the tower's
output).

The model is loaded once; each --modes entry BATCHING:ATTN is timed on all images (after
one untimed warm-up batch) and prints one JSON line:
  BATCHING  bucket: images sorted by input length, consecutive batches of --batch (the
            "used well" way; the vision tower's inputs all have the same length);
            padded: file order, batches of --batch, each padded to its longest input.
  ATTN      eager: every attention eager; sdpa: torch scaled_dot_product_attention;
            vsdpa: sdpa in the vision tower, eager in the Gemma-2 decoder.
The output rows (image order, padding dropped) of each mode are compared with the first
mode's (max|diff| / max|ref|, "vs_first"; the first mode should be bucket:eager) and
written as raw float32 to SAVE_PREFIX<batching>_<attn>.f32 for the parity check against
reprshift. torch.set_num_threads(2), torch.inference_mode(); the caller sets
OMP_WAIT_POLICY=PASSIVE."""
import argparse, json, resource, time
import torch
from PIL import Image
import transformers
from transformers import PaliGemmaForConditionalGeneration
from transformers import SiglipImageProcessorPil  # the Pillow one (SiglipImageProcessor is torchvision's in 5.x)

p = argparse.ArgumentParser()
p.add_argument("--model", required=True)
p.add_argument("--through", required=True, help="'vision' or the number of decoder layers to run")
p.add_argument("--batch", type=int, default=8)
p.add_argument("--repeat", type=int, default=1,
               help="timed passes over all images; the fastest is reported, every pass in runs_images_per_s")
p.add_argument("--modes", default="bucket:eager")
p.add_argument("--suffix-ids", help="line i: image i's caption suffix ids")
p.add_argument("--prompt-ids", default="21209,659,108", help="after <bos> (default: 'caption en' '\\n')")
p.add_argument("--save-prefix")
p.add_argument("images", nargs="+")
a = p.parse_args()
torch.set_num_threads(2)
t0 = time.time()
model = PaliGemmaForConditionalGeneration.from_pretrained(a.model, dtype=torch.float32, attn_implementation="eager")
load_s = time.time() - t0
model.eval()
proc = SiglipImageProcessorPil.from_pretrained(a.model)
t0 = time.time()
pix = proc([Image.open(f).convert("RGB") for f in a.images], return_tensors="pt")["pixel_values"]
prep_s = time.time() - t0
S = pix.shape[-1]
tc = model.config.text_config
N = tc.num_image_tokens if getattr(tc, "num_image_tokens", None) else (S // 14) ** 2
inner = model.model
vision = a.through == "vision"
if not vision:
    inner.language_model.layers = inner.language_model.layers[: int(a.through)]
n = len(a.images)
prefix = [model.config.image_token_index] * N + [tc.bos_token_id] + [int(x) for x in a.prompt_ids.split(",")]
sfx = [[] for _ in range(n)]
if a.suffix_ids:
    lines = [l for l in open(a.suffix_ids) if l.strip()]
    sfx = [[int(x) for x in lines[i].replace(",", " ").split()] for i in range(n)]
lens = [len(prefix) + len(s) for s in sfx]
captured = []
target = inner.vision_tower if vision else inner.language_model.layers[-1]
target.register_forward_hook(lambda m, i, o: captured.append(
    (o.last_hidden_state if hasattr(o, "last_hidden_state") else o[0] if isinstance(o, tuple) else o).detach()))


def set_attn(attn):
    if attn == "vsdpa":
        model.set_attn_implementation({"vision_config": "sdpa", "text_config": "eager", "": "eager"})
    else:
        model.set_attn_implementation(attn)


def forward(idx):
    pv = pix[idx]
    if vision:
        inner.vision_tower(pixel_values=pv)
        return
    T = max(lens[i] for i in idx)
    ids = torch.zeros(len(idx), T, dtype=torch.long)
    mask = torch.zeros(len(idx), T, dtype=torch.long)
    tt = torch.zeros(len(idx), T, dtype=torch.long)
    for j, i in enumerate(idx):
        ids[j, : lens[i]] = torch.tensor(prefix + sfx[i])
        mask[j, : lens[i]] = 1
        tt[j, len(prefix): lens[i]] = 1
    inner(input_ids=ids, pixel_values=pv, attention_mask=mask, token_type_ids=tt, use_cache=False)
    return T * len(idx)


first = None
by_len = sorted(range(n), key=lambda i: (lens[i], i))
with torch.inference_mode():
    for mode in a.modes.split(","):
        kind, attn = mode.split(":")
        set_attn(attn)
        order = by_len if kind == "bucket" else list(range(n))
        forward(order[: min(a.batch, 2)])  # warm-up
        captured.clear()
        runs = []
        for _ in range(a.repeat):
            rows = [None] * n
            padded = 0
            t0 = time.time()
            for b0 in range(0, n, a.batch):
                idx = order[b0:b0 + a.batch]
                padded += forward(idx) or 0
                out = captured.pop()
                for j, i in enumerate(idx):
                    rows[i] = out[j] if vision else out[j, : lens[i]]
            runs.append(time.time() - t0)
        best = min(runs)
        rows = torch.cat(rows).float()
        if first is None:
            first = rows
        vs_first = float((rows - first).abs().max() / first.abs().max())
        if a.save_prefix:
            rows.contiguous().numpy().tofile(f"{a.save_prefix}{kind}_{attn}.f32")
        print(json.dumps({"impl": "transformers", "mode": mode, "batching": kind, "attn": attn, "through": a.through,
                          "images": n, "batch": a.batch, "image_size": S, "decoder_tokens": 0 if vision else sum(lens),
                          "padded_tokens": padded, "seconds": round(best, 3), "images_per_s": round(n / best, 3),
                          "repeat": a.repeat, "runs_images_per_s": [round(n / t, 3) for t in runs],
                          "vs_first": vs_first,
                          "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024, 2),
                          "load_s": round(load_s, 2), "preprocess_s": round(prep_s, 3), "torch": torch.__version__,
                          "transformers": transformers.__version__}), flush=True)
