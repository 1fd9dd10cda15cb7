"""reprshift.shift gives the numbers of `reprshift shift` (results.json), from files and from
in-memory caches; run_with_cache gives the activations of `reprshift extract`."""
import json
import os

import numpy as np
import pytest

import reprshift
from conftest import QS, run_cli

TEXTS = ["A cat sits on a red sofa.", "Two dogs run along the beach at sunset.", "A plate of pasta with basil.",
         "An old man reads a newspaper on a bench.", "A red bus drives past a tall building."]
HOOK = "blocks.1.hook_resid_post"
SAE = os.path.join(QS, "sae", HOOK)
OPTS = ["--bootstrap", "50", "--permutations", "20", "--seed", "7"]


@pytest.fixture(scope="module")
def extracted(cli, tmp_path_factory):
    d = tmp_path_factory.mktemp("shift")
    texts = d / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    out = {}
    for key, model in (("a", "gemma2-tiny"), ("b", "paligemma-tiny")):
        out[key] = str(d / (key + ".safetensors"))
        run_cli(cli, "extract", "--model", os.path.join(QS, model), "--hook", HOOK, "--texts", str(texts),
                "--out", out[key])
    res = str(d / "cli")
    run_cli(cli, "shift", "--a", out["a"], "--b", out["b"], "--sae", SAE, "--hook", HOOK, *OPTS, "--out", res)
    with open(os.path.join(res, "results.json")) as f:
        out["results"] = json.load(f)
    out["dir"] = res
    return out


def without_labels(r):
    r = json.loads(json.dumps(r))
    for k in ("acts_a", "acts_b"):
        r.pop(k, None)
    return r


def test_extract_equals_run_with_cache(extracted):
    files = {k: reprshift.load_safetensors(extracted[k]) for k in ("a", "b")}
    for key, model in (("a", "gemma2-tiny"), ("b", "paligemma-tiny")):
        m = reprshift.Model(os.path.join(QS, model))
        c = m.run_with_cache(texts=TEXTS, hooks=[HOOK], progress=False)
        np.testing.assert_array_equal(c[HOOK], files[key][HOOK])
        np.testing.assert_array_equal(c.token_ids, files[key]["token_ids"])
        np.testing.assert_array_equal(c.offsets, files[key]["offsets"])
        np.testing.assert_array_equal(m.tokenize(TEXTS[0]), c.input_tokens(0))


def test_shift_of_files_equals_cli(extracted):
    r = reprshift.shift(extracted["a"], extracted["b"], sae=SAE, hook=HOOK, n_boot=50, n_perm=20, seed=7)
    assert r == extracted["results"]
    assert r["layers"][0]["shift"]["cos_raw"]["value"] < 1.0


def test_shift_of_caches_equals_cli(extracted):
    caches = [reprshift.Model(os.path.join(QS, m)).run_with_cache(texts=TEXTS, hooks=[HOOK], progress=False)
              for m in ("gemma2-tiny", "paligemma-tiny")]
    sae = reprshift.SAE.load(SAE)
    r = reprshift.shift(caches[0], caches[1], sae=sae, n_boot=50, n_perm=20, seed=7)
    assert without_labels(r) == without_labels(extracted["results"])


def test_sae_encode_decode_match_the_shift_fit(extracted):
    sae = reprshift.SAE.load(SAE)
    assert (sae.d_in, sae.hook_name) == (64, HOOK)
    x = reprshift.load_safetensors(extracted["a"])[HOOK]
    f = sae.encode(x)
    assert f.shape == (x.shape[0], sae.d_sae) and (f >= 0).all()
    xh = sae.decode(f, x)
    # the fit's explained variance over the non-special rows, as results.json reports it
    ids = reprshift.load_safetensors(extracted["a"])["token_ids"]
    keep = ~np.isin(ids, [0, 1, 2])
    xs, rs = x[keep].astype(np.float64), xh[keep].astype(np.float64)
    ev = 1 - ((xs - rs) ** 2).sum(0).sum() / ((xs - xs.mean(0)) ** 2).sum(0).sum()
    want = extracted["results"]["layers"][0]["fit"]["a"]["explained_variance"]
    assert abs(ev - want) < 1e-4 * max(1.0, abs(want))


def test_load_run_reads_the_shift_folder(extracted):
    run = reprshift.load_run(extracted["dir"])
    assert run.json["results"] == extracted["results"]
    recs = run.shift_records()
    cos = [r for r in recs if r["metric"] == "cos_raw"][0]
    assert cos["value"] == extracted["results"]["layers"][0]["shift"]["cos_raw"]["value"]
    summary = run.tables["summary"]
    assert summary and {"layer", "hook", "metric", "value"} <= set(summary[0])
    t = run.table("summary")
    try:
        import pandas  # noqa: F401
        assert len(t) == len(summary)
    except ImportError:
        assert t is summary
