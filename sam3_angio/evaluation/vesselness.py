"""Topology-aware vessel scores and the classical baseline a learnt model has to beat.

- ``cldice``: centreline Dice (Shit et al., "clDice - a Novel Topology-Preserving Loss Function for
  Tubular Structure Segmentation", CVPR 2021): the harmonic mean of topology precision (the predicted
  skeleton's fraction inside the ground-truth mask) and topology sensitivity (the ground-truth
  skeleton's fraction inside the predicted mask). Skeletons: ``skimage.morphology.skeletonize``.
- ``FrangiBaseline``: multi-scale Frangi vesselness (``skimage.filters.frangi``, dark ridges: contrast
  vessels are dark on an X-ray) thresholded at the value that maximises mean Dice on training frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np


def dice(gt: np.ndarray, pred: np.ndarray, empty: float = 1.0) -> float:
    gt, pred = gt.astype(bool), pred.astype(bool)
    denom = int(gt.sum()) + int(pred.sum())
    return empty if denom == 0 else 2.0 * int((gt & pred).sum()) / denom


def cldice(gt: np.ndarray, pred: np.ndarray, empty: float = 1.0) -> float:
    """Centreline Dice of two binary masks (1 when both are empty, 0 when only one is)."""
    from skimage.morphology import skeletonize

    gt, pred = gt.astype(bool), pred.astype(bool)
    if not gt.any() and not pred.any():
        return empty
    if not gt.any() or not pred.any():
        return 0.0
    s_pred, s_gt = skeletonize(pred), skeletonize(gt)
    tprec = (s_pred & gt).sum() / max(1, s_pred.sum())
    tsens = (s_gt & pred).sum() / max(1, s_gt.sum())
    return 0.0 if tprec + tsens == 0 else float(2 * tprec * tsens / (tprec + tsens))


def frangi_response(image: np.ndarray, sigmas: Sequence[float] = (1, 2, 3, 4)) -> np.ndarray:
    """Frangi vesselness of a grey frame (dark vessels), scaled to [0, 1] per frame."""
    from skimage.filters import frangi

    img = image.astype(np.float32)
    if img.ndim == 3:
        img = img.mean(axis=2)
    img = (img - img.min()) / max(1e-6, float(img.max() - img.min()))
    v = frangi(img, sigmas=list(sigmas), black_ridges=True)
    top = float(np.percentile(v, 99.9))
    return np.clip(v / top, 0, 1) if top > 0 else v


@dataclass
class FrangiBaseline:
    """Frangi vesselness + one global threshold, fitted on training frames (``fit``)."""

    sigmas: Sequence[float] = (1, 2, 3, 4)
    threshold: Optional[float] = None

    def fit(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
            candidates: Sequence[float] = tuple(np.linspace(0.02, 0.8, 40))) -> "FrangiBaseline":
        responses = [frangi_response(im, self.sigmas) for im in images]
        best = max(candidates, key=lambda t: np.mean([dice(m, r >= t) for r, m in zip(responses, masks)]))
        self.threshold = float(best)
        return self

    def predict(self, image: np.ndarray) -> np.ndarray:
        if self.threshold is None:
            raise RuntimeError("FrangiBaseline.predict before fit: choose the threshold on training frames first")
        return frangi_response(image, self.sigmas) >= self.threshold

    def score(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> Dict[str, float]:
        preds: List[np.ndarray] = [self.predict(im) for im in images]
        return {"dice": float(np.mean([dice(m, p) for m, p in zip(masks, preds)])),
                "cldice": float(np.mean([cldice(m, p) for m, p in zip(masks, preds)])),
                "threshold": float(self.threshold)}
