"""Unusual but legitimate inputs to tools/predict.py, and bad ones that used to slip through the checks:
legitimate ones are predicted as the model's training frames look, bad ones are one ``error:`` line naming the
file, exit status 2, and nothing already in the output folder is lost."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("argv,joined", [
    (["--angles", "-30,25"], ["--angles=-30,25"]),
    (["--angles", "-.5,10"], ["--angles=-.5,10"]),  # argparse took "-.5,10" for an option: "expected one argument"
    (["--angles", "30,-25"], ["--angles", "30,-25"]),
    (["--angles", "--quiet"], ["--angles", "--quiet"]),
])
def test_a_negative_first_angle_is_a_value_not_an_option(argv, joined):
    from sam3_angio.inference.cli import build_parser, join_negative_values

    assert join_negative_values(argv) == joined
    if argv[1] != "--quiet":
        args = build_parser().parse_intermixed_args(join_negative_values(
            ["x.png", "--checkpoint", "c.pt", "--out", "o", *argv]))
        assert args.angles == argv[1]


class StubPredictor:
    """Stands in for a trained run where the test is about inputs and outputs, not the model: one
    'proximal RCA' segment a frame, a square in its middle; records the frames and angles it was given."""

    batch_size = 2

    def __init__(self):
        from sam3_angio.inference.predictor import PredictorInfo

        self.naming = "fused"
        self.info = PredictorInfo("cass", "stub", None, None, "fused", True, [(1, "proximal RCA")])
        self.seen = []  # (image, angles) per frame

    def predict(self, images, angles, image_ids):
        import numpy as np
        from pycocotools import mask as mask_utils

        out = []
        for image, view, image_id in zip(images, angles, image_ids):
            self.seen.append((image, view))
            h, w = image.shape[:2]
            m = np.zeros((h, w), np.uint8, order="F")
            m[h // 4: max(h // 4 + 1, 3 * h // 4), w // 4: max(w // 4 + 1, 3 * w // 4)] = 1
            rle = mask_utils.encode(m)
            rle["counts"] = rle["counts"].decode()
            out.append([{"image_id": image_id, "category_id": 1, "score": 0.9, "detection_score": 0.9,
                         "query_category_id": 1, "cass_name": "proximal RCA", "segmentation": rle,
                         "bbox": [float(v) for v in mask_utils.toBbox(rle)], "area": int(m.sum())}])
        return out


def _predict(argv, predictor, capsys):
    from sam3_angio.inference.cli import main

    rc = main([*argv, "--checkpoint", "stub.pt", "--quiet"], predictor=predictor)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _inputs(folder):
    import json

    return {p.name: json.loads((p / "predictions.json").read_text())["images"][0]["input"]
            for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


@pytest.mark.parametrize("overwrite", [False, True])
def test_two_study_csvs_whose_cines_share_stems_write_one_folder_each(tmp_path, capsys, overwrite):
    """Two patients' study CSVs, each with cines p0.npy and p1.npy: the second CSV's cines used to land on
    the first's folders - replacing them with --overwrite (what this call had just written was lost),
    stopping the call without it."""
    from data_fixtures import write_handmade

    a, b = write_handmade(tmp_path / "pat_a"), write_handmade(tmp_path / "pat_b")
    out = tmp_path / "out"
    rc, stdout, err = _predict([str(a), str(b), "--out", str(out), *(["--overwrite"] if overwrite else [])],
                               StubPredictor(), capsys)
    assert rc == 0, err
    got = _inputs(out)
    assert sorted(got) == ["p0", "p0_2", "p1", "p1_2"]
    assert "pat_a" in got["p0"] and "pat_b" in got["p0_2"] and "pat_b" in got["p1_2"]
    assert "is written as 'p0_2'" in stdout


@pytest.mark.parametrize("side", [1, 8])
def test_a_thumbnail_sized_frame_is_refused_before_the_model(tmp_path, capsys, side):
    """A 1x1 or 8x8 'angiogram' was predicted (100 instances on an upscaled blur); it is one error line now."""
    import imageio.v3 as iio
    import numpy as np

    iio.imwrite(tmp_path / "icon.png", np.full((side, side), 90, np.uint8))
    out = tmp_path / "out"
    stub = StubPredictor()
    rc, _, err = _predict([str(tmp_path / "icon.png"), "--out", str(out)], stub, capsys)
    assert rc == 2 and stub.seen == []
    assert err.startswith("error: ") and "\n" not in err.strip() and "Traceback" not in err
    assert "icon.png" in err and f"{side}x{side} pixels" in err and "at least 16 px" in err
    assert not out.exists() or not any(out.iterdir())


def test_an_exif_turned_jpeg_is_predicted_and_recorded_as_shown(tmp_path, capsys):
    """The model sees the picture as viewers show it, and predictions.json's size and masks are of that
    picture (a phone's JPEG stores the raster sideways with EXIF Orientation 6)."""
    import json

    import numpy as np
    from PIL import Image

    raster = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (40, 1))  # 40 x 64 stored
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(raster).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=100, subsampling=0)
    stub = StubPredictor()
    rc, _, err = _predict([str(tmp_path / "phone.jpg"), "--out", str(tmp_path / "out")], stub, capsys)
    assert rc == 0, err
    (image, _), = stub.seen
    assert image.shape == (64, 40)
    assert np.abs(image.astype(int) - np.rot90(raster, k=-1)).mean() < 3
    doc = json.loads((tmp_path / "out" / "phone" / "predictions.json").read_text())
    assert (doc["images"][0]["height"], doc["images"][0]["width"]) == (64, 40)
    assert doc["annotations"][0]["segmentation"]["size"] == [64, 40]


def test_a_rerun_with_out_inside_the_input_folder_does_not_predict_its_own_overlays(tmp_path, capsys):
    """`predict frames/ --recursive --out frames/pred` run twice: the second run took the first's
    overlay.png (and any hidden temporary folder's files) for input frames and wrote pred/overlay/."""
    import imageio.v3 as iio
    import numpy as np

    frames = tmp_path / "frames"
    (frames / ".cache").mkdir(parents=True)
    iio.imwrite(frames / "a.png", np.full((32, 32), 90, np.uint8))
    iio.imwrite(frames / ".cache" / "b.png", np.full((32, 32), 90, np.uint8))
    out = frames / "pred"
    for extra in ([], ["--overwrite"]):
        stub = StubPredictor()
        rc, _, err = _predict([str(frames), "--recursive", "--out", str(out), *extra], stub, capsys)
        assert rc == 0, err
        assert len(stub.seen) == 1
    assert sorted(p.name for p in out.iterdir()) == ["a"]
