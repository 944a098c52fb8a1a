"""The study's CSV layout: memory-mapped frame reads, frame scaling, and row errors that name the row,
the column and the reason."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
from data_fixtures import read_rows, write_csv, write_handmade

from sam3_angio.data.cine import CineError, read_frame, to_gray_uint8
from sam3_angio.data.coco_convert import convert_csv_to_coco
from sam3_angio.data.layout import CsvLayoutError, RowError, validate_csv
from sam3_angio.data.masks import resize_nearest


def test_read_frame_touches_one_frame_not_the_cine(tmp_path):
    cine = np.random.default_rng(0).random((60, 64, 64), dtype=np.float32)  # 983 kB, a frame 16 kB
    path = tmp_path / "c.npy"
    np.save(path, cine)
    tracemalloc.start()
    frame = read_frame(path, 37)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert np.array_equal(frame, cine[37])
    assert peak < 4 * cine[0].nbytes, f"peak {peak} B for a {cine[0].nbytes} B frame"


def test_read_frame_out_of_range_names_the_valid_range(tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((5, 4, 4), np.uint8))
    with pytest.raises(CineError, match=r"frame_index 5 is out of range .* 5 frames \(valid: 0\.\.4\)"):
        read_frame(tmp_path / "c.npy", 5)


def test_cine_of_wrong_rank_is_rejected(tmp_path):
    np.save(tmp_path / "c.npy", np.zeros((4, 4), np.uint8))
    with pytest.raises(CineError, match=r"expected \(T, H, W\) or \(T, H, W, C\)"):
        read_frame(tmp_path / "c.npy", 0)


def test_frame_scaling_rules():
    u8 = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(to_gray_uint8(u8), u8)
    f01 = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(to_gray_uint8(f01), np.round(f01 * 255).astype(np.uint8))
    u16 = (np.arange(10000, dtype=np.uint16) % 4096).reshape(100, 100)  # 12-bit detector values
    out = to_gray_uint8(u16)
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    order = np.argsort(u16.ravel(), kind="stable")
    assert np.all(np.diff(out.ravel()[order].astype(int)) >= 0)  # a monotone window
    rgb = np.stack([u8, u8, u8], axis=-1)
    assert np.array_equal(to_gray_uint8(rgb), u8)
    assert np.array_equal(to_gray_uint8(u8[..., None]), u8)


def test_rgb_cine_frames_become_luma(tmp_path):
    cine = np.zeros((2, 3, 3, 3), np.uint8)
    cine[1, ..., 0] = 200  # pure red
    np.save(tmp_path / "c.npy", cine)
    gray = to_gray_uint8(read_frame(tmp_path / "c.npy", 1))
    assert gray.shape == (3, 3) and int(gray[0, 0]) == round(0.299 * 200)


def test_resize_nearest_integer_round_trip():
    m = np.random.default_rng(1).random((16, 20)) > 0.6
    up = resize_nearest(m, (48, 60))
    assert np.array_equal(resize_nearest(up, (16, 20)), m)


def test_handmade_layout_validates_and_resolves_paths_from_the_csv_folder(tmp_path, monkeypatch):
    csv_path = write_handmade(tmp_path / "study")
    monkeypatch.chdir(tmp_path)  # not the CSV's folder
    for task in ("vessel", "cass", "stenosis"):
        good, problems = validate_csv(csv_path, task)
        assert problems == [] and len(good) == 4
    assert good[0].view_angles == {"primary": -30.0, "secondary": 25.0}
    assert good[0].cine.n_frames == 3 and good[0].cine.frame_shape == (32, 40)


def test_missing_column_names_it(tmp_path):
    csv_path = write_handmade(tmp_path / "study")
    rows = read_rows(csv_path)
    cols = [c for c in rows[0] if c != "frame_index"]
    write_csv(csv_path, rows, cols)
    with pytest.raises(CsvLayoutError, match="lacks column frame_index"):
        validate_csv(csv_path, "cass")


def _break(rows, i, column, value):
    rows[i][column] = value
    return rows


def _nan_angle(root, rows):
    p = root / rows[1]["contours_path"]
    d = json.loads(p.read_text())
    d["view_angles"]["primary"] = float("nan")
    p.write_text(json.dumps(d))  # json writes NaN
    return rows


def _wrong_shape_mask(root, rows):
    from PIL import Image

    Image.fromarray(np.full((32, 41), 255, np.uint8)).save(root / rows[1]["vessel_mask_actual_path"])
    return rows


BAD_ROWS = {
    # name: (task, edit(root, rows) -> rows, column named, reason pattern)
    "missing cine": ("cass", lambda root, rows: _break(rows, 1, "cine_path", "cines/nope.npy"),
                     "cine_path", r"cine 'cines/nope\.npy' does not exist|nope\.npy' does not exist"),
    "frame out of range": ("cass", lambda root, rows: _break(rows, 1, "frame_index", "3"),
                           "frame_index", r"3 is out of range for cine 'cines/p0\.npy' with 3 frames \(valid: 0\.\.2\)"),
    "mask of wrong shape": ("cass", _wrong_shape_mask, "vessel_mask_actual_path",
                            r"has shape 32x41 \(HxW\) but the frame is 32x40"),
    "NaN angle": ("cass", _nan_angle, "contours_path", r"view_angles\.primary is nan \(NaN angle\)"),
    "unknown CASS id": ("cass", lambda root, rows: _break(rows, 1, "cass_segment", "31"),
                        "cass_segment", r"unknown CASS id '31'"),
    "CASS id outside the class set": ("cass", lambda root, rows: _break(rows, 1, "cass_segment", "11"),
                                      "cass_segment", r"CASS id 11 \(left main\) is not in the class set"),
    "bad split": ("cass", lambda root, rows: _break(rows, 1, "split", "training"),
                  "split", r"'training' is not a split \(expected one of train, val, test\)"),
    "missing mask file": ("cass", lambda root, rows: _break(rows, 1, "vessel_mask_actual_path", "masks/gone.png"),
                          "vessel_mask_actual_path", r"mask '.*gone\.png' does not exist"),
    "missing pseudo-label": ("vessel", lambda root, rows: _break(rows, 1, "deepsa_pseudo_label_path", "pseudo/x.png"),
                             "deepsa_pseudo_label_path", r"x\.png' does not exist"),
    "bad frame_index": ("vessel", lambda root, rows: _break(rows, 1, "frame_index", "one"),
                        "frame_index", r"'one' is not a frame number"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_each_bad_row_stops_the_conversion_with_row_and_reason(tmp_path, case):
    task, edit, column, reason = BAD_ROWS[case]
    root = tmp_path / "study"
    csv_path = write_handmade(root)
    write_csv(csv_path, edit(root, read_rows(csv_path)))
    with pytest.raises(RowError) as info:
        convert_csv_to_coco(csv_path, tmp_path / "out", task, progress=False)
    msg = str(info.value)
    assert msg.startswith(f"study.csv row 2 (line 3), column '{column}': "), msg
    assert __import__("re").search(reason, msg), msg
    assert "--skip-bad-rows" in msg
    assert not (tmp_path / "out").exists()


def test_stenosis_task_without_a_recorded_location_is_a_clear_error(tmp_path):
    root = tmp_path / "study"
    csv_path = write_handmade(root)
    p = root / "contours" / "p0_13.json"
    d = json.loads(p.read_text())
    del d["stenosis"]
    p.write_text(json.dumps(d))
    with pytest.raises(RowError, match=r"row 2 .*has no \"stenosis\" entry; the stenosis task needs"):
        convert_csv_to_coco(csv_path, tmp_path / "out", "stenosis", progress=False)


def test_missing_view_angles_is_an_error_unless_allowed(tmp_path):
    root = tmp_path / "study"
    csv_path = write_handmade(root)
    for name in ("p0_12.json", "p0_13.json"):
        p = root / "contours" / name
        d = json.loads(p.read_text())
        del d["view_angles"]
        p.write_text(json.dumps(d))
    with pytest.raises(RowError, match="has no view_angles .*--allow-missing-angles"):
        convert_csv_to_coco(csv_path, tmp_path / "out", "cass", progress=False)
    res = convert_csv_to_coco(csv_path, tmp_path / "out", "cass", require_view_angles=False, progress=False)
    imgs = json.loads((tmp_path / "out" / "train" / "annotations.json").read_text())["images"]
    assert imgs[0]["view_angles"] is None and res["splits"]["train"]["n_images"] == 1


def _lines(csv_path):
    return csv_path.read_text().splitlines()


@pytest.mark.parametrize("edit, found", [
    (lambda cells: cells + ["extra"], r"has 17 cells but the header has 16 columns: extra cells 'extra'"),
    (lambda cells: cells[:2] + ["MID,LAD"] + cells[3:], r"has 17 cells .*unquoted ','"),  # shifts every column
    (lambda cells: cells[:-1], r"has 15 cells but the header has 16 columns: a cell is missing"),
])
def test_a_row_with_a_cell_too_many_or_too_few_is_named_not_read_shifted(tmp_path, edit, found):
    csv_path = write_handmade(tmp_path / "study")
    lines = _lines(csv_path)
    lines[2] = ",".join(edit(lines[2].split(",")))
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RowError) as info:
        convert_csv_to_coco(csv_path, tmp_path / "out", "cass", progress=False)
    msg = str(info.value)
    assert msg.startswith("study.csv row 2 (line 3): "), msg
    assert __import__("re").search(found, msg), msg
    assert not (tmp_path / "out").exists()


def _annotations(out):
    return {split: json.loads((out / split / "annotations.json").read_text()) for split in ("train", "val")}


def test_a_spreadsheet_export_converts_like_the_plain_csv(tmp_path):
    """Semicolons and decimal commas (a European spreadsheet), upper-case header, BOM, CRLF, and the
    empty rows of separators a spreadsheet leaves below the data: the same data set as the plain CSV."""
    csv_path = write_handmade(tmp_path / "study")
    convert_csv_to_coco(csv_path, tmp_path / "plain", "cass", progress=False)
    lines = _lines(csv_path)
    header = lines[0].upper().split(",")
    rows = [[c.replace(".", ",") if c.replace(".", "").isdigit() else c for c in line.split(",")] for line in lines[1:]]
    n = len(header)
    text = "\r\n".join([";".join(header)] + [";".join(r) for r in rows] + [";" * (n - 1)] * 2) + "\r\n"
    other = tmp_path / "study" / "export.csv"
    other.write_bytes(text.encode("utf-8-sig"))
    assert "0,3" in text and "70,0" in text
    convert_csv_to_coco(other, tmp_path / "sheet", "cass", progress=False)
    plain, sheet = _annotations(tmp_path / "plain"), _annotations(tmp_path / "sheet")
    for split in plain:
        assert sheet[split]["annotations"] == plain[split]["annotations"]
        for a, b in zip(sheet[split]["images"], plain[split]["images"]):
            assert a["mm_per_pixel"] == b["mm_per_pixel"] == 0.3
            assert a["view_angles"] == b["view_angles"] and a["source_rows"] == b["source_rows"]


def _save_mask(root, rows, name, save):
    path = root / "masks" / name
    from PIL import Image

    m = np.array(Image.open(root / rows[1]["vessel_mask_actual_path"]))
    save(m, path)
    rows[1]["vessel_mask_actual_path"] = f"masks/{name}"
    return rows


def test_a_jpeg_mask_is_thresholded_not_read_as_a_whole_frame_of_vessel(tmp_path):
    from PIL import Image

    root = tmp_path / "study"
    csv_path = write_handmade(root)
    convert_csv_to_coco(csv_path, tmp_path / "png", "cass", progress=False)
    rows = _save_mask(root, read_rows(csv_path), "p0_13.jpg", lambda m, p: Image.fromarray(m).save(p, quality=75))
    noisy = np.array(Image.open(root / "masks" / "p0_13.jpg"))
    write_csv(csv_path, rows)
    convert_csv_to_coco(csv_path, tmp_path / "jpg", "cass", progress=False)
    png, jpg = _annotations(tmp_path / "png")["train"], _annotations(tmp_path / "jpg")["train"]
    a_png = {a["category_id"]: a for a in png["annotations"]}[13]
    a_jpg = {a["category_id"]: a for a in jpg["annotations"]}[13]
    assert (noisy > 0).sum() > 1.5 * a_png["area"]  # non-zero = vessel would add the compression noise
    assert abs(a_jpg["area"] - a_png["area"]) <= 0.1 * a_png["area"]
    assert a_jpg["bbox"] == pytest.approx(a_png["bbox"], abs=1)


@pytest.mark.parametrize("name, save, found", [
    ("inverted.png", lambda m, p: __import__("PIL.Image").Image.fromarray(255 - m).save(p),
     r"covers 8\d\.\d % of the frame: is it inverted"),
    ("nan.npy", lambda m, p: np.save(p, np.where(m > 0, 1.0, np.nan).astype(np.float32)),
     r"holds NaN or infinite values"),
])
def test_an_inverted_or_nan_mask_is_a_row_error(tmp_path, name, save, found):
    root = tmp_path / "study"
    csv_path = write_handmade(root)
    write_csv(csv_path, _save_mask(root, read_rows(csv_path), name, save))
    with pytest.raises(RowError) as info:
        convert_csv_to_coco(csv_path, tmp_path / "out", "cass", progress=False)
    msg = str(info.value)
    assert msg.startswith("study.csv row 2 (line 3), column 'vessel_mask_actual_path': "), msg
    assert __import__("re").search(found, msg), msg


def test_contours_json_with_a_bom_is_read_and_one_not_utf8_is_a_row_error(tmp_path):
    root = tmp_path / "study"
    csv_path = write_handmade(root)
    p = root / "contours" / "p0_13.json"
    p.write_bytes(p.read_text().encode("utf-8-sig"))  # Windows tools write a BOM
    good, problems = validate_csv(csv_path, "cass")
    assert problems == [] and len(good) == 4
    p.write_bytes(b"\xff\xfe" + p.read_text(encoding="utf-8-sig").encode("utf-16-le"))
    with pytest.raises(RowError, match=r"row 2 \(line 3\), column 'contours_path': .*p0_13\.json' is not UTF-8"):
        convert_csv_to_coco(csv_path, tmp_path / "out", "cass", progress=False)
