#!/usr/bin/env python3
"""Write a synthetic COCO instances file shaped like instances_train2017.json (~450 MB:
118,287 images, 860,001 annotations with polygon segmentations, the real 80 categories)
for benchmarking bench_coco. Do not commit the output. Standard library only.

usage: gen_big_coco.py OUT.json [--images N] [--anns N] [--seed S]
The layout (key order, separators, number formats) follows the official file: compact
separators, polygons as [[x1,y1,x2,y2,...]] with two decimals, ~10% crowd RLE masks."""
import argparse
import json
import os
import random

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--images", type=int, default=118287)
ap.add_argument("--anns", type=int, default=860001)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--categories", default=os.path.join(os.path.dirname(__file__), "../../../shared/data/coco/categories.json"))
a = ap.parse_args()
rng = random.Random(a.seed)
cats = json.load(open(a.categories))["categories"]

with open(a.out, "w") as f:
    f.write('{"info":{"description":"synthetic COCO-shaped file for benchmarks","year":2017},"licenses":[],"images":[')
    for i in range(a.images):
        iid = 1 + i * 5
        f.write(("," if i else "") + '{"license":%d,"file_name":"%012d.jpg","coco_url":"http://images.cocodataset.org/train2017/%012d.jpg",'
                '"height":%d,"width":640,"date_captured":"2013-11-14 17:02:52","flickr_url":"http://farm4.staticflickr.com/x.jpg","id":%d}'
                % (rng.randint(1, 8), iid, iid, rng.choice([427, 480, 426, 640]), iid))
    f.write('],"annotations":[')
    for k in range(a.anns):
        iid = 1 + rng.randrange(a.images) * 5
        crowd = rng.random() < 0.01
        if crowd:
            seg = '{"counts":[%s],"size":[480,640]}' % ",".join(str(rng.randint(0, 5000)) for _ in range(rng.randint(20, 200)))
        else:
            npts = rng.randint(6, 60)
            seg = "[[" + ",".join("%.2f" % (rng.random() * 640) for _ in range(2 * npts)) + "]]"
        f.write(("," if k else "") + '{"segmentation":%s,"area":%.5f,"iscrowd":%d,"image_id":%d,"bbox":[%.2f,%.2f,%.2f,%.2f],'
                '"category_id":%d,"id":%d}' % (seg, rng.random() * 50000, int(crowd), iid, rng.random() * 600,
                                              rng.random() * 400, rng.random() * 200, rng.random() * 200,
                                              rng.choice(cats)["id"], 1 + k))
    f.write('],"categories":' + json.dumps(cats, separators=(",", ":")) + "}")
print(a.out, os.path.getsize(a.out), "bytes")
