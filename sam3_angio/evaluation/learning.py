"""What a training run learnt, as pictures and numbers: the validation history of a run folder (one point
per validation: train steps, Dice, clDice, segm AP), a learning-curve PNG and an overlay PNG of the last
validation's predictions on validation frames. Used at the end of tools/train.py and by
bench/bench_learning.py."""

from __future__ import annotations

import json
import os
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

CURVE_KEYS = (("dice", "Dice"), ("cldice", "clDice"), ("segm.AP", "segm AP"))


def _jsonl(path: str) -> List[dict]:
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_history(experiment_dir: str) -> List[Dict[str, float]]:
    """One row per validation of the run in ``experiment_dir``: ``epoch``, ``steps`` (training steps
    done, from ``logs/train_stats.json``) and the validation metrics of ``CURVE_KEYS`` (from
    ``logs/val_stats.json``, SAM3's per-validation log of the meters)."""
    steps_at = {}
    for row in _jsonl(os.path.join(experiment_dir, "logs", "train_stats.json")):
        if "Trainer/epoch" in row and "Trainer/steps_train" in row:
            steps_at[int(row["Trainer/epoch"])] = int(row["Trainer/steps_train"])
    out = []
    for val in _jsonl(os.path.join(experiment_dir, "logs", "val_stats.json")):
        epoch = int(val.get("Trainer/epoch", -1))
        row: Dict[str, float] = {"epoch": epoch, "steps": steps_at.get(epoch)}
        for key, _ in CURVE_KEYS:
            row[key] = next((v for k, v in val.items() if k.startswith("Meters") and k.endswith("/" + key)), None)
        out.append(row)
    return out


def plot_learning_curve(history: Sequence[Mapping], path: str, title: str = "",
                        baseline: Optional[Mapping[str, float]] = None, baseline_name: str = "Frangi",
                        start: Optional[Mapping[str, float]] = None, phase_break: Optional[float] = None,
                        phase_labels: Sequence[str] = ("phase 1", "phase 2")) -> str:
    """Dice, clDice and segm AP against training steps; ``baseline`` (e.g. Frangi's dice/cldice) as
    dashed lines, ``start`` (the untrained model's metrics) as points at step 0. ``phase_break``: the step
    where a second phase (another task, other queries) starts; its points are drawn apart (hollow, not
    joined to the first phase's) behind a dotted line, since its scores measure something else."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    colours = {"dice": "tab:blue", "cldice": "tab:green", "segm.AP": "tab:red"}
    for key, label in CURVE_KEYS:
        pts = [(r["steps"], r[key]) for r in history if r.get(key) is not None and r.get("steps") is not None]
        if start and start.get(key) is not None:
            pts = [(0, float(start[key]))] + pts
        first = [p for p in pts if phase_break is None or p[0] <= phase_break]
        second = [p for p in pts if phase_break is not None and p[0] > phase_break]
        if first:
            xs, ys = zip(*first)
            ax.plot(xs, ys, "o-", color=colours[key],
                    label=f"{phase_labels[0] if phase_break is not None else 'model'} {label}")
        if second:
            xs, ys = zip(*second)
            ax.plot(xs, ys, "o--", color=colours[key], mfc="white", label=f"{phase_labels[1]} {label}")
        if baseline and baseline.get(key) is not None:
            ax.axhline(float(baseline[key]), color=colours[key], ls="--", lw=1,
                       label=f"{baseline_name} {label} ({float(baseline[key]):.3f})")
    if phase_break is not None:
        ax.axvline(float(phase_break), color="0.4", ls=":", lw=1)
        ax.text(float(phase_break), 0.97, f" {phase_labels[1]} starts", fontsize=7, va="top", color="0.3")
    ax.set_xlabel("training steps")
    ax.set_ylabel("validation score")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_overlays(gt_json: str, images_dir: str, predictions: Sequence[Mapping], path: str, n: int = 4,
                  score_thr: float = 0.5, title: str = "") -> str:
    """The first ``n`` validation frames: ground truth (green), predictions above ``score_thr`` (red),
    both (yellow); each panel titled with its full-tree Dice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from .ground_truth import GroundTruth
    from ..data.rle import dice_iou, to_rle, union
    from pycocotools import mask as mask_util

    gt = GroundTruth(gt_json)
    gt.prepare_masks()
    ids = sorted(gt.images)[:n]
    fig, axes = plt.subplots(1, max(1, len(ids)), figsize=(3.2 * max(1, len(ids)), 3.5), dpi=100, squeeze=False)
    for ax, image_id in zip(axes[0], ids):
        rec = gt.images[image_id]
        h, w = gt.hw(image_id)
        frame = np.asarray(Image.open(os.path.join(images_dir, rec["file_name"])).convert("L"), dtype=np.float32)
        g = union([gt.rle(a) for a in gt.annotations(image_id)], h, w)
        p = union([to_rle(r["segmentation"], h, w) for r in predictions
                   if r.get("image_id") == image_id and r.get("score", 0) >= score_thr and "segmentation" in r], h, w)
        d, _ = dice_iou(g, p)
        gm, pm = mask_util.decode(g).astype(bool), mask_util.decode(p).astype(bool)
        rgb = np.repeat((frame / max(1.0, frame.max()))[..., None], 3, axis=2) * 0.8
        for mask, colour in ((gm & ~pm, (0, 1, 0)), (pm & ~gm, (1, 0, 0)), (gm & pm, (1, 1, 0))):
            rgb[mask] = 0.45 * rgb[mask] + 0.55 * np.array(colour)
        ax.imshow(np.clip(rgb, 0, 1))
        ax.set_title(f"{rec['file_name'][:24]}\nDice {d:.2f}", fontsize=7)
        ax.axis("off")
    fig.suptitle((title + "  " if title else "") + "green: ground truth, red: prediction, yellow: both", fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
