"""A small numpy reader of .safetensors files (what ``reprshift extract`` writes), so the
package needs no other dependency; ``safetensors.numpy.load_file`` reads them too."""
import json
import struct

import numpy as np

_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I8": "i1", "U8": "u1", "I16": "<i2", "I32": "<i4",
           "I64": "<i8", "BOOL": "?"}


def load_safetensors(path, with_metadata=False):
    """Every tensor of a .safetensors file as a numpy array (bf16 is widened to float32).
    with_metadata: also return the header's ``__metadata__`` dict."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError("%s: not a safetensors file (shorter than 8 bytes)" % path)
        (n,) = struct.unpack("<Q", head)
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, t in header.items():
        lo, hi = t["data_offsets"]
        shape = tuple(t["shape"])
        buf = data[lo:hi]
        if t["dtype"] == "BF16":
            u = np.frombuffer(buf, "<u2").astype(np.uint32) << 16
            out[name] = u.view(np.float32).reshape(shape)
        elif t["dtype"] in _DTYPES:
            out[name] = np.frombuffer(buf, _DTYPES[t["dtype"]]).reshape(shape).copy()
        else:
            raise ValueError("%s: tensor %s has unsupported dtype %s" % (path, name, t["dtype"]))
    return (out, meta) if with_metadata else out
