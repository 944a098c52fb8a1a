"""Stenosis detections placed on the coronary tree: with a phase 3 (stenosis) model and a phase 2 (CASS)
model, each stenosis gets the CASS segment it lies in - the predicted segment of its frame whose mask
overlaps the stenosis region most.

    stenoses = stenosis_predictor.predict(frames, angles, ids)       # [[{"segmentation", "bbox", ...}]]
    segments = cass_predictor.predict(frames, angles, ids)
    attached = [attach_cass_segments(s, c) for s, c in zip(stenoses, segments)]

Each stenosis gains ``cass_segment`` (the CASS number, None when no segment at or above ``score_thr``
touches it), ``cass_segment_name`` ("mid LAD"), ``cass_segment_overlap`` (fraction of the stenosis
region inside that segment, 0..1) and ``cass_segment_score`` (that segment's score).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
from pycocotools import mask as mask_utils

from sam3_angio.cass import CASS_BY_ID

ATTACH_KEYS = ("cass_segment", "cass_segment_name", "cass_segment_overlap", "cass_segment_score")


def _region(inst: dict, shape: Optional[Tuple[int, int]]) -> Optional[np.ndarray]:
    """An instance's mask (H, W) bool: its RLE, else (no mask, or a mask left empty by the mask
    threshold - the detection still stands) its box [x, y, w, h] filled (needs ``shape``)."""
    seg = inst.get("segmentation")
    if isinstance(seg, dict) and "counts" in seg:
        rle = dict(seg)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode("ascii")
        m = mask_utils.decode(rle).astype(bool)
        if m.any() or inst.get("bbox") is None:
            return m
        shape = shape or m.shape
    box = inst.get("bbox")
    if box is None or shape is None:
        return None
    m = np.zeros(shape, bool)
    x, y, w, h = box
    m[max(0, int(np.floor(y))):max(0, int(np.ceil(y + h))), max(0, int(np.floor(x))):max(0, int(np.ceil(x + w)))] = True
    return m


def attach_cass_segments(stenoses: Sequence[dict], segments: Sequence[dict], score_thr: float = 0.5) -> List[dict]:
    """Copies of ``stenoses`` (one frame's) with the CASS segment of largest overlap among ``segments``
    (the same frame's CASS instances) scoring at least ``score_thr`` (module docstring)."""
    usable = []
    for seg in segments:
        if seg.get("score", 0.0) < score_thr or int(seg["category_id"]) not in CASS_BY_ID:
            continue
        m = _region(seg, None)
        if m is not None and m.any():
            usable.append((seg, m))
    shape = usable[0][1].shape if usable else None
    out = []
    for st in stenoses:
        rec = dict(st)
        rec.update({"cass_segment": None, "cass_segment_name": None, "cass_segment_overlap": 0.0,
                    "cass_segment_score": None})
        region = _region(st, shape)
        if region is not None and region.any() and usable:
            overlaps = [int(np.logical_and(region, m).sum()) if m.shape == region.shape else 0 for _, m in usable]
            best = int(np.argmax(overlaps))
            if overlaps[best] > 0:
                seg = usable[best][0]
                cid = int(seg["category_id"])
                rec.update({"cass_segment": cid, "cass_segment_name": CASS_BY_ID[cid].name,
                            "cass_segment_overlap": round(overlaps[best] / float(region.sum()), 4),
                            "cass_segment_score": round(float(seg["score"]), 4)})
        out.append(rec)
    return out


def predict_attached(stenosis_predictor, cass_predictor, frames, angles=None, image_ids=None,
                     score_thr: float = 0.5) -> List[List[dict]]:
    """Stenoses of each frame (``stenosis_predictor``, a phase 3 run) with the CASS segment they lie in
    (``cass_predictor``, a phase 2 run, on the same frames and angles)."""
    check_pair(stenosis_predictor, cass_predictor)
    stenoses = stenosis_predictor.predict(frames, angles, image_ids)
    segments = cass_predictor.predict(frames, angles, image_ids)
    return [attach_cass_segments(s, c, score_thr) for s, c in zip(stenoses, segments)]


def check_pair(stenosis_predictor, cass_predictor) -> None:
    """The first predictor must be a stenosis run, the second a CASS run (else a ConfigError)."""
    from sam3_angio.errors import ConfigError

    if stenosis_predictor.info.task != "stenosis":
        raise ConfigError(f"--cass-checkpoint attaches CASS segments to stenoses: --checkpoint must be a stenosis "
                          f"(phase 3) run, it is a {stenosis_predictor.info.task!r} run")
    if cass_predictor.info.task != "cass":
        raise ConfigError(f"--cass-checkpoint must be a CASS (phase 2) run, it is a {cass_predictor.info.task!r} run "
                          f"({cass_predictor.info.checkpoint})")
