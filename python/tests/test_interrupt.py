"""Ctrl-C during a long call stops it after the current batch and raises KeyboardInterrupt;
the model stays usable. Progress reaches a callback (tqdm when installed) from C; other
Python threads run during the call (ctypes releases the GIL)."""
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import reprshift
from reprshift import _lib, _progress
from conftest import ROOT, fixture_model

SCRIPT = textwrap.dedent(r"""
    import os, sys, threading, time, _thread
    sys.path.insert(0, os.path.join(sys.argv[1], "python")) if not os.environ.get("RS_PYTEST_INSTALLED") else None
    import reprshift
    m = reprshift.Model(sys.argv[2])
    ids = [[2] + [(7 * i + k) % 500 + 3 for k in range(60)] for i in range(20000)]
    t0 = time.perf_counter()
    fired = []
    def fire():  # when the interrupt is actually sent: the timer thread may wait for the GIL
        fired.append(time.perf_counter())
        _thread.interrupt_main()
    threading.Timer(0.3, fire).start()
    try:
        m.run_with_cache(ids=ids, hooks=["blocks.3.hook_resid_post"], pool="last", batch_tokens=64,
                         progress=False)
        print("NOT INTERRUPTED after %.2f s" % (time.perf_counter() - t0))
    except KeyboardInterrupt:
        t1 = time.perf_counter()
        print("interrupted after %.2f s, %.2f s after the interrupt was sent" % (t1 - t0, t1 - fired[0]))
    c = m.run_with_cache(ids=ids[:2], hooks=["blocks.3.hook_resid_post"], progress=False)
    print("after:", c["blocks.3.hook_resid_post"].shape)
""")


def test_ctrl_c_stops_a_long_call_cleanly():
    p = subprocess.run([sys.executable, "-c", SCRIPT, ROOT, fixture_model("gemma2-tiny-f32")], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "interrupted after" in out, out
    # The latency from the interrupt to the return, not from the start (the timer thread can fire
    # late while the main thread holds the GIL). It includes the call's set-up before its first
    # batch (the 20000 inputs copied and checked): 0.0 s in a release build, 2-4 s under ASan
    # (tests/cli_python.sh preloads it; 8 s from the start seen there on a loaded CI machine).
    bound = 30.0 if "libasan" in os.environ.get("LD_PRELOAD", "") else 5.0
    assert float(out.split(" s after the interrupt")[0].split()[-1]) < bound, out
    assert "after: (122, 64)" in out, out
    assert "Exception ignored" not in p.stderr, p.stderr


def test_progress_callback_sees_every_batch(monkeypatch):
    seen = []

    class Bar:
        def __init__(self, total, desc, leave):
            self.total, self.n = total, 0
            seen.append(("start", desc, total))

        def update(self, k):
            self.n += k
            seen.append(("at", self.n))

        def close(self):
            seen.append(("close",))

    monkeypatch.setattr(_progress, "_tqdm", Bar)
    m = reprshift.Model(fixture_model("gemma2-tiny-f32"))
    ids = [[2, 5, 6, 7]] * 10
    m.run_with_cache(ids=ids, hooks=["blocks.0.hook_resid_post"], batch_tokens=8, progress=True)
    assert seen[0] == ("start", "extract (tokens)", 40)
    ats = [s[1] for s in seen if s[0] == "at"]
    assert ats[-1] == 40 and ats == sorted(ats) and len(ats) >= 5  # one update per batch of 8 tokens
    assert seen[-1] == ("close",)


def test_cancel_from_callback_is_an_error_kind():
    m = reprshift.Model(fixture_model("gemma2-tiny-f32"))
    calls = []

    def stop_at_second(ctx, label, done, total):
        calls.append(done)
        return 1 if len(calls) >= 2 else 0

    cb = _lib.PROGRESS_FN(stop_at_second)
    _lib.lib.rsc_set_progress(cb, None)
    try:
        with pytest.raises(reprshift.CancelledError) as e:
            # the public call installs its own callback; drive the C API directly here
            import ctypes
            q = ctypes.c_void_p()
            _lib.check(_lib.lib.rsc_request_new(m._handle(), ctypes.byref(q)))
            _lib.check(_lib.lib.rsc_request_set(q, b"hooks", b"blocks.0.hook_resid_post"))
            _lib.check(_lib.lib.rsc_request_set(q, b"batch_tokens", b"4"))
            arr = (ctypes.c_int32 * 4)(2, 5, 6, 7)
            for _ in range(5):
                _lib.check(_lib.lib.rsc_request_add_ids(q, arr, 4))
            out = ctypes.c_void_p()
            try:
                _lib.check(_lib.lib.rsc_run(q, ctypes.byref(out)))
            finally:
                _lib.lib.rsc_request_free(q)
        assert e.value.kind == "ECANCELLED" and "cancelled" in e.value.message
    finally:
        _lib.lib.rsc_set_progress(_lib.PROGRESS_FN(), None)


def test_other_threads_run_during_a_call():
    m = reprshift.Model(fixture_model("gemma2-tiny-f32"))
    ids = [[2] + [(3 * i + k) % 500 + 3 for k in range(60)] for i in range(400)]
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        t0 = time.perf_counter()
        m.run_with_cache(ids=ids, hooks=["blocks.3.hook_resid_post"], progress=False)
        t1 = time.perf_counter()
    finally:
        stop.set()
        t.join()
    during = [x for x in ticks if t0 < x < t1]
    assert t1 - t0 > 0.05 and len(during) >= 5, (t1 - t0, len(during))
