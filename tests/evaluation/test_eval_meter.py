"""The trainer's validation meter: model outputs go through the inference postprocessing into
AngioValMeter, which returns bbox/segm AP, per-class AP and naming (the numbers tools/eval.py gives)
and writes metrics.json - with no prediction file read back."""

from __future__ import annotations

import contextlib
import io
import json
import logging

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from sam3_angio.evaluation import AngioValMeter, evaluate_files
from sam3_angio.evaluation.synthetic import synthetic_coco

torch.set_num_threads(1)


def _model_outputs(gt: dict):
    """One find stage as SAM3 returns it for (image, category) queries, built from the ground truth:
    query 0 = the true mask and box (high score), query 1 = the mask moved 3 px (lower score),
    query 2 = nothing (lowest score)."""
    from sam3.model.data_misc import BatchedInferenceMetadata
    from sam3.model.model_misc import SAM3Output

    rows = [(im["id"], c["id"]) for im in gt["images"] for c in gt["categories"]]
    size = gt["images"][0]["height"]
    masks = torch.full((len(rows), 3, size, size), -8.0)
    boxes = torch.zeros(len(rows), 3, 4)
    logits = torch.tensor([4.0, 0.0, -4.0]).repeat(len(rows), 1)[..., None]
    for r, (img, cat) in enumerate(rows):
        for a in gt["annotations"]:
            if a["image_id"] == img and a["category_id"] == cat:
                m = torch.from_numpy(mask_utils.decode(mask_utils.frPyObjects(a["segmentation"], size, size)).max(-1).astype(bool))
                masks[r, 0][m] = 8.0
                masks[r, 1][torch.roll(m, shifts=3, dims=1)] = 8.0
                x, y, w, h = a["bbox"]
                boxes[r, 0] = torch.tensor([(x + w / 2) / size, (y + h / 2) / size, w / size, h / size])
                boxes[r, 1] = boxes[r, 0] + torch.tensor([3 / size, 0, 0, 0])
    outputs = {"pred_logits": logits, "pred_boxes": boxes, "pred_masks": masks,
               "presence_logit_dec": torch.full((len(rows), 1), 10.0)}
    ids = torch.tensor([img for img, _ in rows])
    meta = BatchedInferenceMetadata(
        coco_image_id=ids, original_image_id=ids,
        original_category_id=torch.tensor([cat for _, cat in rows], dtype=torch.int),
        original_size=torch.tensor([[size, size]] * len(rows)),
        object_id=torch.zeros(len(rows), dtype=torch.long), frame_index=torch.zeros(len(rows), dtype=torch.long),
        is_conditioning_only=[None] * len(rows),
    )
    return SAM3Output([[outputs]], iter_mode=SAM3Output.IterMode.LAST_STEP_PER_STAGE), [meta]


class _Batch:
    """What the meter reads of a batch: the image of each text query (one image per query here)."""

    def __init__(self, n_queries: int):
        self.find_inputs = [type("FindInput", (), {"img_ids": torch.arange(n_queries)})()]


def test_meter_reports_bbox_segm_and_per_class_ap_like_the_tool(tmp_path, caplog):
    gt = synthetic_coco(4, cat_ids=(1, 2), size=32, seed=7, names={1: "proximal RCA", 2: "mid/distal LCX"})
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    dump = tmp_path / "dumps"
    meter = AngioValMeter(gt_path=str(gt_path), out_dir=str(dump))
    stages, metas = _model_outputs(gt)
    meter.update(find_stages=stages, find_metadatas=metas, model=None, batch=_Batch(len(metas[0].original_image_id)),
                 key="val")
    with caplog.at_level(logging.INFO):
        out = meter.compute_synced()

    pred_file = dump / "predictions.json"
    assert pred_file.is_file() and (dump / "metrics.json").is_file()
    # every value is a finite float: what the trainer's TensorBoard logger takes
    assert all(isinstance(v, float) and np.isfinite(v) for v in out.values())
    assert out["segm.AP"] == 1.0 and out["bbox.AP"] == pytest.approx(1.0)
    assert out["per_class.proximal RCA.segm.AP"] == 1.0
    # "mid/distal LCX": a slash would split the trainer's and TensorBoard's tag
    assert "per_class.mid_distal LCX.bbox.AP" in out and not any("/" in k for k in out)
    assert out["dice"] == 1.0 and out["arcade_f1"] == 1.0
    assert out["cass.naming_top1"] == 1.0 and out["cass.naming_match_rate"] == 1.0
    # the same numbers as tools/eval.py on the predictions, and as COCOeval called directly
    tool = evaluate_files(str(gt_path), str(pred_file))
    assert {k: tool[k] for k in out} == out
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt_path))
        ev = COCOeval(coco, coco.loadRes(str(pred_file)), "segm")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    assert out["segm.AP"] == ev.stats[0] and out["segm.AR100"] == ev.stats[8]
    assert json.loads((dump / "metrics.json").read_text())["per_class.proximal RCA.segm.AP"] == 1.0
    log_text = caplog.text
    assert "per class" in log_text and "proximal RCA" in log_text and "segm AP" in log_text


def test_meter_keeps_validation_going_when_nothing_is_predicted(tmp_path, caplog):
    gt = synthetic_coco(2, cat_ids=(1,), size=16, seed=1)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    meter = AngioValMeter(gt_path=str(tmp_path / "gt.json"), out_dir=str(tmp_path / "out"))
    with caplog.at_level(logging.WARNING):
        out = meter.evaluate([])
    assert out["segm.AP"] == 0.0 and "nothing was predicted" in caplog.text
    assert (tmp_path / "out" / "metrics_history.jsonl").read_text().count("\n") == 1


def test_progress_display_mid_validation_scores_nothing_and_history_gets_one_line_a_validation(tmp_path):
    """SAM3's ProgressMeter calls compute() at every log_freq batch; only compute_synced (the trainer's
    end-of-validation call) scores, writes metrics.json and appends the validation to the history."""
    from sam3.train.utils.train_utils import ProgressMeter

    gt = synthetic_coco(4, cat_ids=(1, 2), size=32, seed=7)
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    dump = tmp_path / "dumps"
    meter = AngioValMeter(gt_path=str(gt_path), out_dir=str(dump))
    progress = ProgressMeter(2, [], {"val_angio": meter}, prefix="Val Epoch: [0]")
    stages, metas = _model_outputs(gt)
    progress.display(0)
    meter.update(find_stages=stages, find_metadatas=metas, model=None, batch=_Batch(len(metas[0].original_image_id)),
                 key="val")
    progress.display(1)
    assert not (dump / "metrics.json").exists() and not (dump / "metrics_history.jsonl").exists()
    assert meter.compute_synced()["segm.AP"] == 1.0
    assert len((dump / "metrics_history.jsonl").read_text().splitlines()) == 1
