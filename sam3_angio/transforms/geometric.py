"""Geometric augmentation: one small rotation + scale + translation applied identically to the image,
every object mask, every box and every query prompt; boxes recomputed from the transformed masks.

The warps are ``torchvision.transforms.v2.functional.affine`` on the image tensor, on ``tv_tensors.Mask``
(nearest neighbour), ``tv_tensors.BoundingBoxes`` and ``tv_tensors.KeyPoints``, so pixels and targets
share torchvision's one convention: coordinates are continuous pixel edges (pixel ``i`` spans
``[i, i + 1)``), the affine maps ``p -> A (p - c) + c + t`` with ``c = (W/2, H/2)``, ``A = s R(angle)``
(positive angle = counter-clockwise on screen, as ``tvf.rotate``) and ``t`` in pixels. Boxes are absolute XYXY as SAM3
holds them before ``NormalizeAPI``. Objects whose mask leaves the frame are dropped and their queries
reindexed (``targets.drop_objects``).
"""

from __future__ import annotations

import logging
from typing import Dict, Optional, Sequence, Set, Tuple

import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as tvf

from sam3.train.data.sam3_image_dataset import Datapoint

from sam3_angio.registry import TRANSFORMS
from sam3_angio.transforms.image_data import image_hw, to_unit_tensor
from sam3_angio.transforms.photometric import _chance, _uniform
from sam3_angio.transforms.targets import boxes_from_masks, drop_objects, require_decoded_mask

log = logging.getLogger(__name__)

NAME = "RandomAffineWithTargets"


def affine_args(angle_deg: float, scale: float, t: Tuple[float, float]) -> Dict[str, object]:
    """Keyword arguments of ``tvf.affine`` for a rotation (degrees, counter-clockwise on screen), a zoom
    and a shift ``t`` in pixels.

    ``tvf.affine`` turns clockwise for a positive angle (``tvf.rotate`` passes ``-angle`` to it); the
    sign is flipped here so that ``angle_deg`` means what it means for ``tvf.rotate``.
    """
    return {"angle": -float(angle_deg), "translate": [float(t[0]), float(t[1])], "scale": float(scale),
            "shear": [0.0, 0.0]}


def map_boxes(boxes: torch.Tensor, hw: Tuple[int, int], args: Dict[str, object]) -> torch.Tensor:
    """``(N, 4)`` XYXY -> enclosing XYXY box of the 4 transformed corners, clipped to the frame."""
    dtype = boxes.dtype if boxes.dtype.is_floating_point else torch.float32
    bb = tv_tensors.BoundingBoxes(boxes.reshape(-1, 4).to(dtype), format="XYXY", canvas_size=tuple(hw))
    return tvf.affine(bb, **args).as_subclass(torch.Tensor)


def map_prompt_points(pts: torch.Tensor, hw: Tuple[int, int], args: Dict[str, object]) -> torch.Tensor:
    """SAM3 point prompts ``(..., >= 2)`` (x, y first, in pixel indices ``[0, W - 1]``) -> moved points.

    Pixel index ``i`` is the pixel centre ``i + 0.5``; turning about ``c - 0.5`` in index coordinates is
    turning about ``c`` in pixel edges, so the points follow the image exactly. Clamped to the frame.
    """
    h, w = hw
    xy = tv_tensors.KeyPoints(pts[..., :2].reshape(-1, 2).float(), canvas_size=tuple(hw))
    xy = tvf.affine(xy, **args, center=[w / 2.0 - 0.5, h / 2.0 - 0.5]).as_subclass(torch.Tensor)
    xy[:, 0].clamp_(0, w - 1)
    xy[:, 1].clamp_(0, h - 1)
    out = pts.clone()
    out[..., :2] = xy.reshape(pts[..., :2].shape).to(pts.dtype)
    return out


def _warp_masks(masks: torch.Tensor, args: Dict[str, object]) -> torch.Tensor:
    """``(N, H, W)`` binary masks -> warped masks, same dtype (nearest neighbour, outside = 0)."""
    return tvf.affine(tv_tensors.Mask(masks), **args).as_subclass(torch.Tensor)


def _warp_image(x: torch.Tensor, args: Dict[str, object], fill: float) -> torch.Tensor:
    """``(C, H, W)`` float in [0, 1] -> warped (bilinear); pixels from outside the frame = ``fill``."""
    # fill=None is torchvision's zero padding; a fill value costs an extra mask channel
    return tvf.affine(x, **args, interpolation=InterpolationMode.BILINEAR, fill=None if fill == 0.0 else [fill])


def apply_affine(
    datapoint: Datapoint,
    angle_deg: float,
    scale: float,
    translate_frac: Tuple[float, float],
    fill: float = 0.0,
    min_visible_pixels: int = 1,
    keep_some_objects: bool = False,
    who: str = NAME,
) -> Optional[Datapoint]:
    """Apply one affine (same parameters for every image) to images and all their targets.

    ``translate_frac`` is (dx / W, dy / H). Masks (``Object.segment``, ``FindQuery.semantic_target``)
    are warped with nearest neighbour and each object's box becomes the box of its warped mask; an object
    without a mask gets the enclosing box of its transformed corners, clipped. An object with fewer than
    ``min_visible_pixels`` mask pixels left (or a clipped box of zero area) is dropped, and every query
    is reindexed; a query left without objects becomes a negative query.

    With ``keep_some_objects``, a Datapoint that has objects but would lose all of them is left
    untouched and ``None`` is returned (the caller draws again).
    """
    to_drop: Set[Tuple[int, int]] = set()
    plans = []  # per image: (hw, affine args, [(new bbox, new area, new segment) or None per object])
    n_objects = 0
    for img_idx, img in enumerate(datapoint.images):
        hw = image_hw(img.data)
        h, w = hw
        args = affine_args(angle_deg, scale, (float(translate_frac[0]) * w, float(translate_frac[1]) * h))
        for obj in img.objects:
            require_decoded_mask(obj.segment, who, hw)
        new_objects: list = [None] * len(img.objects)
        n_objects += len(img.objects)
        with_mask = [i for i, o in enumerate(img.objects) if o.segment is not None]
        if with_mask:  # all masks of the image in one warp, all their boxes in one call
            stack = torch.stack([img.objects[i].segment for i in with_mask])
            before = stack.flatten(1).sum(dim=1, dtype=torch.int32).tolist()  # 0/1 masks (DecodeRle)
            warped = _warp_masks(stack, args)
            after = warped.flatten(1).sum(dim=1, dtype=torch.int32).tolist()
            boxes = boxes_from_masks(warped)
            for k, i in enumerate(with_mask):
                obj = img.objects[i]
                if before[k] == 0 or after[k] < min_visible_pixels:
                    to_drop.add((img_idx, i))
                    continue
                box = boxes[k].to(obj.bbox.dtype).reshape(obj.bbox.shape)
                new_objects[i] = (box, float(obj.area) * after[k] / before[k], warped[k])  # area keeps the loader's unit
        box_only = [i for i, o in enumerate(img.objects) if o.segment is None]
        if box_only:
            old = torch.stack([img.objects[i].bbox.reshape(4).to(torch.float64) for i in box_only])
            new = map_boxes(old, hw, args)
            old_a = ((old[:, 2] - old[:, 0]) * (old[:, 3] - old[:, 1])).tolist()
            new_a = ((new[:, 2] - new[:, 0]) * (new[:, 3] - new[:, 1])).tolist()
            for k, i in enumerate(box_only):
                obj = img.objects[i]
                if new_a[k] <= 0:
                    to_drop.add((img_idx, i))
                    continue
                area = float(obj.area) * new_a[k] / old_a[k] if old_a[k] > 0 else new_a[k]
                new_objects[i] = (new[k].to(obj.bbox.dtype).reshape(obj.bbox.shape), area, None)
        plans.append((hw, args, new_objects))

    if keep_some_objects and n_objects > 0 and len(to_drop) == n_objects:
        return None

    for img_idx, (img, (hw, args, new_objects)) in enumerate(zip(datapoint.images, plans)):
        x, restore = to_unit_tensor(img.data, who)
        c = x.shape[0]
        if c > 1 and all(torch.equal(x[0], x[i]) for i in range(1, c)):  # gray: warp one channel
            img.data = restore(_warp_image(x[:1], args, fill).expand(c, -1, -1).contiguous())
        else:
            img.data = restore(_warp_image(x, args, fill))
        for obj, new in zip(img.objects, new_objects):
            if new is not None:
                obj.bbox, obj.area, obj.segment = new

        for q in datapoint.find_queries:
            if q.image_id != img_idx:
                continue
            if isinstance(q.semantic_target, torch.Tensor):
                q.semantic_target = _warp_masks(q.semantic_target[None], args)[0]
            if q.input_bbox is not None:
                q.input_bbox = map_boxes(q.input_bbox, hw, args).reshape(q.input_bbox.shape)
            if q.input_points is not None:
                q.input_points = map_prompt_points(q.input_points, hw, args)

    return drop_objects(datapoint, to_drop, who)


def _range(v, name: str, symmetric: bool) -> Tuple[float, float]:
    if isinstance(v, Sequence):
        lo, hi = float(v[0]), float(v[1])
    else:
        lo, hi = (-abs(float(v)), abs(float(v))) if symmetric else (float(v), float(v))
    if lo > hi:
        raise ValueError(f"{NAME}: {name}={v!r} has min > max")
    return lo, hi


@TRANSFORMS.register()
class RandomAffineWithTargets:
    """Small random rotation / scale / translation of image, masks and boxes (boxes from masks).

    Needs decoded masks: place it after SAM3's ``DecodeRle`` (a clear TypeError otherwise) and before
    ``NormalizeAPI``; works on PIL images and on [0, 1] tensors. View angles are kept: a rotation of a
    few degrees is a detector roll / patient positioning change, not a different C-arm view.

    Args:
        p: probability of applying the transform to a Datapoint.
        degrees: rotation range in degrees, a number ``d`` meaning ``(-d, d)``.
        scale: zoom range (``> 1`` enlarges).
        translate: maximum shift as fractions of (width, height), sampled in ``(-tx, tx)``, ``(-ty, ty)``.
        fill: intensity in [0, 1] for pixels that come from outside the frame (0 = black, like the
            collimated border of an angiogram).
        min_visible_pixels: an object keeping fewer mask pixels than this is dropped.
        max_tries: draws allowed for a Datapoint whose every object would leave the frame; after
            that it is left untransformed (an all-negative batch would stop SAM3's semantic-seg loss).
    """

    def __init__(
        self,
        p: float = 0.5,
        degrees=10.0,
        scale: Sequence[float] = (0.9, 1.1),
        translate: Sequence[float] = (0.05, 0.05),
        fill: float = 0.0,
        min_visible_pixels: int = 1,
        max_tries: int = 5,
    ) -> None:
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"{NAME}: p={p} is not a probability in [0, 1]")
        self.p = float(p)
        self.degrees = _range(degrees, "degrees", symmetric=True)
        self.scale = _range(scale, "scale", symmetric=False)
        if self.scale[0] <= 0:
            raise ValueError(f"{NAME}: scale={scale!r} must be positive")
        tx, ty = (translate, translate) if not isinstance(translate, Sequence) else translate
        self.translate = (abs(float(tx)), abs(float(ty)))
        self.fill = float(fill)
        self.min_visible_pixels = max(1, int(min_visible_pixels))
        self.max_tries = max(1, int(max_tries))
        self.num_skipped = 0  # Datapoints left untransformed after max_tries (per process)

    def sample(self, generator: Optional[torch.Generator] = None) -> Tuple[float, float, Tuple[float, float]]:
        angle = _uniform(*self.degrees, generator)
        scale = _uniform(*self.scale, generator)
        tx = _uniform(-self.translate[0], self.translate[0], generator)
        ty = _uniform(-self.translate[1], self.translate[1], generator)
        return angle, scale, (tx, ty)

    def __call__(self, datapoint: Datapoint, **kwargs) -> Datapoint:
        if not _chance(self.p):
            return datapoint
        for _ in range(self.max_tries):
            angle, scale, shift = self.sample()
            out = apply_affine(
                datapoint, angle, scale, shift, self.fill, self.min_visible_pixels, keep_some_objects=True
            )
            if out is not None:
                return out
        self.num_skipped += 1
        log.info("%s: every draw pushed all objects out of the frame; sample left untransformed (%d so far)",
                 NAME, self.num_skipped)
        return datapoint

    def __repr__(self) -> str:
        return (
            f"{NAME}(p={self.p}, degrees={self.degrees}, scale={self.scale}, translate={self.translate}, "
            f"fill={self.fill}, min_visible_pixels={self.min_visible_pixels}, max_tries={self.max_tries})"
        )
