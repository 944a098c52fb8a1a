"""The ARCADE challenge F1 (MICCAI 2023) reproduced on masks, and its honest counterpart ``dice_f1``.

ARCADE: Popov et al., "Dataset for Automatic Region-based Coronary Artery Disease Diagnostics Using
X-Ray Angiography Images", Sci Data 11 (2024), doi:10.1038/s41597-023-02871-z. The official scorer is
``evaluation/evaluation_f1_score.py`` in github.com/cmctec/ARCADE; these functions follow its rules
(read there; no code taken) on masks instead of shapely polygons. They score one image; the caller
averages the image scores (mean over images that have ground truth). These are F1 scores, not AP.

Inputs per image: ground truth ``[(category_id, rle), ...]`` in annotation-file order, predictions
``[(category_id, rle), ...]`` already thresholded and ordered (first = highest score).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

from ..data.rle import RLE, f1, union

Pairs = Sequence[Tuple[int, RLE]]


def arcade_f1_segmentation(gt: Pairs, pred: Pairs) -> Tuple[Optional[float], Dict[int, float]]:
    """Official segmentation-task rule for one image; returns (image score, {category: F1}).

    - For each ground-truth category: F1 between the first ground-truth annotation of that category and
      the first prediction of that category; 0 when the category is not predicted.
    - Quirk kept from the official code: if any prediction has a category that is absent from the
      image's ground truth, every category score of the image is 0.
    - Image score = mean over the image's ground-truth categories; None when it has no ground truth
      (the official script cannot score such an image).
    """
    first_gt: "OrderedDict[int, RLE]" = OrderedDict()
    for c, m in gt:
        first_gt.setdefault(c, m)
    if not first_gt:
        return None, {}
    first_pred: Dict[int, RLE] = {}
    for c, m in pred:
        first_pred.setdefault(c, m)
    if any(c not in first_gt for c in first_pred):
        scores = {c: 0.0 for c in first_gt}
    else:
        scores = {c: (f1(m, first_pred[c]) if c in first_pred else 0.0) for c, m in first_gt.items()}
    return sum(scores.values()) / len(scores), scores


def arcade_f1_stenosis(gt: Sequence[RLE], pred: Sequence[RLE]) -> Optional[float]:
    """Official stenosis-task rule for one image (categories are not compared).

    Each prediction, in order, takes the F1 with the first ground-truth region it overlaps (F1 > 0;
    a region can be taken by several predictions); a prediction that overlaps nothing adds nothing.
    Then one 0 is added for each ground-truth region beyond the number of matched predictions. Image
    score = mean of that list; None when the image has no ground truth.
    """
    if not gt:
        return None
    scores: List[float] = []
    for p in pred:
        for g in gt:
            v = f1(p, g)
            if v > 0:
                scores.append(v)
                break
    scores.extend([0.0] * max(0, len(gt) - len(scores)))
    return sum(scores) / len(scores)


def dice_f1(gt: Pairs, pred: Pairs, height: int, width: int) -> Tuple[Optional[float], Dict[int, float]]:
    """The honest per-category F1 for one image; returns (image score, {category: F1}).

    Per category: Dice between the union of all its ground-truth annotations and the union of all its
    predictions. Categories = those in the ground truth or in the predictions, so a falsely predicted
    category costs its own 0, not the whole image. Image score = mean over those categories; None when
    the image has neither ground truth nor predictions.
    """
    by_gt: Dict[int, List[RLE]] = {}
    by_pred: Dict[int, List[RLE]] = {}
    for c, m in gt:
        by_gt.setdefault(c, []).append(m)
    for c, m in pred:
        by_pred.setdefault(c, []).append(m)
    cats = list(by_gt) + [c for c in by_pred if c not in by_gt]
    if not cats:
        return None, {}
    scores = {}
    for c in cats:
        if c not in by_gt or c not in by_pred:
            scores[c] = 0.0
        else:
            scores[c] = f1(union(by_gt[c], height, width), union(by_pred[c], height, width))
    return sum(scores.values()) / len(scores), scores
