"""Reading the flat metrics dict: nested view, the scalar subset (for TensorBoard), a console summary."""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Mapping, Optional


def nested(metrics: Mapping[str, Any]) -> Dict[str, Any]:
    """``{"segm.AP": x}`` -> ``{"segm": {"AP": x}}``. Category names never contain dots in keys
    (they become underscores), so splitting on dots is safe."""
    out: Dict[str, Any] = {}
    for key, value in metrics.items():
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"metric key {key!r} clashes with a value at {p!r}")
        node[parts[-1]] = value
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
    if m.get("cass.top1") is not None:
        lines.append(
            f"cass ({m.get('cass.source')}) top1 {_f(m['cass.top1'])}  balanced {_f(m['cass.balanced_accuracy'])}  "
            f"on {m.get('cass.n_images')} images"
        )
    if per_class:
        types = [t for t in m.get("meta.iou_types_evaluated", []) if t in ("segm", "bbox")]
        rows = []
        for k in sorted(x for x in m if x.startswith("per_class.") and x.endswith(".category_id")):
            base = k[: -len(".category_id")]
            if not m.get(f"{base}.n_gt"):
                continue
            name = base[len("per_class."):]
            rows.append(f"  {name[:28]:28s} {m[k]!s:>4} GT {m.get(f'{base}.n_gt'):4d}  " + "  ".join(f"{t} AP {_f(m.get(f'{base}.{t}.AP'))}" for t in types))
        if rows:
            lines.append("per class (classes with ground truth):")
            lines += rows
    ignored = {k[len('ignored.'):]: v for k, v in m.items() if k.startswith("ignored.") and v}
    if ignored:
        lines.append("ignored predictions: " + ", ".join(f"{k} {v}" for k, v in ignored.items()))
    return "\n".join(lines)
