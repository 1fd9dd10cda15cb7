#!/usr/bin/env python3
"""Golden token ids for the Gemma tokenizer, from the reference libraries.

Reference = Hugging Face `tokenizers` (Rust) loading the real tokenizer.json directly;
transformers' AutoTokenizer (GemmaTokenizer, fast backend) on the same folder is run as a
cross-check and its agreement is recorded. Nothing here comes from reprshift's C code.

Writes into --out (default tests/fixtures/tokenizer):
  coco_ids.txt.gz      line 1: JSON header (versions, source sha256, counts); then one line per
                       caption of shared/data/text/coco_val2017_captions.txt: ids WITH <bos>,
                       space-separated (the texts themselves are read from the shared file).
  hard_cases.jsonl     hand-made edge cases: text (+ utf8 hex), ids with/without bos, decode
                       of the ids with and without skip_special_tokens.
  random_cases.jsonl   1,000 random strings glued from awkward fragments (seeded): ids with bos, decode.
  decode_cases.jsonl   id sequences built by hand (broken byte runs, specials) -> decoded text.
  paligemma_cases.jsonl  the same tokenizer after adding PaliGemma's tokens
                       (<loc0000>..<loc1023>, <seg000>..<seg127>, then <image> special),
                       with the ids the library assigned and encodings of prompts using them.
  flag_cases.jsonl     tokens added with lstrip/rstrip/single_word/normalized flags and encodings.
  tiny_bpe.json, tiny_cases.jsonl  a hand-written small tokenizer.json and its encodings.
  meta.json            versions, paths, sha256s, counts, transformers agreement.

Usage:
  /work/refenv/bin/python tools/reference/gen_tokenizer_goldens.py [--out DIR]
  env RS_TOKENIZER_JSON overrides the tokenizer.json path (default ../shared/data/tokenizer/tokenizer.json)
"""

import argparse
import gzip
import hashlib
import json
import os
import sys

import tokenizers
from tokenizers import AddedToken, Tokenizer

GENERATOR = "tools/reference/gen_tokenizer_goldens.py"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SHARED = os.environ.get("RS_SHARED_DIR", os.path.join(REPO, "..", "shared"))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hard_cases():
    """(name, text) pairs covering the tricky parts of the pipeline."""
    base = [
        ("empty", ""),
        ("space", " "),
        ("two_spaces", "  "),
        ("many_spaces", " " * 17),
        ("hello", "Hello world"),
        ("hello_lead", " Hello world"),
        ("hello_trail", "Hello world "),
        ("hello_both", "   Hello   world   "),
        ("tab", "a\tb"),
        ("tabs", "\t\t\tindented\t"),
        ("newline", "line one\nline two"),
        ("newlines", "\n\n\nx\n\n"),
        ("crlf", "windows\r\nline\r\n"),
        ("cr", "old\rmac"),
        ("mixed_ws", " \t \n \r\n  \t"),
        ("vtab_ff", "a\x0bb\x0cc"),
        ("digits", "0123456789"),
        ("long_number", "3141592653589793238462643383279502884197169399375105820974944"),
        ("numbers_text", "In 2017, 1,234,567 people paid $3.50 (or 12.5%) each."),
        ("accents", "café naïve résumé Zürich São Paulo Ångström"),
        ("german", "Straße Größe Übermäßig"),
        ("french", "L'été où j'ai vu ça, c'était génial !"),
        ("decomposed", "cafe\u0301 nai\u0308ve"),
        ("greek", "Καλημέρα κόσμε"),
        ("cyrillic", "Привет, мир! Съешь же ещё этих мягких французских булок."),
        ("arabic", "مرحبا بالعالم"),
        ("hebrew", "שלום עולם"),
        ("hindi", "नमस्ते दुनिया"),
        ("thai", "สวัสดีชาวโลก"),
        ("cjk_zh", "你好，世界！今天天气很好。"),
        ("cjk_ja", "こんにちは世界、カタカナとひらがな"),
        ("cjk_ko", "안녕하세요 세계"),
        ("emoji", "I love 🍕 and 🐶!"),
        ("emoji_zwj", "family 👨‍👩‍👧‍👦 and 🏳️‍🌈 flag"),
        ("emoji_skin", "👍🏽 👋🏿"),
        ("emoji_flags", "🇫🇷🇯🇵🇺🇸"),
        ("emoji_only", "😀😃😄😁😆😅😂🤣"),
        ("math", "∀x∈ℝ: x² ≥ 0 ⇒ √(x²) = |x|"),
        ("symbols", "© ® ™ § ¶ † ‡ • … ‰ ′ ″ ‹ › « » ¿ ¡"),
        ("rare_cjk_ext_b", "𠀀𠀁𠀂"),
        ("hieroglyph", "𓀀𓀁𓂀"),
        ("private_use", "\ue000\uf8ff"),
        ("max_codepoint", "\U0010ffff"),
        ("control_chars", "a\x01b\x02c\x1fd\x7f"),
        ("nul", "before\x00after"),
        ("nbsp", "non\u00a0breaking\u2009thin\u3000ideographic"),
        ("zero_width", "zero\u200bwidth\u200cjoiner\u200d\ufeffbom"),
        ("rtl_mark", "abc\u200fdef\u202eghi"),
        ("bos_text", "<bos>"),
        ("bos_in_text", "hello<bos>world"),
        ("bos_spaces", " <bos> x"),
        ("eos_text", "end<eos>"),
        ("pad_unk", "<pad><unk><mask>"),
        ("turns", "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n"),
        ("unused5", "<unused5>"),
        ("unused_many", "<unused0><unused10><unused99><unused98>"),
        ("partial_bo", "<bo"),
        ("partial_bos", "<bos"),
        ("partial_turn", "<start_of_tur"),
        ("nested_angle", "<<bos>>"),
        ("bos_twice", "<bos><bos>"),
        ("lt_gt", "a < b > c <> <"),
        ("html", "<table><tr><td>cell</td></tr></table>"),
        ("image_literal", "<image> describe"),
        ("loc_literal", "<loc0000><loc1023><seg127>"),
        ("code", "def f(x):\n    return x ** 2  # square\n"),
        ("json", '{"key": [1, 2, 3], "nested": {"a": null}}'),
        ("url", "https://example.com/path?q=1&r=two#frag"),
        ("email", "someone@example.org"),
        ("punct_run", "!!!???...,,,;;;:::---___"),
        ("quotes", "\u201cquoted\u201d \u2018single\u2019 \"plain\" 'plain'"),
        ("underscore_lower_block", "\u2581already\u2581metaspace\u2581"),
        ("long_word", "Pneumonoultramicroscopicsilicovolcanoconiosis" * 3),
        ("very_long_word", "a" * 1000),
        ("very_long_mixed", ("xyzzy" + "ü") * 200),
        ("long_spaces_word", "word" + " " * 300 + "word"),
        ("repeated_emoji", "🎉" * 50),
        ("caption_like", "A man riding a wave on top of a surfboard."),
        ("caption_caps", "A MAN RIDING A WAVE ON TOP OF A SURFBOARD."),
        ("caption_nopunct", "two dogs playing in the snow"),
        ("mixed_scripts", "English, 日本語, русский, العربية, and emoji 🤖 together."),
    ]
    cases = list(base)
    # Systematic whitespace variants of a few short texts.
    for stem in ["dog", "The cat", "café", "<bos>", "🍕", "12 34"]:
        for pre, post, tag in [(" ", "", "lead1"), ("  ", "", "lead2"), ("", " ", "trail1"),
                               ("", "  ", "trail2"), ("\n", "\n", "nl"), ("\t", "\t", "tab"),
                               ("\r\n", "\r\n", "crlf"), (" ", " ", "both")]:
            cases.append((f"ws_{tag}_{stem}", pre + stem + post))
    # Special-token text glued to words and spaces in every arrangement.
    for tok in ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>", "<unused5>", "<mask>", "[@BOS@]"]:
        for tmpl in ["{t}", "x{t}", "{t}x", "x {t} y", " {t}", "{t} ", "{t}{t}", "a{t}b{t}c"]:
            cases.append((f"special_{tok}_{tmpl}", tmpl.format(t=tok)))
    # Every single printable ASCII char, and doubled.
    for c in range(32, 127):
        cases.append((f"ascii_{c}", chr(c)))
        cases.append((f"ascii2_{c}", chr(c) * 2 + " " + chr(c)))
    # Each Latin-1 supplement letter, as a word.
    for c in range(0xC0, 0x100):
        cases.append((f"latin1_{c:02x}", "x" + chr(c) + "y " + chr(c)))
    # A sweep of code points from many blocks (some surely need byte fallback).
    for cp in [0x0100, 0x0250, 0x0370, 0x0530, 0x0600, 0x0900, 0x0E00, 0x10A0, 0x1100, 0x13A0,
               0x1680, 0x1E00, 0x2100, 0x2200, 0x2500, 0x2600, 0x2700, 0x2C00, 0x3040, 0x3100,
               0x4E00, 0xA000, 0xAC00, 0xD7A3, 0xFB00, 0xFE30, 0xFF01, 0x10000, 0x1D400,
               0x1F300, 0x1F600, 0x1FA70, 0x20000, 0x2A700, 0xE0001, 0xF0000]:
        s = "".join(chr(cp + k) for k in range(0, 12))
        cases.append((f"block_{cp:05x}", s + " " + s[:3]))
    return cases


def decode_id_cases(tok):
    """Hand-made id sequences exercising the decoder (byte runs, invalid UTF-8, specials)."""
    b = lambda x: tok.token_to_id("<0x%02X>" % x)
    t = tok.token_to_id
    hello = tok.encode("Hello world", add_special_tokens=False).ids
    return [
        ("bytes_valid_3", [b(0xE5), b(0x8F), b(0xAB)]),
        ("bytes_truncated", [b(0xE5), b(0x8F)]),
        ("bytes_truncated_then_word", [b(0xE5), b(0x8F)] + hello),
        ("bytes_lone_continuation", [b(0x80)]),
        ("bytes_valid_then_invalid", [b(0x41), b(0xFF), b(0x42)]),
        ("bytes_two_runs", [b(0xE2), b(0x82), b(0xAC)] + hello + [b(0xF0), b(0x9F), b(0x98), b(0x80)]),
        ("bytes_overlong", [b(0xC0), b(0xAF)]),
        ("bytes_surrogate", [b(0xED), b(0xA0), b(0x80)]),
        ("bytes_newline", [b(0x0A), b(0x41)]),
        ("specials", [t("<bos>")] + hello + [t("<eos>"), t("<pad>")]),
        ("turn_tokens", [t("<start_of_turn>")] + hello + [t("<end_of_turn>")]),
        ("metaspace_only", [t("▁")] * 3),
        ("unk", [t("<unk>"), t("<unk>")]),
        ("unused", [t("<unused5>"), t("<mask>")]),
        ("empty", []),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "tokenizer"))
    ap.add_argument("--captions", default=os.path.join(SHARED, "data", "text", "coco_val2017_captions.txt"))
    args = ap.parse_args()
    tok_path = os.environ.get("RS_TOKENIZER_JSON",
                              os.path.join(SHARED, "data", "tokenizer", "tokenizer.json"))
    os.makedirs(args.out, exist_ok=True)

    tok = Tokenizer.from_file(tok_path)
    import transformers
    from transformers import AutoTokenizer
    hf = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(tok_path)))
    versions = {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__,
                "python": sys.version.split()[0]}
    src = {"tokenizer_json_sha256": sha256(tok_path), "captions_sha256": sha256(args.captions)}
    disagree = []

    def check_hf(name, text, ids_bos):
        got = hf(text, add_special_tokens=True)["input_ids"]
        if got != ids_bos:
            disagree.append({"name": name, "tokenizers": ids_bos, "transformers": got})

    # 1. COCO captions, all lines.
    with open(args.captions, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    encs = tok.encode_batch(lines, add_special_tokens=True)
    n_tok = 0
    n_roundtrip = sum(tok.decode(e.ids, skip_special_tokens=True) == line for line, e in zip(lines, encs))
    header = {"generator": GENERATOR, "versions": versions, **src, "lines": len(lines), "with_bos": True,
              "decode_skip_special_equals_line": n_roundtrip,
              "format": "one line per caption: space-separated ids with <bos>"}
    with gzip.GzipFile(os.path.join(args.out, "coco_ids.txt.gz"), "wb", mtime=0) as g:
        g.write((json.dumps(header) + "\n").encode())
        for i, (line, e) in enumerate(zip(lines, encs)):
            n_tok += len(e.ids)
            g.write((" ".join(map(str, e.ids)) + "\n").encode())
            if i % 25 == 0:
                check_hf(f"coco_{i}", line, e.ids)
    hf_checked = (len(lines) + 24) // 25

    # 2. Hand-made cases.
    cases = hard_cases()
    with open(os.path.join(args.out, "hard_cases.jsonl"), "w", encoding="utf-8") as f:
        for name, text in cases:
            ids_bos = tok.encode(text, add_special_tokens=True).ids
            ids = tok.encode(text, add_special_tokens=False).ids
            check_hf(name, text, ids_bos)
            hf_checked += 1
            rec = {"name": name, "text": text, "utf8_hex": text.encode("utf-8").hex(),
                   "ids_bos": ids_bos, "ids": ids,
                   "decoded": tok.decode(ids_bos, skip_special_tokens=False),
                   "decoded_skip_special": tok.decode(ids_bos, skip_special_tokens=True)}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")

    # 2b. Random strings glued from awkward fragments (fixed seed): a differential fuzz.
    import random
    rng = random.Random(20240601)
    frags = ["<", ">", "bos", "<bos>", "<eos>", "<start_of_turn>", "<unused5>", "<bo", "s>", " ", "  ", "\n",
             "\t", "\r\n", "a", "the", "The", "ing", "é", "ü", "ß", "日本", "語", "🍕", "👨\u200d👩", "🏳️\u200d🌈",
             "\u2581", "1", "23", "4567", ".", ",", "!", "?", "'", '"', "-", "_", "ab", "xyz", "http://", "\u00a0",
             "\u3000", "\u200b", "\x01", "\U0001d400", "\U00020000", "\ue000", "مرحبا", "שלום", "Привет"]
    rand_cases = []
    for i in range(1000):
        k = rng.randint(0, 20)
        text = "".join(rng.choice(frags) if rng.random() < 0.85 else chr(rng.randint(0x20, 0x2FFFF))
                       for _ in range(k))
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")  # no lone surrogates
        rand_cases.append(text)
    with open(os.path.join(args.out, "random_cases.jsonl"), "w", encoding="utf-8") as f:
        for i, text in enumerate(rand_cases):
            ids_bos = tok.encode(text, add_special_tokens=True).ids
            check_hf(f"random_{i}", text, ids_bos)
            hf_checked += 1
            f.write(json.dumps({"utf8_hex": text.encode("utf-8").hex(), "ids_bos": ids_bos,
                                "decoded": tok.decode(ids_bos, skip_special_tokens=False)},
                               ensure_ascii=False) + "\n")

    # 3. Decoder-only cases.
    with open(os.path.join(args.out, "decode_cases.jsonl"), "w", encoding="utf-8") as f:
        for name, ids in decode_id_cases(tok):
            assert all(i is not None for i in ids), name
            rec = {"name": name, "ids": ids,
                   "decoded": tok.decode(ids, skip_special_tokens=False),
                   "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")

    # 4. PaliGemma: add loc/seg as plain added tokens, then <image> as a special token.
    #    (This order reproduces the PaliGemma vocab layout 256000.. / 257152; the
    #    PaliGemmaProcessor itself adds <image> first, which only matches that layout
    #    because the Hub PaliGemma tokenizer already holds loc/seg in its model vocab.)
    extra = [f"<loc{i:04d}>" for i in range(1024)] + [f"<seg{i:03d}>" for i in range(128)]
    pg = Tokenizer.from_file(tok_path)
    n_added = pg.add_tokens(extra)
    n_special = pg.add_special_tokens([AddedToken("<image>", normalized=False, special=True)])
    hfp = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(tok_path)))
    hfp.add_tokens(extra)
    hfp.add_special_tokens({"additional_special_tokens": [AddedToken("<image>", normalized=False, special=True)]})
    pg_added = {str(k): {"content": v.content, "special": v.special, "normalized": v.normalized,
                         "lstrip": v.lstrip, "rstrip": v.rstrip, "single_word": v.single_word}
                for k, v in pg.get_added_tokens_decoder().items() if k in (256000, 257023, 257024, 257151, 257152)}
    pg_texts = [
        ("prefix_224", "<image>" * 4 + "<bos>" + "caption en\n"),
        ("detect", "<image><image><bos>detect cat ; dog\n"),
        ("loc_answer", "<loc0123><loc0456><loc0789><loc1023> cat ; <loc0000><loc0001><loc0002><loc0003> dog"),
        ("seg_answer", "<seg000><seg064><seg127> mask"),
        ("loc_glued", "x<loc0005>y<seg010>z"),
        ("loc_spaces", " <loc0005> <loc0006> "),
        ("loc_partial", "<loc00><loc10000><seg128><seg12>"),
        ("loc_bad_case", "<LOC0001><Loc0001>"),
        ("image_glued", "a<image>b<image><image>"),
        ("segment_prompt", "<image><bos>segment the red car\n"),
        ("plain_caption", "A man riding a wave on top of a surfboard."),
    ]
    pg_disagree = []
    with open(os.path.join(args.out, "paligemma_cases.jsonl"), "w", encoding="utf-8") as f:
        f.write(json.dumps({"added_in_order": ["loc/seg via add_tokens (normalized=True, special=False)",
                                               "<image> via add_special_tokens (normalized=False, special=True)"],
                            "n_added": n_added, "n_special": n_special,
                            "vocab_size_with_added": pg.get_vocab_size(with_added_tokens=True),
                            "ids": {p: pg.token_to_id(p) for p in ["<loc0000>", "<loc1023>", "<seg000>", "<seg127>", "<image>"]},
                            "added_tokens": pg_added}) + "\n")
        for name, text in pg_texts:
            ids_bos = pg.encode(text, add_special_tokens=True).ids
            ids = pg.encode(text, add_special_tokens=False).ids
            hid = hfp(text, add_special_tokens=False)["input_ids"]
            if hid != ids:
                pg_disagree.append({"name": name, "tokenizers": ids, "transformers": hid})
            rec = {"name": name, "text": text, "ids_bos": ids_bos, "ids": ids,
                   "decoded": pg.decode(ids, skip_special_tokens=False),
                   "decoded_skip_special": pg.decode(ids, skip_special_tokens=True)}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")

    # 5. Added tokens with every matching flag (on top of the real tokenizer).
    flag_tokens = [
        dict(content="<strip_both>", lstrip=True, rstrip=True, single_word=False, normalized=False, special=True),
        dict(content="<lstrip>", lstrip=True, rstrip=False, single_word=False, normalized=False, special=False),
        dict(content="<rstrip>", lstrip=False, rstrip=True, single_word=False, normalized=False, special=False),
        dict(content="ony", lstrip=False, rstrip=False, single_word=True, normalized=False, special=False),
        dict(content="two words", lstrip=False, rstrip=False, single_word=False, normalized=True, special=False),
        dict(content="cat dog", lstrip=False, rstrip=False, single_word=False, normalized=False, special=False),
        dict(content="catalog", lstrip=False, rstrip=False, single_word=False, normalized=True, special=False),
        dict(content="<bos>", lstrip=True, rstrip=False, single_word=False, normalized=False, special=True),
    ]
    ft = Tokenizer.from_file(tok_path)
    ft.add_tokens([AddedToken(d["content"], single_word=d["single_word"], lstrip=d["lstrip"], rstrip=d["rstrip"],
                              normalized=d["normalized"], special=d["special"]) for d in flag_tokens])
    flag_texts = [
        "a <strip_both> b", "a\t\n <strip_both>\u3000 b", "x <lstrip> y", "x <rstrip> y", "x<lstrip><rstrip>y",
        "<rstrip>   <lstrip>", "<strip_both> <strip_both>", "Anthony ony phony ony, (ony) ony_x ony1 ébony ony",
        "two words and two  words", "a cat dog and a cat  dog", "catalog catalogue", "  <bos>  hi <bos>",
        "mixed <lstrip>two words<rstrip>ony", "",
    ]
    with open(os.path.join(args.out, "flag_cases.jsonl"), "w", encoding="utf-8") as f:
        f.write(json.dumps({"added_tokens": flag_tokens, "ids": {d["content"]: ft.token_to_id(d["content"]) for d in flag_tokens}},
                           ensure_ascii=False) + "\n")
        for text in flag_texts:
            ids = ft.encode(text, add_special_tokens=False).ids
            f.write(json.dumps({"text": text, "ids": ids, "decoded": ft.decode(ids, skip_special_tokens=False),
                                "decoded_skip_special": ft.decode(ids, skip_special_tokens=True)},
                               ensure_ascii=False) + "\n")

    # 6. A tiny hand-written tokenizer.json exercising the paths Gemma does not use:
    #    merges as [a, b] arrays, unk fusing without byte fallback, a Prepend+Replace
    #    normalizer sequence, a Strip decoder and a <s> ... </s> template.
    tiny = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 0, "content": "<unk>", "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True},
                         {"id": 1, "content": "<s>", "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True},
                         {"id": 2, "content": "</s>", "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True}],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                            {"type": "Replace", "pattern": {"String": " "},
                                                             "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                                              "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
        "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                                      {"type": "Fuse"},
                                                      {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "\u2581": 3, "a": 4, "b": 5, "c": 6, "ab": 7, "bc": 8,
                            "abc": 9, "\u2581a": 10, "\u2581ab": 11, "\u2581abc": 12, "bb": 13, "abb": 14},
                  "merges": [["a", "b"], ["b", "c"], ["\u2581", "a"], ["\u2581a", "b"], ["b", "b"], ["ab", "c"],
                             ["a", "bc"], ["\u2581ab", "c"], ["ab", "b"]]},
    }
    tiny_path = os.path.join(args.out, "tiny_bpe.json")
    with open(tiny_path, "w", encoding="utf-8") as f:
        json.dump(tiny, f, ensure_ascii=False, indent=1)
    tt = Tokenizer.from_file(tiny_path)
    tiny_texts = ["abc", "ab c", "abbc abc", "xyz", "axyb", "a  b", " abc", "abc ", "", "<s>abc</s>", "ééab",
                  "bcbc abcabc", "cab bab"]
    with open(os.path.join(args.out, "tiny_cases.jsonl"), "w", encoding="utf-8") as f:
        for text in tiny_texts:
            ids_bos = tt.encode(text, add_special_tokens=True).ids
            ids = tt.encode(text, add_special_tokens=False).ids
            f.write(json.dumps({"text": text, "ids_bos": ids_bos, "ids": ids,
                                "decoded": tt.decode(ids_bos, skip_special_tokens=False),
                                "decoded_skip_special": tt.decode(ids_bos, skip_special_tokens=True)},
                               ensure_ascii=False) + "\n")

    meta = {"generator": GENERATOR, "versions": versions, **src,
            "tokenizer_json": "shared/data/tokenizer/tokenizer.json",
            "coco_lines": len(lines), "coco_decode_skip_special_equals_line": n_roundtrip, "coco_tokens_with_bos": n_tok, "hard_cases": len(cases), "random_cases": len(rand_cases),
            "transformers_cross_check": {"checked": hf_checked, "disagreements": disagree[:20],
                                         "n_disagreements": len(disagree),
                                         "paligemma_disagreements": pg_disagree}}
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(json.dumps({k: meta[k] for k in ["coco_lines", "coco_tokens_with_bos", "hard_cases"]}),
          "transformers disagreements:", len(disagree), len(pg_disagree))


if __name__ == "__main__":
    main()
