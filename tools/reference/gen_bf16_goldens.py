#!/usr/bin/env python3
"""Goldens for the bf16 compute path (--precision bf16): transformers run in bfloat16.

For each tiny Gemma-2 checkpoint below, the model is loaded with
from_pretrained(dtype=torch.bfloat16, attn_implementation="eager") (the F32 checkpoint's
weights are rounded to bf16 by that load, as a user's bf16 run would do) and run on the
prompts of its fp32 golden (tests/fixtures/models/<name>/golden.safetensors, same ids).
Every TransformerLens hook and the logits are recorded; they are bf16 values and are
stored as BF16 (exact). ln_final.hook_normalized is not a transformers tensor: it is
defined here as Gemma2RMSNorm without the gain, i.e. x.float() normalised in fp32, then
rounded to bf16 once. The fp32 run of the same prompts is the existing fp32 golden.

Also written: round.in / round.out, float32 values and torch's .to(bfloat16) of them
(round-to-nearest-even, ties, subnormals, overflow to Inf, Inf), for the rounding unit test;
gen.prompt / gen.bf16 / gen.fp32: 16 greedy tokens (model.generate, KV cache) after prompt p2 in bf16
and fp32, gen.logits the bf16 run's logits at each step; and (first model's file only) gelu.out, torch's bf16 tanh-GELU of all 65536 bf16 bit patterns.

PaliGemma (PALIGEMMA below): PaliGemmaForConditionalGeneration in bfloat16 (vision tower,
projector and decoder), eager, on the image runs of the fp32 golden (same pixel_values, ids and
token_type_ids): every vision hook, projector.hook_out, every decoder hook and the logits, as
BF16. The residual "mid" hooks are the layers' own bf16 adds (resid_pre + attn_out rounded).

Usage:
    /work/refenv/bin/python tools/reference/gen_bf16_goldens.py --out tests/fixtures/bf16
"""

import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_model_fixtures import DecoderHooks, VisionHooks, versions  # noqa: E402
from transformers import Gemma2ForCausalLM  # noqa: E402

GENERATOR = "tools/reference/gen_bf16_goldens.py"
MODELS = ["gemma2-tiny-bf16", "gemma2-tiny-f32"]
PALIGEMMA = ["paligemma-tiny-bf16", "paligemma-tiny-f32"]
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "models")


def save_sorted(tensors, fn, meta):
    """safetensors with a canonical header so reruns are byte-identical."""
    blob = save({k: v.contiguous() for k, v in tensors.items()}, metadata=meta)
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    hb = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(fn, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + blob[8 + n:])
    os.chmod(fn, 0o644)


def round_vectors():
    """float32 inputs and their bf16 rounding by torch (as float32)."""
    vals = [0.0, -0.0, 1.0, -1.0, 3.0, 1e-40, -1e-40, 1e-45, 3.3895313892515355e38, 3.4e38, -3.4e38,
            float("inf"), float("-inf"), 65504.0, 0.1, -0.1]
    bits = []
    # exact ties between two bf16 values: even below stays, odd below rounds up
    for base in (0x3F800000, 0x3F810000, 0x40490000, 0xC0490000, 0x00010000, 0x7F7E0000):
        bits += [base | 0x8000, base | 0x7FFF, base | 0x8001, base | 0x0001, base | 0xFFFF]
    x = torch.tensor(vals, dtype=torch.float32)
    xb = torch.tensor(np.array(bits, dtype=np.uint32).view(np.float32))
    g = torch.Generator().manual_seed(7)
    r = torch.randn(200, generator=g) * torch.exp(torch.randn(200, generator=g) * 8)
    x = torch.cat([x, xb, r])
    # element by element (the scalar conversion) and as one tensor (vectorised): both must agree
    one = torch.stack([x[i:i + 1].to(torch.bfloat16)[0] for i in range(len(x))])
    vec = x.to(torch.bfloat16)
    assert torch.equal(one.view(torch.int16), vec.view(torch.int16))
    return x, vec.float()


def run(name, out):
    path = os.path.join(FIXTURES, name)
    fp32 = load_file(os.path.join(path, "golden.safetensors"))
    model = Gemma2ForCausalLM.from_pretrained(path, dtype=torch.bfloat16, attn_implementation="eager")
    model.eval()
    assert model.config._attn_implementation == "eager"
    for p in model.parameters():
        assert p.dtype == torch.bfloat16
    c = model.config
    hooks = DecoderHooks(model.model)
    tensors = {}
    gaps = {}
    k = 0
    try:
        while f"p{k}.ids" in fp32:
            ids = fp32[f"p{k}.ids"].long()
            hooks.reset()
            with torch.no_grad():
                out_ = model(input_ids=ids[None], use_cache=False)
            a = hooks.acts
            tensors[f"p{k}.ids"] = ids.to(torch.int32)
            for L in range(c.num_hidden_layers):
                pre = a[f"blocks.{L}.hook_resid_pre"].to(torch.bfloat16)
                attn = a[f"blocks.{L}.hook_attn_out"].to(torch.bfloat16)
                mid = pre + attn  # the decoder layer's bf16 residual add
                post = a[f"blocks.{L}.hook_resid_post"].to(torch.bfloat16)
                assert torch.equal(mid + a[f"blocks.{L}.hook_mlp_out"].to(torch.bfloat16), post)
                for hk, v in (("hook_resid_pre", pre), ("attn.hook_z", a[f"blocks.{L}.attn.hook_z"]),
                              ("hook_attn_out", attn), ("hook_resid_mid", mid),
                              ("hook_mlp_out", a[f"blocks.{L}.hook_mlp_out"]), ("hook_resid_post", post)):
                    tensors[f"p{k}.blocks.{L}.{hk}"] = v.to(torch.bfloat16)
            x = a["ln_final.hook_in"]
            nrm = (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + c.rms_norm_eps)).to(torch.bfloat16)
            tensors[f"p{k}.ln_final.hook_normalized"] = nrm
            tensors[f"p{k}.ln_final.hook_out"] = a["ln_final.hook_out"].to(torch.bfloat16)
            assert out_.logits.dtype == torch.bfloat16
            tensors[f"p{k}.logits"] = out_.logits[0]
            for key, v in tensors.items():
                if key.startswith(f"p{k}.") and key != f"p{k}.ids":
                    ref = fp32[key].float()
                    g = (v.float() - ref).abs().max().item() / max(ref.abs().max().item(), 1e-30)
                    gaps[key] = g
            k += 1
    finally:
        hooks.remove()
    xin, xout = round_vectors()
    tensors["round.in"] = xin
    tensors["round.out"] = xout
    # greedy generation (KV cache) in bf16 and fp32 after prompt p2
    prompt = fp32["p2.ids"].long()[None]
    with torch.no_grad():
        ob = model.generate(prompt, max_new_tokens=16, do_sample=False, return_dict_in_generate=True,
                            output_logits=True)
        gb = ob.sequences[0, prompt.shape[1]:]
        lgs = torch.stack([lg[0] for lg in ob.logits])  # generate hands them out as float32 copies
        assert torch.equal(lgs.to(torch.bfloat16).float(), lgs.float())  # of bf16 values
        tensors["gen.logits"] = lgs.to(torch.bfloat16)
        m32 = Gemma2ForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()
        gf = m32.generate(prompt, max_new_tokens=16, do_sample=False)[0, prompt.shape[1]:]
    tensors["gen.prompt"] = prompt[0].to(torch.int32)
    tensors["gen.bf16"] = gb.to(torch.int32)
    tensors["gen.fp32"] = gf.to(torch.int32)
    print(name, "greedy bf16:", gb.tolist(), "fp32:", gf.tolist())
    if name == MODELS[0]:
        # torch's bf16 GELU (tanh approximation) of every bf16 bit pattern 0x0000 … 0xFFFF
        allb = torch.arange(65536, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
        tensors["gelu.out"] = torch.nn.functional.gelu(allb, approximate="tanh")
    meta = dict(versions())
    meta.update({
        "generator": GENERATOR,
        "model": name,
        "model_class": "Gemma2ForCausalLM",
        "attn_implementation": "eager",
        "math_dtype": "bfloat16",
        "n_prompts": str(k),
        "fp32_golden": f"tests/fixtures/models/{name}/golden.safetensors (same ids)",
        "max_rel_gap_bf16_vs_fp32": f"{max(gaps.values()):.5f}",
        "hook_conventions": "as the fp32 golden; ln_final.hook_normalized = bf16(fp32 RMS-normalised x), no gain",
    })
    save_sorted(tensors, os.path.join(out, f"{name}.safetensors"), meta)
    print(name, k, "prompts; max rel gap tf-bf16 vs tf-fp32 per hook:", f"{max(gaps.values()):.4f}")


def run_paligemma(name, out):
    from transformers import PaliGemmaForConditionalGeneration
    bf = torch.bfloat16
    path = os.path.join(FIXTURES, name)
    fp32 = load_file(os.path.join(path, "golden.safetensors"))
    m = PaliGemmaForConditionalGeneration.from_pretrained(path, dtype=bf, attn_implementation="eager").eval()
    for p in m.parameters():
        assert p.dtype == bf
    c = m.config.text_config
    nv = m.config.vision_config.num_hidden_layers
    dec = DecoderHooks(m.model.language_model)
    vh = VisionHooks(m.model.vision_tower)
    proj = {}
    hp = m.model.multi_modal_projector.register_forward_hook(
        lambda mod, a, o: proj.__setitem__("out", o.detach().clone()))
    tensors, gaps = {}, {}
    k = 0
    try:
        while f"p{k}.ids" in fp32:
            pre = f"p{k}."
            ids = fp32[pre + "ids"].long()
            tt = fp32[pre + "token_type_ids"].long()
            pv = fp32[pre + "pixel_values"]
            dec.reset()
            vh.acts = {}
            with torch.no_grad():
                o = m(input_ids=ids[None], pixel_values=pv[None].to(bf), token_type_ids=tt[None], use_cache=False)
            tensors[pre + "ids"] = ids.to(torch.int32)
            tensors[pre + "token_type_ids"] = tt.to(torch.int32)
            tensors[pre + "prefix_len"] = fp32[pre + "prefix_len"]
            tensors[pre + "pixel_values"] = pv
            va = vh.acts
            prev = va["vision.hook_embed"].to(bf)
            tensors[pre + "vision.hook_embed"] = prev
            for L in range(nv):
                attn = va[f"vision.blocks.{L}.hook_attn_out"].to(bf)
                mlp = va[f"vision.blocks.{L}.hook_mlp_out"].to(bf)
                post = va[f"vision.blocks.{L}.hook_resid_post"].to(bf)
                mid = prev + attn  # the encoder layer's bf16 residual add
                assert torch.equal(mid + mlp, post)
                for hk, v in (("hook_resid_pre", prev), ("hook_attn_out", attn), ("hook_resid_mid", mid),
                              ("hook_mlp_out", mlp), ("hook_resid_post", post)):
                    tensors[f"{pre}vision.blocks.{L}.{hk}"] = v
                prev = post
            tensors[pre + "vision.ln_post"] = va["vision.ln_post"].to(bf)
            assert proj["out"].dtype == bf
            tensors[pre + "projector.hook_out"] = proj["out"][0]
            a = dec.acts
            for L in range(c.num_hidden_layers):
                rp = a[f"blocks.{L}.hook_resid_pre"].to(bf)
                at = a[f"blocks.{L}.hook_attn_out"].to(bf)
                mid = rp + at
                post = a[f"blocks.{L}.hook_resid_post"].to(bf)
                assert torch.equal(mid + a[f"blocks.{L}.hook_mlp_out"].to(bf), post)
                for hk, v in (("hook_resid_pre", rp), ("attn.hook_z", a[f"blocks.{L}.attn.hook_z"]),
                              ("hook_attn_out", at), ("hook_resid_mid", mid),
                              ("hook_mlp_out", a[f"blocks.{L}.hook_mlp_out"]), ("hook_resid_post", post)):
                    tensors[f"{pre}blocks.{L}.{hk}"] = v.to(bf)
            x = a["ln_final.hook_in"]
            tensors[pre + "ln_final.hook_normalized"] = (
                x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + c.rms_norm_eps)).to(bf)
            tensors[pre + "ln_final.hook_out"] = a["ln_final.hook_out"].to(bf)
            assert o.logits.dtype == bf
            tensors[pre + "logits"] = o.logits[0]
            for key, v in tensors.items():
                if key.startswith(pre) and v.dtype == bf:
                    ref = fp32[key].float()
                    gaps[key] = (v.float() - ref).abs().max().item() / max(ref.abs().max().item(), 1e-30)
            k += 1
    finally:
        dec.remove()
        vh.remove()
        hp.remove()
    meta = dict(versions())
    meta.update({
        "generator": GENERATOR,
        "model": name,
        "model_class": "PaliGemmaForConditionalGeneration",
        "attn_implementation": "eager",
        "math_dtype": "bfloat16 (vision tower, projector and decoder)",
        "n_prompts": str(k),
        "fp32_golden": f"tests/fixtures/models/{name}/golden.safetensors (same pixel_values, ids, token_type_ids)",
        "max_rel_gap_bf16_vs_fp32": f"{max(gaps.values()):.5f}",
        "hook_conventions": "as the fp32 golden; resid_mid hooks = bf16(resid_pre + attn_out); "
                            "ln_final.hook_normalized = bf16(fp32 RMS-normalised x), no gain",
    })
    save_sorted(tensors, os.path.join(out, f"{name}.safetensors"), meta)
    print(name, k, "image runs; max rel gap tf-bf16 vs tf-fp32 per hook:", f"{max(gaps.values()):.4f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    os.makedirs(args.out, exist_ok=True)
    for name in MODELS:
        run(name, args.out)
    for name in PALIGEMMA:
        run_paligemma(name, args.out)


if __name__ == "__main__":
    main()
