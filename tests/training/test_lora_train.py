"""A LoRA run through tools/train.py: phase 1 -> phase 2 initialisation under the LoRA base layers,
frozen SAM3 weights that stay the phase 1 weights, adapters that train, resume, and the adapter file."""

from __future__ import annotations

import torch

from conftest import loss_trace, one_and_two_rank_runs, run_train, small_run_overrides

LORA = ["model.lora.enabled=true", "model.lora.r=4", "model.lora.alpha=8"]


def _plain(key: str) -> str:
    return key.replace(".base_layer.", ".")


def test_lora_phase2_from_phase1_trains_only_adapters_and_heads_and_resumes(tiny_data_root, tmp_path):
    from sam3_angio.model.tiny import build_sam3_tiny

    phase1 = build_sam3_tiny(seed=11).state_dict()
    phase1_ckpt = tmp_path / "phase1.pt"
    torch.save({"model": phase1}, phase1_ckpt)
    exp = tmp_path / "p2"

    def phase2(epochs):
        return run_train(["-c", "configs/angiography/cass.yaml", *small_run_overrides(tiny_data_root, exp, epochs=epochs),
                          f"paths.phase1_checkpoint={phase1_ckpt}", "init.require_phase1=true", *LORA], check=True)

    out = phase2(1)
    summary = [ln for ln in out.stdout.splitlines() if ln.startswith("checkpoint ") and "loaded" in ln]
    assert summary and int(summary[0].split("loaded ")[1].split(",")[0]) == len(phase1), out.stdout[-3000:]
    sd = torch.load(exp / "checkpoints" / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    lora = {k: v for k, v in sd.items() if "lora_" in k}
    assert lora and any(float(v.abs().max()) > 0 for k, v in lora.items() if "lora_B" in k), "adapters trained"
    base = {_plain(k[len("detector."):]): v for k, v in sd.items() if k.startswith("detector.") and "lora_" not in k}
    assert set(base) == set(phase1)
    changed = [k for k in phase1 if phase1[k].is_floating_point() and not torch.equal(base[k], phase1[k])]
    assert not changed, f"frozen SAM3 weights moved: {changed[:5]}"
    # The adapter file beside checkpoint.pt: only LoRA + our heads, a fraction of the checkpoint.
    adapter = torch.load(exp / "checkpoints" / "adapter.pt", map_location="cpu", weights_only=True)["adapter"]
    assert set(adapter) == set(lora) | {k for k in sd if k.startswith(("view_encoder.", "film.", "cass_head."))}
    full, small = ((exp / "checkpoints" / f).stat().st_size for f in ("checkpoint.pt", "adapter.pt"))
    assert small < 0.3 * full, (small, full)
    # The Predictor of a LoRA run merges the adapters: plain SAM3 modules, the trained weights.
    from sam3_angio.inference import Predictor

    pred = Predictor.from_checkpoint(str(exp / "checkpoints" / "checkpoint.pt"))
    assert not any("lora_" in k or "base_layer" in k for k in pred.model.state_dict())
    # Resume: the run continues from its own checkpoint (with its adapters), not from phase 1.
    again = phase2(2)
    assert not [ln for ln in again.stdout.splitlines() if ln.startswith("checkpoint ") and "loaded" in ln]
    assert "Resuming training from epoch: 1" in (exp / "logs" / "log.txt").read_text()
    sd2 = torch.load(exp / "checkpoints" / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]
    assert any(not torch.equal(sd2[k], v) for k, v in lora.items()), "adapters trained on after resuming"


def test_two_gloo_ranks_with_lora_stay_in_sync(tiny_data_root, tmp_path):
    """The study's LoRA was blocked by a DataParallel bug. Here 2 CPU ranks (DDP, gloo) with LoRA on the
    plain SAM3 of phase 1 follow the 1-rank trajectory on the same global batch (see
    test_multirank.py for why they must): rank 1's second-step loss only matches if its adapters
    received the same averaged update as rank 0's; the saved adapters match the 1-rank ones."""
    import pytest

    one, two = one_and_two_rank_runs(tiny_data_root, tmp_path, LORA)
    ref, r0, r1 = loss_trace(one / "trace", 0), loss_trace(two / "trace", 0), loss_trace(two / "trace", 1)
    assert len(ref) == len(r0) == len(r1) == 2
    for step, tol in ((0, 1e-4), (1, 1e-3)):
        mean = (r0[step]["core_loss"] + r1[step]["core_loss"]) / 2
        assert mean == pytest.approx(ref[step]["core_loss"], rel=tol), (step, mean, ref[step]["core_loss"])
    a = torch.load(one / "checkpoints" / "adapter.pt", map_location="cpu", weights_only=True)["adapter"]
    b = torch.load(two / "checkpoints" / "adapter.pt", map_location="cpu", weights_only=True)["adapter"]
    assert set(a) == set(b) and any("lora_" in k for k in a)
    assert any(float(v.abs().max()) > 0 for k, v in a.items() if "lora_B" in k)
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-3, worst
