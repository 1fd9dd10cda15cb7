#!/usr/bin/env python3
"""Golden fixtures for SigLIP preprocessing as BOTH transformers 5 image processors do it:

  SiglipImageProcessorPil  (PIL backend: Pillow bicubic resize, float64 rescale, normalise)
  SiglipImageProcessor     (torchvision backend, picked whenever torchvision is installed:
                            torchvision.transforms.v2.functional.resize on the uint8 CHW tensor,
                            i.e. torch's CPU uint8 antialiased bicubic, then fused rescale+normalise)

Writes tests/fixtures/images/processors/:
  *.png               small synthetic inputs (gradients, noise, sharp edges, odd sizes, L, RGBA,
                      extreme aspect ratios) so the core parity test needs no shared data
  processors.json     per (image, S in 224/448/896): CRC-32 of each processor's resized uint8
                      image (HWC) and of its float32 pixel_values (CHW bytes), a few samples,
                      and how many values the two processors disagree on; per image also CRC-32
                      of tvF.resize(uint8, (H, W), BICUBIC, antialias=True) at non-square sizes
  tv224_*.png         two torchvision-processor 224 outputs stored whole (mismatch counts)
  vision_ln_post.safetensors  the tiny PaliGemma fixture's vision.ln_post on 4 committed images
                      preprocessed by each processor ("<image>.pil", "<image>.torchvision")
  (with --shared) the same for every real image in ../shared/data (cases marked "shared": 1)

The torch results are checked to be identical on every CPU kernel torch can dispatch to here
(ATEN_CPU_CAPABILITY=default / avx2 / avx512, each in a fresh interpreter): recorded in
"capabilities_identical".

Usage: /work/refenv/bin/python tools/reference/gen_processor_goldens.py [--shared ../shared] [--no-shared]
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import zlib

import numpy as np
import PIL
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "images", "processors")
SIZES = (224, 448, 896)
FULL = ("edges_640x480.png", "gray_L_513x257.png")  # torchvision 224 outputs stored whole (mismatch counts)


def crc(a):
    return zlib.crc32(np.ascontiguousarray(a).tobytes()) & 0xFFFFFFFF


# ---------------------------------------------------------------- synthetic inputs

def synthetic_images():
    """Small images that stress the resize: smooth ramps, white noise (worst case for
    rounding), hard edges (overshoot + clamping), odd and extreme sizes, L and RGBA modes."""
    rng = np.random.default_rng(20261202)
    os.makedirs(OUT, exist_ok=True)
    made = {}

    def save(name, arr, mode=None):
        im = Image.fromarray(arr, mode) if mode else Image.fromarray(arr)
        im.save(os.path.join(OUT, name), optimize=True)
        made[name] = im.mode

    h, w = 61, 97  # upscaling on both axes, odd sizes
    y, x = np.mgrid[0:h, 0:w]
    save("grad_97x61.png", np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)],
                                    -1).astype(np.uint8))
    save("noise_301x199.png", rng.integers(0, 256, (199, 301, 3), dtype=np.uint8))  # down in x, up in y
    h, w = 480, 640  # hard edges: checkerboard, thin lines, a saturated disc
    y, x = np.mgrid[0:h, 0:w]
    a = np.where(((x // 7) + (y // 5)) % 2 == 0, 255, 0).astype(np.uint8)
    img = np.stack([a, 255 - a, np.zeros_like(a)], -1)
    img[(x % 53) == 0] = [255, 255, 255]
    img[((x - 400) ** 2 + (y - 240) ** 2) < 90 ** 2] = [0, 0, 255]
    save("edges_640x480.png", img)
    h, w = 257, 513  # grayscale (mode L): noise + ramps
    y, x = np.mgrid[0:h, 0:w]
    g = ((x * 255) // (w - 1)).astype(np.int32)
    g[: h // 2] = rng.integers(0, 256, (h // 2, w))
    save("gray_L_513x257.png", g.astype(np.uint8), "L")
    h, w = 500, 333  # RGBA, portrait (opaque alpha: both processors then see the RGB values)
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([(x * 255) // (w - 1), (y * 255) // (h - 1), ((x // 9 + y // 9) % 2) * 255], -1)
    rgb[h // 3: h // 2] = rng.integers(0, 256, (h // 2 - h // 3, w, 3))
    rgba = np.concatenate([rgb.astype(np.uint8), np.full((h, w, 1), 255, np.uint8)], -1)
    save("rgba_333x500.png", rgba, "RGBA")
    h, w = 900, 17  # extreme aspect: big vertical downscale, horizontal upscale
    y, x = np.mgrid[0:h, 0:w]
    save("tall_17x900.png", np.stack([(y * 7) % 256, (x * 15) % 256, ((y // 3) % 2) * 255], -1).astype(np.uint8))
    h, w = 40, 2400  # very large horizontal downscale (weights precision near its cap)
    y, x = np.mgrid[0:h, 0:w]
    save("wide_2400x40.png", np.stack([(x * 255) // (w - 1), ((x // 11) % 2) * 255, (y * 6) % 256], -1)
         .astype(np.uint8))
    save("tiny_3x2.png", rng.integers(0, 256, (2, 3, 3), dtype=np.uint8))
    return made


# ---------------------------------------------------------------- references

def processors():
    from transformers import SiglipImageProcessor
    from transformers.models.siglip import SiglipImageProcessorPil
    procs = {}
    for S in SIZES:
        tv = SiglipImageProcessor(size={"height": S, "width": S})
        pil = SiglipImageProcessorPil(size={"height": S, "width": S})
        assert type(tv).__name__ == "SiglipImageProcessor" and tv.backend == "torchvision", type(tv)
        assert pil.backend == "pil"
        procs[S] = {"torchvision": tv, "pil": pil}
    return procs


def tv_resize(rgb, W, H):
    """torchvision's resize of the uint8 CHW tensor (what the torchvision backend calls)."""
    import torch
    from torchvision.transforms.v2 import functional as tvF
    t = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).contiguous()
    r = tvF.resize(t, [H, W], interpolation=tvF.InterpolationMode.BICUBIC, antialias=True)
    assert r.dtype == torch.uint8
    return r.permute(1, 2, 0).numpy()


def pv_to_u8_tv(pv):
    """Invert ((x - 127.5) / 127.5) exactly (the map is injective on 0..255)."""
    lut = ((np.arange(256, dtype=np.float32) - np.float32(127.5)) / np.float32(127.5)).astype(np.float32)
    idx = np.searchsorted(lut, pv)
    assert np.array_equal(lut[idx], pv)
    return idx.astype(np.uint8).transpose(1, 2, 0)


def pv_to_u8_pil(pv):
    lut = ((np.arange(256) * (1 / 255)).astype(np.float32) - np.float32(0.5)) / np.float32(0.5)
    idx = np.searchsorted(lut, pv)
    assert np.array_equal(lut[idx], pv)
    return idx.astype(np.uint8).transpose(1, 2, 0)


def nonsquare_sizes(w, h):
    return [(max(1, w // 3), max(1, (h * 4) // 5)), (max(1, (w * 9) // 10), max(1, h // 4)), (w, max(1, h // 2)),
            (max(1, w * 2 + 1), h)]


def case_records(path, rel, shared, procs, full):
    raw = Image.open(path)
    rgb = np.asarray(raw.convert("RGB"))
    out = []
    for S in SIZES:
        rec = {"file": rel, "shared": shared, "mode": raw.mode, "w": raw.width, "h": raw.height, "size": S}
        u8 = {}
        for name in ("pil", "torchvision"):
            pt = "pt" if name == "torchvision" else "np"
            pv = np.asarray(procs[S][name](images=raw, return_tensors=pt)["pixel_values"][0], dtype=np.float32)
            assert pv.shape == (3, S, S) and pv.dtype == np.float32
            u8[name] = pv_to_u8_tv(pv) if name == "torchvision" else pv_to_u8_pil(pv)
            rec[name] = {"u8_crc32": crc(u8[name]), "pv_crc32": crc(pv),
                         "samples": [[c, yy, xx, float(pv[c, yy, xx])]
                                     for c, yy, xx in [(0, 0, 0), (1, S // 2, S // 3), (2, S - 1, S - 1)]]}
            if full and S == 224 and name == "torchvision":
                stored = "tv224_" + os.path.basename(path)
                Image.fromarray(u8[name]).save(os.path.join(OUT, stored), optimize=True)
                rec[name]["u8_png"] = "processors/" + stored
        # The torchvision backend's pixels are tvF.resize of the processor's RGB array.
        assert np.array_equal(u8["torchvision"], tv_resize(rgb, S, S)) or raw.mode in ("RGBA", "LA", "P", "PA")
        rec["u8_values_differing"] = int((u8["pil"] != u8["torchvision"]).sum())
        rec["u8_max_level_diff"] = int(np.abs(u8["pil"].astype(int) - u8["torchvision"].astype(int)).max())
        out.append(rec)
    rz = {"file": rel, "shared": shared, "resizes": []}
    for W, H in nonsquare_sizes(raw.width, raw.height):
        if (W, H) == (1, 1):
            # torch 2.15's AVX uint8 kernel fails an internal assert for a 1x1 output
            # (UpSampleKernelAVXAntialias.h: num_channels == unpacked_output.size(0)).
            continue
        rz["resizes"].append([W, H, crc(tv_resize(rgb, W, H))])
    return out, rz


def capability_check(files):
    """CRC of tvF.resize for each committed image under each CPU kernel torch offers."""
    code = ("import sys, json, zlib, numpy as np, torch\n"
            "from PIL import Image\n"
            "from torchvision.transforms.v2 import functional as tvF\n"
            "res = {'cap': torch.backends.cpu.get_cpu_capability(), 'crc': []}\n"
            "for f in sys.argv[1:]:\n"
            "    a = np.array(Image.open(f).convert('RGB'))\n"
            "    t = torch.from_numpy(a).permute(2, 0, 1).contiguous()\n"
            "    for S in (224, 448, 896):\n"
            "        r = tvF.resize(t, [S, S], interpolation=tvF.InterpolationMode.BICUBIC, antialias=True)\n"
            "        res['crc'].append(zlib.crc32(r.permute(1, 2, 0).contiguous().numpy().tobytes()))\n"
            "print(json.dumps(res))\n")
    seen = {}
    for cap in ("default", "avx2", "avx512"):
        env = dict(os.environ, ATEN_CPU_CAPABILITY=cap)
        r = subprocess.run([sys.executable, "-c", code] + files, env=env, capture_output=True, text=True, check=True)
        res = json.loads(r.stdout.strip().splitlines()[-1])
        seen[res["cap"]] = res["crc"]
    vals = list(seen.values())
    return sorted(seen), all(v == vals[0] for v in vals)


VISION_MODEL = os.path.join(ROOT, "tests", "fixtures", "models", "paligemma-tiny-f32")
VISION_IMAGES = ("noise_301x199.png", "edges_640x480.png", "tall_17x900.png", "gray_L_513x257.png")


def vision_goldens():
    """The tiny PaliGemma's vision.ln_post (SigLIP post-layernorm output, fp32 eager) on
    each processor's pixel_values: the end-to-end effect of the choice, and what
    `extract_paligemma` with each image_processor must reproduce."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoImageProcessor, PaliGemmaForConditionalGeneration
    m = PaliGemmaForConditionalGeneration.from_pretrained(VISION_MODEL, dtype=torch.float32,
                                                          attn_implementation="eager").eval()
    procs = {"torchvision": AutoImageProcessor.from_pretrained(VISION_MODEL),
             "pil": AutoImageProcessor.from_pretrained(VISION_MODEL, backend="pil")}
    assert type(procs["torchvision"]).__name__ == "SiglipImageProcessor", type(procs["torchvision"])
    assert type(procs["pil"]).__name__ == "SiglipImageProcessorPil", type(procs["pil"])
    tensors, rel = {}, {}
    for name in VISION_IMAGES:
        raw = Image.open(os.path.join(OUT, name))
        out = {}
        for k, p in procs.items():
            pv = p(images=raw, return_tensors="pt")["pixel_values"]
            with torch.no_grad():
                out[k] = m.model.vision_tower(pixel_values=pv).last_hidden_state[0].contiguous()
            tensors[f"{name}.{k}"] = out[k]
        d = (out["pil"] - out["torchvision"]).abs().max() / out["torchvision"].abs().max()
        rel[name] = float(d)
    save_file(tensors, os.path.join(OUT, "vision_ln_post.safetensors"),
              metadata={"model": os.path.relpath(VISION_MODEL, ROOT), "hook": "vision.ln_post",
                        "rel_diff_pil_vs_torchvision": json.dumps(rel)})
    return rel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--no-shared", action="store_true")
    args = ap.parse_args()

    import torch
    import torchvision
    import transformers
    made = synthetic_images()
    procs = processors()
    ver = {"torch": torch.__version__, "torchvision": torchvision.__version__,
           "transformers": transformers.__version__, "pillow": PIL.__version__, "numpy": np.__version__,
           "python": sys.version.split()[0], "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}
    committed = [os.path.join(OUT, n) for n in sorted(made)]
    vision_rel = vision_goldens()
    caps, same = capability_check(committed)
    assert same, "torch's uint8 bicubic differs between CPU kernels"

    cases, resizes = [], []
    for p in committed:
        rel = "processors/" + os.path.basename(p)
        c, r = case_records(p, rel, 0, procs, full=os.path.basename(p) in FULL)
        cases += c
        resizes.append(r)
    if not args.no_shared:
        data = os.path.join(args.shared, "data")
        files = glob.glob(os.path.join(data, "images", "**", "*.*"), recursive=True)
        files += glob.glob(os.path.join(data, "coco", "**", "*.jpg"), recursive=True)
        files = sorted(f for f in files if f.lower().endswith((".jpg", ".jpeg", ".png")))
        for f in files:
            rel = os.path.relpath(f, data)
            try:
                Image.open(f).convert("RGB")
            except Exception:  # noqa: BLE001 - unreadable files are test_image's business
                continue
            c, r = case_records(f, rel, 1, procs, full=False)
            cases += c
            resizes.append(r)
    n_vals = sum(3 * c["size"] ** 2 for c in cases)
    n_diff = sum(c["u8_values_differing"] for c in cases)
    summary = {"cases": len(cases), "u8_values": n_vals, "u8_values_differing_pil_vs_torchvision": n_diff,
               "cases_with_a_difference": sum(1 for c in cases if c["u8_values_differing"]),
               "max_level_diff": max(c["u8_max_level_diff"] for c in cases)}
    doc = {"versions": ver, "capabilities_checked": caps, "capabilities_identical": same,
           "vision_ln_post_rel_diff_pil_vs_torchvision": vision_rel,
           "processors": {"pil": "transformers.models.siglip.SiglipImageProcessorPil",
                          "torchvision": "transformers.SiglipImageProcessor (TorchvisionBackend), CPU"},
           "input": "PIL.Image.open(file) passed to the processor (it converts to RGB itself)",
           "summary": summary, "cases": cases, "resizes": resizes}
    with open(os.path.join(OUT, "processors.json"), "w") as f:
        json.dump(doc, f, indent=0)
    print(json.dumps(summary), "capabilities", caps, "identical", same)


if __name__ == "__main__":
    main()
