"""A view encoder that knows the C-arm's four quadrants (LAO/RAO x cranial/caudal) and how far into each."""

import torch
import torch.nn as nn

from sam3_angio.model.view_encoder import ViewEncoder
from sam3_angio.registry import VIEW_ENCODERS


@VIEW_ENCODERS.register("quadrant")
class QuadrantViewEncoder(ViewEncoder):
    """One embedding per quadrant, plus a linear map of |angles| / 90."""

    def __init__(self, dim: int = 256):
        super().__init__(dim)
        self.quadrant = nn.Embedding(4, dim)
        self.magnitude = nn.Linear(2, dim)

    def encode(self, angles: torch.Tensor) -> torch.Tensor:  # (B, 2) degrees -> (B, dim)
        q = (angles[:, 0] >= 0).long() * 2 + (angles[:, 1] >= 0).long()
        return self.quadrant(q) + self.magnitude(angles.abs() / 90.0)
