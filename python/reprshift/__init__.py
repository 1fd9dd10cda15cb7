"""reprshift from Python: Gemma-2 / PaliGemma-2 activations by TransformerLens hook name,
sparse autoencoders, and the representation shift, computed by the reprshift C library
(bound with ctypes; arrays handed to numpy without copies). See docs/python.md.

    import reprshift
    model = reprshift.Model("google/gemma-2-2b")
    cache = model.run_with_cache(texts=["A cat on a red sofa"], hooks=["blocks.12.hook_resid_post"])
    cache["blocks.12.hook_resid_post"]            # float32 [tokens, 2304], C-owned, no copy
"""
from ._lib import (BelowMinimumError, CancelledError, DataError, Error, FileError, FormatError,
                   InvalidArgumentError, OutOfMemoryError, lib as _clib)
from ._model import ActivationCache, Model
from ._analysis import SAE, Run, load_run, shift
from ._safetensors import load_safetensors

__version__ = _clib.rsc_version().decode()

__all__ = ["Model", "ActivationCache", "SAE", "shift", "load_run", "Run", "load_safetensors", "Error",
           "OutOfMemoryError", "FileError", "FormatError", "InvalidArgumentError", "DataError", "BelowMinimumError",
           "CancelledError"]
