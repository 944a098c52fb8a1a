"""How much mask IoU a model's mask grid leaves possible: an oracle on the grid against the true mask.

SAM3 predicts instance masks as logits on a grid 4x its token grid (``4 * resolution / 14`` cells a
side: 64 for ``sam3_tiny`` at 224 px, 288 for the real model at 1008 px) and
:func:`sam3_angio.inference.postprocess.predict_instances` upsamples them bilinearly to the frame and
thresholds at 0 (probability 0.5). A vessel a few pixels wide is about one grid cell wide, so even a
model that predicts every cell right cannot draw it exactly. The oracle here knows each cell's true
vessel fraction ``f`` (area-averaged), predicts the logit ``log(f / (1 - f))`` and goes through the same
upsampling and threshold: its IoU with the true mask is what a perfect model on that grid reaches
with that post-processing (a natural best case, not a proven bound: other logits could do slightly
better on a given mask). COCO segm AP and end-to-end naming count a prediction only at IoU >= 0.5,
so the fraction of instances whose oracle IoU reaches 0.5 caps them.

    grid_for_resolution(224) -> 64
    oracle_iou(mask (H, W) bool, grid 64) -> float in [0, 1]
"""

from __future__ import annotations

from typing import Dict, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: SAM3's patch size and the factor from its token grid to its highest-resolution mask level.
PATCH = 14
MASK_UPSAMPLE = 4
_EPS = 1e-4


def grid_for_resolution(resolution: int) -> int:
    """Mask-logit grid side of a SAM3 model run at ``resolution`` px (square input)."""
    if resolution <= 0 or resolution % PATCH:
        raise ValueError(f"resolution {resolution} is not a positive multiple of SAM3's patch size {PATCH}")
    return MASK_UPSAMPLE * resolution // PATCH


def oracle_iou(mask: np.ndarray, grid: int) -> float:
    """IoU of the grid oracle's mask with ``mask`` ((H, W), nonzero = vessel); 1.0 for an empty mask
    (the oracle predicts nothing, which is right)."""
    m = np.asarray(mask) != 0
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {m.shape}")
    if grid <= 0:
        raise ValueError(f"grid must be positive, got {grid}")
    truth = torch.from_numpy(m)
    if not truth.any():
        return 1.0
    frac = F.interpolate(truth[None, None].float(), size=(grid, grid), mode="area")
    logits = torch.logit(frac.clamp(_EPS, 1 - _EPS))
    pred = F.interpolate(logits, size=m.shape, mode="bilinear", align_corners=False)[0, 0] > 0
    inter = (pred & truth).sum().item()
    union = (pred | truth).sum().item()
    return inter / union


def summarize(ious: Sequence[float], thresholds: Iterable[float] = (0.5, 0.75)) -> Dict[str, float]:
    """Mean, median and minimum oracle IoU, and the fraction reaching each IoU threshold."""
    a = np.asarray(ious, dtype=float)
    if a.size == 0:
        raise ValueError("no masks to summarise")
    out = {"n": int(a.size), "mean_iou": float(a.mean()), "median_iou": float(np.median(a)),
           "min_iou": float(a.min())}
    for t in thresholds:
        out[f"frac_iou_ge_{t:g}"] = float((a >= t).mean())
    return out
