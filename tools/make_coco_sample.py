#!/usr/bin/env python3
"""Write examples/data/coco-sample/: the small COCO 2017 sample the quickstart runs on.

From the COCO mini subset in the shared data folder (../shared/data/coco/mini, see
../shared/data/PROVENANCE.md) it keeps only images under a licence that allows
redistribution without a non-commercial clause (COCO licence ids 4 = CC BY 2.0 and
5 = CC BY-SA 2.0), and of those only images that the quickstart's three groups label
(exactly one of the supercategories animal / vehicle / food; docs/datasets.md), the
N smallest JPEGs of each group. The JPEGs are copied byte for byte; the instances and
captions files keep the original records of those images (all fields, including
segmentations), the full 80-entry category list, `info` and `licenses`.
ATTRIBUTION.md lists every image with its licence and source URLs. The hand-written
translations annotations/captions_translated.csv (not made here) are kept across a rewrite.

Standard library only:  python3 tools/make_coco_sample.py [--shared ../shared] [--per-group 8]
"""
import argparse, hashlib, json, os, shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "examples", "data", "coco-sample")
LICENCES = (4, 5)
SHORT = {4: "CC BY 2.0", 5: "CC BY-SA 2.0"}
GROUPS = ("animal", "vehicle", "food")
SPLITS = ("train2017", "val2017")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.environ.get("RS_SHARED_DIR", os.path.join(ROOT, "..", "shared")))
    ap.add_argument("--per-group", type=int, default=8)
    a = ap.parse_args()
    mini = os.path.join(a.shared, "data", "coco", "mini")
    data = {}
    cand = {g: [] for g in GROUPS}
    for sp in SPLITS:
        ins = json.load(open(os.path.join(mini, "annotations", f"instances_{sp}.json"), encoding="utf-8"))
        cap = json.load(open(os.path.join(mini, "annotations", f"captions_{sp}.json"), encoding="utf-8"))
        data[sp] = (ins, cap)
        sup = {c["id"]: c["supercategory"] for c in ins["categories"]}
        per_img = {}
        for an in ins["annotations"]:
            per_img.setdefault(an["image_id"], set()).add(sup[an["category_id"]])
        for im in ins["images"]:
            g = per_img.get(im["id"], set()) & set(GROUPS)
            if im["license"] in LICENCES and len(g) == 1:
                size = os.path.getsize(os.path.join(mini, sp, im["file_name"]))
                cand[g.pop()].append((size, im["id"], sp))
    keep = {}
    for g in GROUPS:
        chosen = sorted(cand[g])[: a.per_group]
        if len(chosen) < a.per_group:
            raise SystemExit(f"only {len(chosen)} redistributable '{g}' images")
        for _, iid, sp in chosen:
            keep[iid] = (sp, g)
    translated = os.path.join(OUT, "annotations", "captions_translated.csv")
    kept_translations = open(translated, "rb").read() if os.path.isfile(translated) else None
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(os.path.join(OUT, "annotations"))
    if kept_translations is not None:  # written by hand, not derivable: keep it
        with open(translated, "wb") as f:
            f.write(kept_translations)
    rows = []
    for sp in SPLITS:
        ins, cap = data[sp]
        os.makedirs(os.path.join(OUT, sp))
        ids = {i for i, (s, _) in keep.items() if s == sp}
        for kind, src in (("instances", ins), ("captions", cap)):
            out = dict(src)
            out["images"] = [im for im in src["images"] if im["id"] in ids]
            out["annotations"] = [an for an in src["annotations"] if an["image_id"] in ids]
            with open(os.path.join(OUT, "annotations", f"{kind}_{sp}.json"), "w", encoding="utf-8") as f:
                json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
                f.write("\n")
        lic = {l["id"]: l for l in ins["licenses"]}
        for im in sorted((im for im in ins["images"] if im["id"] in ids), key=lambda im: im["id"]):
            src = os.path.join(mini, sp, im["file_name"])
            shutil.copyfile(src, os.path.join(OUT, sp, im["file_name"]))
            sha = hashlib.sha256(open(src, "rb").read()).hexdigest()
            caps = sorted((an["id"], an["caption"].strip()) for an in cap["annotations"] if an["image_id"] == im["id"])
            l = lic[im["license"]]
            first = caps[0][1].replace("|", "\\|")
            rows.append(f"| `{sp}/{im['file_name']}` | {keep[im['id']][1]} | [{SHORT[im['license']]}]({l['url']}) "
                        f"| {im['flickr_url']} | {im['coco_url']} | {first} | `{sha[:16]}` |")
    with open(os.path.join(OUT, "ATTRIBUTION.md"), "w", encoding="utf-8") as f:
        f.write(ATTRIBUTION.format(n=len(keep), per=a.per_group, rows="\n".join(rows),
                                   translations=TRANSLATIONS if kept_translations is not None else ""))


ATTRIBUTION = """# COCO 2017 sample: sources, licences, attribution

{n} photos from MS-COCO 2017 ({per} per quickstart group: animal, vehicle, food) with their
original COCO captions and instance annotations. Used by `examples/quickstart.json`.
Made by `tools/make_coco_sample.py` (see its docstring for the selection rule) from the
COCO-mini subset of the official files; the JPEGs are byte-for-byte copies of the COCO
images, the JSON files keep the original COCO records of these images, unchanged.

- **Annotations** (`annotations/*.json`: captions, instances, categories): © COCO Consortium,
  licensed under [CC BY 4.0](https://creativecommons.org/licenses/by/4.0/). Source: T.-Y. Lin et
  al., "Microsoft COCO: Common Objects in Context", ECCV 2014, https://cocodataset.org.
- **Images**: Flickr photos, each under the Creative Commons licence COCO records for it
  (`images[].license`): only CC BY 2.0 (id 4) and CC BY-SA 2.0 (id 5) images are included, so
  the sample may be redistributed, also commercially, with attribution (and, for CC BY-SA,
  under the same licence). COCO records no author names; the photo is credited here by its
  Flickr URL as recorded by COCO. No image was modified.
{translations}
| file | group | licence | Flickr URL (as in COCO) | COCO URL | first caption | sha256 (16 hex) |
|---|---|---|---|---|---|---|
{rows}
"""

TRANSLATIONS = """- **Translations** (`annotations/captions_translated.csv`): a Spanish (`es`) and a German (`de`)
  translation of every one of the 120 COCO captions of the sample, written by hand for reprshift
  by its developers (no machine translation), for the `languages` config section. They are
  derived from the COCO captions above (CC BY 4.0, © COCO Consortium) and are licensed under
  [CC BY 4.0](https://creativecommons.org/licenses/by/4.0/) as well; changes: translated, one
  sentence each, COCO's plain style kept, obvious typos of the original read as meant (e.g. "tog"
  → dog, "fried" → fries). Keys: the COCO caption (annotation) id and image id; the `en` column
  repeats the original caption verbatim. Checked by `tools/reference/check_translations.py`.
"""

if __name__ == "__main__":
    main()
