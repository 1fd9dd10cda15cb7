#!/usr/bin/env python3
"""Golden fixtures for image decoding, SigLIP preprocessing and image edits, computed by
the reference libraries (Pillow, transformers' SiglipImageProcessorPil, numpy).

Writes tests/fixtures/images/:
  decode.json      per real image in ../shared/data: Pillow's convert("RGB") size, CRC-32 of
                   the RGB bytes and a few sampled pixels; files Pillow cannot open + its error
  png/*.png        tiny synthetic PNGs covering every colour type / bit depth / tRNS /
                   interlace, with the expected RGB bytes (hex) in png.json
  bad/*            corrupt / truncated / zero-size / unsupported inputs
  resize.json      CRC-32 of Image.resize((W, H), BICUBIC) for every real image at
                   224/448/896 and two non-square sizes that exercise both pass orders
  resize_*.png     two resized images stored in full (lossless) for mismatch counts
  preprocess.json  CRC-32 of transformers' pixel_values (float32 bytes, CHW) + samples
  edits.json       CRC-32 of each edit (ImageEnhance, GaussianBlur, rotate, numpy redness / redness_plain)
Library versions are recorded in every JSON ("versions").

Usage: /work/refenv/bin/python tools/reference/gen_image_goldens.py [--shared ../shared]
"""
import argparse
import glob
import json
import os
import struct
import sys
import zlib

import numpy as np
import PIL
from PIL import Image, ImageEnhance, ImageFilter, features

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "images")


def versions():
    import transformers
    return {
        "pillow": PIL.__version__,
        "pillow_libjpeg_turbo": features.version("libjpeg_turbo"),
        "pillow_zlib": features.version("zlib"),
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
    }


def crc(a):
    return zlib.crc32(np.ascontiguousarray(a).tobytes()) & 0xFFFFFFFF


def real_images(shared):
    data = os.path.join(shared, "data")
    files = glob.glob(os.path.join(data, "images", "**", "*.*"), recursive=True)
    files += glob.glob(os.path.join(data, "coco", "**", "*.jpg"), recursive=True)
    files = [f for f in files if f.lower().endswith((".jpg", ".jpeg", ".png"))]
    return data, sorted(os.path.relpath(f, data) for f in files)


def samples(a, n=5):
    h, w, _ = a.shape
    pts = [(0, 0), (w - 1, h - 1), (w // 2, h // 2), (w // 3, (2 * h) // 3), ((3 * w) // 4, h // 5)][:n]
    return [[x, y] + [int(v) for v in a[y, x]] for x, y in pts]


# ---------------------------------------------------------------- synthetic PNGs

def png_chunk(tag, data):
    c = struct.pack(">I", len(data)) + tag + data
    return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def pack_row(samples_row, depth):
    """samples_row: flat list of sample ints for one row -> bytes at bit depth."""
    if depth == 16:
        return b"".join(struct.pack(">H", v) for v in samples_row)
    if depth == 8:
        return bytes(samples_row)
    out, acc, nbits = bytearray(), 0, 0
    for v in samples_row:
        acc = (acc << depth) | v
        nbits += depth
        if nbits == 8:
            out.append(acc)
            acc, nbits = 0, 0
    if nbits:
        out.append(acc << (8 - nbits))
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(path, arr, ctype, depth, plte=None, trns=None, interlace=False):
    """arr: HxWxC int array of samples (C = channels of the colour type)."""
    h, w = arr.shape[:2]
    raw = bytearray()
    if not interlace:
        for y in range(h):
            raw += b"\x00" + pack_row(arr[y].reshape(-1).tolist(), depth)
    else:
        for x0, y0, dx, dy in ADAM7:
            for y in range(y0, h, dy):
                row = arr[y, x0::dx]
                if row.shape[0] == 0:
                    continue
                raw += b"\x00" + pack_row(row.reshape(-1).tolist(), depth)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0)
    body = png_chunk(b"IHDR", ihdr)
    if plte is not None:
        body += png_chunk(b"PLTE", bytes(np.asarray(plte, np.uint8).reshape(-1)))
    if trns is not None:
        body += png_chunk(b"tRNS", trns)
    body += png_chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + png_chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + body)


def synthetic_pngs():
    rng = np.random.default_rng(1234)
    W, H = 13, 7
    d = os.path.join(OUT, "png")
    os.makedirs(d, exist_ok=True)
    cases = []

    def add(name, ctype, depth, chans, maxv, **kw):
        arr = rng.integers(0, maxv + 1, (H, W, chans))
        arr.flat[0] = maxv  # make sure the extremes appear
        arr.flat[1] = 0
        write_png(os.path.join(d, name + ".png"), arr, ctype, depth, **kw)
        cases.append(name)

    for depth in (1, 2, 4, 8, 16):
        add(f"gray{depth}", 0, depth, 1, (1 << depth) - 1)
    add("gray16_small", 0, 16, 1, 300)  # Pillow clamps I;16 > 255 rather than scaling
    add("gray8_trns", 0, 8, 1, 255, trns=struct.pack(">H", 7))
    add("rgb8", 2, 8, 3, 255)
    add("rgb16", 2, 16, 3, 65535)
    add("rgb8_trns", 2, 8, 3, 255, trns=struct.pack(">HHH", 1, 2, 3))
    for depth in (1, 2, 4, 8):
        n = min(1 << depth, 200)
        plte = rng.integers(0, 256, (n, 3))
        add(f"pal{depth}", 3, depth, 1, n - 1, plte=plte, trns=bytes(range(0, 255, 37))[: n])
    add("ga8", 4, 8, 2, 255)
    add("ga16", 4, 16, 2, 65535)
    add("rgba8", 6, 8, 4, 255)
    add("rgba16", 6, 16, 4, 65535)
    add("rgb8_adam7", 2, 8, 3, 255, interlace=True)
    add("gray16_adam7", 0, 16, 1, 1000, interlace=True)
    add("pal4_adam7", 3, 4, 1, 15, plte=rng.integers(0, 256, (16, 3)), interlace=True)
    out = {}
    for name in cases:
        im = Image.open(os.path.join(d, name + ".png"))
        mode = im.mode
        rgb = np.asarray(im.convert("RGB"))
        out[name] = {"mode": mode, "w": rgb.shape[1], "h": rgb.shape[0], "rgb_hex": rgb.tobytes().hex()}
    return out


def bad_inputs(shared_data):
    d = os.path.join(OUT, "bad")
    os.makedirs(d, exist_ok=True)
    good_png = os.path.join(OUT, "png", "rgb8.png")
    blob = open(good_png, "rb").read()
    files = {}
    open(os.path.join(d, "empty.jpg"), "wb").close()
    files["empty.jpg"] = "empty file"
    with open(os.path.join(d, "not_an_image.png"), "wb") as f:
        f.write(b"GIF89a this is not a PNG or JPEG\n")
    files["not_an_image.png"] = "unsupported format"
    with open(os.path.join(d, "truncated.png"), "wb") as f:
        f.write(blob[: len(blob) - 40])
    files["truncated.png"] = "truncated PNG"
    # IHDR with width 0 (CRC fixed up so only the size is wrong)
    ihdr = struct.pack(">IIBBBBB", 0, 7, 8, 2, 0, 0, 0)
    with open(os.path.join(d, "zero_width.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b""))
    files["zero_width.png"] = "zero size"
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    with open(os.path.join(d, "huge.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b""))
    files["huge.png"] = "dimensions above the limit (no allocation)"
    with open(os.path.join(d, "garbage.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    files["garbage.jpg"] = "corrupt JPEG"
    jpg = open(os.path.join(shared_data, "images", "skimage", "rocket.jpg"), "rb").read()
    with open(os.path.join(d, "rocket_cut.jpg"), "wb") as f:
        f.write(jpg[: len(jpg) // 2])
    files["rocket_cut.jpg"] = "truncated baseline JPEG"
    prog = open(os.path.join(shared_data, "images", "derived", "rocket_progressive.jpg"), "rb").read()
    with open(os.path.join(d, "progressive_cut.jpg"), "wb") as f:
        f.write(prog[: len(prog) // 2])
    files["progressive_cut.jpg"] = "truncated progressive JPEG"
    out = {}
    for name, why in files.items():
        try:
            Image.open(os.path.join(d, name)).convert("RGB")
            pil = "opened"
        except Exception as e:  # noqa: BLE001 - we record Pillow's verdict
            pil = f"{type(e).__name__}: {e}".replace(d + os.sep, "")
        out[name] = {"why": why, "pillow": pil}
        assert pil != "opened", f"Pillow opened bad input {name}"
    return out


# ---------------------------------------------------------------- main

def redness_plain(a, f):
    a = a.copy()
    a[..., 0] = np.clip(np.floor(a[..., 0] * f + 0.5), 0, 255)
    return a


def redness_luma(a, f):
    a = a.astype(np.float64)
    r = np.clip(np.floor(a[..., 0] * f + 0.5), 0, 255)
    d = 0.299 * (r - a[..., 0]) / 0.701
    g = np.clip(np.floor(a[..., 1] - d + 0.5), 0, 255)
    b = np.clip(np.floor(a[..., 2] - d + 0.5), 0, 255)
    return np.stack([r, g, b], -1).astype(np.uint8)


def edit_ref(im, name, v):
    if name == "brightness":
        return np.asarray(ImageEnhance.Brightness(im).enhance(v))
    if name == "contrast":
        return np.asarray(ImageEnhance.Contrast(im).enhance(v))
    if name == "saturation":
        return np.asarray(ImageEnhance.Color(im).enhance(v))
    if name == "blur":
        return np.asarray(im.filter(ImageFilter.GaussianBlur(v)))
    if name == "rotate":
        return np.asarray(im.rotate(v, resample=Image.BICUBIC))
    if name == "redness_plain":
        return redness_plain(np.asarray(im), v)
    if name == "redness":  # luminance-controlled (old name redness_luma)
        return redness_luma(np.asarray(im), v)
    raise ValueError(name)


EDITS = [
    ("brightness", [0.0, 0.6, 1.0, 1.4]),
    ("contrast", [0.0, 0.5, 1.6]),
    ("saturation", [0.0, 0.4, 2.0]),
    ("redness_plain", [0.7, 1.3]),
    ("redness", [0.7, 1.3]),
    ("blur", [0.6, 2.0, 5.5]),
    ("rotate", [90.0, 180.0, 12.5, -30.0]),
]
EDIT_IMAGES = [
    "images/skimage/chelsea.png", "images/skimage/coffee.png", "images/skimage/camera.png",
    "images/skimage/logo.png", "images/skimage/rocket.jpg", "images/cameratrapai/ocelot.jpg",
    "images/gemma_pytorch/lilly.jpg", "images/gemma_pytorch/sunflower.JPG",
    "coco/mini/val2017/000000000139.jpg", "coco/mini/train2017/000000069468.jpg",
    "coco/val2017_extra/000000431848.jpg",
]
PREPROCESS = [  # (file, size)
    ("images/skimage/chelsea.png", 224), ("images/skimage/logo.png", 224),
    ("images/skimage/camera.png", 448), ("images/cameratrapai/african_elephants_cmyk.jpg", 224),
    ("coco/mini/train2017/000000069468.jpg", 224), ("images/skimage/hubble_deep_field.jpg", 896),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    data, rels = real_images(args.shared)
    ver = versions()

    pngs = synthetic_pngs()
    json.dump({"versions": ver, "cases": pngs}, open(os.path.join(OUT, "png.json"), "w"), indent=1)
    bad = bad_inputs(data)
    json.dump({"versions": ver, "files": bad}, open(os.path.join(OUT, "bad.json"), "w"), indent=1)

    decode, resize = [], []
    for rel in rels:
        path = os.path.join(data, rel)
        try:
            im = Image.open(path).convert("RGB")
        except Exception as e:  # noqa: BLE001
            decode.append({"file": rel, "error": f"{type(e).__name__}: {e}"})
            continue
        a = np.asarray(im)
        decode.append({"file": rel, "w": im.width, "h": im.height, "crc32": crc(a), "samples": samples(a)})
        w, h = im.size
        sizes = [(224, 224), (448, 448), (896, 896),
                 (max(1, w // 3), max(1, (h * 4) // 5)), (max(1, (w * 9) // 10), max(1, h // 4))]
        entry = {"file": rel, "sizes": []}
        for W, H in sizes:
            r = np.asarray(im.resize((W, H), Image.BICUBIC, reducing_gap=None))
            entry["sizes"].append([W, H, crc(r)])
        resize.append(entry)
        if rel in ("images/skimage/chelsea.png", "coco/mini/train2017/000000069468.jpg"):
            name = "resize_" + os.path.splitext(os.path.basename(rel))[0] + "_224.png"
            Image.fromarray(np.asarray(im.resize((224, 224), Image.BICUBIC))).save(os.path.join(OUT, name))
    json.dump({"versions": ver, "images": decode}, open(os.path.join(OUT, "decode.json"), "w"), indent=0)
    json.dump({"versions": ver, "images": resize}, open(os.path.join(OUT, "resize.json"), "w"), indent=0)

    from transformers.models.siglip import SiglipImageProcessorPil
    pre = []
    for rel, S in PREPROCESS:
        proc = SiglipImageProcessorPil(size={"height": S, "width": S})
        raw = Image.open(os.path.join(data, rel))  # the processor converts to RGB itself
        pv = proc(images=raw, return_tensors="np")["pixel_values"][0].astype(np.float32)
        assert pv.shape == (3, S, S), pv.shape
        # Sanity: our spec formula on Pillow's pixels gives the same floats.
        u8 = np.asarray(raw.convert("RGB").resize((S, S), Image.BICUBIC)).astype(np.float64)
        mine = (((u8 * (1 / 255)).astype(np.float32) - np.float32(0.5)) / np.float32(0.5)).transpose(2, 0, 1)
        assert np.array_equal(mine, pv), rel
        idx = [(0, 0, 0), (1, S // 2, S // 3), (2, S - 1, S - 1)]
        pre.append({"file": rel, "size": S, "crc32_f32": crc(pv),
                    "samples": [[c, y, x, float(pv[c, y, x])] for c, y, x in idx],
                    "processor": type(proc).__name__})
    json.dump({"versions": ver, "cases": pre}, open(os.path.join(OUT, "preprocess.json"), "w"), indent=1)

    edits = []
    for rel in EDIT_IMAGES:
        im = Image.open(os.path.join(data, rel)).convert("RGB")
        for name, vals in EDITS:
            for v in vals:
                edits.append({"file": rel, "edit": name, "value": v, "crc32": crc(edit_ref(im, name, v))})
    json.dump({"versions": ver,
               "redness_definition": "redness_plain: R'=clip(floor(R*f+0.5)); redness (luminance-controlled; "
                                     "old name redness_luma): R' likewise, d=0.299*(R'-R)/0.701, "
                                     "G'=clip(floor(G-d+0.5)), B'=clip(floor(B-d+0.5))",
               "cases": edits}, open(os.path.join(OUT, "edits.json"), "w"), indent=0)
    print(f"wrote {OUT}: {len(decode)} decode, {len(resize)} resize, {len(pre)} preprocess, "
          f"{len(edits)} edit goldens, {len(pngs)} synthetic PNGs, {len(bad)} bad inputs")


if __name__ == "__main__":
    main()
