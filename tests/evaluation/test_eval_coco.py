"""COCO AP through evaluate_files equals pycocotools' COCOeval called directly, overall and per class."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pycocotools.mask as mask_utils
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from sam3_angio.evaluation import evaluate_files
from sam3_angio.evaluation.coco import PER_CLASS_STATS, STAT_NAMES
from sam3_angio.evaluation.perturb import gt_as_predictions
from sam3_angio.evaluation.synthetic import jittered_predictions, synthetic_coco

from conftest import ARCADE
PER_CLASS_INDEX = {"AP": 0, "AP50": 1, "AP75": 2, "AR100": 8}


def _dump(path: Path, obj) -> str:
    path.write_text(json.dumps(obj))
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("coco")
    gt = synthetic_coco(40, cat_ids=(1, 2, 5, 7), size=64, seed=1, p_present=0.8)
    gt["categories"].append({"id": 9, "name": "never annotated"})
    preds = jittered_predictions(gt, seed=2, n_fp=2)
    # Ties in score exercise COCOeval's order-dependent tie breaking.
    for p in preds[::7]:
        p["score"] = 0.5
    segm = [{k: v for k, v in p.items() if k != "bbox"} for p in preds]
    bbox = [{k: v for k, v in p.items() if k != "segmentation"} for p in preds]
    return {
        "gt": _dump(d / "gt.json", gt),
        "segm": _dump(d / "segm.json", segm),
        "bbox": _dump(d / "bbox.json", bbox),
        "both": _dump(d / "both.json", preds),
        "gt_dict": gt,
        "preds": preds,
    }


def direct_cocoeval(gt_path: str, pred_path: str, iou_type: str, cat_ids=None):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_path)
        ev = COCOeval(gt, gt.loadRes(pred_path), iou_type)
        if cat_ids is not None:
            ev.params.catIds = list(cat_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


def ours(value):
    return -1.0 if value is None else value


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_all_twelve_stats_equal_direct_cocoeval_to_the_last_digit(files, iou_type):
    m = evaluate_files(files["gt"], files[iou_type], iou_types=(iou_type,))
    ref = direct_cocoeval(files["gt"], files[iou_type], iou_type)
    assert [ours(m[f"{iou_type}.{s}"]) for s in STAT_NAMES] == ref
    assert 0.2 < m[f"{iou_type}.AP"] < 0.95  # a real, imperfect result, not a degenerate 0 or 1


def test_file_with_boxes_and_masks_gives_direct_cocoeval_numbers_for_both_types(files):
    # loadRes takes a box-carrying file through its bbox branch (box areas); area 'all' numbers agree.
    m = evaluate_files(files["gt"], files["both"])
    for t in ("bbox", "segm"):
        ref = direct_cocoeval(files["gt"], files["both"], t)
        for s in ("AP", "AP50", "AP75", "AR1", "AR10", "AR100"):
            assert m[f"{t}.{s}"] == ref[STAT_NAMES.index(s)], (t, s)


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_per_class_numbers_equal_cocoeval_restricted_to_that_class(files, iou_type):
    m = evaluate_files(files["gt"], files["both"], iou_types=(iou_type,))
    pred_file = files[iou_type]
    m_single = evaluate_files(files["gt"], pred_file, iou_types=(iou_type,))
    names = {c["id"]: c["name"] for c in files["gt_dict"]["categories"]}
    for cid, name in names.items():
        ref = direct_cocoeval(files["gt"], pred_file, iou_type, cat_ids=[cid])
        for s in PER_CLASS_STATS:
            assert ours(m_single[f"per_class.{name}.{iou_type}.{s}"]) == ref[PER_CLASS_INDEX[s]], (name, s)
        if iou_type == "segm":
            assert m[f"per_class.{name}.segm.AP"] == m_single[f"per_class.{name}.segm.AP"]
    assert m_single["per_class.never annotated.segm.AP" if iou_type == "segm" else "per_class.never annotated.bbox.AP"] is None
    assert m_single["per_class.class 5.n_gt"] == sum(1 for a in files["gt_dict"]["annotations"] if a["category_id"] == 5)


def test_ground_truth_as_predictions_gives_ap_1(files):
    m = evaluate_files(files["gt"], gt_as_predictions(files["gt"]))
    for t in ("bbox", "segm"):
        assert m[f"{t}.AP"] == 1.0 and m[f"{t}.AP50"] == 1.0 and m[f"{t}.AR100"] == 1.0
    assert m["per_class.class 1.segm.AP"] == 1.0
    assert m["dice"] == 1.0 and m["arcade_f1"] == 1.0 and m["dice_f1"] == 1.0


def test_polygon_predictions_score_exactly_as_the_same_masks_in_rle(files, tmp_path):
    gt = files["gt_dict"]
    polys, rles = [], []
    for i, a in enumerate(gt["annotations"]):
        poly = [[v + (0.7 if j % 2 else -0.4) for j, v in enumerate(a["segmentation"][0])]]
        rle = mask_utils.merge(mask_utils.frPyObjects(poly, 64, 64))
        base = {"image_id": a["image_id"], "category_id": a["category_id"], "score": 1.0 - i / 1000}
        polys.append({**base, "segmentation": poly})
        rles.append({**base, "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    m_poly = evaluate_files(files["gt"], polys, iou_types=("segm",))
    m_rle = evaluate_files(files["gt"], rles, iou_types=("segm",))
    ref = direct_cocoeval(files["gt"], _dump(tmp_path / "rle.json", rles), "segm")
    assert [ours(m_poly[f"segm.{s}"]) for s in STAT_NAMES] == ref
    assert m_poly["segm.AP"] == m_rle["segm.AP"] and m_poly["dice"] == m_rle["dice"]


@pytest.mark.skipif(not ARCADE.is_dir(), reason=f"ARCADE validation data not at {ARCADE}")
def test_arcade_syntax_ground_truth_as_predictions_scores_1_everywhere():
    gt = str(ARCADE / "syntax_val" / "annotations.json")
    m = evaluate_files(gt, gt_as_predictions(gt))
    assert m["segm.AP"] == 1.0 and m["bbox.AP"] == 1.0
    assert m["arcade_f1"] == 1.0 and m["dice_f1"] == 1.0 and m["dice"] == 1.0 and m["iou"] == 1.0
    assert m["arcade.n_images"] == 200 and m["arcade.task"] == "segmentation"
    assert m["per_class.5.segm.AP"] == 1.0 and m["per_class.stenosis.segm.AP"] is None
    assert m["cass.top1"] is None and "several" in m["cass.skipped"]


def test_per_class_table_prints_the_category_names_of_the_file_not_metric_keys(tmp_path):
    from sam3_angio.evaluation.keys import format_summary
    gt = synthetic_coco(n_images=3, seed=0)
    gt["categories"][0]["name"] = "mid/distal LCX"
    gt_path = _dump(tmp_path / "gt.json", gt)
    m = evaluate_files(gt_path, gt_as_predictions(gt_path))
    cid = gt["categories"][0]["id"]
    assert m["per_class.mid_distal LCX.category_id"] == cid and m["per_class.mid_distal LCX.name"] == "mid/distal LCX"
    table = format_summary(m)
    assert "mid/distal LCX" in table and "mid_distal LCX" not in table


def test_nested_view_holds_every_metric_of_a_real_evaluation(files):
    """docs/evaluation.md's ``nested(m)["segm"]["AP"]`` on what evaluate_files returns: a key that is
    both a number and a group (``dice_f1`` and ``dice_f1.n_images``) keeps its number under "value"."""
    from sam3_angio.evaluation import nested

    m = evaluate_files(files["gt"], files["both"], report=False)
    n = nested(m)
    assert n["segm"]["AP"] == m["segm.AP"]
    assert n["dice_f1"] == {"value": m["dice_f1"], "n_images": m["dice_f1.n_images"]}
    for key, value in m.items():
        node = n
        for part in key.split("."):
            node = node[part]
        assert (node["value"] if isinstance(node, dict) and "value" in node else node) == value
