"""tools/qca.py end to end: --mask, --coco and --predictions write qca.json (the issue's keys), qca.csv
(a row per lesion) and a figure per segment; bad input is one error line, exit 2, output untouched."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from qca_helpers import save_png, tube, write_coco, write_predictions

from sam3_angio.qca.cli import main

ROOT = Path(__file__).resolve().parents[2]
SEGMENT_KEYS = {"source", "reference_diameter_mm", "lesions"}
LESION_KEYS = {"percent_diameter_stenosis", "mld_mm", "reference_diameter_mm", "lesion_length_mm", "position_mm"}


@pytest.fixture(scope="module")
def masks():
    one, _, _ = tube(lesions=[(100.0, 48.0, 60.0)])
    two, _, _ = tube(length=220.0, bend=40.0, lesions=[(60.0, 36.0, 40.0), (160.0, 36.0, 75.0)])
    return one, two


def _read(out: Path):
    data = json.loads((out / "qca.json").read_text())
    with open(out / "qca.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return data, rows


def test_mask_mode_as_a_user_types_it(tmp_path, masks):
    mpath = save_png(tmp_path / "seg.png", masks[0])
    frame = tmp_path / "frame.png"
    Image.fromarray((200 - 120 * masks[0]).astype(np.uint8)).save(frame)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "qca.py"), "--mask", str(mpath), "--mm-per-pixel",
                           "0.25", "--image", str(frame), "--out", str(out)], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=120)
    assert proc.returncode == 0, proc.stderr
    data, rows = _read(out)
    (seg,) = data["segments"]
    assert SEGMENT_KEYS <= set(seg) and seg["units"] == "mm"
    (les,) = seg["lesions"]
    assert LESION_KEYS <= set(les)
    assert les["percent_diameter_stenosis"] == pytest.approx(60.0, abs=3.0)
    assert len(rows) == 1 and rows[0]["units"] == "mm" and float(rows[0]["mld"]) == pytest.approx(les["mld_mm"])
    assert (out / seg["figure"]).is_file() and seg["figure"].startswith("figures/")


def test_mask_mode_without_spacing_writes_px_keys(tmp_path, masks):
    out = tmp_path / "out"
    assert main(["--mask", str(save_png(tmp_path / "seg.png", masks[0])), "--out", str(out), "--no-figures"]) == 0
    data, rows = _read(out)
    seg = data["segments"][0]
    assert {"source", "reference_diameter_px", "lesions"} <= set(seg) and seg["units"] == "px"
    assert {k.replace("_mm", "_px") for k in LESION_KEYS} <= set(seg["lesions"][0])
    assert rows[0]["units"] == "px" and not (out / "figures").exists()


def test_coco_mode_measures_every_annotation_with_the_image_spacing(tmp_path, masks):
    ann = write_coco(tmp_path / "annotations.json", list(masks), mm_per_pixel=0.25)
    (tmp_path / "images").mkdir()
    Image.fromarray((200 - 120 * masks[0]).astype(np.uint8)).save(tmp_path / "images" / "frame.png")
    out = tmp_path / "out"
    assert main(["--coco", str(ann), "--images", str(tmp_path / "images"), "--out", str(out)]) == 0
    data, rows = _read(out)
    assert [len(s["lesions"]) for s in data["segments"]] == [1, 2]
    for s in data["segments"]:
        assert s["units"] == "mm" and s["cass_segment"] == 13 and s["cass_name"] == "mid LAD"
        assert s["frame"] == "frame.png" and (out / s["figure"]).is_file()
    assert len(rows) == 3 and {r["cass_segment"] for r in rows} == {"13"}
    assert [r["lesion"] for r in rows] == ["1", "1", "2"]


def test_predictions_mode_keeps_scores_above_the_threshold(tmp_path, masks):
    pred = write_predictions(tmp_path / "predictions.json", list(masks), scores=[0.9, 0.2], mm_per_pixel=0.25)
    out = tmp_path / "out"
    assert main(["--predictions", str(pred), "--out", str(out), "--no-figures"]) == 0
    data, rows = _read(out)
    (seg,) = data["segments"]
    assert seg["score"] == 0.9 and seg["cass_name"] == "mid LAD" and seg["mm_per_pixel"] == 0.25
    assert len(rows) == 1
    out2 = tmp_path / "out2"
    assert main(["--predictions", str(pred), "--out", str(out2), "--no-figures", "--min-score", "0.1"]) == 0
    assert len(_read(out2)[0]["segments"]) == 2


@pytest.mark.parametrize("case", ["missing", "empty", "unreadable", "non_binary", "bad_spacing", "bad_coco",
                                  "ostium_outside"])
def test_bad_input_is_one_error_line_exit_2_and_leaves_the_output_alone(tmp_path, masks, capsys, case):
    out = tmp_path / "out"
    assert main(["--mask", str(save_png(tmp_path / "good.png", masks[0])), "--out", str(out), "--no-figures"]) == 0
    before = (out / "qca.json").read_bytes()
    capsys.readouterr()
    bad = tmp_path / "bad.png"
    args = ["--mask", str(bad)]
    if case == "empty":
        save_png(bad, np.zeros((64, 64), bool))
    elif case == "unreadable":
        bad.write_bytes(b"not a png at all")
    elif case == "non_binary":
        Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 7).save(bad)
    elif case == "bad_spacing":
        args = ["--mask", str(tmp_path / "good.png"), "--mm-per-pixel", "-1"]
    elif case == "bad_coco":
        bad = tmp_path / "bad.json"
        bad.write_text("{not json")
        args = ["--coco", str(bad)]
    elif case == "ostium_outside":  # a point off the frame (e.g. typed in another picture's pixels) is no hint
        args = ["--mask", str(tmp_path / "good.png"), "--ostium", "5000", "-3"]
    rc = main(args + ["--out", str(out), "--overwrite"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ")
    named = {"bad_spacing": "--mm-per-pixel", "ostium_outside": "--ostium"}.get(case, bad.name)
    assert named in err[0]
    assert (out / "qca.json").read_bytes() == before


@pytest.mark.parametrize("spacing,warned", [("0.25", False), ("5", True)])
def test_an_implausible_spacing_is_warned_about_and_still_used(tmp_path, masks, capsys, spacing, warned):
    """The check tools/predict.py makes of --mm-per-pixel: outside 0.02-2.0 one warning line, mm scaled by it."""
    out = tmp_path / "out"
    assert main(["--mask", str(save_png(tmp_path / "seg.png", masks[0])), "--mm-per-pixel", spacing,
                 "--out", str(out), "--no-figures"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == int(warned)
    if warned:
        assert err[0].startswith("warning: --mm-per-pixel 5 is outside 0.02-2 mm per pixel") and "0.1-0.5" in err[0]
    assert json.loads((out / "qca.json").read_text())["inputs"]["mm_per_pixel"] == float(spacing)


def test_existing_output_needs_overwrite(tmp_path, masks, capsys):
    m = str(save_png(tmp_path / "seg.png", masks[0]))
    out = tmp_path / "out"
    assert main(["--mask", m, "--out", str(out), "--no-figures"]) == 0
    capsys.readouterr()
    assert main(["--mask", m, "--out", str(out), "--no-figures"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["--mask", m, "--out", str(out), "--no-figures", "--overwrite"]) == 0


def test_an_empty_annotation_is_skipped_and_reported_in_a_batch(tmp_path, masks, capsys):
    ann = write_coco(tmp_path / "annotations.json", [masks[0], np.zeros_like(masks[0])])
    out = tmp_path / "out"
    assert main(["--coco", str(ann), "--out", str(out), "--no-figures"]) == 0
    data, _ = _read(out)
    assert len(data["segments"]) == 1 and len(data["skipped"]) == 1
    (skipped,) = data["skipped"]
    assert "empty" in skipped["error"] and "warning: skipped" in capsys.readouterr().err
    assert not skipped["error"].startswith(skipped["source"])  # the source is said once, in its own key


def test_the_csv_says_which_lesions_run_into_a_mask_end(tmp_path):
    mask, _, _ = tube(lesions=[(100.0, 48.0, 60.0), (190.0, 60.0, 60.0)])  # the second is cut by the end
    assert main(["--mask", str(save_png(tmp_path / "m.png", mask)), "--ostium", "28", "70", "--out",
                 str(tmp_path / "q"), "--no-figures"]) == 0
    with open(tmp_path / "q" / "qca.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["open_end"] for r in rows] == ["", "end"]


def _pct(out: Path) -> float:
    (seg,) = json.loads((out / "qca.json").read_text())["segments"]
    return seg["percent_diameter_stenosis"]


@pytest.mark.parametrize("kind", ["jpeg", "alpha_only_rgba", "stack_of_one_npy"])
def test_mask_files_as_other_tools_save_them_measure_like_the_png(tmp_path, masks, kind):
    """A JPEG (compression noise: many grey values), a constant colour painted through the alpha channel,
    a (1, H, W) .npy: the same vessel as the binary PNG, so the same numbers."""
    m = masks[0]
    assert main(["--mask", str(save_png(tmp_path / "seg.png", m)), "--out", str(tmp_path / "png"),
                 "--no-figures"]) == 0
    if kind == "jpeg":
        path = tmp_path / "seg.jpg"
        Image.fromarray(m.astype(np.uint8) * 255).save(path, quality=75)
        assert len(np.unique(np.asarray(Image.open(path)))) > 2
    elif kind == "alpha_only_rgba":
        path = tmp_path / "seg_rgba.png"
        rgba = np.full(m.shape + (4,), 255, np.uint8)
        rgba[..., 3] = m * 255
        Image.fromarray(rgba).save(path)
    else:
        path = tmp_path / "seg.npy"
        np.save(path, m[None].astype(np.uint8))
    assert main(["--mask", str(path), "--out", str(tmp_path / "other"), "--no-figures"]) == 0
    assert _pct(tmp_path / "other") == pytest.approx(_pct(tmp_path / "png"), abs=1.0)


@pytest.mark.parametrize("case, found", [
    ("empty_npy", "cannot be read"), ("nan_npy", "NaN"), ("text_npy", "holds <U"),
    ("inverted", "is it inverted"), ("folder", "is a folder"),
])
def test_unusable_mask_files_are_one_error_line_not_a_traceback(tmp_path, masks, capsys, case, found):
    m = masks[0]
    path = tmp_path / "bad.npy"
    if case == "empty_npy":
        path.write_bytes(b"")
    elif case == "nan_npy":
        np.save(path, np.where(m, np.nan, 0.0))  # NaN != 0 was taken for vessel
    elif case == "text_npy":
        np.save(path, np.array([["a", "b"], ["c", "d"]]))
    elif case == "inverted":
        path = save_png(tmp_path / "bad.png", ~m)  # was measured: a 'vessel' as wide as the frame
    else:
        path = tmp_path / "bad"
        path.mkdir()
    assert main(["--mask", str(path), "--out", str(tmp_path / "out"), "--no-figures"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and path.name in err[0] and found in err[0], err
    assert not (tmp_path / "out").exists()


def test_predictions_with_a_broken_rle_or_a_bad_score_are_skipped_and_qca_json_stays_json(tmp_path, masks):
    """An RLE whose runs cover too few pixels decoded (pycocotools) into a mask of uninitialised memory,
    and a NaN score was kept and written as NaN (not JSON): both are skipped, with the reason."""
    pred = write_predictions(tmp_path / "p.json", [masks[0]] * 4, scores=[0.9] * 4)
    recs = json.loads(pred.read_text())
    recs[1]["segmentation"] = {"size": list(masks[0].shape), "counts": [5, 10]}
    recs[2]["score"] = float("nan")
    recs[3]["score"] = "0.9"
    pred.write_text(json.dumps(recs))
    out = tmp_path / "out"
    assert main(["--predictions", str(pred), "--out", str(out), "--no-figures"]) == 0
    data = json.loads((out / "qca.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in qca.json"))
    assert len(data["segments"]) == 1
    why = {s["source"]: s["error"] for s in data["skipped"]}
    assert "RLE runs cover 15 pixels" in why["p.json#1"]
    assert why["p.json#2"] == "score nan is not a finite number" and "not a finite number" in why["p.json#3"]


def test_coco_file_with_a_bom_and_an_image_without_its_size(tmp_path, masks):
    """A BOM (Windows tools) is read; an image record without height/width still measures its RLE
    annotations (the RLE has the size) and skips a polygon one with the reason."""
    ann = write_coco(tmp_path / "a.json", [masks[0]])
    data = json.loads(ann.read_text())
    del data["images"][0]["height"], data["images"][0]["width"]
    data["annotations"].append({"id": 2, "image_id": 1, "category_id": 13, "segmentation": [[10, 10, 20, 10, 20, 20]]})
    ann.write_bytes(json.dumps(data).encode("utf-8-sig"))
    out = tmp_path / "out"
    assert main(["--coco", str(ann), "--out", str(out), "--no-figures"]) == 0
    res = json.loads((out / "qca.json").read_text())
    assert len(res["segments"]) == 1 and res["segments"][0]["percent_diameter_stenosis"] == pytest.approx(60, abs=3)
    assert "no usable height/width" in res["skipped"][0]["error"]
