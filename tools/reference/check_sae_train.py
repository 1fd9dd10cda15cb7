#!/usr/bin/env python3
"""Check that sae-lens loads an SAE folder written by reprshift (sae_save_sae_lens, e.g. after
`reprshift sae train`) and encodes/decodes as reprshift did.

usage: /work/refenv/bin/python tools/reference/check_sae_train.py DIR [CHECK.safetensors]
CHECK holds x, acts, recon computed by reprshift (default DIR/check.safetensors)."""
import os
import sys

import torch
from safetensors.torch import load_file
import sae_lens
from sae_lens import SAE

d = sys.argv[1]
chk = load_file(sys.argv[2] if len(sys.argv) > 2 else os.path.join(d, "check.safetensors"))
sae = SAE.load_from_disk(d)
with torch.no_grad():
    acts = sae.encode(chk["x"])
    rec = sae.decode(acts)
ea = (acts - chk["acts"]).abs().max().item() / chk["acts"].abs().max().item()
er = (rec - chk["recon"]).abs().max().item() / chk["recon"].abs().max().item()
same = torch.equal(acts != 0, chk["acts"] != 0)
print(f"sae-lens {sae_lens.__version__}: loaded {type(sae).__name__} k={getattr(sae.cfg, 'k', None)} "
      f"hook={sae.cfg.metadata.hook_name}; features rel err {ea:.2e}, recon rel err {er:.2e}, same active sets {same}")
sys.exit(0 if (ea < 1e-5 and er < 1e-5 and same) else 1)
