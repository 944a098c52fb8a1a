"""The evaluator protocol (detectron2's shape): ``reset()``, ``process(inputs, outputs)``, ``evaluate()``.

The same evaluator objects serve ``tools/eval.py``, ``evaluate_files`` and the training meter, so their
numbers cannot drift apart. One call of ``process`` takes a batch of images:

    inputs:  [{"image_id": int}, ...]                      ground-truth image ids (length B)
    outputs: [{"instances": [result, ...],                  validated COCO results of that image
               "cass_logits": [K floats] (optional)}, ...]  a CASS head's logits (length B)
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Mapping, Optional, Sequence

Metrics = Dict[str, object]


class DatasetEvaluator:
    """Base class: accumulate per-image results in ``process``, return flat dotted metrics."""

    def reset(self) -> None:
        """Forget everything processed so far (called before a new evaluation round)."""

    def process(self, inputs: Sequence[Mapping], outputs: Sequence[Mapping]) -> None:
        """Take a batch of images: ``inputs[i]["image_id"]`` and its ``outputs[i]``."""

    def evaluate(self) -> Metrics:
        """Return ``{"<group>.<metric>": value}`` for everything processed since ``reset``."""
        return {}


class DatasetEvaluators(DatasetEvaluator):
    """Several evaluators run as one; their metric keys must not collide."""

    def __init__(self, evaluators: Iterable[DatasetEvaluator]) -> None:
        self.evaluators: List[DatasetEvaluator] = list(evaluators)

    def reset(self) -> None:
        for e in self.evaluators:
            e.reset()

    def process(self, inputs: Sequence[Mapping], outputs: Sequence[Mapping]) -> None:
        for e in self.evaluators:
            e.process(inputs, outputs)

    def evaluate(self) -> Metrics:
        out: Metrics = {}
        for e in self.evaluators:
            res = e.evaluate()
            clash = set(res) & set(out)
            if clash:
                raise KeyError(f"{type(e).__name__} reports metric keys already reported by another evaluator: {sorted(clash)[:5]}")
            out.update(res)
        return out


def run_evaluator(
    evaluator: DatasetEvaluator,
    image_ids: Sequence[int],
    instances_by_image: Mapping[int, List[dict]],
    cass_logits: Optional[Mapping[int, Sequence[float]]] = None,
    batch_size: int = 64,
) -> Metrics:
    """Feed every ground-truth image (with or without predictions) through ``evaluator``."""
    evaluator.reset()
    for start in range(0, len(image_ids), batch_size):
        ids = image_ids[start : start + batch_size]
        inputs = [{"image_id": i} for i in ids]
        outputs = []
        for i in ids:
            o = {"instances": instances_by_image.get(i, [])}
            if cass_logits is not None and i in cass_logits:
                o["cass_logits"] = cass_logits[i]
            outputs.append(o)
        evaluator.process(inputs, outputs)
    return evaluator.evaluate()
