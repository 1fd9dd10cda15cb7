# %% [markdown]
# # reprshift from Python: a notebook-style tour
#
# Runs as a script (`python python/examples/notebook.py` from the repository root) or cell by
# cell in VS Code / Jupyter (`# %%` cells). It uses the tiny demo models that ship with the
# repository (examples/quickstart/models); for the real ones put `"google/gemma-2-2b"` and
# `"google/paligemma2-3b-pt-224"` (from the Hugging Face cache) and a Gemma Scope SAE name
# (`"gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical"`) in their place.
# See docs/python.md.

# %%
import os
import sys
import time

import numpy as np

import reprshift

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODELS = os.path.join(ROOT, "examples", "quickstart", "models")
IMAGES = os.path.join(ROOT, "examples", "data", "coco-sample", "val2017")
print("reprshift", reprshift.__version__)

# %% [markdown]
# ## A model, its tokenizer and its hooks

# %%
llm = reprshift.Model(os.path.join(MODELS, "gemma2-tiny"))  # or reprshift.Model("google/gemma-2-2b")
print(llm, "-", len(llm.hooks), "hooks, e.g.", llm.hooks[:3])
ids = llm.tokenize("A cat on a red sofa")
print("token ids:", ids, "->", repr(llm.detokenize(ids)))

# %% [markdown]
# ## Activations by TransformerLens hook name
# `run_with_cache` returns a dict of float32 numpy arrays that are views of C memory (no copy).

# %%
captions = ["A cat on a red sofa.", "Two dogs playing on the beach.", "A bowl of fruit on a wooden table.",
            "A man riding a bicycle down the street."]
HOOK = "blocks.1.hook_resid_post"
cache = llm.run_with_cache(texts=captions, hooks=[HOOK, "ln_final.hook_out"])
print(cache)
acts = cache[HOOK]
print(HOOK, acts.shape, acts.dtype, "owns its data:", acts.flags["OWNDATA"])
first = acts[cache.offsets[0]:cache.offsets[1]]  # the rows of caption 0
print("caption 0:", len(first), "tokens")

pooled = llm.run_with_cache(texts=captions, hooks=[HOOK], pool="mean")
print("mean-pooled:", pooled[HOOK].shape)

# %% [markdown]
# ## PaliGemma: images + prompt, and a caption read as the suffix

# %%
vlm = reprshift.Model(os.path.join(MODELS, "paligemma-tiny"))
image_files = sorted(os.path.join(IMAGES, f) for f in os.listdir(IMAGES))[:2]
vcache = vlm.run_with_cache(images=image_files, prompt="caption en", suffix=captions[:2],
                            hooks=[HOOK, "vision.ln_post", "projector.hook_out"])
kinds = [reprshift.ActivationCache.TOKEN_KINDS[k] for k in vcache.token_kinds[
    vcache.offsets[0]:vcache.offsets[1]]]
print(vcache)
print("token kinds of input 0:", " ".join(kinds))

# %% [markdown]
# ## A sparse autoencoder

# %%
sae = reprshift.SAE.load(os.path.join(MODELS, "sae", HOOK))
feats = sae.encode(acts)
recon = sae.decode(feats, acts)
ev = 1 - ((acts - recon) ** 2).sum() / ((acts - acts.mean(0)) ** 2).sum()
print(sae, "- L0 %.1f, explained variance %.3f" % ((feats > 0).sum(1).mean(), ev))

# %% [markdown]
# ## The representation shift Gemma-2 → PaliGemma-2 on the same captions (text-only)
# The same numbers as `reprshift shift` (results.json), here from the two caches in memory.

# %%
vtext = vlm.run_with_cache(texts=captions, hooks=[HOOK])
t0 = time.perf_counter()
res = reprshift.shift(cache, vtext, sae=sae, hook=HOOK, n_boot=200, n_perm=50)
layer = res["layers"][0]
for m in ("cos_raw", "cka_linear", "jaccard_token", "js_token_bits"):
    s = layer["shift"][m]
    print("%-14s %.4f  [%.4f, %.4f]  p=%s" % (m, s["value"], s["ci_lo"], s["ci_hi"], s.get("p_value")))
print("(%.2f s)" % (time.perf_counter() - t0))

# %% [markdown]
# ## torch, without a copy (optional)

# %%
try:
    import torch
except ImportError:
    print("torch not installed: skipping torch.from_dlpack")
else:
    t = torch.from_dlpack(acts)
    print("torch view:", tuple(t.shape), t.dtype, "same memory:", t.data_ptr() == acts.ctypes.data)

# %% [markdown]
# ## Results of a whole run
# `reprshift run examples/quickstart.json --out runs/quickstart` (or scripts/quickstart.sh) writes a
# run folder; load_run reads its results (pandas DataFrames with `run.table(...)` when pandas is installed).

# %%
run_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "runs", "quickstart")
if os.path.isdir(run_dir):
    run = reprshift.load_run(run_dir)
    print(run)
    recs = [r for r in run.shift_records() if r["metric"] == "cos_raw"]
    for r in recs:
        print("layer %s cos_raw %.4f q=%s" % (r["layer"], r["value"], r["q_value"]))
else:
    print("no run folder at", run_dir, "(run scripts/quickstart.sh first)")
print("notebook: ok")
