#!/usr/bin/env python3
"""Write the hand-made bad files of the malformed-input suite (tests/malformed/).

Run from the repo root: /work/refenv/bin/python tests/malformed/make_cases.py
Every file is tiny and deliberately broken in exactly one way; cases.tsv says which
command reads it and which keyword its error must contain. numpy / Pillow are used only
to produce otherwise-valid containers (npy headers, JPEG streams) that are then broken."""
import io, json, os, struct, zipfile, zlib
import numpy as np
from PIL import Image

D = os.path.dirname(os.path.abspath(__file__))


def w(name, data):
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(D, name), "wb") as f:
        f.write(data)


def st(header, data=b"", hlen=None):
    """A safetensors file from a header (dict or raw bytes) and a data section."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(h) if hlen is None else hlen) + h + data


T = lambda dt, shape, a, b: {"dtype": dt, "shape": shape, "data_offsets": [a, b]}

# ---- safetensors (reprshift inspect FILE) ----
w("st_empty.safetensors", b"")
w("st_short.safetensors", b"\x05\x00\x00")
w("st_header_past_end.safetensors", st(b'{"a":{}}', hlen=1000))
w("st_header_huge.safetensors", st(b"{}", hlen=1 << 40))
w("st_header_not_json.safetensors", st(b'{"w": {"dtype": "F32", "shape": [1], '))
w("st_header_not_object.safetensors", st(b"[1, 2, 3]"))
w("st_offsets_past_end.safetensors", st({"w": T("F32", [4], 0, 16)}, b"\0" * 8))
w("st_offsets_reversed.safetensors", st({"w": T("F32", [1], 8, 4)}, b"\0" * 8))
w("st_overlap.safetensors", st({"a": T("F32", [2], 0, 8), "b": T("F32", [2], 4, 12)}, b"\0" * 12))
w("st_shape_overflow.safetensors", st({"w": T("F32", [1 << 31, 1 << 31, 1 << 31], 0, 4)}, b"\0" * 4))
w("st_dtype_bytes_mismatch.safetensors", st({"w": T("F32", [3], 0, 8)}, b"\0" * 8))
w("st_unknown_dtype.safetensors", st({"w": T("Q4_K", [2], 0, 2)}, b"\0" * 2))
w("st_duplicate_name.safetensors",
  st(b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', b"\0" * 8))
w("st_non_utf8_header.safetensors", st(b'{"w\xff\xfe":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4))
w("st_deep_nesting.safetensors", st(b'{"__metadata__":' + b"[" * 5000 + b"]" * 5000 + b"}"))
w("st_negative_shape.safetensors", st({"w": T("F32", [-1, 4], 0, 0)}))
w("st_too_many_dims.safetensors", st({"w": T("F32", [1] * 12, 0, 4)}, b"\0" * 4))
w("st_metadata_not_string.safetensors", st({"__metadata__": {"format": 7}}))
w("st_nul_in_header.safetensors", st(b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}\x00   ', b"\0" * 4))
w("st_missing_fields.safetensors", st({"w": {"dtype": "F32"}}))
w("st_fractional_offset.safetensors", st(b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0.5,4.5]}}', b"\0" * 8))

# ---- sharded checkpoints: directories with a model.safetensors.index.json ----
def index_dir(name, weight_map, shards=()):
    d = os.path.join(D, name)
    os.makedirs(d, exist_ok=True)
    w(os.path.join(name, "model.safetensors.index.json"), json.dumps({"metadata": {}, "weight_map": weight_map}))
    for s, hdr, data in shards:
        w(os.path.join(name, s), st(hdr, data))

index_dir("index_outside_dir", {"w": "../st_overlap.safetensors"})
index_dir("index_missing_shard", {"w": "model-00001-of-00002.safetensors"})
index_dir("index_empty_weight_map", {})
index_dir("index_wrong_shard", {"a": "s1.safetensors", "b": "s1.safetensors"},
          [("s1.safetensors", {"a": T("F32", [1], 0, 4)}, b"\0" * 4)])

# ---- config.json (reprshift inspect DIR, DIR holding only this config.json) ----
base = {"model_type": "gemma2", "vocab_size": 512, "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 128}
def cfg(name, **kw):
    c = dict(base); c.update(kw)
    w(name, json.dumps({k: v for k, v in c.items() if v is not None}))
cfg("cfg_unknown_model_type.json", model_type="llama")
cfg("cfg_too_many_layers.json", num_hidden_layers=100000)
cfg("cfg_heads_not_multiple.json", num_attention_heads=5)
cfg("cfg_rope_scaling.json", rope_scaling={"type": "linear", "factor": 2.0})
cfg("cfg_bad_activation.json", hidden_activation="relu")
cfg("cfg_layer_types_count.json", layer_types=["sliding_attention"])
cfg("cfg_fractional_size.json", hidden_size=64.5)
cfg("cfg_string_size.json", hidden_size="64")
w("cfg_pali_image_tokens.json", json.dumps({"model_type": "paligemma", "text_config": dict(base, vocab_size=257216),
    "vision_config": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
                      "patch_size": 14, "num_image_tokens": 2000 * 2000}}))
w("cfg_truncated.json", json.dumps(base)[:40])
w("cfg_non_utf8.json", json.dumps(base)[:-1].encode() + b', "name": "caf\xe9"}')
w("cfg_deep_nesting.json", b'{"x":' + b"[" * 100 + b"]" * 100 + b"}")
w("cfg_nan.json", json.dumps(base)[:-1] + ', "rms_norm_eps": NaN}')

# ---- tokenizer.json (reprshift tokenize --tokenizer FILE --text hi) ----
tiny = json.load(open(os.path.join(D, "..", "fixtures", "tokenizer", "tiny_bpe.json"), encoding="utf-8"))
def tok(name, mutate):
    t = json.loads(json.dumps(tiny)); mutate(t)
    w(name, json.dumps(t, ensure_ascii=False))
tok("tok_strip_huge.json", lambda t: t.update(decoder={"type": "Strip", "content": " ", "start": 1e20, "stop": 0}))
w("tok_truncated.json", json.dumps(tiny)[:300])
tok("tok_not_bpe.json", lambda t: t["model"].update(type="Unigram"))
tok("tok_vocab_negative_id.json", lambda t: t["model"]["vocab"].update({"zz": -3}))
tok("tok_vocab_duplicate_id.json", lambda t: t["model"]["vocab"].update({"zz": 3}))
tok("tok_vocab_sparse_ids.json", lambda t: t["model"]["vocab"].update({"zz": 60000000}))
tok("tok_dropout.json", lambda t: t["model"].update(dropout=0.1))
tok("tok_no_vocab.json", lambda t: t["model"].pop("vocab"))
w("tok_deep_nesting.json", b'{"model":' + b"{\"a\":" * 5000 + b"1" + b"}" * 5000 + b"}")
w("tok_non_utf8.json", json.dumps(tiny, ensure_ascii=False).encode().replace(b'"<unk>"', b'"<unk\xff>"', 1))

# ---- probes and activations (reprshift probe ...) ----
f32 = lambda *s: np.ones(s, np.float32).tobytes()
w("probe_no_format.safetensors", st({"coef": T("F64", [1, 2], 0, 16), "intercept": T("F64", [1], 16, 24)}, b"\0" * 24))
meta = {"format": "reprshift-probe-logreg-v1", "hook": "h", "classes": "[\"a\",", "C": "1", "standardized": "0"}
w("probe_bad_classes.safetensors", st({"__metadata__": meta, "coef": T("F64", [1, 2], 0, 16), "intercept": T("F64", [1], 16, 24)}, b"\0" * 24))
meta2 = dict(meta, classes='["a", "b", "c"]')
w("probe_coef_shape.safetensors", st({"__metadata__": meta2, "coef": T("F64", [1, 2], 0, 16), "intercept": T("F64", [1], 16, 24)}, b"\0" * 24))
w("acts_nan.safetensors", st({"h": T("F32", [3, 2], 0, 24)}, np.array([[1, 2], [np.nan, 0], [3, 4]], np.float32).tobytes()))
w("acts_3d.safetensors", st({"h": T("F32", [1, 3, 2], 0, 24)}, f32(1, 3, 2)))
w("acts_int.safetensors", st({"h": T("I32", [3, 2], 0, 24)}, b"\0" * 24))
w("acts_wrong_hook.safetensors", st({"other": T("F32", [3, 2], 0, 24)}, f32(3, 2)))
w("labels_blank_line.txt", "a\nb\n\nb\n")
w("labels_count_mismatch.txt", "a\nb\n")
# invalid UTF-8 labels must be refused naming the labels file (they end up in the probe's JSON card)
lab = open(os.path.join(D, "..", "fixtures", "probe", "cli_labels.txt"), "rb").read()
w("labels_non_utf8.txt", lab.replace(b"setosa", b"set\xffosa"))

# ---- npy / npz (library: npy_load / npz_open) ----
def npy_bytes(a, **kw):
    b = io.BytesIO(); np.lib.format.write_array(b, a, **kw); return b.getvalue()
def npy_hdr(d, payload=b""):
    h = repr(d).encode() + b" "
    h += b" " * (-(10 + len(h) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + payload
w("npy_fortran_order.npy", npy_hdr({"descr": "<f4", "fortran_order": True, "shape": (2, 2)}, b"\0" * 16))
w("npy_big_endian.npy", npy_bytes(np.arange(4, dtype=">f4")))
w("npy_object_dtype.npy", npy_hdr({"descr": "|O", "fortran_order": False, "shape": (1,)}, b"\0" * 8))
w("npy_truncated_data.npy", npy_bytes(np.arange(100, dtype=np.float32))[:200])
w("npy_shape_overflow.npy", npy_hdr({"descr": "<f4", "fortran_order": False, "shape": (1 << 40, 1 << 40, 1 << 40)}))
w("npy_header_past_end.npy", b"\x93NUMPY\x01\x00\xff\xff{'descr': '<f4'")
w("npy_bad_magic.npy", b"\x93NUMPX\x01\x00" + npy_bytes(np.zeros(2, np.float32))[8:])
w("npy_bad_header_syntax.npy", npy_hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (2,"))
def zip_bomb():
    # A stored member whose local and central headers claim 64 GiB uncompressed while the
    # npy header inside claims a [2**33, 2] float32 array: must be refused before inflating.
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("W_enc.npy", npy_hdr({"descr": "<f4", "fortran_order": False, "shape": (1 << 33, 2)}) + zlib.compress(b"")[:0] + b"\0" * 4096)
    return b.getvalue()
w("npz_bomb.npz", zip_bomb())
w("npz_not_zip.npz", b"PK\x03\x04 this is not really a zip archive")
def npz_with(name, data):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w") as z:
        z.writestr(name, data)
    return b.getvalue()
w("npz_member_not_npy.npz", npz_with("W_enc.npy", b"hello, not an npy"))
w("npz_truncated.npz", npz_with("W_enc.npy", npy_bytes(np.ones((8, 8), np.float32)))[:300])

# ---- images (library: rs_image_load) ----
def png_chunk(t, data):
    return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)
def png(wd, ht, idat=b"", crc_ok=True):
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", wd, ht, 8, 2, 0, 0, 0))
    if not crc_ok:
        ihdr = ihdr[:-4] + b"\0\0\0\0"
    return b"\x89PNG\r\n\x1a\n" + ihdr + png_chunk(b"IDAT", zlib.compress(idat)) + png_chunk(b"IEND", b"")
w("png_huge_dims.png", png(1 << 30, 1 << 30, b"\0" * 64))
w("png_too_many_pixels.png", png(60000, 60000, b"\0" * 64))
w("png_bad_crc.png", png(2, 2, b"\0" * 14, crc_ok=False))
w("png_truncated_idat.png", png(64, 64, bytes(range(256)) * 48)[:120])
img = Image.fromarray((np.arange(64 * 48 * 3) % 251).astype(np.uint8).reshape(48, 64, 3))
b = io.BytesIO(); img.save(b, "JPEG", quality=90); jpg = b.getvalue()
w("jpeg_truncated.jpg", jpg[: len(jpg) // 3])
sof = jpg.find(b"\xff\xc0")
w("jpeg_huge_dims.jpg", jpg[: sof + 5] + struct.pack(">HH", 65500, 65500) + jpg[sof + 9:])
w("jpeg_zero_width.jpg", jpg[: sof + 5] + struct.pack(">HH", 48, 0) + jpg[sof + 9:])
w("image_not_an_image.jpg", "this is a text file with a .jpg name\n")
w("image_empty.png", b"")

# ---- CSV manifests (library: rs_manifest_load) ----
w("csv_unterminated_quote.csv", 'modality,input,label\ntext,"a caption that never ends,animal\ntext,b,c\n')
w("csv_field_count.csv", "modality,input,label\ntext,a,animal,extra\n")
w("csv_bad_modality.csv", "modality,input,label\naudio,a.wav,animal\n")
w("csv_missing_column.csv", "modality,input\ntext,a\n")
w("csv_bad_image_id.csv", "modality,input,label,image_id\ntext,a,animal,12x\n")
w("csv_nul_byte.csv", b"modality,input,label\ntext,a\x00b,animal\n")
w("csv_bad_split.csv", "modality,input,label,split\ntext,a,animal,training\n")
w("csv_quote_in_field.csv", 'modality,input,label\ntext,a "quoted" word,animal\n')

# ---- COCO annotation JSON (library: coco_load) ----
coco = {"images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 2, "iscrowd": 0}],
        "categories": [{"id": 2, "name": "cat", "supercategory": "animal"}]}
def cc(name, mutate):
    c = json.loads(json.dumps(coco)); mutate(c); w(name, json.dumps(c))
w("coco_truncated.json", json.dumps(coco)[:70])
cc("coco_duplicate_image.json", lambda c: c["images"].append(dict(c["images"][0])))
cc("coco_unknown_image.json", lambda c: c["annotations"][0].update(image_id=99))
cc("coco_bad_width.json", lambda c: c["images"][0].update(width=-5))
w("coco_deep_nesting.json", b'{"info":' + b"[" * 3000 + b"]" * 3000 + b"}")
w("coco_non_utf8.json", json.dumps(coco)[:-1].encode() + b', "x": "\xc3\x28"}')

# ---- whole checkpoints (reprshift inspect DIR): config.json + weights that contradict it ----
# Tiny zero-weight checkpoints in the Hugging Face tensor layouts; each breaks one rule.
gcfg = {"model_type": "gemma2", "vocab_size": 16, "hidden_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4, "intermediate_size": 16}
def gemma_tensors(c, p="model."):
    D, F, hd = c["hidden_size"], c["intermediate_size"], c["head_dim"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    t = {p + "embed_tokens.weight": [c["vocab_size"], D], p + "norm.weight": [D]}
    for l in range(c["num_hidden_layers"]):
        a = "%slayers.%d." % (p, l)
        t.update({a + "self_attn.q_proj.weight": [q, D], a + "self_attn.k_proj.weight": [kv, D],
                  a + "self_attn.v_proj.weight": [kv, D], a + "self_attn.o_proj.weight": [D, q],
                  a + "mlp.gate_proj.weight": [F, D], a + "mlp.up_proj.weight": [F, D], a + "mlp.down_proj.weight": [D, F]})
        for n in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"):
            t[a + n + ".weight"] = [D]
    return t
vcfg = {"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16,
        "image_size": 4, "patch_size": 2}
pcfg = {"model_type": "paligemma", "image_token_index": 15, "projection_dim": 8, "text_config": gcfg, "vision_config": vcfg}
def pali_tensors(vp, mp, tp):
    V, F, P = vcfg["hidden_size"], vcfg["intermediate_size"], vcfg["patch_size"]
    n = (vcfg["image_size"] // P) ** 2
    t = {vp + "embeddings.patch_embedding.weight": [V, 3, P, P], vp + "embeddings.patch_embedding.bias": [V],
         vp + "embeddings.position_embedding.weight": [n, V], vp + "post_layernorm.weight": [V], vp + "post_layernorm.bias": [V],
         mp + "linear.weight": [pcfg["projection_dim"], V], mp + "linear.bias": [pcfg["projection_dim"]]}
    for l in range(vcfg["num_hidden_layers"]):
        a = "%sencoder.layers.%d." % (vp, l)
        for m, shp in (("self_attn.q_proj", [V, V]), ("self_attn.k_proj", [V, V]), ("self_attn.v_proj", [V, V]),
                       ("self_attn.out_proj", [V, V]), ("mlp.fc1", [F, V]), ("mlp.fc2", [V, F])):
            t[a + m + ".weight"] = shp; t[a + m + ".bias"] = [shp[0]]
        for m in ("layer_norm1", "layer_norm2"):
            t[a + m + ".weight"] = [V]; t[a + m + ".bias"] = [V]
    t.update(gemma_tensors(gcfg, tp))
    return t
def ckpt_dir(name, config, tensors, dtypes={}, ones=()):
    """Zero-filled BF16 weights (tensors in `ones` are all 1.0); name is relative to D."""
    os.makedirs(os.path.join(D, name), exist_ok=True)
    w(os.path.join(name, "config.json"), json.dumps(config))
    hdr, off, data = {}, 0, b""
    for k, shp in sorted(tensors.items()):
        dt = dtypes.get(k, "BF16")
        n = int(np.prod(shp))
        nb = n * (4 if dt in ("F32", "I32") else 2)
        hdr[k] = T(dt, shp, off, off + nb); off += nb
        data += (b"\x80\x3f" * n) if k in ones else b"\0" * nb
    w(os.path.join(name, "model.safetensors"), st(hdr, data))
g = gemma_tensors(gcfg)
ckpt_dir("model_missing_tensor", gcfg, {k: v for k, v in g.items() if k != "model.layers.0.mlp.up_proj.weight"})
ckpt_dir("model_hidden_contradicts", dict(gcfg, hidden_size=12), g)
ckpt_dir("model_extra_layer", gcfg, gemma_tensors(dict(gcfg, num_hidden_layers=2)))
ckpt_dir("model_int_weight", gcfg, g, {"model.layers.0.self_attn.o_proj.weight": "I32"})
ckpt_dir("model_int_norm", gcfg, g, {"model.norm.weight": "I32"})
ckpt_dir("model_head_untied_shape", gcfg, dict(g, **{"lm_head.weight": [15, 8]}))
hub = pali_tensors("vision_tower.vision_model.", "multi_modal_projector.", "language_model.model.")
pre = pali_tensors("model.vision_tower.vision_model.", "model.multi_modal_projector.", "model.language_model.")
ckpt_dir("pali_missing_vision_bias", pcfg, {k: v for k, v in hub.items() if not k.endswith("layers.0.mlp.fc2.bias")})
ckpt_dir("pali_vision_head", pcfg, dict(hub, **{"vision_tower.vision_model.head.probe": [1, 1, 8]}))
ckpt_dir("pali_prefix_missing_decoder", pcfg, {k: v for k, v in pre.items() if k != "model.language_model.layers.0.self_attn.k_proj.weight"})
ckpt_dir("pali_prefix_projector_shape", dict(pcfg, vision_config=dict(vcfg, hidden_size=6)), pre)
ckpt_dir("pali_prefix_int_bias", pcfg, pre, {"model.multi_modal_projector.linear.bias": "I32"})
ckpt_dir("pali_text_only", pcfg, gemma_tensors(gcfg, "language_model.model."))
ckpt_dir("pali_mixed_layouts", pcfg, dict(hub, **{"model.language_model.norm.weight": [8]}))
ckpt_dir("model_head_untied", gcfg, dict(g, **{"lm_head.weight": [16, 8]}), ones=("lm_head.weight",))
# valid counterparts (tests/cli_inspect.sh: exit 0), so each case above fails only for its own reason
for name, c, t in (("gemma_ok", gcfg, g), ("gemma_tied_head", gcfg, dict(g, **{"lm_head.weight": [16, 8]})),
                   ("pali_hub_ok", pcfg, hub), ("pali_prefix_ok", pcfg, pre),
                   ("pali_tied_head", pcfg, dict(hub, **{"language_model.lm_head.weight": [16, 8]}))):
    ckpt_dir(os.path.join("..", "fixtures", "inspect", name), c, t)

# ---- sae-lens folders (library: sae_load DIR) ----
def sae_dir(name, cfg_obj):
    os.makedirs(os.path.join(D, name), exist_ok=True)
    w(os.path.join(name, "cfg.json"), json.dumps(cfg_obj) if not isinstance(cfg_obj, (bytes, str)) else cfg_obj)
    w(os.path.join(name, "sae_weights.safetensors"), st({"W_enc": T("F32", [2, 3], 0, 24), "W_dec": T("F32", [3, 2], 24, 48),
        "b_enc": T("F32", [3], 48, 60), "b_dec": T("F32", [2], 60, 68)}, b"\0" * 68))
sae_dir("sae_huge_dims", {"d_in": 1 << 20, "d_sae": 1 << 24, "architecture": "standard"})
sae_dir("sae_unknown_arch", {"d_in": 2, "d_sae": 3, "architecture": "gated"})
sae_dir("sae_missing_d_in", {"d_sae": 3})
sae_dir("sae_shape_mismatch", {"d_in": 4, "d_sae": 3})
sae_dir("sae_cfg_truncated", '{"d_in": 2, "d_sae"')
print("written to", D)
