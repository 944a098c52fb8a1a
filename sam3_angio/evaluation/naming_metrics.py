"""End-to-end naming of segments: is each ground-truth segment found, and found under its own name?

For every ground-truth segment (non-crowd annotation) of an image, the predicted instance above the
score threshold with the highest mask IoU is its match when that IoU is >= 0.5 (whatever the instance is
called). ``cass.naming_top1`` = segments whose match carries the segment's category / all segments (an
unmatched segment counts as wrong); ``cass.naming_match_rate`` = matched / all;
``cass.naming_top1_matched`` = right names / matched segments. This is what a user gets from a frame;
``cass_head.top1_gt_regions`` (the head given the true region) is an upper bound of the naming part.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Mapping, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from .evaluator import DatasetEvaluator, Metrics
from .ground_truth import GroundTruth

MATCH_IOU = 0.5


class NamingEvaluator(DatasetEvaluator):
    """``cass.naming_*`` and ``per_class.<name>.naming_recall`` from instances with masks."""

    def __init__(self, gt: GroundTruth, score_thr: float = 0.5, match_iou: float = MATCH_IOU) -> None:
        self.gt = gt
        self.score_thr = float(score_thr)
        self.match_iou = float(match_iou)
        self.reset()

    def reset(self) -> None:
        self.n = self.matched = self.correct = 0
        self.per_class: Dict[int, List[int]] = defaultdict(lambda: [0, 0])  # category -> [correct, total]

    def process(self, inputs: Sequence[Mapping], outputs: Sequence[Mapping]) -> None:
        self.gt.prepare_masks()
        for inp, out in zip(inputs, outputs):
            anns = self.gt.annotations(inp["image_id"])
            if not anns:
                continue
            preds = [r for r in out.get("instances", ()) if r["score"] >= self.score_thr and "segmentation" in r]
            ious = (mask_utils.iou([r["segmentation"] for r in preds], [self.gt.rle(a) for a in anns],
                                   [0] * len(anns)) if preds else np.zeros((0, len(anns))))
            ious = np.asarray(ious).reshape(len(preds), len(anns))
            for j, a in enumerate(anns):
                self.n += 1
                cls = self.per_class[a["category_id"]]
                cls[1] += 1
                if not preds:
                    continue
                best = int(np.argmax(ious[:, j]))
                if ious[best, j] >= self.match_iou:
                    self.matched += 1
                    if preds[best]["category_id"] == a["category_id"]:
                        self.correct += 1
                        cls[0] += 1

    def evaluate(self) -> Metrics:
        out: Metrics = {
            "cass.naming_top1": self.correct / self.n if self.n else None,
            "cass.naming_top1_matched": self.correct / self.matched if self.matched else None,
            "cass.naming_match_rate": self.matched / self.n if self.n else None,
            "cass.naming_n_segments": self.n,
        }
        for cid in self.gt.cat_ids:
            right, total = self.per_class.get(cid, (0, 0))
            out[f"per_class.{self.gt.cat_keys[cid]}.naming_recall"] = right / total if total else None
        return out
