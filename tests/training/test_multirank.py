"""Local multi-rank training: 2 CPU ranks (gloo, threads split between them) follow the same loss
trajectory as 1 rank on the same global batch.

Why they must agree: with shuffle off, DistributedSampler gives rank r the samples r, r+2, ...; SAM3's
loss divides by the all-reduced number of boxes ("global" normalisation), so the mean of the two ranks'
losses equals the one-rank loss on both samples, and DDP's averaged gradient equals its gradient.
(The sqrt(batch) scaling SAM3 applies by default is per rank, so the comparison turns it off.)
Tolerance: 1e-4 relative on the first step, 1e-3 on the second (float reductions in another order)."""

from __future__ import annotations


import pytest
import torch

from conftest import loss_trace, one_and_two_rank_runs


def test_two_cpu_ranks_match_one_rank_on_the_same_global_batch(tiny_data_root, tmp_path):
    one, two = one_and_two_rank_runs(tiny_data_root, tmp_path)
    ref = loss_trace(one / "trace", 0)
    r0, r1 = loss_trace(two / "trace", 0), loss_trace(two / "trace", 1)
    assert len(ref) == len(r0) == len(r1) == 2  # 4 frames: 2 steps either way
    for step, tol in ((0, 1e-4), (1, 1e-3)):
        mean = (r0[step]["core_loss"] + r1[step]["core_loss"]) / 2
        assert mean == pytest.approx(ref[step]["core_loss"], rel=tol), (step, mean, ref[step]["core_loss"])
    # Same global batch, same averaged gradient: the trained weights agree too.
    a = torch.load(one / "checkpoints" / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    b = torch.load(two / "checkpoints" / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a if a[k].is_floating_point())
    assert worst < 1e-3, worst
