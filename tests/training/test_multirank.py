"""Local multi-rank training: 2 CPU ranks (gloo, threads split between them) follow the same loss
trajectory as 1 rank on the same global batch.

Why they must agree: with shuffle off, DistributedSampler gives rank r the samples r, r+2, ...; SAM3's
loss divides by the all-reduced number of boxes ("global" normalisation), so the mean of the two ranks'
losses equals the one-rank loss on both samples, and DDP's averaged gradient equals its gradient.
(The sqrt(batch) scaling SAM3 applies by default is per rank, so the comparison turns it off.)
Tolerance: 1e-4 relative on the first step, 1e-3 on the second (float reductions in another order)."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import run_train, small_run_overrides


def _trace(folder, rank):
    return [json.loads(ln) for ln in (folder / f"loss_trace_rank{rank}.jsonl").read_text().splitlines()]


def test_two_cpu_ranks_match_one_rank_on_the_same_global_batch(tiny_data_root, tmp_path):
    common = [
        "scratch.train_transforms=${scratch.val_transforms}",  # no random augmentation
        "scratch.angio_loss.scale_by_find_batch_size=false",
        "profiles.sam3_tiny.limit_train_images=null",
        "trainer.data.train.shuffle=false",
    ]
    one, two = tmp_path / "one", tmp_path / "two"
    run_train(["-c", "vessel_segmentation", *small_run_overrides(tiny_data_root, one, epochs=1), *common,
               "scratch.train_batch_size=2", f"scratch.loss_trace_dir={one / 'trace'}"], check=True)
    run_train(["-c", "vessel_segmentation", "--num-gpus", "2", *small_run_overrides(tiny_data_root, two, epochs=1),
               *common, "scratch.train_batch_size=1", f"scratch.loss_trace_dir={two / 'trace'}"], check=True)
    ref = _trace(one / "trace", 0)
    r0, r1 = _trace(two / "trace", 0), _trace(two / "trace", 1)
    assert len(ref) == len(r0) == len(r1) == 2  # 4 frames: 2 steps either way
    for step, tol in ((0, 1e-4), (1, 1e-3)):
        mean = (r0[step]["core_loss"] + r1[step]["core_loss"]) / 2
        assert mean == pytest.approx(ref[step]["core_loss"], rel=tol), (step, mean, ref[step]["core_loss"])
    # Same global batch, same averaged gradient: the trained weights agree too.
    a = torch.load(one / "checkpoints" / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    b = torch.load(two / "checkpoints" / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a if a[k].is_floating_point())
    assert worst < 1e-3, worst
