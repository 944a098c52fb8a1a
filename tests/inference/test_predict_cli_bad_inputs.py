"""Bad inputs to tools/predict.py: one ``error:`` line naming the file or flag, exit status 2, no
traceback, nothing written. Each fails before the model is built unless the checkpoint is the problem."""

from __future__ import annotations

import numpy as np
import pytest


def _run(argv, capsys):
    from sam3_angio.inference.cli import main

    rc = main(argv)
    err = capsys.readouterr().err.strip()
    return rc, err


def _rgb_dicom(path, frame):
    import pydicom

    from sam3_angio.data.dicom import write_xa_dicom

    write_xa_dicom(path, frame)
    ds = pydicom.dcmread(path)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.PixelData = np.repeat(frame[..., None], 3, axis=2).tobytes()
    ds.save_as(path)


BAD = {
    # name: (write the input into folder d -> path, extra argv, words the message must hold)
    "unreadable DICOM": (lambda d: _bytes(d / "broken.dcm", b"\0" * 128 + b"DICM" + b"\x07" * 40), [],
                         ["broken.dcm"]),
    "2-D cine": (lambda d: np.save(d / "flat.npy", np.zeros((32, 32), np.uint8)) or d / "flat.npy", [],
                 ["flat.npy", "2-D", "(T, H, W)"]),
    "RGB DICOM": (lambda d: _rgb_dicom(d / "colour.dcm", np.full((32, 32), 100, np.uint8)) or d / "colour.dcm", [],
                  ["colour.dcm", "RGB"]),
    "angles out of range": (lambda d: _png(d), ["--angles", "-200,10"], ["--angles", "-200", "-180..180"]),
    "secondary angle out of range": (lambda d: _png(d), ["--angles", "20,95"], ["--angles", "95", "-90..90"]),
    "angles not a pair": (lambda d: _png(d), ["--angles", "30"], ["--angles", "PRIMARY,SECONDARY"]),
    "bad spacing": (lambda d: _png(d), ["--mm-per-pixel", "-0.3"], ["--mm-per-pixel", "positive"]),
    "bad frames": (lambda d: _png(d), ["--frames", "first"], ["frames", "'all', 'best'"]),
    "frame out of range": (lambda d: np.save(d / "c.npy", np.zeros((3, 32, 32), np.uint8)) or d / "c.npy",
                           ["--frames", "0,7"], ["frame 7", "c.npy", "3 frames"]),
    "empty folder": (lambda d: (d / "empty").mkdir() or d / "empty", [], ["empty", "no input files"]),
    "missing input": (lambda d: d / "nowhere.dcm", [], ["nowhere.dcm", "does not exist"]),
}


def _bytes(path, data):
    path.write_bytes(data)
    return path


def _png(d):
    import imageio.v3 as iio

    iio.imwrite(d / "f.png", np.full((32, 32), 120, np.uint8))
    return d / "f.png"


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_input_is_one_clear_line_and_exit_2(case, tmp_path, capsys):
    make, extra, words = BAD[case]
    path = make(tmp_path)
    rc, err = _run([str(path), *extra, "--checkpoint", str(tmp_path / "never_read.pt"), "--out",
                    str(tmp_path / "out")], capsys)
    assert rc == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    for w in words:
        assert w in err, (w, err)
    assert "checkpoint" not in err  # stopped before the model: the checkpoint was never opened
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_missing_checkpoint_is_named(tmp_path, capsys):
    rc, err = _run([str(_png(tmp_path)), "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o")],
                   capsys)
    assert rc == 2 and err == f"error: checkpoint not found: {tmp_path / 'nope.pt'}"


def test_a_checkpoint_of_another_task_says_which_config_to_pass(trained_cass_run, tmp_path, capsys):
    """A vessel run's checkpoint given with the CASS config: its run info names its task."""
    import torch

    ckpt = torch.load(trained_cass_run / "checkpoints" / "checkpoint.pt", map_location="cpu", weights_only=True)
    ckpt["angio"] = {**ckpt["angio"], "task": "vessel", "class_ids": None}
    torch.save(ckpt, tmp_path / "vessel.pt")
    rc, err = _run([str(_png(tmp_path)), "--checkpoint", str(tmp_path / "vessel.pt"), "-c", "cass",
                    "--out", str(tmp_path / "o"), "model.name=sam3_tiny"], capsys)
    assert rc == 2 and "\n" not in err
    assert "'vessel' task" in err and "'cass'" in err and "vessel_segmentation.yaml" in err
    assert not (tmp_path / "o").exists()


def test_a_bare_state_dict_without_the_cass_head_is_one_line(trained_cass_run, tmp_path, capsys):
    """A checkpoint with no run info (a bare state dict, e.g. of a phase-1 tree model) that lacks the
    CASS model's head and view encoder: the missing modules are named on one line."""
    import torch

    sd = torch.load(trained_cass_run / "checkpoints" / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    torch.save({k: v for k, v in sd.items() if not k.startswith(("cass_head.", "view_encoder."))}, tmp_path / "tree.pt")
    rc, err = _run([str(_png(tmp_path)), "--checkpoint", str(tmp_path / "tree.pt"), "-c",
                    str(trained_cass_run / "config_resolved.yaml"), "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "\n" not in err
    assert "tree.pt lacks" in err and "cass_head: " in err and "view_encoder: " in err and "(-c)" in err
