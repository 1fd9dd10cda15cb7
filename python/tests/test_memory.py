"""Arrays come from C-owned buffers without a copy, live as long as any view of them does,
hand over to torch through DLPack without a copy, and repeated calls do not leak."""
import ctypes
import gc
import os

import numpy as np
import pytest

import reprshift
from reprshift import _lib
from conftest import fixture_model

HOOKS = ["blocks.0.hook_resid_post", "blocks.3.hook_mlp_out"]
IDS = [[2, 17, 99, 4, 250], [2, 7, 8]]


@pytest.fixture(scope="module")
def model():
    return reprshift.Model(fixture_model("gemma2-tiny-f32"))


def c_address(cache, i):
    rows, width = ctypes.c_int64(), ctypes.c_int()
    p = _lib.lib.rsc_result_tensor(cache._result.handle, i, ctypes.byref(rows), ctypes.byref(width))
    return ctypes.cast(p, ctypes.c_void_p).value


def test_arrays_are_views_of_the_c_buffers(model):
    c = model.run_with_cache(ids=IDS, hooks=HOOKS, progress=False)
    for i, h in enumerate(HOOKS):
        a = c[h]
        assert a.dtype == np.float32 and a.flags["C_CONTIGUOUS"] and not a.flags["OWNDATA"]
        assert a.ctypes.data == c_address(c, i)  # the very buffer the C result holds
        assert type(a.base).__name__ == "_CArray" and a.base.owner is c._result
        assert np.shares_memory(a, np.asarray(a.base))
    for arr in (c.token_ids, c.offsets):
        assert not arr.flags["OWNDATA"] and arr.base.owner is c._result
    # a write through numpy is seen by C (same memory)
    c[HOOKS[0]][0, 0] = 1234.5
    view = np.ctypeslib.as_array(ctypes.cast(c_address(c, 0), ctypes.POINTER(ctypes.c_float)), (1,))
    assert view[0] == np.float32(1234.5)


def test_views_keep_the_buffer_alive(model):
    c = model.run_with_cache(ids=IDS, hooks=HOOKS, progress=False)
    a = c[HOOKS[1]]
    want = a.copy()
    del c
    gc.collect()
    model.run_with_cache(ids=IDS * 3, hooks=HOOKS, progress=False)  # allocations that would reuse freed memory
    np.testing.assert_array_equal(a, want)


def test_torch_from_dlpack_shares_memory(model):
    torch = pytest.importorskip("torch", reason="torch is not installed: the DLPack hand-over is not tested")
    c = model.run_with_cache(ids=IDS, hooks=HOOKS, progress=False)
    a = c[HOOKS[0]]
    t = torch.from_dlpack(a)
    assert t.data_ptr() == a.ctypes.data and tuple(t.shape) == a.shape and t.dtype == torch.float32
    t[1, 2] = -7.0
    assert a[1, 2] == np.float32(-7.0)


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_rss_flat_over_1000_calls(model):
    sae = reprshift.SAE.load(os.path.join(os.path.dirname(__file__), "..", "..", "examples", "quickstart", "models",
                                          "sae", "blocks.0.hook_resid_post"))

    def once():
        c = model.run_with_cache(ids=IDS, hooks=HOOKS, progress=False)
        f = sae.encode(c[HOOKS[0]])
        sae.decode(f, c[HOOKS[0]])
        try:
            model.run_with_cache(ids=IDS, hooks=["no.such.hook"], progress=False)
        except reprshift.InvalidArgumentError:
            pass

    for _ in range(50):  # warm up: allocator pools, OpenMP/BLAS threads
        once()
    gc.collect()
    r0 = rss_bytes()
    for _ in range(1000):
        once()
    gc.collect()
    grown = rss_bytes() - r0
    print("RSS growth over 1000 calls: %.1f KiB" % (grown / 1024))
    # one call's result is ~3 KiB: a leak of it per call would add ~3 MB
    assert grown < 1 << 20, "RSS grew by %d bytes over 1000 calls" % grown
