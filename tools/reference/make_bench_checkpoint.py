#!/usr/bin/env python3
"""Write a Gemma-2-2B-shaped (or PaliGemma-2-3B-shaped) checkpoint with random bf16
weights in the Hugging Face layout (config.json + sharded safetensors + index), for
benchmarks only. Nothing here is committed: run it once per machine (~5 GB on disk).

usage: make_bench_checkpoint.py OUT_DIR [--layers 26]
"""
import argparse, json, os
import torch
from safetensors.torch import save_file

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--layers", type=int, default=26)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
os.makedirs(a.out, exist_ok=True)
torch.manual_seed(a.seed)
D, F, H, KV, HD, V = 2304, 9216, 8, 4, 256, 256000
cfg = {
    "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "vocab_size": V,
    "hidden_size": D, "intermediate_size": F, "num_hidden_layers": a.layers,
    "num_attention_heads": H, "num_key_value_heads": KV, "head_dim": HD,
    "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "query_pre_attn_scalar": 256,
    "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "sliding_window": 4096,
    "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0, "tie_word_embeddings": True,
    "torch_dtype": "bfloat16", "attention_bias": False,
}
json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=2)

def rnd(*shape, std=0.02):
    return (torch.randn(*shape) * std).to(torch.bfloat16)

weight_map = {}
shards = [{"model.embed_tokens.weight": rnd(V, D), "model.norm.weight": rnd(D, std=0.1)}]
for l in range(a.layers):
    pre = f"model.layers.{l}."
    shards.append({
        pre + "self_attn.q_proj.weight": rnd(H * HD, D), pre + "self_attn.k_proj.weight": rnd(KV * HD, D),
        pre + "self_attn.v_proj.weight": rnd(KV * HD, D), pre + "self_attn.o_proj.weight": rnd(D, H * HD),
        pre + "mlp.gate_proj.weight": rnd(F, D), pre + "mlp.up_proj.weight": rnd(F, D),
        pre + "mlp.down_proj.weight": rnd(D, F),
        **{pre + n + ".weight": rnd(D, std=0.1) for n in ("input_layernorm", "post_attention_layernorm",
                                                          "pre_feedforward_layernorm", "post_feedforward_layernorm")},
    })
n = len(shards)
for i, sh in enumerate(shards):
    name = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
    save_file(sh, os.path.join(a.out, name), metadata={"format": "pt"})
    weight_map.update({k: name for k in sh})
json.dump({"metadata": {}, "weight_map": weight_map}, open(os.path.join(a.out, "model.safetensors.index.json"), "w"), indent=1)
print("wrote", a.out)
