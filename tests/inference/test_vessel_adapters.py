"""Vessel-specific adapters (docs/finetuning.md): ``tools/predict.py --adapters DIR`` applies the adapter of
the frame's vessel (``--vessel``) or of the first-pass rule (higher total score) on top of the base
``--checkpoint``. Adapters are made in-process (perturbed LoRA weights); the training run that writes one
is tests/training/test_vessel_group_train.py."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch

from conftest import ROOT

CASS = str(ROOT / "configs" / "angiography" / "cass.yaml")
CLASSES = "model.class_ids=[1,2,12,13]"
LORA = ["model.lora.enabled=true", "model.lora.r=4"]


def _overrides(data_root):
    return ["model.name=sam3_tiny", CLASSES, *LORA, f"paths.data_root={data_root}",
            "data.demo.generate_if_missing=false"]


@pytest.fixture(scope="module")
def adapter_set(tiny_data_root, tmp_path_factory):
    """A base checkpoint (plain SAM3 weights, as a phase 1 run's) and DIR/{rca,left}/adapter.pt whose
    LoRA matrices and heads are perturbed differently (two "trained" adapters), built in-process."""
    from sam3_angio.inference.predictor import build_run_model
    from sam3_angio.model.adapters import OWN_HEADS, adapter_info, save_adapter
    from sam3_angio.model.lora import LORA_KEY, canonical_key

    root = tmp_path_factory.mktemp("adapters")
    torch.manual_seed(0)
    _, model = build_run_model(CASS, _overrides(tiny_data_root), {"model": "sam3_tiny", "task": "cass"}, "test")
    base = {canonical_key(k): v for k, v in model.state_dict().items()
            if LORA_KEY not in k and not k.startswith(OWN_HEADS)}
    torch.save(base, root / "base.pt")
    for seed, group in enumerate(("rca", "left")):
        m = copy.deepcopy(model)
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for n, p in m.named_parameters():
                if "lora_B" in n or n.startswith(OWN_HEADS):
                    p.add_(torch.randn(p.shape, generator=gen) * 0.2)
        (root / "adapters" / group).mkdir(parents=True)
        run = {"task": "cass", "model": "sam3_tiny", "class_ids": [1, 2, 12, 13], "vessel_group": group}
        info = adapter_info(m, run)
        assert save_adapter(m.state_dict(), str(root / "adapters" / group / "adapter.pt"), info)
    return root


def _predict(adapter_set, tiny_data_root, out, *extra):
    from sam3_angio.inference.cli import main

    frame = str(sorted((tiny_data_root / "coco_cass" / "val" / "images").glob("*.png"))[-1])
    rc = main([frame, "--checkpoint", str(adapter_set / "base.pt"), "-c", CASS, "--out", str(out), "--quiet",
               "--device", "cpu", *_overrides(tiny_data_root), *extra])  # extra overrides win
    return rc


def _docs(out):
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(out.glob("*/predictions.json"))}


def _total(doc, image_id, thr):
    return sum(a["score"] for a in doc["annotations"] if a["image_id"] == image_id and a["score"] >= thr)


def test_vessel_flag_picks_that_adapter_and_without_it_the_higher_total_score_wins(adapter_set, tiny_data_root,
                                                                                   tmp_path):
    thr = "0.05"
    for group in ("rca", "left"):
        assert _predict(adapter_set, tiny_data_root, tmp_path / group, "--adapters", str(adapter_set / "adapters"),
                        "--vessel", group, "--score-thr", thr) == 0
    assert _predict(adapter_set, tiny_data_root, tmp_path / "auto", "--adapters", str(adapter_set / "adapters"),
                    "--score-thr", thr) == 0
    rca, left, auto = _docs(tmp_path / "rca"), _docs(tmp_path / "left"), _docs(tmp_path / "auto")
    assert set(rca) == set(left) == set(auto) and len(auto) == 1
    differ = False
    for name in auto:
        for img in rca[name]["images"]:
            assert img["adapter"] == {"group": "rca", "rule": "--vessel"}
        assert rca[name]["info"]["model"]["adapter_rule"] == "--vessel"
        assert sorted(auto[name]["info"]["model"]["adapters"]) == ["left", "rca"]
        # the two adapters hold different weights: different instances on the same frame
        strip = [[{k: a[k] for k in ("score", "cass_name", "bbox")} for a in d[name]["annotations"]]
                 for d in (rca, left)]
        differ = differ or strip[0] != strip[1]
        for img in auto[name]["images"]:
            choice = img["adapter"]
            assert choice["rule"] == "higher total score" and choice["score_thr"] == float(thr)
            totals = {g: _total(d[name], img["id"], float(thr)) for g, d in (("rca", rca), ("left", left))}
            assert choice["total_score"] == pytest.approx(totals, abs=1e-3)  # what each adapter alone found
            every = {g: _total(d[name], img["id"], float("-inf")) for g, d in (("rca", rca), ("left", left))}
            winner = max(sorted(totals), key=lambda g: (totals[g], every[g]))  # ties: all scores, then the name
            assert choice["group"] == winner
            chosen = rca if winner == "rca" else left
            mine = [a for a in auto[name]["annotations"] if a["image_id"] == img["id"]]
            theirs = [a for a in chosen[name]["annotations"] if a["image_id"] == img["id"]]
            assert [(a["score"], a["cass_name"], a["segmentation"]) for a in mine] == \
                [(a["score"], a["cass_name"], a["segmentation"]) for a in theirs]
    assert differ


def test_adapters_errors_name_the_folder_the_group_and_the_mismatch(adapter_set, tiny_data_root, tmp_path, capsys):
    assert _predict(adapter_set, tiny_data_root, tmp_path / "a", "--adapters", str(tmp_path / "nope")) == 2
    assert "--adapters" in capsys.readouterr().err
    one = next((adapter_set / "adapters").rglob("adapter.pt"))  # the file, not its folder
    assert _predict(adapter_set, tiny_data_root, tmp_path / "a2", "--adapters", str(one)) == 2
    err = capsys.readouterr().err
    assert "is a file" in err and "<group>/adapter.pt" in err and "no such folder" not in err
    assert _predict(adapter_set, tiny_data_root, tmp_path / "b", "--adapters", str(adapter_set / "adapters"),
                    "--vessel", "lad") == 2
    err = capsys.readouterr().err
    assert "--vessel 'lad'" in err and "left, rca" in err
    assert _predict(adapter_set, tiny_data_root, tmp_path / "c", "--vessel", "rca") == 2
    assert "--vessel needs --adapters" in capsys.readouterr().err
    # another base: the recorded fingerprint does not match
    other = {k: v + 0.01 if v.is_floating_point() else v for k, v in torch.load(adapter_set / "base.pt").items()}
    torch.save(other, tmp_path / "other_base.pt")
    from sam3_angio.inference.cli import main

    frame = str(sorted((tiny_data_root / "coco_cass" / "val" / "images").glob("*.png"))[0])
    assert main([frame, "--checkpoint", str(tmp_path / "other_base.pt"), "-c", CASS, "--out", str(tmp_path / "d"),
                 "--quiet", "--adapters", str(adapter_set / "adapters"), *_overrides(tiny_data_root)]) == 2
    assert "other base weights" in capsys.readouterr().err
    # another LoRA rank than the adapters were trained with
    assert _predict(adapter_set, tiny_data_root, tmp_path / "e", "--adapters", str(adapter_set / "adapters"),
                    "model.lora.r=8") == 2
    assert "model.lora r=4" in capsys.readouterr().err
    # a folder whose name is not the adapter's recorded group
    wrong = tmp_path / "wrong"
    shutil.copytree(adapter_set / "adapters" / "rca", wrong / "left")
    assert _predict(adapter_set, tiny_data_root, tmp_path / "f", "--adapters", str(wrong)) == 2
    assert "trained on group 'rca'" in capsys.readouterr().err
