"""Running a trained model over a data split and writing COCO predictions (``tools/eval.py -c CONFIG
--checkpoint CKPT``): the same model, dataset, transforms and postprocessor as the run's validation,
so the numbers cannot drift from what training reported."""

from __future__ import annotations

import json
import os
from typing import Dict, Optional, Sequence

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from sam3_angio.errors import DataError


def _split_paths(cfg: DictConfig, split: str):
    root = cfg.paths.coco_root
    ann = os.path.join(root, split, "annotations.json")
    if split in ("train", "val"):
        ann = cfg.data[f"{split}_json"]
        return ann, cfg.data[f"{split}_images"]
    return ann, os.path.join(root, split, "images")


def load_config(config: str, overrides: Sequence[str] = ()) -> DictConfig:
    from sam3_angio.training.config import compose, finalize

    return finalize(compose(config, list(overrides)))


def split_annotations(config: str, split: str, overrides: Sequence[str] = ()) -> str:
    return _split_paths(load_config(config, overrides), split)[0]


@torch.no_grad()
def predict_split(config: str, checkpoint: str, split: str, out_dir: str,
                  overrides: Sequence[str] = (), limit: Optional[int] = None) -> Dict[str, str]:
    """Predict ``split`` with the model of ``config`` and the weights of ``checkpoint`` (a trainer
    ``checkpoint.pt`` or a bare state dict). Writes ``out_dir/coco_predictions_segm.json`` and, for
    the view-conditioned model, ``out_dir/cass_head.json`` (CASS head accuracy on the labelled
    segments). Returns ``{"pred_json", "gt_json"}``."""
    from sam3_angio import cpu_compat
    from sam3_angio.model.checkpoint import load_into, read_state_dict, strip_prefixes
    from sam3_angio.training.config import register_resolvers
    from sam3_angio.training.launch import ensure_process_group

    cpu_compat.apply()
    register_resolvers()
    cfg = load_config(config, overrides)
    ann, images = _split_paths(cfg, split)
    for path, kind in ((ann, "annotations"), (images, "images folder")):
        if not os.path.exists(path):
            raise DataError(f"split {split!r}: {kind} not found at {path} (convert the data first, or pass "
                            f"overrides such as paths.data_root=...)")
    os.makedirs(out_dir, exist_ok=True)
    with open_dict(cfg):
        cfg.trainer.data.val.dataset.ann_file = ann
        cfg.trainer.data.val.dataset.img_folder = images
        if limit:
            cfg.trainer.data.val.dataset.limit_ids = int(limit)
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    ensure_process_group()

    model = instantiate(cfg.trainer.model, _convert_="all")
    sd = strip_prefixes(read_state_dict(checkpoint), ("module.",))
    report = load_into(model, sd, checkpoint)
    print(report.summary())
    device = torch.device(cfg.trainer.accelerator)
    model.to(device).eval()

    val = cfg.trainer.data.val
    dataset = instantiate(val.dataset)
    collate = instantiate(val.collate_fn)
    key = val.collate_fn.dict_key
    loader = torch.utils.data.DataLoader(dataset, batch_size=int(val.batch_size), shuffle=False,
                                         num_workers=int(val.num_workers), collate_fn=collate)
    meter_cfg = dict(cfg.trainer.meters.val[key]["coco"])
    meter_cfg.update(dump_dir=out_dir, pred_file_evaluators=None)
    dumper = instantiate(meter_cfg)
    cass_true, cass_pred = [], []
    from sam3.model.utils.misc import copy_data_to_device

    n = len(loader)
    for i, batch in enumerate(loader):
        batch = copy_data_to_device(batch[key], device)
        outputs = model(batch)
        last = outputs.output[-1][-1]
        if "cass_logits" in last:
            keep = last["cass_targets"] >= 0
            cass_true += last["cass_targets"][keep].tolist()
            cass_pred += last["cass_logits"][keep].argmax(1).tolist()
        dumper.update(find_stages=outputs, find_metadatas=batch.find_metadatas, model=model, batch=batch)
        if (i + 1) % 10 == 0 or i + 1 == n:
            print(f"predict: {i + 1}/{n} batches")
    pred_json = str(dumper.synchronize_between_processes())
    result = {"pred_json": pred_json, "gt_json": ann}
    if cass_true:
        from sam3_angio.evaluation.cass_metrics import classification_metrics

        ids = list(model.class_ids)
        m = classification_metrics([ids[t] for t in cass_true], [ids[p] for p in cass_pred], ids)
        with open(os.path.join(out_dir, "cass_head.json"), "w") as f:
            json.dump({"class_ids": ids, **m}, f, indent=2)
        print(f"CASS head on {m['n_images']} labelled segments: top-1 {m['top1']:.4f}, "
              f"balanced accuracy {m['balanced_accuracy']:.4f}")
    return result
