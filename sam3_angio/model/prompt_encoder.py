"""Clicks for one target segment -> a feature-map prompt added to SAM3's FPN maps (proofread mode).

SAM3's concept path (``Sam3Image.forward``) drops ``input_points``, so clicks reach the model here, in a
path we own: each frame's clicks are rendered into a sparse map and projected onto the FPN features
(after FiLM), where the grounding encoder, decoder and segmentation head all read them:

    Clicks: points (B, P, 2) normalised (x, y) in [0, 1]; labels (B, P) 1 positive / 0 negative /
            -1 padding; target_class (B,) head class index of the target segment (-1 unknown)
    render at level l -> (B, 2 + K, H_l, W_l): [positive, negative, one-hot(target class) at the
            positive points], each click a small Gaussian blob
    conv block (shared over levels) -> (B, 256, H_l, W_l), ADDED to backbone_fpn[l]

The output layer starts near zero (weights ~1e-4, bias 0), so a fresh encoder leaves SAM3's outputs
(almost) unchanged: proofread starts where automatic is. ``sample_clicks`` simulates a person's clicks
from a fully labelled frame (the interactive sub-mode of training).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from sam3_angio.errors import ConfigError
from sam3_angio.registry import PROMPT_ENCODERS

POINT_SAMPLING = ("uniform", "centreline")


@dataclass
class Clicks:
    """Clicks on one target segment per frame. ``points`` (B, P, 2) normalised (x, y) in [0, 1] of the
    model's input image; ``labels`` (B, P) 1 positive, 0 negative, -1 padding (no click); ``target_class``
    (B,) the head class index of the clicked segment (-1: unknown / no target); ``boxes`` (B, 4) optional
    normalised (x0, y0, x1, y1), NaN where a frame has none."""

    points: torch.Tensor
    labels: torch.Tensor
    target_class: torch.Tensor
    boxes: Optional[torch.Tensor] = None

    def to(self, device) -> "Clicks":
        return Clicks(self.points.to(device), self.labels.to(device), self.target_class.to(device),
                      None if self.boxes is None else self.boxes.to(device))

    @classmethod
    def of(cls, per_frame: Sequence[Sequence[tuple]], target_class: Sequence[int]) -> "Clicks":
        """``per_frame[b]`` = [(x, y, positive), ...] normalised; padded to the longest frame."""
        p = max(1, max((len(c) for c in per_frame), default=1))
        pts = torch.zeros(len(per_frame), p, 2)
        lab = torch.full((len(per_frame), p), -1, dtype=torch.long)
        for b, clicks in enumerate(per_frame):
            for i, (x, y, pos) in enumerate(clicks):
                pts[b, i] = torch.tensor([float(x), float(y)])
                lab[b, i] = 1 if pos else 0
        return cls(pts, lab, torch.as_tensor(list(target_class), dtype=torch.long))


def render_clicks(clicks: Clicks, size, num_classes: int, sigma: float = 1.0) -> torch.Tensor:
    """Clicks -> (B, 2 + K, h, w) map: positive / negative blobs, and the target's class one-hot at the
    positive blobs. ``sigma`` in cells of the map; boxes (when given) add their outline to channel 0."""
    h, w = int(size[0]), int(size[1])
    pts, labels = clicks.points, clicks.labels
    device = pts.device
    ys = torch.arange(h, device=device, dtype=torch.float32)
    xs = torch.arange(w, device=device, dtype=torch.float32)
    cx = pts[..., 0] * w - 0.5  # (B, P) in cell units
    cy = pts[..., 1] * h - 0.5
    d2 = (ys.view(1, 1, h, 1) - cy[..., None, None]) ** 2 + (xs.view(1, 1, 1, w) - cx[..., None, None]) ** 2
    blob = torch.exp(-d2 / (2 * sigma ** 2))  # (B, P, h, w)
    pos = (blob * (labels == 1).float()[..., None, None]).amax(1)
    neg = (blob * (labels == 0).float()[..., None, None]).amax(1)
    cls_map = torch.zeros(pts.shape[0], num_classes, h, w, device=device)
    tc = clicks.target_class.to(device)
    valid = (tc >= 0) & (tc < num_classes)
    if valid.any():
        onehot = torch.zeros(pts.shape[0], num_classes, device=device)
        onehot[valid, tc[valid]] = 1.0
        cls_map = onehot[..., None, None] * pos[:, None]
    if clicks.boxes is not None:
        box = clicks.boxes.to(device)
        has = torch.isfinite(box).all(-1)
        x0, y0, x1, y1 = (box.nan_to_num(0.0) * torch.tensor([w, h, w, h], device=device)).unbind(-1)
        gx, gy = xs.view(1, 1, w) + 0.5, ys.view(1, h, 1) + 0.5
        inside = ((gx >= x0[:, None, None]) & (gx <= x1[:, None, None]) & (gy >= y0[:, None, None])
                  & (gy <= y1[:, None, None]) & has[:, None, None]).float()
        pos = torch.maximum(pos, 0.5 * inside)
    return torch.cat([pos[:, None], neg[:, None], cls_map], 1)


@PROMPT_ENCODERS.register("sparse_conv")
class SparseClickEncoder(nn.Module):
    """Sparse click map (positive, negative, target class one-hot) -> small conv block -> a residual
    added to every FPN level. Output layer initialised near zero (``init_std``, default 1e-4).

    Args:
        channels: FPN channels (set by the model: SAM3's hidden dim).
        num_classes: head classes K (set by the model).
        hidden: width of the conv block.
        sigma: click blob radius in cells of each level's map.
        init_std: std of the output layer's initial weights (bias 0).
    """

    def __init__(self, channels: int, num_classes: int, hidden: int = 64, sigma: float = 1.0,
                 init_std: float = 1e-4):
        super().__init__()
        self.num_classes = int(num_classes)
        self.sigma = float(sigma)
        self.block = nn.Sequential(
            nn.Conv2d(2 + self.num_classes, hidden, 3, padding=1), nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=2, dilation=2), nn.GELU(),
        )
        self.out = nn.Conv2d(hidden, channels, 1)
        nn.init.normal_(self.out.weight, std=float(init_std))
        nn.init.zeros_(self.out.bias)

    def forward(self, fpn: List[torch.Tensor], clicks: Clicks) -> List[torch.Tensor]:
        """``fpn`` [(B, C, H_l, W_l)] -> the same maps plus the clicks' residual."""
        clicks = clicks.to(fpn[0].device)
        out = []
        for f in fpn:
            m = render_clicks(clicks, f.shape[-2:], self.num_classes, self.sigma).to(f.dtype)
            out.append(f + self.out(self.block(m)))
        return out


# ----------------------------------------------------------------------- simulated clicks (training)

def _skeleton(mask: np.ndarray) -> np.ndarray:
    from skimage.morphology import skeletonize

    return skeletonize(mask)


def _pick(rng: np.random.Generator, coords: np.ndarray, n: int) -> np.ndarray:
    if n <= 0 or len(coords) == 0:
        return coords[:0]
    return coords[rng.choice(len(coords), size=n, replace=len(coords) < n)]


def sample_clicks(segments: torch.Tensor, object_image: torch.Tensor, object_class: torch.Tensor,
                  num_images: int, num_pos_points: int = 3, num_neg_points: int = 1,
                  point_sampling: str = "uniform", rng: Optional[np.random.Generator] = None) -> Clicks:
    """Simulated clicks for one target segment per frame (interactive sub-mode).

    ``segments`` (N, H, W) bool ground-truth masks of the batch's objects, ``object_image`` (N,) the frame
    of each, ``object_class`` (N,) its head class index. Per frame: one non-empty object at random, then
    ``num_pos_points`` inside it (uniform over its pixels, or along its centreline) and ``num_neg_points``
    outside it (on the frame's other labelled segments when there are any, else anywhere). A frame without
    objects gets no clicks (all padding, target class -1)."""
    if point_sampling not in POINT_SAMPLING:
        raise ConfigError(f"training.proofread.point_sampling={point_sampling!r}: expected one of {list(POINT_SAMPLING)}")
    rng = rng or np.random.default_rng()
    p = max(1, num_pos_points + num_neg_points)
    pts = torch.zeros(num_images, p, 2)
    lab = torch.full((num_images, p), -1, dtype=torch.long)
    tcls = torch.full((num_images,), -1, dtype=torch.long)
    if segments is None or segments.numel() == 0:
        return Clicks(pts, lab, tcls)
    masks = segments.detach().bool().cpu().numpy()
    img = object_image.detach().cpu().numpy()
    cls = object_class.detach().cpu().numpy()
    h, w = masks.shape[-2:]
    nonempty = masks.reshape(len(masks), -1).any(1)
    for b in range(num_images):
        cand = np.flatnonzero((img == b) & nonempty)
        if len(cand) == 0:
            continue
        t = int(rng.choice(cand))
        target = masks[t]
        inside = np.argwhere(_skeleton(target) if point_sampling == "centreline" else target)
        if len(inside) == 0:
            inside = np.argwhere(target)
        others = np.zeros_like(target)
        for o in np.flatnonzero(img == b):
            if o != t:
                others |= masks[o]
        outside = np.argwhere(others & ~target)
        if len(outside) == 0:
            outside = np.argwhere(~target)
        chosen = [(yx, 1) for yx in _pick(rng, inside, num_pos_points)]
        chosen += [(yx, 0) for yx in _pick(rng, outside, num_neg_points)]
        for i, ((y, x), label) in enumerate(chosen):
            pts[b, i] = torch.tensor([(x + 0.5) / w, (y + 0.5) / h])
            lab[b, i] = label
        tcls[b] = int(cls[t])
    return Clicks(pts, lab, tcls)
