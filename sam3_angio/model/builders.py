"""Model builders named by configs: ``sam3`` (the real 840 M model) and ``sam3_tiny``, and the
``auto`` rule that picks between them."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional

import torch
import torch.nn as nn

from sam3_angio import cpu_compat
from sam3_angio.errors import ConfigError, UserError
from sam3_angio.model.checkpoint import CheckpointError, load_into, read_state_dict, require_parts, sam3_image_keys
from sam3_angio.model.lora import apply_lora
from sam3_angio.model.shared_seg_head import share_image_work
from sam3_angio.registry import MODELS

log = logging.getLogger(__name__)

MODEL_NAMES = ("auto", "sam3", "sam3_tiny")


class ModelChoiceError(UserError, ValueError):
    pass


def resolve_model_name(name: str, checkpoint_path: Optional[str], cuda: Optional[bool] = None) -> str:
    """``auto`` -> ``sam3`` when a checkpoint is given; ``sam3_tiny`` only when there is neither a CUDA
    device nor a checkpoint; on a GPU without a checkpoint, an error that says how to proceed."""
    if name not in MODEL_NAMES:
        raise ModelChoiceError(f"model.name={name!r}: expected one of {', '.join(MODEL_NAMES)}")
    if name != "auto":
        return name
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if checkpoint_path:
        return "sam3"
    if cuda:
        raise ModelChoiceError(
            "model.name=auto found a CUDA device but no SAM3 checkpoint. Put the released weights "
            "somewhere and pass paths.sam3_checkpoint=/path/to/sam3.pt (see INSTALL.md), or pass "
            "model.name=sam3_tiny to run the small random-weight model on purpose"
        )
    return "sam3_tiny"


def banner(name: str) -> str:
    if name == "sam3_tiny":
        return (
            "=" * 78 + "\n"
            "  MODEL: sam3_tiny - SAM3's classes at small sizes (~15 M parameters), started from\n"
            "  RANDOM weights, not SAM3's.\n"
            "  For tests and the CPU demo only: its numbers say the pipeline works, not that a\n"
            "  model learnt angiography. For real training pass paths.sam3_checkpoint=sam3.pt on a GPU.\n"
            + "=" * 78
        )
    return "MODEL: sam3 (840 M parameters)"


#: The top-level parts of SAM3's image model (``Sam3Image``); tests/model check them against the model.
SAM3_IMAGE_PARTS = ("backbone", "dot_prod_scoring", "geometry_encoder", "segmentation_head", "transformer")


@MODELS.register()
def build_sam3(
    checkpoint_path: Optional[str],
    bpe_path: Optional[str] = None,
    enable_segmentation: bool = True,
    allow_random_init: bool = False,
) -> nn.Module:
    """The real SAM3 image model from sam3's own builder; weights from ``checkpoint_path``
    (``sam3.pt``, keys under ``detector.``), loaded with a report."""
    from sam3.model_builder import build_sam3_image_model

    from sam3_angio.model.tiny import bpe_path as default_bpe

    cpu_compat.apply()
    if not checkpoint_path and not allow_random_init:
        raise CheckpointError(
            "model sam3 needs the SAM3 weights: pass paths.sam3_checkpoint=/path/to/sam3.pt"
        )
    sd = read_state_dict(checkpoint_path, "SAM3 checkpoint", finite=True) if checkpoint_path else None
    if sd is not None:
        require_parts(sam3_image_keys(sd), SAM3_IMAGE_PARTS, checkpoint_path)  # before 840 M parameters are built
    model = build_sam3_image_model(
        bpe_path=bpe_path or default_bpe(),
        device="cpu",  # the trainer moves it to its device
        eval_mode=False,
        checkpoint_path=None,
        load_from_HF=False,
        enable_segmentation=enable_segmentation,
    )
    if sd is not None:
        report = load_into(model, sam3_image_keys(sd), checkpoint_path)
        log.info(report.summary())
        print(report.summary())
        model._sam3_checkpoint_loaded = True
    return model


@MODELS.register()
def build_model(
    name: str = "auto",
    checkpoint_path: Optional[str] = None,
    bpe_path: Optional[str] = None,
    enable_segmentation: bool = True,
    image_size: int = 224,
    allow_random_init: bool = False,
    lora: Optional[Mapping[str, Any]] = None,
    activation_checkpointing: bool = True,
    shared_image_work: bool = False,
) -> nn.Module:
    """The SAM3 image model a config asks for (``sam3``, ``sam3_tiny`` or ``auto``).
    ``allow_random_init``: build ``sam3`` without its weights (a trained checkpoint loads next).
    ``lora``: the ``model.lora`` block (``sam3_angio.model.lora``); ``activation_checkpointing``:
    recompute the vision trunk's blocks in the backward pass (memory for time); ``shared_image_work``:
    the segmentation head's image-only work once per image, not per (image, phrase)
    (``sam3_angio.model.shared_seg_head``; same weights and keys, equal outputs)."""
    name = resolve_model_name(name, checkpoint_path)
    if name == "sam3_tiny":
        from sam3_angio.model.tiny import build_sam3_tiny

        if checkpoint_path:
            log.warning("model sam3_tiny ignores paths.sam3_checkpoint=%s", checkpoint_path)
        model = build_sam3_tiny(image_size=image_size, enable_segmentation=enable_segmentation, bpe=bpe_path)
    else:
        if image_size != 1008:
            log.warning("model sam3 was trained at 1008 px; running it at %d px", image_size)
        model = build_sam3(checkpoint_path, bpe_path=bpe_path, enable_segmentation=enable_segmentation,
                           allow_random_init=allow_random_init)
    set_activation_checkpointing(model, activation_checkpointing)
    share_image_work(model, shared_image_work)
    return apply_lora(model, lora)


def set_activation_checkpointing(model: nn.Module, enabled: bool) -> None:
    """SAM3's ViT blocks recompute their activations in the backward pass when ``use_act_checkpoint``
    is set on the trunk (sam3.model.vitdet.ViT): the switch ``model.activation_checkpointing``."""
    trunk = model.backbone.vision_backbone.trunk
    if not hasattr(trunk, "use_act_checkpoint"):
        raise ConfigError("model.activation_checkpointing: this SAM3's vision trunk has no use_act_checkpoint switch")
    trunk.use_act_checkpoint = bool(enabled)
