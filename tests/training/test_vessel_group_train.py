"""A LoRA run with ``data.vessel_group=rca`` (tools/train.py, tiny model, 1 epoch) trains and validates on
the group's frames only, records the group in checkpoint.pt and adapter.pt, and its run folder is an
entry of ``tools/predict.py --adapters DIR`` (tests/inference/test_vessel_adapters.py covers prediction)."""

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
    exp = tmp_path / "rca"
    run_train(["-c", CASS, *small_run_overrides(data, exp, epochs=1), CLASSES, *LORA, "data.vessel_group=rca",
               "scratch.train_batch_size=1"], check=True)
    info = read_adapter_info(str(exp / "checkpoints" / "adapter.pt"))
    assert info["vessel_group"] == "rca" and info["lora"]["r"] == 4 and len(info["base_fingerprint"]) == 16
    ckpt = torch.load(exp / "checkpoints" / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert ckpt["angio"]["vessel_group"] == "rca"
    # validation saw only the RCA frame (val image 2), the loader and the ground truth alike
    preds = json.loads((exp / "predictions" / "predictions.json").read_text())
    assert preds and {p["image_id"] for p in preds} == {2}
    # the run's own folder is an adapters entry (DIR/rca/checkpoints/adapter.pt + DIR/rca/config_resolved.yaml),
    # and its full checkpoint.pt is a base it fits (same frozen weights)
    assert find_adapters(str(tmp_path)) == {"rca": str(exp / "checkpoints" / "adapter.pt")}
    predictor = AdapterPredictor.from_base(str(exp / "checkpoints" / "checkpoint.pt"), str(tmp_path), device="cpu")
    assert list(predictor.predictors) == ["rca"]
