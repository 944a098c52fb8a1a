"""A LoRA run with ``data.vessel_group=rca`` (tools/train.py, tiny model, 1 epoch, from a phase 1
checkpoint) trains and validates on the group's frames only, records the group in checkpoint.pt and
adapter.pt, and its run folder is an entry of ``tools/predict.py --adapters DIR`` on that phase 1 base
(tests/inference/test_vessel_adapters.py covers the prediction rule)."""

from __future__ import annotations

import json
import shutil

import torch

from conftest import ROOT, run_train, small_run_overrides

CASS = str(ROOT / "configs" / "angiography" / "cass.yaml")
CLASSES = "model.class_ids=[1,2,12,13]"
LORA = ["model.lora.enabled=true", "model.lora.r=4"]


def test_a_vessel_group_run_trains_on_its_group_and_its_adapter_records_it(tiny_data_root, tmp_path):
    """The one real run: tools/train.py with LoRA and data.vessel_group=rca on data that names vessels
    (here per frame: train frames 1-2 and val frame 1 show the LAD, the others the RCA)."""
    from sam3_angio.inference.adapters import AdapterPredictor, find_adapters
    from sam3_angio.model.adapters import read_adapter_info

    data = tmp_path / "data"
    shutil.copytree(tiny_data_root / "coco_cass", data / "coco_cass")
    lad = {"train": {1, 2}, "val": {1}}
    for split in ("train", "val"):
        path = data / "coco_cass" / split / "annotations.json"
        doc = json.loads(path.read_text())
        for a in doc["annotations"]:
            a["vessel_name"] = "LAD" if a["image_id"] in lad[split] else "RCA"
        path.write_text(json.dumps(doc))
    from sam3_angio.model.tiny import build_sam3_tiny

    phase1 = tmp_path / "phase1.pt"
    torch.save({"model": build_sam3_tiny(seed=11).state_dict()}, phase1)
    exp = tmp_path / "adapters" / "rca"
    run_train(["-c", CASS, *small_run_overrides(data, exp, epochs=1), CLASSES, *LORA, "data.vessel_group=rca",
               "scratch.train_batch_size=1", f"paths.phase1_checkpoint={phase1}", "init.require_phase1=true"],
              check=True)
    info = read_adapter_info(str(exp / "checkpoints" / "adapter.pt"))
    assert info["vessel_group"] == "rca" and info["lora"]["r"] == 4 and len(info["base_fingerprint"]) == 16
    ckpt = torch.load(exp / "checkpoints" / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert ckpt["angio"]["vessel_group"] == "rca"
    # validation saw only the RCA frame (val image 2), the loader and the ground truth alike
    preds = json.loads((exp / "predictions" / "predictions.json").read_text())
    assert preds and {p["image_id"] for p in preds} == {2}
    # the run's own folder is an adapters entry (DIR/rca/checkpoints/adapter.pt + DIR/rca/config_resolved.yaml);
    # the phase 1 checkpoint it started from is its base (the recorded fingerprint matches), and so is its
    # own full checkpoint.pt (same frozen weights), with the same merged weights
    adapters = tmp_path / "adapters"
    assert find_adapters(str(adapters)) == {"rca": str(exp / "checkpoints" / "adapter.pt")}
    on_phase1 = AdapterPredictor.from_base(str(phase1), str(adapters), device="cpu")
    on_run = AdapterPredictor.from_base(str(exp / "checkpoints" / "checkpoint.pt"), str(adapters), device="cpu")
    a, b = (p.predictors["rca"].model.state_dict() for p in (on_phase1, on_run))
    assert set(a) == set(b) and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
