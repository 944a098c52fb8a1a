"""Prediction files from any model, read and checked against the ground truth before evaluation.

Input: a COCO results list ``[{"image_id", "category_id", "score", "bbox": [x, y, w, h]?,
"segmentation": RLE or polygons?}, ...]`` (what ``COCO.loadRes`` takes; SAM3's PredictionDumper writes
it), or a COCO dataset dict whose ``annotations`` are the predictions (the ARCADE challenge's
submission format; images matched by ``file_name``). Every record that cannot be used is counted under
a stable reason (``ignored.<reason>`` in metrics.json) and reported; nothing is dropped silently.
"""

from __future__ import annotations

import math
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

from .errors import EvaluationInputError
from .ground_truth import GroundTruth, read_json
from ..data.rle import GeometryError, to_rle

# Record-level reasons drop the whole prediction; geometry-level reasons drop only that geometry
# (a prediction with a good box and a broken mask still counts for bbox AP).
RECORD_REASONS = (
    "malformed_record",  # not an object, or no image_id / category_id
    "unknown_image_id",  # image_id not in the ground truth
    "unknown_category_id",  # category_id not in the ground truth's categories
    "missing_score",  # no 'score' key
    "bad_score",  # score is not a number
    "nonfinite_score",  # NaN or +-inf
    "no_geometry",  # neither 'bbox' nor 'segmentation'
)
GEOMETRY_REASONS = (
    "bad_bbox",  # not 4 finite numbers, or negative width/height
    "malformed_rle",  # RLE that does not decode to exactly h*w pixels, bad characters, bad size
    "rle_size_mismatch",  # RLE size differs from the image's (height, width)
    "malformed_polygon",  # not >= 3 finite (x, y) number pairs, or far outside the image (data/polygons.py)
)
IGNORE_REASONS = RECORD_REASONS + GEOMETRY_REASONS

_HINTS = {
    "unknown_image_id": "prediction image ids must be the ground truth's image ids (or its file names)",
    "unknown_category_id": "prediction category ids must be the ground truth's category ids",
    "rle_size_mismatch": "masks must be at the original image size (height, width) of the ground truth",
}


@dataclass
class PredictionSet:
    """Validated predictions.

    ``records``: file order kept (COCOeval breaks score ties by order); each has ``image_id``,
    ``category_id``, ``score`` (float) and, when valid, ``bbox`` ([x, y, w, h] floats) and/or
    ``segmentation`` (compressed RLE at the image size).
    """

    records: List[dict]
    n_input: int
    ignored: Counter = field(default_factory=Counter)
    examples: Dict[str, str] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)
    source_format: str = "results"
    path: Optional[str] = None
    n_remapped_file_name: int = 0

    def has(self, iou_type: str) -> bool:
        key = _GEOM_KEY[iou_type]
        return any(key in r for r in self.records)

    def for_iou_type(self, iou_type: str) -> List[dict]:
        """Fresh result dicts carrying only the geometry of ``iou_type`` (what ``loadRes`` gets).

        For segm the box is left out, so loadRes takes each area from the mask (detectron2 does the
        same); for bbox the mask is left out.
        """
        key = _GEOM_KEY[iou_type]
        return [
            {"image_id": r["image_id"], "category_id": r["category_id"], "score": r["score"], key: r[key]}
            for r in self.records
            if key in r
        ]

    def by_image(self) -> Dict[int, List[dict]]:
        out: Dict[int, List[dict]] = defaultdict(list)
        for r in self.records:
            out[r["image_id"]].append(r)
        return out

    def summary_lines(self) -> List[str]:
        lines = []
        for reason in IGNORE_REASONS:
            n = self.ignored.get(reason, 0)
            if n:
                ex = self.examples.get(reason, "")
                lines.append(f"ignored {n} x {reason}" + (f" (e.g. {ex})" if ex else ""))
        return lines


_GEOM_KEY = {"bbox": "bbox", "segm": "segmentation"}


def _as_id(v: Any) -> Any:
    """JSON writers sometimes emit ids as 3.0: the same id as 3."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def load_predictions(
    source: Union[str, "os.PathLike[str]", Sequence[dict], Dict[str, Any]],
    gt: GroundTruth,
    *,
    strict: bool = False,
    allow_empty: bool = False,
) -> PredictionSet:
    """Read and validate predictions against ``gt``.

    Raises ``EvaluationInputError`` when the file is unusable: not JSON, not a list of results, empty
    (unless ``allow_empty``), every record ignored, or - with ``strict`` - any record ignored.
    """
    path = None
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        data = read_json(path, "prediction")
    else:
        data = source
    where = path or "predictions"
    fmt = "results"
    warnings: List[str] = []
    file_name_by_pred_image: Dict[Any, str] = {}
    if isinstance(data, dict):
        if "annotations" not in data:
            raise EvaluationInputError(
                f"{where}: expected a COCO results list [{{image_id, category_id, score, bbox|segmentation}}, ...] "
                f"or a COCO dataset with 'annotations'; found an object with keys {sorted(data)[:8]}"
            )
        fmt = "coco_dataset"
        for im in data.get("images", []) or []:
            if isinstance(im, dict) and "id" in im and im.get("file_name"):
                file_name_by_pred_image[im["id"]] = str(im["file_name"])
        data = data["annotations"]
    if not isinstance(data, list):
        raise EvaluationInputError(
            f"{where}: expected a JSON list of predictions, found a JSON {type(data).__name__}"
        )
    if not data:
        msg = (
            f"{where} holds no predictions (an empty list). A model that predicts nothing scores AP 0; "
            "that is recorded only when asked for explicitly (allow_empty=True / --allow-empty)."
        )
        if not allow_empty:
            raise EvaluationInputError(msg)
        warnings.append(f"{where} holds no predictions (an empty list): every AP is 0 because nothing was predicted")
        return PredictionSet([], 0, warnings=warnings, source_format=fmt, path=path)

    ignored: Counter = Counter()
    examples: Dict[str, str] = {}
    records: List[dict] = []
    n_remapped = 0
    n_default_score = 0

    def skip(reason: str, i: int, detail: str) -> None:
        ignored[reason] += 1
        examples.setdefault(reason, f"record {i}: {detail}")

    for i, p in enumerate(data):
        if not isinstance(p, dict) or "image_id" not in p or "category_id" not in p:
            skip("malformed_record", i, "needs image_id and category_id" if isinstance(p, dict) else f"not an object ({type(p).__name__})")
            continue
        img, cat = _as_id(p["image_id"]), _as_id(p["category_id"])
        if isinstance(img, (list, dict, bool)):
            skip("unknown_image_id", i, f"image_id {img!r}")
            continue
        if fmt == "coco_dataset" and file_name_by_pred_image:
            fn = file_name_by_pred_image.get(img)
            mapped = gt.file_name_to_id.get(fn) if fn is not None else None
            if mapped is None and fn is not None:
                mapped = gt.file_name_to_id.get(os.path.basename(fn))
            if mapped is not None:
                if mapped != img:
                    n_remapped += 1
                img = mapped
        elif img not in gt.images and isinstance(img, str):
            mapped = gt.file_name_to_id.get(img)
            if mapped is None:
                mapped = gt.file_name_to_id.get(os.path.basename(img))
            if mapped is not None:
                img, n_remapped = mapped, n_remapped + 1
        if img not in gt.images:
            skip("unknown_image_id", i, f"image_id {p['image_id']!r}")
            continue
        if isinstance(cat, (list, dict, bool)) or cat not in gt.cat_names:
            skip("unknown_category_id", i, f"category_id {cat!r}")
            continue
        if "score" not in p:
            if fmt == "coco_dataset":
                score = 1.0
                n_default_score += 1
            else:
                skip("missing_score", i, "no 'score'")
                continue
        else:
            score = p["score"]
            if not _num(score):
                skip("bad_score", i, f"score {score!r}")
                continue
            if not math.isfinite(score):
                skip("nonfinite_score", i, f"score {score!r}")
                continue
        rec = {"image_id": img, "category_id": cat, "score": float(score)}
        has_geom = False
        if "bbox" in p and p["bbox"] is not None and p["bbox"] != []:
            has_geom = True
            b = p["bbox"]
            if (
                isinstance(b, (list, tuple))
                and len(b) == 4
                and all(_num(v) and math.isfinite(v) for v in b)
                and b[2] >= 0
                and b[3] >= 0
            ):
                rec["bbox"] = [float(v) for v in b]
            else:
                skip("bad_bbox", i, f"bbox {b!r}")
        if "segmentation" in p and p["segmentation"] is not None and p["segmentation"] != []:
            has_geom = True
            h, w = gt.hw(img)
            try:
                rec["segmentation"] = to_rle(p["segmentation"], h, w)
            except GeometryError as e:
                skip(e.reason, i, f"image {img}: {e}")
        if not has_geom:
            skip("no_geometry", i, "neither 'bbox' nor 'segmentation'")
            continue
        if "bbox" in rec or "segmentation" in rec:
            records.append(rec)

    ps = PredictionSet(records, len(data), ignored, examples, warnings, fmt, path, n_remapped)
    if n_default_score:
        warnings.append(
            f"{n_default_score} predictions carry no score (COCO dataset format): scored 1.0, so AP ranks "
            "them in file order and the ARCADE F1 takes the first prediction in file order"
        )
    if n_remapped:
        warnings.append(f"{n_remapped} prediction image ids were matched to the ground truth by file name")
    lines = ps.summary_lines()
    if lines:
        n_dropped = len(data) - len(records)
        hints = sorted({_HINTS[r] for r in ignored if r in _HINTS}) + _id_hints(data, gt, ignored)
        head = f"{where}: {sum(ignored.values())} problems in {len(data)} predictions ({n_dropped} dropped entirely)"
        warnings.append("; ".join([head] + lines + hints))
    if not records:
        raise EvaluationInputError(
            f"{where}: none of its {len(data)} predictions can be evaluated: "
            + "; ".join(lines + _id_hints(data, gt, ignored))
        )
    if strict and ignored:
        raise EvaluationInputError(f"{where} (strict mode): " + "; ".join(lines))
    return ps


def _id_hints(data: list, gt: GroundTruth, ignored: Counter) -> List[str]:
    """Spot the usual systematic mistakes (0-based ids, contiguous category indices)."""
    hints = []
    if ignored.get("unknown_image_id"):
        pred_ids = {p.get("image_id") for p in data if isinstance(p, dict)}
        ints = sorted(i for i in pred_ids if isinstance(i, int))
        gt_ints = sorted(i for i in gt.images if isinstance(i, int))
        if ints and gt_ints:
            hint = f"prediction image ids run {ints[0]}..{ints[-1]}, the ground truth's {gt_ints[0]}..{gt_ints[-1]}"
            if all((i + 1) in gt.images for i in ints):
                hint += " (ids look 0-based: add 1)"
            hints.append(hint)
        hints.append(
            "are these predictions for another split? (SAM3's postprocessor needs use_original_ids: true)"
        )
    if ignored.get("unknown_category_id"):
        cats = sorted({p.get("category_id") for p in data if isinstance(p, dict) and _num(p.get("category_id"))})
        hints.append(f"prediction category ids {cats[:10]}, ground-truth ids {gt.cat_ids[:10]}")
    return hints
