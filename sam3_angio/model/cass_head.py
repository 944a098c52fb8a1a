"""The CASS head: names a given coronary segment from the image features inside its region, the
region's place in the frame, and the view embedding.

features (B, C, h, w) + region masks (N, H, W) with their image index (N,) -> region-pooled
features (N, C) + region geometry (N, 4: centroid x, y, extent w, h, all in [0, 1]) + view
embedding (N, D) -> logits (N, K). Pooling inside the segment is what lets the head tell which of the
many visible segments is meant; the geometry plus the view angles is what lets it reason "in this
view, a segment there is the mid LAD". ``pooling="global"`` (the study's phase 2 design) averages the
whole frame instead, kept as a baseline to compare against.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from sam3_angio.registry import HEADS


def region_pool(features: torch.Tensor, masks: torch.Tensor, image_idx: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Masked average of ``features`` inside each region, and the region's geometry.

    features (B, C, h, w); masks (N, H, W) bool/float at any resolution; image_idx (N,) long
    -> pooled (N, C), geometry (N, 4) = (cx, cy, w, h) of the mask's extent, normalised to [0, 1].
    An empty mask pools the whole frame and has geometry (0.5, 0.5, 1, 1).
    """
    n = masks.shape[0]
    c, h, w = features.shape[1:]
    if n == 0:
        return features.new_zeros(0, c), features.new_zeros(0, 4)
    m = F.interpolate(masks[:, None].float(), size=(h, w), mode="area")[:, 0]  # (N, h, w) in [0, 1]
    area = m.flatten(1).sum(1)  # (N,)
    empty = area <= 1e-6
    m = torch.where(empty[:, None, None], torch.ones_like(m), m)
    area = torch.where(empty, torch.full_like(area, h * w), area)
    f = features[image_idx]  # (N, C, h, w)
    pooled = (f * m[:, None]).flatten(2).sum(-1) / area[:, None]
    ys = (torch.arange(h, device=m.device, dtype=m.dtype) + 0.5) / h
    xs = (torch.arange(w, device=m.device, dtype=m.dtype) + 0.5) / w
    py = m.sum(2) / area[:, None]  # (N, h): row profile
    px = m.sum(1) / area[:, None]  # (N, w)
    cy, cx = (py * ys).sum(1), (px * xs).sum(1)
    sy = ((py * (ys - cy[:, None]) ** 2).sum(1)).clamp_min(0).sqrt() * 2
    sx = ((px * (xs - cx[:, None]) ** 2).sum(1)).clamp_min(0).sqrt() * 2
    geom = torch.stack([cx, cy, sx, sy], dim=1)
    geom = torch.where(empty[:, None], geom.new_tensor([0.5, 0.5, 1.0, 1.0]).expand_as(geom), geom)
    return pooled, geom.to(features.dtype)


@HEADS.register("mlp")
class CassHead(nn.Module):
    """Region-pooled features + region geometry + view embedding -> CASS logits (an MLP)."""

    def __init__(self, num_classes: int = 14, channels: int = 256, view_dim: int = 256,
                 hidden: int = 256, pooling: str = "region", dropout: float = 0.1):
        super().__init__()
        if pooling not in ("region", "global"):
            raise ValueError(f"CassHead pooling={pooling!r}: expected 'region' or 'global'")
        self.pooling = pooling
        self.num_classes = num_classes
        self.geom = nn.Sequential(nn.Linear(4, 64), nn.GELU())
        in_dim = channels + view_dim + (64 if pooling == "region" else 0)
        self.mlp = nn.Sequential(
            nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.GELU(),
        )
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, features: torch.Tensor, masks: Optional[torch.Tensor], image_idx: torch.Tensor,
                view: torch.Tensor) -> torch.Tensor:
        """features (B, C, h, w); masks (N, H, W) or None for global; image_idx (N,); view (B, D)
        -> logits (N, K)."""
        if self.pooling == "global" or masks is None:
            pooled = features.mean(dim=(2, 3))[image_idx]
            x = torch.cat([pooled, view[image_idx]], dim=1)
        else:
            pooled, geom = region_pool(features, masks, image_idx)
            x = torch.cat([pooled, self.geom(geom), view[image_idx]], dim=1)
        return self.classifier(self.mlp(x))
