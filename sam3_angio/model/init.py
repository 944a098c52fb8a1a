"""Checkpoint initialisers (SAM3 trainer ``checkpoint.model_weight_initializer`` targets).

Phase 2 starts from what phase 1 learnt: ``load_phase1`` maps a plain ``Sam3Image`` state dict (a
phase 1 ``checkpoint.pt``, DDP ``module.`` prefixes stripped; or the released ``sam3.pt``) into the
wrapper's ``detector.``, and reports loaded / missing / unexpected tensors by module group. The SAM3
trainer calls an initialiser only when its ``save_dir`` holds no ``checkpoint.pt``: a resumed phase 2
run continues from its own checkpoint, never from phase 1 again.
"""

from __future__ import annotations

import logging
import os
from typing import Optional

import torch.nn as nn

from sam3_angio.errors import ConfigError
from sam3_angio.model.checkpoint import load_into, read_state_dict, sam3_image_keys
from sam3_angio.registry import INITIALIZERS

log = logging.getLogger(__name__)

# Our own heads: absent from a phase 1 checkpoint by design.
WRAPPER_OWN = ("view_encoder.", "film.", "cass_head.", "regression_head.")


@INITIALIZERS.register()
def phase1_choice(path: Optional[str], prefer_best: bool = True) -> tuple:
    """``(path, which)``: phase 1's ``checkpoint_best.pt`` beside the given ``checkpoint.pt`` when it
    exists and ``prefer_best`` (phase 1's best validation), else the given file (its last epoch)."""
    if path and prefer_best and os.path.basename(path) == "checkpoint.pt":
        best = os.path.join(os.path.dirname(path), "checkpoint_best.pt")
        if os.path.isfile(best):
            return best, "best (checkpoint_best.pt)"
    return path, "last (checkpoint.pt)" if path and os.path.basename(path) == "checkpoint.pt" else "given"


def load_phase1(model: nn.Module, path: Optional[str], require: bool = True, prefer_best: bool = True) -> nn.Module:
    """Load the phase 1 checkpoint at ``path`` into ``model`` (a ViewConditionedSam3 or a plain
    Sam3Image); with ``prefer_best`` (``init.phase1_best``) phase 1's ``checkpoint_best.pt`` beside it wins,
    and the run says which it used. Missing file: an error when ``require``, else a warning saying what
    the run starts from. Zero matched tensors or a backbone shape mismatch: an error."""
    if path and os.path.isfile(path):
        path, which = phase1_choice(path, prefer_best)
        msg = f"phase 2 starts from phase 1's {which} weights: {path}"
        print(msg)
        log.info(msg)
    if not path or not os.path.isfile(path):
        if require:
            raise ConfigError(
                f"phase 1 checkpoint not found: {path}. Train phase 1 first (python tools/train.py -c "
                f"configs/angiography/vessel_segmentation.yaml), point paths.phase1_checkpoint at its "
                f"checkpoint.pt, or pass init.require_phase1=false to start phase 2 without it"
            )
        start = "the SAM3 checkpoint (paths.sam3_checkpoint)" if _has_loaded_sam3(model) else "the model's initial weights"
        msg = f"no phase 1 checkpoint at {path}: phase 2 starts from {start} (init.require_phase1=false)"
        print(f"WARNING: {msg}")  # once, on stdout beside the banner; also in the run's log.txt
        log.info(msg)
        return model
    sd = sam3_image_keys(read_state_dict(path, "phase 1 checkpoint", finite=True))
    wrapped = hasattr(model, "detector")
    target = model.detector if wrapped else model
    report = load_into(target, sd, path)
    # A phase 1 run without LoRA has no adapter tensors: a LoRA phase 2 starts its adapters new (B = 0),
    # as designed - not "missing" weights.
    new_lora = [k for k in report.missing if "lora_" in k] if not any("lora_" in k for k in sd) else []
    report.missing = [k for k in report.missing if k not in set(new_lora)]
    summary = report.summary()
    if new_lora:
        summary += f"\n  new LoRA adapter tensors (model.lora, not in the phase 1 checkpoint, trained from their " \
                   f"start): {len(new_lora)}"
    if wrapped:
        own = [k for k in model.state_dict() if k.startswith(WRAPPER_OWN)]
        summary += f"\n  new in phase 2 (not in the phase 1 checkpoint, trained from scratch): {len(own)} tensors " \
                   f"({', '.join(sorted({k.split('.')[0] for k in own}))})"
    log.info(summary)
    print(summary)
    return model


def _has_loaded_sam3(model: nn.Module) -> bool:
    return getattr(getattr(model, "detector", model), "_sam3_checkpoint_loaded", False)
