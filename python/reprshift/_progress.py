"""Progress bars (tqdm, when installed) and Ctrl-C for long library calls.

During a call, a progress callback is installed on the calling thread. The C library calls
it after every batch; it updates a tqdm bar and returns 1 (stop) once Ctrl-C was pressed.
On the main thread, SIGINT is caught for the duration of the call by a handler that only
records it, so the interrupt can never be lost inside a ctypes callback; the call then
returns cleanly (everything freed, nothing half-written) and KeyboardInterrupt is raised.
ctypes releases the GIL for the whole C call, so other Python threads keep running."""
import signal
import threading

from . import _lib

try:  # optional
    from tqdm.auto import tqdm as _tqdm
except Exception:  # pragma: no cover - depends on the environment
    _tqdm = None


class _Call:
    def __init__(self, show):
        self.show = bool(show) and _tqdm is not None
        self.interrupted = False
        self.bar = None
        self.cb = _lib.PROGRESS_FN(self._progress)
        self.old_handler = None

    def _on_sigint(self, signum, frame):
        self.interrupted = True

    def _progress(self, ctx, label, done, total):
        try:
            if self.show:
                if self.bar is None or done == 0:
                    if self.bar is not None:
                        self.bar.close()
                    self.bar = _tqdm(total=int(total), desc=(label or b"").decode("utf-8", "replace"), leave=False)
                if done > self.bar.n:
                    self.bar.update(int(done) - self.bar.n)  # tqdm limits the redraws
        except KeyboardInterrupt:  # an interrupt raised by a handler installed by someone else
            self.interrupted = True
        except Exception:  # a broken progress bar must not break the computation
            self.show = False
        return 1 if self.interrupted else 0

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            try:
                self.old_handler = signal.signal(signal.SIGINT, self._on_sigint)
            except (ValueError, TypeError):  # not allowed here (embedded interpreter)
                self.old_handler = None
        _lib.lib.rsc_set_progress(self.cb, None)
        return self

    def __exit__(self, et, ev, tb):
        _lib.lib.rsc_set_progress(_lib.PROGRESS_FN(), None)
        if self.old_handler is not None:
            signal.signal(signal.SIGINT, self.old_handler)
        if self.bar is not None:
            self.bar.close()
        if self.interrupted:
            raise KeyboardInterrupt
        return False


def call(show=False):
    """Context manager around one long library call (see the module docstring)."""
    return _Call(show)
