#!/usr/bin/env python3
"""Reference mean luminance of real images and of edited variants, for
tests/test_image_edit.c (rs_image_luminance).

For each image (Pillow decode, RGB) and each edit (none, redness 1.3 = luminance-controlled,
redness_plain 1.3, brightness 0.6), numpy computes
  luma_bt601 = mean(0.299 R + 0.587 G + 0.114 B) / 255   (gamma-encoded 8-bit values)
  linear_y   = mean(0.2126 R_lin + 0.7152 G_lin + 0.0722 B_lin), sRGB EOTF:
               c = v/255; c <= 0.04045 ? c/12.92 : ((c + 0.055)/1.055)**2.4
The edits follow their documented definitions (include/reprshift/image_edit.h): brightness
is Pillow's ImageEnhance.Brightness, the two rednesses are numpy.

Usage: /work/refenv/bin/python tools/reference/gen_luminance.py
Writes tests/fixtures/images/luminance.json.
"""
import json
import os

import numpy as np
import PIL
from PIL import Image, ImageEnhance

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
IMAGES = ["examples/data/coco-sample/val2017/000000062554.jpg",
          "examples/data/coco-sample/val2017/000000099053.jpg",
          "examples/data/coco-sample/val2017/000000165518.jpg"]


def redness_plain(a, f):
    a = a.astype(np.float64)
    a[..., 0] = np.clip(np.floor(a[..., 0] * f + 0.5), 0, 255)
    return a.astype(np.uint8)


def redness(a, f):  # luminance-controlled (BT.601 luma kept up to rounding)
    a = a.astype(np.float64)
    r = np.clip(np.floor(a[..., 0] * f + 0.5), 0, 255)
    d = 0.299 * (r - a[..., 0]) / 0.701
    g = np.clip(np.floor(a[..., 1] - d + 0.5), 0, 255)
    b = np.clip(np.floor(a[..., 2] - d + 0.5), 0, 255)
    return np.stack([r, g, b], -1).astype(np.uint8)


def edit(im, name, v):
    if name == "none":
        return np.asarray(im)
    if name == "brightness":
        return np.asarray(ImageEnhance.Brightness(im).enhance(v))
    if name == "redness":
        return redness(np.asarray(im), v)
    if name == "redness_plain":
        return redness_plain(np.asarray(im), v)
    raise ValueError(name)


def lum(a):
    a = a.astype(np.float64)
    luma = (0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]).mean() / 255.0
    c = a / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    y = (0.2126 * lin[..., 0] + 0.7152 * lin[..., 1] + 0.0722 * lin[..., 2]).mean()
    return float(luma), float(y)


def main():
    cases = []
    for rel in IMAGES:
        im = Image.open(os.path.join(ROOT, rel)).convert("RGB")
        for name, v in [("none", 0.0), ("redness", 1.3), ("redness_plain", 1.3), ("brightness", 0.6)]:
            luma, y = lum(edit(im, name, v))
            cases.append({"file": rel, "edit": name, "value": v, "luma_bt601": luma, "linear_y": y})
    out = os.path.join(ROOT, "tests", "fixtures", "images", "luminance.json")
    json.dump({"versions": {"pillow": PIL.__version__, "numpy": np.__version__},
               "definition": "luma_bt601 = mean(0.299R+0.587G+0.114B)/255 on gamma-encoded values; "
                             "linear_y = mean(0.2126R_lin+0.7152G_lin+0.0722B_lin), sRGB EOTF",
               "cases": cases}, open(out, "w"), indent=1)
    print(f"wrote {out}: {len(cases)} cases")


if __name__ == "__main__":
    main()
