"""Sparse autoencoders, the representation shift, and reading run folders."""
import csv
import ctypes
import json
import os
from ctypes import c_void_p

import numpy as np

from . import _lib, _progress
from ._lib import check, enc, lib
from ._model import ActivationCache


def _f32(x, what, width=None):
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError("%s: expected a [rows, %s] array, got shape %s" % (what, width or "d", a.shape))
    if width is not None and a.shape[1] != width:
        raise ValueError("%s: expected %d columns, got %d" % (what, width, a.shape[1]))
    return a


class SAE:
    """A sparse autoencoder (sae-lens folder, Gemma Scope params.npz, or a sae-lens registry
    name "RELEASE/SAE_ID" found in the Hugging Face cache), encoding and decoding exactly as
    sae-lens does (docs/metrics.md).

    Attributes:
        info: dict with d_in, d_sae, architecture, hook_name, path (and name, neuronpedia
            for registry names).
    """

    def __init__(self, *a, **k):
        raise TypeError("use reprshift.SAE.load(path)")

    @classmethod
    def load(cls, path, hook=None):
        """Load an SAE; hook overrides the hook name recorded in its files."""
        self = object.__new__(cls)
        self._h = None
        self.path = os.fspath(path)
        self.hook = hook
        h = c_void_p()
        check(lib.rsc_sae_load(enc(path), enc(hook), ctypes.byref(h)))
        self._h = h
        js = c_void_p()
        check(lib.rsc_sae_info(h, ctypes.byref(js)))
        self.info = json.loads(_lib.take_string(js))
        return self

    @property
    def d_in(self):
        return self.info["d_in"]

    @property
    def d_sae(self):
        return self.info["d_sae"]

    @property
    def hook_name(self):
        return self.info.get("hook_name")

    def __del__(self):
        h, self._h = getattr(self, "_h", None), None
        if h and lib is not None:
            lib.rsc_sae_free(h)

    def __repr__(self):
        return "SAE(%r, %s, d_in=%d, d_sae=%d, hook=%r)" % (self.path, self.info["architecture"], self.d_in,
                                                           self.d_sae, self.hook_name)

    def encode(self, x):
        """Feature activations of x [n, d_in] (float32 [n, d_sae])."""
        a = _f32(x, "SAE.encode", self.d_in)
        out = np.empty((a.shape[0], self.d_sae), np.float32)
        check(lib.rsc_sae_encode(self._h, a.ctypes.data, a.shape[0], out.ctypes.data))
        return out

    def decode(self, f, x=None):
        """Reconstruction from features f [n, d_sae] (float32 [n, d_in]); x, the encoded
        input, is needed only by SAEs that normalise their input."""
        fa = _f32(f, "SAE.decode", self.d_sae)
        xa = None if x is None else _f32(x, "SAE.decode x", self.d_in)
        if xa is not None and xa.shape[0] != fa.shape[0]:
            raise ValueError("SAE.decode: f has %d rows, x %d" % (fa.shape[0], xa.shape[0]))
        out = np.empty((fa.shape[0], self.d_in), np.float32)
        check(lib.rsc_sae_decode(self._h, fa.ctypes.data, None if xa is None else xa.ctypes.data, fa.shape[0],
                                 out.ctypes.data))
        return out

    def reconstruct(self, x):
        """decode(encode(x))."""
        return self.decode(self.encode(x), x)


def shift(a, b, sae=None, hook=None, layers=None, sae_hook=None, allow_hook_mismatch=False, keep_special=False,
          pooled=False, n_boot=1000, n_perm=200, seed=24301, top_k=20, min_count=None, tokenizer=None,
          categories=None, threads=None, out=None, progress=None):
    """The representation shift between two models' activations on the same inputs:
    ``reprshift shift`` as a function, returning its results.json as a dict (the same numbers).

    Args:
        a, b: activation files written by ``reprshift extract`` (paths), or two unpooled
            ActivationCache objects from run_with_cache (then labelled "a" and "b").
        sae: an SAE path / registry name or an :class:`SAE` (its load path is used), may
            contain "{layer}"; None: raw metrics only.
        hook: the activation tensor (may contain "{layer}"); None: the only one.
        layers: layers substituted for {layer} (list of ints).
        n_boot, n_perm, seed, top_k, min_count, keep_special, pooled, allow_hook_mismatch,
        sae_hook, tokenizer, categories: as the CLI's options (``reprshift shift --help``).
        threads: threads for the permutation nulls (results do not depend on it).
        out: a folder: also write every file ``reprshift shift --out`` writes (files only).
        progress: a tqdm bar over the layers of a sweep (default off). Ctrl-C stops a sweep
            between layers (KeyboardInterrupt).
    """
    opts = {"n_boot": n_boot, "n_perm": n_perm, "seed": seed, "top_k": top_k,
            "keep_special": int(bool(keep_special)), "pooled": int(bool(pooled)),
            "allow_hook_mismatch": int(bool(allow_hook_mismatch))}
    if sae is not None:
        opts["sae"] = sae.path if isinstance(sae, SAE) else os.fspath(sae)
        if isinstance(sae, SAE) and sae.hook and sae_hook is None:
            sae_hook = sae.hook
    for k, v in (("hook", hook), ("sae_hook", sae_hook), ("min_count", min_count), ("tokenizer", tokenizer),
                 ("categories", categories), ("threads", threads), ("out", out)):
        if v is not None:
            opts[k] = os.fspath(v) if isinstance(v, os.PathLike) else v
    if layers is not None:
        opts["layers"] = ",".join(str(int(x)) for x in layers)
    for k, v in opts.items():
        if "\n" in str(v) or "=" in k:
            raise ValueError("shift: option %s holds a newline" % k)
    text = "\n".join("%s=%s" % (k, v) for k, v in opts.items()).encode("utf-8")
    js = c_void_p()
    mem = isinstance(a, ActivationCache), isinstance(b, ActivationCache)
    with _progress.call(progress):
        if all(mem):
            check(lib.rsc_shift_results(a._result.handle, b._result.handle, text, ctypes.byref(js)))
        elif any(mem):
            raise TypeError("shift: give two files or two ActivationCache objects, not one of each")
        else:
            check(lib.rsc_shift(enc(os.fspath(a)), enc(os.fspath(b)), text, ctypes.byref(js)))
    return json.loads(_lib.take_string(js))


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k, v in r.items():
            if v is None:
                continue
            try:
                r[k] = int(v) if v.lstrip("-").isdigit() else float(v) if v not in ("",) else None
            except ValueError:
                pass  # text stays text
    return rows


class Run:
    """The results of a ``reprshift run`` folder (its results/ subfolder) or of a
    ``reprshift shift --out`` folder.

    Attributes:
        path: the folder read.
        json: dict, file stem → parsed JSON (e.g. ``run.json["shift"]`` is results/shift.json).
        tables: dict, file stem → list of records (dicts, numbers parsed) of each CSV.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        sub = os.path.join(self.path, "results")
        base = sub if os.path.isdir(sub) else self.path
        if not os.path.isdir(base):
            raise _lib.FileError("%s: no such folder" % self.path, "EIO")
        self.json, self.tables = {}, {}
        for name in sorted(os.listdir(base)):
            p = os.path.join(base, name)
            stem, ext = os.path.splitext(name)
            try:
                if ext == ".json":
                    with open(p, encoding="utf-8") as f:
                        self.json[stem] = json.load(f)
                elif ext == ".csv":
                    self.tables[stem] = _read_csv(p)
            except (ValueError, OSError) as e:
                raise _lib.FormatError("%s: %s" % (p, e), "EFORMAT") from e
        if not self.json and not self.tables:
            raise _lib.FormatError("%s: no results (*.json / *.csv) in it" % base, "EFORMAT")

    def table(self, name):
        """A CSV as a pandas DataFrame when pandas is installed, else a list of dicts."""
        rows = self.tables[name]
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame.from_records(rows)

    def shift_records(self):
        """One record per (layer, metric) of the shift results: layer, hook, metric, value,
        ci_lo, ci_hi, p_value, null_lo, null_hi, q_value — ready for ``pandas.DataFrame(run.shift_records())``."""
        res = self.json.get("shift") or self.json.get("results")
        if res is None:
            raise KeyError("no shift results (results/shift.json or results.json) in %s" % self.path)
        out = []
        for L in res.get("layers", []):
            for metric, v in (L.get("shift") or {}).items():
                if not isinstance(v, dict) or "value" not in v:
                    continue
                rec = {"layer": L.get("layer"), "hook": L.get("hook"), "metric": metric}
                for k in ("value", "ci_lo", "ci_hi", "p_value", "null_lo", "null_hi", "q_value"):
                    rec[k] = v.get(k)
                out.append(rec)
        return out

    def __repr__(self):
        return "Run(%r, json=%s, tables=%d)" % (self.path, sorted(self.json), len(self.tables))


def load_run(path):
    """Read a run folder's results (see :class:`Run`)."""
    return Run(path)
