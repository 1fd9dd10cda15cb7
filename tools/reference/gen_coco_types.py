#!/usr/bin/env python3
"""Expected control-task types of the concept probes on the bundled COCO sample
(tests/test_coco.c test_image_types), from the annotation files with the json module.

Rule (docs/probes.md, coco_image_type): an image's type is, among its instance annotations
whose category's supercategory belongs to the image's concept group, the category with the
most annotations (a crowd annotation counts once); ties go to the smallest category id.
Images are grouped as `reprshift run examples/quickstart.json` groups them: animals =
{animal}, vehicles = {vehicle}, food = {food}; an image whose annotations touch two groups is
ambiguous and has no group (not listed).

Run: /work/refenv/bin/python tools/reference/gen_coco_types.py
Writes tests/fixtures/coco/sample_types.json.
"""
import collections
import json
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ANN = os.path.join(ROOT, "examples", "data", "coco-sample", "annotations")
GROUPS = [("animals", {"animal"}), ("vehicles", {"vehicle"}), ("food", {"food"})]


def main():
    cats, anns = {}, []
    for split in ("train2017", "val2017"):
        with open(os.path.join(ANN, f"instances_{split}.json")) as f:
            j = json.load(f)
        for c in j["categories"]:
            cats[c["id"]] = c
        anns += j["annotations"]
    by_image = collections.defaultdict(list)
    for a in anns:
        by_image[a["image_id"]].append(a["category_id"])
    out, ties = [], 0
    for image_id in sorted(by_image):
        cids = by_image[image_id]
        groups = {g for g, (_, scs) in enumerate(GROUPS) if any(cats[c]["supercategory"] in scs for c in cids)}
        if len(groups) != 1:
            continue
        g = groups.pop()
        counts = collections.Counter(c for c in cids if cats[c]["supercategory"] in GROUPS[g][1])
        top = max(counts.values())
        best = min(c for c, n in counts.items() if n == top)
        ties += sum(1 for n in counts.values() if n == top) > 1
        out.append({"image_id": image_id, "group": g, "category": cats[best]["name"], "count": top,
                    "candidates": {cats[c]["name"]: n for c, n in sorted(counts.items())}})
    os.makedirs(os.path.join(ROOT, "tests", "fixtures", "coco"), exist_ok=True)
    with open(os.path.join(ROOT, "tests", "fixtures", "coco", "sample_types.json"), "w") as f:
        json.dump({"rule": __doc__.split("\n\n")[1].replace("\n", " "), "images": out}, f, indent=1)
        f.write("\n")
    print(f"{len(out)} images with one group, {ties} decided by the tie rule;",
          collections.Counter(o["category"] for o in out).most_common())


if __name__ == "__main__":
    main()
