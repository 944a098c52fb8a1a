"""Adapter checkpoints: the LoRA matrices and our own heads, without SAM3's frozen weights.

A LoRA run writes ``adapter.pt`` beside every ``checkpoint.pt`` (``checkpoint_N.pt`` -> ``adapter_N.pt``):
``{"adapter": {key: tensor}, "angio": {..., "lora": {r, alpha, targets, ...}}}`` with the keys of the
trained model that hold ``lora_`` (the adapters) or start with ``view_encoder.`` / ``film.`` /
``cass_head.`` (trained from scratch). It loads onto a model built with the same ``model.lora`` block
and the base weights it was trained from (the released ``sam3.pt`` or the phase 1 checkpoint):
``load_adapter``. ``sam3_angio.model.lora.merge_lora`` then folds it in for inference.

The ``angio`` info (``adapter_info``) also holds the run's ``vessel_group`` (``data.vessel_group``, null
when it trained on every vessel), its ``lora`` options and ``base_fingerprint``: a hash of the frozen
weights it sits on, so ``load_adapter`` can tell an adapter given to another base (another ``sam3.pt``
or phase 1 checkpoint) instead of producing quietly wrong outputs.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Dict, Mapping, Optional

import torch
import torch.nn as nn

from sam3_angio.model.checkpoint import CheckpointError, load_torch_file, non_finite, strip_prefixes
from sam3_angio.model.lora import LORA_KEY, canonical_key, has_lora

OWN_HEADS = ("view_encoder.", "film.", "cass_head.")
LORA_INFO_KEYS = ("r", "alpha", "dropout", "targets", "trainable")
_SAMPLES = 4096  # values hashed per frozen tensor (evenly spaced): cheap on 840 M parameters


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


@torch.no_grad()
def base_fingerprint(model: nn.Module) -> str:
    """A short hash of the frozen weights an adapter sits on: the name (plain SAM3 key), shape and up to
    ``_SAMPLES`` evenly spaced values of every parameter that does not train (not LoRA, not our heads)."""
    h = hashlib.sha256()
    params = sorted((canonical_key(n), p) for n, p in _unwrap(model).named_parameters()
                    if not p.requires_grad and LORA_KEY not in n and not n.startswith(OWN_HEADS))
    for name, p in params:
        flat = p.detach().reshape(-1)
        k = min(flat.numel(), _SAMPLES)  # integer positions: float32 linspace overshoots past 2**24 elements
        idx = torch.arange(k, device=flat.device) * (flat.numel() - 1) // max(k - 1, 1)
        h.update(f"{name}{tuple(p.shape)}".encode())
        h.update(flat[idx].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def lora_info(model: nn.Module) -> Optional[Dict[str, Any]]:
    """The ``model.lora`` options a model was built with (``apply_lora`` records them), or None."""
    for m in _unwrap(model).modules():
        opts = getattr(m, "_angio_lora", None)
        if opts:
            return {k: opts[k] for k in LORA_INFO_KEYS if k in opts}
    return None


def adapter_info(model: nn.Module, run_info: Optional[Mapping[str, Any]] = None, **extra: Any) -> Dict[str, Any]:
    """What ``adapter.pt`` records beside its tensors: the run's info (task, model, class ids,
    vessel_group), the LoRA options and the base fingerprint."""
    return {**dict(run_info or {}), **extra, "lora": lora_info(model), "base_fingerprint": base_fingerprint(model)}


def adapter_path_for(checkpoint_path: str) -> str:
    folder, name = os.path.split(checkpoint_path)
    return os.path.join(folder, name.replace("checkpoint", "adapter", 1) if name.startswith("checkpoint")
                        else "adapter_" + name)


def adapter_tensors(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The adapter part of a (LoRA) model's state dict; empty when it has no LoRA."""
    sd = strip_prefixes(state_dict, ("module.",))
    if not any(LORA_KEY in k for k in sd):
        return {}
    return {k: v for k, v in sd.items() if LORA_KEY in k or k.startswith(OWN_HEADS)}


def save_adapter(state_dict: Mapping[str, torch.Tensor], path: str, info: Optional[Mapping[str, Any]] = None) -> bool:
    """Write the adapter of ``state_dict`` to ``path`` (atomic: temp file then rename). False when the
    model has no LoRA (nothing written)."""
    tensors = adapter_tensors(state_dict)
    if not tensors:
        return False
    tmp = f"{path}.tmp"
    torch.save({"adapter": tensors, "angio": dict(info or {})}, tmp)
    os.replace(tmp, path)
    return True


def read_adapter_info(path: str) -> Dict[str, Any]:
    """The ``angio`` info of an adapter file (task, model, vessel_group, lora, base_fingerprint, ...)."""
    return dict(_read(path).get("angio") or {})


def _read(path: str) -> Mapping[str, Any]:
    obj = load_torch_file(path, "adapter file")
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping) and "adapter" not in obj:
        raise CheckpointError(f"{path} is a full checkpoint, not an adapter file: pass the adapter.pt its LoRA run "
                              f"wrote beside it (or give the checkpoint itself as --checkpoint)")
    if not isinstance(obj, Mapping) or not isinstance(obj.get("adapter"), Mapping):
        raise CheckpointError(f"{path} is not an adapter file (no 'adapter' tensors): pass the adapter.pt a LoRA "
                              f"run wrote")
    return obj


def check_adapter_base(model: nn.Module, info: Mapping[str, Any], path: str) -> None:
    """The adapter's recorded LoRA options and base fingerprint (when it has them) must be the model's."""
    want, have = info.get("lora"), lora_info(model)
    if want and have:
        diff = [k for k in ("r", "alpha", "targets") if k in want and want[k] != have.get(k)]
        if diff:
            raise CheckpointError(
                f"adapter {path} was trained with model.lora " + ", ".join(f"{k}={want[k]}" for k in diff)
                + "; this model has " + ", ".join(f"{k}={have.get(k)}" for k in diff)
                + ": pass the LoRA settings of its run (its config_resolved.yaml, or model.lora.* overrides)")
    recorded = info.get("base_fingerprint")
    if recorded:
        found = base_fingerprint(model)
        if found != recorded:
            raise CheckpointError(
                f"adapter {path} was trained on other base weights (fingerprint {recorded}; the model's base "
                f"weights give {found}): pass as --checkpoint the base its run started from (the sam3.pt or "
                f"phase 1 checkpoint.pt named by that run's trainer.model.checkpoint_path / init)")


def load_adapter(model: nn.Module, path: str, check_base: bool = True) -> Dict[str, Any]:
    """Load ``adapter.pt`` into ``model`` (built with the run's ``model.lora``, base weights already
    loaded). Every adapter tensor must find its place; with ``check_base``, the recorded LoRA options
    and base fingerprint must match (``check_adapter_base``). Returns the file's ``angio`` info."""
    obj = _read(path)
    target = _unwrap(model)
    if not has_lora(target):
        raise CheckpointError(
            f"adapter {path} needs a model with LoRA: build it with the run's model.lora block "
            f"(model.lora.enabled=true, same r and targets)")
    info = dict(obj.get("angio") or {})
    if check_base:
        check_adapter_base(target, info, path)
    own = target.state_dict()
    tensors = dict(obj["adapter"])
    unknown = [k for k in tensors if k not in own]
    bad = [k for k in tensors if k in own and tuple(own[k].shape) != tuple(tensors[k].shape)]
    if unknown or bad:
        first = (unknown or bad)[0]
        raise CheckpointError(
            f"adapter {path} does not fit this model: {len(unknown)} unknown and {len(bad)} mis-shaped tensors "
            f"(first: {first}). Build the model with the model.lora block (r, targets) and task it was trained with")
    bad_values = non_finite(tensors)
    if bad_values:  # merged, NaN adapters make every prediction NaN: nothing found, quietly
        raise CheckpointError(f"adapter {path} holds NaN or inf values in {len(bad_values)} tensors (first: "
                              f"{bad_values[0]}): it is damaged or from a run that diverged")
    missing = [k for k in own if LORA_KEY in k and k not in tensors]
    if missing:
        raise CheckpointError(f"adapter {path} lacks {len(missing)} LoRA tensors of this model (first: {missing[0]}): "
                              f"other model.lora.targets?")
    target.load_state_dict(tensors, strict=False)
    return info
