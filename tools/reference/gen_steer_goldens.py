#!/usr/bin/env python3
"""Goldens for steered generation (generation with interventions, docs/generate.md
"Generation with interventions"): transformers' greedy `generate` (KV cache, eager, fp32)
with forward hooks that edit a decoder activation on EVERY forward call of the model —
the prefill (the whole prompt, [1, P, D]) and each cached decode step ([1, 1, D]).
A hook registered with register_forward_hook on a module stays active for all of generate's
model calls, so it must itself tell the prefill (the first call) from the decode steps:
specs with pos= edit the named prompt rows in the prefill only, specs without pos= edit
every row of every call.

Hook sites (TransformerLens names, as tools/reference/gen_intervene_goldens.py):
  blocks.L.hook_resid_post  output of language_model.layers[L]
  blocks.L.hook_mlp_out     output of layers[L].post_feedforward_layernorm
Edits:
  add      x += alpha * s * d; d unit (tests/fixtures/intervene/dir.safetensors), s = mean over
           the prompt's rows of ||x_clean||_2 at the hook in a clean (unhooked) forward of the
           prompt (alpha_abs: s = 1)
  project  x -= (x . d) d
  sae      x += decode(f') - decode(f), f = sae.encode(x) (sae-lens), f' with one feature clamped
Models: tests/fixtures/models/gemma2-tiny-f32 and paligemma-tiny-f32 (random weights), the
prompts of tests/fixtures/generate/{gemma2,paligemma}-tiny-f32.safetensors, EOS off (exactly
N new tokens). Output tests/fixtures/generate/steer.safetensors:
  gemma2.prompt / pg.prompt, pg.pixel_values           the inputs
  gemma2.clean.ids / pg.clean.ids                      unsteered greedy ids
  {gemma2,pg}.c{k}.ids, .logits [n, V], .scale [1]      steered ids, per-step logits
                                                       (output_logits), the s used
metadata: specs (JSON per model), min top-1/top-2 logit gap per case, versions.
Usage: /work/refenv/bin/python tools/reference/gen_steer_goldens.py
"""
import argparse
import json
import os

import numpy as np
import torch
import transformers
import sae_lens
from safetensors.numpy import load_file as np_load, save_file
from safetensors.torch import load_file
from sae_lens import SAE
from transformers import Gemma2ForCausalLM, PaliGemmaForConditionalGeneration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIR = "tests/fixtures/intervene/dir.safetensors"
SAE_PATH = "tests/fixtures/splice/sae_l1_jumprelu"
N_NEW = 12

ap = argparse.ArgumentParser()
ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/generate/steer.safetensors"))
a = ap.parse_args()

dirs = {k: torch.nn.functional.normalize(v, dim=0) for k, v in load_file(os.path.join(ROOT, DIR)).items()}
sae = SAE.load_from_disk(os.path.join(ROOT, SAE_PATH), device="cpu")
sae.eval()


def module_for(layers, hook):
    parts = hook.split(".")
    L, site = int(parts[1]), ".".join(parts[2:])
    if site == "hook_resid_post":
        return layers[L]
    if site == "hook_mlp_out":
        return layers[L].post_feedforward_layernorm
    raise ValueError(hook)


def hooked(layers, edits, call):
    """edits: (hook, fn(x [T, D], prefill: bool) -> x); runs call() with the hooks on."""
    handles = []
    for hook, fn in edits:
        state = {"calls": 0}

        def h(m, inp, out, fn=fn, state=state):
            hs = out[0] if isinstance(out, tuple) else out
            new = fn(hs[0].clone(), state["calls"] == 0)[None]
            state["calls"] += 1
            return (new,) + tuple(out[1:]) if isinstance(out, tuple) else new
        handles.append(module_for(layers, hook).register_forward_hook(h))
    try:
        with torch.no_grad():
            return call()
    finally:
        for hd in handles:
            hd.remove()


def clean_norm(layers, hook, fwd):
    seen = {}
    def f(x, prefill):
        seen["x"] = x.clone()
        return x
    hooked(layers, [(hook, f)], fwd)
    return seen["x"].norm(dim=-1).mean().item()


def add_fn(d, alpha, s, pos=None):
    def f(x, prefill):
        if pos is None:
            return x + alpha * s * d[None, :]
        if prefill:
            for r in pos:
                x[r] = x[r] + alpha * s * d
        return x
    return f


def project_fn(d):
    return lambda x, prefill: x - (x @ d)[:, None] * d[None, :]


def sae_fn(feature, value):
    def f(x, prefill):
        feats = sae.encode(x)
        ed = feats.clone()
        ed[:, feature] = value
        return x + (sae.decode(ed) - sae.decode(feats))
    return f


def gen(model, layers, inputs, edits):
    P = inputs["input_ids"].shape[1]
    def call():
        return model.generate(**inputs, max_new_tokens=N_NEW, do_sample=False, output_logits=True,
                              return_dict_in_generate=True, top_k=None, top_p=None, temperature=None)
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = None
    out = hooked(layers, edits, call)
    model.generation_config.eos_token_id = saved
    ids = out.sequences[0, P:].numpy().astype(np.int32)
    lg = torch.stack(out.logits, 0)[:, 0].float().numpy()
    srt = np.sort(lg, -1)
    return ids, lg, float((srt[:, -1] - srt[:, -2]).min())


def run_model(tag, model, layers, inputs, fwd, cases, tensors, meta):
    ids, lg, gap = gen(model, layers, inputs, [])
    tensors[f"{tag}.clean.ids"] = ids
    tensors[f"{tag}.clean.logits"] = lg
    specs, gaps = [], []
    for k, (spec, hook, make) in enumerate(cases):
        fn, s = make(fwd)
        sids, slg, g = gen(model, layers, inputs, [(hook, fn)])
        tensors[f"{tag}.c{k}.ids"] = sids
        tensors[f"{tag}.c{k}.logits"] = slg
        tensors[f"{tag}.c{k}.scale"] = np.array([s], dtype=np.float64)
        specs.append(spec)
        gaps.append(g)
        print(tag, k, spec, "s", s, "ids", sids.tolist(), "clean", ids.tolist(), "gap", g)
    meta[f"{tag}.specs"] = json.dumps(specs)
    meta[f"{tag}.min_gap"] = json.dumps(gaps)


tensors, meta = {}, {}
# ---- Gemma-2 ----
gdir = os.path.join(ROOT, "tests/fixtures/models/gemma2-tiny-f32")
gm = Gemma2ForCausalLM.from_pretrained(gdir, dtype=torch.float32, attn_implementation="eager").eval()
gl = gm.model.layers
gprompt = np_load(os.path.join(ROOT, "tests/fixtures/generate/gemma2-tiny-f32.safetensors"))["g2.prompt"]
gin = {"input_ids": torch.tensor(gprompt[None].astype(np.int64)),
       "attention_mask": torch.ones(1, len(gprompt), dtype=torch.long)}
gfwd = lambda: gm(**gin)
with torch.no_grad():
    feat = int(sae.encode(hooked(gl, [], lambda: gm(**gin, output_hidden_states=True)).hidden_states[2][0]).sum(0).argmax())
H1 = "blocks.1.hook_resid_post"
d, db = dirs["direction"], dirs["dir_b"]
gcases = [
    (f"add@{H1}:dir={DIR}:alpha=4", H1,
     lambda fwd: (lambda s: (add_fn(d, 4.0, s), s))(clean_norm(gl, H1, fwd))),
    (f"add@blocks.0.hook_mlp_out:dir={DIR}:dir_b:alpha_abs=-6:pos=1,-1", "blocks.0.hook_mlp_out",
     lambda fwd: (add_fn(db, -6.0, 1.0, [1, len(gprompt) - 1]), 1.0)),
    (f"project@blocks.2.hook_resid_post:dir={DIR}", "blocks.2.hook_resid_post",
     lambda fwd: (project_fn(d), 0.0)),
    (f"sae@{H1}:sae={SAE_PATH}:feature={feat}:clamp=20", H1, lambda fwd: (sae_fn(feat, 20.0), 0.0)),
]
tensors["gemma2.prompt"] = gprompt.astype(np.int32)
run_model("gemma2", gm, gl, gin, gfwd, gcases, tensors, meta)
meta["sae_feature"] = str(feat)

# ---- PaliGemma ----
pdir = os.path.join(ROOT, "tests/fixtures/models/paligemma-tiny-f32")
pm = PaliGemmaForConditionalGeneration.from_pretrained(pdir, dtype=torch.float32, attn_implementation="eager").eval()
pl = pm.model.language_model.layers
pg = np_load(os.path.join(ROOT, "tests/fixtures/generate/paligemma-tiny-f32.safetensors"))
pids, pv = pg["g1.prompt"], pg["g1.pixel_values"]
c = pm.config
N = (c.vision_config.image_size // c.vision_config.patch_size) ** 2
ids = [c.image_token_index] * N + [c.text_config.bos_token_id] + pids.tolist()
P = len(ids)
pin = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, P, dtype=torch.long),
       "token_type_ids": torch.zeros(1, P, dtype=torch.long), "pixel_values": torch.from_numpy(pv)[None]}
pfwd = lambda: pm(**pin)
pcases = [
    (f"add@blocks.0.hook_resid_post:dir={DIR}:alpha=3", "blocks.0.hook_resid_post",
     lambda fwd: (lambda s: (add_fn(d, 3.0, s), s))(clean_norm(pl, "blocks.0.hook_resid_post", fwd))),
    (f"project@blocks.0.hook_mlp_out:dir={DIR}:dir_b", "blocks.0.hook_mlp_out", lambda fwd: (project_fn(db), 0.0)),
    (f"sae@{H1}:sae={SAE_PATH}:feature={feat}:clamp=20", H1, lambda fwd: (sae_fn(feat, 20.0), 0.0)),
]
tensors["pg.prompt"] = pids.astype(np.int32)
tensors["pg.pixel_values"] = pv.astype(np.float32)
run_model("pg", pm, pl, pin, pfwd, pcases, tensors, meta)

meta.update({"generator": "tools/reference/gen_steer_goldens.py", "torch": torch.__version__,
             "transformers": transformers.__version__, "sae_lens": sae_lens.__version__,
             "max_new_tokens": str(N_NEW), "eos": "off"})
save_file(dict(sorted(tensors.items())), a.out, metadata=meta)
os.chmod(a.out, 0o644)
# the CLI test's expectations (tests/cli_generate.sh): Gemma-2 case 0 and PaliGemma case 0
cli = {"generator": "tools/reference/gen_steer_goldens.py",
       "gemma2": {"prompt": gprompt.tolist(), "spec": gcases[0][0], "clean": tensors["gemma2.clean.ids"].tolist(),
                  "intervened": tensors["gemma2.c0.ids"].tolist()},
       "pg": {"prompt": pids.tolist(), "spec": pcases[0][0], "clean": tensors["pg.clean.ids"].tolist(),
              "intervened": tensors["pg.c0.ids"].tolist()}}
with open(os.path.join(os.path.dirname(a.out), "steer_cli_expected.json"), "w") as f:
    json.dump(cli, f, sort_keys=True)
    f.write("\n")
