"""Check a captions_translated.csv against the COCO caption files it translates.

The file (docs: the `languages` config section) is CSV (RFC 4180, UTF-8) with the header
`caption_id,image_id,en,<code>,<code>...`. Checked here:
  * the header starts with caption_id,image_id,en and names at least one language code
    (lower-case letters, unique, not "en");
  * every caption id of the caption files has exactly one row, and no row names an id the
    files do not have;
  * image_id is the caption's COCO image id;
  * en is the COCO caption verbatim (spaces and newlines included);
  * every translation is non-empty, has no leading/trailing whitespace or line break, and
    differs from en.
Plain python3, no dependencies. Exit status 0 when all holds, else 1 with one line per problem.

    python3 tools/reference/check_translations.py                       # the bundled sample
    python3 tools/reference/check_translations.py FILE.csv captions_a.json [captions_b.json ...]
"""
import csv
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(ROOT, "examples", "data", "coco-sample", "annotations")


def check(csv_path, caption_files):
    problems = []
    coco = {}
    for p in caption_files:
        with open(p, encoding="utf-8") as f:
            for a in json.load(f)["annotations"]:
                if a["id"] in coco:
                    problems.append(f"{p}: caption id {a['id']} appears twice in the caption files")
                coco[a["id"]] = a
    with open(csv_path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, strict=True))
    if not rows:
        return [f"{csv_path}: empty"]
    head, body = rows[0], rows[1:]
    langs = head[3:]
    if head[:3] != ["caption_id", "image_id", "en"] or not langs:
        problems.append(f"{csv_path}: header must be caption_id,image_id,en,<code>...; got {','.join(head)}")
        return problems
    for c in langs:
        if not re.fullmatch(r"[a-z]{2,3}", c) or c == "en" or langs.count(c) > 1:
            problems.append(f"{csv_path}: bad or repeated language code column '{c}'")
    seen = set()
    for n, r in enumerate(body, start=2):
        where = f"{csv_path}: row {n}"
        if len(r) != len(head):
            problems.append(f"{where}: {len(r)} fields, the header has {len(head)}")
            continue
        if not re.fullmatch(r"[0-9]+", r[0]) or not re.fullmatch(r"[0-9]+", r[1]):
            problems.append(f"{where}: caption_id / image_id must be integers, got '{r[0]}' / '{r[1]}'")
            continue
        cid, iid = int(r[0]), int(r[1])
        where += f" (caption_id {cid})"
        if cid in seen:
            problems.append(f"{where}: a second row for this caption id")
        seen.add(cid)
        a = coco.get(cid)
        if a is None:
            problems.append(f"{where}: not a caption id of {', '.join(caption_files)}")
            continue
        if iid != a["image_id"]:
            problems.append(f"{where}: image_id {iid}, COCO has {a['image_id']}")
        if r[2] != a["caption"]:
            problems.append(f"{where}: en {r[2]!r} is not the COCO caption {a['caption']!r}")
        for c, t in zip(langs, r[3:]):
            if not t.strip():
                problems.append(f"{where}: empty {c} translation")
            elif t != t.strip() or "\n" in t or "\r" in t:
                problems.append(f"{where}: {c} translation has surrounding whitespace or a line break: {t!r}")
            elif t.strip() == a["caption"].strip():
                problems.append(f"{where}: {c} translation equals the English caption")
    for cid in sorted(set(coco) - seen):
        problems.append(f"{csv_path}: no row for caption_id {cid} (image {coco[cid]['image_id']})")
    return problems


def main(argv):
    if len(argv) == 1:
        csv_path = os.path.join(SAMPLE, "captions_translated.csv")
        files = [os.path.join(SAMPLE, f"captions_{s}2017.json") for s in ("train", "val")]
    elif len(argv) >= 3:
        csv_path, files = argv[1], argv[2:]
    else:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check(csv_path, files)
    for p in problems:
        print(p)
    if problems:
        return 1
    with open(csv_path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    print(f"ok: {csv_path}: {len(rows) - 1} captions, languages {', '.join(rows[0][3:])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
