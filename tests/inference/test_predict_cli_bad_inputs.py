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


def _colour_dicom(path, frame):
    """An RGB export with a red annotation burnt in: a colour picture, not a grey angiogram."""
    from sam3_angio.data.dicom import write_xa_dicom

    rgb = np.repeat(frame[..., None], 3, axis=2)
    rgb[2:6, 2:20] = (255, 0, 0)
    return write_xa_dicom(path, rgb, photometric="RGB")


BAD = {
    # name: (write the input into folder d -> path, extra argv, words the message must hold)
    "unreadable DICOM": (lambda d: _bytes(d / "broken.dcm", b"\0" * 128 + b"DICM" + b"\x07" * 40), [],
                         ["broken.dcm"]),
    "2-D cine": (lambda d: np.save(d / "flat.npy", np.zeros((32, 32), np.uint8)) or d / "flat.npy", [],
                 ["flat.npy", "2-D", "(T, H, W)"]),
    "colour DICOM": (lambda d: _colour_dicom(d / "colour.dcm", np.full((32, 32), 100, np.uint8)), [],
                     ["colour.dcm", "frame 0", "colour picture", "differ by up to 255"]),
    "angles out of range": (lambda d: _png(d), ["--angles", "-200,10"], ["--angles", "-200", "-180..180"]),
    "secondary angle out of range": (lambda d: _png(d), ["--angles", "20,95"], ["--angles", "95", "-90..90"]),
    "angles not a pair": (lambda d: _png(d), ["--angles", "30"], ["--angles", "PRIMARY,SECONDARY"]),
    "bad spacing": (lambda d: _png(d), ["--mm-per-pixel", "-0.3"], ["--mm-per-pixel", "positive"]),
    # a bad flag is not a bad input that --skip-bad leaves out (every file would be, and nothing predicted)
    "bad spacing with --skip-bad": (lambda d: _png(d), ["--mm-per-pixel", "nan", "--skip-bad"],
                                    ["--mm-per-pixel nan", "positive"]),
    "bad frames": (lambda d: _png(d), ["--frames", "first"], ["frames", "'all', 'best'"]),
    "frame out of range": (lambda d: np.save(d / "c.npy", np.zeros((3, 32, 32), np.uint8)) or d / "c.npy",
                           ["--frames", "0,7"], ["frame 7", "c.npy", "3 frames"]),
    "empty folder": (lambda d: (d / "empty").mkdir() or d / "empty", [], ["empty", "no input files"]),
    "not a .npy": (lambda d: _bytes(d / "renamed.npy", b"RIFF....AVI LIST" * 8), [],
                   ["renamed.npy", "not a NumPy .npy file"]),
    "truncated .npy": (lambda d: _truncated_npy(d / "cut.npy"), [], ["cut.npy", "truncated", "(5, 64, 64)"]),
    "empty image": (lambda d: _bytes(d / "zero.png", b""), [], ["zero.png", "empty (0 bytes)"]),
    "not an image": (lambda d: _bytes(d / "notes.png", b"hello, not a picture"), [], ["notes.png", "not a valid PNG"]),
    "missing input": (lambda d: d / "nowhere.dcm", [], ["nowhere.dcm", "does not exist"]),
    "empty video": (lambda d: _bytes(d / "zero.mp4", b""), [], ["zero.mp4", "empty (0 bytes)"]),
    "not a video": (lambda d: _bytes(d / "clip.avi", b"not a video " * 50), [], ["clip.avi", "not a valid AVI"]),
    "video frame out of range": (lambda d: _mp4(d / "run.mp4", 3), ["--frames", "0,7"], ["frame 7", "run.mp4",
                                                                                         "3 frames"]),
}


def _mp4(path, n):
    import imageio.v3 as iio

    iio.imwrite(path, np.full((n, 32, 32, 3), 120, np.uint8), plugin="pyav", codec="libx264", fps=10)
    return path


def _truncated_npy(path):
    np.save(path, np.zeros((5, 64, 64), np.uint8))
    path.write_bytes(path.read_bytes()[:3000])
    return path


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


def test_an_implausible_spacing_is_one_warning_line_and_not_an_error(tmp_path, capsys):
    """--mm-per-pixel 3 (a unit slip?) is warned about before anything is read, and the call goes on (here to
    the missing checkpoint)."""
    rc, err = _run([str(_png(tmp_path)), "--mm-per-pixel", "3", "--checkpoint", str(tmp_path / "nope.pt"),
                    "--out", str(tmp_path / "o"), "--quiet"], capsys)
    warning, error = err.splitlines()
    assert warning.startswith("warning: --mm-per-pixel 3 is outside 0.02-2 mm per pixel") and "0.1-0.5" in warning
    assert rc == 2 and error == f"error: checkpoint not found: {tmp_path / 'nope.pt'}"


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


def _folder_with_two_bad_files(d):
    import imageio.v3 as iio

    folder = d / "study"
    folder.mkdir()
    iio.imwrite(folder / "a_good.png", np.full((32, 32), 120, np.uint8))
    _bytes(folder / "b_zero.png", b"")
    np.save(folder / "c_flat.npy", np.zeros((32, 32), np.uint8))
    return folder


def test_every_bad_input_of_a_batch_is_named_before_the_model_loads(tmp_path, capsys):
    """A folder with a good file and two bad ones stops in seconds: both bad files named, the way out
    (--skip-bad) said, the checkpoint never opened, nothing written."""
    folder = _folder_with_two_bad_files(tmp_path)
    rc, err = _run([str(folder), "--checkpoint", str(tmp_path / "never_read.pt"), "--out", str(tmp_path / "out")],
                   capsys)
    assert rc == 2 and "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("error: ") and "b_zero.png" in last and "2 of 3 inputs" in last and "--skip-bad" in last
    assert "c_flat.npy" in err and "checkpoint" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_skip_bad_predicts_the_readable_inputs_and_names_the_others(cass_predictor, tmp_path, capsys):
    from sam3_angio.inference.cli import main

    folder = _folder_with_two_bad_files(tmp_path)
    out = tmp_path / "out"
    rc = main([str(folder), "--checkpoint", "x.pt", "--out", str(out), "--quiet", "--skip-bad"],
              predictor=cass_predictor)
    captured = capsys.readouterr()
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_good"]
    assert (out / "a_good" / "predictions.json").is_file()
    summary = captured.err.strip().splitlines()[-1]
    assert summary.startswith("skipped 2 inputs") and "b_zero.png" in summary and "c_flat.npy" in summary
    assert "wrote 1 input " in captured.out


def test_skip_bad_also_leaves_out_a_file_whose_frames_fail_to_decode(cass_predictor, tmp_path, capsys):
    """A damage the opening check cannot see (it reads headers only: here a PNG cut in the middle of its
    pixel data) fails when the frames are read: with --skip-bad that input is left out, the ones after
    it are still predicted."""
    import imageio.v3 as iio

    from sam3_angio.inference.cli import main

    folder = tmp_path / "study"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        iio.imwrite(folder / name, rng.integers(0, 255, (32, 32)).astype(np.uint8))
    data = (folder / "a.png").read_bytes()
    (folder / "a.png").write_bytes(data[: len(data) // 2])  # the header is whole, the pixels are not
    out = tmp_path / "out"
    rc = main([str(folder), "--checkpoint", "x.pt", "--out", str(out), "--quiet", "--skip-bad"],
              predictor=cass_predictor)
    err = capsys.readouterr().err
    assert rc == 0 and sorted(p.name for p in out.iterdir()) == ["b"]
    assert "skipped: image" in err and "a.png" in err.strip().splitlines()[-1]
