"""The tiny-run set-up shared by gen_pipeline_golden.py and gen_downstream_goldens.py: the
quickstart bundle (examples/quickstart/models) loaded with the reference stack (fp32, eager),
the first COCO-mini val2017 rows of the shared data, and forward hooks on the decoder layers
(blocks.L.hook_resid_post). Not a generator itself."""
import json
import os

import numpy as np
import PIL
import tokenizers
import torch
import transformers
from PIL import Image
from transformers import (AutoImageProcessor, AutoTokenizer, Gemma2ForCausalLM, PaliGemmaForConditionalGeneration,
                          PaliGemmaProcessor)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("RS_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
MODELS = os.path.join(ROOT, "examples", "quickstart", "models")


def versions(**more):
    """The library versions a golden file records (plus more: name -> version)."""
    v = {"torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
         "pillow": PIL.__version__, "numpy": np.__version__}
    v.update(more)
    return v


def val_rows(n):
    """The first n val2017 rows of the shared COCO-mini image_table.jsonl."""
    rows = [json.loads(l) for l in open(os.path.join(SHARED, "data", "coco", "mini", "image_table.jsonl"))]
    return [r for r in rows if r["split"] == "val2017"][:n]


def open_rgb(row):
    """Pillow open + convert("RGB") of a row's image."""
    with Image.open(os.path.join(SHARED, "data", "coco", row["file"])) as im:
        return im.convert("RGB")


def load_tiny():
    """torch seeded and single-threaded; then (tok, llm, vlm, proc, pproc): the caption
    tokenizer (gemma2-tiny/tokenizer.json, `tokenizers`), Gemma2ForCausalLM and
    PaliGemmaForConditionalGeneration in eval mode, the image processor (backend pil) and a
    PaliGemmaProcessor around it."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    tok = tokenizers.Tokenizer.from_file(os.path.join(MODELS, "gemma2-tiny", "tokenizer.json"))
    llm = Gemma2ForCausalLM.from_pretrained(os.path.join(MODELS, "gemma2-tiny"), dtype=torch.float32,
                                            attn_implementation="eager").eval()
    vlm = PaliGemmaForConditionalGeneration.from_pretrained(os.path.join(MODELS, "paligemma-tiny"),
                                                            dtype=torch.float32, attn_implementation="eager").eval()
    proc = AutoImageProcessor.from_pretrained(os.path.join(MODELS, "paligemma-tiny"), backend="pil")
    pproc = PaliGemmaProcessor(image_processor=proc, tokenizer=AutoTokenizer.from_pretrained(
        os.path.join(MODELS, "paligemma-tiny")))
    return tok, llm, vlm, proc, pproc


def decoder_layers(model):
    """(L, module) of each decoder layer (not the vision tower's)."""
    for name, mod in model.named_modules():
        parts = name.split(".")
        if len(parts) >= 2 and parts[-2] == "layers" and parts[-1].isdigit() and "vision" not in name:
            yield int(parts[-1]), mod


def layer_hooks(model, state=None):
    """Forward hooks on the decoder layers: state["out"][L] = blocks.L.hook_resid_post [T, D]
    of the last call; when state["patch"] = (L, rows, src), those rows of layer L's output are
    replaced by src. Returns state["out"]. (hidden_states[L+1] is the same except for the last
    layer, where transformers returns the final-norm output instead.)"""
    if state is None:
        state = {}
    state.setdefault("out", {})
    for L, mod in decoder_layers(model):
        def hook(m, a, o, L=L):
            h = o[0] if isinstance(o, tuple) else o
            p = state.get("patch")
            if p is not None and p[0] == L:
                h = h.clone()
                h[0, p[1]] = p[2]
            state["out"][L] = h[0].detach()
            if p is not None and p[0] == L:
                return (h,) + tuple(o[1:]) if isinstance(o, tuple) else h
            return None
        mod.register_forward_hook(hook)
    return state["out"]


def write_json(out, path):
    """The golden file: sorted keys, indent 1, a final newline."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fp:
        json.dump(out, fp, indent=1, sort_keys=True)
        fp.write("\n")
