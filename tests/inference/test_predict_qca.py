"""tools/predict.py --qca: QCA of every segment predict.py writes to segments.csv, into qca.json /
qca.csv / qca_figures/ beside predictions.json, in mm with the frame's spacing (DICOM header or
--mm-per-pixel) and in px without one; the same numbers tools/qca.py gives on the saved masks."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from sam3_angio.inference.cli import main


@pytest.fixture(scope="module")
def qca_inputs(tmp_path_factory, val_frames):
    import imageio.v3 as iio

    from sam3_angio.data.dicom import write_xa_dicom

    (a, b), _ = val_frames
    d = tmp_path_factory.mktemp("qca_inputs")
    iio.imwrite(d / "frame.png", a)
    # 0.3 mm detector spacing / 1.2 magnification = 0.25 mm at the isocentre
    write_xa_dicom(d / "run.dcm", np.stack([b, a]), view_angles=(-30, 25), imager_pixel_spacing=0.3,
                   magnification=1.2, fps=12.5)
    return d


@pytest.fixture(scope="module")
def qca_out(qca_inputs, cass_predictor, tmp_path_factory):
    out = tmp_path_factory.mktemp("qca_pred") / "pred"
    argv = [str(qca_inputs / "frame.png"), str(qca_inputs / "run.dcm"), "--checkpoint", "unused.pt",
            "--out", str(out), "--score-thr", "0", "--qca", "--quiet"]
    assert main(argv, predictor=cass_predictor) == 0
    return out


def _segments_csv(folder):
    with open(folder / "segments.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_qca_files_sit_beside_predictions_and_cover_every_listed_segment(qca_out):
    for name in ("frame", "run"):
        folder = qca_out / name
        assert (folder / "predictions.json").is_file() and (folder / "qca.json").is_file()
        assert (folder / "qca.csv").is_file()
        doc = json.loads((folder / "qca.json").read_text())
        rows = _segments_csv(folder)
        assert rows, "the tiny model found no segment at score 0"
        # every segment of segments.csv is measured or skipped with a reason, none twice
        sources = [s["source"] for s in doc["segments"]] + [s["source"] for s in doc["skipped"]]
        assert len(sources) == len(set(sources)) == len(rows)
        assert all(s["error"] for s in doc["skipped"])
        assert doc["n_lesions"] == sum(s["n_lesions"] for s in doc["segments"])
        pred = json.loads((folder / "predictions.json").read_text())
        assert pred["info"]["settings"]["qca"] is True
        by_id = {a["id"]: a for a in pred["annotations"]}
        for seg in doc["segments"]:
            ann = by_id[seg["annotation_id"]]
            assert seg["name"] == ann["cass_name"] and seg["image_id"] == ann["image_id"]
            assert seg["figure"].startswith("qca_figures/") and (folder / seg["figure"]).is_file()
        with open(folder / "qca.csv", newline="") as f:
            lesion_rows = list(csv.DictReader(f))
        assert len(lesion_rows) == doc["n_lesions"]


def test_spacing_from_the_dicom_header_gives_mm_and_none_gives_px(qca_out):
    run = json.loads((qca_out / "run" / "qca.json").read_text())
    frame = json.loads((qca_out / "frame" / "qca.json").read_text())
    assert run["segments"] and frame["segments"], "no predicted segment could be measured"
    assert all(s["units"] == "mm" and s["mm_per_pixel"] == pytest.approx(0.25) for s in run["segments"])
    assert all("reference_diameter_mm" in s for s in run["segments"])
    assert all(s["units"] == "px" and s["mm_per_pixel"] is None for s in frame["segments"])
    assert all("reference_diameter_px" in s and "note" in s for s in frame["segments"])
    assert run["inputs"]["spacing_source"].startswith("dicom")


def test_numbers_equal_tools_qca_on_the_saved_masks(qca_out, tmp_path):
    """The same masks through tools/qca.py --predictions (spacing given there) measure the same."""
    from sam3_angio.qca.cli import main as qca_main

    folder = qca_out / "run"
    out = tmp_path / "qca"
    assert qca_main(["--predictions", str(folder / "predictions.json"), "--min-score", "0",
                     "--mm-per-pixel", "0.25", "--no-figures", "--out", str(out)]) == 0
    ours = json.loads((folder / "qca.json").read_text())
    ref = json.loads((out / "qca.json").read_text())
    by_index = {s["prediction_index"] + 1: s for s in ref["segments"]}  # predictions.json ids are 1-based
    assert ours["segments"]
    for seg in ours["segments"]:
        other = by_index[seg["annotation_id"]]
        for key in ("reference_diameter_mm", "mld_mm", "percent_diameter_stenosis", "n_lesions"):
            assert seg[key] == other[key], key


def test_mm_per_pixel_flag_gives_mm_for_a_png(qca_inputs, cass_predictor, tmp_path):
    out = tmp_path / "pred"
    assert main([str(qca_inputs / "frame.png"), "--checkpoint", "unused.pt", "--out", str(out), "--score-thr", "0",
                 "--qca", "--no-qca-figures", "--mm-per-pixel", "0.3", "--quiet"], predictor=cass_predictor) == 0
    doc = json.loads((out / "frame" / "qca.json").read_text())
    assert doc["segments"] and all(s["units"] == "mm" and s["mm_per_pixel"] == 0.3 for s in doc["segments"])
    assert not (out / "frame" / "qca_figures").exists()


def test_without_qca_there_are_no_qca_files_and_the_figure_flag_needs_qca(qca_inputs, cass_predictor, tmp_path):
    out = tmp_path / "pred"
    assert main([str(qca_inputs / "frame.png"), "--checkpoint", "unused.pt", "--out", str(out), "--quiet"],
                predictor=cass_predictor) == 0
    assert not (out / "frame" / "qca.json").exists()
    assert main([str(qca_inputs / "frame.png"), "--checkpoint", "unused.pt", "--out", str(tmp_path / "b"),
                 "--no-qca-figures", "--quiet"], predictor=cass_predictor) == 2
