"""Loading state dicts into SAM3 models with a report: the released ``sam3.pt`` (keys under
``detector.``), SAM3 trainer checkpoints (``model`` key), DDP (``module.``) prefixes, and our wrapper.

Every load says how many tensors it loaded, which were missing and which were unexpected, grouped by
module (``backbone.vision_backbone``, ``transformer.decoder``, ...). Zero loaded tensors, or a shape
mismatch, is an error: silently training from random weights is the failure this module exists to stop.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
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


_KNOWN_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
                (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"%PDF", "a PDF"),
                (b"\x93NUMPY", "a NumPy .npy array"), (b"\x1f\x8b", "a gzip archive"))
_ZIP, _PICKLE = b"PK\x03\x04", b"\x80"


def _not_torch(head: bytes) -> str:
    """What a file that is not a torch.save file looks like, from its first bytes."""
    for magic, what in _KNOWN_MAGIC:
        if head.startswith(magic):
            return what
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "a DICOM file"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "not a torch.save file"
    return "a text file" + (" (YAML/JSON?)" if text.lstrip()[:1] in ("{", "[") or ":" in text[:200] else "")


def _unusable(what: str, path: str, reason: str, message: str = "") -> "CheckpointError":
    """``CheckpointError('<what> <path> <reason>')``; ``.reason`` keeps the part after the path."""
    err = CheckpointError(message or f"{what} {path} {reason}")
    err.reason = reason
    return err


def load_torch_file(path: str, what: str = "checkpoint", mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors a person can act on: a folder, an
    empty, truncated or non-torch file (an image, a text file), or a pickle holding Python objects other
    than tensors (refused: a checkpoint is untrusted input, unpickling arbitrary objects can run code).
    ``mmap``: memory-mapped (reading a large checkpoint's keys costs little); a legacy (non-zip) file is
    read whole."""
    if os.path.isdir(path):
        inside = [n for n in ("checkpoint.pt", "checkpoints/checkpoint.pt", "adapter.pt", "checkpoints/adapter.pt")
                  if os.path.isfile(os.path.join(path, n))]
        hint = f": pass {os.path.join(path, inside[0])}" if inside else ": pass the .pt file"
        raise _unusable(what, path, f"is a folder, not a file{hint}")
    if not os.path.isfile(path):
        raise _unusable(what, path, "does not exist", f"{what} not found: {path}")
    try:
        with open(path, "rb") as f:
            head = f.read(160)
        size = os.path.getsize(path)
    except OSError as e:
        raise _unusable(what, path, f"cannot be read ({e.strerror or e})") from None
    if size == 0:
        raise _unusable(what, path, "is empty (0 bytes): an interrupted copy or save? Copy it again")
    if not head.startswith((_ZIP, _PICKLE)):
        raise _unusable(what, path, f"is not a torch checkpoint: it is {_not_torch(head)}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and head.startswith(_ZIP))
    except Exception as e:  # pickle errors, truncated files, non-tensor payloads
        raise _unusable(what, path, _load_failure(e)) from None


def _load_failure(e: Exception) -> str:
    text = str(e)
    glob = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"global '?([\w.]+)", text)
    if isinstance(e, pickle.UnpicklingError) or "Weights only load failed" in text:
        found = f" ({glob.group(1)})" if glob else ""
        return (f"holds Python objects other than tensors{found} and is refused: checkpoints are read with "
                f"torch.load(weights_only=True), since unpickling arbitrary objects can run code. Re-save it "
                f"as a dict of tensors (torch.save(model.state_dict(), path)) where you trust its source")
    if "central directory" in text or "zip archive" in text or isinstance(e, (EOFError, RuntimeError)):
        first = (text.splitlines() or [""])[0].split(". This is an internal")[0][:120]
        return f"is truncated or damaged ({type(e).__name__}: {first}): copy or save it again"
    return f"cannot be read ({type(e).__name__}: {(text.splitlines() or [''])[0][:160]})"


def read_checkpoint(path: str, what: str = "checkpoint", mmap: bool = False, finite: bool = False
                    ) -> Tuple[Dict[str, torch.Tensor], Dict[str, object]]:
    """``(tensors, run info)`` from a checkpoint file: ``sam3.pt``, a SAM3 trainer ``checkpoint.pt``
    (``model`` key; our trainer adds ``angio``: task, classes, model) or a bare state dict. Loaded with
    ``weights_only=True``: a checkpoint is untrusted input. ``mmap``: see :func:`load_torch_file`.
    ``finite``: a NaN or inf in any floating tensor is an error now (:func:`require_finite`; one pass
    over the weights), not after a model is built for them."""
    obj = load_torch_file(path, what, mmap=mmap)
    meta = dict(obj.get("angio") or {}) if isinstance(obj, Mapping) and isinstance(obj.get("angio"), Mapping) else {}
    if isinstance(obj, Mapping) and isinstance(obj.get("adapter"), Mapping) and "model" not in obj:
        raise CheckpointError(
            f"{path} is an adapter file (LoRA matrices and heads only), not a full checkpoint: pass the "
            f"checkpoint.pt of its run (to predict: or the base as --checkpoint and its folder with --adapters)")
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"checkpoint {path} holds no tensors (found {type(obj).__name__})")
    sd = OrderedDict((k, v) for k, v in obj.items() if isinstance(v, torch.Tensor))
    if finite:
        require_finite(sd, path, what)
    return sd, meta


def non_finite(sd: Mapping[str, torch.Tensor]) -> List[str]:
    """Keys of the floating-point tensors of ``sd`` holding NaN or inf."""
    return [k for k, v in sd.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
            and not bool(torch.isfinite(v).all())]


def require_finite(sd: Mapping[str, torch.Tensor], source: str, what: str = "checkpoint") -> None:
    """CheckpointError naming ``source`` and its first tensor holding NaN or inf: such weights train as NaN
    losses (the matcher fails) and predict nothing, quietly."""
    bad = non_finite(sd)
    if bad:
        raise CheckpointError(
            f"{what} {source} holds NaN or inf values in {len(bad)} of its {len(sd)} tensors (first: {bad[0]}): "
            f"it is damaged or from a run that diverged; use an earlier checkpoint")


def read_state_dict(path: str, what: str = "checkpoint", finite: bool = False) -> Dict[str, torch.Tensor]:
    """The tensors of a checkpoint file (see ``read_checkpoint``)."""
    return read_checkpoint(path, what, finite=finite)[0]


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
    lora_lost = [k for k in report.unexpected + [m[0] for m in report.mismatched] if "lora_" in k]
    if bad or not to_load or lora_lost:  # one line for the user (the CLI error contract); the report to the log
        log.info(report.summary())
    if lora_lost:  # the base weights alone would load: the adapters' training dropped without a word
        have = any("lora_" in k for k in own)
        raise CheckpointError(
            f"checkpoint {source} holds LoRA adapters, {len(lora_lost)} of whose tensors "
            f"{'do not fit' if have else 'have no place in'} this model (first: {lora_lost[0]}): loading it would "
            f"drop what they learnt. Build the model with the model.lora block of its run (its config_resolved.yaml"
            f", or model.lora.enabled=true with the same r and targets)")
    counts = (f"loaded {len(report.loaded)}, missing {len(report.missing)}, unexpected {len(report.unexpected)}, "
              f"shape mismatches {len(report.mismatched)}")
    if bad:
        raise CheckpointError(
            f"checkpoint {source} does not fit this model: {len(bad)} backbone tensors have other "
            f"shapes (first: {bad[0][0]} model {bad[0][1]} vs checkpoint {bad[0][2]}; {counts}). Is it from a "
            f"different model size (sam3 vs sam3_tiny, or another image size)?"
        )
    if not to_load:
        raise CheckpointError(_no_match(source, sd, f"first model keys: {list(own)[:3]}") + f" ({counts})")
    require_finite(to_load, source)
    module.load_state_dict(to_load, strict=False)
    return report
