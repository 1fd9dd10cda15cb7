"""ctypes bindings of the C ABI (include/reprshift/capi.h) and the error classes.

The shared library is looked up in this order: the REPRSHIFT_LIB environment variable (a
path to libreprshift.so), the package folder (what ``pip install .`` puts there), then the
build folder of a source checkout (``build/libreprshift.so`` two levels above this file).
"""
import ctypes
import os
import subprocess
import sys
from ctypes import POINTER, c_char_p, c_float, c_int, c_int32, c_int64, c_uint8, c_void_p

ABI_VERSION = 1


class Error(Exception):
    """A failure reported by the reprshift library: ``kind`` is the error kind's name
    ("EINVAL", ...; include/reprshift/error.h) and ``message`` the library's message, which
    names the file or argument at fault."""

    kind = "EFAIL"

    def __init__(self, message, kind=None):
        super().__init__(message)
        self.message = message
        if kind is not None:
            self.kind = kind


class OutOfMemoryError(Error, MemoryError):
    """RS_ENOMEM: an allocation failed."""
    kind = "ENOMEM"


class FileError(Error, OSError):
    """RS_EIO: a file could not be opened, read, written or mapped."""
    kind = "EIO"

    def __str__(self):  # OSError's would print "(errno) ..." forms
        return self.message


class FormatError(Error, ValueError):
    """RS_EFORMAT: a file's content is malformed or not what the loader expects."""
    kind = "EFORMAT"


class InvalidArgumentError(Error, ValueError):
    """RS_EINVAL: an argument, option or configuration value is invalid."""
    kind = "EINVAL"


class DataError(Error, ValueError):
    """RS_EDATA: the data cannot support the analysis asked."""
    kind = "EDATA"


class BelowMinimumError(DataError):
    """RS_EBELOWMIN: the data fall below a configured minimum the caller can lower."""
    kind = "EBELOWMIN"


class CancelledError(Error):
    """RS_ECANCELLED: the work was asked to stop (the progress callback returned non-zero).
    A Ctrl-C during a call is re-raised as KeyboardInterrupt, not as this."""
    kind = "ECANCELLED"


# rs_err_kind values, in enum order (include/reprshift/error.h)
_KINDS = [None, Error, OutOfMemoryError, FileError, FormatError, InvalidArgumentError, DataError,
          BelowMinimumError, CancelledError]

PROGRESS_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_char_p, c_int64, c_int64)
LOG_FN = ctypes.CFUNCTYPE(None, c_void_p, c_int, c_char_p)


def _find_library():
    env = os.environ.get("REPRSHIFT_LIB")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    cands = [os.path.join(here, "libreprshift.so"),
             os.path.join(here, "..", "..", "build", "libreprshift.so")]
    for c in cands:
        if os.path.exists(c):
            return os.path.abspath(c)
    raise ImportError("reprshift: libreprshift.so not found (looked in %s); install the package with "
                      "`pip install .` from the repository root, build it (cmake --build build), or set "
                      "REPRSHIFT_LIB" % ", ".join(os.path.abspath(c) for c in cands))


_PROBE = ("import ctypes, sys; l = ctypes.CDLL(sys.argv[1]); l.rsc_blas_preferred_kernel.restype = ctypes.c_char_p; "
          "k = l.rsc_blas_preferred_kernel(); print(k.decode() if k else '')")
_CHECK = "import ctypes, sys; l = ctypes.CDLL(sys.argv[1]); sys.exit(l.rsc_blas_check())"


def _set_environment(path):
    """What the reprshift CLI sets before it starts (src/cli/main.c), read by libgomp and
    OpenBLAS once, when they are loaded, so set here before loading the library (only where
    the user set nothing; REPRSHIFT_NO_ENV=1 turns this off):
      OMP_WAIT_POLICY=PASSIVE  idle OpenMP threads sleep instead of spinning;
      OPENBLAS_CORETYPE        the kernel the CPU supports when OpenBLAS's own detection
                               falls back to a generic one (checked in a helper process
                               against a double-precision reference before it is used).
    The numbers then equal the CLI's bit for bit."""
    if os.environ.get("REPRSHIFT_NO_ENV"):
        return
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    if os.environ.get("OPENBLAS_CORETYPE") or os.environ.get("RS_BLAS_KERNEL") == "auto":
        return
    try:
        env = dict(os.environ, REPRSHIFT_NO_ENV="1")
        k = subprocess.run([sys.executable, "-c", _PROBE, path], capture_output=True, text=True, env=env,
                           timeout=60).stdout.strip()
        if k and subprocess.run([sys.executable, "-c", _CHECK, path], env=dict(env, OPENBLAS_CORETYPE=k),
                                capture_output=True, timeout=60).returncode == 0:
            os.environ["OPENBLAS_CORETYPE"] = k
    except (OSError, subprocess.SubprocessError):
        pass  # keep OpenBLAS's own choice


def _load():
    path = _find_library()
    _set_environment(path)
    lib = ctypes.CDLL(path)
    sig = {
        "rsc_abi_version": (c_int, []),
        "rsc_version": (c_char_p, []),
        "rsc_last_error": (c_char_p, []),
        "rsc_last_error_kind": (c_int, []),
        "rsc_error_kind_name": (c_char_p, [c_int]),
        "rsc_free": (None, [c_void_p]),
        "rsc_blas_kernel": (c_char_p, []),
        "rsc_set_progress": (None, [PROGRESS_FN, c_void_p]),
        "rsc_set_log": (None, [LOG_FN, c_void_p]),
        "rsc_model_open": (c_int, [c_char_p, c_char_p, c_char_p, c_char_p, POINTER(c_void_p)]),
        "rsc_model_close": (None, [c_void_p]),
        "rsc_model_info": (c_char_p, [c_void_p]),
        "rsc_tokenize": (c_int, [c_void_p, c_char_p, c_int, POINTER(POINTER(c_int32)), POINTER(c_int64)]),
        "rsc_detokenize": (c_int, [c_void_p, POINTER(c_int32), c_int64, POINTER(c_void_p)]),
        "rsc_request_new": (c_int, [c_void_p, POINTER(c_void_p)]),
        "rsc_request_free": (None, [c_void_p]),
        "rsc_request_set": (c_int, [c_void_p, c_char_p, c_char_p]),
        "rsc_request_add_text": (c_int, [c_void_p, c_char_p]),
        "rsc_request_add_ids": (c_int, [c_void_p, POINTER(c_int32), c_int64]),
        "rsc_request_add_image": (c_int, [c_void_p, c_char_p, c_char_p, POINTER(c_int32), c_int64]),
        "rsc_run": (c_int, [c_void_p, POINTER(c_void_p)]),
        "rsc_result_n_tensors": (c_int, [c_void_p]),
        "rsc_result_name": (c_char_p, [c_void_p, c_int]),
        "rsc_result_tensor": (POINTER(c_float), [c_void_p, c_int, POINTER(c_int64), POINTER(c_int)]),
        "rsc_result_token_ids": (POINTER(c_int32), [c_void_p, POINTER(c_int64)]),
        "rsc_result_token_kinds": (POINTER(c_uint8), [c_void_p, POINTER(c_int64)]),
        "rsc_result_offsets": (POINTER(c_int64), [c_void_p, POINTER(c_int64)]),
        "rsc_result_vision_offsets": (POINTER(c_int64), [c_void_p, POINTER(c_int64)]),
        "rsc_result_pool": (c_char_p, [c_void_p]),
        "rsc_result_free": (None, [c_void_p]),
        "rsc_sae_load": (c_int, [c_char_p, c_char_p, POINTER(c_void_p)]),
        "rsc_sae_free": (None, [c_void_p]),
        "rsc_sae_info": (c_int, [c_void_p, POINTER(c_void_p)]),
        "rsc_sae_encode": (c_int, [c_void_p, c_void_p, c_int64, c_void_p]),
        "rsc_sae_decode": (c_int, [c_void_p, c_void_p, c_void_p, c_int64, c_void_p]),
        "rsc_shift": (c_int, [c_char_p, c_char_p, c_char_p, POINTER(c_void_p)]),
        "rsc_shift_results": (c_int, [c_void_p, c_void_p, c_char_p, POINTER(c_void_p)]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args
    if lib.rsc_abi_version() != ABI_VERSION:
        raise ImportError("reprshift: %s has C ABI version %d, this package expects %d (rebuild or reinstall)"
                          % (lib._name, lib.rsc_abi_version(), ABI_VERSION))
    return lib


lib = _load()


def last_error():
    """The library's last error on this thread as a reprshift.Error subclass instance."""
    kind = lib.rsc_last_error_kind()
    msg = (lib.rsc_last_error() or b"").decode("utf-8", "replace")
    cls = _KINDS[kind] if 0 < kind < len(_KINDS) else Error
    name = (lib.rsc_error_kind_name(kind) or b"EFAIL").decode()
    return cls(msg, name)


def check(rc):
    """Raise the library's last error when a call returned non-zero."""
    if rc != 0:
        raise last_error()


def enc(s):
    """str / os.PathLike / None → bytes for a char* argument."""
    if s is None:
        return None
    return os.fsencode(s) if isinstance(s, os.PathLike) else str(s).encode("utf-8")


def take_string(p):
    """A C string the caller owns (void*) → str, freeing it."""
    try:
        return ctypes.string_at(p.value).decode("utf-8") if p.value else ""
    finally:
        lib.rsc_free(p)
