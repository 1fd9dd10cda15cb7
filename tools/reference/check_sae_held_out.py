#!/usr/bin/env python3
"""Hand check of results/sae_train.json eval_held_out (docs/sae-training.md, Held-out fit): sae-lens
loads the saved SAE folder, numpy computes FVU / L0 / dead fraction on the content tokens of the
test-split captions, and the 95% percentile bootstrap over the held-out images is redone with the
same resamples (splitmix64 counter stream, seed = sae_train.seed ^ 0x686f6c646f7574, image j of
replicate b drawn as floor(u(b*G + j) * G), images numbered by their first caption).
Usage: check_sae_held_out.py RUN_DIR HOOK TOKENIZER_JSON [SEED] [BOOTSTRAP]
(store vlm_caption, one shard: the quickstart-sized runs)."""
import json, sys
import numpy as np, torch
from safetensors.numpy import load_file
from tokenizers import Tokenizer
from sae_lens import SAE

run, hook, tok_path = sys.argv[1], sys.argv[2], sys.argv[3]
st = load_file(f"{run}/acts/vlm_caption/shard-00000.safetensors")
rows = [json.loads(l) for l in open(f"{run}/acts/vlm_caption/shard-00000.rows.jsonl")]
X, ids, kind, off = st[hook], st["token_ids"], st["token_kind"], st["offsets"]
tok = Tokenizer.from_file(tok_path)
def blank(i):
    p = tok.id_to_token(int(i))
    if p in ("<0x09>", "<0x0A>", "<0x0D>", "<0x20>"): return True
    return p is not None and len(p) > 0 and all(ch in " \n\t\r\u2581" for ch in p)
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 1
test_rows, train_rows, imgs, img_of = [], [], {}, []
for i, r in enumerate(rows):
    for t in range(off[i], off[i + 1]):
        if kind[t] != 5 or blank(ids[t]): continue
        if r["read_with_image"]["image_id"] is not None and r["split"] == "test":
            g = imgs.setdefault(r["read_with_image"]["image_id"], len(imgs))
            test_rows.append(t); img_of.append(g)
        else:
            train_rows.append(t)
H = X[test_rows].astype(np.float64)
sae = SAE.load_from_disk(f"{run}/results/sae_train/{hook}", device="cpu")
with torch.no_grad():
    f = sae.encode(torch.tensor(H, dtype=torch.float32))
    xh = sae.decode(f).double().numpy()
f = f.numpy()
fvu = ((H - xh) ** 2).sum() / ((H - H.mean(0)) ** 2).sum()
l0 = (f > 0).sum(1).mean()
dead = ((f > 0).sum(0) == 0).mean()
e = [h for h in json.load(open(f"{run}/results/sae_train.json"))["hooks"] if h["hook"] == hook][0]
ho = e["eval_held_out"]
print("images", len(imgs), ho["n_images"], "rows", len(test_rows), ho["n_rows"], "train rows", len(train_rows), e["n_rows"])
for k, v in (("fvu", fvu), ("l0", l0), ("dead_fraction", dead)):
    print(k, "ref %.9g ours %.9g rel %.2e" % (v, ho[k]["value"], abs(v - ho[k]["value"]) / max(abs(v), 1e-300)))

M64 = (1 << 64) - 1
def u(sd, idx):
    z = (sd + (idx + 1) * 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    z ^= z >> 31
    return (z >> 11) * 2.0 ** -53
B = int(sys.argv[5]) if len(sys.argv) > 5 else 200
G, img_of = len(imgs), np.array(img_of)
reps = []
for b in range(B):
    w = np.zeros(G, int)
    for j in range(G):
        w[min(int(u(seed ^ 0x686f6c646f7574, b * G + j) * G), G - 1)] += 1
    m = np.repeat(np.arange(len(test_rows)), w[img_of])  # each row as often as its image was drawn
    Hb, xb, fb = H[m], xh[m], f[m]
    reps.append((((Hb - xb) ** 2).sum() / ((Hb - Hb.mean(0)) ** 2).sum(), (fb > 0).sum(1).mean(),
                 ((fb > 0).sum(0) == 0).mean()))
reps = np.array(reps)
for q, k in enumerate(("fvu", "l0", "dead_fraction")):
    lo, hi = np.percentile(reps[:, q], 2.5), np.percentile(reps[:, q], 97.5)
    print(k, "CI ref [%.9g, %.9g] ours [%.9g, %.9g]" % (lo, hi, ho[k]["ci_lo"], ho[k]["ci_hi"]))
