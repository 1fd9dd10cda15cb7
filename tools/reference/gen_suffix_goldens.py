#!/usr/bin/env python3
"""Goldens for PaliGemma inputs with a caption *suffix* (image + prompt prefix, caption
suffix), built by transformers' own PaliGemmaProcessor, and the Gemma-2 / suffix
tokenisation comparison on the COCO captions.

1. A tiny Gemma-style tokenizer (tests/fixtures/suffix/tiny_gemma_tokenizer.json): the
   real Gemma pipeline (normalizer Replace " " -> "\u2581", no pre-tokenizer, BPE, the
   <pad>/<eos>/<bos>/<unk> ids 0-3, "\n" = 108, post-processor "<bos> $A" / pair
   "<bos> $A <bos> $B") with a vocabulary small enough (< 256 ids) for the tiny PaliGemma
   checkpoints of tests/fixtures/models; <image> is an added special token at id 256.
2. For each tiny checkpoint: PaliGemmaProcessor(images=img, text=PROMPT, suffix=caption)
   for a few captions (one plain, one containing "\n", one with leading / trailing
   spaces, one longer than the checkpoint's sliding window), the processor's input_ids /
   token_type_ids, and PaliGemmaForConditionalGeneration (eager, fp32) run with exactly
   those (image token id mapped to the checkpoint's image_token_index). Saved per run k:
     s{k}.ids [T] I32, s{k}.token_type_ids [T] I32, s{k}.prefix_len [1] I32,
     s{k}.<decoder hook> [N + T - P, W] F32 = rows of the N image tokens, then of the
        T - P suffix tokens (caption + <eos>),
     s{k}.ce [1] = HF loss (labels = processor labels: -100 on the prefix).
   Metadata: captions, prompt, image paths, versions.
3. --coco: how the suffix tokens relate to Gemma-2's "<bos> caption" tokens, with the real
   Gemma tokenizer (../shared/data/tokenizer) on the 25,014 COCO val2017 captions:
   written to tests/fixtures/suffix/coco_alignment.json.

Usage:
    /work/refenv/bin/python tools/reference/gen_suffix_goldens.py [--coco]
"""

import argparse
import copy
import hashlib
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_model_fixtures as gmf  # noqa: E402  (DecoderHooks, save_golden, versions)

GENERATOR = "tools/reference/gen_suffix_goldens.py"
# the shared data folder (RS_SHARED_DIR, default ../shared beside the repository)
DATA = os.path.join(os.environ.get("RS_SHARED_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared"), "data")
OUT = "tests/fixtures/suffix"
MODELS = "tests/fixtures/models"
PROMPT = "caption en"
NEWLINE_ID = 108
IMAGE_ID = 256

# (image, caption); the last caption of each checkpoint is longer than its sliding window
CAPTIONS = [
    ("images/skimage/chelsea.png", "a cat sleeping on a couch"),
    ("coco/mini/val2017/000000000139.jpg", "two dogs\nplaying in the snow"),
    ("images/skimage/coffee.png", "  a cup of coffee on a table  "),
]
LONG = {
    8: ("coco/mini/val2017/000000000802.jpg",
        "a large group of people standing on the side of a street"),
    32: ("coco/mini/val2017/000000000802.jpg",
         "a kitchen with a white stove, wooden cabinets and pots"),
}
# the suffix goldens cover these checkpoints (model dir, which runs)
SPECS = [
    ("paligemma-tiny-f32", [1, 2, 3]),
    ("paligemma-tiny-bf16", [3]),
    ("paligemma-tiny-model-prefix", [3]),
]

WORDS = ["a", "the", "cat", "on", "of", "in", "and", "cup", "coffee", "table", "sleeping", "couch",
         "two", "dogs", "playing", "snow", "large", "group", "people", "standing", "side", "street",
         "next", "to", "red", "bus", "caption", "en", "with", "white"]
BARE = {"a", "two", "caption"}  # also merged without the leading "\u2581" (caption / prompt starts)


def build_tiny_tokenizer():
    """Gemma-structured tokenizer.json with < 256 ids ("\n" = 108, <image> = 256)."""
    sp = "\u2581"
    chars = [sp] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + \
            [chr(c) for c in range(ord("A"), ord("Z") + 1)] + list("0123456789.,'!?-:;\"()/&")
    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}
    nxt = 4

    def add(p):
        nonlocal nxt
        if p in vocab:
            return
        if nxt == NEWLINE_ID:
            vocab["\n"] = NEWLINE_ID
            nxt += 1
        vocab[p] = nxt
        nxt += 1

    for ch in chars:
        add(ch)
    merges = []
    # words with and without the leading "\u2581" piece, merged left to right; "\u2581\u2581" too
    for w in WORDS:
        for lead in (sp, "") if w in BARE else (sp,):
            cur = lead + w[0] if lead else w[0]
            if lead:
                if [sp, w[0]] not in merges:
                    merges.append([sp, w[0]])
                add(cur)
            for ch in w[1:]:
                if [cur, ch] not in merges:
                    merges.append([cur, ch])
                cur += ch
                add(cur)
    merges.append([sp, sp])
    add(sp + sp)
    if "\n" not in vocab:
        while nxt < NEWLINE_ID:
            add(f"<unused{nxt}>")
        add("\n")
    assert vocab["\n"] == NEWLINE_ID and max(vocab.values()) < IMAGE_ID, max(vocab.values())
    while nxt < IMAGE_ID:  # contiguous ids: transformers renumbers an added token after a gap
        add(f"<unused{nxt}>")

    def special(i, c, sp_=True):
        return {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": sp_}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [special(0, "<pad>"), special(1, "<eos>"), special(2, "<bos>"), special(3, "<unk>"),
                         special(IMAGE_ID, "<image>")],
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": sp},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<bos>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": sp}, "content": " "}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def write_tokenizer_dir(tj, d):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(tj, f, ensure_ascii=False, indent=1)
        f.write("\n")
    # the real Gemma tokenizer_config (shared/data/tokenizer) says GemmaTokenizer, add_bos_token
    cfg = {"tokenizer_class": "GemmaTokenizer", "add_bos_token": True, "add_eos_token": False,
           "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
           "model_max_length": 1000000}
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")


def make_processor(tok_dir, model_dir):
    from transformers import AutoImageProcessor, AutoTokenizer, PaliGemmaProcessor
    tok = AutoTokenizer.from_pretrained(tok_dir)
    ip = AutoImageProcessor.from_pretrained(model_dir, backend="pil")
    return PaliGemmaProcessor(image_processor=ip, tokenizer=tok)


def gen_model(name, runs, tok_dir):
    from PIL import Image
    from transformers import PaliGemmaForConditionalGeneration
    mdir = os.path.join(MODELS, name)
    m = gmf.load_eager(PaliGemmaForConditionalGeneration, mdir)
    c = m.config.text_config
    itok = m.config.image_token_index
    proc = make_processor(tok_dir, mdir)
    assert proc.image_token_id == IMAGE_ID
    N = proc.image_seq_length
    W = c.sliding_window
    caps = CAPTIONS + [LONG[W]]
    hooks = gmf.DecoderHooks(m.model.language_model)
    tensors, meta_runs = {}, []
    try:
        for k, ci in enumerate(runs):
            rel, cap = caps[ci]
            img = Image.open(os.path.join(DATA, rel))
            b = proc(images=img, text=PROMPT, suffix=cap, return_tensors="pt")
            ids = b["input_ids"][0].clone()
            tt = b["token_type_ids"][0]
            labels = b["labels"][0]
            ids[ids == proc.image_token_id] = itok
            labels[labels == proc.image_token_id] = itok
            T = ids.shape[0]
            P = int((tt == 0).sum())
            assert torch.all(tt[:P] == 0) and torch.all(tt[P:] == 1)
            assert ids[P - 1] == NEWLINE_ID and ids[N] == c.bos_token_id and ids[-1] == c.eos_token_id
            assert torch.all(ids[:N] == itok)
            if ci == 3:
                assert T - P > W, (name, T - P, W)
            hooks.reset()
            with torch.no_grad():
                out = m(input_ids=ids[None], pixel_values=b["pixel_values"], token_type_ids=tt[None],
                        labels=labels[None], output_hidden_states=True, use_cache=False)
            acts = hooks.finish(c.num_hidden_layers, c.rms_norm_eps)
            gmf.check_hidden_states(out.hidden_states, acts, c.num_hidden_layers, f"{name} s{k}")
            pre = f"s{k}."
            tensors[pre + "ids"] = ids.to(torch.int32)
            tensors[pre + "token_type_ids"] = tt.to(torch.int32)
            tensors[pre + "prefix_len"] = torch.tensor([P], dtype=torch.int32)
            rows = torch.cat([torch.arange(N), torch.arange(P, T)])
            for hk, v in acts.items():
                tensors[pre + hk] = v[rows].contiguous()
            tensors[pre + "ce"] = out.loss.detach().float().reshape(1)
            meta_runs.append(dict(image=rel, caption=cap, T=T, prefix_len=P, suffix_len=T - P,
                                  n_image_tokens=N, sliding_window=W))
    finally:
        hooks.remove()
    meta = dict(gmf.versions())
    import tokenizers
    meta.update({
        "generator": GENERATOR, "model": name, "prompt": PROMPT, "runs": json.dumps(meta_runs),
        "n_runs": str(len(runs)), "n_layers": str(c.num_hidden_layers), "tokenizers": tokenizers.__version__,
        "rows": "s{k}.<hook> rows = the N image tokens, then the T - P suffix tokens (caption tokens + <eos>)",
        "processor": "PaliGemmaProcessor(images=img, text=prompt, suffix=caption): input_ids, token_type_ids "
                     "(0 prefix, 1 suffix), labels; the processor's <image> id (256) mapped to image_token_index",
        "ce": "s{k}.ce = HF loss with the processor's labels (-100 on the prefix)",
    })
    gmf.save_golden(tensors, os.path.join(OUT, f"{name}.safetensors"), meta)
    os.chmod(os.path.join(OUT, f"{name}.safetensors"), 0o644)
    return meta_runs


def coco_alignment():
    """Suffix ids (processor) vs Gemma-2 '<bos>'+caption ids on the COCO captions."""
    from PIL import Image
    from transformers import AutoTokenizer, PaliGemmaProcessor, SiglipImageProcessor
    tdir = os.path.join(DATA, "tokenizer")
    g2 = AutoTokenizer.from_pretrained(tdir)  # Gemma-2: add_bos_token true
    ptok = AutoTokenizer.from_pretrained(tdir)  # the processor turns its BOS/EOS adding off
    ip = SiglipImageProcessor(size={"height": 14, "width": 14})
    ip.image_seq_length = 1
    proc = PaliGemmaProcessor(image_processor=ip, tokenizer=ptok)
    path = os.path.join(DATA, "text/coco_val2017_captions.txt")
    with open(path, "rb") as f:
        raw = f.read()
    caps = raw.decode("utf-8").split("\n")
    if caps and caps[-1] == "":
        caps.pop()
    img = Image.new("RGB", (14, 14))
    prefix = None
    n_same = 0
    diffs = []
    n_lead = n_trail = n_nl = 0
    import transformers.utils.logging as hf_logging
    hf_logging.set_verbosity_error()  # the "<image> tokens inferred" warning, once per call
    B = 1  # one call per caption, as a training collator would (no padding in the ids)
    for i0 in range(0, len(caps), B):
        chunk = caps[i0:i0 + B]
        b = proc(images=[img] * len(chunk), text=[PROMPT] * len(chunk), suffix=chunk)
        for j, cap in enumerate(chunk):
            ids, tt = list(b["input_ids"][j]), list(b["token_type_ids"][j])
            P = tt.index(1)
            if prefix is None:
                prefix = ids[:P]
            assert ids[:P] == prefix and all(t == 1 for t in tt[P:])
            suf = ids[P:]
            assert suf[-1] == ptok.eos_token_id
            want = g2(cap)["input_ids"]
            assert want[0] == g2.bos_token_id
            n_lead += cap != cap.lstrip()
            n_trail += cap != cap.rstrip()
            n_nl += "\n" in cap
            if suf[:-1] == want[1:]:
                n_same += 1
            elif len(diffs) < 20:
                diffs.append(dict(line=i0 + j + 1, caption=cap, suffix=suf, gemma2=want))
    # whitespace / special cases the COCO file lacks
    extra = []
    for cap in [" a cat", "a cat ", "  two  spaces  ", "a cat\non a mat", "\na cat", "a cat\n", "tab\there",
                "caf\u00e9 \U0001F600", "a <eos> inside", "<bos>a cat", ""]:
        b = proc(images=[img], text=[PROMPT], suffix=[cap])
        ids, tt = list(b["input_ids"][0]), list(b["token_type_ids"][0])
        suf = ids[tt.index(1):]
        want = g2(cap)["input_ids"]
        extra.append(dict(caption=cap, identical=suf[:-1] == want[1:], suffix=suf, gemma2=want))
    import tokenizers
    import transformers
    res = {
        "generator": GENERATOR,
        "versions": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
        "tokenizer_json_sha256": hashlib.sha256(open(os.path.join(tdir, "tokenizer.json"), "rb").read()).hexdigest(),
        "captions_sha256": hashlib.sha256(raw).hexdigest(),
        "captions": len(caps),
        "prefix_ids": prefix,
        "identical": n_same,
        "different": len(caps) - n_same,
        "with_leading_space": n_lead, "with_trailing_space": n_trail, "with_newline": n_nl,
        "rule": "suffix ids = processor(images, text='caption en', suffix=caption) input_ids where token_type_ids == 1, "
                "minus the final <eos>; gemma2 ids = tokenizer(caption) (add_bos_token) minus the leading <bos>",
        "first_differences": diffs,
        "extra_cases": extra,
    }
    with open(os.path.join(OUT, "coco_alignment.json"), "w") as f:
        json.dump(res, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"[coco] {n_same}/{len(caps)} captions give identical ids; leading space {n_lead}, "
          f"trailing space {n_trail}, newline {n_nl}; extra cases identical: "
          f"{sum(e['identical'] for e in extra)}/{len(extra)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--coco", action="store_true", help="also measure the COCO tokenisation agreement")
    ap.add_argument("--coco-only", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(OUT, exist_ok=True)
    if not a.coco_only:
        tj = build_tiny_tokenizer()
        tdir = os.path.join(OUT, "tiny_tokenizer")
        write_tokenizer_dir(tj, tdir)
        # the tokenizer as loaded by transformers must match the file's own pipeline
        from tokenizers import Tokenizer
        from transformers import AutoTokenizer
        raw = Tokenizer.from_file(os.path.join(tdir, "tokenizer.json"))
        hf = AutoTokenizer.from_pretrained(tdir)
        for cap in [c for _, c in CAPTIONS] + [c for _, c in LONG.values()] + [PROMPT + "\n"]:
            assert hf(cap)["input_ids"] == raw.encode(cap).ids, cap
        for name, runs in SPECS:
            mr = gen_model(name, runs, tdir)
            print(f"[suffix] {name}: " + ", ".join(f"{r['caption']!r}: P={r['prefix_len']} suffix={r['suffix_len']} "
                                                   f"(window {r['sliding_window']})" for r in mr))
    if a.coco or a.coco_only:
        coco_alignment()
    return 0


if __name__ == "__main__":
    sys.exit(main())
