"""LoRA on SAM3's attention projections through ``peft``, configured by ``model.lora``.

``model.lora: {enabled, r, alpha, dropout, targets, trainable}``: ``targets`` names groups of SAM3's
attention modules (``TARGET_GROUPS``), resolved to module names by pattern, so the real ``sam3`` and
``sam3_tiny`` (same classes, other depths) resolve alike. ``peft.inject_adapter_in_model`` wraps them in
place (no ``PeftModel`` around the model: parameter names, the trainer's learning-rate groups and
checkpoints keep SAM3's prefixes; a wrapped layer's weight moves to ``<name>.base_layer.weight``, which
``checkpoint.load_into`` maps to and from plain keys). Every SAM3 parameter is then frozen except the
LoRA matrices and the modules named in ``trainable``; our own heads (view encoder, FiLM, CASS head) are
outside the detector and keep whatever ``model.freeze`` says (trainable by default).

``merge_lora`` folds the adapters into the base weights for inference (plain SAM3 modules again).
"""

from __future__ import annotations

import re
import types
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn as nn

from sam3_angio.errors import ConfigError

# group -> patterns on module names inside a Sam3Image (``detector.`` stripped).
TARGET_GROUPS: Dict[str, Sequence[str]] = {
    # ViT trunk: fused qkv projection and the output projection of every block.
    "vision_trunk": (r"backbone\.vision_backbone\.trunk\.blocks\.\d+\.attn\.(qkv|proj)",),
    # Fusion encoder (image <- text): self-attention and cross-attention to the prompt.
    "fusion_encoder": (r"transformer\.encoder\.layers\.\d+\.(self_attn|cross_attn_image)",),
    "decoder_self_attention": (r"transformer\.decoder\.layers\.\d+\.self_attn",),
    # Decoder cross-attention to the image (cross_attn) and to the text (ca_text).
    "decoder_cross_attention": (r"transformer\.decoder\.layers\.\d+\.(cross_attn|ca_text)",),
    # Text encoder's attention (no text cache once it trains).
    "language_backbone": (r"backbone\.language_backbone\.encoder\.transformer\.resblocks\.\d+\.attn",),
}
DEFAULT_TARGETS = ("vision_trunk", "fusion_encoder", "decoder_self_attention", "decoder_cross_attention")
LORA_KEY = "lora_"


def lora_options(lora: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """The ``model.lora`` block checked and completed; None when LoRA is off."""
    if not lora:
        return None
    lora = dict(lora)
    known = {"enabled", "r", "alpha", "dropout", "targets", "trainable"}
    unknown = set(lora) - known
    if unknown:
        raise ConfigError(f"model.lora keys {sorted(unknown)} unknown; expected {sorted(known)}")
    if not lora.get("enabled", False):
        return None
    targets = lora.get("targets") or list(DEFAULT_TARGETS)
    if isinstance(targets, str):
        targets = [targets]
    bad = [t for t in targets if t not in TARGET_GROUPS]
    if bad:
        raise ConfigError(
            f"model.lora.targets: unknown group(s) {bad}; the groups are {', '.join(TARGET_GROUPS)}. "
            f"Fix the spelling, e.g. model.lora.targets=[vision_trunk,fusion_encoder]"
        )
    r = int(lora.get("r", 16))
    if r <= 0:
        raise ConfigError(f"model.lora.r={r}: expected a positive rank (16 is the default)")
    return {
        "r": r,
        "alpha": float(lora.get("alpha", 32)),
        "dropout": float(lora.get("dropout", 0.0)),
        "targets": list(targets),
        "trainable": list(lora.get("trainable") or []),
    }


def resolve_targets(model: nn.Module, targets: Sequence[str]) -> List[str]:
    """Module names of ``model`` (a Sam3Image) that the groups ``targets`` name. A group that matches
    nothing is an error (a model without that part, or a SAM3 version that renamed it)."""
    names = [n for n, _ in model.named_modules()]
    out: List[str] = []
    for group in targets:
        if group not in TARGET_GROUPS:
            raise ConfigError(f"model.lora.targets: unknown group {group!r}; the groups are {', '.join(TARGET_GROUPS)}")
        pats = [re.compile(p + r"$") for p in TARGET_GROUPS[group]]
        hit = [n for n in names if any(p.fullmatch(n) for p in pats)]
        if not hit:
            raise ConfigError(f"model.lora.targets: group {group!r} matches no module of this model")
        out.extend(h for h in hit if h not in out)
    return out


def apply_lora(model: nn.Module, lora: Optional[Mapping[str, Any]]) -> nn.Module:
    """Inject LoRA into ``model`` (a Sam3Image) in place as ``lora`` says, freeze the rest of it except
    ``trainable`` prefixes. No-op when LoRA is off."""
    opts = lora_options(lora)
    if opts is None:
        return model
    from peft import LoraConfig, inject_adapter_in_model

    names = resolve_targets(model, opts["targets"])
    # nn.MultiheadAttention never calls its projections as modules (F.multi_head_attention_forward
    # reads the weights): LoRA goes on its fused q/k/v weight as a parameter (peft's ParamWrapper, a
    # parametrisation for the forward). peft's module-level attention LoRA swaps the base weights for
    # new Parameter objects on every forward (an optimizer or DDP holding the old ones breaks) and
    # round-trips them through W + d - d; it is not used.
    mha = [n for n in names if isinstance(model.get_submodule(n), nn.MultiheadAttention)]
    linear = [n for n in names if n not in mha]
    config = LoraConfig(r=opts["r"], lora_alpha=opts["alpha"], lora_dropout=opts["dropout"],
                        target_modules=linear or None, target_parameters=[f"{n}.in_proj_weight" for n in mha] or None,
                        bias="none")
    inject_adapter_in_model(config, model)
    for n in mha:  # SAM3 calls its attentions with query=... as a keyword; peft's wrapper wants it first
        wrapped = model.get_submodule(n)
        wrapped.forward = types.MethodType(_forward_query_keyword, wrapped)
    keep = tuple(opts["trainable"])
    for n, p in model.named_parameters():
        p.requires_grad_(LORA_KEY in n or (bool(keep) and n.startswith(keep)))
    model._angio_lora = {**opts, "modules": names}
    return model


def has_lora(model: nn.Module) -> bool:
    return any(LORA_KEY in n for n, _ in model.named_parameters())


def lora_state_dict(model: nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if LORA_KEY in k}


def canonical_key(key: str) -> str:
    """A state-dict key with peft's ``.base_layer`` wrappers removed (the plain SAM3 key)."""
    return key.replace(".base_layer.", ".")


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA adapter into its base weights and put the plain modules back (inference):
    same outputs, SAM3's own module types and state-dict keys, no LoRA cost per forward."""
    from peft.tuners.lora import LoraLayer

    while True:
        wrapped = [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer)]
        if not wrapped:
            break
        name, module = min(wrapped, key=lambda nm: nm[0].count("."))
        base = module.get_base_layer()
        weight = getattr(base, getattr(module, "parameter_name", "weight"))
        for adapter in module.active_adapters:
            if adapter in module.lora_A:
                weight.data += module.get_delta_weight(adapter).to(weight.dtype)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, base)
    for m in model.modules():
        if hasattr(m, "_angio_lora"):
            del m._angio_lora
    return model



def _forward_query_keyword(self, *args, **kwargs):
    """peft's ParamWrapper.forward(x, ...) called as SAM3 calls attention: ``attn(query=q, key=k, ...)``."""
    if not args and "query" in kwargs:
        args = (kwargs.pop("query"),)
    return type(self).forward(self, *args, **kwargs)
