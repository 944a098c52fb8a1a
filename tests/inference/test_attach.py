"""Stenoses placed on the CASS segment they lie in (a phase 3 and a phase 2 run): the segment of
largest overlap, None where none touches, low-scoring segments ignored; through tools/predict.py
--cass-checkpoint with a stenosis run trained here and the session's CASS run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from conftest import run_train, small_run_overrides
from sam3_angio.inference.attach import attach_cass_segments
from sam3_angio.inference.cli import main


def _inst(mask, category_id, score, **kw):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return {"image_id": 1, "category_id": category_id, "score": score, "segmentation": rle, **kw}


def _masks(shape=(64, 64)):
    lad = np.zeros(shape, bool)
    lad[:, 20:26] = True  # a vertical vessel
    rca = np.zeros(shape, bool)
    rca[40:46, :] = True  # a horizontal one, crossing it at rows 40..45
    return lad, rca


def test_each_stenosis_gets_the_segment_of_largest_overlap():
    lad, rca = _masks()
    segments = [_inst(rca, 2, 0.9), _inst(lad, 13, 0.8)]
    on_lad = np.zeros_like(lad)
    on_lad[10:18, 18:28] = True  # 8 rows x 6 LAD columns inside, no RCA
    crossing = np.zeros_like(lad)
    crossing[38:48, 22:40] = True  # mostly RCA (6 x 18) over LAD (10 x 4)
    nowhere = np.zeros_like(lad)
    nowhere[0:5, 50:60] = True
    out = attach_cass_segments([_inst(on_lad, 1, 0.7), _inst(crossing, 1, 0.6), _inst(nowhere, 1, 0.5)], segments)
    assert [o["cass_segment"] for o in out] == [13, 2, None]
    assert out[0]["cass_segment_name"] == "mid LAD" and out[1]["cass_segment_name"] == "mid RCA"
    assert out[0]["cass_segment_overlap"] == pytest.approx(48 / 80)
    assert out[1]["cass_segment_overlap"] == pytest.approx(108 / 180)
    assert out[1]["cass_segment_score"] == 0.9
    assert out[2]["cass_segment_name"] is None and out[2]["cass_segment_overlap"] == 0.0
    assert out[0]["score"] == 0.7 and "cass_segment" not in segments[0]  # copies; inputs unchanged


def test_segments_below_the_score_threshold_and_boxes_without_masks():
    lad, rca = _masks()
    weak_lad = _inst(lad, 13, 0.3)
    box_only = {"image_id": 1, "category_id": 1, "score": 0.9, "bbox": [18.0, 36.0, 10.0, 12.0]}  # x, y, w, h
    (out,) = attach_cass_segments([box_only], [weak_lad, _inst(rca, 2, 0.9)], score_thr=0.5)
    assert out["cass_segment"] == 2  # the LAD overlaps more but scores below 0.5
    (out,) = attach_cass_segments([box_only], [weak_lad, _inst(rca, 2, 0.9)], score_thr=0.2)
    assert out["cass_segment"] == 13  # 12 rows x 6 columns of LAD beat 6 x 10 of RCA
    assert attach_cass_segments([box_only], [])[0]["cass_segment"] is None
    # a detection whose mask the threshold left empty is placed by its box
    empty = _inst(np.zeros_like(lad), 1, 0.9, bbox=[18.0, 36.0, 10.0, 12.0])
    (out,) = attach_cass_segments([empty], [weak_lad, _inst(rca, 2, 0.9)], score_thr=0.2)
    assert out["cass_segment"] == 13


@pytest.fixture(scope="module")
def stenosis_predictor(tiny_data_root, tmp_path_factory):
    from sam3_angio.inference import Predictor

    exp = tmp_path_factory.mktemp("stenosis_run")
    run_train(["-c", "configs/angiography/stenosis.yaml", *small_run_overrides(tiny_data_root, exp, epochs=1)],
              check=True)
    return Predictor.from_checkpoint(str(exp / "checkpoints" / "checkpoint.pt"))


def test_predict_with_a_cass_run_attaches_each_stenosis(stenosis_predictor, cass_predictor, val_frames, tmp_path):
    import imageio.v3 as iio

    (frame, _), _ = val_frames
    iio.imwrite(tmp_path / "frame.png", frame)
    out = tmp_path / "pred"
    assert main([str(tmp_path / "frame.png"), "--checkpoint", "st.pt", "--cass-checkpoint", "cass.pt", "--out",
                 str(out), "--score-thr", "0", "--qca", "--no-qca-figures", "--quiet"],
                predictor=stenosis_predictor, cass_predictor=cass_predictor) == 0
    doc = json.loads((out / "frame" / "predictions.json").read_text())
    assert doc["info"]["model"]["task"] == "stenosis" and doc["info"]["model"]["cass_model"]["task"] == "cass"
    assert doc["annotations"]
    # the stenosis run's regression head estimates each detection's severity
    assert all({"predicted_stenosis_pct", "predicted_mld_mm", "predicted_reference_diameter_mm"} <= set(a)
               for a in doc["annotations"])
    # the same answer computed here from the CASS run's own predictions of that frame
    segments = cass_predictor(frame)
    masks = [(s["category_id"], mask_utils.decode({**s["segmentation"], "counts": s["segmentation"]["counts"].encode()}))
             for s in segments if s.get("segmentation")]
    attached = 0
    for ann in doc["annotations"]:
        assert {"cass_segment", "cass_segment_name", "cass_segment_overlap"} <= set(ann)
        st = mask_utils.decode({**ann["segmentation"], "counts": ann["segmentation"]["counts"].encode()}).astype(bool)
        if not st.any():  # a mask left empty by the threshold: the detection is placed by its box
            x, y, w, h = ann["bbox"]
            st[max(0, int(np.floor(y))):max(0, int(np.ceil(y + h))), max(0, int(np.floor(x))):max(0, int(np.ceil(x + w)))] = True
        overlaps = [int((st & m.astype(bool)).sum()) for _, m in masks]
        if not overlaps or max(overlaps) == 0:
            assert ann["cass_segment"] is None
            continue
        assert ann["cass_segment"] == masks[int(np.argmax(overlaps))][0]
        attached += 1
    assert attached, "no stenosis overlapped a predicted segment: the test shows nothing"
    # QCA of the stenoses records the segment they lie in
    qca = json.loads((out / "frame" / "qca.json").read_text())
    by_ann = {a["id"]: a for a in doc["annotations"]}
    for seg in qca["segments"]:
        assert seg["cass_segment"] == by_ann[seg["annotation_id"]]["cass_segment"]


def test_swapped_runs_are_one_clear_error(stenosis_predictor, cass_predictor, val_frames, tmp_path, capsys):
    import imageio.v3 as iio

    (frame, _), _ = val_frames
    iio.imwrite(tmp_path / "frame.png", frame)
    assert main([str(tmp_path / "frame.png"), "--checkpoint", "cass.pt", "--cass-checkpoint", "st.pt", "--out",
                 str(tmp_path / "o"), "--quiet"], predictor=cass_predictor, cass_predictor=stenosis_predictor) == 2
    assert "must be a stenosis (phase 3) run" in capsys.readouterr().err
