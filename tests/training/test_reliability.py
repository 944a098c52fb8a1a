"""Issue 11: runs that would train nothing, or on less than the data say, stop with one line that says
why - before anything is written as a success."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import check_train, kill_train_after, run_train, small_run_overrides

CASS = "configs/angiography/cass.yaml"
VESSEL = "configs/angiography/vessel_segmentation.yaml"


def copy_data(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_json(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def outputs(exp: Path):
    return sorted(str(p.relative_to(exp)) for p in exp.rglob("*")) if exp.exists() else []


def assert_nothing_trained(exp: Path):
    assert not (exp / "checkpoints" / "checkpoint.pt").exists()
    assert not (exp / "metrics.json").exists()


def test_batch_larger_than_training_split_is_an_error(tiny_data_root, tmp_path):
    exp = tmp_path / "exp"
    args = ["-c", VESSEL, *small_run_overrides(tiny_data_root, exp, epochs=1), "scratch.train_batch_size=5"]
    check = check_train([*args, "--check"])
    assert check.returncode == 1, check.stdout + check.stderr
    assert "0 optimiser steps" in check.stdout and "scratch.train_batch_size=5" in check.stdout
    proc = check_train(args)
    assert proc.returncode == 2 and "0 optimiser steps" in proc.stderr and "Traceback" not in proc.stderr
    assert "run finished" not in proc.stdout
    assert_nothing_trained(exp)


def test_empty_training_split_is_an_error(tiny_data_root, tmp_path):
    root = copy_data(tiny_data_root, tmp_path / "data")
    edit_json(root / "coco_vessel" / "train" / "annotations.json", lambda d: d.update(images=[], annotations=[]))
    exp = tmp_path / "exp"
    proc = check_train(["-c", VESSEL, *small_run_overrides(root, exp, epochs=1)])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "has no images" in proc.stderr and "0 optimiser steps" in proc.stderr
    assert_nothing_trained(exp)


def test_all_images_unreadable_is_one_error_naming_the_file(tiny_data_root, tmp_path):
    root = copy_data(tiny_data_root, tmp_path / "data")
    for png in (root / "coco_vessel" / "train" / "images").iterdir():
        png.write_bytes(b"not a png")
    exp = tmp_path / "exp"
    proc = run_train(["-c", VESSEL, *small_run_overrides(root, exp, epochs=1)], timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "cannot be read" in last and ".png" in last
    assert proc.stderr.count("Traceback") == 0 and "got loading error" not in proc.stderr
    assert_nothing_trained(exp)


@pytest.mark.parametrize("split", ["train", "val"])
def test_annotation_of_missing_image_id_is_an_error_also_in_check(tiny_data_root, tmp_path, split):
    root = copy_data(tiny_data_root, tmp_path / "data")
    edit_json(root / "coco_cass" / split / "annotations.json",
              lambda d: d["annotations"][0].update(image_id=9999))
    exp = tmp_path / "exp"
    check = check_train(["-c", CASS, *small_run_overrides(root, exp, epochs=1), "--check"])
    assert check.returncode == 1 and "config OK" not in check.stdout
    assert "annotations[0]" in check.stdout and "image_id 9999" in check.stdout
    assert f"{split}/annotations.json" in check.stdout


def test_one_missing_training_image_is_an_error(tiny_data_root, tmp_path):
    root = copy_data(tiny_data_root, tmp_path / "data")
    images = root / "coco_cass" / "train" / "images"
    victim = sorted(images.iterdir())[1]
    victim.unlink()
    exp = tmp_path / "exp"
    args = ["-c", CASS, *small_run_overrides(root, exp, epochs=1)]
    check = check_train([*args, "--check"])
    assert check.returncode == 1 and victim.name in check.stdout and "1 of 4 image files missing" in check.stdout
    proc = check_train(args)
    assert proc.returncode == 2 and victim.name in proc.stderr
    assert_nothing_trained(exp)


def test_misspelt_data_root_is_an_error_not_generated_demo_data(tmp_path):
    cfg = str(Path(__file__).resolve().parents[2] / "configs" / "angiography" / "cass.yaml")
    args = ["-c", cfg, "paths.data_root=data/studdy", "trainer.max_epochs=1"]
    check = check_train([*args, "--check"], cwd=tmp_path)
    assert check.returncode == 1 and "paths.data_root=" in check.stdout and "studdy does not exist" in check.stdout
    proc = check_train(args, cwd=tmp_path)
    assert proc.returncode == 2 and "studdy does not exist" in proc.stderr and "generating" not in proc.stdout
    assert not (tmp_path / "data" / "studdy").exists()
    assert not (tmp_path / "experiments").exists()


def test_explicit_switch_generates_demo_data_anywhere(tmp_path):
    cfg = str(Path(__file__).resolve().parents[2] / "configs" / "angiography" / "cass.yaml")
    check = check_train(["-c", cfg, "paths.data_root=elsewhere", "data.demo.generate_if_missing=true", "--check"],
                      cwd=tmp_path)
    assert check.returncode == 0 and "will be generated there" in check.stdout


def test_sam3_env_logging_is_replaced_by_an_allow_list(monkeypatch, caplog):
    import logging

    import sam3.train.trainer as sam3_trainer

    import sam3_angio.training.trainer as ours

    monkeypatch.setenv("MY_API_TOKEN", "fake-secret-0xDEADBEEF")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert sam3_trainer.log_env_variables is ours.log_harmless_env
    with caplog.at_level(logging.INFO):
        sam3_trainer.log_env_variables()
    text = caplog.text
    assert "OMP_NUM_THREADS" in text
    assert "fake-secret-0xDEADBEEF" not in text and "MY_API_TOKEN" not in text


def _fake_previous_run(exp: Path, config: str, overrides) -> None:
    """A folder as an interrupted run of ``config`` leaves it: its resolved config and a checkpoint.pt
    after epoch 1 (of the 2 that ``small_run_overrides`` gives by default)."""
    shown = check_train(["-c", config, *overrides, "--print-config"], check=True)
    exp.mkdir(parents=True, exist_ok=True)
    (exp / "config_resolved.yaml").write_text(shown.stdout)
    (exp / "checkpoints").mkdir(exist_ok=True)
    import torch

    torch.save({"model": {}, "optimizer": {}, "epoch": 1, "steps": {"train": 2}, "loss": {}},
               exp / "checkpoints" / "checkpoint.pt")


def test_resume_of_another_runs_folder_stops_and_says_so(tiny_data_root, tmp_path):
    exp = tmp_path / "exp"
    _fake_previous_run(exp, VESSEL, small_run_overrides(tiny_data_root, exp))
    before = outputs(exp)
    check = check_train(["-c", CASS, *small_run_overrides(tiny_data_root, exp), "--check"])
    assert check.returncode == 1, check.stdout
    assert "another run's checkpoint.pt" in check.stdout and "data.task: 'vessel'" in check.stdout
    assert "--restart" in check.stdout and "paths.experiment_dir" in check.stdout
    same = check_train(["-c", VESSEL, *small_run_overrides(tiny_data_root, exp), "--check"])
    assert same.returncode == 0, same.stdout  # the same run resumes
    assert outputs(exp) == before


def test_a_run_from_before_a_setting_existed_resumes_but_a_changed_setting_does_not(tiny_data_root, tmp_path):
    import yaml

    exp = tmp_path / "exp"
    over = small_run_overrides(tiny_data_root, exp)
    _fake_previous_run(exp, VESSEL, over)
    saved = yaml.safe_load((exp / "config_resolved.yaml").read_text())
    del saved["data"]["max_phrases_per_frame"]  # as written by a version without that setting
    (exp / "config_resolved.yaml").write_text(yaml.safe_dump(saved))
    assert check_train(["-c", VESSEL, *over, "--check"]).returncode == 0
    # a memory/time switch with equal results is not another run either
    flipped = check_train(["-c", VESSEL, *over, "model.activation_checkpointing=true", "--check"])
    assert flipped.returncode == 0, flipped.stdout
    changed = check_train(["-c", VESSEL, *over, "data.labels_exhaustive=false", "--check"])
    assert changed.returncode == 1 and "data.labels_exhaustive: True in the folder's run, False now" in changed.stdout


def test_restart_keeps_the_earlier_run_aside(tiny_data_root, tmp_path):
    from sam3_angio.config import compose, finalize
    from sam3_angio.training.experiment import resume_error, restart

    exp = tmp_path / "exp"
    _fake_previous_run(exp, VESSEL, small_run_overrides(tiny_data_root, exp))
    cfg = finalize(compose("cass", small_run_overrides(tiny_data_root, exp)))
    assert resume_error(cfg)
    moved = restart(cfg)
    assert any("checkpoints." in m for m in moved)
    assert not (exp / "checkpoints" / "checkpoint.pt").exists() and resume_error(cfg) is None


def _checkpoint_of(exp: Path) -> dict:
    import torch

    return torch.load(exp / "checkpoints" / "checkpoint.pt", map_location="cpu", weights_only=True)


def test_a_finished_run_started_again_is_an_error_not_a_second_validation(tiny_data_root, tmp_path):
    """SAM3 skips the training loop of a run that has all its epochs, validates again and rewrites metrics,
    predictions and checkpoint_best.pt (the demo also its learning curve, without phase 1): 'run finished'
    with nothing trained. It is one error line with the ways on; a higher trainer.max_epochs resumes."""
    exp = tmp_path / "exp"
    _fake_previous_run(exp, VESSEL, small_run_overrides(tiny_data_root, exp, epochs=1))
    before = {p: (exp / p).read_bytes() for p in outputs(exp) if (exp / p).is_file()}
    for extra in ([], ["--check"]):
        proc = check_train(["-c", VESSEL, *small_run_overrides(tiny_data_root, exp, epochs=1), *extra])
        assert proc.returncode == (1 if extra else 2), proc.stdout + proc.stderr
        text = proc.stdout if extra else proc.stderr.strip().splitlines()[-1]
        assert "checkpoint.pt is a finished run: it trained 1 epoch(s), trainer.max_epochs=1" in text, text
        assert "Raise trainer.max_epochs" in text and "--restart" in text and "tools/eval.py --checkpoint" in text
    assert {p: (exp / p).read_bytes() for p in outputs(exp) if (exp / p).is_file()} == before
    more = check_train(["-c", VESSEL, *small_run_overrides(tiny_data_root, exp, epochs=2), "--check"])
    assert more.returncode == 0, more.stdout


@pytest.mark.parametrize("override, needle", [
    ("trainer.max_epochs=0", "trainer.max_epochs = 0: expected a whole number >= 1"),
    ("trainer.max_epochs=-3", "trainer.max_epochs = -3: expected a whole number >= 1"),
    ("trainer.max_epochs=abc", "trainer.max_epochs = 'abc': expected a whole number >= 1"),
    ("trainer.val_epoch_freq=0", "trainer.val_epoch_freq = 0"),
    ("trainer.logging.log_freq=0", "trainer.logging.log_freq = 0"),
    ("profiles.sam3_tiny.limit_train_images=-1", "limit_ids = -1 (from profiles.sam3_tiny.limit_train_images)"),
    ("profiles.sam3_tiny.limit_train_images=0", "limit_ids = 0 (from profiles.sam3_tiny.limit_train_images)"),
    ("launcher.gpus_per_node=0", "launcher.gpus_per_node = 0 (from --num-gpus)"),
    ("scratch.num_workers=-1", "scratch.num_workers = -1"),
    ("scratch.lr_scale=-1", "trainer.optim.options.lr[0].scheduler.base_lr = -0.0008 (from scratch.lr_scale"),
    ("scratch.lr_scale=0", "every learning rate is 0"),
    ("scratch.lr_vision_backbone=nan", "base_lr = nan"),
    ("scratch.wd=-0.1", "trainer.optim.options.weight_decay[0].scheduler.value = -0.1 (from scratch.wd)"),
    ("model.lora.enabled=maybe", "model.lora.enabled = 'maybe': expected true or false"),
    ("trainer.mode=trian", "trainer.mode = 'trian': expected train, train_only or val"),
])
def test_counts_and_rates_out_of_range_stop_before_anything_is_written(tiny_data_root, tmp_path, override, needle):
    """trainer.max_epochs=0 trained nothing, wrote the random weights as checkpoint_best.pt and their metrics,
    and said 'run finished'; a negative learning rate trained uphill (SAM3 sets rates past AdamW's check);
    limit_train_images=-1 left out a frame; val_epoch_freq=0 was a ZeroDivisionError after the model was built."""
    exp = tmp_path / "exp"
    proc = check_train(["-c", VESSEL, *small_run_overrides(tiny_data_root, exp, epochs=1), override])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr
    assert not exp.exists()


def test_restart_moves_nothing_when_the_start_fails(tiny_data_root, tmp_path):
    """--restart kept the folder's run aside before the config was checked and before the folder's lock
    was taken: a typo, or a run still training there, left the folder without its checkpoint."""
    import os
    import socket

    exp = tmp_path / "exp"
    over = small_run_overrides(tiny_data_root, exp, epochs=1)
    _fake_previous_run(exp, VESSEL, over)
    before = outputs(exp)
    bad = check_train(["-c", VESSEL, *over, "--restart", "trainer.val_epoch_freq=0"])
    assert bad.returncode == 2 and "trainer.val_epoch_freq" in bad.stderr
    assert outputs(exp) == before
    (exp / ".run.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}))
    busy = check_train(["-c", VESSEL, *over, "--restart"])
    assert busy.returncode == 2 and "is in use by pid" in busy.stderr
    assert outputs(exp) == sorted(before + [".run.lock"]) and _checkpoint_of(exp)["epoch"] == 1
    # --check --restart: checked as the fresh run it would be (a finished run is no error), nothing moved
    check = check_train(["-c", VESSEL, *over, "--restart", "--check"])
    assert check.returncode == 0, check.stdout
    assert (exp / "checkpoints" / "checkpoint.pt").is_file()


def test_resume_compares_the_run_info_the_checkpoint_records(tiny_data_root, tmp_path):
    """Without the folder's config_resolved.yaml, a phase 1 checkpoint.pt was resumed by a CASS run (SAM3's
    strict load then failed with a traceback); an unreadable config_resolved.yaml was a YAML traceback."""
    import torch

    exp = tmp_path / "exp"
    (exp / "checkpoints").mkdir(parents=True)
    torch.save({"model": {}, "optimizer": {}, "epoch": 1, "steps": {"train": 2}, "loss": {},
                "angio": {"task": "vessel", "model": "sam3_tiny", "class_ids": None, "vessel_group": None}},
               exp / "checkpoints" / "checkpoint.pt")
    proc = check_train(["-c", CASS, *small_run_overrides(tiny_data_root, exp), "--check"])
    assert proc.returncode == 1
    assert "another run's checkpoint.pt" in proc.stdout and "task: 'vessel' in the folder's checkpoint.pt, 'cass' now" \
        in proc.stdout, proc.stdout
    assert check_train(["-c", VESSEL, *small_run_overrides(tiny_data_root, exp), "--check"]).returncode == 0
    (exp / "config_resolved.yaml").write_text("data: [unclosed\n  task: x\n")
    proc = check_train(["-c", VESSEL, *small_run_overrides(tiny_data_root, exp)])
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()
    assert len(last) == 1 and "config_resolved.yaml (the folder's run's config) cannot be read" in last[0]
    assert "--restart" in last[0]


def _tiny_phase1(path: Path, **angio) -> Path:
    import torch

    from sam3_angio.model.tiny import build_sam3_tiny

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": build_sam3_tiny().state_dict(), "epoch": 1,
                "angio": {"task": "vessel", "model": "sam3_tiny", **angio}}, path)
    return path


def test_start_weights_are_checked_before_the_model_is_built(tiny_data_root, tmp_path):
    """paths.phase1_checkpoint and paths.sam3_checkpoint were first read while the trainer built the model
    (the real one: a minute and GBs on a CPU), after the run folder was written; a folder given as phase 1
    checkpoint made the demo train phase 1 two folders up."""
    over = small_run_overrides(tiny_data_root, tmp_path / "exp")
    p1 = tmp_path / "p1" / "checkpoints" / "checkpoint.pt"
    p1.parent.mkdir(parents=True)
    p1.write_bytes(b"\x89PNG\r\n\x1a\n....")
    proc = check_train(["-c", CASS, *over, f"paths.phase1_checkpoint={p1}", "--check"])
    assert proc.returncode == 1 and f"paths.phase1_checkpoint: phase1 checkpoint {p1} is not a torch checkpoint: " \
        f"it is a PNG image" in proc.stdout, proc.stdout
    for folder in (p1.parent, p1.parent.parent):
        proc = check_train(["-c", CASS, *over, "profiles.sam3_tiny.phase1_first=true",
                            f"paths.phase1_checkpoint={folder}"])
        assert proc.returncode == 2 and f"paths.phase1_checkpoint = {folder} is a folder" in proc.stderr, proc.stderr
    assert not (tmp_path / "exp").exists() and not (tmp_path / "checkpoints").exists()
    other = _tiny_phase1(tmp_path / "big" / "checkpoint.pt", model="sam3")
    proc = check_train(["-c", CASS, *over, f"paths.phase1_checkpoint={other}", "--check"])
    assert proc.returncode == 1 and "holds sam3 weights, but this run trains sam3_tiny" in proc.stdout, proc.stdout
    tiny = _tiny_phase1(tmp_path / "tiny" / "checkpoint.pt")
    assert check_train(["-c", CASS, *over, f"paths.phase1_checkpoint={tiny}", "--check"]).returncode == 0
    # phase 1's checkpoint_best.pt beside it is what phase 2 loads: a damaged one says so, and the way around it
    (tiny.parent / "checkpoint_best.pt").write_bytes(tiny.read_bytes()[:1000])
    proc = check_train(["-c", CASS, *over, f"paths.phase1_checkpoint={tiny}", "--check"])
    assert proc.returncode == 1 and "checkpoint_best.pt is truncated or damaged" in proc.stdout
    assert "init.phase1_best=false starts from that one" in proc.stdout, proc.stdout
    assert check_train(["-c", CASS, *over, f"paths.phase1_checkpoint={tiny}", "init.phase1_best=false",
                        "--check"]).returncode == 0
    import torch

    lora = torch.load(tiny, map_location="cpu", weights_only=True)
    lora["model"]["transformer.x.lora_A.default.weight"] = torch.zeros(2, 2)
    torch.save(lora, tmp_path / "lora_p1.pt")
    proc = check_train(["-c", CASS, *over, f"paths.phase1_checkpoint={tmp_path / 'lora_p1.pt'}", "--check"])
    assert proc.returncode == 1 and "holds LoRA adapters (1 tensors" in proc.stdout, proc.stdout
    assert "model.lora.enabled=true" in proc.stdout
    proc = check_train(["-c", CASS, *over, "model.name=sam3", f"paths.sam3_checkpoint={tiny}",
                        "init.require_phase1=false", "--check"])
    assert proc.returncode == 1 and "paths.sam3_checkpoint" in proc.stdout and \
        "holds sam3_tiny weights, but this run trains sam3" in proc.stdout, proc.stdout


def test_the_demo_checks_phase1_before_scoring_and_training_it(tiny_data_root, tmp_path):
    """A phase 2 demo run with no phase 1 checkpoint trains phase 1 first: its config and data were first
    looked at by the untrained scoring's trainer (a broken phase 1 split failed there, after phase 2's
    folder was written); phase1_epochs=0 silently trained trainer.max_epochs instead."""
    data = copy_data(tiny_data_root, tmp_path / "data")
    exp = tmp_path / "exp"
    over = [o for o in small_run_overrides(data, exp) if not o.startswith("trainer.max_epochs=")]  # phase1_epochs
    over += ["profiles.sam3_tiny.phase1_first=true",
            f"paths.phase1_checkpoint={tmp_path / 'p1' / 'checkpoints' / 'checkpoint.pt'}"]
    for bad in ("0", "-1", "abc"):
        proc = check_train(["-c", CASS, *over, f"profiles.sam3_tiny.phase1_epochs={bad}"])
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "profiles.sam3_tiny.phase1_epochs" in proc.stderr and "expected a whole number >= 1" in proc.stderr
    vessel = data / "coco_vessel" / "train" / "annotations.json"
    edit_json(vessel, lambda d: d["annotations"][0].update(image_id=4242))
    for extra in ([], ["--check"]):
        proc = check_train(["-c", CASS, *over, *extra])
        text = proc.stdout if extra else proc.stderr
        assert proc.returncode == (1 if extra else 2), text
        assert "phase 1 (trained first, into" in text and str(vessel) in text and "image_id 4242" in text, text
        # why phase 1 runs and how not to: a user who meant to start phase 2 without it was not told
        assert "pass profiles.sam3_tiny.phase1_first=false to start phase 2 without it" in text, text
    assert not exp.exists() and not (tmp_path / "p1").exists()


def test_second_run_in_a_folder_stops_naming_the_first(tiny_data_root, tmp_path):
    import os
    import socket

    exp = tmp_path / "exp"
    exp.mkdir()
    lock = exp / ".run.lock"
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "earlier"}))
    proc = check_train(["-c", VESSEL, *small_run_overrides(tiny_data_root, exp, epochs=1)])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"in use by pid {os.getpid()} on host {socket.gethostname()}" in proc.stderr
    assert lock.is_file() and not (exp / "config.yaml").exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    from sam3_angio.errors import UserError
    from sam3_angio.training.experiment import ExperimentLock

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".run.lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    with ExperimentLock(str(tmp_path)):
        assert json.loads((tmp_path / ".run.lock").read_text())["pid"] == os.getpid()
        with pytest.raises(UserError, match="in use by pid"):
            ExperimentLock(str(tmp_path)).acquire()
    assert not (tmp_path / ".run.lock").exists()


@pytest.mark.parametrize("override, hint", [
    ("+scratch.train_batchsize=1", "did you mean scratch.train_batch_size?"),
    ("+trainer.max_epoch=1", "did you mean trainer.max_epochs?"),
    ("trainer.max_epoch=1", "did you mean trainer.max_epochs?"),
    ("+scratch.nothing_reads_this=3", "adds a key that nothing reads"),
])
def test_override_keys_nothing_reads_are_errors_with_did_you_mean(override, hint):
    for extra in ([], ["--check"]):
        proc = check_train(["-c", CASS, override, *extra])
        assert proc.returncode == 2, proc.stdout + proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("error:") and override in last and hint in last, last
        assert "Traceback" not in proc.stderr


def test_override_keys_that_are_read_are_accepted(tmp_path):
    proc = check_train(["-c", CASS, "--check", f"paths.experiments_root={tmp_path}",
                        "+trainer.checkpoint.resume_from=/x/checkpoint.pt",
                      "+scratch.loss_terms.extra._target_=sam3_angio.losses.BoxLoss"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _stats(exp: Path, name: str):
    path = exp / "logs" / name
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []


def _probe_env():
    import os

    tests = str(Path(__file__).resolve().parents[1])
    return {"PYTHONPATH": os.pathsep.join([str(Path(tests).parent), tests, os.environ.get("PYTHONPATH", "")])}


def test_nan_step_is_skipped_and_named_and_run_finishes_finite_with_a_readable_console(tiny_data_root, tmp_path):
    import math

    import torch

    exp = tmp_path / "exp"
    proc = run_train(["-c", VESSEL, *small_run_overrides(tiny_data_root, exp, epochs=1),
                      "+scratch.loss_terms.nan_probe._target_=nan_probe.NanProbe",
                      "+scratch.loss_terms.nan_probe.bad_calls=[1]"], env=_probe_env(), check=True)
    log = (exp / "logs" / "log.txt").read_text()
    assert "step 1 of epoch 0 skipped: non-finite loss nan" in log and "nan_probe" in log and "images:" in log
    ckpt = torch.load(exp / "checkpoints" / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert ckpt["steps"]["train"] == 2 and "run finished" in proc.stdout
    assert all(math.isfinite(s["Losses/train_all_loss"]) for s in _stats(exp, "train_stats.json"))
    # checkpoint_best.pt by segm AP (the default best_checkpoint.metric), beside the latest
    best = torch.load(exp / "checkpoints" / "checkpoint_best.pt", map_location="cpu", weights_only=True)
    assert "angio_best/segm.AP" in best["best_meter_values"]
    # The console: what a user needs; SAM3's module tree, meters and third-party warnings in log.txt only.
    console = proc.stdout + proc.stderr
    for noise in ("torch.jit.script` is deprecated", "Disabling autocast", "TIDE not installed", "Raw dataset length",
                  "Grad strides", "Mem (GB)", "Matches for", "MACHINE SEED"):
        assert noise not in console, noise
    assert "epoch 0 step 2/2  loss" in proc.stdout and "validation after epoch 0: segm.AP" in proc.stdout
    assert "data (vessel): train 4 frames" in proc.stdout and "best (segm.AP)" in proc.stdout
    assert len(console.splitlines()) < 40, console
    assert "Raw dataset length" in log and "Train Epoch" in log and "MACHINE SEED" in log


def test_consecutive_nan_steps_stop_with_a_clear_error_and_no_checkpoint(tiny_data_root, tmp_path):
    exp = tmp_path / "exp"
    proc = run_train(["-c", VESSEL, *small_run_overrides(tiny_data_root, exp, epochs=1),
                      "trainer.nan_guard.max_consecutive=2",
                      "+scratch.loss_terms.nan_probe._target_=nan_probe.NanProbe",
                      "+scratch.loss_terms.nan_probe.always=true"], env=_probe_env())
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "2 consecutive training steps were not finite" in last and "nan_probe" in last
    assert_nothing_trained(exp)


def test_kill9_mid_epoch_loses_at_most_save_every_steps(tiny_data_root, tmp_path):
    import re

    import torch

    exp, every = tmp_path / "exp", 2
    args = ["-c", VESSEL, *small_run_overrides(tiny_data_root, exp, epochs=1), "scratch.train_batch_size=1",
            f"trainer.checkpoint.save_every_steps={every}", "trainer.best_checkpoint.metric=null"]
    ckpt_path = exp / "checkpoints" / "checkpoint.pt"
    # killed as soon as the step-2 checkpoint is there: a later kill can land after epoch 0 ends on a fast machine
    kill_train_after(args, ckpt_path, timeout=400)
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 0 and ckpt["angio_progress"]["batches_done"] == every
    shown = [int(m) for m in re.findall(r"Train Epoch: \[0\]\[\s*(\d+)/", (exp / "logs" / "log.txt").read_text())]
    done_before_kill = max(shown) + 1 if shown else 0
    assert done_before_kill - ckpt["angio_progress"]["batches_done"] <= every

    resumed = run_train(args, check=True)
    log = (exp / "logs" / "log.txt").read_text()
    assert f"resuming epoch 0 after batch {every} of 4" in log
    assert f"resuming from {ckpt_path}: epoch 0 after its first {every} step(s)" in resumed.stdout  # the console too
    final = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    assert final["epoch"] == 1 and final["steps"]["train"] == 4  # 2 before the kill + the 2 left, none twice
    assert [s["Trainer/epoch"] for s in _stats(exp, "train_stats.json")] == [0]


def test_a_data_root_one_level_off_says_where_the_coco_folder_is(tiny_data_root, tmp_path):
    """paths.data_root=<...>/coco_cass (the COCO folder itself) or a root with only another task's COCO
    folder said 'data not found: .../coco_cass/coco_cass/train/annotations.json' and nothing more."""
    exp = tmp_path / "exp"
    over = [o for o in small_run_overrides(tiny_data_root, exp) if not o.startswith("paths.data_root=")]
    proc = check_train(["-c", CASS, *over, f"paths.data_root={tiny_data_root / 'coco_cass'}", "--check"])
    assert proc.returncode == 1 and "it is a COCO folder itself" in proc.stdout
    assert f"here paths.data_root={tiny_data_root}" in proc.stdout, proc.stdout
    only = tmp_path / "only_vessel"
    shutil.copytree(tiny_data_root / "coco_vessel", only / "coco_vessel")
    proc = check_train(["-c", CASS, *over, f"paths.data_root={only}", "--check"])
    assert proc.returncode == 1 and "it holds coco_vessel/ but no coco_cass/" in proc.stdout
    assert "-c configs/angiography/vessel_segmentation.yaml" in proc.stdout, proc.stdout
    val_only = tmp_path / "val_only"  # an ARCADE import of its val split alone said "but no coco_cass/"
    shutil.copytree(tiny_data_root / "coco_cass" / "val", val_only / "coco_cass" / "val")
    proc = check_train(["-c", CASS, *over, f"paths.data_root={val_only}", "init.require_phase1=false", "--check"])
    assert proc.returncode == 1 and "its coco_cass/ holds val/ but a run needs train/ and val/" in proc.stdout
    assert "no coco_cass/" not in proc.stdout, proc.stdout
    folder = tmp_path / "sam3_weights"
    folder.mkdir()
    proc = check_train(["-c", CASS, *small_run_overrides(tiny_data_root, exp), f"paths.sam3_checkpoint={folder}",
                        "model.name=sam3", "init.require_phase1=false", "--check"])
    assert proc.returncode == 1 and f"paths.sam3_checkpoint = {folder} is a folder, not a file" in proc.stdout
    assert not exp.exists()


def test_a_checkpoint_of_unknown_origin_is_refused_before_training(tiny_data_root, tmp_path):
    """A checkpoint.pt of a version before the run info, without its config_resolved.yaml, was resumed:
    SAM3's strict load of another model's weights then died with a long traceback. With the folder's
    config_resolved.yaml (or the run info alone: test_resume_compares_the_run_info...) it still resumes."""
    import torch

    exp = tmp_path / "exp"
    over = small_run_overrides(tiny_data_root, exp)
    (exp / "checkpoints").mkdir(parents=True)
    torch.save({"model": {}, "optimizer": {}, "epoch": 1, "steps": {"train": 2}, "loss": {}},
               exp / "checkpoints" / "checkpoint.pt")
    before = outputs(exp)
    check = check_train(["-c", VESSEL, *over, "--check"])
    assert check.returncode == 1, check.stdout
    assert "checkpoint.pt" in check.stdout and "cannot tell the origin of" in check.stdout, check.stdout
    assert "--restart" in check.stdout and "paths.experiments_root" in check.stdout
    proc = check_train(["-c", VESSEL, *over])
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "cannot tell the origin of" in lines[0], proc.stderr
    assert outputs(exp) == before
    assert check_train(["-c", VESSEL, *over, "--restart", "--check"]).returncode == 0
    _fake_previous_run(exp, VESSEL, over)  # the same checkpoint, its run's config beside it: resumed
    assert check_train(["-c", VESSEL, *over, "--check"]).returncode == 0


@pytest.mark.parametrize("damage", ["checkpoint.pt is a folder", "checkpoint.pt.tmp is a folder",
                                    "checkpoints is a file", "checkpoints is not writable"])
def test_a_checkpoints_folder_that_cannot_take_a_save_is_refused_up_front(tiny_data_root, tmp_path, damage,
                                                                          monkeypatch):
    """SAM3 found out at the first save, after an epoch of training was spent."""
    import os

    exp = tmp_path / "exp"
    ckpts = exp / "checkpoints"
    exp.mkdir()
    if damage == "checkpoints is a file":
        ckpts.write_text("")
        culprit, needle = ckpts, "is a file, not a folder"
    else:
        ckpts.mkdir()
        culprit, needle = ckpts, "is not writable"
        if damage.endswith("is a folder"):
            culprit, needle = ckpts / damage.split()[0], "is a folder, where the run saves a checkpoint file"
            culprit.mkdir()
        else:  # os.access, not chmod: as root every folder is writable
            real = os.access
            monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.path.abspath(p) == str(ckpts)
                                else real(p, mode, **kw))
    proc = check_train(["-c", VESSEL, *small_run_overrides(tiny_data_root, exp), "--check"])
    assert proc.returncode == 1, proc.stdout
    assert f"trainer.checkpoint.save_dir = {ckpts}: {culprit} {needle}" in proc.stdout, proc.stdout


def _with_nan(path: Path, key: str) -> Path:
    import torch

    sd = torch.load(path, map_location="cpu", weights_only=True)
    tensors = sd.get("model", sd)
    tensors[key] = torch.full_like(tensors[key], float("inf") if "bias" in key else float("nan"))
    torch.save(sd, path)
    return path


def _sam3_like(path: Path) -> Path:
    """A crafted stand-in for sam3.pt: a few tensors under ``detector.`` (the image model) and ``tracker.``."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {"detector.backbone.vision_backbone.trunk.pos_embed": torch.zeros(1, 4, 8),
                          "detector.transformer.decoder.norm.weight": torch.ones(8),
                          "tracker.maskmem_tpos_enc": torch.zeros(2, 8)}}, path)
    return path


def test_start_weights_holding_nan_are_refused_when_read(tiny_data_root, tmp_path):
    """A sam3.pt or phase 1 checkpoint with NaN/inf tensors was found only once the model was built and
    load_into matched them (NaN in a tensor the model does not load: never)."""
    over = small_run_overrides(tiny_data_root, tmp_path / "exp")
    key = "backbone.vision_backbone.trunk.blocks.0.attn.qkv.weight"
    p1 = _with_nan(_tiny_phase1(tmp_path / "p1" / "checkpoint.pt"), key)
    proc = check_train(["-c", CASS, *over, f"paths.phase1_checkpoint={p1}", "--check"])
    assert proc.returncode == 1, proc.stdout
    assert f"paths.phase1_checkpoint: phase1 checkpoint {p1} holds NaN or inf values in 1 of its" in proc.stdout
    assert f"(first: {key})" in proc.stdout, proc.stdout
    sam3 = _with_nan(_sam3_like(tmp_path / "sam3.pt"), "tracker.maskmem_tpos_enc")
    proc = check_train(["-c", CASS, *over, "model.name=sam3", f"paths.sam3_checkpoint={sam3}", "--check"])
    assert proc.returncode == 1, proc.stdout
    assert f"paths.sam3_checkpoint: sam3 checkpoint {sam3} holds NaN or inf values in 1 of its 3 tensors (first: " \
           f"tracker.maskmem_tpos_enc)" in proc.stdout, proc.stdout


def test_the_model_builders_refuse_nan_start_weights_before_using_them(tmp_path, monkeypatch):
    """The same check where the trainer reads the start weights: sam3.pt before the 840 M model is built,
    the phase 1 checkpoint before anything is loaded into the model."""
    import sam3.model_builder
    import torch

    from sam3_angio.model.builders import build_sam3
    from sam3_angio.model.checkpoint import CheckpointError
    from sam3_angio.model.init import load_phase1

    def never(**kw):
        raise AssertionError("the model was built for NaN weights")

    monkeypatch.setattr(sam3.model_builder, "build_sam3_image_model", never)
    sam3_pt = _with_nan(_sam3_like(tmp_path / "sam3.pt"), "detector.transformer.decoder.norm.weight")
    with pytest.raises(CheckpointError, match=r"SAM3 checkpoint .*sam3\.pt holds NaN or inf values in 1 of its 3 "
                                              r"tensors \(first: detector\.transformer\.decoder\.norm\.weight\)"):
        build_sam3(str(sam3_pt))
    p1 = _with_nan(_tiny_phase1(tmp_path / "p1" / "checkpoint.pt"), "transformer.decoder.norm.bias")
    model = torch.nn.Linear(2, 2)
    before = model.weight.detach().clone()
    with pytest.raises(CheckpointError, match=r"phase 1 checkpoint .*checkpoint\.pt holds NaN or inf values in 1 "
                                              r"of its \d+ tensors \(first: transformer\.decoder\.norm\.bias\)"):
        load_phase1(model, str(p1), prefer_best=False)
    assert torch.equal(model.weight.detach(), before)


def test_a_long_validation_prints_progress_lines_and_a_short_one_none(monkeypatch, capsys):
    """The console's validation progress ('validating after epoch E: k/N batches, S s') comes every
    VAL_PROGRESS_EVERY_S seconds of a validation; a validation shorter than that prints nothing."""
    from sam3_angio.training import trainer as trainer_mod

    clock = {"t": 0.0}
    monkeypatch.setattr(trainer_mod.time, "monotonic", lambda: clock["t"])
    t = trainer_mod.AngioTrainer.__new__(trainer_mod.AngioTrainer)
    t.epoch = 3

    def validate(n_batches: int, seconds_each: float) -> list:
        clock["t"] = 1000.0
        t._val_total, t._val_done = n_batches, 0
        t._val_started = t._val_said = clock["t"]
        for _ in range(n_batches):
            clock["t"] += seconds_each
            t._console_val_progress()
        return [line for line in capsys.readouterr().out.splitlines() if line.startswith("validating")]

    assert validate(14, 1.3) == []
    lines = validate(300, 1.0)
    assert len(lines) == 300 // int(t.VAL_PROGRESS_EVERY_S)
    assert lines[0] == "validating after epoch 3: 30/300 batches, 30 s"
    assert lines[-1] == "validating after epoch 3: 300/300 batches, 300 s"
