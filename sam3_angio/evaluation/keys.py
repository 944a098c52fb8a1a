"""The one owner of metric names: the headline keys, what goes to TensorBoard and the console, and
reading the flat metrics dict (nested view, scalar subset, a console summary).

Keys are flat and dotted: ``segm.AP``, ``per_class.<name>.segm.AP``, ``dice``, ``arcade_f1``,
``cass.naming_top1`` (end to end: each ground-truth segment matched to a predicted instance at mask IoU
>= 0.5, named right or wrong, unmatched = wrong), ``cass_head.top1_gt_regions`` (the CASS head given the
true region), ``cass.top1`` (image-level, only where every annotated frame shows one segment). Full
list: docs/evaluation.md.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Mapping, Optional


def nested(metrics: Mapping[str, Any]) -> Dict[str, Any]:
    """``{"segm.AP": x}`` -> ``{"segm": {"AP": x}}``. Category names never contain dots in keys
    (they become underscores), so splitting on dots is safe. A key that is both a number and a group
    (``dice_f1`` and ``dice_f1.n_images``) keeps its number under ``"value"``:
    ``{"dice_f1": {"value": x, "n_images": n}}``."""
    out: Dict[str, Any] = {}
    groups = set()  # ids of the dicts made here for a dotted prefix (a metric's own value may be a dict)
    for key, value in metrics.items():
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            child = node.get(p)
            if id(child) not in groups:
                child = {} if p not in node else {"value": node[p]}
                groups.add(id(child))
                node[p] = child
            node = child
        leaf = parts[-1]
        if id(node.get(leaf)) in groups:
            node[leaf]["value"] = value
        else:
            node[leaf] = value
    return out


def scalar_metrics(metrics: Mapping[str, Any], prefixes: Optional[Iterable[str]] = None) -> Dict[str, float]:
    """The finite numbers among ``metrics`` (no null, list, string), optionally only keys starting with
    one of ``prefixes`` - what a TensorBoard logger can take."""
    pre = tuple(prefixes) if prefixes is not None else None
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            continue
        if pre is None or k.startswith(pre):
            out[k] = float(v)
    return out


COCO_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
PER_CLASS_STATS = ("AP", "AP50", "AP75", "AR100")
PIXEL_KEYS = ("dice", "iou", "cldice", "arcade_f1", "dice_f1")
NAMING_KEYS = ("cass.naming_top1", "cass.naming_top1_matched", "cass.naming_match_rate", "cass.naming_n_segments")
HEAD_KEYS = ("cass_head.top1_gt_regions", "cass_head.balanced_accuracy_gt_regions", "cass_head.n_segments")
IMAGE_CASS_KEYS = ("cass.top1", "cass.balanced_accuracy")
#: The regression head on the ground-truth regions that carry values (stenosis.yaml): mean |error|.
QCA_HEAD_KEYS = ("qca_head.mae_stenosis_pct", "qca_head.mae_mld_mm", "qca_head.mae_reference_diameter_mm",
                 "qca_head.n_regions")

#: What the end of a run prints (metrics.json has everything).
SUMMARY_KEYS = ("bbox.AP", "bbox.AP50", "segm.AP", "segm.AP50", "segm.AP75", "segm.AR100", "dice", "cldice",
                "arcade_f1", "dice_f1", "cass.naming_top1", "cass.naming_match_rate",
                "cass_head.top1_gt_regions", "cass.top1", "qca_head.mae_stenosis_pct", "qca_head.mae_mld_mm")
#: Headline scalars sent to TensorBoard at every validation (plus per-class AP and ignored counts).
TENSORBOARD_KEYS = tuple(f"{t}.{s}" for t in ("bbox", "segm") for s in ("AP", "AP50", "AP75", "AR100")) + (
    PIXEL_KEYS + NAMING_KEYS[:3] + HEAD_KEYS[:2] + IMAGE_CASS_KEYS + QCA_HEAD_KEYS[:3])
_TB_PER_CLASS_SUFFIXES = (".segm.AP", ".bbox.AP")


def per_class_key(name: str, metric: str) -> str:
    """``per_class.<category key>.<metric>`` (category keys: names with '/' and '.' replaced)."""
    return f"per_class.{name}.{metric}"


def tensorboard_metrics(metrics: Mapping[str, Any], per_class: bool = True) -> Dict[str, float]:
    """Finite scalars only (TensorBoard takes nothing else): the headline keys, per-class AP of the
    classes with ground truth, and counts of ignored predictions when there are any."""
    scal = scalar_metrics(metrics)
    out = {k: v for k, v in scal.items() if k in TENSORBOARD_KEYS}
    if per_class:
        out.update({k: v for k, v in scal.items() if k.startswith("per_class.") and k.endswith(_TB_PER_CLASS_SUFFIXES)})
    out.update({k: v for k, v in scal.items() if k.startswith("ignored.") and v > 0})
    return out


def _f(v: Any) -> str:
    return "  n/a " if v is None else f"{v:6.4f}"


def format_summary(m: Mapping[str, Any], per_class: bool = True) -> str:
    """A compact text table of the main numbers (what tools/eval.py prints and the meter logs)."""
    lines: List[str] = []
    for t in m.get("meta.iou_types_requested", []):
        lines.append(
            f"{t:5s} AP {_f(m.get(f'{t}.AP'))}  AP50 {_f(m.get(f'{t}.AP50'))}  AP75 {_f(m.get(f'{t}.AP75'))}  "
            f"AR100 {_f(m.get(f'{t}.AR100'))}  ({m.get(f'{t}.n_pred', 0)} predictions)"
        )
    if m.get("dice") is not None:
        lines.append(
            f"dice {_f(m['dice'])}  iou {_f(m['iou'])}  arcade_f1 {_f(m['arcade_f1'])} ({m.get('arcade.task')})  "
            f"dice_f1 {_f(m['dice_f1'])}  [score >= {m.get('pixel.score_thr')}]"
        )
    if m.get("cass.naming_top1") is not None:
        lines.append(
            f"naming (end to end) top1 {_f(m['cass.naming_top1'])}  on matched {_f(m.get('cass.naming_top1_matched'))}  "
            f"match rate {_f(m.get('cass.naming_match_rate'))}  ({m.get('cass.naming_n_segments')} segments)"
        )
    if m.get("cass_head.top1_gt_regions") is not None:
        lines.append(
            f"CASS head on the true regions top1 {_f(m['cass_head.top1_gt_regions'])}  balanced "
            f"{_f(m.get('cass_head.balanced_accuracy_gt_regions'))}  ({m.get('cass_head.n_segments')} segments)"
        )
    if m.get("qca_head.n_regions"):
        lines.append(
            f"regression head on the true regions: |error| stenosis {_f(m.get('qca_head.mae_stenosis_pct'))} %  "
            f"MLD {_f(m.get('qca_head.mae_mld_mm'))} mm  reference {_f(m.get('qca_head.mae_reference_diameter_mm'))} mm"
            f"  ({m['qca_head.n_regions']} measured regions)"
        )
    if m.get("cass.top1") is not None:
        lines.append(
            f"cass image-level ({m.get('cass.source')}) top1 {_f(m['cass.top1'])}  balanced "
            f"{_f(m['cass.balanced_accuracy'])}  on {m.get('cass.n_images')} images"
        )
    if per_class:
        types = [t for t in m.get("meta.iou_types_evaluated", []) if t in ("segm", "bbox")]
        rows = []
        for k in sorted(x for x in m if x.startswith("per_class.") and x.endswith(".category_id")):
            base = k[: -len(".category_id")]
            if not m.get(f"{base}.n_gt"):
                continue
            name = str(m.get(f"{base}.name", base[len("per_class."):]))  # the file's name ('mid/distal LCX')
            rows.append(f"  {name[:36]:36s} {m[k]!s:>5} {m.get(f'{base}.n_gt'):6d}  "
                        + "  ".join(f"{t} AP {_f(m.get(f'{base}.{t}.AP'))}" for t in types))
        if rows:
            lines.append(f"per class (classes with ground truth):\n  {'class':36s} {'id':>5} {'n GT':>6}")
            lines += rows
    ignored = {k[len('ignored.'):]: v for k, v in m.items() if k.startswith("ignored.") and v}
    if ignored:
        lines.append("ignored predictions: " + ", ".join(f"{k} {v}" for k, v in ignored.items()))
    return "\n".join(lines)
