#!/usr/bin/env python3
"""Build tests/fixtures/hf_cache: a Hugging Face hub cache written by huggingface_hub itself.

No network: a minimal Hub API mock (http.server on 127.0.0.1) serves tiny checkpoints from
tests/fixtures, and huggingface_hub's own `snapshot_download` / `hf_hub_download` (with
`endpoint=` pointing at the mock and `cache_dir=` at the output) download them, so the folder
layout, refs/, snapshots/ and the relative symlinks into blobs/ are exactly what the library
writes. Repos:

  tiny-org/gemma2-tiny   main -> commit A = tests/fixtures/models/gemma2-tiny-bf16 (sharded:
                         index.json + 7 shards), branch "f16" -> commit B =
                         tests/fixtures/models/gemma2-tiny-f16 (single file)
  google/gemma-scope-2b-pt-res   main -> commit C with two files,
                         layer_3/width_16k/average_l0_59/params.npz (the tiny Gemma Scope npz of
                         tests/fixtures/sae; the path of sae-lens's canonical layer_3/width_16k id)
                         and layer_2/width_16k/average_l0_141/params.npz (the quickstart bundle's
                         Gemma Scope-format SAE; canonical layer_2/width_16k)
  tiny-org/quickstart-gemma2, tiny-org/quickstart-paligemma   the quickstart demo models
                         (examples/quickstart/models), for a whole `reprshift run` by Hub names

golden.safetensors files are not served. Commit hashes are fixed (sha1 of a label), blob
names are what the Hub sends as ETag (git blob sha1 for small files, sha256 for LFS
files), so reruns give the same tree.

    /work/refenv/bin/python tools/reference/gen_hf_cache.py --out tests/fixtures/hf_cache
"""
import argparse
import hashlib
import http.server
import json
import os
import shutil
import threading
import urllib.parse

import huggingface_hub
from huggingface_hub import hf_hub_download, snapshot_download

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def commit(label):
    return hashlib.sha1(label.encode()).hexdigest()


def folder_files(d, skip=("golden.safetensors",)):
    return {n: open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d)) if n not in skip}


# repo id -> {revision name or commit: (commit, {path: bytes})}
REPOS = {}


def add_repo(repo_id, refs, files_by_commit):
    REPOS[repo_id] = {"refs": refs, "commits": files_by_commit}


def is_lfs(path):
    return path.endswith((".safetensors", ".npz"))


def etag(path, data):
    if is_lfs(path):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Hub(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _resolve(self, repo_id, rev):
        r = REPOS.get(repo_id)
        if r is None:
            return None, None
        c = r["refs"].get(rev, rev)
        return c, r["commits"].get(c)

    def _json(self, obj, code=200):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _file(self, head):
        # /{org}/{name}/resolve/{rev}/{path}
        parts = urllib.parse.unquote(urllib.parse.urlparse(self.path).path).lstrip("/").split("/")
        repo_id, rev, path = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        c, files = self._resolve(repo_id, rev)
        if not files or path not in files:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.end_headers()
            return
        data = files[path]
        self.send_response(200)
        self.send_header("X-Repo-Commit", c)
        self.send_header("ETag", '"%s"' % etag(path, data))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def do_HEAD(self):
        self._file(True)

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        p = urllib.parse.unquote(u.path).lstrip("/").split("/")
        if p[:2] == ["api", "models"]:
            repo_id = "/".join(p[2:4])
            rev = p[5] if len(p) > 5 else "main"
            c, files = self._resolve(repo_id, rev)
            if files is None:
                return self._json({"error": "not found"}, 404)
            if len(p) > 4 and p[4] == "revision":
                return self._json({"id": repo_id, "modelId": repo_id, "sha": c,
                                   "siblings": [{"rfilename": f} for f in files]})
            if len(p) > 4 and p[4] == "tree":
                out = []
                for f, data in files.items():
                    e = {"type": "file", "path": f, "size": len(data), "oid": hashlib.sha1(
                        b"blob %d\0" % len(data) + data).hexdigest()}
                    if is_lfs(f):
                        e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                    "pointerSize": 134}
                    out.append(e)
                return self._json(out)
            return self._json({"error": "?"}, 404)
        self._file(False)


# Environment cases for the cache-folder rule: what huggingface_hub.constants.HF_HUB_CACHE
# evaluates to, each in a fresh interpreter with only HOME, PATH and the case's variables set.
ENV_CASES = [
    {},
    {"XDG_CACHE_HOME": "/xdg"},
    {"XDG_CACHE_HOME": "~/xdg"},
    {"XDG_CACHE_HOME": "/xdg", "HF_HOME": "/hfhome"},
    {"HF_HOME": "/hfhome/"},
    {"HF_HOME": "~/hfh"},
    {"HF_HOME": "$FOO/x", "FOO": "/foo"},
    {"HF_HOME": "${FOO}/x/$NOT_SET_ANYWHERE", "FOO": "/foo"},
    {"HF_HOME": ""},
    {"HF_HOME": "/hfhome", "HUGGINGFACE_HUB_CACHE": "/legacy"},
    {"HUGGINGFACE_HUB_CACHE": "~/legacy"},
    {"HF_HUB_CACHE": "/new", "HUGGINGFACE_HUB_CACHE": "/legacy", "HF_HOME": "/hfhome"},
    {"HF_HUB_CACHE": "~/c"},
    {"HF_HUB_CACHE": "${FOO}c/$FOO", "FOO": "/foo"},
    {"HF_HUB_CACHE": "~"},
    {"HF_HUB_CACHE": "/a/$$FOO/${FOO", "FOO": "/foo"},
    {"HF_HUB_CACHE": "/a/${}x/$", "FOO": "/foo"},
    {"HF_HUB_CACHE": "/a/$FOO_BAR/$FOO", "FOO": "/foo"},
]


def env_cases():
    import subprocess
    import sys
    out = []
    for case in ENV_CASES:
        env = {"HOME": "/home/tester", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        env.update(case)
        r = subprocess.run([sys.executable, "-c", "import huggingface_hub.constants as c; print(c.HF_HUB_CACHE)"],
                           env=env, capture_output=True, text=True, check=True)
        out.append({"env": case, "HF_HUB_CACHE": r.stdout.rstrip("\n")})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    if os.path.exists(out):
        shutil.rmtree(out)
    models = os.path.join(ROOT, "tests", "fixtures", "models")
    ca, cb, cc = commit("gemma2-tiny main"), commit("gemma2-tiny f16"), commit("gemma-scope main")
    add_repo("tiny-org/gemma2-tiny", {"main": ca, "f16": cb},
             {ca: folder_files(os.path.join(models, "gemma2-tiny-bf16")),
              cb: folder_files(os.path.join(models, "gemma2-tiny-f16"))})
    npz = open(os.path.join(ROOT, "tests", "fixtures", "sae", "gemma-scope-2b-pt-res", "layer_3", "width_128",
                            "average_l0_5", "params.npz"), "rb").read()
    qs = os.path.join(ROOT, "examples", "quickstart", "models")
    npz_qs = open(os.path.join(qs, "sae", "gemma-scope-format", "layer_2", "width_256", "average_l0_19", "params.npz"),
                  "rb").read()
    add_repo("google/gemma-scope-2b-pt-res", {"main": cc},
             {cc: {"layer_3/width_16k/average_l0_59/params.npz": npz,
                   "layer_2/width_16k/average_l0_141/params.npz": npz_qs}})
    cq, cp = commit("quickstart gemma2 main"), commit("quickstart paligemma main")
    add_repo("tiny-org/quickstart-gemma2", {"main": cq}, {cq: folder_files(os.path.join(qs, "gemma2-tiny"))})
    add_repo("tiny-org/quickstart-paligemma", {"main": cp}, {cp: folder_files(os.path.join(qs, "paligemma-tiny"))})

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    ep = "http://127.0.0.1:%d" % srv.server_address[1]
    try:
        p1 = snapshot_download("tiny-org/gemma2-tiny", cache_dir=out, endpoint=ep)
        p2 = snapshot_download("tiny-org/gemma2-tiny", revision="f16", cache_dir=out, endpoint=ep)
        p3 = hf_hub_download("google/gemma-scope-2b-pt-res", "layer_3/width_16k/average_l0_59/params.npz",
                             cache_dir=out, endpoint=ep)
        hf_hub_download("google/gemma-scope-2b-pt-res", "layer_2/width_16k/average_l0_141/params.npz",
                        cache_dir=out, endpoint=ep)
        snapshot_download("tiny-org/quickstart-gemma2", cache_dir=out, endpoint=ep)
        snapshot_download("tiny-org/quickstart-paligemma", cache_dir=out, endpoint=ep)
    finally:
        srv.shutdown()
    # the library's own offline look-up must find the same folders
    assert snapshot_download("tiny-org/gemma2-tiny", cache_dir=out, local_files_only=True) == p1
    assert snapshot_download("tiny-org/gemma2-tiny", revision="f16", cache_dir=out, local_files_only=True) == p2
    assert snapshot_download("tiny-org/gemma2-tiny", revision=cb, cache_dir=out, local_files_only=True) == p2
    # drop the library's lock files (empty, machine-specific) so the fixture is only the cache
    shutil.rmtree(os.path.join(out, ".locks"), ignore_errors=True)
    expect = {"tiny-org/gemma2-tiny@main": (ca, os.path.relpath(p1, out)),
              "tiny-org/gemma2-tiny@f16": (cb, os.path.relpath(p2, out)),
              "google/gemma-scope-2b-pt-res@main": (cc, os.path.relpath(p3, out))}
    with open(os.path.join(out, "..", "hf_cache_expected.json"), "w") as f:
        json.dump({"huggingface_hub": huggingface_hub.__version__, "home": "/home/tester", "resolved": expect,
                   "env_cases": env_cases()}, f, indent=1, sort_keys=True)
        f.write("\n")
    for k, v in expect.items():
        print(k, "->", v[1])


if __name__ == "__main__":
    main()
