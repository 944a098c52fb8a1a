"""Adapter checkpoints: the LoRA matrices and our own heads, without SAM3's frozen weights.

A LoRA run writes ``adapter.pt`` beside every ``checkpoint.pt`` (``checkpoint_N.pt`` -> ``adapter_N.pt``):
``{"adapter": {key: tensor}, "angio": {..., "lora": {r, alpha, targets, ...}}}`` with the keys of the
trained model that hold ``lora_`` (the adapters) or start with ``view_encoder.`` / ``film.`` /
``cass_head.`` (trained from scratch). It loads onto a model built with the same ``model.lora`` block
and the base weights it was trained from (the released ``sam3.pt`` or the phase 1 checkpoint):
``load_adapter``. ``sam3_angio.model.lora.merge_lora`` then folds it in for inference.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional

import torch
import torch.nn as nn

from sam3_angio.model.checkpoint import CheckpointError, strip_prefixes
from sam3_angio.model.lora import LORA_KEY, has_lora

OWN_HEADS = ("view_encoder.", "film.", "cass_head.")


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


def load_adapter(model: nn.Module, path: str) -> Dict[str, Any]:
    """Load ``adapter.pt`` into ``model`` (built with the run's ``model.lora``, base weights already
    loaded). Every adapter tensor must find its place; returns the file's ``angio`` info."""
    if not os.path.isfile(path):
        raise CheckpointError(f"adapter file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot read adapter {path}: {type(e).__name__}: {e}") from None
    if not isinstance(obj, Mapping) or not isinstance(obj.get("adapter"), Mapping):
        raise CheckpointError(f"{path} is not an adapter file (no 'adapter' tensors): pass the adapter.pt a LoRA run wrote")
    target = model.module if hasattr(model, "module") else model
    if not has_lora(target):
        raise CheckpointError(
            f"adapter {path} needs a model with LoRA: build it with the run's model.lora block "
            f"(model.lora.enabled=true, same r and targets)")
    own = target.state_dict()
    tensors = dict(obj["adapter"])
    unknown = [k for k in tensors if k not in own]
    bad = [k for k in tensors if k in own and tuple(own[k].shape) != tuple(tensors[k].shape)]
    if unknown or bad:
        first = (unknown or bad)[0]
        raise CheckpointError(
            f"adapter {path} does not fit this model: {len(unknown)} unknown and {len(bad)} mis-shaped tensors "
            f"(first: {first}). Build the model with the model.lora block (r, targets) and task it was trained with")
    missing = [k for k in own if LORA_KEY in k and k not in tensors]
    if missing:
        raise CheckpointError(f"adapter {path} lacks {len(missing)} LoRA tensors of this model (first: {missing[0]}): "
                              f"other model.lora.targets?")
    target.load_state_dict(tensors, strict=False)
    return dict(obj.get("angio") or {})
