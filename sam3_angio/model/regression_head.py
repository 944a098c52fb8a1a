"""The regression heads (the design's multi-task heads): from the image features pooled inside a
region (a stenosis or a segment), its place in the frame and the view embedding, the region's
% diameter stenosis, minimal lumen diameter (mm) and reference diameter (mm).

features (B, C, h, w) + region masks (N, H, W) + image index (N,) + view (B, D) -> (N, 3) in
``QCA_KEYS`` order, *normalised*: stenosis % / 100, MLD and reference in mm (``QCA_SCALE`` turns them
back). The pixel spacing is not an input: the diameters are learnt in mm on the training data's
spacing (the synthetic generator's), a limit docs/qca.md states.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from sam3_angio.model.cass_head import region_pool
from sam3_angio.registry import HEADS

QCA_KEYS = ("stenosis_pct", "mld_mm", "reference_diameter_mm")
QCA_SCALE = (100.0, 1.0, 1.0)  # normalised head output x scale = the value in its own unit


@HEADS.register("qca_mlp")
class QCARegressionHead(nn.Module):
    """Region-pooled features + region geometry + view embedding -> (stenosis %/100, MLD mm, reference mm)."""

    def __init__(self, channels: int = 256, view_dim: int = 256, hidden: int = 256, dropout: float = 0.1):
        super().__init__()
        self.geom = nn.Sequential(nn.Linear(4, 64), nn.GELU())
        in_dim = channels + 64 + view_dim
        self.mlp = nn.Sequential(
            nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, len(QCA_KEYS)),
        )

    def forward(self, features: torch.Tensor, masks: torch.Tensor, image_idx: torch.Tensor,
                view: torch.Tensor) -> torch.Tensor:
        """features (B, C, h, w); masks (N, H, W); image_idx (N,); view (B, D) -> (N, 3) normalised."""
        pooled, geom = region_pool(features, masks, image_idx)
        return self.mlp(torch.cat([pooled, self.geom(geom), view[image_idx]], dim=1))

    @staticmethod
    def denormalise(pred: torch.Tensor) -> torch.Tensor:
        """(N, 3) normalised -> stenosis % and mm."""
        return pred * pred.new_tensor(QCA_SCALE)
