"""Does a trained model use the view angles? Change only the angles of a frame and measure how much its
outputs move.

``angle_sweep(predictor, frames, views)`` runs each frame once per C-arm view of ``views`` (the frame
itself unchanged) and compares every output with the run at the first view:

- ``embedding_cosine``: cosine similarity of the view embeddings (1: the encoder gives the same vector);
- ``mask_prob_mad``: mean absolute change of the mask probabilities (sigmoid of ``pred_masks``) of every
  query's best instance, over their pixels; ``mask_flip_fraction``: the fraction of those pixels whose
  mask (probability > 0.5) flips, out of the pixels inside either mask;
- ``mask_prob_var``: the variance across views of those probabilities, averaged over pixels (the measure
  of the earlier study, which found 0.00024: conditioning the model ignores);
- ``score_mad``: mean absolute change of the instance scores (the probabilities the top-k ranks by);
- ``cass_prob_mad`` / ``cass_name_change``: the CASS head's class probabilities on *fixed* regions (the
  masks predicted at the first view) and the fraction of those regions whose top-1 name changes.

A model trained without conditioning gives the same embedding for every view, so every change is 0
(tests/evaluation/test_view_sweep.py checks both kinds of model).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from sam3_angio.data.synthetic.views import STANDARD_VIEWS as _GENERATOR_VIEWS
from sam3_angio.inference.frames import collate_frames, frame_datapoint
from sam3_angio.view_angles import ViewAngles

# The sweep's views: the standard working projections the synthetic generator samples its cines around
# (sam3_angio/data/synthetic/views.py: RAO caudal, AP caudal, LAO caudal "spider", RAO/AP/LAO cranial,
# LAO and RAO straight), as (name, primary, secondary).
STANDARD_VIEWS: Tuple[Tuple[str, float, float], ...] = tuple((n, p, s) for n, (p, s) in _GENERATOR_VIEWS.items())


@torch.no_grad()
def _outputs(predictor, frame: np.ndarray, angles: Tuple[float, float]) -> dict:
    view = ViewAngles(primary=float(angles[0]), secondary=float(angles[1]))
    dp = frame_datapoint(frame, view, predictor.categories, 0, where="sweep frame")
    batch = collate_frames([dp], predictor.transforms, predictor.with_masks)
    from sam3.model.utils.misc import copy_data_to_device

    batch = copy_data_to_device(batch, predictor.device)
    out = predictor.model(batch)
    last = out.output[-1][-1] if hasattr(out, "output") else out[-1][-1]
    return {k: v.detach().float().cpu() if torch.is_tensor(v) else v for k, v in last.items()
            if k in ("pred_logits", "pred_masks", "view_features", "view_embedding", "presence_logit_dec")}


def _best_instance(o: dict) -> torch.Tensor:
    """(Q,) index of each query's best-scoring instance."""
    return o["pred_logits"][..., 0].argmax(dim=1)


@torch.no_grad()
def angle_sweep(predictor, frames: Sequence[np.ndarray],
                views: Sequence[Tuple[float, float]] = tuple((p, s) for _, p, s in STANDARD_VIEWS)) -> Dict[str, float]:
    """Mean output changes over ``frames`` when only the angles change across ``views`` (>= 2), each
    against the first view. ``predictor``: a :class:`sam3_angio.inference.Predictor` of a CASS run."""
    if len(views) < 2:
        raise ValueError("angle_sweep needs at least two views")
    if not frames:
        raise ValueError("angle_sweep needs at least one frame")
    model = predictor.model
    acc: Dict[str, List[float]] = {k: [] for k in ("embedding_cosine", "mask_prob_mad", "mask_flip_fraction",
                                                   "mask_prob_var", "score_mad", "cass_prob_mad", "cass_name_change")}
    for frame in frames:
        runs = [_outputs(predictor, frame, v) for v in views]
        ref = runs[0]
        sel = _best_instance(ref)
        q = torch.arange(sel.shape[0])
        probs = [r["pred_masks"][q, sel].sigmoid() for r in runs]  # (Q, h, w) each, same instances
        acc["mask_prob_var"].append(float(torch.stack(probs).var(dim=0, unbiased=False).mean()))
        fixed = probs[0] > 0.5
        cass_ref = None
        if getattr(model, "cass_head", None) is not None and fixed.any():
            regions = fixed[fixed.flatten(1).any(1)]
            img = torch.zeros(regions.shape[0], dtype=torch.long)

            def cass(r):
                dev = predictor.device
                return model.name_regions(r["view_features"].to(dev), regions.to(dev), img.to(dev),
                                          r["view_embedding"].to(dev)).float().softmax(1).cpu()
            cass_ref = cass(ref)
        for r, p in zip(runs[1:], probs[1:]):
            e0, e1 = ref["view_embedding"].flatten(), r["view_embedding"].flatten()
            acc["embedding_cosine"].append(float(torch.nn.functional.cosine_similarity(e0, e1, dim=0)))
            acc["mask_prob_mad"].append(float((p - probs[0]).abs().mean()))
            either = (p > 0.5) | fixed
            flips = ((p > 0.5) != fixed).sum()
            acc["mask_flip_fraction"].append(float(flips) / max(1, int(either.sum())))
            acc["score_mad"].append(float((r["pred_logits"].sigmoid() - ref["pred_logits"].sigmoid()).abs().mean()))
            if cass_ref is not None:
                c = cass(r)
                acc["cass_prob_mad"].append(float((c - cass_ref).abs().mean()))
                acc["cass_name_change"].append(float((c.argmax(1) != cass_ref.argmax(1)).float().mean()))
    out = {k: float(np.mean(v)) if v else float("nan") for k, v in acc.items()}
    out["n_frames"] = len(frames)
    out["n_views"] = len(views)
    return out


__all__ = ["STANDARD_VIEWS", "angle_sweep"]
