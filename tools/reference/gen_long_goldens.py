#!/usr/bin/env python3
"""Goldens for prompts long enough to take the fused fp32 attention kernel (blocks of 32 queries,
src/tensor/attn_fused.c) and the causal query blocks (128 queries): transformers (eager, fp32)
on the committed tiny Gemma-2 (tests/fixtures/models/gemma2-tiny-f32: 4 layers, sliding window
8, attention soft-cap 5, GQA 4/2, head dim 32). The model is read as committed; nothing else
is written. The short prompts of golden.safetensors (gen_model_fixtures.py, at most 21 tokens)
never reach the kernel.

Writes tests/fixtures/models/gemma2-tiny-f32/golden_long.safetensors with the keys of
golden.safetensors: p{k}.ids (int32 [T]), p{k}.{hook} for every TransformerLens hook of
DecoderHooks, p{k}.logits, p{k}.ce; metadata n_prompts and the prompts' lengths. Prompts:
T = 33 (one full block and one query), 77, 150 (past a causal query block), random ids
(seed 14), BOS first.

Usage: /work/refenv/bin/python tools/reference/gen_long_goldens.py
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_model_fixtures import DecoderHooks, load_eager, save_golden, text_prompt, versions  # noqa: E402
from transformers import Gemma2ForCausalLM  # noqa: E402

LENGTHS = [33, 77, 150]
SEED = 14


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    path = os.path.join(root, "tests", "fixtures", "models", "gemma2-tiny-f32")
    model = load_eager(Gemma2ForCausalLM, path)
    c = model.config
    gen = torch.Generator().manual_seed(SEED)
    hooks = DecoderHooks(model.model)
    tensors = {}
    try:
        for k, T in enumerate(LENGTHS):
            ids = torch.randint(3, c.vocab_size, (T,), generator=gen)
            ids[0] = c.bos_token_id
            text_prompt(model, hooks, c, ids, f"long p{k}", tensors, f"p{k}.")
    finally:
        hooks.remove()
    meta = dict(versions())
    meta.update({
        "generator": "tools/reference/gen_long_goldens.py",
        "model_class": "Gemma2ForCausalLM",
        "attn_implementation": "eager",
        "math_dtype": "float32",
        "n_prompts": str(len(LENGTHS)),
        "prompts": json.dumps([dict(T=T, bos=True) for T in LENGTHS]),
        "seed": str(SEED),
    })
    out = os.path.join(path, "golden_long.safetensors")
    save_golden(tensors, out, meta)
    print("wrote", out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
