#!/usr/bin/env python3
"""Regenerate the seed corpora under fuzz/corpus/ (small files only).

Run from the repo root with the reference venv:  /work/refenv/bin/python fuzz/make_seeds.py
Seeds are copied from the golden fixtures and ../shared/data, or written here with the
reference libraries (numpy, safetensors, Pillow) so that they are real, valid files."""
import io, json, os, shutil, struct, sys, zipfile
import numpy as np
from safetensors.numpy import save as st_save
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
C = os.path.join(ROOT, "fuzz", "corpus")
FX = os.path.join(ROOT, "tests", "fixtures")
SHARED = os.environ.get("RS_SHARED_DIR", os.path.join(ROOT, "..", "shared"))


def put(target, name, data):
    d = os.path.join(C, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def copy(target, src, name=None):
    with open(src, "rb") as f:
        put(target, name or os.path.basename(src), f.read())


shutil.rmtree(C, ignore_errors=True)

# safetensors: every dtype, zero-length and scalar tensors, metadata
rng = np.random.default_rng(0)
st_save_meta = {"format": "pt", "note": "seed"}
put("safetensors", "dtypes.safetensors", st_save({
    "f32": rng.standard_normal((2, 3)).astype(np.float32),
    "f64": rng.standard_normal(3),
    "f16": rng.standard_normal(4).astype(np.float16),
    "i8": np.arange(5, dtype=np.int8), "i16": np.arange(3, dtype=np.int16),
    "i32": np.arange(3, dtype=np.int32), "i64": np.arange(2, dtype=np.int64),
    "u8": np.arange(3, dtype=np.uint8), "b": np.array([True, False]),
    "empty": np.zeros((0, 4), np.float32), "scalar": np.array(1.5, np.float32)}, metadata=st_save_meta))
put("safetensors", "one.safetensors", st_save({"w": np.ones((4, 4), np.float32)}))
hdr = b'{"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},"__metadata__":{"k":"v"}}'
hdr += b" " * (-len(hdr) % 8)
put("safetensors", "bf16.safetensors", struct.pack("<Q", len(hdr)) + hdr + bytes(range(8)))
copy("safetensors", os.path.join(FX, "probe", "lr_iris_raw_C100.safetensors"))
copy("safetensors", os.path.join(FX, "sae", "npz_expected.safetensors"))

# index.json for the shards fuzz_st_index writes (a: x, y; b: z; c: corrupt)
put("st_index", "ok.json", json.dumps({"metadata": {"total_size": 44},
    "weight_map": {"x": "a.safetensors", "y": "a.safetensors", "z": "b.safetensors"}}))
put("st_index", "bad_shard.json", json.dumps({"weight_map": {"x": "c.safetensors"}}))
put("st_index", "wrong_shard.json", json.dumps({"weight_map": {"x": "b.safetensors", "z": "b.safetensors"}}))
copy("st_index", os.path.join(FX, "models", "gemma2-tiny-bf16", "model.safetensors.index.json"))

# JSON and model configs
for m in ("gemma2-tiny-f32", "paligemma-tiny-f32", "paligemma-tiny-bf16"):
    copy("model_config", os.path.join(FX, "models", m, "config.json"), m + ".json")
    copy("json", os.path.join(FX, "models", m, "config.json"), m + ".json")
put("json", "misc.json", '{"a":[1,-2.5e3,true,false,null,"\\u00e9\\ud83d\\ude00\\n"],"b":{"c":{}},"d":9007199254740993}')
put("json", "nested.json", "[" * 60 + "]" * 60)

# tokenizer
copy("tokenizer_load", os.path.join(FX, "tokenizer", "tiny_bpe.json"))
for i, line in enumerate(open(os.path.join(SHARED, "data", "text", "coco_val2017_captions.txt"), encoding="utf-8")):
    if i >= 8:
        break
    put("tokenizer_encode", f"caption{i}", bytes([i & 7]) + line.strip().encode())
put("tokenizer_encode", "special", b"\x03<start_of_turn>user\n<image><loc0012><seg003>  caf\xc3\xa9\t\t\xe2\x96\x81 \xf0\x9f\x98\x80<eos>")
put("tokenizer_encode", "bytes", b"\x01\x00\xff\xfe\xc3\x28 \xe2\x82 tail")

# probe files and labels
for f in ("lr_iris_raw_C100", "lr_iris_std_C1", "lr_breast_cancer_std_C1"):
    copy("probe", os.path.join(FX, "probe", f + ".safetensors"))
put("probe", "acts.safetensors", st_save({"acts": rng.standard_normal((3, 4)).astype(np.float32)}))
copy("labels", os.path.join(FX, "probe", "cli_labels.csv"))
copy("labels", os.path.join(FX, "probe", "cli_labels_one_class.txt"))
put("labels", "quoted.csv", 'id,label,text\n1,"a,b","x ""y"""\n2,cat,\r\n3,"dog",z\n')

# npy / npz
def npy(a, **kw):
    b = io.BytesIO()
    np.lib.format.write_array(b, a, **kw)
    return b.getvalue()

put("npy", "f4.npy", npy(rng.standard_normal((2, 3)).astype(np.float32)))
put("npy", "f8.npy", npy(np.arange(4.0)))
put("npy", "i4.npy", npy(np.arange(6, dtype=np.int32).reshape(3, 2)))
put("npy", "i8_v2.npy", npy(np.arange(3, dtype=np.int64), version=(2, 0)))
put("npy", "scalar.npy", npy(np.float32(3)))
put("npy", "empty.npy", npy(np.zeros((0, 5), np.float32)))
copy("npy", os.path.join(FX, "sae", "single_v1.npy"))
for f in ("stored.npz", "deflated.npz", "zip64_v2v3.npz", "bad_bomb.npz", "bad_fortran.npz", "bad_bigendian.npz"):
    copy("npz", os.path.join(FX, "sae", f))

# sae-lens cfg.json
for d in sorted(os.listdir(os.path.join(FX, "sae"))):
    p = os.path.join(FX, "sae", d, "cfg.json")
    if d.startswith("saelens_") and os.path.exists(p):
        copy("sae_cfg", p, d + ".json")

# CSV and manifests
put("csv", "simple.csv", "a,b,c\n1,2,3\n4,5,6\n")
put("csv", "quoted.csv", 'name,text\n"x, y","he said ""hi""\nnext line"\r\nz,\n')
put("manifest", "mixed.csv",
    "modality,input,label,file_name,image_id,caption_id,split,edit\n"
    "image,images/a.jpg,animal,a.jpg,1,,train,none\n"
    'text,"A dog, running",animal,a.jpg,1,11,train,\n'
    "image,/abs/b.png,vehicle,b.png,2,,val,blur=2\n"
    "text,a car,vehicle,,,,test,\n")
put("manifest", "minimal.csv", "modality,input,label\ntext,hello,x\ntext,bye,y\n")
put("csv", "manifest.csv", "modality,input,label\ntext,hello,x\n")

# COCO: a trimmed real instances + captions file (2 images)
ann = json.load(open(os.path.join(SHARED, "data", "coco", "mini", "annotations", "instances_val2017.json")))
imgs = ann["images"][:2]
ids = {i["id"] for i in imgs}
inst = [a for a in ann["annotations"] if a["image_id"] in ids][:4]
for a in inst:
    a["segmentation"] = a["segmentation"] if isinstance(a["segmentation"], dict) else [a["segmentation"][0][:6]]
used = {a["category_id"] for a in inst}
cats = [c for c in ann["categories"] if c["id"] in used] + ann["categories"][:2]
cats = list({c["id"]: c for c in cats}.values())
put("coco", "instances.json", json.dumps({"info": ann.get("info", {}), "images": imgs, "annotations": inst, "categories": cats}))
cap = json.load(open(os.path.join(SHARED, "data", "coco", "mini", "annotations", "captions_val2017.json")))
caps = [c for c in cap["annotations"] if c["image_id"] in ids][:4]
put("coco", "captions.json", json.dumps({"images": imgs, "annotations": caps}))

# images: small PNG fixtures and tiny JPEGs written by Pillow
for f in ("rgb8.png", "pal4_adam7.png", "gray16.png", "rgba8.png", "gray8_trns.png", "gray1.png"):
    copy("image", os.path.join(FX, "images", "png", f))
im = Image.fromarray((rng.random((9, 13, 3)) * 255).astype(np.uint8))
for name, kw in (("base.jpg", {}), ("prog.jpg", {"progressive": True}), ("q10_420.jpg", {"quality": 10, "subsampling": 2})):
    b = io.BytesIO(); im.save(b, "JPEG", **kw); put("image", name, b.getvalue())
b = io.BytesIO(); im.convert("L").save(b, "JPEG"); put("image", "gray.jpg", b.getvalue())
b = io.BytesIO(); im.convert("CMYK").save(b, "JPEG"); put("image", "cmyk.jpg", b.getvalue())

# experiment configs and token categories
for f in sorted(os.listdir(os.path.join(ROOT, "examples"))):
    if f.endswith(".json"):
        copy("config", os.path.join(ROOT, "examples", f))
put("config", "minimal.json", '{"name": "x", "models": {"llm": "a", "vlm": "b"}}')
put("categories", "cats.csv", "# word,category\ndog,object\nred,colour\r\nleft,spatial\nthe,function\n")

total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(C) for f in fs)
print(f"seeds written to {C}: {total} bytes")
