"""Unusable predictions or ground truth: a clear error, or a count of what was ignored and why."""

from __future__ import annotations

import json

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from sam3_angio.evaluation import EvaluationInputError, evaluate_files
from sam3_angio.evaluation.perturb import gt_as_predictions
from sam3_angio.data.rle import GeometryError, check_rle, run_lengths
from sam3_angio.evaluation.synthetic import synthetic_coco


@pytest.fixture(scope="module")
def gt():
    return synthetic_coco(6, cat_ids=(1, 2), size=32, seed=3)


@pytest.fixture()
def good(gt):
    return gt_as_predictions(gt)


def test_rle_run_lengths_decode_like_pycocotools():
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = (rng.random((37, 23)) < rng.uniform(0.05, 0.95)).astype(np.uint8)
        rle = mask_utils.encode(np.asfortranarray(m))
        runs = run_lengths(rle["counts"])
        flat = np.repeat(np.arange(len(runs)) % 2, runs).astype(np.uint8)
        assert runs.sum() == 37 * 23 and (flat == m.flatten(order="F")).all()


@pytest.mark.parametrize(
    "seg, reason",
    [
        ({"size": [32, 32], "counts": "0j0"}, "malformed_rle"),  # decodes to too few pixels
        ({"size": [32, 32], "counts": "\x01\x02"}, "malformed_rle"),  # characters outside the alphabet
        ({"size": [32, 32], "counts": [10, 20]}, "malformed_rle"),  # uncompressed, wrong total
        ({"size": [32, 32], "counts": [-4, 1028]}, "malformed_rle"),
        ({"size": [16, 16], "counts": [256]}, "rle_size_mismatch"),
        ({"size": "32x32", "counts": ""}, "malformed_rle"),
        ({"counts": "PP"}, "malformed_rle"),
    ],
)
def test_malformed_rle_is_rejected_with_its_reason(seg, reason):
    with pytest.raises(GeometryError) as e:
        check_rle(seg, 32, 32)
    assert e.value.reason == reason


def test_valid_uncompressed_rle_is_accepted():
    out = check_rle({"size": [32, 32], "counts": [100, 24, 900]}, 32, 32)
    assert mask_utils.area(out) == 24


def test_partly_bad_predictions_are_counted_by_reason_and_stored(gt, good):
    bad = [
        {**good[0], "image_id": 999},
        {**good[1], "category_id": 42},
        {**good[2], "score": float("nan")},
        {**good[3], "score": float("inf")},
        {**good[4], "score": "high"},
        {k: v for k, v in good[5].items() if k != "score"},
        {**good[6], "segmentation": {"size": [32, 32], "counts": "0j0"}},  # box still counts
        {**good[7], "segmentation": {"size": [64, 64], "counts": [4096]}},
        {**good[8], "segmentation": [[1, 2, 3]]},
        {**good[9], "bbox": [1, 2, -3, 4], "segmentation": None},
        {"image_id": 1},
        "not an object",
    ]
    m = evaluate_files(gt, good + bad)
    assert m["ignored.unknown_image_id"] == 1
    assert m["ignored.unknown_category_id"] == 1
    assert m["ignored.nonfinite_score"] == 2
    assert m["ignored.bad_score"] == 1 and m["ignored.missing_score"] == 1
    assert m["ignored.malformed_rle"] == 1 and m["ignored.rle_size_mismatch"] == 1
    assert m["ignored.malformed_polygon"] == 1 and m["ignored.bad_bbox"] == 1
    assert m["ignored.malformed_record"] == 2 and m["ignored.no_geometry"] == 0
    assert m["meta.n_pred_input"] == len(good) + len(bad)
    # records with a good box and a bad mask (3) still count for bbox AP, not for segm
    assert m["bbox.n_pred"] == len(good) + 3 and m["segm.n_pred"] == len(good)
    assert any("ignored 2 x nonfinite_score" in w for w in m["warnings"])
    # the good predictions are still all there: nothing was silently lost
    assert m["segm.AP"] == 1.0


def test_integral_float_ids_are_the_same_ids_and_booleans_are_not_ids(gt, good):
    floats = [{**p, "image_id": float(p["image_id"]), "category_id": float(p["category_id"])} for p in good]
    m = evaluate_files(gt, floats + [{**good[0], "category_id": True}])
    assert m["segm.AP"] == 1.0 and m["ignored.unknown_category_id"] == 1


def test_all_predictions_unknown_is_an_error_that_spots_zero_based_ids(gt, good):
    with pytest.raises(EvaluationInputError, match="none of its .* predictions can be evaluated.*unknown_image_id"):
        evaluate_files(gt, [{**p, "image_id": p["image_id"] + 100} for p in good])
    zero_based = [{**p, "image_id": p["image_id"] - 1} for p in good]
    with pytest.raises(EvaluationInputError, match="0-based"):
        evaluate_files(gt, [p for p in zero_based if p["image_id"] == 0])
    # Mostly landing on real (wrong) images: evaluated, but the warning says what is likely wrong.
    m = evaluate_files(gt, zero_based)
    assert m["ignored.unknown_image_id"] == 2
    assert any("0-based" in w for w in m["warnings"]) and m["segm.AP"] < 0.5


def test_all_categories_unknown_is_an_error(gt, good):
    with pytest.raises(EvaluationInputError, match="category ids"):
        evaluate_files(gt, [{**p, "category_id": p["category_id"] - 1} for p in good if p["category_id"] == 1])


def test_empty_prediction_list_is_an_error_unless_allowed(gt, tmp_path):
    path = tmp_path / "empty.json"
    path.write_text("[]")
    with pytest.raises(EvaluationInputError, match="no predictions.*allow_empty"):
        evaluate_files(gt, str(path))
    m = evaluate_files(gt, str(path), allow_empty=True)
    assert m["segm.AP"] == 0.0 and m["bbox.AP"] == 0.0 and m["dice"] == 0.0
    assert any("every AP is 0 because nothing was predicted" in w for w in m["warnings"])


def test_strict_mode_refuses_any_ignored_prediction(gt, good):
    with pytest.raises(EvaluationInputError, match="strict.*nonfinite_score"):
        evaluate_files(gt, good + [{**good[0], "score": float("nan")}], strict=True)


def test_predictions_without_masks_skip_segm_metrics_explicitly(gt, good):
    boxes = [{k: v for k, v in p.items() if k != "segmentation"} for p in good]
    m = evaluate_files(gt, boxes)
    assert m["bbox.AP"] == 1.0
    assert m["segm.AP"] is None and m["dice"] is None and m["arcade_f1"] is None
    assert m["meta.iou_types_evaluated"] == ["bbox"]
    assert any("no usable masks" in w for w in m["warnings"])


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"foo": 1}), "COCO results list"),
        (json.dumps("text"), "JSON list"),
    ],
)
def test_unreadable_prediction_files_name_the_file_and_the_problem(gt, tmp_path, content, message):
    path = tmp_path / "pred.json"
    path.write_text(content)
    with pytest.raises(EvaluationInputError, match=message) as e:
        evaluate_files(gt, str(path))
    assert str(path) in str(e.value)


def test_bad_ground_truth_files_name_the_problem(tmp_path, good):
    with pytest.raises(EvaluationInputError, match="does not exist"):
        evaluate_files(str(tmp_path / "missing.json"), good)
    swapped = tmp_path / "preds_as_gt.json"
    swapped.write_text(json.dumps(good))
    with pytest.raises(EvaluationInputError, match="swap --gt and --pred"):
        evaluate_files(str(swapped), good)
    broken = {"images": [{"id": 1, "height": 8, "width": 8}], "categories": [{"id": 1}],
              "annotations": [{"id": 1, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]}]}
    with pytest.raises(EvaluationInputError, match=r"annotations\[0\] refers to image_id 2"):
        evaluate_files(broken, good)


def test_pycocotools_alone_takes_broken_rle_which_is_why_runs_are_checked_first():
    """The measured reason rle.run_lengths exists: pycocotools returns numbers for broken counts
    (iou/merge on them never return, so those are not called here). If this starts failing, pycocotools
    validates RLE itself and the hand-written check can go."""
    assert mask_utils.area({"size": [32, 32], "counts": b"\x01\x02"}) == 4294967282  # bad characters
    assert mask_utils.area({"size": [32, 32], "counts": b"0j0"}) == 26  # covers 58 of 1024 pixels
    mask_utils.decode({"size": [32, 32], "counts": b"0j0"})  # no error for too few pixels
    for counts in (b"\x01\x02", b"0j0"):
        with pytest.raises(GeometryError, match="RLE"):
            check_rle({"size": [32, 32], "counts": counts}, 32, 32)


# One bad prediction polygon each; NaN and 1e9 blew up pycocotools' frPyObjects (segfault, 19 GB).
BAD_POLYGONS = {
    "nan": [[2, 2, float("nan"), 2, 10, 10]],
    "huge": [[2, 2, 1e9, 2, 1e9, 1e9]],
    "string": [[2, 2, "20", 2, 10, 10]],
    "odd": [[2, 2, 20, 2, 10, 10, 5]],
}


@pytest.mark.parametrize("name", ["string", "odd"])  # the harmless two in process; all four below, capped
def test_bad_prediction_polygon_is_a_malformed_polygon_naming_the_polygon(gt, good, name):
    m = evaluate_files(gt, good + [{**good[0], "segmentation": BAD_POLYGONS[name]}])
    assert m["ignored.malformed_polygon"] == 1 and m["segm.AP"] == 1.0
    assert any("malformed_polygon" in w and f"record {len(good)}" in w and "polygon 0" in w for w in m["warnings"])


def test_eval_tool_counts_nan_huge_string_and_odd_polygons_under_a_memory_cap(gt, good, tmp_path):
    from memory_cap import run_main_capped

    bad = [{**good[i], "segmentation": poly} for i, poly in enumerate(BAD_POLYGONS.values())]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(good + bad))  # NaN as the literal json reads back
    p = run_main_capped("sam3_angio.evaluation.cli", "main", [
        "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json"), "--out", str(tmp_path / "o"),
        "--no-report"])
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["ignored.malformed_polygon"] == 4
    # their boxes still count for bbox AP; the good masks are all there
    assert m["bbox.n_pred"] == len(good) + 4 and m["segm.n_pred"] == len(good) and m["segm.AP"] == 1.0


def test_eval_tool_stops_on_a_huge_ground_truth_polygon_naming_the_annotation(gt, good, tmp_path):
    from memory_cap import run_main_capped

    broken = json.loads(json.dumps(gt))
    ann = broken["annotations"][3]
    ann["segmentation"] = BAD_POLYGONS["huge"]
    (tmp_path / "gt.json").write_text(json.dumps(broken))
    (tmp_path / "pred.json").write_text(json.dumps(good))
    p = run_main_capped("sam3_angio.evaluation.cli", "main", [
        "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json"), "--out", str(tmp_path / "o")])
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    lines = p.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and f"annotation id {ann['id']}" in lines[-1]
    assert "more than one image size outside" in lines[-1] and "Traceback" not in p.stderr


def test_duplicate_ground_truth_annotation_ids_are_an_error_not_a_lower_ap(gt, good):
    """pycocotools indexes annotations by id: with two annotations sharing an id, one counted twice and
    the other never - the ground truth scored against itself got AP 0.92 instead of an error."""
    dup = json.loads(json.dumps(gt))
    dup["annotations"][1]["id"] = dup["annotations"][0]["id"]
    with pytest.raises(EvaluationInputError, match=r"annotation id .* appears twice in 'annotations' "
                                                   r"\(annotations\[1\]\).*renumber"):
        evaluate_files(dup, good)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["images"][0].update(height=None), r"images\[0\] \(id .*\) has height None; expected a positive"),
    (lambda d: d["images"][0].update(height="512.0"), r"images\[0\] \(id .*\) has height '512.0'; expected a"),
    (lambda d: d["images"][0].update(id=[1]), r"images\[0\] has id \[1\]; expected an integer"),
    (lambda d: d["categories"][0].update(id=None), r"categories\[0\] has id None"),
    (lambda d: d["annotations"][0].update(bbox=None), r"annotations\[0\] \(id .*\) has bbox None; expected \[x, y"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2]), r"has bbox \[1, 2\]"),
    (lambda d: d["annotations"][0].update(area="big"), r"has area 'big'; expected a number"),
    (lambda d: d["images"][0].update(id="a"), r"images\[1\] has id 2 \(int\) but earlier ids are strs"),
])
def test_malformed_ground_truth_records_are_named_not_a_traceback(gt, good, edit, message):
    bad = json.loads(json.dumps(gt))
    edit(bad)
    if bad["images"][0]["id"] == "a":  # keep the annotations pointing at it
        for a in bad["annotations"]:
            if a["image_id"] == gt["images"][0]["id"]:
                a["image_id"] = "a"
    with pytest.raises(EvaluationInputError, match=message):
        evaluate_files(bad, good)


def test_ground_truth_and_predictions_with_a_bom_are_read(gt, good, tmp_path):
    g, p = tmp_path / "gt.json", tmp_path / "pred.json"
    g.write_bytes(json.dumps(gt).encode("utf-8-sig"))
    p.write_bytes(json.dumps(good).encode("utf-8-sig"))
    assert evaluate_files(str(g), str(p))["segm.AP"] == pytest.approx(1.0)


def test_ground_truth_without_annotations_says_so(gt, good):
    empty = dict(json.loads(json.dumps(gt)), annotations=[])
    m = evaluate_files(empty, good)
    assert m["bbox.AP"] is None and m["segm.AP"] is None
    assert any("holds no annotations" in w for w in m["warnings"])
    assert not any("without 'segmentation'" in w for w in m["warnings"])
