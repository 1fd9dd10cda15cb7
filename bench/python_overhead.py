"""Overhead of the Python package against the CLI for the same work (docs/python.md).

Work: Gemma-2 (the tiny quickstart model by default) over N COCO captions of the repository's
sample, one hook, unpooled. Timed, interleaved, REPEAT times each:
  cli     `reprshift extract --texts FILE --hook H --out X` (a whole process: start, model
          load, tokenize, forward, write the file)
  py      in a running interpreter: reprshift.Model(path) + run_with_cache(texts, hooks=[H])
  py_run  run_with_cache alone on an open model (the forward passes; the model loaded once)
  py_layer the time run_with_cache spends outside the C call rsc_run (tokenizing is inside
          it): the Python layer's own overhead, independent of machine noise
  cli_fwd the CLI's own forward-pass time (its "extract (tokens)" progress line is not
          printed for short runs, so: cli minus a 1-input run of the same command = start,
          load and write costs subtracted)
usage: PYTHONPATH=python python bench/python_overhead.py [--n 2000] [--repeat 7] [--model DIR] [--hook H]
       [--ids LEN]   (token ids instead of captions: N sequences of LEN random ids, for checkpoints
                      without a tokenizer such as the real-size random ones; wrap those in
                      flock /work/notes/bigmem.lock)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
import reprshift  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=2000)
ap.add_argument("--repeat", type=int, default=7)
ap.add_argument("--model", default=os.path.join(ROOT, "examples", "quickstart", "models", "gemma2-tiny"))
ap.add_argument("--hook", default="blocks.3.hook_resid_post")
ap.add_argument("--cli", default=os.path.join(ROOT, "build", "reprshift"))
ap.add_argument("--whole-only", action="store_true",
                help="only cli vs py (no resident model: one checkpoint in memory at a time; for real-size models)")
ap.add_argument("--ids", type=int, default=0, help="LEN: random id sequences of this length instead of captions")
a = ap.parse_args()

with open(os.path.join(ROOT, "examples", "data", "coco-sample", "annotations", "captions_val2017.json")) as f:
    caps = [c["caption"].strip().replace("\n", " ") for c in json.load(f)["annotations"]]
texts = [caps[i % len(caps)] for i in range(a.n)]
tmp = tempfile.mkdtemp()
tfile, one = os.path.join(tmp, "texts.txt"), os.path.join(tmp, "one.txt")
ids = None
if a.ids:
    import random
    rng = random.Random(1)
    with open(os.path.join(a.model, "config.json")) as f:
        cfg = json.load(f)
    vocab = cfg.get("vocab_size") or cfg.get("text_config", {}).get("vocab_size", 256000)
    ids = [[2] + [rng.randrange(3, min(vocab, 30000)) for _ in range(a.ids - 1)] for _ in range(a.n)]
    lines = [",".join(map(str, x)) for x in ids]
else:
    lines = texts
with open(tfile, "w") as f:
    f.write("\n".join(lines) + "\n")
with open(one, "w") as f:
    f.write(lines[0] + "\n")
KW = dict(ids=ids) if ids else dict(texts=texts)


def cli(path):
    t = time.perf_counter()
    subprocess.run([a.cli, "extract", "--model", a.model, "--hook", a.hook, "--ids-file" if ids else "--texts", path, "--out",
                    os.path.join(tmp, "x.safetensors")], check=True, capture_output=True)
    return time.perf_counter() - t


def py():
    t = time.perf_counter()
    m = reprshift.Model(a.model)
    c = m.run_with_cache(hooks=[a.hook], progress=False, **KW)
    dt = time.perf_counter() - t
    del c
    m.close()
    return dt


model = None if a.whole_only else reprshift.Model(a.model)


def py_run():
    t = time.perf_counter()
    model.run_with_cache(hooks=[a.hook], progress=False, **KW)
    return time.perf_counter() - t


class _Timed:
    """The CDLL with rsc_run timed (the Python layer's share of run_with_cache)."""

    def __init__(self, lib):
        self._lib, self.t = lib, 0.0

    def __getattr__(self, name):
        f = getattr(self._lib, name)
        if name != "rsc_run":
            return f

        def timed(*args):
            t = time.perf_counter()
            try:
                return f(*args)
            finally:
                self.t += time.perf_counter() - t
        return timed


def py_layer():
    from reprshift import _model
    timed = _Timed(_model.lib)
    _model.lib = timed
    try:
        t = time.perf_counter()
        model.run_with_cache(hooks=[a.hook], progress=False, **KW)
        total = time.perf_counter() - t
    finally:
        _model.lib = timed._lib
    return total - timed.t, total


r = {"cli": [], "cli_one": [], "py": [], "py_run": []}
cli(tfile), py()  # warm the page cache
if not a.whole_only:
    py_run()
for _ in range(a.repeat):
    r["cli"].append(cli(tfile))
    r["py"].append(py())
    r["cli_one"].append(cli(one))
    if not a.whole_only:
        r["py_run"].append(py_run())
if a.whole_only:
    del r["py_run"]
med = {k: statistics.median(v) for k, v in r.items()}
cli_fwd = med["cli"] - med["cli_one"]
if model is None:
    model = reprshift.Model(os.path.join(ROOT, "examples", "quickstart", "models", "gemma2-tiny"))  # tokenizer only
tokens = sum(map(len, ids)) if ids else sum(len(model.tokenize(t)) for t in texts)
print("work: %d inputs, %d tokens, %s, hook %s; load average %s" % (a.n, tokens, os.path.basename(a.model), a.hook,
                                                                  " ".join("%.2f" % x for x in os.getloadavg())))
print("OPENBLAS_CORETYPE=%s OMP_WAIT_POLICY=%s" % (os.environ.get("OPENBLAS_CORETYPE"),
                                                   os.environ.get("OMP_WAIT_POLICY")))
for k in [k for k in ("cli", "py", "cli_one", "py_run") if k in r]:
    print("%-8s median %.4f s  (min %.4f, max %.4f, n=%d)" % (k, med[k], min(r[k]), max(r[k]), len(r[k])))
print("py / cli (whole work, model load included): %.3f" % (med["py"] / med["cli"]))
if not a.whole_only:
    lay = [py_layer() for _ in range(a.repeat)]
    ov = statistics.median(x for x, _ in lay)
    tot = statistics.median(y for _, y in lay)
    print("py_layer median %.5f s outside rsc_run of %.4f s per run_with_cache (%.2f%%)" % (ov, tot, 100 * ov / tot))
    print("py_run / cli_fwd (forward passes alone):    %.3f" % (med["py_run"] / cli_fwd))
