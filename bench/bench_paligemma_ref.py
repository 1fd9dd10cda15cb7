#!/usr/bin/env python3
"""transformers/torch reference for bench_paligemma: same checkpoint, same images, fp32,
eager attention, batches of B images. --through vision runs model.model.vision_tower
(post-LN features); --through N runs the vision tower, projector and decoder layers
0..N-1 (model.language_model.layers truncated, the fastest "through layer N-1" the
reference allows) on <image>xN <bos> "caption en\\n" with token_type_ids 0 (prefix-LM).
Pixels come from the slow (PIL) SiglipImageProcessor. Prints one JSON line."""
import argparse, json, resource, time
import torch
from PIL import Image
from transformers import PaliGemmaForConditionalGeneration, SiglipImageProcessor

p = argparse.ArgumentParser()
p.add_argument("--model", required=True)
p.add_argument("--through", required=True, help="'vision' or the number of decoder layers to run")
p.add_argument("--batch", type=int, default=8)
p.add_argument("--repeat", type=int, default=1)
p.add_argument("images", nargs="+")
a = p.parse_args()
torch.set_num_threads(2)
t0 = time.time()
model = PaliGemmaForConditionalGeneration.from_pretrained(a.model, dtype=torch.float32, attn_implementation="eager")
load_s = time.time() - t0
model.eval()
proc = SiglipImageProcessor.from_pretrained(a.model)
t0 = time.time()
pix = proc([Image.open(f).convert("RGB") for f in a.images], return_tensors="pt")["pixel_values"]
prep_s = time.time() - t0
S = pix.shape[-1]
N = model.config.text_config.num_image_tokens if hasattr(model.config.text_config, "num_image_tokens") else (S // 14) ** 2
inner = model.model
vision = a.through == "vision"
if not vision:
    inner.language_model.layers = inner.language_model.layers[: int(a.through)]
ids1 = [model.config.image_token_index] * N + [2, 21209, 659, 108]
best = 1e30
with torch.inference_mode():
    for _ in range(a.repeat):
        t0 = time.time()
        for i0 in range(0, len(a.images), a.batch):
            pv = pix[i0:i0 + a.batch]
            if vision:
                inner.vision_tower(pixel_values=pv)
            else:
                ids = torch.tensor([ids1] * pv.shape[0])
                inner(input_ids=ids, pixel_values=pv, attention_mask=torch.ones_like(ids),
                      token_type_ids=torch.zeros_like(ids), use_cache=False)
        best = min(best, time.time() - t0)
import transformers
print(json.dumps({"impl": "transformers", "through": a.through, "images": len(a.images), "batch": a.batch,
                  "image_size": S, "seconds": round(best, 3), "images_per_s": round(len(a.images) / best, 3),
                  "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024, 2),
                  "load_s": round(load_s, 2), "preprocess_s": round(prep_s, 3), "torch": torch.__version__,
                  "transformers": transformers.__version__}))
