#!/usr/bin/env python3
"""Goldens for spliced SAE evaluation ("CE loss recovered").

For the tiny Gemma-2 fixture tests/fixtures/models/gemma2-tiny-f32 this builds a JumpReLU
SAE at blocks.1.hook_resid_post with sae-lens's own class (random frame, so the
reconstruction is good but not exact), saves it in sae-lens format, and records with
transformers (eager, fp32) the next-token cross-entropy of every golden prompt when the
output of decoder layer 1 is (a) left alone, (b) replaced by the sae-lens reconstruction,
(c) replaced by zeros -- each with and without leaving BOS rows untouched (the reprshift-v1
convention: tags "keepbos" and "all").

The sae-lens convention (the default of `reprshift sae splice`, tags "saelens" and, with
exclude_special_tokens=False, "saelens_all") is computed by sae-lens's own evaluation
function, sae_lens.evals.get_downstream_reconstruction_metrics (which calls get_recons_loss),
on a transformer_lens HookedTransformer built from the same tiny checkpoint (its logits are
checked against transformers here), with the special tokens from sae_lens.util.
get_special_token_ids and an identity ActivationScaler; one prompt per batch, so "set.*" is the
token-weighted mean over prompts p1..p4 as sae-lens averages over its batches. The same numbers
are recomputed with transformers forward hooks following that code path and must agree.
p4 packs two documents (<bos> .. <eos> <bos> ..) and ends in <eos> <pad> <pad>, as sae-lens's
activation store may, so the special-token mask is exercised away from position 0.
Tag "mlp_saelens": the same with the SAE spliced at blocks.1.hook_mlp_out (p4 and the set),
where the zero ablation is not the trivial uniform prediction that zeroing the whole residual
stream gives.

usage: gen_splice_goldens.py [--out tests/fixtures/splice]
"""
import argparse, json, os
import numpy as np
import torch
import transformers
import sae_lens
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM
from sae_lens import SAE

p = argparse.ArgumentParser()
p.add_argument("--out", default="tests/fixtures/splice")
p.add_argument("--model", default="tests/fixtures/models/gemma2-tiny-f32")
p.add_argument("--new-sae", action="store_true",
               help="rebuild the SAE even if OUT/sae_l1_jumprelu exists (else the stored one is evaluated)")
a = p.parse_args()
os.makedirs(a.out, exist_ok=True)
torch.manual_seed(7)
LAYER, HOOK = 1, "blocks.1.hook_resid_post"

model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="eager")
model.eval()
assert model.config._attn_implementation == "eager"
D = model.config.hidden_size
gold = load_file(os.path.join(a.model, "golden.safetensors"))
prompts = [gold[f"p{k}.ids"].long() for k in range(4)]

# Typical activation scale at the hook, to size the SAE sensibly.
acts = []
h = model.model.layers[LAYER].register_forward_hook(lambda m, i, o: acts.append((o[0] if isinstance(o, tuple) else o).detach()))
with torch.no_grad():
    for ids in prompts:
        model(input_ids=ids[None])
h.remove()
X = torch.cat([x[0] for x in acts])
scale = X.norm(dim=-1).mean().item()

# A frame of n directions and their negatives: relu(x.w)w - relu(-x.w)w = (x.w)w, so the
# SAE is approximately linear reconstruction through a random (non-tight) frame.
n = 96
Wdir = torch.nn.functional.normalize(torch.randn(n, D), dim=-1)
W_dec = torch.cat([Wdir, -Wdir]) * (D / n) ** 0.5
W_enc = torch.cat([Wdir, -Wdir]).T.contiguous() * (D / n) ** 0.5
b_enc = torch.zeros(2 * n)
b_dec = X.mean(0) * 0.5
threshold = torch.full((2 * n,), 0.02 * scale)
cfg = {"d_in": D, "d_sae": 2 * n, "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": True,
       "normalize_activations": "none", "architecture": "jumprelu",
       "metadata": {"hook_name": HOOK, "model_name": "gemma2-tiny-f32"}}
sae_dir = os.path.join(a.out, "sae_l1_jumprelu")
if a.new_sae or not os.path.exists(os.path.join(sae_dir, "sae_weights.safetensors")):
    os.makedirs(sae_dir, exist_ok=True)
    json.dump(cfg, open(os.path.join(sae_dir, "cfg.json"), "w"))
    save_file({"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec, "threshold": threshold},
              os.path.join(sae_dir, "sae_weights.safetensors"))
sae = SAE.load_from_disk(sae_dir, device="cpu")  # the reference encoder/decoder
sae.eval()
# p4 (after the SAE is sized on p0..p3): packed, special tokens inside
prompts.append(torch.tensor([2, 17, 300, 4, 9, 33, 1, 2, 45, 46, 47, 1, 0, 0]))

def ce_with(ids, mode, keep_bos):
    def hook(module, inp, out):
        hs = out[0] if isinstance(out, tuple) else out
        new = hs.clone()
        rows = torch.ones(hs.shape[1], dtype=torch.bool)
        if keep_bos:
            rows &= ids != model.config.bos_token_id
        if mode == "sae":
            new[0, rows] = sae.decode(sae.encode(hs[0, rows]))
        elif mode == "zero":
            new[0, rows] = 0
        return (new,) + tuple(out[1:]) if isinstance(out, tuple) else new
    hd = model.model.layers[LAYER].register_forward_hook(hook) if mode != "clean" else None
    with torch.no_grad():
        out = model(input_ids=ids[None], labels=ids[None])
    if hd:
        hd.remove()
    return out.loss.item()

tensors, rows = {}, []
for k, ids in enumerate(prompts):
    if len(ids) < 2:
        continue
    if k == 4:  # the reprshift-v1 goldens stay p1..p3 as before
        tensors[f"p{k}.ids"] = ids.to(torch.int32)
        continue
    for keep in (True, False):
        r = {m: ce_with(ids, m, keep) for m in ("clean", "sae", "zero")}
        tag = "keepbos" if keep else "all"
        for m, v in r.items():
            tensors[f"p{k}.{tag}.ce_{m}"] = torch.tensor([v], dtype=torch.float64)
        rows.append({"prompt": k, "keep_bos": keep, **r})
    tensors[f"p{k}.ids"] = ids.to(torch.int32)
# ---- sae-lens convention: sae-lens's own evaluation on a HookedTransformer ---------------
import importlib.metadata
import math
from types import SimpleNamespace
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.pretrained.weight_conversions.gemma import convert_gemma_weights
from sae_lens.evals import get_downstream_reconstruction_metrics
from sae_lens.training.activation_scaler import ActivationScaler
from sae_lens.util import get_special_token_ids

c = model.config
tcfg = HookedTransformerConfig(
    d_model=c.hidden_size, d_head=c.head_dim, n_heads=c.num_attention_heads, d_mlp=c.intermediate_size,
    n_layers=c.num_hidden_layers, n_ctx=c.max_position_embeddings, eps=c.rms_norm_eps, d_vocab=c.vocab_size,
    act_fn=c.hidden_activation, normalization_type="RMS", rotary_base=c.rope_parameters["rope_theta"],
    rotary_dim=c.head_dim, positional_embedding_type="rotary", use_attn_scale=True,
    attn_scale=math.sqrt(c.query_pre_attn_scalar), n_key_value_heads=c.num_key_value_heads,
    window_size=c.sliding_window, use_local_attn=True,
    attn_types=["local" if t == "sliding_attention" else "global" for t in c.layer_types],
    attn_scores_soft_cap=c.attn_logit_softcapping, output_logits_soft_cap=c.final_logit_softcapping,
    gated_mlp=True, final_rms=True, use_normalization_before_and_after=True,
    original_architecture="Gemma2ForCausalLM", dtype=torch.float32, default_prepend_bos=False, device="cpu")
tl = HookedTransformer(tcfg)
tl.load_and_process_state_dict(convert_gemma_weights(model, tcfg), fold_ln=False, center_writing_weights=False,
                               center_unembed=False, fold_value_biases=False,
                               refactor_factored_attn_matrices=False)
tl.eval()
with torch.no_grad():
    for ids in prompts:
        d = (tl(ids[None]) - model(input_ids=ids[None]).logits).abs().max().item()
        assert d < 1e-4, f"HookedTransformer vs transformers logits differ by {d}"
# the tokenizer attributes sae-lens reads (Gemma's tokenizer: <bos> 2, <eos> 1, <pad> 0)
special = sorted(get_special_token_ids(SimpleNamespace(
    bos_token_id=c.bos_token_id, eos_token_id=c.eos_token_id, pad_token_id=c.pad_token_id,
    sep_token_id=None, decoder_start_token_id=None)))
assert special == [0, 1, 2], special


class PromptStore:  # what get_downstream_reconstruction_metrics asks of an ActivationsStore
    def __init__(self, seqs):
        self.seqs, self.i = seqs, 0

    def get_batch_tokens(self, n):
        assert n == 1
        t = self.seqs[self.i][None]
        self.i += 1
        return t


if sae.cfg.metadata.hook_name is None:  # load_from_disk leaves the cfg.json metadata unread
    sae.cfg.metadata.hook_name = HOOK


def saelens_eval(seqs, ignore):
    m = get_downstream_reconstruction_metrics(sae, tl, PromptStore(seqs), ActivationScaler(), compute_kl=False,
                                              compute_ce_loss=True, n_batches=len(seqs),
                                              eval_batch_size_prompts=1, ignore_tokens=ignore)
    return {"clean": m["ce_loss_without_sae"], "sae": m["ce_loss_with_sae"], "zero": m["ce_loss_with_ablation"],
            "score": m["ce_loss_score"]}


def hf_saelens(seqs, ignore, module=None):
    """The same with transformers hooks: reconstruction except at special-token rows, zeros
    everywhere, per-token CE from non-special rows, mean over all counted tokens."""
    tot = {"clean": [], "sae": [], "zero": []}
    for ids in seqs:
        special_row = torch.zeros(len(ids), dtype=torch.bool)
        for t in ignore or []:
            special_row |= ids == t
        for mode in tot:
            def hook(module, inp, out):
                hs = out[0] if isinstance(out, tuple) else out
                new = torch.zeros_like(hs) if mode == "zero" else hs.clone()
                if mode == "sae":
                    new[0, ~special_row] = sae.decode(sae.encode(hs[0, ~special_row]))
                return (new,) + tuple(out[1:]) if isinstance(out, tuple) else new
            mod = module if module is not None else model.model.layers[LAYER]
            hd = mod.register_forward_hook(hook) if mode != "clean" else None
            with torch.no_grad():
                logits = model(input_ids=ids[None]).logits[0].double()
            if hd:
                hd.remove()
            nll = -torch.log_softmax(logits[:-1], -1).gather(1, ids[1:, None])[:, 0]
            tot[mode].append(nll[~special_row[:-1]])
    r = {m: torch.cat(v).mean().item() for m, v in tot.items()}
    r["score"] = (r["zero"] - r["sae"]) / (r["zero"] - r["clean"])
    return r


for tag, ignore in (("saelens", special), ("saelens_all", None)):
    # ("set" only with the mask: without one sae-lens concatenates [1, L-1] batches along
    # dim 0, which needs equal lengths, as its fixed-context batches have)
    cases = [(f"p{k}", [prompts[k]]) for k in range(1, len(prompts))] + ([("set", prompts[1:])] if ignore else [])
    for name, seqs in cases:
        r = saelens_eval(seqs, ignore)
        h = hf_saelens(seqs, ignore)
        for m in r:
            assert abs(r[m] - h[m]) <= 1e-4 * max(1.0, abs(r[m])), (name, tag, m, r[m], h[m])
        for m, v in r.items():
            tensors[f"{name}.{tag}.ce_{m}"] = torch.tensor([v], dtype=torch.float64)
        rows.append({"prompt": name, "convention": tag, **r})

# The same SAE spliced at blocks.1.hook_mlp_out (HF: the output of post_feedforward_layernorm),
# which reprshift splices inside the forward pass rather than by continuing from the residual:
# tag "mlp_saelens".
sae.cfg.metadata.hook_name = "blocks.1.hook_mlp_out"
for name, seqs in [("p4", [prompts[4]]), ("set", prompts[1:])]:
    r = saelens_eval(seqs, special)
    h = hf_saelens(seqs, special, model.model.layers[LAYER].post_feedforward_layernorm)
    for m in r:
        assert abs(r[m] - h[m]) <= 1e-4 * max(1.0, abs(r[m])), (name, "mlp", m, r[m], h[m])
    for m, v in r.items():
        tensors[f"{name}.mlp_saelens.ce_{m}"] = torch.tensor([v], dtype=torch.float64)
    rows.append({"prompt": name, "convention": "saelens", "hook": "blocks.1.hook_mlp_out", **r})
sae.cfg.metadata.hook_name = HOOK

meta = {"generator": "tools/reference/gen_splice_goldens.py", "torch": torch.__version__,
        "transformers": transformers.__version__, "sae_lens": sae_lens.__version__,
        "transformer_lens": importlib.metadata.version("transformer_lens"), "special_token_ids": json.dumps(special), "model": a.model,
        "hook": HOOK, "rows": json.dumps(rows)}
save_file(tensors, os.path.join(a.out, "splice_golden.safetensors"), metadata=meta)
for r in rows:
    print(r)
