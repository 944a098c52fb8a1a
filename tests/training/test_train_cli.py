"""tools/train.py end to end: both phase configs train the tiny SAM3 and write checkpoint + metrics;
an interrupted run resumes; --check, --list and user mistakes give clear answers."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import check_train, kill_train_after, run_train, small_run_overrides


@pytest.mark.parametrize("config", ["configs/angiography/vessel_segmentation.yaml", "configs/angiography/cass.yaml",
                                    "configs/angiography/stenosis.yaml"])
def test_train_writes_checkpoint_and_finite_coco_metrics(config, tiny_data_root, tmp_path):
    exp = tmp_path / "exp"
    proc = run_train(["-c", config, *small_run_overrides(tiny_data_root, exp, epochs=2)], check=True)
    assert "sam3_tiny" in proc.stdout  # the banner says which model ran
    ckpt = torch.load(exp / "checkpoints" / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 2 and "model" in ckpt and "optimizer" in ckpt
    metrics = json.loads((exp / "metrics.json").read_text())
    for key in ("bbox.AP", "segm.AP", "bbox.AP50", "segm.AR100"):
        assert key in metrics and math.isfinite(metrics[key]) and 0.0 <= metrics[key] <= 1.0, key
    assert (exp / "predictions").is_dir()
    assert (exp / "config_resolved.yaml").is_file()
    stats = [json.loads(ln) for ln in (exp / "logs" / "train_stats.json").read_text().splitlines() if ln.strip()]
    assert [s["Trainer/epoch"] for s in stats] == [0, 1]
    assert all(math.isfinite(s["Losses/train_all_loss"]) for s in stats)


def test_interrupted_run_resumes_at_epoch_1(tiny_data_root, tmp_path):
    exp = tmp_path / "exp"
    args = ["-c", "configs/angiography/vessel_segmentation.yaml", *small_run_overrides(tiny_data_root, exp, epochs=2)]
    ckpt_path = exp / "checkpoints" / "checkpoint.pt"
    kill_train_after(args, ckpt_path, timeout=300)  # kill -9: a crash, not a polite stop
    first = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    assert first["epoch"] == 1

    out = run_train(args, check=True)
    log = (exp / "logs" / "log.txt").read_text()
    assert "Resuming training from epoch: 1" in log
    stats = [json.loads(ln) for ln in (exp / "logs" / "train_stats.json").read_text().splitlines() if ln.strip()]
    # Epoch 0 was trained once (before the kill), epoch 1 once (after the resume): never epoch 0 again.
    assert [s["Trainer/epoch"] for s in stats] == [0, 1], out.stdout[-2000:]
    assert torch.load(ckpt_path, map_location="cpu", weights_only=True)["epoch"] == 2


def test_check_names_a_misspelt_target():
    # The real config with one _target_ misspelt through an override.
    proc = check_train(["-c", "configs/angiography/cass.yaml", "--check",
                      "trainer.model._target_=sam3_angio.model.builders.build_modle"])
    assert proc.returncode == 1
    assert "trainer.model._target_" in proc.stdout
    assert "build_modle" in proc.stdout and "Did you mean 'sam3_angio.model.builders.build_model'" in proc.stdout


def test_check_passes_on_shipped_configs(tmp_path):
    for cfg in ("vessel_segmentation", "cass", "stenosis"):
        # (a folder of this test's own: the checkout's experiments/ may hold a run of an older config)
        proc = check_train(["-c", f"configs/angiography/{cfg}.yaml", "--check", f"paths.experiments_root={tmp_path}"])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "config OK" in proc.stdout


def test_overrides_may_come_before_and_after_the_flags(tmp_path):
    """`tools/train.py -c cass.yaml trainer.max_epochs=3 --check paths.x=...`: both overrides count (argparse
    alone refuses the second as an unrecognised argument)."""
    proc = check_train(["-c", "configs/angiography/cass.yaml", "data.max_phrases_per_frmae=3", "--check",
                        f"paths.experiments_root={tmp_path}"])
    assert proc.returncode != 0 and "data.max_phrases_per_frmae" in proc.stdout + proc.stderr
    proc = check_train(["-c", "configs/angiography/cass.yaml", "trainer.max_epochs=3", "--check",
                        f"paths.experiments_root={tmp_path}"])
    assert proc.returncode == 0 and "config OK" in proc.stdout, proc.stdout + proc.stderr


def test_list_shows_registered_components():
    proc = run_train(["--list"], check=True)
    assert "sam3_angio.model.tiny.build_sam3_tiny" in proc.stdout
    assert "sam3_angio.data.dataset.AngioImageDataset" in proc.stdout


@pytest.mark.parametrize(
    "args, needle",
    [
        (["-c", "configs/angiography/nope.yaml"], "config 'configs/angiography/nope.yaml' not found"),
        (["-c", "cass", "paths.data_root=/does/not/exist", "data.demo.generate_if_missing=false"], "not found"),
        (["-c", "cass", "trainer.max_epoch=3"], "trainer.max_epoch"),
        (["-c", "cass", "model.name=sam4"], "model.name='sam4'"),
        (["-c", "cass", "paths.sam3_checkpoint=/nowhere/sam3.pt"], "/nowhere/sam3.pt"),
    ],
)
def test_user_mistakes_give_one_clear_message(args, needle):
    proc = check_train(args)
    assert proc.returncode != 0
    assert needle in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_checkpoint_that_does_not_fit_is_a_clear_error(tiny_data_root, tmp_path):
    junk = tmp_path / "sam3.pt"
    torch.save({"detector.something.weight": torch.zeros(3)}, junk)
    proc = run_train(["-c", "cass", *small_run_overrides(tiny_data_root, tmp_path / "e"),
                      "model.name=sam3", f"paths.sam3_checkpoint={junk}", "init.require_phase1=false"])
    assert proc.returncode == 2
    assert "matched no tensor" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_data_line_says_when_limit_train_images_trains_on_fewer_frames(tmp_path):
    from omegaconf import OmegaConf

    from sam3_angio.training.cli import data_summary

    for split, n in (("train", 10), ("val", 3)):
        (tmp_path / f"{split}.json").write_text(json.dumps({"images": [{"id": i} for i in range(n)],
                                                            "annotations": [], "categories": []}))

    def line(limit):
        return data_summary(OmegaConf.create({
            "paths": {"data_root": str(tmp_path)}, "model": {"resolved": "sam3_tiny"},
            "data": {"task": "cass", "train_json": str(tmp_path / "train.json"), "val_json": str(tmp_path / "val.json")},
            "trainer": {"data": {"train": {"dataset": {"limit_ids": limit}}}}}))

    assert "train 10 frames (4 of them trained on: profiles.sam3_tiny.limit_train_images=4) / 0" in line(4)
    assert "train 10 frames / 0 annotations, val 3 frames / 0" in line(None) and line(None) == line(48)
