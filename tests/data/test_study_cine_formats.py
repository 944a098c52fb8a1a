"""The study CSV's cine_path as a DICOM XA file, a multi-page TIFF or a video, not only a .npy: the
conversion for training writes the very pixels tools/predict.py reads from the same file; a DICOM
header fills the view angles and the pixel spacing the CSV and the contours JSON leave open, and
contradicting angles are a row error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from data_fixtures import read_rows, write_csv, write_handmade
from PIL import Image

from sam3_angio.data.coco_convert import convert_csv_to_coco
from sam3_angio.data.dicom import write_xa_dicom
from sam3_angio.data.inputs import InputError, read_input
from sam3_angio.data.layout import RowError, validate_csv

_DICOM_RULE = "dicom:ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"


def _study(tmp_path, fmt: str):
    """The hand-made study with every cine rewritten as ``fmt`` (npy kept as the reference) and the CSV
    pointing at the new files; returns (csv path, {cine stem: (T, H, W) frames written})."""
    csv_path = write_handmade(tmp_path / "study")
    root = csv_path.parent
    rows = read_rows(csv_path)
    written = {}
    for stem in sorted({r["cine_path"] for r in rows}):
        cine = np.load(root / stem)
        name = stem.replace(".npy", {"dicom": ".dcm", "tiff": ".tif", "video": ".mp4", "npy": ".npy"}[fmt])
        if fmt == "dicom":  # 12 bits in 16, as detectors store them; angles and isocenter spacing in the header
            cine = (cine.astype(np.uint16) * 16 + 7).astype(np.uint16)
            write_xa_dicom(root / name, cine, view_angles=(-30.0 + int(stem[-5]), 25.0), bits_stored=12,
                           imager_pixel_spacing=0.4, magnification=1.25)
        elif fmt == "tiff":
            pages = [Image.fromarray(a) for a in cine]
            pages[0].save(root / name, save_all=True, append_images=pages[1:], compression="tiff_lzw")
        elif fmt == "video":
            import imageio.v3 as iio

            iio.imwrite(root / name, np.repeat(cine[..., None], 3, axis=3), plugin="pyav", codec="libx264", fps=15)
        written[name] = cine
        for r in rows:
            if r["cine_path"] == stem:
                r["cine_path"] = name
    return write_csv(csv_path, rows), written


def _png(out, split, name):
    return np.asarray(Image.open(out / split / "images" / name))


def _annotations(out, split):
    return json.loads((out / split / "annotations.json").read_text())


@pytest.mark.parametrize("fmt", ["dicom", "tiff", "video"])
def test_conversion_writes_the_pixels_predict_reads_from_the_same_file(tmp_path, fmt):
    csv_path, written = _study(tmp_path, fmt)
    res = convert_csv_to_coco(csv_path, tmp_path / "coco", "cass", progress=False)
    assert {s: d["n_images"] for s, d in res["splits"].items()} == {"train": 1, "val": 1}
    for split, (name, _) in zip(("train", "val"), sorted(written.items())):
        coco = _annotations(tmp_path / "coco", split)
        (img,) = coco["images"]
        assert img["cine_path"] == name and img["frame_index"] == 1 and (img["height"], img["width"]) == (32, 40)
        assert len(coco["annotations"]) == 2  # segments 12 and 13 of frame 1
        (frame,) = read_input(csv_path.parent / name, frames=[1])  # what tools/predict.py sees
        np.testing.assert_array_equal(_png(tmp_path / "coco", split, img["file_name"]), frame.image)


def test_a_lossless_multipage_tiff_converts_exactly_like_the_npy(tmp_path):
    ref_csv, _ = _study(tmp_path / "a", "npy")
    tif_csv, _ = _study(tmp_path / "b", "tiff")
    convert_csv_to_coco(ref_csv, tmp_path / "ref", "vessel", progress=False)
    convert_csv_to_coco(tif_csv, tmp_path / "tif", "vessel", progress=False)
    for split in ("train", "val"):
        a, b = _annotations(tmp_path / "ref", split), _annotations(tmp_path / "tif", split)
        assert [x["segmentation"] for x in a["annotations"]] == [x["segmentation"] for x in b["annotations"]]
        np.testing.assert_array_equal(_png(tmp_path / "ref", split, a["images"][0]["file_name"]),
                                      _png(tmp_path / "tif", split, b["images"][0]["file_name"]))


def test_a_dicom_header_fills_unknown_angles_and_spacing(tmp_path):
    csv_path, _ = _study(tmp_path, "dicom")
    root = csv_path.parent
    rows = read_rows(csv_path)
    for r in rows:
        r["mm_per_pixel"] = ""  # spacing: only the DICOM header has it
        contours = json.loads((root / r["contours_path"]).read_text())
        if r["patient_id"] == "P0":
            contours["view_angles"] = None  # unknown to the annotation tool
        else:
            del contours["view_angles"]  # not exported at all
        (root / r["contours_path"]).write_text(json.dumps(contours))
    write_csv(csv_path, rows)
    good, problems = validate_csv(csv_path, "cass")  # view angles required: the header has them
    assert problems == []
    assert {(g.row.patient_id, g.angles_source, g.spacing_source) for g in good} == {
        ("P0", "dicom", _DICOM_RULE), ("P1", "dicom", _DICOM_RULE)}
    convert_csv_to_coco(csv_path, tmp_path / "coco", "cass", progress=False)
    img = _annotations(tmp_path / "coco", "val")["images"][0]
    assert img["view_angles"] == {"primary": -29.0, "secondary": 25.0} and img["angles_source"] == "dicom"
    assert img["mm_per_pixel"] == pytest.approx(0.4 / 1.25)
    # inference on the study CSV takes the same view by the same rule
    frames = read_input(csv_path)
    assert sorted((f.view_angles.to_dict()["primary"], f.angles_source, round(f.mm_per_pixel, 6)) for f in frames) \
        == [(-30.0, "dicom", 0.32), (-29.0, "dicom", 0.32)]


def test_the_csv_and_the_contours_keep_precedence_over_the_header(tmp_path):
    csv_path, _ = _study(tmp_path, "dicom")
    good, problems = validate_csv(csv_path, "cass")
    assert problems == []
    assert {(g.angles_source, g.mm_per_pixel, g.spacing_source) for g in good} == {("contours", 0.3, "csv")}


def test_contours_angles_that_contradict_the_dicom_header_are_a_row_error(tmp_path):
    csv_path, _ = _study(tmp_path, "dicom")
    root = csv_path.parent
    rows = read_rows(csv_path)
    path = root / rows[2]["contours_path"]  # P1, segment 12: header (-29, 25)
    contours = json.loads(path.read_text())
    contours["view_angles"] = {"primary": 29.0, "secondary": 25.0}  # the other sign convention
    path.write_text(json.dumps(contours))
    with pytest.raises(RowError, match=r"row 3 \(line 4\), column 'contours_path': .*view_angles \(29, 25\) but the "
                                       r"DICOM header of cine 'cines/p1\.dcm' says \(-29, 25\)"):
        convert_csv_to_coco(csv_path, tmp_path / "coco", "cass", progress=False)
    assert not (tmp_path / "coco").exists()
    with pytest.raises(InputError, match=r"row 3 .*the DICOM header of cine"):
        read_input(csv_path)
    contours["view_angles"] = {"primary": -29.4, "secondary": 25.3}  # rounding: agrees
    path.write_text(json.dumps(contours))
    assert validate_csv(csv_path, "cass")[1] == []


def test_many_frames_of_one_video_are_converted_in_one_pass(tmp_path):
    csv_path, written = _study(tmp_path, "video")
    rows = read_rows(csv_path)
    extra = []
    for k in (0, 2):  # two more frames of the first video, listed out of order
        r = dict(rows[0], frame_index=str(2 - k), split="train")
        extra.append(r)
    write_csv(csv_path, rows + extra)
    convert_csv_to_coco(csv_path, tmp_path / "coco", "cass", progress=False)
    coco = _annotations(tmp_path / "coco", "train")
    assert sorted(i["frame_index"] for i in coco["images"]) == [0, 1, 2]
    video = csv_path.parent / "cines" / "p0.mp4"
    by_frame = {f.frame_index: f.image for f in read_input(video)}
    for img in coco["images"]:
        np.testing.assert_array_equal(_png(tmp_path / "coco", "train", img["file_name"]), by_frame[img["frame_index"]])


def test_bad_cines_name_the_row_and_the_reason(tmp_path):
    csv_path, _ = _study(tmp_path, "video")
    root = csv_path.parent
    rows = read_rows(csv_path)
    rows[0]["frame_index"] = "3"  # the video has 3 frames
    (root / "cines" / "notes.dat").write_text("not a cine")
    rows[2]["cine_path"] = "cines/notes.dat"
    (root / "cines" / "empty.mp4").write_bytes(b"")
    rows[3]["cine_path"] = "cines/empty.mp4"
    write_csv(csv_path, rows)
    with pytest.raises(RowError) as e:
        convert_csv_to_coco(csv_path, tmp_path / "coco", "cass", progress=False)
    text = str(e.value)
    assert "row 1 (line 2), column 'frame_index': 3 is out of range for cine 'cines/p0.mp4' with 3 frames" in text
    res = convert_csv_to_coco(csv_path, tmp_path / "coco", "cass", progress=False, skip_bad_rows=True)
    report = {s["row"]: s["problems"][0] for s in json.loads((tmp_path / "coco" / "skipped_rows.json").read_text())
              ["skipped"]}
    assert res["skipped_rows"] == [1, 3, 4]
    assert "is not a frame file (expected a DICOM file, a cine .npy" in report[3]["reason"]
    assert report[4]["column"] == "cine_path" and "is empty (0 bytes)" in report[4]["reason"]
