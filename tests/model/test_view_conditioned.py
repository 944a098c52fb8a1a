"""The view-conditioned wrapper and phase 1 -> phase 2 initialisation."""

from __future__ import annotations

import copy

import pytest
import torch

from sam3_angio.view_angles import ViewBatch
from model_fixtures import last_step as _last, wrapper as _wrapper


def test_batch_carries_view_angles(cass_batch):
    assert cass_batch.views.angles.shape == (2, 2)
    assert cass_batch.views.known.all()
    assert torch.isfinite(cass_batch.views.angles).all()


def test_fresh_wrapper_reproduces_plain_sam3(tiny_sam3, cass_batch):
    plain = copy.deepcopy(tiny_sam3).eval()
    wrapped = _wrapper(copy.deepcopy(tiny_sam3)).eval()
    with torch.no_grad():
        a = _last(plain(cass_batch))
        b = _last(wrapped(cass_batch))
    for key in ("pred_logits", "pred_boxes", "pred_masks", "presence_logit_dec"):
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    assert b["cass_logits"].shape == (len(b["cass_targets"]), 4)


def test_changing_the_angles_changes_cass_logits_after_training(tiny_sam3, cass_batch):
    from sam3_angio.losses import CassCrossEntropy

    torch.manual_seed(0)
    model = _wrapper(copy.deepcopy(tiny_sam3))
    ce = CassCrossEntropy(class_ids=[1, 2, 12, 13], class_weights="none")
    params = [p for n, p in model.named_parameters() if not n.startswith("detector.")]
    opt = torch.optim.Adam(params, lr=1e-3)
    model.train()
    for _ in range(3):
        out = _last(model(cass_batch))
        loss = ce(out["cass_logits"], out["cass_targets"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        before = _last(model(cass_batch))["cass_logits"]
        moved = copy.copy(cass_batch)
        moved.views = cass_batch.views.with_angles(cass_batch.views.angles + torch.tensor([30.0, -20.0]))
        after = _last(model(moved))["cass_logits"]
        # FiLM left identity would keep the SAM3 outputs; after training it must have moved too.
        film_moved = any(f.proj.weight.abs().sum() > 0 for f in model.film)
    assert not torch.allclose(before, after, atol=1e-5)
    assert film_moved


def test_unknown_angles_run_and_never_mean_zero_degrees(tiny_sam3, cass_batch):
    model = _wrapper(copy.deepcopy(tiny_sam3)).eval()
    unknown = copy.copy(cass_batch)
    unknown.views = ViewBatch.unknown(2)
    zero = copy.copy(cass_batch)
    zero.views = cass_batch.views.with_angles(torch.zeros_like(cass_batch.views.angles))
    e_unknown = model.embed_views(unknown.views, "cpu")
    e_zero = model.embed_views(zero.views, "cpu")
    assert not torch.allclose(e_unknown, e_zero)
    assert torch.allclose(e_unknown[0], model.view_encoder.unknown)
    with torch.no_grad():
        out = _last(model(unknown))
    assert torch.isfinite(out["cass_logits"]).all() and torch.isfinite(out["pred_logits"]).all()


def test_identity_mode_leaves_unknown_frames_untouched(tiny_sam3, cass_batch):
    plain = copy.deepcopy(tiny_sam3).eval()
    model = _wrapper(copy.deepcopy(tiny_sam3), unknown_angles="identity").eval()
    for f in model.film:  # a trained, non-identity FiLM
        torch.nn.init.normal_(f.proj.weight, std=0.1)
    unknown = copy.copy(cass_batch)
    unknown.views = ViewBatch.unknown(2)
    with torch.no_grad():
        a, b = _last(plain(unknown)), _last(model(unknown))
        c = _last(model(cass_batch))
    assert torch.allclose(a["pred_logits"], b["pred_logits"], atol=1e-6)
    assert not torch.allclose(a["pred_logits"], c["pred_logits"], atol=1e-6)


@pytest.mark.parametrize("kind", ["sinusoidal", "categorical"])
def test_view_encoders_give_256d_and_depend_on_angles(kind):
    from sam3_angio.registry import VIEW_ENCODERS

    enc = VIEW_ENCODERS.build(kind, dim=256)
    angles = torch.tensor([[-30.0, 25.0], [40.0, -20.0]])
    e = enc(angles, torch.tensor([True, True]))
    assert e.shape == (2, 256) and not torch.allclose(e[0], e[1])


def test_categorical_bins_clamp_at_plus_minus_40():
    from sam3_angio.model.view_encoder import CategoricalViewEncoder

    enc = CategoricalViewEncoder()
    b = enc.bins(torch.tensor([[-90.0, -40.0], [0.0, 12.0], [38.0, 75.0]]))
    assert b.tolist() == [[0, 0], [4, 5], [8, 8]]


def test_film_is_identity_at_init():
    from sam3_angio.model.film import FiLM

    film = FiLM()
    f = torch.randn(2, 256, 4, 4)
    assert torch.equal(film(f, torch.randn(2, 256)), f)


def test_box_regions_stand_in_when_masks_are_off(tiny_sam3, cass_batch):
    from sam3_angio.model.view_conditioned import boxes_to_masks

    m = boxes_to_masks(torch.tensor([[0.25, 0.5, 0.5, 0.5]]), (4, 4))
    assert m[0].int().tolist() == [[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    model = _wrapper(copy.deepcopy(tiny_sam3)).eval()
    boxes_only = copy.copy(cass_batch)
    boxes_only.find_targets = [copy.copy(t) for t in cass_batch.find_targets]
    boxes_only.find_targets[0].segments = None  # a run with segmentation off
    with torch.no_grad():
        out = _last(model(boxes_only))
    assert out["cass_logits"].shape == (len(out["cass_targets"]), 4)
    assert torch.isfinite(out["cass_logits"]).all()


def test_region_pooling_reads_inside_the_segment():
    from sam3_angio.model.cass_head import region_pool

    feats = torch.zeros(1, 2, 4, 4)
    feats[0, 0, :2, :2] = 1.0  # channel 0 lit only in the top-left quadrant
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[0, :4, :4] = True  # top-left
    masks[1, 4:, 4:] = True  # bottom-right
    pooled, geom = region_pool(feats, masks, torch.tensor([0, 0]))
    assert pooled[0, 0] == 1.0 and pooled[1, 0] == 0.0
    assert torch.allclose(geom[0, :2], torch.tensor([0.25, 0.25])) and torch.allclose(geom[1, :2], torch.tensor([0.75, 0.75]))


# ------------------------------------------------------------------------ phase 1 -> phase 2

def test_phase2_loads_every_backbone_tensor_of_phase1(tiny_sam3, tmp_path):
    from sam3_angio.model.init import load_phase1
    from sam3_angio.model.tiny import build_sam3_tiny

    phase1 = build_sam3_tiny(seed=11)
    ckpt = tmp_path / "checkpoint.pt"
    torch.save({"model": {f"module.{k}": v for k, v in phase1.state_dict().items()}, "epoch": 2}, ckpt)
    model = _wrapper(build_sam3_tiny(seed=12))
    load_phase1(model, str(ckpt), require=True)
    p1 = phase1.state_dict()
    for k, v in model.detector.state_dict().items():
        assert torch.equal(v, p1[k]), k


def test_missing_phase1_checkpoint_is_an_error_unless_allowed(tiny_sam3, tmp_path, capsys):
    from sam3_angio.errors import ConfigError
    from sam3_angio.model.init import load_phase1

    model = _wrapper(copy.deepcopy(tiny_sam3))
    with pytest.raises(ConfigError, match="init.require_phase1=false"):
        load_phase1(model, str(tmp_path / "none.pt"), require=True)
    load_phase1(model, str(tmp_path / "none.pt"), require=False)
    assert "phase 2 starts from the model's initial weights" in capsys.readouterr().out


def test_the_head_also_learns_from_the_predicted_masks_matched_to_each_segment(tiny_sam3, cass_batch):
    torch.manual_seed(0)
    base = _wrapper(copy.deepcopy(tiny_sam3)).train()
    torch.manual_seed(0)
    both = _wrapper(copy.deepcopy(tiny_sam3), cass_on_predictions=True).train()
    a, b = _last(base(cass_batch)), _last(both(cass_batch))
    n_gt = len(a["cass_targets"])
    # one matched prediction per ground-truth segment (SAM3's one-to-one matcher), named with its label
    assert len(b["cass_targets"]) == 2 * n_gt and b["cass_logits"].shape[0] == 2 * n_gt
    assert torch.equal(b["cass_targets"][:n_gt], a["cass_targets"])
    assert sorted(b["cass_targets"][n_gt:].tolist()) == sorted(a["cass_targets"].tolist())
    both.eval()
    with torch.no_grad():  # at evaluation only the ground-truth regions are named
        assert len(_last(both(cass_batch))["cass_targets"]) == n_gt


def test_phase2_prefers_phase1_best_checkpoint_and_says_which(tmp_path, capsys):
    from sam3_angio.model.init import load_phase1
    from sam3_angio.model.tiny import build_sam3_tiny

    last, best = build_sam3_tiny(seed=21), build_sam3_tiny(seed=22)
    torch.save({"model": last.state_dict(), "epoch": 2}, tmp_path / "checkpoint.pt")
    torch.save({"model": best.state_dict(), "epoch": 1}, tmp_path / "checkpoint_best.pt")
    model = _wrapper(build_sam3_tiny(seed=23))
    load_phase1(model, str(tmp_path / "checkpoint.pt"), require=True)
    assert "phase 1's best (checkpoint_best.pt)" in capsys.readouterr().out
    k = next(k for k, v in best.state_dict().items() if v.is_floating_point() and not torch.equal(v, last.state_dict()[k]))
    assert torch.equal(model.detector.state_dict()[k], best.state_dict()[k])
    load_phase1(model, str(tmp_path / "checkpoint.pt"), require=True, prefer_best=False)
    assert "phase 1's last (checkpoint.pt)" in capsys.readouterr().out
    assert torch.equal(model.detector.state_dict()[k], last.state_dict()[k])
