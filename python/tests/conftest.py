"""Shared fixtures of the Python package's tests (run by scripts/test.sh through CTest's
python_pytest test, or by hand: python -m pytest python/tests from the repository root).
Fixture files are those of the C tests (tests/fixtures, examples/quickstart); goldens come
from transformers via tools/reference/ and are read with numpy, so no transformers is
needed here. RS_CLI names the reprshift binary (default build/reprshift)."""
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures", "models")
QS = os.path.join(ROOT, "examples", "quickstart", "models")
# The package of this checkout (its libreprshift.so: REPRSHIFT_LIB, else build/), unless
# RS_PYTEST_INSTALLED=1 asks to test the installed one (pip install .).
if not os.environ.get("RS_PYTEST_INSTALLED"):
    sys.path.insert(0, os.path.join(ROOT, "python"))


def fixture_model(name):
    return os.path.join(FIX, name)


@pytest.fixture(scope="session")
def cli():
    path = os.environ.get("RS_CLI") or os.path.join(ROOT, "build", "reprshift")
    if not os.path.exists(path):
        pytest.fail("the reprshift CLI is needed for the parity tests: %s not found (build it, or set RS_CLI)" % path)
    return path


def run_cli(cli, *args):
    p = subprocess.run([cli, *args], capture_output=True, text=True, cwd=ROOT)
    if p.returncode:
        raise AssertionError("reprshift %s failed (%d): %s" % (" ".join(args), p.returncode, p.stderr))
    return p


def write_png(path, rgb):
    """An 8-bit RGB PNG of a uint8 [H, W, 3] array (no filter), for image inputs."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].astype(np.uint8).tobytes() for y in range(h))

    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
