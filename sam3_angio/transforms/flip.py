"""Flips that know what they do to the C-arm view angles: a mirrored frame is not a real view, so by
default the angles are marked unknown; the ``mirror`` rule instead negates the flipped axis' angle.

View-angle contract (data layer): ``AngioDatapoint.view`` - a ``ViewAngles`` (degrees, primary LAO+/RAO-,
secondary CRA+/CAU-) or None for unknown (``sam3_angio.view_angles``). Derivation of the rule: docs/transforms.md.
"""

from __future__ import annotations

import torch
import torchvision.transforms.functional as F

from sam3.train.data.sam3_image_dataset import Datapoint

from sam3_angio.registry import TRANSFORMS
from sam3_angio.transforms.image_data import image_hw, to_unit_tensor
from sam3_angio.transforms.photometric import _chance

VIEW_ANGLE_RULES = ("unknown", "mirror")
NAME = "RandomFlipWithViewAngles"


def flip_view_angles(datapoint: Datapoint, horizontal: bool, vertical: bool, rule: str) -> None:
    """Update ``datapoint.view`` for a flipped frame.

    ``unknown``: the view becomes None (unknown). ``mirror``: a horizontal flip negates the primary
    (LAO/RAO) angle, a vertical flip the secondary (CRA/CAU) angle: ``hflip(I(heart, p, s)) =
    I(mirrored heart, -p, s)`` exactly, but the heart is a mirror image, so this is not the RAO view of
    the same patient. A plain SAM3 Datapoint (no ``view`` field) has no angles to update.
    """
    if rule not in VIEW_ANGLE_RULES:
        raise ValueError(f"{NAME}: view_angle_rule={rule!r}; expected one of {VIEW_ANGLE_RULES}")
    if not (horizontal or vertical) or getattr(datapoint, "view", None) is None:
        return
    datapoint.view = None if rule == "unknown" else datapoint.view.mirrored(horizontal, vertical)


def _flip_boxes(boxes: torch.Tensor, horizontal: bool, vertical: bool, h: int, w: int) -> torch.Tensor:
    """Pixel-edge XYXY boxes ``(..., 4)`` mirrored in the frame (the convention of SAM3's ``hflip``)."""
    b = boxes.reshape(-1, 4).clone()
    if horizontal:
        b[:, [0, 2]] = w - b[:, [2, 0]]
    if vertical:
        b[:, [1, 3]] = h - b[:, [3, 1]]
    return b.reshape(boxes.shape)


def _flip_mask(m: torch.Tensor, horizontal: bool, vertical: bool) -> torch.Tensor:
    dims = ([-1] if horizontal else []) + ([-2] if vertical else [])
    return torch.flip(m, dims)


def apply_flip(datapoint: Datapoint, horizontal: bool, vertical: bool, view_angle_rule: str = "unknown") -> Datapoint:
    """Flip every image with all its targets and query prompts, then apply the view-angle rule."""
    if not (horizontal or vertical):
        return datapoint
    for img_idx, img in enumerate(datapoint.images):
        h, w = image_hw(img.data)
        if isinstance(img.data, torch.Tensor):
            to_unit_tensor(img.data, NAME)  # placement check only: refuses normalised frames
            img.data = _flip_mask(img.data, horizontal, vertical)
        else:
            if horizontal:
                img.data = F.hflip(img.data)
            if vertical:
                img.data = F.vflip(img.data)
        for obj in img.objects:
            if isinstance(obj.segment, dict):
                raise TypeError(
                    f"{NAME}: an object's segment is still an RLE dict. Put "
                    f"sam3.train.transforms.segmentation.DecodeRle before {NAME} in the pipeline."
                )
            if obj.segment is not None:
                obj.segment = _flip_mask(obj.segment, horizontal, vertical)
            obj.bbox = _flip_boxes(obj.bbox, horizontal, vertical, h, w)
        for q in datapoint.find_queries:
            if q.image_id != img_idx:
                continue
            if isinstance(q.semantic_target, torch.Tensor):
                q.semantic_target = _flip_mask(q.semantic_target, horizontal, vertical)
            if q.input_bbox is not None:
                q.input_bbox = _flip_boxes(q.input_bbox, horizontal, vertical, h, w)
            if q.input_points is not None:
                pts = q.input_points.clone()
                if horizontal:
                    pts[..., 0] = w - pts[..., 0]
                if vertical:
                    pts[..., 1] = h - pts[..., 1]
                q.input_points = pts
    flip_view_angles(datapoint, horizontal, vertical, view_angle_rule)
    return datapoint


@TRANSFORMS.register()
class RandomFlipWithViewAngles:
    """Random horizontal / vertical flip of image, masks, boxes and prompts, with a view-angle rule.

    Off in the view-conditioned configs. Default ``view_angle_rule="unknown"`` marks a flipped frame's
    angles unknown (``view`` None); ``"mirror"`` negates the flipped axis' angle (primary for a
    horizontal flip, secondary for a vertical one) - geometrically exact for a mirrored heart, which no
    patient has. Needs decoded masks (after ``DecodeRle``), before ``NormalizeAPI``.

    Args:
        p_horizontal: probability of a left-right flip.
        p_vertical: probability of an up-down flip (drawn independently).
        view_angle_rule: ``"unknown"`` or ``"mirror"``.
    """

    def __init__(self, p_horizontal: float = 0.5, p_vertical: float = 0.0, view_angle_rule: str = "unknown") -> None:
        for name, p in (("p_horizontal", p_horizontal), ("p_vertical", p_vertical)):
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"{NAME}: {name}={p} is not a probability in [0, 1]")
        if view_angle_rule not in VIEW_ANGLE_RULES:
            raise ValueError(f"{NAME}: view_angle_rule={view_angle_rule!r}; expected one of {VIEW_ANGLE_RULES}")
        self.p_horizontal = float(p_horizontal)
        self.p_vertical = float(p_vertical)
        self.view_angle_rule = view_angle_rule

    def __call__(self, datapoint: Datapoint, **kwargs) -> Datapoint:
        horizontal = _chance(self.p_horizontal)
        vertical = _chance(self.p_vertical)
        return apply_flip(datapoint, horizontal, vertical, self.view_angle_rule)

    def __repr__(self) -> str:
        return (
            f"{NAME}(p_horizontal={self.p_horizontal}, p_vertical={self.p_vertical}, "
            f"view_angle_rule={self.view_angle_rule!r})"
        )
