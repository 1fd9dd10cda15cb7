"""Goldens for tests/test_pipeline_downstream.c: the downstream stage of `reprshift run`
(results/downstream.json, results/downstream_items.csv), from the reference stack only.

Five COCO-mini val2017 images (image_table.jsonl) and their first captions, plus the second
caption of the first image (6 captions, 5 images: the bootstrap and permutations work on
images), through the quickstart bundle (examples/quickstart/models), fp32, eager:
  * caption ids: `tokenizers` (gemma2-tiny/tokenizer.json, with <bos>);
  * ce[i]: PaliGemmaProcessor(images=IMG, text="caption en", suffix=caption) (image processor
    backend pil) through PaliGemmaForConditionalGeneration: the mean next-token CE (float64
    log-softmax of the logits) over the suffix's predictions, every caption token and the
    closing <eos>; hf_loss[i] is the model's own loss with the processor's labels (the same
    number, recorded as a cross-check); n_tokens[i] the number of those predictions;
  * shift[L][i]: 1 - cos (float64) of the mean over the caption's content tokens (id > 2 and
    not a whitespace-only piece such as "\u2581", docs/metrics.md "Excluded tokens") of
    Gemma2ForCausalLM's layer-L output (blocks.L.hook_resid_post, forward hook) and of
    PaliGemma's layer-L output at the same caption tokens in the suffix; shift_last[L][i] the
    same with `pool: "last"`: the two rows of the caption's last token (before the <eos>);
  * ce_patched[L][i]: ce with PaliGemma's layer-L output at the caption's suffix rows (not
    the <eos>) replaced by Gemma-2's layer-L output at the same caption tokens (rows 1..n
    of <bos> caption), by a forward hook;
  * rho[L]: scipy.stats.spearmanr(shift[L], ce) and (shift[L], ce_patched[L] - ce), and their
    exact two-sided permutation p-values under the stage's null (the second variable permuted
    between images with the same number of captions; all 4! permutations enumerated);
  * spearman_cases: scipy.stats.spearmanr on fixed vectors (ties, reversed, n = 3, constant).
Layers 1 and 3. Writes tests/fixtures/downstream/golden.json (versions recorded inside).

    /work/refenv/bin/python tools/reference/gen_downstream_goldens.py
"""
import itertools
import os
import sys
import warnings

import numpy as np
import scipy
import scipy.stats
import torch
import torch.nn.functional as F

from tiny_run import ROOT, layer_hooks, load_tiny, open_rgb, val_rows, versions, write_json

OUT = os.path.join(ROOT, "tests", "fixtures", "downstream", "golden.json")
LAYERS = [1, 3]


def spearman(x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = scipy.stats.spearmanr(x, y).statistic
    return None if not np.isfinite(r) else float(r)


def main():
    picked = val_rows(5)
    tok, llm, vlm, proc, pproc = load_tiny()
    sl, sv = {"out": {}}, {"out": {}}
    layer_hooks(llm, sl)
    layer_hooks(vlm, sv)

    items = []  # (image index, caption)
    for j, r in enumerate(picked):
        items.append((j, r["captions"][0]))
        if j == 0:
            items.append((j, r["captions"][1]))
    images = [open_rgb(r) for r in picked]

    out = {"versions": versions(scipy=scipy.__version__),
           "generator": "tools/reference/gen_downstream_goldens.py", "layers": LAYERS,
           "images": [{"file": os.path.basename(r["file"]), "label": "ab"[j % 2]} for j, r in enumerate(picked)],
           "inputs": [], "ce": [], "hf_loss": [], "n_tokens": [],
           "shift": {str(L): [] for L in LAYERS}, "shift_last": {str(L): [] for L in LAYERS},
           "ce_patched": {str(L): [] for L in LAYERS}}

    def suffix_ce(enc, cap0, n_pred):
        with torch.no_grad():
            o = vlm(**enc, use_cache=False)
        lp = F.log_softmax(o.logits.double()[0], dim=-1)
        ids = enc["input_ids"][0]
        rows = range(cap0 - 1, cap0 - 1 + n_pred)
        return float(sum(-lp[r, ids[r + 1]] for r in rows)) / n_pred, o

    for j, cap in items:
        ids = tok.encode(cap).ids
        assert ids[0] == 2
        n_cap = len(ids) - 1
        out["inputs"].append({"image": j, "caption": cap, "ids": ids})
        with torch.no_grad():
            llm(input_ids=torch.tensor([ids]))
        hl = {L: sl["out"][L].clone() for L in LAYERS}
        enc = pproc(images=images[j], text="caption en", suffix=cap, return_tensors="pt")
        eids = enc["input_ids"][0].tolist()
        cap0 = int((enc["token_type_ids"][0] == 1).nonzero()[0])
        assert eids[cap0:cap0 + n_cap] == ids[1:] and eids[-1] == 1 and len(eids) == cap0 + n_cap + 1
        n_pred = n_cap + 1  # every caption token and <eos>
        sv["patch"] = None
        ce, o = suffix_ce(enc, cap0, n_pred)
        out["ce"].append(ce)
        out["n_tokens"].append(n_pred)
        if "labels" in enc:
            with torch.no_grad():
                out["hf_loss"].append(float(vlm(**enc, use_cache=False).loss))
        hv = {L: sv["out"][L].clone() for L in LAYERS}
        # the caption's content tokens: not <pad>/<eos>/<bos> (ids 0-2) nor whitespace-only pieces ("\u2581")
        m = torch.tensor([i > 2 and tok.id_to_token(i).replace("\u2581", " ").strip() != "" for i in ids[1:]])
        for L in LAYERS:
            a = hl[L][1:][m].double().mean(0)
            b = hv[L][cap0:cap0 + n_cap][m].double().mean(0)
            out["shift"][str(L)].append(float(1 - torch.dot(a, b) / (a.norm() * b.norm())))
            # pool "last": the caption's last token (row n_cap of <bos> caption; before the suffix's <eos>)
            a, b = hl[L][n_cap].double(), hv[L][cap0 + n_cap - 1].double()
            out["shift_last"][str(L)].append(float(1 - torch.dot(a, b) / (a.norm() * b.norm())))
            sv["patch"] = (L, list(range(cap0, cap0 + n_cap)), hl[L][1:1 + n_cap])
            cp, _ = suffix_ce(enc, cap0, n_pred)
            sv["patch"] = None
            out["ce_patched"][str(L)].append(cp)
    ce = np.array(out["ce"])
    out["rho"] = {str(L): {"shift_ce": spearman(out["shift"][str(L)], ce),
                           "shift_delta_ce": spearman(out["shift"][str(L)], np.array(out["ce_patched"][str(L)]) - ce)}
                  for L in LAYERS}
    # exact permutation p-values of the stage's null: the second variable permuted between images
    # with the same number of captions (whole images, caption order kept), every such permutation
    # enumerated; two-sided, ties within 1e-12 counted as at least as extreme
    units = [inp["image"] for inp in out["inputs"]]
    imgs = sorted(set(units))
    members = {g: [i for i, u in enumerate(units) if u == g] for g in imgs}
    classes = {}
    for g in imgs:
        classes.setdefault(len(members[g]), []).append(g)

    def exact_p(x, y):
        obs = abs(spearman(x, y))
        per_class = [list(itertools.permutations(gs)) for gs in classes.values()]
        ge = tot = 0
        for combo in itertools.product(*per_class):
            yp = np.array(y, dtype=float).copy()
            for gs, perm in zip(classes.values(), combo):
                for g, h in zip(gs, perm):
                    for a, b in zip(members[g], members[h]):
                        yp[a] = y[b]
            tot += 1
            ge += abs(spearman(x, yp)) >= obs - 1e-12
        return ge / tot, tot
    for L in LAYERS:
        sh = out["shift"][str(L)]
        out["rho"][str(L)]["p_exact_shift_ce"], n_perm = exact_p(sh, ce)
        out["rho"][str(L)]["p_exact_shift_delta_ce"], _ = exact_p(sh, np.array(out["ce_patched"][str(L)]) - ce)
        out["rho"][str(L)]["n_exact_permutations"] = n_perm
    cases = [
        ([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]),
        ([0.3, -1.2, 4.5, 2.2, 2.2, 0.0, 7.1], [1, 1, 2, 3, 5, 8, 13]),
        ([1, 2, 3, 4], [4, 3, 2, 1]),
        ([3, 1, 2], [0.5, 0.25, 0.75]),
        ([1, 1, 2, 2, 3, 3, 4, 4], [2, 1, 2, 1, 4, 3, 4, 3]),
        ([2, 2, 2, 2], [1, 2, 3, 4]),
    ]
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    cases.append((list(np.round(x, 6)), list(np.round(0.3 * x + rng.normal(size=40), 6))))
    out["spearman_cases"] = [{"x": [float(v) for v in a], "y": [float(v) for v in b], "rho": spearman(a, b)}
                             for a, b in cases]
    write_json(out, OUT)
    print(f"wrote {OUT}: {len(items)} captions of {len(picked)} images, layers {LAYERS}", file=sys.stderr)


if __name__ == "__main__":
    main()
