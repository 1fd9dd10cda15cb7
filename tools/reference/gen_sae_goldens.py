#!/usr/bin/env python3
"""Golden fixtures for the SAE / npz / fit-metric tests (tests/test_npz.c, tests/test_sae.c).

Run with the reference venv:  /work/refenv/bin/python tools/reference/gen_sae_goldens.py
Writes tests/fixtures/sae/. Every expected value comes from numpy (npz files) or sae-lens
(SAE folders written by sae-lens's own save_model, features/reconstructions from sae-lens
encode/decode, explained variance from sae_lens.evals.ExplainedVarianceCalculator).
Library versions are recorded in versions.json and in each golden's __metadata__.
"""
import io
import json
import os
import shutil
import struct
import sys
import zipfile

import numpy as np
import torch
import safetensors
from safetensors.numpy import save_file

import sae_lens
from sae_lens import SAE
from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig
from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig
from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig
from sae_lens.saes.sae import SAEMetadata
from sae_lens.evals import ExplainedVarianceCalculator

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "sae")
VERSIONS = {
    "sae_lens": sae_lens.__version__,
    "torch": torch.__version__,
    "numpy": np.__version__,
    "safetensors": safetensors.__version__,
    "python": sys.version.split()[0],
}
D_IN, D_SAE, N = 64, 128, 48


def meta(**kw):
    m = {"generator": "tools/reference/gen_sae_goldens.py", "versions": json.dumps(VERSIONS)}
    m.update({k: str(v) for k, v in kw.items()})
    return m


# ---------------------------------------------------------------- npz fixtures
def npy_bytes(arr, version=None):
    b = io.BytesIO()
    np.lib.format.write_array(b, arr, version=version, allow_pickle=True)
    return b.getvalue()


def gen_npz(d):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 5)).astype("<f4")
    b = rng.standard_normal((7,)).astype("<f8")
    c = np.arange(6, dtype="<i4").reshape(2, 3)
    e = (np.arange(4, dtype="<i8") - 2) * 1000000000000
    s = np.array(2.5, dtype="<f4")  # 0-d
    z = np.zeros((0, 4), dtype="<f4")
    arrays = dict(a=a, b=b, c=c, e=e, s=s, z=z)
    np.savez(os.path.join(d, "stored.npz"), **arrays)
    np.savez_compressed(os.path.join(d, "deflated.npz"), **arrays)
    # zip64 extra fields with small data, npy v2 and v3 headers
    with zipfile.ZipFile(os.path.join(d, "zip64_v2v3.npz"), "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("a.npy", "w", force_zip64=True) as f:
            f.write(npy_bytes(a, (2, 0)))
        with zf.open("c.npy", "w", force_zip64=True) as f:
            f.write(npy_bytes(c, (3, 0)))
    np.save(os.path.join(d, "single_v1.npy"), a)
    # expected values for the C test
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items() if v.size},
              os.path.join(d, "npz_expected.safetensors"), metadata=meta())

    # bad files
    np.savez(os.path.join(d, "bad_fortran.npz"), a=np.asfortranarray(rng.standard_normal((3, 4)).astype("<f4")))
    np.savez(os.path.join(d, "bad_bigendian.npz"), a=np.arange(4, dtype=">f4"))
    np.savez(os.path.join(d, "bad_object.npz"), a=np.array([{"x": 1}, None], dtype=object), allow_pickle=True)

    def raw_member(name, header_dict, data):
        h = repr(header_dict).encode("latin1")
        pad = 64 - (10 + len(h) + 1) % 64
        h = h + b" " * pad + b"\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + data

    with zipfile.ZipFile(os.path.join(d, "bad_overflow.npz"), "w") as zf:
        zf.writestr("a.npy", raw_member("a", {"descr": "<f4", "fortran_order": False,
                                                "shape": (2**40, 2**40)}, b"\0" * 16))
    with zipfile.ZipFile(os.path.join(d, "bad_truncated.npz"), "w") as zf:
        zf.writestr("a.npy", raw_member("a", {"descr": "<f4", "fortran_order": False, "shape": (10,)}, b"\0" * 12))
    # "bomb": header claims 4 floats but the member inflates to 1 MiB of data
    with zipfile.ZipFile(os.path.join(d, "bad_bomb.npz"), "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.npy", raw_member("a", {"descr": "<f4", "fortran_order": False, "shape": (4,)}, b"\0" * (1 << 20)))
    # header claims a huge array inside a tiny member (allocation must not happen)
    with zipfile.ZipFile(os.path.join(d, "bad_huge.npz"), "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.npy", raw_member("a", {"descr": "<f4", "fortran_order": False, "shape": (1 << 34,)}, b"\0" * 8))
    with open(os.path.join(d, "stored.npz"), "rb") as f:
        blob = f.read()
    with open(os.path.join(d, "bad_notzip.npz"), "wb") as f:
        f.write(blob[: len(blob) // 2])


# ---------------------------------------------------------------- SAE fixtures
def rand_weights(seed, jump=False):
    g = torch.Generator().manual_seed(seed)
    W_enc = torch.randn(D_IN, D_SAE, generator=g) * 0.25
    W_dec = torch.randn(D_SAE, D_IN, generator=g) * 0.2
    b_enc = torch.randn(D_SAE, generator=g) * 0.3 - 0.2
    b_dec = torch.randn(D_IN, generator=g) * 0.1
    w = dict(W_enc=W_enc, W_dec=W_dec, b_enc=b_enc, b_dec=b_dec)
    if jump:
        w["threshold"] = torch.rand(D_SAE, generator=g) * 0.8
    return w


def make_sae(kind, w, hook, **cfgkw):
    md = SAEMetadata(hook_name=hook, model_name="gemma-2-2b")
    if kind == "standard":
        sae = StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE, metadata=md, **cfgkw))
    elif kind == "jumprelu":
        sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=D_IN, d_sae=D_SAE, metadata=md, **cfgkw))
    else:
        sae = TopKSAE(TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, metadata=md, **cfgkw))
    with torch.no_grad():
        for k, v in w.items():
            getattr(sae, k).copy_(v)
    return sae


def gen_saes(d):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(N, D_IN, generator=g) * 1.5 + 0.3
    x[0] *= 20.0  # a "BOS"-like high-norm row
    token_ids = np.array([2] + list(range(100, 100 + N - 1)), dtype=np.int32)
    hook = "blocks.3.hook_resid_post"
    cases = {
        "standard": ("standard", 11, dict()),
        "standard_nobdec": ("standard", 12, dict(apply_b_dec_to_input=False)),
        "standard_layernorm": ("standard", 13, dict(normalize_activations="layer_norm")),
        "standard_cnr": ("standard", 14, dict(normalize_activations="constant_norm_rescale")),
        "jumprelu": ("jumprelu", 15, dict()),
        "topk": ("topk", 16, dict(k=12)),
        "topk_rescale": ("topk", 17, dict(k=12, rescale_acts_by_decoder_norm=True)),
    }
    golden = {"x": x.numpy(), "token_ids": token_ids}
    index = {}
    for name, (kind, seed, kw) in cases.items():
        w = rand_weights(seed, jump=(kind == "jumprelu"))
        sae = make_sae(kind, w, hook, **kw)
        path = os.path.join(d, "saelens_" + name)
        sae.save_model(path)
        # check sae-lens itself reads the folder back identically
        sae2 = SAE.load_from_disk(path)
        with torch.no_grad():
            acts = sae2.encode(x)
            rec = sae2.decode(acts)
            assert torch.equal(acts, sae.encode(x))
        golden[name + ".acts"] = acts.numpy()
        golden[name + ".recon"] = rec.numpy()
        index[name] = dict(kind=kind, path="saelens_" + name, **{k: v for k, v in kw.items()})

    # pre-6.0 config (hook_point, activation_fn_str, activation_fn_kwargs k) for a topk SAE
    w = rand_weights(21)
    sae = make_sae("topk", w, hook, k=9)
    path = os.path.join(d, "saelens_pre6_topk")
    sae.save_model(path)
    old = {"d_in": D_IN, "d_sae": D_SAE, "hook_point": hook, "hook_point_layer": 3,
           "model_name": "gemma-2-2b", "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 9},
           "apply_b_dec_to_input": True, "normalize_activations": False, "dtype": "float32",
           "device": "cpu", "sae_lens_training_version": "3.13.0"}
    with open(os.path.join(path, "cfg.json"), "w") as f:
        json.dump(old, f)
    sae2 = SAE.load_from_disk(path)
    assert sae2.cfg.architecture() == "topk" and sae2.cfg.k == 9
    with torch.no_grad():
        acts = sae2.encode(x)
        golden["pre6_topk.acts"] = acts.numpy()
        golden["pre6_topk.recon"] = sae2.decode(acts).numpy()

    # pre-6.0 standard config with normalize_activations=True (→ expected_average_only_in)
    w = rand_weights(22)
    sae = make_sae("standard", w, hook)
    path = os.path.join(d, "saelens_pre6_standard")
    sae.save_model(path)
    old = {"d_in": D_IN, "d_sae": D_SAE, "hook_point": hook, "model_name": "gemma-2-2b",
           "activation_fn_str": "relu", "normalize_activations": True, "dtype": "float32"}
    with open(os.path.join(path, "cfg.json"), "w") as f:
        json.dump(old, f)
    sae2 = SAE.load_from_disk(path)
    assert sae2.cfg.normalize_activations == "expected_average_only_in"
    with torch.no_grad():
        acts = sae2.encode(x)
        golden["pre6_standard.acts"] = acts.numpy()
        golden["pre6_standard.recon"] = sae2.decode(acts).numpy()

    # Gemma Scope params.npz: jumprelu, apply_b_dec_to_input False, normalize none — exactly
    # the config sae-lens's gemma_2 loader builds (get_gemma_2_config_from_hf).
    w = rand_weights(31, jump=True)
    gs = os.path.join(d, "gemma-scope-2b-pt-res", "layer_3", "width_128", "average_l0_5")
    os.makedirs(gs, exist_ok=True)
    np.savez(os.path.join(gs, "params.npz"), **{k: v.numpy() for k, v in w.items()})
    # lowercase-alias variant, deflated
    gs2 = os.path.join(d, "gemma-scope-alias")
    os.makedirs(gs2, exist_ok=True)
    np.savez_compressed(os.path.join(gs2, "params.npz"),
                        **{("w_" + k[2:] if k.startswith("W_") else k): v.numpy() for k, v in w.items()})
    sae = make_sae("jumprelu", w, hook, apply_b_dec_to_input=False, normalize_activations="none")
    with torch.no_grad():
        acts = sae.encode(x)
        rec = sae.decode(acts)
    golden["gemmascope.acts"] = acts.numpy()
    golden["gemmascope.recon"] = rec.numpy()
    # bad npz SAEs
    bad = {k: v.numpy() for k, v in w.items()}
    os.makedirs(os.path.join(d, "bad_missing"), exist_ok=True)
    np.savez(os.path.join(d, "bad_missing", "params.npz"), **{k: v for k, v in bad.items() if k != "threshold"})
    os.makedirs(os.path.join(d, "bad_shape"), exist_ok=True)
    bs = dict(bad)
    bs["W_dec"] = bs["W_dec"][:, :-1].copy()
    np.savez(os.path.join(d, "bad_shape", "params.npz"), **bs)
    # unknown architecture (sae-lens folder)
    src = os.path.join(d, "saelens_standard")
    dst = os.path.join(d, "bad_arch")
    shutil.copytree(src, dst, dirs_exist_ok=True)
    with open(os.path.join(dst, "cfg.json")) as f:
        c = json.load(f)
    c["architecture"] = "gated_mystery"
    with open(os.path.join(dst, "cfg.json"), "w") as f:
        json.dump(c, f)

    # ---- fit metrics, on the gemmascope SAE, rows with token id 2 (BOS) masked out
    mask = token_ids != 2
    xm, rm, am = x[mask].numpy().astype(np.float64), rec[mask].numpy().astype(np.float64), acts[mask].numpy()
    ev = ExplainedVarianceCalculator()
    ev.add_batch(sae_output=rec[mask], hidden_acts=x[mask])
    resid = ((xm - rm) ** 2).sum(-1)
    cos = (xm * rm).sum(-1) / (np.linalg.norm(xm, axis=-1) * np.linalg.norm(rm, axis=-1))
    alive = (am > 0).any(0)
    fit = {
        "explained_variance": ev.compute(),
        "mse": resid.mean(),
        "relative_mse": resid.sum() / (xm ** 2).sum(),
        "cossim": cos.mean(),
        "l0": (am != 0).sum(-1).mean(),
        "l1": np.abs(am).sum(-1).mean(),
        "frac_alive": alive.mean(),
        "frac_dead": 1 - alive.mean(),
        "mean_max_act": am.max(0)[alive].mean(),
        "n_rows": int(mask.sum()),
        "bos_mse": float(((x[~mask].numpy() - rec[~mask].numpy()) ** 2).sum(-1).mean()),
    }
    golden["fit.mask"] = mask.astype(np.int32)
    save_file({k: np.ascontiguousarray(v) for k, v in golden.items()},
              os.path.join(d, "sae_golden.safetensors"),
              metadata=meta(fit=json.dumps({k: float(v) for k, v in fit.items()})))
    with open(os.path.join(d, "cases.json"), "w") as f:
        json.dump(index, f, indent=1)


# ---------------------------------------------------------------- shift metrics (numpy)
def np_cos(x, y):
    nx, ny = np.linalg.norm(x, axis=-1), np.linalg.norm(y, axis=-1)
    c = (x * y).sum(-1) / np.where(nx * ny > 0, nx * ny, 1)
    c = np.where((nx == 0) & (ny == 0), 1.0, np.where((nx == 0) | (ny == 0), 0.0, c))
    return c


def np_js_bits(p, q):
    sp, sq = p.sum(), q.sum()
    if sp <= 0 and sq <= 0:
        return 0.0
    if sp <= 0 or sq <= 0:
        return 1.0
    p, q = p / sp, q / sq
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p > 0, p * np.log2(p / m), 0.0)
        b = np.where(q > 0, q * np.log2(q / m), 0.0)
    return float(np.clip(0.5 * a.sum() + 0.5 * b.sum(), 0, 1))


def np_cka(X, Y):
    X = X - X.mean(0)
    Y = Y - Y.mean(0)
    return (np.linalg.norm(X.T @ Y) ** 2) / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y))


def shift_stats(A, B, FA, FB, offsets, counts, alive):
    rows = np.concatenate([np.repeat(np.arange(offsets[g], offsets[g + 1])[None], c, 0).ravel()
                           for g, c in enumerate(counts) if c > 0])
    a, b, fa, fb = A[rows], B[rows], FA[rows], FB[rows]
    acta, actb = fa != 0, fb != 0
    uni = (acta | actb).sum(-1)
    jac = np.where(uni > 0, (acta & actb).sum(-1) / np.maximum(uni, 1), 1.0)
    js_tok = np.array([np_js_bits(fa[t], fb[t]) for t in range(len(rows))])
    ta, tb = fa.sum(0)[alive], fb.sum(0)[alive]
    tboth = (acta & actb).sum(0)[alive]
    tuni = (acta | actb).sum(0)[alive]
    jf = (tboth[tuni > 0] / tuni[tuni > 0]).mean()
    return np.array([
        np_cos(a, b).mean(), np.linalg.norm(a - b, axis=-1).mean(),
        np_cos(fa, fb).mean(), np.linalg.norm(fa - fb, axis=-1).mean(),
        jac.mean(), js_tok.mean(), jf, np_js_bits(ta, tb), np.corrcoef(ta, tb)[0, 1], np_cka(a, b)])


def gen_shift(d):
    """Aligned activations of two 'models' (B = rotated/shifted/noisy A), their features from
    the sae-lens jumprelu fixture SAE, and every statistic on the full data and on 40
    bootstrap resamples (counts saved so the C test replays the same resamples)."""
    rng = np.random.default_rng(5)
    lens = np.array([5, 3, 8, 4, 6, 7, 2, 5])
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    n = int(offsets[-1])
    A = (rng.standard_normal((n, D_IN)) * 1.2 + 0.5).astype(np.float32)
    Q, _ = np.linalg.qr(rng.standard_normal((D_IN, D_IN)))
    B = (A @ (0.8 * np.eye(D_IN) + 0.2 * Q) + rng.standard_normal((n, D_IN)) * 0.4 + 0.2).astype(np.float32)
    sae = SAE.load_from_disk(os.path.join(d, "saelens_jumprelu"))
    with torch.no_grad():
        FA = sae.encode(torch.from_numpy(A)).numpy().astype(np.float64)
        FB = sae.encode(torch.from_numpy(B)).numpy().astype(np.float64)
    FA[3] = 0.0  # a row with no active feature in A (conventions: cos 0, js 1)
    FA[4] = 0.0
    FB[4] = 0.0  # ... and one empty in both (cos 1, jaccard 1, js 0)
    alive = (FA != 0).any(0) | (FB != 0).any(0)
    G = len(lens)
    full = shift_stats(A.astype(np.float64), B.astype(np.float64), FA, FB, offsets, np.ones(G, int), alive)
    nb = 40
    counts = np.stack([np.bincount(rng.integers(0, G, G), minlength=G) for _ in range(nb)]).astype(np.int32)
    reps = np.stack([shift_stats(A.astype(np.float64), B.astype(np.float64), FA, FB, offsets, c, alive) for c in counts])
    lo = np.percentile(reps, 2.5, axis=0)
    hi = np.percentile(reps, 97.5, axis=0)
    names = ["cos_raw", "l2_raw", "cos_feat", "l2_feat", "jaccard_token", "js_token_bits",
             "jaccard_feature", "js_mass_bits", "pearson_mean_feat", "cka_linear"]
    # activation files in the `reprshift extract --pool none` layout for the CLI tests
    ids = (1000 + np.arange(n)).astype(np.int32)
    ids[offsets[:-1]] = 2  # each input starts with <bos>
    hook = "blocks.3.hook_resid_post"
    ext = {"pool": "none"}
    save_file({hook: A, "token_ids": ids, "offsets": offsets}, os.path.join(d, "acts_a.safetensors"), metadata=meta(**ext))
    save_file({hook: B, "token_ids": ids, "offsets": offsets}, os.path.join(d, "acts_b.safetensors"), metadata=meta(**ext))
    Bn = B.copy()
    Bn[5, 3] = np.nan
    save_file({hook: Bn, "token_ids": ids, "offsets": offsets}, os.path.join(d, "acts_nan.safetensors"), metadata=meta(**ext))
    save_file({"blocks.4.hook_resid_post": A, "token_ids": ids, "offsets": offsets},
              os.path.join(d, "acts_l4.safetensors"), metadata=meta(**ext))
    W = np.concatenate([A, A], axis=1)
    save_file({hook: W, "token_ids": ids, "offsets": offsets}, os.path.join(d, "acts_wide.safetensors"), metadata=meta(**ext))
    save_file({"a": A, "b": B, "fa": FA.astype(np.float32), "fb": FB.astype(np.float32), "offsets": offsets,
               "boot_counts": counts, "value": full, "lo": lo, "hi": hi,
               "per_row_cos_raw": np_cos(A.astype(np.float64), B.astype(np.float64))},
              os.path.join(d, "shift_golden.safetensors"),
              metadata=meta(stats=json.dumps(names), n_alive=int(alive.sum())))


def main():
    d = os.path.abspath(OUT)
    os.makedirs(d, exist_ok=True)
    gen_npz(d)
    gen_saes(d)
    gen_shift(d)
    with open(os.path.join(d, "versions.json"), "w") as f:
        json.dump(VERSIONS, f, indent=1)
    print("wrote", d)


if __name__ == "__main__":
    main()
