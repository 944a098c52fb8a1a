"""The text-embedding cache (sam3_angio/model/text_cache.py) inside ViewConditionedSam3."""

from __future__ import annotations

import copy

import torch

from model_fixtures import last_step as _last, wrapper as _wrapper


def _frozen_text(tiny_sam3, **kw):
    return _wrapper(copy.deepcopy(tiny_sam3), freeze={"language_backbone": True}, **kw)


def _count_text_calls(model, monkeypatch):
    backbone = model.detector.backbone
    calls = []
    real = backbone.forward_text

    def counting(captions, *a, **k):
        calls.append(list(captions))
        return real(captions, *a, **k)

    monkeypatch.setattr(backbone, "forward_text", counting)
    return calls


def test_cached_outputs_equal_uncached(tiny_sam3, cass_batch):
    cached = _frozen_text(tiny_sam3).train()
    plain = _frozen_text(tiny_sam3, text_cache=False).train()
    plain.load_state_dict(cached.state_dict())  # same heads (their init is random)
    direct = plain.text_features(list(cass_batch.find_text_batch), "cpu")
    for _ in range(2):  # filled on the first call, read on the second
        got = cached.text_features(list(cass_batch.find_text_batch), "cpu")
        for k, v in direct.items():
            assert torch.allclose(got[k].float(), v.float(), atol=1e-6), k
    # A batch in another order or a subset of phrases is assembled from the same entries.
    rev = list(reversed(cass_batch.find_text_batch))
    for k, v in plain.text_features(rev, "cpu").items():
        assert torch.allclose(cached.text_features(rev, "cpu")[k].float(), v.float(), atol=1e-6), k
    with torch.no_grad():  # eval: the CASS head's dropout would differ between the two
        a, b = _last(cached.eval()(cass_batch)), _last(plain.eval()(cass_batch))
    for key in ("pred_logits", "pred_boxes", "pred_masks", "cass_logits"):
        assert torch.allclose(a[key], b[key], atol=1e-5), key


def test_language_forward_runs_only_on_the_first_step(tiny_sam3, cass_batch, monkeypatch):
    model = _frozen_text(tiny_sam3).train()
    calls = _count_text_calls(model, monkeypatch)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(3):
        out = _last(model(cass_batch))
        (out["pred_logits"].sum() + out["cass_logits"].sum()).backward()
        opt.step()
        opt.zero_grad()
    assert len(calls) == 1 and sorted(calls[0]) == sorted(set(cass_batch.find_text_batch))
    assert model.text_cache.encoded == len(set(cass_batch.find_text_batch))


def test_new_phrases_and_new_weights_are_encoded_again(tiny_sam3, monkeypatch):
    model = _frozen_text(tiny_sam3).eval()
    calls = _count_text_calls(model, monkeypatch)
    model.text_features(["mid LAD", "proximal RCA"], "cpu")
    model.text_features(["proximal RCA", "mid LAD"], "cpu")
    assert calls == [["mid LAD", "proximal RCA"]]
    model.text_features(["mid LAD", "distal LAD"], "cpu")
    assert calls[-1] == ["distal LAD"]  # only the phrase never seen
    before = model.text_features(["mid LAD"], "cpu")["language_features"].clone()
    with torch.no_grad():  # a checkpoint loading other language weights invalidates the cache
        next(model.detector.backbone.language_backbone.parameters()).add_(0.5)
    after = model.text_features(["mid LAD"], "cpu")["language_features"]
    assert calls[-1] == ["mid LAD"] and not torch.allclose(before, after)


def test_a_trainable_language_backbone_bypasses_the_cache(tiny_sam3, monkeypatch):
    model = _wrapper(copy.deepcopy(tiny_sam3)).train()  # nothing frozen
    calls = _count_text_calls(model, monkeypatch)
    for _ in range(2):
        out = model.text_features(["mid LAD"], "cpu")
    assert len(calls) == 2 and out["language_features"].requires_grad
