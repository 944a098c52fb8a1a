"""A validation meter for the CASS head: during the trainer's validation it collects the head's logits
for every labelled segment (named from its ground-truth region, as the study's task defines) and
reports top-1 and balanced accuracy (``cass_head.top1``, ``cass_head.balanced_accuracy``)."""

from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence

import torch.distributed as dist

from sam3_angio.cass import class_ids as validate_class_ids
from sam3_angio.registry import EVALUATORS

from .cass_metrics import classification_metrics

log = logging.getLogger(__name__)


@EVALUATORS.register()
class CassHeadMeter:
    """SAM3-trainer meter (``update`` per batch, ``compute_synced`` at the end of validation)."""

    def __init__(self, class_ids: Optional[Sequence[int]] = None):
        self.class_ids: List[int] = validate_class_ids(class_ids)
        self.reset()

    def reset(self) -> None:
        self.true: List[int] = []
        self.pred: List[int] = []

    def update(self, find_stages, **kwargs) -> None:
        stages = find_stages.output if hasattr(find_stages, "output") else find_stages
        last = stages[-1][-1]
        if "cass_logits" not in last:
            return
        targets = last["cass_targets"].detach().cpu()
        pred = last["cass_logits"].detach().argmax(1).cpu()
        keep = targets >= 0
        self.true += [self.class_ids[i] for i in targets[keep].tolist()]
        self.pred += [self.class_ids[i] for i in pred[keep].tolist()]

    def _gather(self):
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self.true, self.pred
        parts: List = [None] * dist.get_world_size()
        dist.all_gather_object(parts, (self.true, self.pred))
        return [t for p in parts for t in p[0]], [q for p in parts for q in p[1]]

    def compute_synced(self) -> Dict[str, float]:
        true, pred = self._gather()
        if not true:
            return {}
        m = classification_metrics(true, pred, self.class_ids)
        log.info("CASS head on %d labelled segments: top-1 %.4f, balanced accuracy %.4f",
                 m["n_images"], m["top1"], m["balanced_accuracy"])
        return {"cass_head.top1": m["top1"], "cass_head.balanced_accuracy": m["balanced_accuracy"],
                "cass_head.n_segments": float(m["n_images"])}

    def compute(self) -> Dict[str, float]:
        return self.compute_synced()
