"""Models and activation caches."""
import ctypes
import json
import os
from ctypes import POINTER, c_int, c_int32, c_int64, c_void_p

import numpy as np

from . import _lib, _progress
from ._lib import check, enc, lib


class _CArray:
    """A C-owned buffer seen by numpy without a copy: np.asarray(obj) makes an array whose
    .base is this object, which holds the owner (and so keeps the C buffer alive)."""

    __slots__ = ("owner", "__array_interface__")

    def __init__(self, owner, address, shape, typestr):
        self.owner = owner
        self.__array_interface__ = {"data": (address, False), "shape": tuple(int(s) for s in shape),
                                    "typestr": typestr, "version": 3}


def _wrap(owner, ptr, shape, typestr, dtype):
    """numpy view of a C buffer (an empty array when the buffer is empty or NULL)."""
    n = 1
    for s in shape:
        n *= int(s)
    if not ptr or n == 0:
        return np.zeros(shape, dtype=dtype)
    addr = ctypes.cast(ptr, c_void_p).value
    return np.asarray(_CArray(owner, addr, shape, typestr))


class _Result:
    """Owns one rsc_result; freed when the last array over it is gone."""

    def __init__(self, handle):
        self.handle = handle

    def __del__(self):
        h, self.handle = getattr(self, "handle", None), None
        if h and lib is not None:
            lib.rsc_result_free(h)


class ActivationCache(dict):
    """The activations of one :meth:`Model.run_with_cache` call: a dict from TransformerLens
    hook name to a float32 numpy array ``[rows, width]``, plus the tokens.

    Rows are tokens (``pool="none"``: all inputs back to back, input ``i`` at rows
    ``offsets[i]:offsets[i+1]``) or inputs (``"mean"``/``"last"``). PaliGemma vision hooks
    (``vision.*``, ``projector.hook_out``) have N rows per image input unpooled (rows of input
    ``i``: ``vision_offsets[i]:vision_offsets[i+1]``); pooled with ``"mean"``, each decoder hook
    ``H`` also gives ``H@image``, ``H@text`` (and ``H@suffix`` when a suffix was given).

    The arrays are views of C-owned memory (no copy); the memory lives as long as any of them.

    Attributes:
        token_ids: int32 [tokens], every token of every input (also when pooled).
        offsets: int64 [n_inputs + 1], token offsets of each input.
        token_kinds: uint8 [tokens] (PaliGemma: 0 text, 1 image, 2 bos, 3 prompt, 4 sep,
            5 suffix, 6 eos/pad; see ``TOKEN_KINDS``), or None for Gemma-2.
        vision_offsets: int64 [n_inputs + 1] (PaliGemma) or None.
        pool: "none", "mean" or "last".
    """

    TOKEN_KINDS = ("text", "image", "bos", "prompt", "sep", "suffix", "special")

    def __init__(self, result):
        super().__init__()
        self._result = result
        h = result.handle
        rows, width, n = c_int64(), c_int(), c_int64()
        for i in range(lib.rsc_result_n_tensors(h)):
            name = lib.rsc_result_name(h, i).decode()
            p = lib.rsc_result_tensor(h, i, ctypes.byref(rows), ctypes.byref(width))
            self[name] = _wrap(result, p, (rows.value, width.value), "<f4", np.float32)
        p = lib.rsc_result_token_ids(h, ctypes.byref(n))
        self.token_ids = _wrap(result, p, (n.value,), "<i4", np.int32)
        p = lib.rsc_result_offsets(h, ctypes.byref(n))
        self.offsets = _wrap(result, p, (n.value,), "<i8", np.int64)
        p = lib.rsc_result_token_kinds(h, ctypes.byref(n))
        self.token_kinds = _wrap(result, p, (n.value,), "|u1", np.uint8) if p else None
        p = lib.rsc_result_vision_offsets(h, ctypes.byref(n))
        self.vision_offsets = _wrap(result, p, (n.value,), "<i8", np.int64) if p else None
        self.pool = lib.rsc_result_pool(h).decode()

    @property
    def n_inputs(self):
        return len(self.offsets) - 1

    def input_tokens(self, i):
        """The token ids of input i."""
        return self.token_ids[self.offsets[i]:self.offsets[i + 1]]

    def __repr__(self):
        shapes = ", ".join("%r: %s" % (k, tuple(v.shape)) for k, v in self.items())
        return "ActivationCache(pool=%r, n_inputs=%d, {%s})" % (self.pool, self.n_inputs, shapes)


def _ids_array(ids):
    a = np.ascontiguousarray(np.asarray(ids, dtype=np.int64))
    if a.ndim != 1:
        raise ValueError("token ids must be a 1-D sequence of ints")
    if a.size and (a.min() < -2**31 or a.max() >= 2**31):
        raise ValueError("token id out of the int32 range")
    return np.ascontiguousarray(a.astype(np.int32))


def _iptr(a):
    return a.ctypes.data_as(POINTER(c_int32))


class Model:
    """A Gemma-2 or PaliGemma-2 checkpoint, run by the C library.

    ``Model("google/gemma-2-2b")`` finds a Hub name in the local Hugging Face cache
    (``HF_HUB_CACHE``, ``HF_HOME``, ``~/.cache/huggingface/hub``; never the network);
    ``Model("path/to/folder")`` opens a folder with config.json + safetensors.

    Args:
        name: folder or Hub name.
        revision: branch, tag or commit of a Hub name (default main).
        precision: "fp32" (default) or "bf16" (docs/precision.md).
        tokenizer: path of a tokenizer.json (default: the checkpoint's, when it has one).

    Attributes:
        info: dict with type ("gemma2" / "paligemma"), path, n_layers, d_model, vocab_size,
            bos_id / eos_id / pad_id, has_tokenizer, hooks (every valid hook name), and for
            PaliGemma image_size and n_image_tokens.
    """

    def __init__(self, name, revision=None, precision="fp32", tokenizer=None):
        self._h = None
        self.name = os.fspath(name)
        h = c_void_p()
        check(lib.rsc_model_open(enc(name), enc(revision), enc(precision), enc(tokenizer), ctypes.byref(h)))
        self._h = h
        self.info = json.loads(lib.rsc_model_info(h).decode())

    def close(self):
        """Free the weights now (otherwise when the object is collected)."""
        h, self._h = self._h, None
        if h and lib is not None:
            lib.rsc_model_close(h)

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def __repr__(self):
        return "Model(%r, type=%s, n_layers=%d, d_model=%d)" % (self.name, self.info["type"],
                                                                  self.info["n_layers"], self.info["d_model"])

    @property
    def hooks(self):
        """Every hook name the model offers (TransformerLens names)."""
        return list(self.info["hooks"])

    def _handle(self):
        if not self._h:
            raise ValueError("the model is closed")
        return self._h

    def tokenize(self, text, bos=True):
        """Token ids of text (int32 numpy array), identical to the ``tokenizers`` library;
        bos: prepend ``<bos>``."""
        ids, n = POINTER(c_int32)(), c_int64()
        check(lib.rsc_tokenize(self._handle(), enc(text), 1 if bos else 0, ctypes.byref(ids), ctypes.byref(n)))
        try:
            return np.ctypeslib.as_array(ids, (n.value,)).copy() if n.value else np.zeros(0, np.int32)
        finally:
            lib.rsc_free(ids)

    def detokenize(self, ids):
        """Text of token ids (special tokens kept)."""
        a = _ids_array(ids)
        out = c_void_p()
        check(lib.rsc_detokenize(self._handle(), _iptr(a), a.size, ctypes.byref(out)))
        return _lib.take_string(out)

    def run_with_cache(self, texts=None, images=None, prompt=None, suffix=None, hooks=None, pool="none", ids=None,
                       prompt_ids=None, suffix_ids=None, pool_special=False, bos=True, batch_tokens=2048,
                       image_processor="pil", image_threads=1, progress=None):
        """Run the model over the inputs and capture activations at ``hooks``.

        The numbers are those of ``reprshift extract`` (equal to transformers in fp32).
        Inputs are taken in the order images, texts, ids.

        Args:
            texts: a string or a list of strings (tokenized with the model's tokenizer;
                PaliGemma: text-only inputs, run causally as ``<bos>`` + text).
            images: PaliGemma: image file paths (JPEG/PNG); each input is
                ``<image>×N, <bos>, prompt, "\\n"`` (the processor's format).
            prompt: PaliGemma: the prompt after each image (default "caption en").
            suffix: PaliGemma: a caption read after each image + prompt (str for every image,
                or a list with one entry per image, None entries for none); ``<eos>`` is added.
            hooks: hook names (list or comma-separated string), e.g.
                ``["blocks.12.hook_resid_post"]``; ``model.hooks`` lists them all.
            pool: "none" (every token), "mean" (over content tokens: BOS/EOS/pad and
                whitespace-only tokens are skipped unless pool_special) or "last".
            ids: pre-tokenized inputs (a list of int sequences), for checkpoints without a
                tokenizer.
            prompt_ids: PaliGemma: the prompt as token ids (``"\\n"`` is appended).
            suffix_ids: PaliGemma: suffixes as token id lists, one per image (or None entries).
            pool_special: include special and whitespace-only tokens in mean pooling.
            bos: prepend ``<bos>`` to texts.
            batch_tokens: tokens per forward batch.
            image_processor: "pil" (default) or "torchvision" (docs/images.md).
            image_threads: threads that decode and preprocess images.
            progress: show a tqdm bar (None: when tqdm is installed).

        Returns:
            ActivationCache: hook name → float32 array (C-owned, no copy), with token_ids,
            offsets, token_kinds, vision_offsets and pool.

        Raises:
            reprshift.Error (a subclass by kind) with the library's message;
            KeyboardInterrupt on Ctrl-C (the call stops after the current batch).
        """
        if hooks is None:
            raise ValueError("run_with_cache: give hooks=[...] (TransformerLens names; model.hooks lists them)")
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(images, (str, os.PathLike)):
            images = [images]
        images = list(images or [])
        if isinstance(suffix, str) or suffix is None:
            suffixes = [suffix] * len(images)
        else:
            suffixes = list(suffix)
            if len(suffixes) != len(images):
                raise ValueError("suffix: give one per image (%d images, %d suffixes)" % (len(images), len(suffixes)))
        if suffix_ids is not None:
            suffix_ids = list(suffix_ids)
            if len(suffix_ids) != len(images):
                raise ValueError("suffix_ids: give one per image (%d images, %d given)" % (len(images), len(suffix_ids)))
        hook_list = hooks if isinstance(hooks, str) else ",".join(hooks)
        q = c_void_p()
        check(lib.rsc_request_new(self._handle(), ctypes.byref(q)))
        try:
            opts = {"hooks": hook_list, "pool": pool, "pool_special": int(bool(pool_special)), "bos": int(bool(bos)),
                    "batch_tokens": int(batch_tokens), "image_processor": image_processor,
                    "image_threads": int(image_threads)}
            if prompt is not None:
                opts["prompt"] = prompt
            if prompt_ids is not None:
                opts["prompt_ids"] = ",".join(str(int(i)) for i in prompt_ids)
            for k, v in opts.items():
                check(lib.rsc_request_set(q, enc(k), enc(v)))
            for i, path in enumerate(images):
                s_ids = None if suffix_ids is None or suffix_ids[i] is None else _ids_array(suffix_ids[i])
                if s_ids is not None and suffixes[i] is not None:
                    raise ValueError("image %d: give suffix or suffix_ids, not both" % i)
                check(lib.rsc_request_add_image(q, enc(path), enc(suffixes[i]),
                                                _iptr(s_ids) if s_ids is not None else None,
                                                0 if s_ids is None else s_ids.size))
            for t in texts or []:
                check(lib.rsc_request_add_text(q, enc(t)))
            for seq in ids or []:
                a = _ids_array(seq)
                check(lib.rsc_request_add_ids(q, _iptr(a), a.size))
            out = c_void_p()
            with _progress.call(progress is None or progress):
                check(lib.rsc_run(q, ctypes.byref(out)))
            return ActivationCache(_Result(out))
        finally:
            lib.rsc_request_free(q)
