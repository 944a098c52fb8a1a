"""tools/eval.py model mode checks the split's ground truth and its output folder before the model is built
(seconds for sam3_tiny on a CPU, minutes for SAM3): a model built here is a test failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sam3_angio.evaluation.cli import main
from sam3_angio.evaluation.synthetic import synthetic_coco

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "configs" / "angiography" / "cass.yaml")


class ModelBuilt(AssertionError):
    pass


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A checkpoint that reads as a tiny CASS run's (its weights are never needed), an empty data root, and
    the model's construction replaced by an error."""
    import sam3_angio.inference.predictor as predictor_mod

    def no_model(*_a, **_k):
        raise ModelBuilt("the model was built")

    monkeypatch.setattr(predictor_mod, "instantiate", no_model)
    monkeypatch.chdir(tmp_path)  # the default --out, outputs/eval/cass_val, is relative to it
    torch.save({"model": {"w": torch.zeros(1)}, "angio": {"task": "cass", "model": "sam3_tiny"}}, tmp_path / "ckpt.pt")
    return tmp_path


def run(world, *extra):
    return main(["-c", CONFIG, "--checkpoint", str(world / "ckpt.pt"), f"paths.data_root={world / 'data'}", *extra])


def write_split(world, text=None):
    val = world / "data" / "coco_cass" / "val"
    (val / "images").mkdir(parents=True)
    (val / "annotations.json").write_text(text if text is not None else json.dumps(synthetic_coco(2, (1, 2, 3), 48)))
    return val


def test_a_missing_split_is_named_before_the_model_is_built(world, capsys):
    assert run(world) == 2
    err = capsys.readouterr().err
    assert f"error: split 'val': annotations not found at {world}/data/coco_cass/val/annotations.json" in err
    assert "paths.data_root=" in err


def test_unreadable_ground_truth_is_named_before_the_model_is_built(world, capsys):
    val = write_split(world, "{oops")
    assert run(world) == 2
    err = capsys.readouterr().err
    assert str(val / "annotations.json") in err and "not valid JSON" in err


def test_a_missing_images_folder_is_named_before_the_model_is_built(world, capsys):
    val = write_split(world)
    (val / "images").rmdir()
    assert run(world) == 2
    assert f"split 'val': images folder not found at {val / 'images'}" in capsys.readouterr().err


@pytest.mark.parametrize("out", [None, "mine"], ids=["default-out", "explicit-out"])
def test_an_existing_out_folder_is_refused_before_the_model_is_built(world, capsys, out):
    write_split(world)
    folder = world / (out or "outputs/eval/cass_val")
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text('{"segm.AP": 0.5}')
    extra = ["--out", out] if out else []
    assert run(world, *extra) == 2
    err = capsys.readouterr().err
    assert "already exists and is not empty" in err and "--overwrite" in err
    assert (folder / "metrics.json").read_text() == '{"segm.AP": 0.5}'
    with pytest.raises(ModelBuilt):  # --overwrite: the checks pass and the model is built
        run(world, *extra, "--overwrite")


def test_overwrite_never_replaces_the_folder_holding_the_checkpoint(world, capsys):
    write_split(world)
    assert run(world, "--out", str(world), "--overwrite") == 2
    err = capsys.readouterr().err
    assert "holds --checkpoint" in err and "choose another --out" in err
