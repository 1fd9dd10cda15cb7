#!/usr/bin/env python3
"""Goldens for interventions and the logit lens (docs/interventions.md).

On the tiny Gemma-2 fixture tests/fixtures/models/gemma2-tiny-f32 (transformers, eager, fp32)
each case runs a clean forward pass and one with transformers forward hooks doing the
intervention at the module that matches the TransformerLens hook:
  blocks.L.hook_resid_post  output of model.model.layers[L]
  blocks.L.hook_resid_pre   input of model.model.layers[L] (forward pre-hook)
  blocks.L.hook_attn_out    output of layers[L].post_attention_layernorm
  blocks.L.hook_mlp_out     output of layers[L].post_feedforward_layernorm
Interventions (the spec strings the C side parses are stored with each case):
  add      x += alpha * s * d, d the unit direction, s = mean over the input's tokens of
           ||x_clean[t]||_2 at the hook (alpha_abs: s = 1); at every position or pos=...
  project  x -= (x . d) d
  sae      x += decode(f') - decode(f), f = sae.encode(x) (sae-lens), f' = f with the feature
           clamped / scaled / zeroed (sae-lens steering keeps the SAE error term)
  patch    x[pos] = x_source_clean[pos] (source: another input's clean run)
Logit lens: for every layer L, logits = softcap(norm(resid_post_L) @ E^T) with the model's
final RMSNorm (gain 1+w) and final logit soft-cap; top-5 ids at every position.
The direction file (dir.safetensors) is written here from a fixed seed.

usage: gen_intervene_goldens.py [--out tests/fixtures/intervene]
"""
import argparse, json, os
import torch
import transformers
import sae_lens
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM
from sae_lens import SAE

p = argparse.ArgumentParser()
p.add_argument("--out", default="tests/fixtures/intervene")
p.add_argument("--model", default="tests/fixtures/models/gemma2-tiny-f32")
p.add_argument("--sae", default="tests/fixtures/splice/sae_l1_jumprelu")
a = p.parse_args()
os.makedirs(a.out, exist_ok=True)
torch.manual_seed(11)

model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="eager")
model.eval()
D = model.config.hidden_size
cap = model.config.final_logit_softcapping
layers = model.model.layers

dirs = {"direction": torch.nn.functional.normalize(torch.randn(D), dim=0),
        "dir_b": torch.randn(D) * 3.0,          # not unit: the loader normalises it
        "narrow": torch.randn(D // 2)}          # wrong width (bad-input tests)
dir_path = os.path.join(a.out, "dir.safetensors")
save_file({k: v.contiguous() for k, v in dirs.items()}, dir_path)
unit = {k: torch.nn.functional.normalize(v, dim=0) for k, v in dirs.items()}

sae = SAE.load_from_disk(a.sae, device="cpu")
sae.eval()

ids = torch.tensor([2, 17, 300, 4, 9, 33, 120, 77])
src = torch.tensor([2, 45, 46, 47, 250, 11, 400, 5])


CUR = {"layers": layers, "fwd": lambda x_ids: model(input_ids=x_ids[None]).logits[0]}


def module_for(hook):
    layers = CUR["layers"]
    parts = hook.split(".")
    L, site = int(parts[1]), ".".join(parts[2:])
    if site == "hook_resid_post":
        return layers[L], False
    if site == "hook_resid_pre":
        return layers[L], True
    if site == "hook_attn_out":
        return layers[L].post_attention_layernorm, False
    if site == "hook_mlp_out":
        return layers[L].post_feedforward_layernorm, False
    raise ValueError(hook)


def run(x_ids, edits=()):
    """edits: list of (hook, fn(x [T, D]) -> new x); returns logits [T, V] (float64) and the
    activations seen at each edited hook before editing."""
    handles, seen = [], {}
    for hook, fn in edits:
        mod, pre = module_for(hook)

        def make(hook=hook, fn=fn, pre=pre):
            if pre:
                def h(m, args, kwargs):
                    if args:
                        x = args[0]
                        seen[hook] = x[0].detach().clone()
                        return (fn(x[0].clone())[None],) + tuple(args[1:]), kwargs
                    x = kwargs["hidden_states"]
                    seen[hook] = x[0].detach().clone()
                    kwargs = dict(kwargs)
                    kwargs["hidden_states"] = fn(x[0].clone())[None]
                    return args, kwargs
                return h
            def h(m, inp, out):
                hs = out[0] if isinstance(out, tuple) else out
                seen[hook] = hs[0].detach().clone()
                new = fn(hs[0].clone())[None]
                return (new,) + tuple(out[1:]) if isinstance(out, tuple) else new
            return h
        if pre:
            handles.append(mod.register_forward_pre_hook(make(), with_kwargs=True))
        else:
            handles.append(mod.register_forward_hook(make()))
    with torch.no_grad():
        logits = CUR["fwd"](x_ids).double()
    for hd in handles:
        hd.remove()
    return logits, seen


def capture(x_ids, hook):
    _, seen = run(x_ids, [(hook, lambda x: x)])
    return seen[hook]


def mean_norm(x_ids, hook):
    return capture(x_ids, hook).norm(dim=-1).mean().item()


def add_fn(hook, d, alpha, absolute=False, pos=None):
    s = 1.0 if absolute else mean_norm(ids, hook)
    def f(x):
        rows = range(x.shape[0]) if pos is None else pos
        for r in rows:
            x[r] = x[r] + alpha * s * d
        return x
    return f


def project_fn(d):
    return lambda x: x - (x @ d)[:, None] * d[None, :]


def sae_fn(feature, op, value=None):
    def f(x):
        feats = sae.encode(x)
        edited = feats.clone()
        if op == "clamp":
            edited[:, feature] = value
        elif op == "scale":
            edited[:, feature] = edited[:, feature] * value
        else:
            edited[:, feature] = 0
        return x + (sae.decode(edited) - sae.decode(feats))
    return f


def patch_fn(hook, pos):
    s = capture(src, hook)
    def f(x):
        rows = range(x.shape[0]) if pos is None else pos
        for r in rows:
            x[r] = s[r]
        return x
    return f


# the most active SAE feature on this input (so clamping/zeroing changes something)
with torch.no_grad():
    fa = sae.encode(capture(ids, "blocks.1.hook_resid_post"))
feat = int(fa.sum(0).argmax())
DIR = "tests/fixtures/intervene/dir.safetensors"
SAE = a.sae
H1 = "blocks.1.hook_resid_post"
cases = [
    ([f"add@{H1}:dir={DIR}:alpha=2"], [(H1, add_fn(H1, unit["direction"], 2.0))]),
    ([f"add@blocks.2.hook_mlp_out:dir={DIR}:dir_b:alpha_abs=-3:pos=1,6"],
     [("blocks.2.hook_mlp_out", add_fn(None, unit["dir_b"], -3.0, True, [1, 6]))]),
    ([f"add@blocks.0.hook_resid_pre:dir={DIR}:alpha=0.5:pos=-1"],
     [("blocks.0.hook_resid_pre", add_fn("blocks.0.hook_resid_pre", unit["direction"], 0.5, pos=[len(ids) - 1]))]),
    ([f"project@blocks.2.hook_resid_post:dir={DIR}"], [("blocks.2.hook_resid_post", project_fn(unit["direction"]))]),
    ([f"project@blocks.1.hook_attn_out:dir={DIR}:dir_b"], [("blocks.1.hook_attn_out", project_fn(unit["dir_b"]))]),
    ([f"sae@{H1}:sae={SAE}:feature={feat}:clamp=5"], [(H1, sae_fn(feat, "clamp", 5.0))]),
    ([f"sae@{H1}:sae={SAE}:feature={feat}:scale=3"], [(H1, sae_fn(feat, "scale", 3.0))]),
    ([f"sae@{H1}:sae={SAE}:feature={feat}:zero"], [(H1, sae_fn(feat, "zero"))]),
    (["patch@blocks.2.hook_resid_pre:from=1:pos=3"], [("blocks.2.hook_resid_pre", patch_fn("blocks.2.hook_resid_pre", [3]))]),
    (["patch@blocks.1.hook_mlp_out:from=1"], [("blocks.1.hook_mlp_out", patch_fn("blocks.1.hook_mlp_out", None))]),
    ([f"project@blocks.0.hook_resid_post:dir={DIR}", f"add@{H1}:dir={DIR}:alpha=1.5"],
     [("blocks.0.hook_resid_post", project_fn(unit["direction"])), (H1, add_fn(H1, unit["direction"], 1.5))]),
]

clean, _ = run(ids)
tensors = {"ids": ids.to(torch.int32), "source_ids": src.to(torch.int32), "logits_clean": clean.float()}
specs = []
for k, (spec, edits) in enumerate(cases):
    lg, _ = run(ids, edits)
    lp_c = torch.log_softmax(clean, -1)
    lp_i = torch.log_softmax(lg, -1)
    kl = (lp_c.exp() * (lp_c - lp_i)).sum(-1)  # KL(clean || intervened) per position
    tensors[f"c{k}.logits"] = lg.float()
    tensors[f"c{k}.kl"] = kl
    specs.append(spec)
    print(k, spec, "KL last", kl[-1].item(), "max |dlogit|", (lg - clean).abs().max().item())

# logit lens on the clean input
resid = {}
hs = [layers[L].register_forward_hook(lambda m, i, o, L=L: resid.__setitem__(L, (o[0] if isinstance(o, tuple) else o)[0].detach()))
      for L in range(len(layers))]
with torch.no_grad():
    model(input_ids=ids[None])
    for h in hs:
        h.remove()
    for L in range(len(layers)):
        lg = model.lm_head(model.model.norm(resid[L]))
        if cap:
            lg = torch.tanh(lg / cap) * cap
        tensors[f"lens.{L}.logits"] = lg.float()
        tensors[f"lens.{L}.top5"] = torch.topk(lg, 5, dim=-1).indices.to(torch.int32)
    # the last layer's lens is the model's own logits
    assert (tensors[f"lens.{len(layers) - 1}.logits"].double() - clean).abs().max() < 1e-4

# ---- PaliGemma (decoder hooks; image + prompt + suffix input, prefix-LM) --------------------
# Input p1 of tests/fixtures/models/paligemma-tiny-f32/golden.safetensors; the source (from=1)
# is the same token sequence with p0's image. Tags "pg{k}" and "pglens.{L}".
from transformers import PaliGemmaForConditionalGeneration
PG = "tests/fixtures/models/paligemma-tiny-f32"
pgm = PaliGemmaForConditionalGeneration.from_pretrained(PG, dtype=torch.float32, attn_implementation="eager")
pgm.eval()
pg_gold = load_file(os.path.join(PG, "golden.safetensors"))
pg_ids = pg_gold["p1.ids"].long()
pg_tt = pg_gold["p1.token_type_ids"].long()
pix = {k: pg_gold[f"{k}.pixel_values"].reshape(1, 3, pgm.config.vision_config.image_size, -1) for k in ("p1", "p0")}
CUR["layers"] = pgm.model.language_model.layers
IMG = {"which": "p1"}
CUR["fwd"] = lambda x_ids: pgm(input_ids=x_ids[None], pixel_values=pix[IMG["which"]],
                               token_type_ids=pg_tt[None]).logits[0]
with torch.no_grad():
    d = (CUR["fwd"](pg_ids) - pg_gold["p1.logits"].reshape(len(pg_ids), -1)).abs().max().item()
assert d < 1e-4, f"PaliGemma logits differ from the model fixture's golden by {d}"


def pg_capture(hook, which):
    IMG["which"] = which
    _, seen = run(pg_ids, [(hook, lambda x: x)])
    IMG["which"] = "p1"
    return seen[hook]


def pg_patch(hook, pos):
    s = pg_capture(hook, "p0")
    def f(x):
        for r in pos:
            x[r] = s[r]
        return x
    return f


n_img = int((pg_ids == pgm.config.image_token_index).sum())
pg_cases = [
    ([f"add@blocks.0.hook_resid_post:dir={DIR}:alpha=1"],
     [("blocks.0.hook_resid_post", lambda x, s=pg_capture("blocks.0.hook_resid_post", "p1").norm(dim=-1).mean().item():
       x + 1.0 * s * unit["direction"][None, :])]),
    ([f"patch@blocks.1.hook_resid_pre:from=1:pos={','.join(str(i) for i in range(n_img))}"],
     [("blocks.1.hook_resid_pre", pg_patch("blocks.1.hook_resid_pre", list(range(n_img))))]),
    ([f"project@blocks.0.hook_mlp_out:dir={DIR}:dir_b"], [("blocks.0.hook_mlp_out", project_fn(unit["dir_b"]))]),
]
pg_clean, _ = run(pg_ids)
tensors["pg.ids"] = pg_ids.to(torch.int32)
tensors["pg.prefix_len"] = pg_gold["p1.prefix_len"].to(torch.int32)
tensors["pg.pixel_values"] = pix["p1"].contiguous()
tensors["pg.source_pixel_values"] = pix["p0"].contiguous()
tensors["pg.logits_clean"] = pg_clean.float()
pg_specs = []
for k, (spec, edits) in enumerate(pg_cases):
    lg, _ = run(pg_ids, edits)
    lp_c, lp_i = torch.log_softmax(pg_clean, -1), torch.log_softmax(lg, -1)
    tensors[f"pg{k}.logits"] = lg.float()
    tensors[f"pg{k}.kl"] = (lp_c.exp() * (lp_c - lp_i)).sum(-1)
    pg_specs.append(spec)
    print("pg", k, spec, "KL last", tensors[f"pg{k}.kl"][-1].item())
pres = {}
pl = pgm.model.language_model.layers
hs = [pl[L].register_forward_hook(lambda m, i, o, L=L: pres.__setitem__(L, (o[0] if isinstance(o, tuple) else o)[0].detach()))
      for L in range(len(pl))]
with torch.no_grad():
    CUR["fwd"](pg_ids)
    for h in hs:
        h.remove()
    pcap = pgm.config.text_config.final_logit_softcapping
    for L in range(len(pl)):
        lg = pgm.lm_head(pgm.model.language_model.norm(pres[L]))
        if pcap:
            lg = torch.tanh(lg / pcap) * pcap
        tensors[f"pglens.{L}.logits"] = lg.float()
        tensors[f"pglens.{L}.top5"] = torch.topk(lg, 5, dim=-1).indices.to(torch.int32)
    assert (tensors[f"pglens.{len(pl) - 1}.logits"].double() - pg_clean).abs().max() < 1e-4

meta = {"generator": "tools/reference/gen_intervene_goldens.py", "torch": torch.__version__,
        "transformers": transformers.__version__, "sae_lens": sae_lens.__version__, "model": a.model,
        "sae": a.sae, "n_cases": str(len(cases)), "pg_model": PG, "pg_specs": json.dumps(pg_specs), "specs": json.dumps(specs), "sae_feature": str(feat)}
save_file(tensors, os.path.join(a.out, "intervene_golden.safetensors"), metadata=meta)
