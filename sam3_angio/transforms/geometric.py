"""Geometric augmentation: one small rotation + scale + translation applied identically to the image,
every object mask, every box and every query prompt; boxes recomputed from the transformed masks.

Coordinates are continuous pixel edges (pixel ``i`` spans ``[i, i + 1)``), boxes absolute XYXY as SAM3
holds them before ``NormalizeAPI``. The affine maps ``p -> A (p - c) + c + t`` with ``c`` the frame centre,
``A = s R(angle)`` (positive angle = counter-clockwise on screen) and ``t`` in pixels.
Objects whose mask leaves the frame are dropped and their queries reindexed (``targets.drop_objects``).
"""

from __future__ import annotations

import logging
import math
from typing import Optional, Sequence, Set, Tuple

import torch
import torch.nn.functional as tnf

from sam3.train.data.sam3_image_dataset import Datapoint

from sam3_angio.registry import TRANSFORMS
from sam3_angio.transforms.image_data import image_hw, to_unit_tensor
from sam3_angio.transforms.photometric import _chance, _uniform
from sam3_angio.transforms.targets import box_from_mask, drop_objects, require_decoded_mask

log = logging.getLogger(__name__)

NAME = "RandomAffineWithTargets"


def affine_matrix(angle_deg: float, scale: float) -> torch.Tensor:
    """``(2, 2)`` linear part ``A = scale * R``; positive angle turns the picture counter-clockwise as
    displayed (x right, y down), the torchvision convention."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    return scale * torch.tensor([[c, s], [-s, c]], dtype=torch.float64)


def map_points(pts: torch.Tensor, A: torch.Tensor, t: Tuple[float, float], hw: Tuple[int, int]) -> torch.Tensor:
    """``(N, 2)`` pixel-edge (x, y) -> transformed ``(N, 2)``."""
    h, w = hw
    c = torch.tensor([w / 2.0, h / 2.0], dtype=torch.float64)
    p = pts.to(torch.float64) - c
    return (p @ A.T + c + torch.tensor(t, dtype=torch.float64)).to(pts.dtype)


def map_boxes(boxes: torch.Tensor, A: torch.Tensor, t: Tuple[float, float], hw: Tuple[int, int]) -> torch.Tensor:
    """``(N, 4)`` XYXY -> enclosing XYXY box of the 4 transformed corners, clipped to the frame."""
    h, w = hw
    b = boxes.reshape(-1, 4).to(torch.float64)
    corners = torch.stack(
        [b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], dim=1
    )  # (N, 4 corners, 2)
    m = map_points(corners.reshape(-1, 2), A, t, hw).reshape(-1, 4, 2)
    lo, hi = m.min(dim=1).values, m.max(dim=1).values
    out = torch.cat([lo, hi], dim=1)
    out[:, 0::2] = out[:, 0::2].clamp(0, w)
    out[:, 1::2] = out[:, 1::2].clamp(0, h)
    return out.to(boxes.dtype if boxes.dtype.is_floating_point else torch.float32)


def _sampling_grid(A: torch.Tensor, t: Tuple[float, float], hw: Tuple[int, int]) -> torch.Tensor:
    """``grid_sample`` grid ``(1, H, W, 2)`` that pulls each output pixel from ``A^-1 (p' - c - t) + c``.

    With ``align_corners=False`` normalised coordinates are ``n = (p - c) / (W/2, H/2)``, so the
    sampling map in normalised space is ``n = D^-1 A^-1 D n' - D^-1 A^-1 t`` with ``D = diag(W/2, H/2)``.
    """
    h, w = hw
    D = torch.diag(torch.tensor([w / 2.0, h / 2.0], dtype=torch.float64))
    Ainv = torch.linalg.inv(A)
    Dinv = torch.linalg.inv(D)
    lin = Dinv @ Ainv @ D
    off = -(Dinv @ Ainv @ torch.tensor(t, dtype=torch.float64))
    theta = torch.cat([lin, off[:, None]], dim=1)[None].float()  # (1, 2, 3)
    return tnf.affine_grid(theta, [1, 1, h, w], align_corners=False)


def _warp(x: torch.Tensor, grid: torch.Tensor, mode: str, fill: float = 0.0) -> torch.Tensor:
    """``(N, H, W)`` float -> warped ``(N, H, W)``; outside the source frame = ``fill``."""
    if fill == 0.0:
        return tnf.grid_sample(x[None], grid, mode=mode, padding_mode="zeros", align_corners=False)[0]
    y = tnf.grid_sample((x - fill)[None], grid, mode=mode, padding_mode="zeros", align_corners=False)
    return y[0] + fill


def _warp_mask(m: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Binary ``(H, W)`` mask -> warped mask of the same dtype (nearest neighbour)."""
    out = _warp(m[None].float(), grid, "nearest")[0] > 0.5
    return out.to(m.dtype)


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
    A = affine_matrix(angle_deg, scale)
    to_drop: Set[Tuple[int, int]] = set()
    plans = []  # per image: (hw, t, grid, [(new bbox, new area, new segment) or None per object])
    n_objects = 0
    for img_idx, img in enumerate(datapoint.images):
        hw = image_hw(img.data)
        h, w = hw
        t = (float(translate_frac[0]) * w, float(translate_frac[1]) * h)
        grid = _sampling_grid(A, t, hw)
        for obj in img.objects:
            require_decoded_mask(obj.segment, who, hw)
        with_mask = [i for i, o in enumerate(img.objects) if o.segment is not None]
        warped = {}
        if with_mask:  # all masks of the image in one grid_sample call
            stack = torch.stack([img.objects[i].segment for i in with_mask])
            out = _warp(stack.float(), grid, "nearest") > 0.5
            warped = {i: out[k].to(img.objects[i].segment.dtype) for k, i in enumerate(with_mask)}
        new_objects = []
        for obj_idx, obj in enumerate(img.objects):
            n_objects += 1
            if obj.segment is not None:
                before = int(obj.segment.sum())
                seg = warped[obj_idx]
                after = int(seg.sum())
                if before == 0 or after < min_visible_pixels:
                    to_drop.add((img_idx, obj_idx))
                    new_objects.append(None)
                    continue
                box = box_from_mask(seg).to(obj.bbox.dtype).reshape(obj.bbox.shape)
                new_objects.append((box, float(obj.area) * after / before, seg))  # area keeps the loader's unit
            else:
                old = obj.bbox.reshape(1, 4).to(torch.float64)
                new = map_boxes(old, A, t, hw)
                old_a = float((old[0, 2] - old[0, 0]) * (old[0, 3] - old[0, 1]))
                new_a = float((new[0, 2] - new[0, 0]) * (new[0, 3] - new[0, 1]))
                if new_a <= 0:
                    to_drop.add((img_idx, obj_idx))
                    new_objects.append(None)
                    continue
                area = float(obj.area) * new_a / old_a if old_a > 0 else new_a
                new_objects.append((new.to(obj.bbox.dtype).reshape(obj.bbox.shape), area, None))
        plans.append((hw, t, grid, new_objects))

    if keep_some_objects and n_objects > 0 and len(to_drop) == n_objects:
        return None

    for img_idx, (img, (hw, t, grid, new_objects)) in enumerate(zip(datapoint.images, plans)):
        h, w = hw
        x, restore = to_unit_tensor(img.data, who)
        c = x.shape[0]
        if c > 1 and all(torch.equal(x[0], x[i]) for i in range(1, c)):  # gray: warp one channel
            img.data = restore(_warp(x[:1], grid, "bilinear", fill).expand(c, -1, -1).contiguous())
        else:
            img.data = restore(_warp(x, grid, "bilinear", fill))
        for obj, new in zip(img.objects, new_objects):
            if new is not None:
                obj.bbox, obj.area, obj.segment = new

        for q in datapoint.find_queries:
            if q.image_id != img_idx:
                continue
            if isinstance(q.semantic_target, torch.Tensor):
                q.semantic_target = _warp_mask(q.semantic_target, grid)
            if q.input_bbox is not None:
                q.input_bbox = map_boxes(q.input_bbox, A, t, hw).reshape(q.input_bbox.shape)
            if q.input_points is not None:
                # points are pixel indices in SAM3 ([0, W - 1]); move to pixel centres and back
                pts = q.input_points
                xy = pts[..., :2].reshape(-1, 2) + 0.5
                xy = map_points(xy, A, t, hw) - 0.5
                xy[:, 0] = xy[:, 0].clamp(0, w - 1)
                xy[:, 1] = xy[:, 1].clamp(0, h - 1)
                pts = pts.clone()
                pts[..., :2] = xy.reshape(pts[..., :2].shape).to(pts.dtype)
                q.input_points = pts

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
