#!/usr/bin/env python3
"""Build the quickstart bundle: a coherent set of TINY demo models that can read real captions.

Everything here is made with the reference libraries (tokenizers, transformers, sae-lens) and
saved in their own on-disk formats, so the C pipeline reads exactly what a user of the real
checkpoints would give it -- only ~1000x smaller. NOT real models; demo only.

  models/gemma2-tiny/     Gemma2ForCausalLM (D 64, 4 layers, H 4 / KV 2, head_dim 16, F 128,
                          sliding window 16, soft-caps 50/30), next-token trained on COCO captions,
                          + a Gemma-shaped BPE tokenizer.json (1024 ids) trained on the same captions
  models/paligemma-tiny/  PaliGemmaForConditionalGeneration: tiny SigLIP (56x56, patch 14 ->
                          16 image tokens) + projector + a decoder INITIALISED FROM gemma2-tiny and
                          then trained on COCO-mini image/caption pairs with the prefix-LM
                          (prompt "caption en"); vocab = gemma2-tiny's + <image> (id 1024)
  models/sae/blocks.{L}.hook_resid_post/   sae-lens JumpReLU SAEs (d_sae 256) on gemma2-tiny
  models/sae/gemma-scope-format/layer_{L}/width_256/average_l0_{N}/params.npz   one layer in
                          the Gemma Scope npz layout (same weights as the sae-lens folder)
  models/tokenizer_check.jsonl             golden ids from `tokenizers` for a C test

Usage:
    /work/refenv/bin/python tools/reference/gen_quickstart_bundle.py \
        --out examples/quickstart/models [--cli build/reprshift] [--threads 2]

--cli (or $RS_CLI) points at a built `reprshift`: the script then checks that the C tokenizer
gives the same ids as `tokenizers` on 1000 held-out captions plus edge cases.
Deterministic (fixed seeds, one torch thread by default); takes ~3 minutes on one CPU core.
"""

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

GENERATOR = "tools/reference/gen_quickstart_bundle.py"
# the shared data folder (RS_SHARED_DIR, default ../shared beside the repository)
DATA = os.path.join(os.environ.get("RS_SHARED_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared"), "data")
CAPTIONS_TXT = os.path.join(DATA, "text/coco_val2017_captions.txt")
COCO_MINI = os.path.join(DATA, "coco/mini")
SEED = 20240611

# tokenizer -----------------------------------------------------------------------------
SPECIALS = [("<pad>", True), ("<eos>", True), ("<bos>", True), ("<unk>", True),
            ("<mask>", False)]  # ids 0..4 as in the real Gemma tokenizer (<mask> non-special)
VOCAB_SIZE = 1024  # 5 specials + 256 <0xXX> byte tokens + 763 learned pieces
LIMIT_ALPHABET = 80  # rarer characters go through byte fallback, as in the real vocab
N_HELDOUT = 1000  # last captions of the file: never trained on, used for checks

# models --------------------------------------------------------------------------------
TEXT_CFG = dict(
    vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
    num_attention_heads=4, num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16,
    attn_logit_softcapping=50.0, final_logit_softcapping=30.0, sliding_window=16,
    rms_norm_eps=1e-6, max_position_embeddings=512,
)
ROPE_THETA = 10000.0
LM_TRAIN = dict(steps=400, batch=64, lr=3e-3, warmup=25, weight_decay=0.01)

IMAGE_SIZE, PATCH = 56, 14  # 4x4 = 16 image tokens
VISION_CFG = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
IMAGE_TOKEN = "<image>"
IMAGE_TOKEN_ID = VOCAB_SIZE  # appended after the Gemma vocab, as <image> is in the real pair
PROMPT = "caption en"
VLM_TRAIN = dict(steps=300, batch=16, lr_lm=1e-3, lr_vision=3e-3, warmup=20, weight_decay=0.01)

# SAEs ----------------------------------------------------------------------------------
D_SAE = 256
SAE_TRAIN = dict(n_captions=6000, steps=1500, batch=1024, lr=2e-3, target_l0=16.0,
                 l0_coefficient=1.0, bandwidth=0.05, init_threshold=0.3,
                 pre_act_loss_coefficient=3e-3, dead_feature_window=100)
NPZ_LAYER = 2


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def versions():
    import PIL
    import safetensors
    import sae_lens
    import tokenizers
    import transformers
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__, "sae_lens": sae_lens.__version__,
            "safetensors": safetensors.__version__, "numpy": np.__version__,
            "pillow": PIL.__version__, "python": sys.version.split()[0]}


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")


def read_captions():
    with open(CAPTIONS_TXT, encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f]
    lines = [l for l in lines if l.strip()]
    return lines[:-N_HELDOUT], lines[-N_HELDOUT:]


# =======================================================================================
# 1. tokenizer
# =======================================================================================
def build_tokenizer_json(train_caps):
    """Train a byte-level-fallback BPE on the captions and lay it out like Gemma's tokenizer.json.

    Training uses a temporary Split("▁", merged_with_next) pre-tokenizer so pieces stay inside
    words (as SentencePiece pieces do); the saved file has pre_tokenizer null like Gemma's, so
    a whole text segment is one BPE word at encode time (merges never cross a word start).
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.pre_tokenizer = pre_tokenizers.Split("\u2581", behavior="merged_with_next")
    n_learned = VOCAB_SIZE - len(SPECIALS) - 256
    trainer = trainers.BpeTrainer(vocab_size=n_learned + 4, special_tokens=[s for s, _ in SPECIALS[:4]],
                                  limit_alphabet=LIMIT_ALPHABET, show_progress=False)
    tok.train_from_iterator(train_caps, trainer)
    j = json.loads(tok.to_str())
    learned = [p for p, i in sorted(j["model"]["vocab"].items(), key=lambda x: x[1]) if i >= 4]
    assert len(learned) == n_learned, len(learned)
    vocab = {}
    for s, _ in SPECIALS:
        vocab[s] = len(vocab)
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for p in learned:
        assert p not in vocab, p
        vocab[p] = len(vocab)
    assert len(vocab) == VOCAB_SIZE
    added = [dict(id=i, content=s, single_word=False, lstrip=False, rstrip=False, normalized=False,
                  special=sp) for i, (s, sp) in enumerate(SPECIALS)]
    bos = {"SpecialToken": {"id": "<bos>", "type_id": 0}}
    out = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [bos, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<bos>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True,
                  "ignore_merges": False, "vocab": vocab, "merges": j["model"]["merges"]},
    }
    return json.dumps(out, ensure_ascii=False, indent=2) + "\n"


def save_hf_tokenizer(tok_json_path, out_dir, extra_special=None):
    """Write tokenizer.json + tokenizer_config.json through transformers' GemmaTokenizer and
    check it did not change the ids (it may re-serialise the json)."""
    from transformers import AddedToken, GemmaTokenizer
    ht = GemmaTokenizer(tokenizer_file=tok_json_path)
    if extra_special:
        ht.add_special_tokens({"additional_special_tokens": [
            AddedToken(t, normalized=False, special=True) for t in extra_special]})
    ht.save_pretrained(out_dir)
    return ht


TOKENIZER_EDGE_CASES = [
    "A cat on a red sofa.",
    "A man riding a wave on top of a surfboard.",
    "  two  spaces,\ttab and trailing space ",
    "Café naïve – “quoted” 東京 🙂",
    "line one\nline two",
    "<bos>literal special <eos> tokens<pad>",
    "UPPER lower MiXeD 12345 3.14 #hash @at",
    "",
    "a",
    "\u2581already has a meta space",
]


def tokenizer_self_check(tok_path, heldout, cli, golden_path, pali_tok_path):
    """tokenizers vs the C CLI on the held-out captions (+ edge cases); writes the golden file."""
    from tokenizers import Tokenizer
    tk = Tokenizer.from_file(tok_path)
    res = {"n_compared": 0, "n_equal": 0, "cli": cli}
    texts = heldout + [t for t in TOKENIZER_EDGE_CASES if "\n" not in t]
    # golden records (both tokenizers; with and without bos)
    recs = []
    for t in TOKENIZER_EDGE_CASES + heldout[:6]:
        for add_bos in (True, False):
            e = tk.encode(t, add_special_tokens=add_bos)
            recs.append({"tokenizer": "gemma2-tiny/tokenizer.json", "text": t, "add_bos": add_bos,
                         "ids": e.ids, "tokens": e.tokens,
                         "decoded": tk.decode(e.ids, skip_special_tokens=False)})
    pk = Tokenizer.from_file(pali_tok_path)
    for t in [IMAGE_TOKEN * 3 + "<bos>" + PROMPT + "\n", PROMPT + "\n", "A dog<image> on grass<eos>"]:
        e = pk.encode(t, add_special_tokens=False)
        recs.append({"tokenizer": "paligemma-tiny/tokenizer.json", "text": t, "add_bos": False,
                     "ids": e.ids, "tokens": e.tokens,
                     "decoded": pk.decode(e.ids, skip_special_tokens=False)})
    with open(golden_path, "w", encoding="utf-8") as f:
        for r in recs:
            f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")
    res["golden_records"] = len(recs)
    if not cli:
        log("tokenizer: no --cli / $RS_CLI given: C tokenizer comparison SKIPPED")
        return res
    mism = []
    with tempfile.TemporaryDirectory() as td:
        for label, path, tts, add_bos in (
                ("gemma2", tok_path, texts, True),
                ("gemma2-nobos", tok_path, TOKENIZER_EDGE_CASES, False),
                ("paligemma", pali_tok_path, [r["text"] for r in recs if r["tokenizer"].startswith("pali")], False)):
            one_line = [t for t in tts if "\n" not in t]
            multi = [t for t in tts if "\n" in t]
            fn = os.path.join(td, "texts.txt")
            with open(fn, "w", encoding="utf-8") as f:
                for t in one_line:
                    f.write(t + "\n")
            args = [cli, "tokenize", "--tokenizer", path, "--texts", fn] + ([] if add_bos else ["--no-bos"])
            out = subprocess.run(args, capture_output=True, text=True, check=True).stdout.splitlines()
            got = [json.loads(l) for l in out]
            for t in multi:  # inputs with a newline go through --text
                args = [cli, "tokenize", "--tokenizer", path, "--text", t] + ([] if add_bos else ["--no-bos"])
                got.append(json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout))
            tk_ = Tokenizer.from_file(path)
            ref = [tk_.encode(t, add_special_tokens=add_bos).ids for t in one_line + multi]
            assert len(got) == len(ref), (label, len(got), len(ref))
            for t, g, r in zip(one_line + multi, got, ref):
                res["n_compared"] += 1
                if g == r:
                    res["n_equal"] += 1
                else:
                    mism.append({"set": label, "text": t, "c": g, "tokenizers": r})
    res["mismatches"] = mism[:10]
    log(f"tokenizer: C CLI == tokenizers on {res['n_equal']}/{res['n_compared']} inputs")
    if mism:
        raise SystemExit(f"C tokenizer disagrees with tokenizers: {mism[:3]}")
    return res


# =======================================================================================
# 2. gemma2-tiny
# =======================================================================================
def gemma2_config(vocab_size):
    from transformers import Gemma2Config
    c = dict(TEXT_CFG)
    c["vocab_size"] = vocab_size
    return Gemma2Config(rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA},
                        hidden_activation="gelu_pytorch_tanh", pad_token_id=0, eos_token_id=1,
                        bos_token_id=2, tie_word_embeddings=True, attention_bias=False, **c)


def lr_at(step, total, warmup, base):
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def pad_batch(seqs, pad=0):
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    return ids, mask


@torch.no_grad()
def lm_eval_loss(model, seqs, batch=128):
    """Mean next-token CE over all predicted tokens (HF loss semantics, token-weighted)."""
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, len(seqs), batch):
        ids, mask = pad_batch(seqs[i:i + batch])
        labels = ids.masked_fill(mask == 0, -100)
        out = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False)
        k = int((labels[:, 1:] != -100).sum())
        tot += out.loss.item() * k
        n += k
    return tot / n


def train_gemma2(tok, train_caps, heldout, gen):
    from transformers import Gemma2ForCausalLM
    cfg = gemma2_config(VOCAB_SIZE)
    cfg._attn_implementation = "eager"
    model = Gemma2ForCausalLM(cfg)  # transformers' own init (normal std 0.02, norms 0)
    seqs = [e.ids + [1] for e in tok.encode_batch(train_caps)]  # <bos> caption <eos>
    held = [e.ids + [1] for e in tok.encode_batch(heldout)]
    loss0 = lm_eval_loss(model, held)
    tc = LM_TRAIN
    opt = torch.optim.AdamW(model.parameters(), lr=tc["lr"], betas=(0.9, 0.95), weight_decay=tc["weight_decay"])
    model.train()
    t0 = time.time()
    hist = []
    for step in range(tc["steps"]):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tc["steps"], tc["warmup"], tc["lr"])
        idx = torch.randint(0, len(seqs), (tc["batch"],), generator=gen).tolist()
        ids, mask = pad_batch([seqs[i] for i in idx])
        labels = ids.masked_fill(mask == 0, -100)
        out = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        hist.append(out.loss.item())
        if step % 100 == 0 or step == tc["steps"] - 1:
            log(f"gemma2-tiny step {step:4d} train loss {np.mean(hist[-50:]):.3f}")
    loss1 = lm_eval_loss(model, held)
    log(f"gemma2-tiny: held-out CE {loss0:.3f} (init) -> {loss1:.3f} ({time.time() - t0:.0f} s)")
    model.eval()
    return model, dict(heldout_ce_init=round(loss0, 4), heldout_ce_trained=round(loss1, 4),
                       train_loss_last50=round(float(np.mean(hist[-50:])), 4),
                       uniform_ce=round(math.log(VOCAB_SIZE), 4), train_seconds=round(time.time() - t0, 1),
                       n_train_captions=len(seqs), n_heldout_captions=len(held), **tc)


# =======================================================================================
# 3. paligemma-tiny
# =======================================================================================
def load_coco_mini():
    rows = [json.loads(l) for l in open(os.path.join(COCO_MINI, "image_table.jsonl"), encoding="utf-8")]
    for r in rows:
        r["path"] = os.path.join(DATA, "coco", r["file"])
    return rows


def write_preprocessor_config(path):
    cfg = {"do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
           "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "SiglipImageProcessor",
           "image_seq_length": (IMAGE_SIZE // PATCH) ** 2, "image_std": [0.5, 0.5, 0.5],
           "processor_class": "PaliGemmaProcessor", "resample": 3, "rescale_factor": 1.0 / 255.0,
           "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE}}
    write_json(os.path.join(path, "preprocessor_config.json"), cfg)


def vlm_sequence(ptok, caption):
    """[<image>]*N <bos> prompt "\\n" | caption <eos>  (PaliGemmaProcessor layout with a suffix)."""
    n_img = (IMAGE_SIZE // PATCH) ** 2
    prefix = [IMAGE_TOKEN_ID] * n_img + [2] + ptok.encode(PROMPT + "\n", add_special_tokens=False).ids
    suffix = ptok.encode(caption, add_special_tokens=False).ids + [1]
    return prefix, suffix


def vlm_batch(items):
    """items: (pixel_values [3,S,S], prefix ids, suffix ids) -> model kwargs (right padding)."""
    seqs = [p + s for _, p, s in items]
    ids, mask = pad_batch(seqs)
    tt = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (_, p, s) in enumerate(items):
        tt[i, len(p):len(p) + len(s)] = 1
        labels[i, len(p):len(p) + len(s)] = torch.tensor(s)
    pv = torch.stack([x for x, _, _ in items])
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=tt, labels=labels, pixel_values=pv)


@torch.no_grad()
def vlm_eval_loss(model, items, batch=32):
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, len(items), batch):
        kw = vlm_batch(items[i:i + batch])
        out = model(**kw, use_cache=False)
        k = int((kw["labels"][:, 1:] != -100).sum())
        tot += out.loss.item() * k
        n += k
    return tot / n


def build_paligemma(gemma_dir, pali_dir, ptok, gen):
    from transformers import (AutoImageProcessor, Gemma2ForCausalLM, PaliGemmaConfig,
                              PaliGemmaForConditionalGeneration, PaliGemmaProcessor, SiglipVisionConfig)
    # the VLM's decoder starts as the LLM: load it from disk, append the <image> row the way
    # transformers does when a tokenizer grows (resize_token_embeddings, mean-resizing init)
    lm = Gemma2ForCausalLM.from_pretrained(gemma_dir, dtype=torch.float32, attn_implementation="eager")
    torch.manual_seed(SEED + 3)
    lm.resize_token_embeddings(VOCAB_SIZE + 1)
    assert lm.model.embed_tokens.weight.shape[0] == VOCAB_SIZE + 1
    vcfg = SiglipVisionConfig(image_size=IMAGE_SIZE, patch_size=PATCH, num_channels=3, layer_norm_eps=1e-6,
                              hidden_act="gelu_pytorch_tanh", vision_use_head=False, **VISION_CFG)
    tcfg = gemma2_config(VOCAB_SIZE + 1)
    D = TEXT_CFG["hidden_size"]
    cfg = PaliGemmaConfig(text_config=tcfg, vision_config=vcfg, image_token_index=IMAGE_TOKEN_ID,
                          projection_dim=D, hidden_size=D, vocab_size=VOCAB_SIZE + 1)
    cfg._attn_implementation = "eager"
    torch.manual_seed(SEED + 4)
    model = PaliGemmaForConditionalGeneration(cfg)  # transformers' init for SigLIP + projector
    missing, unexpected = model.model.language_model.load_state_dict(lm.model.state_dict(), strict=True)
    assert not missing and not unexpected
    assert model.lm_head.weight.data_ptr() == model.model.language_model.embed_tokens.weight.data_ptr(), \
        "lm_head must stay tied to the embeddings"
    init_dec = {k: v.clone() for k, v in model.model.language_model.state_dict().items()}
    del lm

    # data: COCO mini, train2017 images for training, val2017 images held out
    write_preprocessor_config(pali_dir)
    proc = AutoImageProcessor.from_pretrained(pali_dir, backend="pil")
    from PIL import Image
    rows = load_coco_mini()
    items = {"train2017": [], "val2017": []}
    pix = {}
    for r in rows:
        with Image.open(r["path"]) as im:
            pix[r["image_id"]] = proc(images=im, return_tensors="pt")["pixel_values"][0]
        for c in r["captions"]:
            p, s = vlm_sequence(ptok, c.strip())
            items[r["split"]].append((pix[r["image_id"]], p, s))
    train, held = items["train2017"], items["val2017"]

    # the layout must be exactly what transformers' PaliGemmaProcessor builds (prefix-LM with suffix)
    from transformers import GemmaTokenizer
    htok = GemmaTokenizer(tokenizer_file=os.path.join(pali_dir, "tokenizer.json"))
    hproc = PaliGemmaProcessor(image_processor=proc, tokenizer=htok)
    assert hproc.image_token_id == IMAGE_TOKEN_ID, hproc.image_token_id
    n_proc_checked = 0
    for r in rows[:3]:
        with Image.open(r["path"]) as im:
            enc = hproc(text=PROMPT, images=im, suffix=r["captions"][0].strip(), return_tensors="pt")
        p, s = vlm_sequence(ptok, r["captions"][0].strip())
        kw = vlm_batch([(pix[r["image_id"]], p, s)])
        for k in ("input_ids", "token_type_ids", "labels", "pixel_values"):
            assert torch.equal(enc[k], kw[k]), f"processor mismatch in {k}"
        n_proc_checked += 1

    loss0 = vlm_eval_loss(model, held)
    tc = VLM_TRAIN
    lm_params = [p for n, p in model.named_parameters() if n.startswith("model.language_model.")]
    vis_params = [p for n, p in model.named_parameters() if not n.startswith("model.language_model.")
                  and p.data_ptr() != model.lm_head.weight.data_ptr()]
    opt = torch.optim.AdamW([{"params": lm_params, "base": tc["lr_lm"]},
                             {"params": vis_params, "base": tc["lr_vision"]}],
                            betas=(0.9, 0.95), weight_decay=tc["weight_decay"])
    model.train()
    t0 = time.time()
    hist = []
    for step in range(tc["steps"]):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tc["steps"], tc["warmup"], g["base"])
        idx = torch.randint(0, len(train), (tc["batch"],), generator=gen).tolist()
        out = model(**vlm_batch([train[i] for i in idx]), use_cache=False)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        hist.append(out.loss.item())
        if step % 100 == 0 or step == tc["steps"] - 1:
            log(f"paligemma-tiny step {step:4d} train loss {np.mean(hist[-50:]):.3f}")
    model.eval()
    loss1 = vlm_eval_loss(model, held)
    # how far the decoder moved from gemma2-tiny (relative Frobenius change of all decoder weights)
    num = sum(float((v - init_dec[k]).pow(2).sum()) for k, v in model.model.language_model.state_dict().items())
    den = sum(float(v.pow(2).sum()) for v in init_dec.values())
    log(f"paligemma-tiny: held-out caption CE {loss0:.3f} -> {loss1:.3f}, decoder rel. change "
        f"{math.sqrt(num / den):.3f} ({time.time() - t0:.0f} s)")
    info = dict(heldout_caption_ce_init=round(loss0, 4), heldout_caption_ce_trained=round(loss1, 4),
                train_loss_last50=round(float(np.mean(hist[-50:])), 4),
                decoder_relative_weight_change=round(math.sqrt(num / den), 4),
                train_seconds=round(time.time() - t0, 1), n_train_pairs=len(train), n_heldout_pairs=len(held),
                train_images="coco/mini/train2017 (80 images x 5 captions)",
                heldout_images="coco/mini/val2017 (79 images x 5 captions)",
                processor_layout_checked_on=n_proc_checked, **tc)
    return model, info


# =======================================================================================
# 4. SAEs
# =======================================================================================
@torch.no_grad()
def collect_resid_post(model, tok, caps, batch=256):
    """blocks.L.hook_resid_post (= decoder layer L output) for every non-pad, non-<bos> token."""
    n_layers = model.config.num_hidden_layers
    acts = [[] for _ in range(n_layers)]
    cur = {}
    hs = [layer.register_forward_hook(lambda m, a, o, L=L: cur.__setitem__(L, o[0] if isinstance(o, tuple) else o))
          for L, layer in enumerate(model.model.layers)]
    try:
        seqs = [e.ids for e in tok.encode_batch(caps)]
        for i in range(0, len(seqs), batch):
            ids, mask = pad_batch(seqs[i:i + batch])
            model(input_ids=ids, attention_mask=mask, use_cache=False)
            keep = (mask == 1) & (ids != 2)
            for L in range(n_layers):
                acts[L].append(cur[L][keep].float().clone())
    finally:
        for h in hs:
            h.remove()
    return [torch.cat(a) for a in acts]


def train_sae(x, layer, gen):
    from sae_lens import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig
    from sae_lens.saes.sae import SAEMetadata, TrainStepInput
    tc = SAE_TRAIN
    d_in = x.shape[1]
    # train on activations scaled to mean norm sqrt(d_in) (sae-lens "expected_average_only_in"),
    # then fold the factor into the weights so the saved SAE takes raw activations
    scale = math.sqrt(d_in) / float(x.norm(dim=1).mean())
    xs = x * scale
    cfg = JumpReLUTrainingSAEConfig(
        d_in=d_in, d_sae=D_SAE, dtype="float32", device="cpu", apply_b_dec_to_input=False,
        normalize_activations="none", jumprelu_init_threshold=tc["init_threshold"],
        jumprelu_bandwidth=tc["bandwidth"], jumprelu_sparsity_loss_mode="quadratic",
        target_l0=tc["target_l0"], l0_coefficient=tc["l0_coefficient"], decoder_init_norm=0.1,
        pre_act_loss_coefficient=tc["pre_act_loss_coefficient"],
        metadata=SAEMetadata(model_name="gemma2-tiny", hook_name=f"blocks.{layer}.hook_resid_post",
                             hook_head_index=None, prepend_bos=True, context_size=64,
                             dataset_path="coco_val2017_captions.txt (reprshift quickstart)",
                             exclude_special_tokens="<bos> and <pad> positions excluded"))
    torch.manual_seed(SEED + 100 + layer)
    sae = JumpReLUTrainingSAE(cfg)
    with torch.no_grad():
        sae.b_dec.copy_(xs.mean(0))
    opt = torch.optim.Adam(sae.parameters(), lr=tc["lr"], betas=(0.9, 0.999))
    coeffs = {"l0": tc["l0_coefficient"]}
    since_fired = torch.zeros(D_SAE)  # steps since each latent last fired (sae-lens trainer's dead mask)
    for step in range(tc["steps"]):
        idx = torch.randint(0, xs.shape[0], (tc["batch"],), generator=gen)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, tc["steps"], 50, tc["lr"])
        dead = since_fired > tc["dead_feature_window"]
        out = sae.training_forward_pass(TrainStepInput(sae_in=xs[idx], coefficients=coeffs, dead_neuron_mask=dead,
                                                       n_training_steps=step, is_logging_step=False))
        with torch.no_grad():
            since_fired += 1
            since_fired[(out.feature_acts > 0).any(0)] = 0
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
    sae.eval()
    with torch.no_grad():
        sae.threshold.data.clamp_(min=0.0)
    sae.fold_activation_norm_scaling_factor(scale)
    return sae, scale


@torch.no_grad()
def sae_stats(sae, x):
    f = sae.encode(x)
    r = sae.decode(f)
    fvu = float((r - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    return dict(l0=round(float((f > 0).float().sum(1).mean()), 3), fvu=round(fvu, 4),
                dead_features=int(((f > 0).sum(0) == 0).sum()), n_tokens=int(x.shape[0]))


@torch.no_grad()
def ce_with_splice(model, tok, caps, layer, fn):
    """Mean next-token CE over <bos> caption <eos> with blocks.L.hook_resid_post replaced by fn(x)
    (None = clean). The <bos> row (position 0) is left untouched, as the SAEs never saw it
    (the convention of `reprshift sae splice --ce-convention reprshift-v1`; the default is now sae-lens')."""
    h = None
    if fn is not None:
        def splice(x):
            return torch.cat([x[:, :1], fn(x[:, 1:])], dim=1)

        def hook(m, a, o):
            if isinstance(o, tuple):
                return (splice(o[0]),) + tuple(o[1:])
            return splice(o)
        h = model.model.layers[layer].register_forward_hook(hook)
    try:
        return lm_eval_loss(model, [e.ids + [1] for e in tok.encode_batch(caps)])
    finally:
        if h is not None:
            h.remove()


def write_gemma_scope_npz(sae, root, layer, l0):
    """Gemma Scope layout: layer_{L}/width_{W}/average_l0_{N}/params.npz, keys W_enc [d_in,d_sae],
    W_dec [d_sae,d_in], b_enc, b_dec, threshold; Gemma Scope semantics = apply_b_dec_to_input False,
    which is how these SAEs were trained, so the npz holds the very same weights."""
    assert sae.cfg.apply_b_dec_to_input is False
    d = os.path.join(root, f"layer_{layer}", f"width_{D_SAE}", f"average_l0_{int(round(l0))}")
    os.makedirs(d, exist_ok=True)
    sd = {k: v.detach().float().numpy() for k, v in sae.state_dict().items()}
    p = os.path.join(d, "params.npz")
    np.savez(p, W_enc=sd["W_enc"], W_dec=sd["W_dec"], b_enc=sd["b_enc"], b_dec=sd["b_dec"],
             threshold=sd["threshold"])
    return p


# =======================================================================================
# main
# =======================================================================================
def folder_size(p):
    return sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(p) for f in fs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="examples/quickstart/models")
    ap.add_argument("--cli", default=os.environ.get("RS_CLI"), help="built reprshift binary (tokenizer check)")
    ap.add_argument("--threads", type=int, default=1)  # 1 is fastest on a busy 2-core box
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    random.seed(SEED)
    np.random.seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    from tokenizers import AddedToken, Tokenizer
    from transformers import Gemma2ForCausalLM, PaliGemmaForConditionalGeneration

    t_start = time.time()
    out = os.path.abspath(args.out)
    if os.path.exists(out):
        shutil.rmtree(out)
    gdir, pdir, sdir = (os.path.join(out, n) for n in ("gemma2-tiny", "paligemma-tiny", "sae"))
    for d in (gdir, pdir, sdir):
        os.makedirs(d)
    vers = versions()
    summary = {"generator": GENERATOR, "seed": SEED, "threads": args.threads, "versions": vers,
               "note": "TINY DEMO MODELS trained for seconds on COCO captions; NOT Gemma 2 / PaliGemma 2"}

    # 1. tokenizer --------------------------------------------------------------------
    train_caps, heldout = read_captions()
    tok_json = build_tokenizer_json(train_caps)
    raw_tok = os.path.join(tempfile.mkdtemp(), "tokenizer.json")
    with open(raw_tok, "w", encoding="utf-8") as f:
        f.write(tok_json)
    save_hf_tokenizer(raw_tok, gdir)
    tok = Tokenizer.from_file(os.path.join(gdir, "tokenizer.json"))
    ref_tok = Tokenizer.from_file(raw_tok)
    assert tok.get_vocab_size() == VOCAB_SIZE, tok.get_vocab_size()
    for t in heldout[:200] + TOKENIZER_EDGE_CASES:
        assert tok.encode(t).ids == ref_tok.encode(t).ids, "transformers changed the tokenizer"
    # PaliGemma tokenizer = the same + <image> appended (special, not normalized), as in the real pair
    pt = Tokenizer.from_file(os.path.join(gdir, "tokenizer.json"))
    assert pt.add_special_tokens([AddedToken(IMAGE_TOKEN, normalized=False, special=True)]) == 1
    pali_raw = os.path.join(os.path.dirname(raw_tok), "pali_tokenizer.json")
    pt.save(pali_raw, pretty=True)
    save_hf_tokenizer(pali_raw, pdir)
    ptok = Tokenizer.from_file(os.path.join(pdir, "tokenizer.json"))
    assert ptok.token_to_id(IMAGE_TOKEN) == IMAGE_TOKEN_ID and ptok.get_vocab_size() == VOCAB_SIZE + 1
    n_tok = [len(e.ids) for e in tok.encode_batch(heldout)]
    n_bytefb = sum(sum(1 for t in e.tokens if t.startswith("<0x")) for e in tok.encode_batch(heldout))
    summary["tokenizer"] = dict(
        vocab_size=VOCAB_SIZE, specials={s: i for i, (s, _) in enumerate(SPECIALS)},
        byte_tokens="<0x00>..<0xFF> = ids 5..260", n_merges=len(json.loads(tok_json)["model"]["merges"]),
        limit_alphabet=LIMIT_ALPHABET, trained_on=f"{len(train_caps)} captions of text/coco_val2017_captions.txt "
        f"(all but the last {N_HELDOUT})", mean_tokens_per_heldout_caption=round(float(np.mean(n_tok)), 2),
        byte_fallback_tokens_in_heldout=n_bytefb,
        paligemma_image_token={"content": IMAGE_TOKEN, "id": IMAGE_TOKEN_ID})
    log(f"tokenizer: {VOCAB_SIZE} ids, {np.mean(n_tok):.1f} tokens per held-out caption (with <bos>)")

    # 2. gemma2-tiny -------------------------------------------------------------------
    model, lm_info = train_gemma2(tok, train_caps, heldout, gen)
    model.save_pretrained(gdir)
    del model
    g = Gemma2ForCausalLM.from_pretrained(gdir, dtype=torch.float32, attn_implementation="eager")
    g.eval()
    summary["gemma2-tiny"] = dict(model_class="Gemma2ForCausalLM", stored_dtype="float32",
                                  config=dict(TEXT_CFG, rope_theta=ROPE_THETA), training=lm_info)

    # 3. paligemma-tiny ----------------------------------------------------------------
    pmodel, vlm_info = build_paligemma(gdir, pdir, ptok, gen)
    pmodel.save_pretrained(pdir)
    del pmodel
    pm, info = PaliGemmaForConditionalGeneration.from_pretrained(
        pdir, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    pm.eval()
    summary["paligemma-tiny"] = dict(
        model_class="PaliGemmaForConditionalGeneration", stored_dtype="float32",
        image_size=IMAGE_SIZE, patch_size=PATCH, num_image_tokens=(IMAGE_SIZE // PATCH) ** 2,
        vision_config=VISION_CFG, image_token_index=IMAGE_TOKEN_ID, vocab_size=VOCAB_SIZE + 1,
        prompt=PROMPT, prompt_layout="[<image>]*16 <bos> 'caption en' '\\n' | caption <eos>  "
        "(prefix bidirectional, token_type_ids 0/1, loss on the suffix only)",
        decoder_init="gemma2-tiny weights; <image> embedding row added by resize_token_embeddings "
                     "(transformers mean-resizing)", training=vlm_info)

    # 4. SAEs --------------------------------------------------------------------------
    from sae_lens import SAE
    t0 = time.time()
    sae_caps = train_caps[:SAE_TRAIN["n_captions"]]
    acts = collect_resid_post(g, tok, sae_caps)
    held_acts = collect_resid_post(g, tok, heldout)
    sae_info = {}
    ce_caps = heldout[:300]
    ce_clean = ce_with_splice(g, tok, ce_caps, 0, None)
    for L, x in enumerate(acts):
        sae, scale = train_sae(x, L, gen)
        p = os.path.join(sdir, f"blocks.{L}.hook_resid_post")
        sae.save_inference_model(p)
        cfg_path = os.path.join(p, "cfg.json")  # canonical key order (sae-lens writes a set's order)
        with open(cfg_path) as f:
            cfg_json = json.load(f)
        with open(cfg_path, "w") as f:
            json.dump(cfg_json, f, sort_keys=True)
        loaded = SAE.load_from_disk(p)
        assert type(loaded).__name__ == "JumpReLUSAE", type(loaded).__name__
        st = sae_stats(loaded, held_acts[L])
        ce_sae = ce_with_splice(g, tok, ce_caps, L, lambda z, s=loaded: s.decode(s.encode(z)))
        ce_zero = ce_with_splice(g, tok, ce_caps, L, lambda z: torch.zeros_like(z))
        st.update(norm_scaling_factor_folded=round(scale, 6), ce_clean=round(ce_clean, 4),
                  ce_with_sae=round(ce_sae, 4), ce_zero_ablation=round(ce_zero, 4),
                  ce_loss_recovered=round((ce_zero - ce_sae) / (ce_zero - ce_clean), 4),
                  n_train_tokens=int(x.shape[0]))
        sae_info[f"blocks.{L}.hook_resid_post"] = st
        log(f"SAE L{L}: L0 {st['l0']:.1f}, FVU {st['fvu']:.3f}, dead {st['dead_features']}, "
            f"CE recovered {st['ce_loss_recovered']:.3f} (clean {ce_clean:.3f} sae {ce_sae:.3f} zero {ce_zero:.3f})")
        if L == NPZ_LAYER:
            npz = write_gemma_scope_npz(loaded, os.path.join(sdir, "gemma-scope-format"), L, st["l0"])
            # the npz read back with plain numpy and Gemma Scope's formula must give the same features
            z = np.load(npz)
            xx = held_acts[L][:500].numpy()
            pre = xx @ z["W_enc"] + z["b_enc"]
            feats = np.where(pre > z["threshold"], np.maximum(pre, 0), 0).astype(np.float32)
            with torch.no_grad():
                ref = loaded.encode(held_acts[L][:500]).numpy()
            assert np.allclose(feats, ref, rtol=1e-5, atol=1e-5), np.abs(feats - ref).max()
            st["gemma_scope_npz"] = os.path.relpath(npz, out)
    summary["sae"] = dict(architecture="jumprelu (sae-lens JumpReLUTrainingSAE, quadratic L0 loss + pre-act loss for dead latents, "
                                       "saved with save_inference_model)",
                          d_in=TEXT_CFG["hidden_size"], d_sae=D_SAE, apply_b_dec_to_input=False,
                          training=dict(SAE_TRAIN, n_tokens=int(acts[0].shape[0]),
                                        tokens="every caption token except <bos>/<pad>",
                                        seconds=round(time.time() - t0, 1)),
                          eval_on=f"{int(held_acts[0].shape[0])} held-out caption tokens; CE on {len(ce_caps)} captions",
                          layers=sae_info)

    # 5. self-checks: caption through the LLM, image + prompt through the VLM ----------
    from PIL import Image
    from transformers import AutoImageProcessor
    cap = "A cat sitting on a red sofa."
    e = tok.encode(cap)
    with torch.no_grad():
        o = g(input_ids=torch.tensor([e.ids]), output_hidden_states=True)
    next_tok = tok.id_to_token(int(o.logits[0, -1].argmax()))
    proc = AutoImageProcessor.from_pretrained(pdir, backend="pil")
    row = load_coco_mini()[0]
    with Image.open(row["path"]) as im:
        pv = proc(images=im, return_tensors="pt")["pixel_values"]
    pre, _ = vlm_sequence(ptok, "")
    gen_ids = []
    with torch.no_grad():  # greedy caption, prefix bidirectional, recomputed from scratch each step
        for _ in range(16):
            full = torch.tensor([pre + gen_ids])
            tt = torch.tensor([[0] * len(pre) + [1] * len(gen_ids)])
            lo = pm(input_ids=full, pixel_values=pv, token_type_ids=tt, use_cache=False).logits[0, -1]
            nxt = int(lo.argmax())
            if nxt == 1:
                break
            gen_ids.append(nxt)
    caption = ptok.decode(gen_ids)
    summary["self_check"] = dict(
        llm_caption=cap, llm_ids=e.ids, llm_next_token_argmax=next_tok,
        llm_hidden_states=len(o.hidden_states),
        vlm_image=os.path.relpath(row["path"], DATA), vlm_prompt_ids=pre,
        vlm_greedy_caption=caption, vlm_reference_captions=row["captions"][:2])
    log(f"self-check: LLM next token after '{cap}' -> {next_tok!r}; VLM caption of {row['file']}: {caption!r} "
        f"(refs: {row['captions'][0]!r})")

    # tokenizer: C vs tokenizers + golden file
    summary["tokenizer"]["c_check"] = tokenizer_self_check(
        os.path.join(gdir, "tokenizer.json"), heldout, args.cli, os.path.join(out, "tokenizer_check.jsonl"),
        os.path.join(pdir, "tokenizer.json"))

    # wall-clock times go to bundle_info.json only, so everything else regenerates byte-identically
    summary["timings_seconds"] = {"gemma2_train": lm_info.pop("train_seconds"),
                                  "paligemma_train": vlm_info.pop("train_seconds"),
                                  "sae_all": summary["sae"]["training"].pop("seconds")}

    # provenance in every folder
    for d, extra in ((gdir, summary["gemma2-tiny"]), (pdir, summary["paligemma-tiny"]), (sdir, summary["sae"])):
        write_json(os.path.join(d, "reference_versions.json"),
                   {"generator": GENERATOR, "seed": SEED, "versions": vers, "details": extra,
                    "note": summary["note"]})
    for dp, _, fs in os.walk(out):
        for f in fs:
            os.chmod(os.path.join(dp, f), 0o644)
    sizes = {os.path.relpath(os.path.join(dp, f), out): os.path.getsize(os.path.join(dp, f))
             for dp, _, fs in os.walk(out) for f in fs}
    summary["sizes_bytes"] = dict(sorted(sizes.items()))
    summary["total_bytes"] = sum(sizes.values())
    summary["timings_seconds"]["total"] = round(time.time() - t_start, 1)
    write_json(os.path.join(out, "bundle_info.json"), summary)
    for k, v in sorted(sizes.items()):
        print(f"  {v:9d}  {k}")
    total = folder_size(out)
    print(f"  {total:9d}  TOTAL ({total / 2**20:.2f} MiB) in {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
