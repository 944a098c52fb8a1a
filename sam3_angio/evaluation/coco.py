"""COCO AP/AR for bbox and segm, overall and per category, computed by pycocotools' COCOeval.

No re-implementation of AP: overall numbers are ``COCOeval.stats``; per-category numbers are read from
``COCOeval.eval['precision'|'recall']`` with the same slicing and mean as ``COCOeval.summarize``,
restricted to one category index - equal to a COCOeval run with ``params.catIds = [that id]``.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .evaluator import DatasetEvaluator, Metrics
from .ground_truth import GroundTruth
from .keys import COCO_STATS, PER_CLASS_STATS

IOU_TYPES = ("bbox", "segm")

# COCOeval.stats order (summarize, default params: maxDets [1, 10, 100], areas all/small/medium/large).
STAT_NAMES = COCO_STATS
# (is AP, IoU threshold or None for .50:.95, area range label, max detections): summarize's arguments.
_STAT_ARGS = {
    "AP": (True, None, "all", 100),
    "AP50": (True, 0.5, "all", 100),
    "AP75": (True, 0.75, "all", 100),
    "APs": (True, None, "small", 100),
    "APm": (True, None, "medium", 100),
    "APl": (True, None, "large", 100),
    "AR1": (False, None, "all", 1),
    "AR10": (False, None, "all", 10),
    "AR100": (False, None, "all", 100),
    "ARs": (False, None, "small", 100),
    "ARm": (False, None, "medium", 100),
    "ARl": (False, None, "large", 100),
}


def _undefined_to_none(v: float) -> Optional[float]:
    """COCOeval writes -1 where a number is undefined (no ground truth of that kind): we write null."""
    v = float(v)
    return None if v == -1.0 else v


def summarize_stat(coco_eval: COCOeval, stat: str, cat_index: Optional[int] = None) -> float:
    """One summary number, as ``COCOeval.summarize`` computes it, for all categories or for one
    category index ``k`` (the position of its id in ``coco_eval.params.catIds``). -1 = undefined."""
    is_ap, iou_thr, area_lbl, max_dets = _STAT_ARGS[stat]
    p = coco_eval.params
    aind = [i for i, a in enumerate(p.areaRngLbl) if a == area_lbl]
    mind = [i for i, m in enumerate(p.maxDets) if m == max_dets]
    if is_ap:
        s = coco_eval.eval["precision"]  # (T, R, K, A, M)
        if iou_thr is not None:
            s = s[np.where(iou_thr == p.iouThrs)[0]]
        s = s[:, :, :, aind, mind] if cat_index is None else s[:, :, cat_index : cat_index + 1, aind, mind]
    else:
        s = coco_eval.eval["recall"]  # (T, K, A, M)
        if iou_thr is not None:
            s = s[np.where(iou_thr == p.iouThrs)[0]]
        s = s[:, :, aind, mind] if cat_index is None else s[:, cat_index : cat_index + 1, aind, mind]
    valid = s[s > -1]
    return -1.0 if len(valid) == 0 else float(np.mean(valid))


def run_cocoeval(gt: COCO, results: List[dict], iou_type: str, cat_ids: Optional[Sequence[int]] = None) -> COCOeval:
    """evaluate + accumulate + summarize, with pycocotools' printing kept off the console."""
    with contextlib.redirect_stdout(io.StringIO()):
        if results:
            dt = gt.loadRes(results)
        else:  # loadRes cannot take an empty list; an empty result set evaluates to AP 0
            dt = COCO()
            dt.dataset = {"images": list(gt.dataset["images"]), "categories": list(gt.dataset["categories"]), "annotations": []}
            dt.createIndex()
        ev = COCOeval(gt, dt, iou_type)
        if cat_ids is not None:
            ev.params.catIds = list(cat_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


class CocoEvaluator(DatasetEvaluator):
    """COCO AP/AR (``bbox.*``, ``segm.*``) and per category (``per_class.<name>.<type>.*``).

    After ``evaluate``, ``self.curves[iou_type]`` holds what the report plots: ``precision``
    (T, R, K) at area 'all' and 100 detections, ``rec_thrs`` (R,), ``iou_thrs`` (T,), ``cat_ids`` (K,).
    """

    def __init__(self, gt: GroundTruth, iou_types: Sequence[str] = IOU_TYPES, per_class: bool = True) -> None:
        for t in iou_types:
            if t not in IOU_TYPES:
                raise ValueError(f"unknown iou type {t!r}: expected one of {IOU_TYPES}")
        self.gt = gt
        self.iou_types = tuple(iou_types)
        self.per_class = per_class
        self.curves: Dict[str, dict] = {}
        self.reset()

    def reset(self) -> None:
        self._results: Dict[str, List[dict]] = {t: [] for t in self.iou_types}
        self.curves = {}

    def process(self, inputs: Sequence[Mapping], outputs: Sequence[Mapping]) -> None:
        for out in outputs:
            for r in out.get("instances", ()):
                for t in self.iou_types:
                    key = "bbox" if t == "bbox" else "segmentation"
                    if key in r:
                        self._results[t].append(
                            {"image_id": r["image_id"], "category_id": r["category_id"], "score": r["score"], key: r[key]}
                        )

    def evaluate(self) -> Metrics:
        out: Metrics = {}
        n_gt = Counter(a["category_id"] for a in self.gt.coco.dataset["annotations"] if not a.get("iscrowd", 0))
        for t in self.iou_types:
            if t == "segm":
                self.gt.prepare_masks()
            results = self._results[t]
            ev = run_cocoeval(self.gt.coco, results, t)
            for name, v in zip(STAT_NAMES, ev.stats):
                out[f"{t}.{name}"] = _undefined_to_none(v)
            out[f"{t}.n_pred"] = len(results)
            cat_ids = list(ev.params.catIds)
            self.curves[t] = {
                "precision": ev.eval["precision"][:, :, :, 0, -1].copy(),
                "rec_thrs": np.asarray(ev.params.recThrs).copy(),
                "iou_thrs": np.asarray(ev.params.iouThrs).copy(),
                "cat_ids": cat_ids,
            }
            if self.per_class:
                n_pred = Counter(r["category_id"] for r in results)
                for k, cid in enumerate(cat_ids):
                    base = f"per_class.{self.gt.cat_keys[cid]}"
                    for name in PER_CLASS_STATS:
                        out[f"{base}.{t}.{name}"] = _undefined_to_none(summarize_stat(ev, name, k))
                    out[f"{base}.{t}.n_pred"] = n_pred.get(cid, 0)
        if self.per_class:
            for cid in self.gt.cat_ids:
                base = f"per_class.{self.gt.cat_keys[cid]}"
                out[f"{base}.category_id"] = cid
                out[f"{base}.name"] = self.gt.cat_names[cid]
                out[f"{base}.n_gt"] = n_gt.get(cid, 0)
        return out
