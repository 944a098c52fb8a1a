"""Loading state dicts into SAM3 models with a report: the released ``sam3.pt`` (keys under
``detector.``), SAM3 trainer checkpoints (``model`` key), DDP (``module.``) prefixes, and our wrapper.

Every load says how many tensors it loaded, which were missing and which were unexpected, grouped by
module (``backbone.vision_backbone``, ``transformer.decoder``, ...). Zero loaded tensors, or a shape
mismatch, is an error: silently training from random weights is the failure this module exists to stop.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Tuple

import torch
import torch.nn as nn

from sam3_angio.errors import UserError

log = logging.getLogger(__name__)


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be used for the model at hand."""


@dataclass
class LoadReport:
    source: str
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, tuple, tuple]] = field(default_factory=list)

    @staticmethod
    def group(key: str, depth: int = 2) -> str:
        return ".".join(key.split(".")[:depth])

    def by_group(self, keys: Iterable[str], depth: int = 2) -> Dict[str, int]:
        return dict(sorted(Counter(self.group(k, depth) for k in keys).items()))

    def summary(self) -> str:
        lines = [
            f"checkpoint {self.source}: loaded {len(self.loaded)}, missing {len(self.missing)}, "
            f"unexpected {len(self.unexpected)}, shape mismatches {len(self.mismatched)}"
        ]
        # What loaded, by SAM3 part (the two backbones apart; a line a person reads); what did not, one
        # level deeper.
        for title, keys in (("loaded", self.loaded), ("missing", self.missing), ("unexpected", self.unexpected)):
            if keys:
                if title == "loaded":
                    counts = dict(sorted(Counter(self.group(k, 2 if k.startswith("backbone.") else 1)
                                                 for k in keys).items()))
                else:
                    counts = self.by_group(keys)
                lines.append(f"  {title} by module: {', '.join(f'{g}: {n}' for g, n in counts.items())}")
        for k, want, got in self.mismatched[:10]:
            lines.append(f"  shape mismatch {k}: model {want}, checkpoint {got}")
        return "\n".join(lines)


def read_checkpoint(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, object]]:
    """``(tensors, run info)`` from a checkpoint file: ``sam3.pt``, a SAM3 trainer ``checkpoint.pt``
    (``model`` key; our trainer adds ``angio``: task, classes, model) or a bare state dict. Loaded with
    ``weights_only=True``: a checkpoint is untrusted input."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated files, non-tensor payloads
        raise CheckpointError(
            f"cannot read checkpoint {path}: {type(e).__name__}: {e}. It must be a torch.save'd "
            f"state dict (or a SAM3 trainer checkpoint) loadable with weights_only=True"
        ) from None
    meta = dict(obj.get("angio") or {}) if isinstance(obj, Mapping) and isinstance(obj.get("angio"), Mapping) else {}
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"checkpoint {path} holds no tensors (found {type(obj).__name__})")
    return OrderedDict((k, v) for k, v in obj.items() if isinstance(v, torch.Tensor)), meta


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (see ``read_checkpoint``)."""
    return read_checkpoint(path)[0]


def strip_prefixes(sd: Mapping[str, torch.Tensor], prefixes: Iterable[str]) -> Dict[str, torch.Tensor]:
    """Remove any of ``prefixes`` from the start of keys, repeatedly (``module.detector.x`` -> ``x``)."""
    out = OrderedDict()
    prefixes = tuple(prefixes)
    for k, v in sd.items():
        changed = True
        while changed:
            changed = False
            for p in prefixes:
                if k.startswith(p):
                    k = k[len(p):]
                    changed = True
        out[k] = v
    return out


def sam3_image_keys(sd: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Keys of a SAM3 image model, whatever wrapped them. The released sam3.pt holds the image model
    under ``detector.`` and the video tracker under ``tracker.`` (dropped here: not the image model)."""
    sd = strip_prefixes(sd, ("module.",))
    if any(k.startswith("detector.") for k in sd):
        sd = OrderedDict((k[len("detector."):], v) for k, v in sd.items() if k.startswith("detector."))
    return sd


def _no_match(source: str, sd: Mapping[str, Any], model: str) -> str:
    return f"checkpoint {source} matched no tensor of the model (first checkpoint keys: {list(sd)[:3]}; {model})"


def require_parts(sd: Mapping[str, Any], parts: Sequence[str], source: str) -> None:
    """``sd`` must hold a tensor under one of the model's top-level ``parts``: :func:`load_into`'s 'matched
    no tensor' refusal, from the keys alone - before a large model is built only to find that out."""
    if sd and not any(k.split(".", 1)[0] in parts for k in sd):
        raise CheckpointError(_no_match(source, sd, f"the model keeps its tensors under "
                                                    f"{', '.join(p + '.' for p in parts)}"))


def load_into(
    module: nn.Module,
    sd: Mapping[str, torch.Tensor],
    source: str,
    *,
    ignore_missing: Iterable[str] = (),
    strict_shapes_under: Iterable[str] = ("backbone.",),
) -> LoadReport:
    """Copy matching tensors of ``sd`` into ``module`` and report.

    Shape mismatches under ``strict_shapes_under`` (the backbone by default) and a load that matches
    nothing raise CheckpointError; other mismatches are reported and skipped.
    """
    own = module.state_dict()
    # LoRA (peft) moves a wrapped layer's weights under ``.base_layer``: plain and wrapped keys match.
    by_plain = {k.replace(".base_layer.", "."): k for k in own}
    sd = OrderedDict((k if k in own else by_plain.get(k.replace(".base_layer.", "."), k), v) for k, v in sd.items())
    report = LoadReport(source=source)
    to_load = OrderedDict()
    for k, v in sd.items():
        if k not in own:
            report.unexpected.append(k)
        elif tuple(own[k].shape) != tuple(v.shape):
            report.mismatched.append((k, tuple(own[k].shape), tuple(v.shape)))
        else:
            to_load[k] = v
    ignore = tuple(ignore_missing)
    report.missing = [k for k in own if k not in to_load and not k.startswith(ignore)]
    report.loaded = list(to_load)
    strict = tuple(strict_shapes_under)
    bad = [m for m in report.mismatched if m[0].startswith(strict)]
    if bad:
        raise CheckpointError(
            report.summary()
            + f"\ncheckpoint {source} does not fit this model: {len(bad)} backbone tensors have other "
            f"shapes (first: {bad[0][0]} model {bad[0][1]} vs checkpoint {bad[0][2]}). Is it from a "
            f"different model size (sam3 vs sam3_tiny, or another image size)?"
        )
    if not to_load:
        raise CheckpointError(report.summary() + "\n" + _no_match(source, sd, f"first model keys: {list(own)[:3]}"))
    module.load_state_dict(to_load, strict=False)
    return report
