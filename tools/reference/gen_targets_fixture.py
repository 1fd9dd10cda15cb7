#!/usr/bin/env python3
"""Expected targets of the bundled COCO sample for tests/test_targets.c (docs/datasets.md, Targets).

Reads examples/data/coco-sample/annotations/{instances,captions}_{train,val}2017.json with the
json module (not our parser) and writes tests/fixtures/data/targets_coco_sample/:
  images.csv    image_id, then category:<name> for every category in ascending category id
                (1 when the image has an instance annotation of it, crowd ones included),
                then supercategory:<name> in byte order of the names
  captions.csv  caption_id, then colour:<w> and action:<w> for the documented word lists:
                tokens = re.findall("[a-z]+", caption.lower()) over ASCII letters only
                (non-ASCII characters are lowered by Python too, so they are first replaced
                by a space), aliases grey -> gray, laying -> lying, exact token match
Run: python3 tools/reference/gen_targets_fixture.py"""
import csv
import json
import os
import re

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.join(here, "..", "..")
ann = os.path.join(root, "examples/data/coco-sample/annotations")
out = os.path.join(root, "tests/fixtures/data/targets_coco_sample")
os.makedirs(out, exist_ok=True)

COLOURS = ["black", "white", "red", "green", "yellow", "blue", "brown", "orange", "pink", "purple", "gray"]
ACTIONS = ["carrying", "cutting", "drinking", "driving", "eating", "flying", "grazing", "holding", "looking",
           "lying", "playing", "riding", "running", "sitting", "skiing", "sleeping", "standing", "surfing",
           "swimming", "throwing", "walking", "watching"]
ALIASES = {"grey": "gray", "laying": "lying"}

images, cats, inst, caps = {}, None, [], []
for split in ("train2017", "val2017"):
    d = json.load(open(os.path.join(ann, "instances_%s.json" % split)))
    for im in d["images"]:
        images[im["id"]] = set()
    c = sorted(d["categories"], key=lambda x: x["id"])
    assert cats is None or cats == c
    cats = c
    inst += d["annotations"]
    caps += json.load(open(os.path.join(ann, "captions_%s.json" % split)))["annotations"]
sup_of = {c["id"]: c["supercategory"] for c in cats}
supers = sorted({c["supercategory"] for c in cats}, key=lambda s: s.encode())
for a in inst:
    images[a["image_id"]].add(a["category_id"])

with open(os.path.join(out, "images.csv"), "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["image_id"] + ["category:" + c["name"] for c in cats] + ["supercategory:" + s for s in supers])
    for iid in sorted(images):
        have = images[iid]
        hs = {sup_of[c] for c in have}
        w.writerow([iid] + [int(c["id"] in have) for c in cats] + [int(s in hs) for s in supers])


def words(caption, lst):
    ascii_only = "".join(ch if ord(ch) < 128 else " " for ch in caption)
    toks = {ALIASES.get(t, t) for t in re.findall("[a-z]+", ascii_only.lower())}
    return [int(x in toks) for x in lst]


with open(os.path.join(out, "captions.csv"), "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["caption_id"] + ["colour:" + x for x in COLOURS] + ["action:" + x for x in ACTIONS])
    for a in sorted(caps, key=lambda a: a["id"]):
        w.writerow([a["id"]] + words(a["caption"], COLOURS) + words(a["caption"], ACTIONS))
print("images", len(images), "categories", len(cats), "supercategories", len(supers), "captions", len(caps))
