"""tools/predict.py as a user runs it: a cine .npy, a PNG, a DICOM, an MP4 video, a multi-page TIFF and a
folder in one call write, per input, predictions.json (the documented keys), segments.csv, overlays and a
GIF for cines; outputs appear whole or not at all. Also the pieces: centreline length, label placement."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT

IMAGE_KEYS = {"id", "file_name", "input", "input_id", "kind", "frame_index", "n_frames", "selection", "height",
              "width", "view_angles", "view", "angles_source", "mm_per_pixel", "spacing_source", "fps", "overlay"}
ANNOTATION_KEYS = {"id", "image_id", "category_id", "score", "bbox", "segmentation", "area", "cass_name",
                   "cass_probs", "query_category_id", "detection_score"}
CSV_COLUMNS = ["input", "frame", "image_id", "name", "category_id", "score", "area_px", "length_px", "length_mm"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, val_frames):
    """A 2-frame cine, a PNG, a 2-frame DICOM (RAO 30 / CRA 25, 0.3 mm detector spacing / 1.2
    magnification = 0.25 mm), the cine as an MP4 video at 10 frames/s and as a 2-page TIFF, and a folder
    with a PNG and a 1-frame cine."""
    from PIL import Image

    import imageio.v3 as iio

    from sam3_angio.data.dicom import write_xa_dicom

    (a, b), _ = val_frames
    d = tmp_path_factory.mktemp("predict_inputs")
    np.save(d / "cine.npy", np.stack([a, b]))
    iio.imwrite(d / "frame.png", a)
    iio.imwrite(d / "clip.mp4", np.repeat(np.stack([a, b])[..., None], 3, axis=3), plugin="pyav", codec="libx264",
                fps=10)
    Image.fromarray(a).save(d / "stack.tif", save_all=True, append_images=[Image.fromarray(b)])
    write_xa_dicom(d / "run.dcm", np.stack([b, a]), view_angles=(-30, 25), imager_pixel_spacing=0.3,
                   magnification=1.2, fps=12.5)
    (d / "folder").mkdir()
    iio.imwrite(d / "folder" / "other.png", b)
    np.save(d / "folder" / "short.npy", a[None])
    (d / "folder" / "notes.txt").write_text("not an input")
    return d


@pytest.fixture(scope="module")
def predicted(trained_cass_run, inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict_out") / "pred"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "predict.py"), str(inputs / "cine.npy"), str(inputs / "frame.png"),
         str(inputs / "run.dcm"), str(inputs / "clip.mp4"), str(inputs / "stack.tif"), str(inputs / "folder"),
         "--checkpoint", str(trained_cass_run / "checkpoints" / "checkpoint.pt"), "--out", str(out),
         "--score-thr", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc


def _doc(out, name):
    return json.loads((out / name / "predictions.json").read_text())


def test_every_input_gets_its_folder_with_the_listed_outputs(predicted):
    out, _ = predicted
    assert sorted(p.name for p in out.iterdir()) == ["cine", "clip", "frame", "other", "run", "short", "stack"]
    two = ["overlay.gif", "overlay_f0000.png", "overlay_f0001.png"]
    expected = {"cine": two, "frame": ["overlay.png"], "run": two, "clip": two, "stack": two,
                "other": ["overlay.png"], "short": ["overlay_f0000.png"]}
    for name, pictures in expected.items():
        files = sorted(p.name for p in (out / name).iterdir())
        assert files == sorted(["predictions.json", "segments.csv", *pictures]), name


def test_predictions_json_has_the_documented_header_images_and_named_instances(predicted, trained_cass_run):
    out, _ = predicted
    doc = _doc(out, "run")
    assert set(doc) == {"info", "images", "categories", "annotations"}
    info = doc["info"]
    assert info["schema"] == "sam3_angio.predictions/1" and info["tool"] == "tools/predict.py"
    assert info["model"]["model"] == "sam3_tiny" and info["model"]["task"] == "cass"
    assert info["model"]["checkpoint"] == str(trained_cass_run / "checkpoints" / "checkpoint.pt")
    assert info["model"]["config"].endswith("config_resolved.yaml") and info["model"]["naming"] == "fused"
    assert info["settings"] == {"frames": "all", "angles": None, "mm_per_pixel": None, "naming": "fused",
                                "score_thr": 0.0, "qca": False, "cass_checkpoint": None}
    assert [c["id"] for c in doc["categories"]] == [1, 2, 12, 13]
    assert [im["frame_index"] for im in doc["images"]] == [0, 1] and [im["id"] for im in doc["images"]] == [1, 2]
    im = doc["images"][0]
    assert set(im) == IMAGE_KEYS
    assert im["view_angles"] == {"primary": -30.0, "secondary": 25.0} and im["angles_source"] == "dicom"
    assert im["view"] == "RAO 30 / CRA 25" and im["mm_per_pixel"] == pytest.approx(0.25)
    assert im["spacing_source"].startswith("dicom:") and im["fps"] == pytest.approx(12.5)
    assert im["file_name"] == "run_f0000.png" and im["overlay"] == "overlay_f0000.png"
    assert doc["annotations"], "the tiny model predicts instances on every frame"
    for a in doc["annotations"]:
        assert set(a) == ANNOTATION_KEYS
        assert a["cass_name"] in {c["name"] for c in doc["categories"]}
        assert sum(a["cass_probs"].values()) == pytest.approx(1.0, abs=1e-3)
    assert [a["id"] for a in doc["annotations"]] == list(range(1, len(doc["annotations"]) + 1))
    assert {a["image_id"] for a in doc["annotations"]} == {1, 2}


def test_unknown_angles_and_spacing_are_said_in_the_json_and_on_the_console(predicted):
    out, proc = predicted
    doc = _doc(out, "cine")
    im = doc["images"][0]
    assert im["view_angles"] is None and im["angles_source"] == "unknown" and im["view"] == "unknown"
    assert im["mm_per_pixel"] is None and im["spacing_source"] == "unknown"
    assert any("view angles unknown" in n for n in doc["info"]["notes"])
    assert "cine: cine, 2 of 2 frame(s); angles unknown" in proc.stdout
    assert "run: dicom, 2 of 2 frame(s); angles RAO 30 / CRA 25 (dicom); 0.25 mm/px" in proc.stdout
    assert "MODEL: sam3_tiny" in proc.stdout  # the banner: a random-init model is never taken for a trained one


def test_segments_csv_rows_match_the_instances_with_lengths_in_mm_only_when_spacing_is_known(predicted):
    out, _ = predicted
    for name, mm in (("run", 0.25), ("frame", None)):
        doc = _doc(out, name)
        with open(out / name / "segments.csv", newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
        assert reader.fieldnames == CSV_COLUMNS
        segments = [a for a in doc["annotations"] if a["area"] > 0]  # --score-thr 0: every non-empty instance
        assert len(rows) == len(segments) > 0
        for row, a in zip(rows, segments):
            assert (row["input"], int(row["image_id"]), row["name"]) == (name, a["image_id"], a["cass_name"])
            assert float(row["score"]) == pytest.approx(a["score"], abs=1e-4)
            assert int(row["area_px"]) == a["area"]
            if mm is None:
                assert row["length_mm"] == ""
            else:
                assert float(row["length_mm"]) == pytest.approx(float(row["length_px"]) * mm, abs=0.05 * mm + 0.005)


def test_overlays_are_pictures_and_the_gif_plays_the_frames_at_the_dicom_rate(predicted):
    import imageio.v3 as iio

    out, _ = predicted
    png = iio.imread(out / "frame" / "overlay.png")
    assert png.ndim == 3 and png.shape[2] == 3 and png.shape[1] == 512  # 128 px frames scaled x4
    gif = iio.imread(out / "run" / "overlay.gif", index=None)
    assert gif.shape[0] == 2
    from PIL import Image

    with Image.open(out / "run" / "overlay.gif") as im:
        assert im.info["duration"] == 80 and im.info["loop"] == 0  # the DICOM's 12.5 frames/s, looping


def test_a_video_and_a_tiff_stack_are_cines_named_by_frame_with_the_video_rate(predicted):
    """The TIFF pages are the cine's frames exactly, so their predictions are the cine's; the video's
    frames are lossy copies, so only its records are checked, and its GIF plays at the video's rate."""
    from PIL import Image

    out, proc = predicted
    cine, stack, clip = _doc(out, "cine"), _doc(out, "stack"), _doc(out, "clip")
    assert [(im["kind"], im["n_frames"], im["file_name"]) for im in stack["images"]] == [
        ("image", 2, "stack_f0000.png"), ("image", 2, "stack_f0001.png")]
    assert [(im["kind"], im["n_frames"], im["file_name"], im["fps"]) for im in clip["images"]] == [
        ("video", 2, "clip_f0000.png", 10.0), ("video", 2, "clip_f0001.png", 10.0)]
    assert "clip: video, 2 of 2 frame(s); angles unknown" in proc.stdout

    def scores(doc):
        return [(a["image_id"], a["cass_name"], round(a["score"], 4)) for a in doc["annotations"]]

    assert scores(stack) == scores(cine) and clip["annotations"]
    with Image.open(out / "clip" / "overlay.gif") as im:
        assert im.info["duration"] == 100  # 10 frames/s


def test_an_existing_output_is_refused_before_the_model_loads_and_kept(predicted, inputs, capsys):
    from sam3_angio.inference.cli import main

    out, _ = predicted
    before = (out / "frame" / "predictions.json").read_bytes()
    assert main([str(inputs / "frame.png"), "--checkpoint", "missing.pt", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()  # about the folder, not the (missing) checkpoint: checked first
    assert err.startswith("error: output folder") and "frame" in err and "--overwrite" in err and "\n" not in err
    assert (out / "frame" / "predictions.json").read_bytes() == before


def test_a_failure_while_writing_leaves_the_previous_output_whole(predicted, inputs, cass_predictor, monkeypatch):
    from sam3_angio.inference import cli, outputs

    out, _ = predicted
    before = {p.name: p.read_bytes() for p in (out / "frame").iterdir()}

    def broken(path, doc):
        raise OSError("disk full")

    monkeypatch.setattr(outputs, "write_json", broken)
    with pytest.raises(OSError, match="disk full"):
        cli.main([str(inputs / "frame.png"), "--checkpoint", "x.pt", "--out", str(out), "--overwrite", "--quiet"],
                 predictor=cass_predictor)
    assert {p.name: p.read_bytes() for p in (out / "frame").iterdir()} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary folder is left behind"


def test_a_study_csv_gives_one_folder_per_cine_with_contour_angles_and_no_patient_id(cass_predictor, tmp_path):
    from data_fixtures import write_handmade

    from sam3_angio.inference.cli import main

    csv_path = write_handmade(tmp_path / "study")  # cines p0, p1 (patients P0, P1); rows 1-2 and 3-4 on frame 1
    out = tmp_path / "out"
    assert main([str(csv_path), "--checkpoint", "x.pt", "--out", str(out), "--quiet"], predictor=cass_predictor) == 0
    assert sorted(p.name for p in out.iterdir()) == ["p0", "p1"]
    im = _doc(out, "p1")["images"][0]
    assert (im["kind"], im["frame_index"], im["csv_rows"], im["file_name"]) == ("csv", 1, [3, 4], "p1_f0001.png")
    assert (im["view_angles"], im["angles_source"], im["mm_per_pixel"], im["spacing_source"]) == (
        {"primary": -29.0, "secondary": 25.0}, "contours", 0.3, "csv")
    for f in out.rglob("*"):
        if f.suffix in (".json", ".csv"):
            text = f.read_text()
            assert '"P0"' not in text and '"P1"' not in text and ",P0," not in text and ",P1," not in text


def test_no_dicom_patient_tag_reaches_the_outputs(predicted):
    out, proc = predicted
    for f in (out / "run").iterdir():
        if f.suffix in (".json", ".csv"):
            assert "ANONYMOUS" not in f.read_text()  # write_xa_dicom's PatientName / PatientID
    assert "ANONYMOUS" not in proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------------------ pieces


@pytest.mark.parametrize("angle", [0, 10, 22.5, 37, 45, 60, 90])
def test_centreline_length_of_a_straight_vessel_is_within_5_percent_at_any_angle(angle):
    from sam3_angio.inference.centreline import skeleton, skeleton_length

    a = math.radians(angle)
    yy, xx = np.mgrid[:300, :300]
    t = (xx - 50) * math.cos(a) + (yy - 50) * math.sin(a)  # along the vessel
    d = -(xx - 50) * math.sin(a) + (yy - 50) * math.cos(a)  # across
    skel = skeleton((np.abs(d) <= 3) & (t >= 0) & (t <= 200))
    extent = t[skel].max() - t[skel].min()  # the straight skeleton's true length
    assert -0.055 <= skeleton_length(skel) / extent - 1 <= 0.045  # a pixel count would be -29 % at 45 degrees


def test_centreline_length_of_a_ring_is_its_circumference():
    from sam3_angio.inference.centreline import centreline_length

    yy, xx = np.mgrid[:300, :300]
    r = np.hypot(yy - 150, xx - 150)
    assert centreline_length((r > 57) & (r < 63)) == pytest.approx(2 * math.pi * 60, rel=0.01)


def test_labels_of_a_crowded_frame_do_not_overlap_and_stay_inside():
    from sam3_angio.inference.overlay import _overlap, place_labels

    rng = np.random.default_rng(0)
    anchors = [(256 + rng.normal(0, 25), 256 + rng.normal(0, 25)) for _ in range(20)]
    boxes = place_labels(anchors, [(120, 20)] * 20, (0, 30, 512, 542))
    assert all(b[0] >= 0 and b[1] >= 30 and b[2] <= 512 and b[3] <= 542 for b in boxes)
    assert all(_overlap(a, b) == 0 for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_the_console_is_for_a_person(predicted):
    """tools/predict.py's console holds what a user reads (the banner, a line an input, where it went),
    not the third-party warnings sam3 and torch raise at import (torch.jit, CUDA autocast)."""
    _, proc = predicted
    text = proc.stdout + proc.stderr
    assert "Warning" not in text and "warnings.warn" not in text, text[-3000:]
    assert "wrote 7 inputs" in proc.stdout, proc.stdout[-2000:]


def test_a_frame_without_a_segment_says_the_best_score(cass_predictor, inputs, tmp_path, capsys):
    """Nothing at or above --score-thr: the frame's line gives the best instance score, so a user knows
    whether the threshold or the model is the reason."""
    from sam3_angio.inference.cli import main

    assert main([str(inputs / "frame.png"), "--checkpoint", "x.pt", "--out", str(tmp_path / "o"), "--quiet",
                 "--score-thr", "1.0"], predictor=cass_predictor) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("frame 0:"))
    assert "0 segment(s) >= 1" in line and "best instance score 0." in line and "--score-thr" in line


def test_a_frame_whose_instances_all_have_empty_masks_says_so(cass_predictor, inputs, tmp_path, capsys):
    """Instances at or above --score-thr whose masks are empty (an untrained model) are no segments; the
    frame's line says why it lists none instead of a bare '0 segment(s) >= 0'."""
    from sam3_angio.inference.cli import main

    class EmptyMasks:
        def __init__(self, p):
            self._p = p

        def __getattr__(self, name):
            return getattr(self._p, name)

        def predict(self, *args):
            return [[dict(i, area=0) for i in insts] for insts in self._p.predict(*args)]

    assert main([str(inputs / "frame.png"), "--checkpoint", "x.pt", "--out", str(tmp_path / "o"), "--quiet",
                 "--score-thr", "0"], predictor=EmptyMasks(cass_predictor)) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("frame 0:"))
    assert "0 segment(s) >= 0" in line and "empty mask" in line, line
