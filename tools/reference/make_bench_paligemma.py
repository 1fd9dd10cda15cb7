#!/usr/bin/env python3
"""Write a PaliGemma-2-3B-224-shaped checkpoint with random bf16 weights in the Hub layout
(vision_tower.vision_model.*, multi_modal_projector.linear.*, language_model.model.*;
config.json as the conversion script writes it), for benchmarks only. Nothing here is
committed. The decoder gets --text-layers layers (default 13: enough for "through decoder
layer 12" and ~4 GB on disk instead of ~6 GB; the layers present are full size).

usage: make_bench_paligemma.py OUT_DIR [--text-layers 13] [--image-size 224]
"""
import argparse, json, os
import torch
from safetensors.torch import save_file

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--text-layers", type=int, default=13)
p.add_argument("--image-size", type=int, default=224)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
os.makedirs(a.out, exist_ok=True)
torch.manual_seed(a.seed)
# SigLIP So400m/14 and Gemma-2 2B numbers (docs/model-spec.md §3.1, §4.1)
VD, VF, VL, VH, PATCH = 1152, 4304, 27, 16, 14
D, F, H, KV, HD, V = 2304, 9216, 8, 4, 256, 257216
N = (a.image_size // PATCH) ** 2
cfg = {
    "architectures": ["PaliGemmaForConditionalGeneration"], "model_type": "paligemma",
    "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0, "image_token_index": 257152,
    "hidden_size": 2048, "projection_dim": D, "torch_dtype": "bfloat16",
    "text_config": {
        "model_type": "gemma2", "vocab_size": V, "hidden_size": D, "intermediate_size": F,
        "num_hidden_layers": a.text_layers, "num_attention_heads": H, "num_key_value_heads": KV,
        "head_dim": HD, "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 256,
        "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "sliding_window": 4096,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "num_image_tokens": N, "torch_dtype": "bfloat16",
    },
    "vision_config": {
        "model_type": "siglip_vision_model", "hidden_size": VD, "intermediate_size": VF,
        "num_hidden_layers": VL, "num_attention_heads": VH, "patch_size": PATCH,
        "image_size": a.image_size, "num_image_tokens": N, "projection_dim": D,
        "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6, "vision_use_head": False,
        "torch_dtype": "bfloat16",
    },
}
json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=2)
json.dump({"image_processor_type": "SiglipImageProcessor", "do_resize": True, "size": {"height": a.image_size, "width": a.image_size},
           "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
           "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "image_seq_length": N,
           "processor_class": "PaliGemmaProcessor"},
          open(os.path.join(a.out, "preprocessor_config.json"), "w"), indent=2)


def rnd(*shape, std=0.02):
    return (torch.randn(*shape) * std).to(torch.bfloat16)


vp = "vision_tower.vision_model."
vision = {vp + "embeddings.patch_embedding.weight": rnd(VD, 3, PATCH, PATCH),
          vp + "embeddings.patch_embedding.bias": rnd(VD),
          vp + "embeddings.position_embedding.weight": rnd(N, VD),
          vp + "post_layernorm.weight": 1 + rnd(VD, std=0.1), vp + "post_layernorm.bias": rnd(VD),
          "multi_modal_projector.linear.weight": rnd(D, VD), "multi_modal_projector.linear.bias": rnd(D)}
for l in range(VL):
    pre = f"{vp}encoder.layers.{l}."
    for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
        vision[pre + f"self_attn.{n}.weight"] = rnd(VD, VD)
        vision[pre + f"self_attn.{n}.bias"] = rnd(VD)
    vision[pre + "mlp.fc1.weight"] = rnd(VF, VD)
    vision[pre + "mlp.fc1.bias"] = rnd(VF)
    vision[pre + "mlp.fc2.weight"] = rnd(VD, VF)
    vision[pre + "mlp.fc2.bias"] = rnd(VD)
    for n in ("layer_norm1", "layer_norm2"):
        vision[pre + n + ".weight"] = 1 + rnd(VD, std=0.1)
        vision[pre + n + ".bias"] = rnd(VD)
tp = "language_model.model."
shards = [vision, {tp + "embed_tokens.weight": rnd(V, D), tp + "norm.weight": rnd(D, std=0.1)}]
for l in range(a.text_layers):
    pre = f"{tp}layers.{l}."
    shards.append({
        pre + "self_attn.q_proj.weight": rnd(H * HD, D), pre + "self_attn.k_proj.weight": rnd(KV * HD, D),
        pre + "self_attn.v_proj.weight": rnd(KV * HD, D), pre + "self_attn.o_proj.weight": rnd(D, H * HD),
        pre + "mlp.gate_proj.weight": rnd(F, D), pre + "mlp.up_proj.weight": rnd(F, D),
        pre + "mlp.down_proj.weight": rnd(D, F),
        **{pre + n + ".weight": rnd(D, std=0.1) for n in ("input_layernorm", "post_attention_layernorm",
                                                          "pre_feedforward_layernorm", "post_feedforward_layernorm")},
    })
weight_map = {}
n = len(shards)
for i, sh in enumerate(shards):
    name = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
    save_file(sh, os.path.join(a.out, name), metadata={"format": "pt"})
    weight_map.update({k: name for k in sh})
json.dump({"metadata": {}, "weight_map": weight_map}, open(os.path.join(a.out, "model.safetensors.index.json"), "w"), indent=1)
print("wrote", a.out)
