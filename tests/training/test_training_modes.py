"""training.modes through tools/train.py: per-mode losses logged; proofread alone trains."""

from __future__ import annotations

import glob
import json

from conftest import check_train, run_train, small_run_overrides


def _tensorboard_tags(exp) -> set:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for path in glob.glob(str(exp / "tensorboard" / "*")):
        ea = EventAccumulator(path)
        ea.Reload()
        tags |= set(ea.Tags()["tensors"]) | set(ea.Tags()["scalars"])
    return tags


def _epoch_losses(exp) -> dict:
    rows = [json.loads(line) for line in (exp / "logs" / "train_stats.json").read_text().splitlines() if line.strip()]
    return rows[-1]


def test_both_modes_log_every_term_per_mode(proofread_cass_run):
    tags = _tensorboard_tags(proofread_cass_run)
    for mode in ("automatic", "proofread"):
        for term in ("loss_mask", "loss_semantic_seg", "presence_loss", "loss_cass_ce", "loss_bbox"):
            assert f"train/{mode}/{term}" in tags, (mode, term)
    stats = _epoch_losses(proofread_cass_run)
    a, p = stats["Losses/train_all_automatic/loss_mask"], stats["Losses/train_all_proofread/loss_mask"]
    assert a > 0 and p > 0


def test_proofread_alone_trains(tiny_data_root, tmp_path):
    proc = run_train(["-c", "configs/angiography/cass.yaml", *small_run_overrides(tiny_data_root, tmp_path, epochs=1),
                      "model.class_ids=[1,2,12,13]", "training.modes=[proofread]",
                      "training.proofread.point_sampling=centreline"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "checkpoints" / "checkpoint.pt").is_file()
    tags = _tensorboard_tags(tmp_path)
    assert "train/proofread/loss_mask" in tags and not any(t.startswith("train/automatic/") for t in tags)
    import torch

    sd = torch.load(tmp_path / "checkpoints" / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    assert any(k.startswith("prompt_encoder.") for k in sd)


def test_an_unknown_mode_is_a_config_error(tiny_data_root, tmp_path):
    args = ["-c", "configs/angiography/cass.yaml", *small_run_overrides(tiny_data_root, tmp_path, epochs=1),
            "model.class_ids=[1,2,12,13]", "training.modes=[automatic,clicky]"]
    check = check_train([*args, "--check"])  # found before anything is built
    assert check.returncode == 1 and "training.modes" in check.stdout and "clicky" in check.stdout
    proc = check_train(args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "training.modes" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "checkpoints").exists()
