"""CSV -> COCO conversion: round trip of frames and masks, grouping of rows that share a frame,
--skip-bad-rows reports, all-or-nothing output, and the tools run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import read_rows, tiny_synthetic, write_csv, write_handmade
from PIL import Image

from sam3_angio.cass import DEFAULT_CLASS_IDS
from sam3_angio.data.atomic import OutputExistsError
from sam3_angio.data.coco_convert import convert_csv_to_coco
from sam3_angio.data.coco_io import decode_segmentation
from sam3_angio.data.masks import read_mask, resize_nearest

ROOT = Path(__file__).resolve().parents[2]


def _load(out: Path, split: str) -> dict:
    return json.loads((out / split / "annotations.json").read_text())


def test_cass_round_trip_frames_and_masks(tmp_path):
    root = tmp_path / "study"
    csv_path = write_handmade(root)
    out = tmp_path / "coco"
    res = convert_csv_to_coco(csv_path, out, "cass", progress=False)
    assert res["splits"]["train"]["n_images"] == 1 and res["splits"]["val"]["n_images"] == 1
    coco = _load(out, "train")
    assert [c["id"] for c in coco["categories"]] == list(DEFAULT_CLASS_IDS)
    (img,) = coco["images"]  # two rows, one (cine, frame): one image
    assert img["view_angles"] == {"primary": -30.0, "secondary": 25.0}
    assert img["patient_id"] == "P0" and img["phase"] == "PRE" and img["vessel_name"] == "LAD"
    assert img["source_rows"] == [1, 2] and img["cass_segments"] == [12, 13] and img["frame_index"] == 1
    png = np.array(Image.open(out / "train" / "images" / img["file_name"]))
    assert np.array_equal(png, np.load(root / "cines" / "p0.npy")[1])
    assert len(coco["annotations"]) == 2
    for ann in coco["annotations"]:
        seg = ann["cass_segment"]
        expected = read_mask(root / "masks" / f"p0_{seg}.png")
        decoded = decode_segmentation(ann["segmentation"])
        assert ann["category_id"] == seg and np.array_equal(decoded, expected)
        ys, xs = np.nonzero(expected)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert ann["area"] == int(expected.sum()) and ann["iscrowd"] == 0
        assert isinstance(ann["segmentation"]["counts"], str)
    sten = [a for a in coco["annotations"] if a["cass_segment"] == 13][0]
    assert sten["stenosis_pct"] == 70.0 and sten["mld_mm"] == 0.9


def test_vessel_pseudo_labels_are_resized_to_the_frame(tmp_path):
    root = tmp_path / "study"
    csv_path = write_handmade(root)
    out = tmp_path / "coco"
    convert_csv_to_coco(csv_path, out, "vessel", progress=False)
    coco = _load(out, "val")
    assert coco["categories"] == [{"id": 1, "name": "coronary artery", "supercategory": "vessel"}]
    (ann,) = coco["annotations"]
    expected = resize_nearest(read_mask(root / "pseudo" / "p1.png"), (32, 40))
    assert np.array_equal(decode_segmentation(ann["segmentation"]), expected)
    assert ann["source_rows"] == [3, 4]


def test_stenosis_annotation_covers_the_recorded_lesion_only(tmp_path):
    root = tmp_path / "study"
    csv_path = write_handmade(root)
    out = tmp_path / "coco"
    convert_csv_to_coco(csv_path, out, "stenosis", progress=False)
    coco = _load(out, "train")
    assert coco["categories"] == [{"id": 1, "name": "stenosis", "supercategory": "lesion"}]
    (ann,) = coco["annotations"]  # segment 12 records "stenosis": null
    m = decode_segmentation(ann["segmentation"])
    seg = read_mask(root / "masks" / "p0_13.png")
    x, y, w, h = ann["bbox"]
    assert abs((x + w / 2) - 23.0) <= 1 and abs((y + h / 2) - 17.0) <= 2  # centred on the lesion
    assert w < 20 and m.sum() < seg.sum()  # a piece of the segment, not all of it


def test_skip_bad_rows_goes_on_and_reports_them(tmp_path):
    root = tmp_path / "study"
    csv_path = write_handmade(root)
    rows = read_rows(csv_path)
    rows[2]["frame_index"] = "9"
    rows[3]["cass_segment"] = "99"
    write_csv(csv_path, rows)
    out = tmp_path / "coco"
    res = convert_csv_to_coco(csv_path, out, "cass", skip_bad_rows=True, progress=False)
    assert res["skipped_rows"] == [3, 4]
    assert "val" not in res["splits"] and res["splits"]["train"]["n_annotations"] == 2
    report = json.loads((out / "skipped_rows.json").read_text())
    assert report["n_rows"] == 4 and report["n_skipped_rows"] == 2
    assert [e["row"] for e in report["skipped"]] == [3, 4]
    assert report["skipped"][0]["problems"][0]["column"] == "frame_index"
    assert "out of range" in report["skipped"][0]["problems"][0]["reason"]
    assert report["skipped"][1]["patient_id"] == "P1"
    text = (out / "skipped_rows.txt").read_text()
    assert "row 4 (line 5), column 'cass_segment': unknown CASS id '99'" in text


@pytest.mark.parametrize("bad", ["cass_segment", "empty_mask"])
def test_skip_bad_rows_with_every_row_bad_is_an_error_and_writes_nothing(tmp_path, bad):
    root = tmp_path / "study"
    csv_path = write_handmade(root)
    rows = read_rows(csv_path)
    if bad == "empty_mask":  # found only when the frames are written, not by the row checks
        m = root / "masks" / "empty.png"
        Image.fromarray(np.zeros(np.array(Image.open(root / rows[0]["vessel_mask_actual_path"])).shape,
                                 np.uint8)).save(m)
    for r in rows:
        if bad == "cass_segment":
            r["cass_segment"] = "99"
        else:
            r["vessel_mask_actual_path"] = "masks/empty.png"
    write_csv(csv_path, rows)
    out = tmp_path / "coco"
    with pytest.raises(ValueError, match=r"(?s)row 1 \(line 2\).*3 more bad rows.*left nothing to convert"):
        convert_csv_to_coco(csv_path, out, "cass", skip_bad_rows=True, progress=False)
    assert not out.exists()


def test_rows_sharing_a_frame_must_agree_on_view_angles(tmp_path):
    root = tmp_path / "study"
    csv_path = write_handmade(root)
    p = root / "contours" / "p0_13.json"
    d = json.loads(p.read_text())
    d["view_angles"]["primary"] = 40.0
    p.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=r"row 2 .*shares cine 'cines/p0\.npy' frame 1 with row 1 but has view_angles"):
        convert_csv_to_coco(csv_path, tmp_path / "coco", "cass", progress=False)


def test_interrupted_conversion_leaves_the_old_output_and_no_partial_folder(tmp_path, monkeypatch):
    csv_path = write_handmade(tmp_path / "study")
    out = tmp_path / "coco"
    convert_csv_to_coco(csv_path, out, "cass", progress=False)
    before = _load(out, "train")

    import sam3_angio.data.coco_convert as cc

    def explode(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cc, "write_split", explode)  # dies after the images were written
    with pytest.raises(KeyboardInterrupt):
        convert_csv_to_coco(csv_path, out, "vessel", overwrite=True, progress=False)
    assert _load(out, "train") == before  # the previous data set, untouched
    with pytest.raises(KeyboardInterrupt):
        convert_csv_to_coco(csv_path, tmp_path / "fresh", "vessel", progress=False)
    assert not (tmp_path / "fresh").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coco", "study"]  # no temp folders left


def test_existing_output_needs_overwrite(tmp_path):
    csv_path = write_handmade(tmp_path / "study")
    out = tmp_path / "coco"
    convert_csv_to_coco(csv_path, out, "cass", progress=False)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        convert_csv_to_coco(csv_path, out, "vessel", progress=False)
    convert_csv_to_coco(csv_path, out, "vessel", overwrite=True, progress=False)
    assert _load(out, "train")["categories"][0]["name"] == "coronary artery"


def test_uint16_and_float_cines_convert(tmp_path):
    root = tmp_path / "study"
    csv_path = write_handmade(root)
    cine = np.load(root / "cines" / "p0.npy")
    np.save(root / "cines" / "p0.npy", cine.astype(np.uint16) * 16)
    np.save(root / "cines" / "p1.npy", np.load(root / "cines" / "p1.npy").astype(np.float32) / 255.0)
    out = tmp_path / "coco"
    convert_csv_to_coco(csv_path, out, "cass", progress=False)
    img = _load(out, "val")["images"][0]
    png = np.array(Image.open(out / "val" / "images" / img["file_name"]))
    assert np.array_equal(png, np.load(root / "cines" / "p1.npy")[1].__mul__(255).round().astype(np.uint8))
    img = _load(out, "train")["images"][0]
    png = np.array(Image.open(out / "train" / "images" / img["file_name"]))
    assert png.dtype == np.uint8 and png.min() == 0 and png.max() == 255


def _tool(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools" / name), *args], capture_output=True, text=True,
                          timeout=300, cwd=str(ROOT))


def test_tools_generate_and_convert_as_a_user_runs_them(tmp_path):
    syn = tmp_path / "syn"
    p = _tool("make_synthetic.py", "--out", str(syn), "--n-patients", "2", "--size", "64", "--frames", "2",
              "--seed", "3")
    assert p.returncode == 0, p.stderr
    assert "frames/s" in p.stdout and (syn / "angio.csv").is_file()
    out = tmp_path / "coco"
    p = _tool("convert_to_coco.py", "--csv", str(syn / "angio.csv"), "--out", str(out), "--task", "cass")
    assert p.returncode == 0, p.stderr
    train, val = _load(out, "train"), _load(out, "val")
    assert len(train["images"]) > 0 and len(val["images"]) > 0
    assert not {i["patient_id"] for i in train["images"]} & {i["patient_id"] for i in val["images"]}
    # a user mistake: one message naming the row, exit status 2, no traceback
    rows = read_rows(syn / "angio.csv")
    rows[0]["split"] = "validation"
    write_csv(syn / "angio.csv", rows)
    p = _tool("convert_to_coco.py", "--csv", str(syn / "angio.csv"), "--out", str(tmp_path / "c2"), "--task", "cass")
    assert p.returncode == 2
    assert "error: angio.csv row 1 (line 2), column 'split': 'validation' is not a split" in p.stderr
    assert "Traceback" not in p.stderr
    p = _tool("make_synthetic.py", "--out", str(syn), "--n-patients", "2")
    assert p.returncode == 2 and "already exists" in p.stderr


def test_synthetic_set_converts_for_every_task_with_consistent_metadata(tmp_path_factory):
    csv_path = tiny_synthetic(tmp_path_factory.mktemp("syn"))
    base = tmp_path_factory.mktemp("coco")
    rows = read_rows(csv_path)
    frames = {(r["cine_path"], r["frame_index"]) for r in rows}
    n_images = {}
    for task in ("vessel", "cass", "stenosis"):
        res = convert_csv_to_coco(csv_path, base / task, task, progress=False)
        n_images[task] = sum(s["n_images"] for s in res["splits"].values())
        for split in res["splits"]:
            coco = _load(base / task, split)
            for img in coco["images"]:
                va = img["view_angles"]
                assert set(va) == {"primary", "secondary"} and -90 <= va["primary"] <= 90
                assert {rows[i - 1]["split"] for i in img["source_rows"]} == {split}
    assert n_images == {"vessel": len(frames), "cass": len(frames), "stenosis": len(frames)}
    n_lesions = sum(1 for r in rows if r["stenosis_pct"] and float(r["stenosis_pct"]) >= 20.0)
    n_sten = sum(len(_load(base / "stenosis", s)["annotations"]) for s in ("train", "val")
                 if (base / "stenosis" / s).exists())
    assert n_sten == n_lesions


def test_ensure_demo_data_generates_once_then_reuses(tmp_path, capsys):
    from sam3_angio.data.demo import ensure_demo_data

    root = tmp_path / "demo"
    kw = dict(n_patients=2, size=64, frames=2)
    paths = ensure_demo_data(root, "vessel", **kw)
    out = capsys.readouterr().out
    assert f"no demo data in '{root}': generating 2 synthetic patients" in out
    assert sorted(paths) == ["train_images", "train_json", "val_images", "val_json"]
    assert all(Path(p).exists() for p in paths.values())
    assert ensure_demo_data(root, "vessel", **kw) == paths
    assert "generating" not in capsys.readouterr().out
    cass = ensure_demo_data(root, "cass", **kw)  # converts the existing synthetic set, no new patients
    out = capsys.readouterr().out
    assert "generating" not in out and "converting" in out
    assert json.loads(Path(cass["train_json"]).read_text())["categories"][0]["name"] == "proximal RCA"
    # a half-written folder is never taken for a complete data set
    broken = tmp_path / "broken"
    (broken / "synthetic").mkdir(parents=True)
    (broken / "synthetic" / "angio.csv").write_text("patient_id\n")
    with pytest.raises(FileExistsError, match="not a complete data set"):
        ensure_demo_data(broken, "vessel", **kw)
