"""View encoders: the C-arm angles of a frame -> a 256-d view embedding.

angles (B, 2) in degrees, [primary LAO+/RAO-, secondary CRA+/CAU-]; known (B,) bool -> (B, dim).
Unknown angles (ARCADE, rows without a contours JSON) take a learned "unknown" embedding: never a
zero vector that would mean "0 degrees". Encoders register under the name YAML gives
(``model.view.encoder``); a new one subclasses ``ViewEncoder`` and implements ``encode``
(docs/extending.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from sam3_angio.registry import VIEW_ENCODERS


class ViewEncoder(nn.Module):
    """Base class: ``encode(angles (B, 2) degrees) -> (B, dim)`` for known angles; unknown rows get the
    learned ``unknown`` embedding."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.unknown = nn.Parameter(torch.randn(dim) * 0.02)

    def encode(self, angles: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement encode(angles (B, 2)) -> (B, dim)")

    def forward(self, angles: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """angles (B, 2) degrees, known (B,) bool -> (B, dim)."""
        angles = angles.float()
        known = known.bool().to(angles.device)
        # Unknown rows may hold anything (0, NaN): encode a clean placeholder, then replace.
        safe = torch.where(known[:, None], angles, torch.zeros_like(angles))
        e = self.encode(safe)
        return torch.where(known[:, None], e, self.unknown.to(e.dtype).expand_as(e))


@VIEW_ENCODERS.register("sinusoidal")
class SinusoidalViewEncoder(ViewEncoder):
    """Sinusoidal encoding of both angles (radians) with learnable frequencies, then an MLP."""

    def __init__(self, dim: int = 256, num_frequencies: int = 8, hidden: int = 256):
        super().__init__(dim)
        # Initial frequencies 1..2^(F-1) per radian, learnt from there (one set per angle).
        init = torch.tensor([2.0 ** k for k in range(num_frequencies)]).repeat(2, 1)
        self.frequencies = nn.Parameter(init)  # (2, F)
        self.mlp = nn.Sequential(
            nn.Linear(2 + 4 * num_frequencies, hidden), nn.GELU(), nn.Linear(hidden, dim)
        )

    def encode(self, angles: torch.Tensor) -> torch.Tensor:
        rad = angles * (math.pi / 180.0)  # (B, 2)
        phase = rad[:, :, None] * self.frequencies[None]  # (B, 2, F)
        feats = torch.cat([rad, phase.sin().flatten(1), phase.cos().flatten(1)], dim=1)
        return self.mlp(feats)


@VIEW_ENCODERS.register("categorical")
class CategoricalViewEncoder(ViewEncoder):
    """9 bins per angle (-40..+40 by 10 degrees, clamped), separate embeddings for primary and
    secondary, summed and projected."""

    def __init__(self, dim: int = 256, num_bins: int = 9, bin_width: float = 10.0):
        super().__init__(dim)
        self.num_bins = num_bins
        self.bin_width = bin_width
        self.primary = nn.Embedding(num_bins, dim)
        self.secondary = nn.Embedding(num_bins, dim)
        self.proj = nn.Linear(dim, dim)

    def bins(self, angles: torch.Tensor) -> torch.Tensor:
        """(B, 2) degrees -> (B, 2) bin index in [0, num_bins): -40 -> 0, 0 -> 4, +40 -> 8."""
        half = (self.num_bins - 1) / 2
        idx = torch.round(angles / self.bin_width) + half
        return idx.clamp(0, self.num_bins - 1).long()

    def encode(self, angles: torch.Tensor) -> torch.Tensor:
        b = self.bins(angles)
        return self.proj(self.primary(b[:, 0]) + self.secondary(b[:, 1]))
