"""Pixel metrics of predicted masks: full-tree Dice/IoU, the ARCADE challenge F1, and ``dice_f1``.

Only predictions with ``score >= score_thr`` count here (COCO AP uses every score). Work is done on RLE
with pycocotools' C routines; per-image values are kept for ``per_image.csv``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Mapping, Optional, Sequence

from pycocotools import mask as mask_util

from .arcade_f1 import arcade_f1_segmentation, arcade_f1_stenosis, dice_f1
from .evaluator import DatasetEvaluator, Metrics
from .ground_truth import GroundTruth
from ..data.rle import dice_iou, union
from .vesselness import cldice

ARCADE_TASKS = ("segmentation", "stenosis")


def detect_arcade_task(gt: GroundTruth) -> str:
    """'stenosis' when every annotated category is named "stenosis" (ARCADE's stenosis set), else
    'segmentation'."""
    used = {a["category_id"] for a in gt.coco.dataset["annotations"]}
    if used and all(gt.cat_names[c].strip().lower() == "stenosis" for c in used):
        return "stenosis"
    return "segmentation"


def _mean(xs: Sequence[float]) -> Optional[float]:
    return sum(xs) / len(xs) if xs else None


class MaskMetricsEvaluator(DatasetEvaluator):
    """``dice``/``iou`` of the full tree (union of every mask of an image, any category), ``arcade_f1``
    (official challenge rules, see ``arcade_f1.py``) and ``dice_f1`` (per-category Dice of unions).

    Per image: full tree = union of all ground-truth masks vs union of all predictions above the
    threshold; Dice and IoU are 1 when both are empty. Means are over all ground-truth images for
    ``dice``/``iou``, over images with ground truth for ``arcade_f1``, and over images with ground truth
    or predictions for ``dice_f1``.
    """

    def __init__(self, gt: GroundTruth, score_thr: float = 0.5, arcade_task: str = "auto") -> None:
        self.gt = gt
        self.score_thr = float(score_thr)
        self.arcade_task = detect_arcade_task(gt) if arcade_task == "auto" else arcade_task
        if self.arcade_task not in ARCADE_TASKS:
            raise ValueError(f"arcade_task must be 'auto' or one of {ARCADE_TASKS}, found {arcade_task!r}")
        self.reset()

    def reset(self) -> None:
        self.rows: List[dict] = []
        self._per_class: Dict[int, List[float]] = defaultdict(list)

    def process(self, inputs: Sequence[Mapping], outputs: Sequence[Mapping]) -> None:
        self.gt.prepare_masks()
        for inp, out in zip(inputs, outputs):
            image_id = inp["image_id"]
            h, w = self.gt.hw(image_id)
            gt_pairs = [(a["category_id"], self.gt.rle(a)) for a in self.gt.annotations(image_id)]
            preds = [r for r in out.get("instances", ()) if "segmentation" in r and r["score"] >= self.score_thr]
            preds.sort(key=lambda r: -r["score"])  # stable: ties keep file order
            pred_pairs = [(r["category_id"], r["segmentation"]) for r in preds]

            tree_gt = union([m for _, m in gt_pairs], h, w)
            tree_pred = union([m for _, m in pred_pairs], h, w)
            d, j = dice_iou(tree_gt, tree_pred)
            cl = cldice(mask_util.decode(tree_gt), mask_util.decode(tree_pred))
            if self.arcade_task == "segmentation":
                a_f1, a_per = arcade_f1_segmentation(gt_pairs, pred_pairs)
                zeroed = a_f1 is not None and bool(pred_pairs) and any(c not in a_per for c, _ in pred_pairs)
            else:
                a_f1 = arcade_f1_stenosis([m for _, m in gt_pairs], [m for _, m in pred_pairs])
                zeroed = False
            df1, df1_per = dice_f1(gt_pairs, pred_pairs, h, w)
            for c, v in df1_per.items():
                self._per_class[c].append(v)
            self.rows.append(
                {
                    "image_id": image_id,
                    "file_name": self.gt.images[image_id].get("file_name", ""),
                    "n_gt": len(gt_pairs),
                    "n_pred_above_thr": len(pred_pairs),
                    "dice": d,
                    "iou": j,
                    "cldice": cl,
                    "arcade_f1": a_f1,
                    "arcade_zeroed_by_quirk": int(zeroed),
                    "dice_f1": df1,
                }
            )

    def evaluate(self) -> Metrics:
        rows = self.rows
        arc = [r["arcade_f1"] for r in rows if r["arcade_f1"] is not None]
        df1 = [r["dice_f1"] for r in rows if r["dice_f1"] is not None]
        out: Metrics = {
            "dice": _mean([r["dice"] for r in rows]),
            "iou": _mean([r["iou"] for r in rows]),
            "cldice": _mean([r["cldice"] for r in rows]),
            "arcade_f1": _mean(arc),
            "dice_f1": _mean(df1),
            "pixel.score_thr": self.score_thr,
            "pixel.n_images": len(rows),
            "pixel.n_images_both_empty": sum(1 for r in rows if r["n_gt"] == 0 and r["n_pred_above_thr"] == 0),
            "pixel.n_pred_above_thr": sum(r["n_pred_above_thr"] for r in rows),
            "arcade.task": self.arcade_task,
            "arcade.n_images": len(arc),
            "arcade.n_images_without_gt": sum(1 for r in rows if r["arcade_f1"] is None),
            "arcade.n_images_zeroed_by_quirk": sum(r["arcade_zeroed_by_quirk"] for r in rows),
            "dice_f1.n_images": len(df1),
        }
        for cid in self.gt.cat_ids:
            out[f"per_class.{self.gt.cat_keys[cid]}.dice_f1"] = _mean(self._per_class.get(cid, []))
        return out
