"""FiLM (feature-wise linear modulation, Perez et al., AAAI 2018) of SAM3's image features by the
view embedding: ``f' = gamma(e) * f + beta(e)`` per channel.

features (B, C, H, W), view embedding (B, D) -> gamma, beta (B, C, 1, 1). The projection starts at
zero, so gamma = 1 and beta = 0: a fresh FiLM is the identity and a fresh wrapper is plain SAM3.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn


class FiLM(nn.Module):
    """Per-channel gamma/beta from a view embedding; identity at initialisation."""

    def __init__(self, embed_dim: int = 256, channels: int = 256):
        super().__init__()
        self.channels = channels
        self.proj = nn.Linear(embed_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, features: torch.Tensor, embedding: torch.Tensor,
                active: Optional[torch.Tensor] = None) -> torch.Tensor:
        """features (B, C, H, W); embedding (B, D); active (B,) bool - rows where False are left
        exactly as they are (the "identity for unknown angles" option)."""
        delta_gamma, beta = self.proj(embedding).to(features.dtype).chunk(2, dim=1)  # (B, C) each
        gamma = 1.0 + delta_gamma
        if active is not None:
            a = active.to(features.device)[:, None]
            gamma = torch.where(a, gamma, torch.ones_like(gamma))
            beta = torch.where(a, beta, torch.zeros_like(beta))
        return features * gamma[:, :, None, None] + beta[:, :, None, None]
