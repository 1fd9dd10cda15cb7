#!/usr/bin/env python3
"""Generate tiny random-weight Gemma-2 / PaliGemma-2 checkpoints + golden activations.

Every expected value comes from Hugging Face transformers (eager attention, fp32 math),
captured with PyTorch forward hooks and named with TransformerLens hook names
(see docs/model-spec.md section 2). Checkpoints are written with
save_pretrained and re-loaded from disk with from_pretrained(dtype=float32) before
the goldens are recorded, so the reference runs on exactly the stored (possibly
bf16/f16-rounded) weights.

Usage:
    /work/refenv/bin/python tools/reference/gen_model_fixtures.py --out tests/fixtures/models
    (--only gemma2 | paligemma to regenerate one family)
"""

import argparse
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import Gemma2Config, Gemma2ForCausalLM

GENERATOR = "tools/reference/gen_model_fixtures.py"

# --------------------------------------------------------------------------------------
# Gemma-2 model specs
# --------------------------------------------------------------------------------------
GEMMA2_SPECS = [
    dict(
        name="gemma2-tiny-f32",
        seed=1001,
        store_dtype=torch.float32,
        shard=None,
        hub_style_config=False,
        cfg=dict(
            vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, head_dim=32,  # head_dim != D/H
            query_pre_attn_scalar=24,  # scale 24^-0.5 != head_dim^-0.5
            attn_logit_softcapping=5.0,  # small cap: tanh far from identity
            final_logit_softcapping=10.0,
            sliding_window=8, rope_theta=10000.0, rms_norm_eps=1e-6,
        ),
        # weight std multipliers (see init_gemma2_weights)
        scales=dict(embed=0.35, qk=1.0, vo=1.0, mlp=1.0, norm=0.3),
        prompts=[(1, True), (5, True), (13, False), (21, True)],  # (length, starts with bos)
    ),
    dict(
        name="gemma2-tiny-bf16",
        seed=1002,
        store_dtype=torch.bfloat16,
        shard="40KB",  # forces model.safetensors.index.json + several shards
        hub_style_config=True,  # config.json rewritten in the Hub (transformers 4.4x) style
        cfg=dict(
            vocab_size=384, hidden_size=48,  # sqrt(48) is not exact: tests fp32 normalizer
            intermediate_size=96, num_hidden_layers=5,
            num_attention_heads=2, num_key_value_heads=1, head_dim=24,  # MQA
            query_pre_attn_scalar=24,
            attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
            sliding_window=8, rope_theta=10000.0, rms_norm_eps=1e-6,
        ),
        scales=dict(embed=0.8, qk=2.6, vo=1.0, mlp=1.0, norm=0.3),  # large q/k: cap 50 active
        prompts=[(1, True), (6, True), (14, True), (23, False)],
    ),
    dict(
        name="gemma2-tiny-f16",
        seed=1003,
        store_dtype=torch.float16,
        shard=None,
        hub_style_config=False,
        cfg=dict(
            vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=4, head_dim=8,  # plain MHA
            query_pre_attn_scalar=16,
            attn_logit_softcapping=20.0,
            final_logit_softcapping=None,  # no final soft-cap (as in new PaliGemma)
            sliding_window=4, rope_theta=500.0, rms_norm_eps=1e-5,
        ),
        scales=dict(embed=0.6, qk=2.2, vo=1.0, mlp=1.0, norm=0.3),
        prompts=[(1, True), (4, True), (9, True), (17, True)],
    ),
]


def versions():
    import PIL
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
    }


def gemma2_config(c):
    c = dict(c)
    rope_theta = c.pop("rope_theta")
    cfg = Gemma2Config(
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        hidden_activation="gelu_pytorch_tanh",
        max_position_embeddings=256,
        pad_token_id=0, eos_token_id=1, bos_token_id=2,
        tie_word_embeddings=True, attention_bias=False,
        **c,
    )
    return cfg


def init_gemma2_weights(model, gen, scales, prefix=""):
    """Random weights large enough that every part of the forward matters.

    std = multiplier / sqrt(fan_in) for linears; embeddings N(0, embed); RMSNorm offset
    weights N(0, norm) so the (1+w) gains are far from 1.
    """
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.startswith(prefix):
                continue
            if "layernorm" in name or name.endswith("norm.weight"):
                std = scales["norm"]
            elif "embed_tokens" in name:
                std = scales["embed"]
            elif "q_proj" in name or "k_proj" in name:
                std = scales["qk"] / math.sqrt(p.shape[1])
            elif "v_proj" in name or "o_proj" in name:
                std = scales["vo"] / math.sqrt(p.shape[1])
            elif "mlp" in name:
                std = scales["mlp"] / math.sqrt(p.shape[1])
            else:
                raise RuntimeError(f"unexpected parameter {name}")
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32) * std)


class AttnStats:
    """Records max |pre-softcap attention score| / cap (diagnostic only; math unchanged)."""

    def __init__(self):
        self.max_ratio = 0.0
        self.max_abs = 0.0

    def wrap(self, fn):
        def wrapped(module, query, key, value, attention_mask, scaling=None, softcap=None, **kw):
            n_rep = query.shape[1] // key.shape[1]
            k = key.repeat_interleave(n_rep, dim=1)
            s = torch.matmul(query, k.transpose(2, 3)) * scaling
            T = s.shape[-1]
            causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
            m = s[..., causal].abs().max().item() if T > 0 else 0.0
            self.max_abs = max(self.max_abs, m)
            if softcap:
                self.max_ratio = max(self.max_ratio, m / softcap)
            return fn(module, query, key, value, attention_mask, scaling=scaling, softcap=softcap, **kw)
        return wrapped


def rms_normalized(x, eps):
    """TransformerLens ln_final.hook_normalized: x * rsqrt(mean(x^2)+eps), no (1+w) gain."""
    x = x.float()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


class DecoderHooks:
    """Forward hooks on a Gemma-2 decoder (Gemma2Model) producing TL-named activations."""

    def __init__(self, decoder, prefix=""):
        self.decoder = decoder
        self.prefix = prefix
        self.acts = {}
        self.handles = []
        for L, layer in enumerate(decoder.layers):
            self._pre(layer, f"blocks.{L}.hook_resid_pre", arg=True)
            self._pre(layer.self_attn.o_proj, f"blocks.{L}.attn.hook_z", arg=True)
            self._post(layer.post_attention_layernorm, f"blocks.{L}.hook_attn_out")
            self._post(layer.post_feedforward_layernorm, f"blocks.{L}.hook_mlp_out")
            self._post(layer, f"blocks.{L}.hook_resid_post")
        self._pre(decoder.norm, "ln_final.hook_in", arg=True)
        self._post(decoder.norm, "ln_final.hook_out")

    def _store(self, name, t):
        if isinstance(t, tuple):
            t = t[0]
        assert t.shape[0] == 1, "one prompt at a time"
        self.acts[name] = t[0].detach().float().clone()

    def _pre(self, mod, name, arg):
        def hook(module, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            self._store(name, x)
        self.handles.append(mod.register_forward_pre_hook(hook, with_kwargs=True))

    def _post(self, mod, name):
        def hook(module, args, out):
            self._store(name, out)
        self.handles.append(mod.register_forward_hook(hook))

    def reset(self):
        self.acts = {}

    def remove(self):
        for h in self.handles:
            h.remove()

    def finish(self, n_layers, eps):
        """Add computed hooks (resid_mid, ln_final.hook_normalized) and return ordered dict."""
        a = self.acts
        out = {}
        for L in range(n_layers):
            pre = a[f"blocks.{L}.hook_resid_pre"]
            attn = a[f"blocks.{L}.hook_attn_out"]
            mid = pre + attn  # same fp32 op as the decoder layer's residual add
            mlp = a[f"blocks.{L}.hook_mlp_out"]
            post = a[f"blocks.{L}.hook_resid_post"]
            assert torch.equal(mid + mlp, post), f"resid_post != resid_mid + mlp_out at layer {L}"
            out[f"blocks.{L}.hook_resid_pre"] = pre
            out[f"blocks.{L}.attn.hook_z"] = a[f"blocks.{L}.attn.hook_z"]
            out[f"blocks.{L}.hook_attn_out"] = attn
            out[f"blocks.{L}.hook_resid_mid"] = mid
            out[f"blocks.{L}.hook_mlp_out"] = mlp
            out[f"blocks.{L}.hook_resid_post"] = post
            if L + 1 < n_layers:
                assert torch.equal(post, a[f"blocks.{L + 1}.hook_resid_pre"])
        assert torch.equal(a["ln_final.hook_in"], a[f"blocks.{n_layers - 1}.hook_resid_post"])
        out["ln_final.hook_normalized"] = rms_normalized(a["ln_final.hook_in"], eps)
        out["ln_final.hook_out"] = a["ln_final.hook_out"]
        return out


def check_hidden_states(hs, acts, n_layers, label):
    """Spec section 2: hidden_states[L] == resid_pre(L), hidden_states[-1] == ln_final.hook_out."""
    assert len(hs) == n_layers + 1, f"{label}: {len(hs)} hidden states"
    for L in range(n_layers):
        assert torch.equal(hs[L][0].float(), acts[f"blocks.{L}.hook_resid_pre"]), f"{label}: hs[{L}]"
    assert torch.equal(hs[-1][0].float(), acts["ln_final.hook_out"]), f"{label}: hs[-1]"


def next_token_ce(logits, ids):
    """Mean over i < T-1 of -log softmax(logits[i])[ids[i+1]] (fp32)."""
    lp = torch.log_softmax(logits[:-1].float(), dim=-1)
    return -lp.gather(1, ids[1:, None]).mean()


def text_prompt(model, hooks, c, ids, label, tensors, pre):
    """One text prompt through a causal LM with DecoderHooks on its decoder: the hooks checked
    against output_hidden_states, then stored under `pre` in the golden keys: ids (int32), every
    hook, logits, and (T > 1) the next-token CE, checked against transformers' loss. Returns
    (the model output, the hooks' activations, the fp32 logits)."""
    T = len(ids)
    hooks.reset()
    with torch.no_grad():
        out = model(input_ids=ids[None], labels=ids[None] if T > 1 else None,
                    output_hidden_states=True, use_cache=False)
    acts = hooks.finish(c.num_hidden_layers, c.rms_norm_eps)
    check_hidden_states(out.hidden_states, acts, c.num_hidden_layers, label)
    logits = out.logits[0].float()
    tensors[pre + "ids"] = ids.to(torch.int32)
    for hk, v in acts.items():
        tensors[pre + hk] = v
    tensors[pre + "logits"] = logits
    if T > 1:
        ce = next_token_ce(logits, ids)
        assert abs(ce.item() - out.loss.item()) < 1e-5, (ce.item(), out.loss.item())
        tensors[pre + "ce"] = ce.reshape(1)
    return out, acts, logits


def hub_style_gemma2_config(path):
    """Rewrite config.json the way Hub gemma-2 files look (transformers 4.42-4.4x era):
    top-level rope_theta, no rope_parameters/layer_types, torch_dtype instead of dtype."""
    p = os.path.join(path, "config.json")
    with open(p) as f:
        c = json.load(f)
    rp = c.pop("rope_parameters")
    assert rp["rope_type"] == "default"
    c["rope_theta"] = rp["rope_theta"]
    lt = c.pop("layer_types")
    assert lt == ["sliding_attention" if (i + 1) % 2 else "full_attention"
                  for i in range(c["num_hidden_layers"])]
    if "dtype" in c:
        c["torch_dtype"] = c.pop("dtype")
    c.pop("use_bidirectional_attention", None)
    c["cache_implementation"] = "hybrid"
    c["hidden_act"] = c["hidden_activation"]
    c["transformers_version"] = "4.42.4"
    with open(p, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
        f.write("\n")


def save_golden(tensors, fn, meta):
    """safetensors file with a canonical (sorted) header so reruns are byte-identical
    (safetensors' own writer emits __metadata__ in hash order)."""
    import struct
    from safetensors.torch import save
    blob = save({k: v.contiguous() for k, v in tensors.items()}, metadata=meta)
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    hb = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(fn, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + blob[8 + n:])


def make_readable(path):
    """safetensors writes 0600 files; make the fixtures world-readable like the rest of the tree."""
    for fn in os.listdir(path):
        os.chmod(os.path.join(path, fn), 0o644)


def load_eager(cls, path):
    m = cls.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    assert m.config._attn_implementation == "eager", m.config._attn_implementation
    tc = getattr(m.config, "text_config", None)
    if tc is not None:
        assert tc._attn_implementation == "eager", tc._attn_implementation
    for p in m.parameters():
        assert p.dtype == torch.float32
    return m


def gen_gemma2(spec, outdir):
    import transformers.models.gemma2.modeling_gemma2 as mg2

    name = spec["name"]
    path = os.path.join(outdir, name)
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    torch.manual_seed(spec["seed"])
    gen = torch.Generator().manual_seed(spec["seed"])

    cfg = gemma2_config(spec["cfg"])
    model = Gemma2ForCausalLM(cfg)
    init_gemma2_weights(model, gen, spec["scales"])
    model = model.to(spec["store_dtype"])
    kw = {}
    if spec["shard"]:
        kw["max_shard_size"] = spec["shard"]
    model.save_pretrained(path, **kw)
    if spec["hub_style_config"]:
        hub_style_gemma2_config(path)
    files = sorted(os.listdir(path))
    if spec["shard"]:
        assert "model.safetensors.index.json" in files, files
    else:
        assert "model.safetensors" in files, files
    del model

    model = load_eager(Gemma2ForCausalLM, path)
    c = model.config
    assert c.sliding_window == spec["cfg"]["sliding_window"]
    assert c.layer_types == ["sliding_attention" if (i + 1) % 2 else "full_attention"
                             for i in range(c.num_hidden_layers)]
    stats = AttnStats()
    orig_eager = mg2.eager_attention_forward
    mg2.eager_attention_forward = stats.wrap(orig_eager)  # diagnostic wrapper, same math
    hooks = DecoderHooks(model.model)
    tensors = {}
    summary = []
    try:
        for k, (T, bos) in enumerate(spec["prompts"]):
            ids = torch.randint(3, c.vocab_size, (T,), generator=gen)
            if bos:
                ids[0] = c.bos_token_id
            out, acts, logits = text_prompt(model, hooks, c, ids, f"{name} p{k}", tensors, f"p{k}.")
            # logits = softcap(ln_final.hook_out @ E^T) recomputed as a sanity check
            ref = acts["ln_final.hook_out"] @ model.model.embed_tokens.weight.float().T
            if c.final_logit_softcapping:
                ref = torch.tanh(ref / c.final_logit_softcapping) * c.final_logit_softcapping
            assert torch.allclose(ref, logits, rtol=1e-5, atol=1e-5)
            summary.append(dict(T=T, bos=bos, ce=(float(tensors[f"p{k}.ce"]) if T > 1 else None)))
    finally:
        mg2.eager_attention_forward = orig_eager
        hooks.remove()

    if c.attn_logit_softcapping:
        # the soft-cap must be doing real work in these fixtures
        assert stats.max_ratio > 0.5, f"{name}: attn soft-cap inactive ({stats.max_ratio})"
    lmax = max(float(tensors[f"p{k}.logits"].abs().max()) for k in range(len(spec["prompts"])))
    meta = dict(versions())
    meta.update({
        "generator": GENERATOR,
        "model_class": "Gemma2ForCausalLM",
        "attn_implementation": "eager",
        "math_dtype": "float32",
        "stored_dtype": str(spec["store_dtype"]).replace("torch.", ""),
        "n_prompts": str(len(spec["prompts"])),
        "n_layers": str(c.num_hidden_layers),
        "positions": "0-based: pos[i] = i",
        "ce": "p{k}.ce = mean_i<T-1 -log_softmax(logits[i])[ids[i+1]]; absent for T=1",
        "hook_conventions": "TransformerLens names, spec models.md section 2; "
                            "ln_final.hook_normalized has no (1+w) gain; ln_final.hook_out = last_hidden_state",
        "seed": str(spec["seed"]),
        "init_scales": json.dumps(spec["scales"]),
        "max_abs_attn_score_pre_softcap": f"{stats.max_abs:.4f}",
        "max_attn_score_over_cap": f"{stats.max_ratio:.4f}",
        "max_abs_logit": f"{lmax:.4f}",
        "prompts": json.dumps(summary),
    })
    save_golden(tensors, os.path.join(path, "golden.safetensors"), meta)
    make_readable(path)
    return dict(name=name, files=sorted(os.listdir(path)), meta=meta,
                config={k: spec["cfg"][k] for k in spec["cfg"]})


def load_checkpoint_np(path):
    """All tensors of a checkpoint folder as float32 numpy (independent of transformers)."""
    from safetensors import safe_open
    idx = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    w = {}
    for fn in files:
        with safe_open(os.path.join(path, fn), "pt") as f:
            for k in f.keys():
                w[k] = f.get_tensor(k).float().numpy()
    return w


def np_gemma2_forward(w, c, ids=None, embeds=None, pos_offset=0, prefix="model.", bidir_prefix=0):
    """Spec models.md section 1.3 written out in numpy float32 (cross-check of the goldens)."""
    f32 = np.float32
    D, H, KV, hd = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    eps = f32(c["rms_norm_eps"])
    theta = c.get("rope_theta") or c["rope_parameters"]["rope_theta"]
    scale = f32(c["query_pre_attn_scalar"] ** -0.5)
    cap, fcap, win = c["attn_logit_softcapping"], c["final_logit_softcapping"], c["sliding_window"]

    def rms(x, g):
        y = x * (1.0 / np.sqrt((x * x).mean(-1, keepdims=True) + eps))
        return (y * (f32(1) + g)).astype(f32) if g is not None else y.astype(f32)

    def gelu(x):
        return (0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))).astype(f32)

    E = w[prefix + "embed_tokens.weight"]
    h = (E[ids] if embeds is None else embeds) * f32(math.sqrt(D))
    T = h.shape[0]
    pos = np.arange(T, dtype=f32) + f32(pos_offset)
    inv = (1.0 / (f32(theta) ** (np.arange(0, hd, 2, dtype=f32) / f32(hd)))).astype(f32)
    ang = (pos[:, None] * inv[None, :]).astype(f32)
    cos = np.cos(np.concatenate([ang, ang], 1)).astype(f32)
    sin = np.sin(np.concatenate([ang, ang], 1)).astype(f32)

    def rope(x):  # [n, T, hd]
        rot = np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], -1)
        return x * cos + rot * sin

    acts = {}
    i_idx, j_idx = np.arange(T)[:, None], np.arange(T)[None, :]
    for L in range(c["num_hidden_layers"]):
        p = f"{prefix}layers.{L}."
        acts[f"blocks.{L}.hook_resid_pre"] = h
        x = rms(h, w[p + "input_layernorm.weight"])
        q = rope((x @ w[p + "self_attn.q_proj.weight"].T).reshape(T, H, hd).transpose(1, 0, 2))
        k = rope((x @ w[p + "self_attn.k_proj.weight"].T).reshape(T, KV, hd).transpose(1, 0, 2))
        v = (x @ w[p + "self_attn.v_proj.weight"].T).reshape(T, KV, hd).transpose(1, 0, 2)
        allowed = j_idx <= i_idx
        if L % 2 == 0:
            allowed = allowed & (i_idx - j_idx < win)
        if bidir_prefix:
            allowed = allowed | ((i_idx < bidir_prefix) & (j_idx < bidir_prefix))
        z = np.zeros((T, H, hd), f32)
        for hh in range(H):
            kv = hh // (H // KV)
            s = (q[hh] @ k[kv].T) * scale
            if cap:
                s = np.tanh(s / f32(cap)) * f32(cap)
            s = np.where(allowed, s, -np.inf)
            s = np.exp(s - s.max(-1, keepdims=True))
            z[:, hh] = (s / s.sum(-1, keepdims=True)) @ v[kv]
        z = z.reshape(T, H * hd)
        acts[f"blocks.{L}.attn.hook_z"] = z
        a = rms(z @ w[p + "self_attn.o_proj.weight"].T, w[p + "post_attention_layernorm.weight"])
        acts[f"blocks.{L}.hook_attn_out"] = a
        h = h + a
        acts[f"blocks.{L}.hook_resid_mid"] = h
        m = rms(h, w[p + "pre_feedforward_layernorm.weight"])
        f = (gelu(m @ w[p + "mlp.gate_proj.weight"].T) * (m @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
        f = rms(f, w[p + "post_feedforward_layernorm.weight"])
        acts[f"blocks.{L}.hook_mlp_out"] = f
        h = h + f
        acts[f"blocks.{L}.hook_resid_post"] = h
    acts["ln_final.hook_normalized"] = rms(h, None)
    hN = rms(h, w[prefix + "norm.weight"])
    acts["ln_final.hook_out"] = hN
    logits = hN @ E.T
    if fcap:
        logits = np.tanh(logits / f32(fcap)) * f32(fcap)
    acts["logits"] = logits
    return acts


def rel_err(ref, got):
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    return float(np.abs(ref - got).max() / max(np.abs(ref).max(), 1e-30))


def verify_gemma2_numpy(path, tol=2e-4):
    """Independent numpy forward (spec formulas) vs the stored goldens; returns max rel error."""
    from safetensors.numpy import load_file
    with open(os.path.join(path, "config.json")) as f:
        c = json.load(f)
    w = load_checkpoint_np(path)
    g = load_file(os.path.join(path, "golden.safetensors"))
    worst = 0.0
    k = 0
    while f"p{k}.ids" in g:
        acts = np_gemma2_forward(w, c, ids=g[f"p{k}.ids"].astype(np.int64))
        for name, v in acts.items():
            e = rel_err(g[f"p{k}.{name}"], v)
            assert e < tol, f"{path} p{k}.{name}: numpy vs golden rel err {e}"
            worst = max(worst, e)
        k += 1
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/models")
    ap.add_argument("--only", choices=["gemma2", "paligemma"], default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    if args.only in (None, "gemma2"):
        for spec in GEMMA2_SPECS:
            r = gen_gemma2(spec, args.out)
            r["meta"]["numpy_check"] = verify_gemma2_numpy(os.path.join(args.out, spec["name"]))
            print(f"[gemma2] {r['name']}: files={r['files']} "
                  f"attn score/cap={r['meta']['max_attn_score_over_cap']} "
                  f"max|logit|={r['meta']['max_abs_logit']} numpy-vs-golden max rel={r['meta']['numpy_check']:.2e} prompts={r['meta']['prompts']}")
    if args.only in (None, "paligemma"):
        gen_all_paligemma(args.out)
    return 0


# --------------------------------------------------------------------------------------
# PaliGemma-2
# --------------------------------------------------------------------------------------
# the shared data folder (RS_SHARED_DIR, default ../shared beside the repository)
DATA = os.path.join(os.environ.get("RS_SHARED_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared"), "data")
NEWLINE_ID = 108  # "\n" in the real Gemma vocab; tiny models have no tokenizer

PALIGEMMA_SPECS = [
    dict(
        name="paligemma-tiny-f32",
        seed=2001,
        store_dtype=torch.float32,
        shard=None,
        layout="transformers5",  # as written by save_pretrained of transformers 5.x
        image_size=28,  # 2x2 = 4 patches
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
        image_token_index=256,
        text=dict(
            vocab_size=320, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=32, query_pre_attn_scalar=24,
            attn_logit_softcapping=5.0, final_logit_softcapping=10.0,
            sliding_window=8, rope_theta=10000.0, rms_norm_eps=1e-6,
        ),
        scales=dict(embed=0.35, qk=1.0, vo=1.0, mlp=1.0, norm=0.3),
        # (image path, number of prompt ids, number of suffix ids incl. eos; 0 = prefix only)
        runs=[("images/skimage/chelsea.png", 3, 0),
              ("coco/mini/val2017/000000000139.jpg", 5, 4),
              ("images/skimage/coffee.png", 2, 0)],
        text_only=[11],
    ),
    dict(
        name="paligemma-tiny-bf16",
        seed=2002,
        store_dtype=torch.bfloat16,
        shard="40KB",
        layout="hub",  # Hub / convert_paligemma2_weights_to_hf.py names
        image_size=42,  # 3x3 = 9 patches
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
        image_token_index=256,
        text=dict(
            vocab_size=320, hidden_size=48, intermediate_size=96, num_hidden_layers=4,
            num_attention_heads=2, num_key_value_heads=1, head_dim=24, query_pre_attn_scalar=24,
            attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
            sliding_window=8, rope_theta=10000.0, rms_norm_eps=1e-6,
        ),
        scales=dict(embed=0.8, qk=2.6, vo=1.0, mlp=1.0, norm=0.3),
        runs=[("coco/mini/val2017/000000000802.jpg", 4, 0),
              ("images/skimage/chelsea.png", 3, 5)],
        text_only=[9],
    ),
    dict(
        name="paligemma-tiny-model-prefix",
        seed=2003,
        store_dtype=torch.float32,
        shard=None,
        layout="transformers4.5x",  # model.language_model.*, model.vision_tower.vision_model.*
        image_size=56,  # 4x4 = 16 patches
        vision=dict(hidden_size=24, intermediate_size=48, num_hidden_layers=3, num_attention_heads=3),
        image_token_index=260,
        text=dict(
            vocab_size=288, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16,
            attn_logit_softcapping=20.0, final_logit_softcapping=30.0,
            sliding_window=32, rope_theta=10000.0, rms_norm_eps=1e-6,
        ),
        scales=dict(embed=0.6, qk=2.2, vo=1.0, mlp=1.0, norm=0.3),
        runs=[("coco/val2017_extra/000000431848.jpg", 3, 3),  # grayscale JPEG -> RGB
              ("images/skimage/coffee.png", 4, 0)],
        text_only=[5],
    ),
]


def rename_paligemma_keys(path, layout):
    """Rewrite tensor names of a saved PaliGemma checkpoint into another historical layout.

    transformers 5.x save_pretrained writes: vision_tower.{embeddings,encoder,post_layernorm}.*,
    multi_modal_projector.linear.*, language_model.model.*.
    "hub": vision_tower.vision_model.*, multi_modal_projector.*, language_model.model.* (convert script).
    "transformers4.5x": model.vision_tower.vision_model.*, model.multi_modal_projector.*,
    model.language_model.* (in-memory names of transformers 4.52+).
    """
    from safetensors import safe_open

    def new_name(k):
        if k.startswith("vision_tower."):
            k = "vision_tower.vision_model." + k[len("vision_tower."):]
        if layout == "transformers4.5x":
            if k.startswith("language_model.model."):
                k = "model.language_model." + k[len("language_model.model."):]
            elif k.startswith("language_model."):
                k = k[len("language_model."):]  # lm_head
            else:
                k = "model." + k
        return k

    idx = os.path.join(path, "model.safetensors.index.json")
    files = (sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx)
             else ["model.safetensors"])
    wmap = {}
    for fn in files:
        fp = os.path.join(path, fn)
        with safe_open(fp, "pt") as f:
            meta = f.metadata()
            t = {new_name(k): f.get_tensor(k) for k in f.keys()}
        save_file(t, fp, metadata=meta)
        for k in t:
            wmap[k] = fn
    if os.path.exists(idx):
        with open(idx) as f:
            ix = json.load(f)
        ix["weight_map"] = dict(sorted(wmap.items()))
        with open(idx, "w") as f:
            json.dump(ix, f, indent=2)
            f.write("\n")
    return sorted(wmap)


def hub_style_paligemma_config(path):
    """config.json in the transformers 4.4x style of Hub PaliGemma-2 files: text_config with
    top-level rope_theta, no rope_parameters / layer_types / use_bidirectional_attention,
    torch_dtype instead of dtype."""
    p = os.path.join(path, "config.json")
    with open(p) as f:
        c = json.load(f)
    tc = c["text_config"]
    rp = tc.pop("rope_parameters")
    assert rp["rope_type"] == "default"
    tc["rope_theta"] = rp["rope_theta"]
    lt = tc.pop("layer_types")
    assert lt == ["sliding_attention" if (i + 1) % 2 else "full_attention"
                  for i in range(tc["num_hidden_layers"])]
    tc.pop("use_bidirectional_attention", None)
    for d in (c, tc, c["vision_config"]):
        if "dtype" in d:
            d["torch_dtype"] = d.pop("dtype")
    c["transformers_version"] = "4.47.0"
    with open(p, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
        f.write("\n")


def init_vision_weights(model, gen):
    """SigLIP + projector random weights: LayerNorm gains N(1,0.3), biases N(0,0.1)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not (name.startswith("model.vision_tower") or name.startswith("model.multi_modal_projector")):
                continue
            if "layer_norm" in name or "layernorm" in name:
                v = (1.0 if name.endswith("weight") else 0.0) + 0.3 * torch.randn(p.shape, generator=gen)
            elif name.endswith("bias"):
                v = 0.1 * torch.randn(p.shape, generator=gen)
            elif "position_embedding" in name:
                v = 0.5 * torch.randn(p.shape, generator=gen)
            elif "patch_embedding" in name:
                v = torch.randn(p.shape, generator=gen) / math.sqrt(p[0].numel())
            elif "q_proj" in name or "k_proj" in name:
                v = 1.5 * torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1])
            else:
                v = torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1])
            p.copy_(v)


class VisionHooks:
    def __init__(self, vt):
        self.acts = {}
        self.handles = []
        self._post(vt.embeddings, "vision.hook_embed")
        for L, layer in enumerate(vt.encoder.layers):
            self._post(layer.self_attn.out_proj, f"vision.blocks.{L}.hook_attn_out")
            self._post(layer.mlp.fc2, f"vision.blocks.{L}.hook_mlp_out")
            self._post(layer, f"vision.blocks.{L}.hook_resid_post")
        self._post(vt.post_layernorm, "vision.ln_post")
        self.n_layers = len(vt.encoder.layers)

    def _post(self, mod, name):
        def hook(module, args, out):
            t = out[0] if isinstance(out, tuple) else out
            assert t.shape[0] == 1
            self.acts[name] = t[0].detach().float().clone()
        self.handles.append(mod.register_forward_hook(hook))

    def finish(self):
        a = self.acts
        out = {"vision.hook_embed": a["vision.hook_embed"]}
        prev = a["vision.hook_embed"]
        for L in range(self.n_layers):
            out[f"vision.blocks.{L}.hook_resid_pre"] = prev
            out[f"vision.blocks.{L}.hook_attn_out"] = a[f"vision.blocks.{L}.hook_attn_out"]
            mid = prev + a[f"vision.blocks.{L}.hook_attn_out"]
            out[f"vision.blocks.{L}.hook_resid_mid"] = mid
            out[f"vision.blocks.{L}.hook_mlp_out"] = a[f"vision.blocks.{L}.hook_mlp_out"]
            post = a[f"vision.blocks.{L}.hook_resid_post"]
            assert torch.equal(mid + a[f"vision.blocks.{L}.hook_mlp_out"], post)
            out[f"vision.blocks.{L}.hook_resid_post"] = post
            prev = post
        out["vision.ln_post"] = a["vision.ln_post"]
        return out

    def remove(self):
        for h in self.handles:
            h.remove()


def write_preprocessor_config(path, S):
    n = (S // 14) ** 2
    cfg = {
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "SiglipImageProcessor",
        "image_seq_length": n,
        "image_std": [0.5, 0.5, 0.5],
        "processor_class": "PaliGemmaProcessor",
        "resample": 3,
        "rescale_factor": 1.0 / 255.0,
        "size": {"height": S, "width": S},
    }
    with open(os.path.join(path, "preprocessor_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def gen_paligemma(spec, outdir):
    from PIL import Image
    from transformers import (AutoImageProcessor, PaliGemmaConfig, PaliGemmaForConditionalGeneration,
                              SiglipVisionConfig)

    name = spec["name"]
    path = os.path.join(outdir, name)
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    torch.manual_seed(spec["seed"])
    gen = torch.Generator().manual_seed(spec["seed"])
    S = spec["image_size"]
    n_img = (S // 14) ** 2
    tcfg = gemma2_config(spec["text"])
    vcfg = SiglipVisionConfig(image_size=S, patch_size=14, num_channels=3, layer_norm_eps=1e-6,
                              hidden_act="gelu_pytorch_tanh", vision_use_head=False, **spec["vision"])
    D = spec["text"]["hidden_size"]
    V = spec["text"]["vocab_size"]
    itok = spec["image_token_index"]
    assert 3 <= itok < V and itok != NEWLINE_ID
    cfg = PaliGemmaConfig(text_config=tcfg, vision_config=vcfg, image_token_index=itok,
                          projection_dim=D, hidden_size=D, vocab_size=V)
    model = PaliGemmaForConditionalGeneration(cfg)
    init_gemma2_weights(model, gen, spec["scales"], prefix="model.language_model.")
    init_vision_weights(model, gen)
    ref_state = {k: v.to(spec["store_dtype"]).float().clone() for k, v in model.state_dict().items()}
    model = model.to(spec["store_dtype"])
    kw = {"max_shard_size": spec["shard"]} if spec["shard"] else {}
    model.save_pretrained(path, **kw)
    del model
    if spec["layout"] != "transformers5":
        rename_paligemma_keys(path, spec["layout"])
    if spec["layout"] == "hub":
        hub_style_paligemma_config(path)
    key_names = sorted(load_checkpoint_np(path))
    write_preprocessor_config(path, S)

    m, info = PaliGemmaForConditionalGeneration.from_pretrained(
        path, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    m.eval()
    assert m.config._attn_implementation == "eager"
    assert m.config.text_config._attn_implementation == "eager"
    for k, v in m.state_dict().items():
        assert torch.equal(v, ref_state[k]), f"{name}: {k} differs after reload ({spec['layout']})"
    c = m.config.text_config
    proc = AutoImageProcessor.from_pretrained(path, backend="pil")  # = use_fast=False (slow PIL path)
    assert type(proc).__name__ == "SiglipImageProcessorPil", type(proc).__name__

    dec = m.model.language_model
    hooks = DecoderHooks(dec)
    vhooks = VisionHooks(m.model.vision_tower)
    proj = {}
    hp = m.model.multi_modal_projector.register_forward_hook(
        lambda mod, a, o: proj.__setitem__("out", o[0].detach().float().clone()))
    tensors = {}
    runs_meta = []
    try:
        for k, (rel, n_prompt, n_suffix) in enumerate(spec["runs"]):
            img_path = os.path.join(DATA, rel)
            img = Image.open(img_path)
            orig_mode, orig_size = img.mode, img.size
            rgb = img.convert("RGB")
            u8 = np.array(rgb.resize((S, S), Image.BICUBIC))  # HWC uint8 (PIL 8-bit bicubic)
            pv = proc(images=img, return_tensors="pt")["pixel_values"]
            assert pv.shape == (1, 3, S, S) and pv.dtype == torch.float32
            # spec section 5 steps 3-5 from the uint8 pixels must give the processor output exactly
            r = (u8.astype(np.float64) * (1.0 / 255.0)).astype(np.float32)
            mine = ((r - np.float32(0.5)) / np.float32(0.5)).transpose(2, 0, 1)
            assert np.array_equal(mine, pv[0].numpy()), f"{name}: pixel_values != spec formula"

            prompt = torch.randint(3, 256, (n_prompt,), generator=gen)
            prompt[prompt == NEWLINE_ID] = 5
            ids = [itok] * n_img + [c.bos_token_id] + prompt.tolist() + [NEWLINE_ID]
            P = len(ids)
            if n_suffix:
                suf = torch.randint(3, 256, (n_suffix - 1,), generator=gen).tolist() + [c.eos_token_id]
                ids = ids + suf
            ids = torch.tensor(ids)
            T = len(ids)
            tt = torch.tensor([0] * P + [1] * (T - P))
            labels = ids.clone()
            labels[:P] = -100
            hooks.reset()
            vhooks.acts = {}
            with torch.no_grad():
                out = m(input_ids=ids[None], pixel_values=pv, token_type_ids=tt[None],
                        labels=labels[None] if n_suffix else None,
                        output_hidden_states=True, use_cache=False)
            acts = hooks.finish(c.num_hidden_layers, c.rms_norm_eps)
            check_hidden_states(out.hidden_states, acts, c.num_hidden_layers, f"{name} p{k}")
            vacts = vhooks.finish()
            z = proj["out"]
            assert z.shape == (n_img, D)
            # transformers 5.x: projector output is placed into the residual unscaled
            assert torch.equal(acts["blocks.0.hook_resid_pre"][:n_img], z)
            logits = out.logits[0].float()
            pre = f"p{k}."
            tensors[pre + "ids"] = ids.to(torch.int32)
            tensors[pre + "token_type_ids"] = tt.to(torch.int32)
            tensors[pre + "prefix_len"] = torch.tensor([P], dtype=torch.int32)
            tensors[pre + "pixels_u8"] = torch.from_numpy(u8.copy())
            tensors[pre + "pixel_values"] = pv[0].clone()
            for hk, v in vacts.items():
                tensors[pre + hk] = v
            tensors[pre + "projector.hook_out"] = z
            for hk, v in acts.items():
                tensors[pre + hk] = v
            tensors[pre + "logits"] = logits
            ce = None
            if n_suffix:
                lp = torch.log_softmax(logits[P - 1:T - 1], dim=-1)
                ce_t = -lp.gather(1, ids[P:, None]).mean()
                assert abs(ce_t.item() - out.loss.item()) < 1e-5, (ce_t.item(), out.loss.item())
                tensors[pre + "ce"] = ce_t.reshape(1)
                ce = ce_t.item()
            runs_meta.append(dict(image=rel, image_mode=orig_mode, image_size_wh=list(orig_size),
                                  n_image_tokens=n_img, prefix_len=P, T=T, suffix_len=T - P, ce_suffix=ce))
        for k, n in enumerate(spec["text_only"]):
            ids = torch.randint(3, 256, (n,), generator=gen)
            ids[0] = c.bos_token_id
            text_prompt(m, hooks, c, ids, f"{name} t{k}", tensors, f"t{k}.")
    finally:
        hooks.remove()
        vhooks.remove()
        hp.remove()

    meta = dict(versions())
    meta.update({
        "generator": GENERATOR,
        "model_class": "PaliGemmaForConditionalGeneration",
        "attn_implementation": "eager",
        "math_dtype": "float32",
        "stored_dtype": str(spec["store_dtype"]).replace("torch.", ""),
        "tensor_layout": spec["layout"],
        "tensor_names_sample": json.dumps([n for n in key_names if ".0." in n or "layers" not in n][:12]),
        "n_prompts": str(len(spec["runs"])),
        "n_text_only": str(len(spec["text_only"])),
        "n_layers": str(c.num_hidden_layers),
        "n_vision_layers": str(spec["vision"]["num_hidden_layers"]),
        "image_size": str(S),
        "num_image_tokens": str(n_img),
        "image_token_index": str(itok),
        "bos_id": str(c.bos_token_id), "eos_id": str(c.eos_token_id), "newline_id": str(NEWLINE_ID),
        "ids_layout": "p{k}.ids = [image_token]*N + [bos] + prompt ids + [newline] (+ suffix ids ending in eos)",
        "positions": "1-based: position_ids = arange(T) + 1 (image and text runs and text-only runs)",
        "image_processor": "SiglipImageProcessorPil (backend=pil, i.e. use_fast=False), do_convert_rgb, PIL bicubic, rescale 1/255 "
                           "(float64 then float32), (x-0.5)/0.5; pixels_u8 = PIL RGB resize((S,S), BICUBIC) HWC",
        "projector_convention": "p{k}.projector.hook_out = multi_modal_projector output (x W^T + b) with NO 1/sqrt(D). "
                                "transformers 5.x feeds it to the decoder unscaled: resid_pre[0][:N] == projector.hook_out "
                                "exactly, while text rows are E[id]*float32(sqrt(D)) (old HF: (z/sqrt(D))*sqrt(D), same up to 1ulp)",
        "mask_semantics": "p{k}: called with token_type_ids (0 = prefix image+bos+prompt+newline, 1 = suffix) as the "
                          "transformers-5 processor returns them: allowed(i,j) = (i<P and j<P) OR causal(i,j) where causal "
                          "means j<=i and, on sliding layers (even index), i-j < sliding_window; prefix pairs are never "
                          "window-masked. t{k} (text-only, input_ids only, no token_type_ids): plain causal + sliding "
                          "window, 1-based positions, E[id]*sqrt(D) embeddings.",
        "final_logit_softcap": "applied (transformers 5.x PaliGemmaForConditionalGeneration applies "
                               "text_config.final_logit_softcapping)",
        "ce": "p{k}.ce (suffix runs only) = mean over suffix targets i in [P-1, T-2] of -log_softmax(logits[i])[ids[i+1]] "
              "(= HF loss with prefix labels -100); t{k}.ce = mean over all i<T-1",
        "runs": json.dumps(runs_meta),
        "seed": str(spec["seed"]),
    })
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    save_golden(tensors, os.path.join(path, "golden.safetensors"), meta)
    make_readable(path)
    return meta


def np_layernorm(x, g, b, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return ((x - mu) / np.sqrt(var + np.float32(eps)) * g + b).astype(np.float32)


def verify_paligemma_numpy(path, tol=2e-4):
    """Independent numpy SigLIP + projector + decoder (spec sections 3, 4) vs goldens."""
    from safetensors.numpy import load_file
    with open(os.path.join(path, "config.json")) as f:
        c = json.load(f)
    tc, vc = c["text_config"], c["vision_config"]
    w = load_checkpoint_np(path)
    # accept any of the three layouts
    norm = {}
    for k, v in w.items():
        k2 = k[len("model."):] if k.startswith("model.") else k
        k2 = k2.replace("vision_tower.vision_model.", "vision_tower.")
        k2 = k2.replace("language_model.model.", "language_model.")
        norm[k2] = v
    w = norm
    g = load_file(os.path.join(path, "golden.safetensors"))
    Dv, Hv = vc["hidden_size"], vc["num_attention_heads"]
    hdv = Dv // Hv
    worst = 0.0

    def chk(key, v):
        nonlocal worst
        e = rel_err(g[key], v)
        assert e < tol, f"{path} {key}: numpy vs golden rel err {e}"
        worst = max(worst, e)

    k = 0
    while f"p{k}.ids" in g:
        pre = f"p{k}."
        u8 = g[pre + "pixels_u8"]
        pv = (((u8.astype(np.float64) * (1.0 / 255.0)).astype(np.float32) - np.float32(0.5)) / np.float32(0.5))
        pv = pv.transpose(2, 0, 1)
        assert np.array_equal(pv, g[pre + "pixel_values"])
        S, P = pv.shape[1], 14
        G = S // P
        Wc = w["vision_tower.embeddings.patch_embedding.weight"].reshape(Dv, -1)
        patches = pv.reshape(3, G, P, G, P).transpose(1, 3, 0, 2, 4).reshape(G * G, -1)
        h = patches @ Wc.T + w["vision_tower.embeddings.patch_embedding.bias"]
        h = h + w["vision_tower.embeddings.position_embedding.weight"]
        chk(pre + "vision.hook_embed", h)
        for L in range(vc["num_hidden_layers"]):
            p = f"vision_tower.encoder.layers.{L}."
            x = np_layernorm(h, w[p + "layer_norm1.weight"], w[p + "layer_norm1.bias"], vc["layer_norm_eps"])
            q, kk, v = (x @ w[p + f"self_attn.{n}_proj.weight"].T + w[p + f"self_attn.{n}_proj.bias"] for n in "qkv")
            o = np.zeros_like(q)
            for hh in range(Hv):
                sl = slice(hh * hdv, (hh + 1) * hdv)
                s = (q[:, sl] @ kk[:, sl].T) * np.float32(hdv ** -0.5)
                s = np.exp(s - s.max(-1, keepdims=True))
                o[:, sl] = (s / s.sum(-1, keepdims=True)) @ v[:, sl]
            a = o @ w[p + "self_attn.out_proj.weight"].T + w[p + "self_attn.out_proj.bias"]
            chk(pre + f"vision.blocks.{L}.hook_attn_out", a)
            h = h + a
            x = np_layernorm(h, w[p + "layer_norm2.weight"], w[p + "layer_norm2.bias"], vc["layer_norm_eps"])
            f = x @ w[p + "mlp.fc1.weight"].T + w[p + "mlp.fc1.bias"]
            f = 0.5 * f * (1 + np.tanh(np.sqrt(2 / np.pi) * (f + 0.044715 * f ** 3)))
            f = f @ w[p + "mlp.fc2.weight"].T + w[p + "mlp.fc2.bias"]
            h = h + f
            chk(pre + f"vision.blocks.{L}.hook_resid_post", h)
        y = np_layernorm(h, w["vision_tower.post_layernorm.weight"], w["vision_tower.post_layernorm.bias"],
                         vc["layer_norm_eps"])
        chk(pre + "vision.ln_post", y)
        z = y @ w["multi_modal_projector.linear.weight"].T + w["multi_modal_projector.linear.bias"]
        chk(pre + "projector.hook_out", z)
        ids = g[pre + "ids"].astype(np.int64)
        D = tc["hidden_size"]
        E = w["language_model.embed_tokens.weight"]
        emb = E[ids].copy()
        img = ids == c["image_token_index"]
        emb[img] = z / np.float32(math.sqrt(D))  # old-HF convention; differs from new by <= 1 ulp
        acts = np_gemma2_forward(w, tc, ids=None, embeds=emb, pos_offset=1, prefix="language_model.",
                                 bidir_prefix=int(g[pre + "prefix_len"][0]))
        for name, v in acts.items():
            chk(pre + name, v)
        k += 1
    k = 0
    while f"t{k}.ids" in g:
        ids = g[f"t{k}.ids"].astype(np.int64)
        acts = np_gemma2_forward(w, tc, ids=ids, pos_offset=1, prefix="language_model.")
        for name, v in acts.items():
            chk(f"t{k}.{name}", v)
        k += 1
    return worst


def gen_all_paligemma(outdir):
    for spec in PALIGEMMA_SPECS:
        meta = gen_paligemma(spec, outdir)
        err = verify_paligemma_numpy(os.path.join(outdir, spec["name"]))
        print(f"[paligemma] {spec['name']}: layout={spec['layout']} S={spec['image_size']} "
              f"numpy-vs-golden max rel={err:.2e} runs={meta['runs']}")


if __name__ == "__main__":
    sys.exit(main())
