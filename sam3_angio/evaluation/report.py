"""What ``evaluate_files`` writes: metrics.json, per_image.csv, report.md and its pictures.

Pictures (PNG, matplotlib Agg): per-class precision-recall curves (``pr_bbox.png``, ``pr_segm.png``),
the CASS confusion matrix (``confusion.png``) and a few frames with ground truth and predicted masks
(``overlays/*.png``). Each file is written to a temporary name and moved into place.
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Any, Dict, List

import numpy as np

from .keys import PER_CLASS_STATS
from .predictions import IGNORE_REASONS

ARCADE_CITATION = (
    "Popov et al., \"Dataset for Automatic Region-based Coronary Artery Disease Diagnostics Using X-Ray "
    "Angiography Images\", Scientific Data 11 (2024), doi:10.1038/s41597-023-02871-z"
)

DEFINITIONS = [
    ("`bbox.AP`, `segm.AP`", "COCO mean average precision over IoU 0.50:0.05:0.95, up to 100 detections an image (pycocotools COCOeval; every score counts)."),
    ("`*.AP50`, `*.AP75`", "COCO AP at one IoU threshold (0.50, 0.75)."),
    ("`*.AR100`", "COCO mean average recall over IoU 0.50:0.95 with up to 100 detections an image."),
    ("`*.APs/APm/APl`, `*.AR1/AR10/ARs/ARm/ARl`", "the rest of COCOeval's 12 summary numbers (area ranges small < 32^2 <= medium < 96^2 <= large pixels)."),
    ("`per_class.<name>.<type>.AP` ...", "the same numbers for one category: equal to COCOeval run with params.catIds = [that id]; null when the category has no ground truth."),
    ("`dice`, `iou`", "full-tree overlap: per image, union of all predicted masks (score >= threshold) vs union of all ground-truth masks, any category; 1 when both are empty; mean over images."),
    ("`arcade_f1`", "the ARCADE challenge F1 (official rules of evaluation_f1_score.py, on masks). Segmentation: per image and ground-truth category, F1 of the first ground-truth annotation and the highest-scoring prediction of that category (0 if none); any predicted category absent from the image's ground truth sets all that image's scores to 0 (official quirk, kept). Stenosis: each prediction takes the first ground-truth region it overlaps, unmatched ground truth scores 0. Mean over categories, then over images with ground truth. An F1, not an AP."),
    ("`dice_f1`", "the honest per-category F1: Dice of the union of all ground-truth vs all predicted masks of a category, over categories present in the ground truth or the predictions, no zeroing; mean per image, then over images. An F1, not an AP."),
    ("`cass.naming_top1`", "End-to-end naming: each ground-truth segment matched to the predicted instance of highest mask IoU (>= 0.5); right when that instance carries the segment's category; unmatched segments count as wrong. `cass.naming_match_rate`: matched / all; `cass.naming_top1_matched`: right / matched."),
    ("`cass_head.top1_gt_regions`", "The CASS head's top-1 when given each ground-truth region (not what a user gets: see `cass.naming_top1`)."),
    ("`cass.top1`, `cass.balanced_accuracy`", "Image-level CASS classification, only for frames showing one segment: top-1 accuracy and mean per-class recall, from a CASS head's logits when given (`cass.source` = head), else from the category of the detector's best-scoring prediction."),
]


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _atomic_write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def write_metrics_json(metrics: Dict[str, Any], path: str) -> None:
    _atomic_write_text(path, json.dumps(metrics, indent=1, sort_keys=True, allow_nan=False) + "\n")


def write_per_image_csv(rows: List[dict], path: str) -> None:
    if not rows:
        return
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    os.replace(tmp, path)


def _savefig(fig, path: str) -> None:
    # A bare Figure renders with Agg and touches no global pyplot state (safe inside a trainer).
    tmp = f"{path}.tmp{os.getpid()}.png"
    fig.savefig(tmp, dpi=90)
    os.replace(tmp, path)


def _short_names(gt) -> Dict[int, str]:
    """Plot labels: CASS short names ("pLAD") when the categories are the CASS table's, else names."""
    from sam3_angio.cass import CASS_BY_ID

    out = {}
    for cid in gt.cat_ids:
        seg = CASS_BY_ID.get(cid) if isinstance(cid, int) else None
        name = gt.cat_names[cid]
        out[cid] = seg.short if seg is not None and seg.name == name else name
    return out


def plot_pr_curves(curve: dict, gt, metrics: Dict[str, Any], iou_type: str, path: str) -> bool:
    """Small multiples: one panel a category with ground truth; precision vs recall at IoU .50 and .75."""
    from matplotlib.figure import Figure

    prec, rec, ious, cat_ids = curve["precision"], curve["rec_thrs"], curve["iou_thrs"], curve["cat_ids"]
    ks = [k for k, c in enumerate(cat_ids) if (prec[:, :, k] > -1).any()]
    if not ks:
        return False
    names = _short_names(gt)
    ncol = min(5, len(ks))
    nrow = int(math.ceil(len(ks) / ncol))
    fig = Figure(figsize=(2.6 * ncol, 2.4 * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    t50 = int(np.argmin(np.abs(ious - 0.5)))
    t75 = int(np.argmin(np.abs(ious - 0.75)))
    for ax in axes.flat:
        ax.set_visible(False)
    for ax, k in zip(axes.flat, ks):
        cid = cat_ids[k]
        ax.set_visible(True)
        ax.plot(rec, np.clip(prec[t50, :, k], 0, 1), label="IoU .50")
        ax.plot(rec, np.clip(prec[t75, :, k], 0, 1), "--", label="IoU .75")
        ap = metrics.get(f"per_class.{gt.cat_keys[cid]}.{iou_type}.AP")
        ax.set_title(f"{names[cid]} (id {cid})  AP {_fmt(ap, 3)}", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{iou_type}: precision (y) vs recall (x) per category, COCOeval, 100 detections", fontsize=9)
    fig.tight_layout()
    _savefig(fig, path)
    return True


def plot_confusion(metrics: Dict[str, Any], gt, path: str) -> bool:
    from matplotlib.figure import Figure

    conf = metrics.get("cass.confusion")
    if not conf:
        return False
    conf = np.asarray(conf)
    names = _short_names(gt)
    labels = [names[c] for c in metrics["cass.class_ids"]]
    rows = conf.sum(1, keepdims=True)
    norm = np.divide(conf, rows, out=np.zeros(conf.shape, dtype=float), where=rows > 0)
    n = len(labels)
    fig = Figure(figsize=(1.0 + 0.45 * n, 0.8 + 0.42 * n))
    ax = fig.subplots()
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if conf[i, j]:
                ax.text(j, i, str(conf[i, j]), ha="center", va="center", fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"CASS confusion ({metrics.get('cass.source')}); colour = row-normalised", fontsize=8)
    fig.tight_layout()
    _savefig(fig, path)
    return True


def plot_overlays(res, images_dir: str, out_dir: str, n: int, score_thr: float) -> List[str]:
    """Ground truth (left) and predictions above the threshold (right) on ``n`` evenly spaced frames."""
    import matplotlib
    import pycocotools.mask as mask_utils
    from matplotlib.figure import Figure
    from PIL import Image

    gt = res.gt
    candidates = [i for i in gt.image_ids if gt.annotations(i)]
    if not candidates or n <= 0:
        return []
    picks = [candidates[int(round(j))] for j in np.linspace(0, len(candidates) - 1, min(n, len(candidates)))]
    picks = list(dict.fromkeys(picks))
    names = _short_names(gt)
    cmap = matplotlib.colormaps["tab20"]
    color = {cid: cmap(k % 20)[:3] for k, cid in enumerate(gt.cat_ids)}
    by_image = res.preds.by_image()
    os.makedirs(os.path.join(out_dir, "overlays"), exist_ok=True)
    written = []
    gt.prepare_masks()
    for image_id in picks:
        fn = gt.images[image_id].get("file_name", "")
        path = os.path.join(images_dir, fn)
        if not os.path.isfile(path):
            path = os.path.join(images_dir, os.path.basename(fn))
        if not os.path.isfile(path):
            continue
        img = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0
        h, w = gt.hw(image_id)
        if img.shape != (h, w):
            continue
        preds = sorted(
            (r for r in by_image.get(image_id, []) if "segmentation" in r and r["score"] >= score_thr),
            key=lambda r: -r["score"],
        )
        panels = [
            ("ground truth", [(a["category_id"], gt.rle(a), None) for a in gt.annotations(image_id)]),
            (f"prediction (score >= {score_thr:g})", [(r["category_id"], r["segmentation"], r["score"]) for r in preds]),
        ]
        fig = Figure(figsize=(10, 5.3))
        axes = fig.subplots(1, 2)
        for ax, (title, items) in zip(axes, panels):
            rgb = np.repeat(img[:, :, None], 3, axis=2)
            for cid, rle, _ in items:
                m = mask_utils.decode(rle).astype(bool)
                rgb[m] = 0.45 * rgb[m] + 0.55 * np.asarray(color[cid])
            ax.imshow(rgb)
            for cid, rle, score in items:
                ys, xs = np.nonzero(mask_utils.decode(rle))
                if len(xs):
                    mid = len(xs) // 2
                    label = names[cid] if score is None else f"{names[cid]} {score:.2f}"
                    ax.text(xs[mid], ys[mid], label, fontsize=7, color="white",
                            bbox=dict(facecolor=color[cid], alpha=0.8, pad=1, linewidth=0))
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        fig.suptitle(f"image {image_id} ({fn})", fontsize=9)
        fig.tight_layout()
        name = f"overlays/image_{image_id}.png"
        _savefig(fig, os.path.join(out_dir, name))
        written.append(name)
    return written


def write_outputs(res, out_dir, images_dir=None, report: bool = True, n_overlays: int = 4) -> Dict[str, str]:
    """metrics.json and per_image.csv always; report.md and pictures when ``report``."""
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    m = res.metrics
    files = {"metrics": os.path.join(out_dir, "metrics.json")}
    if res.per_image:
        files["per_image"] = os.path.join(out_dir, "per_image.csv")
        write_per_image_csv(res.per_image, files["per_image"])
    pictures: Dict[str, Any] = {}
    if report:
        for t, curve in res.curves.items():
            if plot_pr_curves(curve, res.gt, m, t, os.path.join(out_dir, f"pr_{t}.png")):
                pictures[f"pr_{t}"] = f"pr_{t}.png"
        if plot_confusion(m, res.gt, os.path.join(out_dir, "confusion.png")):
            pictures["confusion"] = "confusion.png"
        if images_dir is not None and m.get("segm.AP") is not None:
            pictures["overlays"] = plot_overlays(res, os.fspath(images_dir), out_dir, n_overlays, m.get("pixel.score_thr", 0.5))
        files["report"] = os.path.join(out_dir, "report.md")
        _atomic_write_text(files["report"], render_report(m, res.gt, pictures, images_dir))
    # metrics.json last: its presence means everything else is in place.
    write_metrics_json(m, files["metrics"])
    return files


def render_report(m: Dict[str, Any], gt, pictures: Dict[str, Any], images_dir) -> str:
    L: List[str] = ["# Evaluation report", ""]
    if m.get("meta.model.model"):
        L += [f"- model: `{m['meta.model.model']}` ({m.get('meta.model.task')} task, naming `{m.get('meta.model.naming')}`), "
              f"checkpoint `{m.get('meta.model.checkpoint')}`"]
        if m["meta.model.model"] == "sam3_tiny":
            L += ["- **sam3_tiny**: SAM3's classes at small sizes trained from random weights on a CPU. Its numbers "
                  "say the pipeline works, not that a model learnt angiography."]
    L += [
        f"- ground truth: `{m.get('meta.gt_json') or '(in memory)'}` ({m['meta.n_images']} images, {m['meta.n_gt']} annotations, {m['meta.n_categories']} categories)",
        f"- predictions: `{m.get('meta.pred_json') or '(in memory)'}` ({m['meta.n_pred_input']} read, {m['meta.n_pred_used']} used; format {m['meta.pred_format']})",
        f"- COCO AP evaluated for: {', '.join(m['meta.iou_types_evaluated']) or 'nothing'}; "
        f"pixel metrics use predictions with score >= {_fmt(m.get('pixel.score_thr'), 2)}",
        "- all numbers are in `metrics.json` (flat dotted keys, documented in docs/evaluation.md); per-image values in `per_image.csv`",
        "",
    ]
    ign = [(r, m.get(f"ignored.{r}", 0)) for r in IGNORE_REASONS if m.get(f"ignored.{r}", 0)]
    if ign or m.get("warnings"):
        L += ["## Warnings", ""]
        L += [f"- {w}" for w in m.get("warnings", [])]
        if ign:
            L += ["", "| ignored because | predictions |", "|---|---|"] + [f"| {r} | {n} |" for r, n in ign]
        L.append("")
    L += ["## What each number is", "", "| key | meaning |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in DEFINITIONS]
    L += ["", "F1 scores are never called AP here: `arcade_f1` and `dice_f1` are overlap scores of thresholded masks; AP ranks by score.", ""]

    L += ["## COCO AP (pycocotools COCOeval)", "", "| type | AP | AP50 | AP75 | APs | APm | APl | AR100 | predictions |", "|---|---|---|---|---|---|---|---|---|"]
    for t in m["meta.iou_types_requested"]:
        L.append(
            f"| {t} | " + " | ".join(_fmt(m.get(f"{t}.{k}")) for k in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")) + f" | {m.get(f'{t}.n_pred')} |"
        )
    L.append("")

    L += ["## Per class", ""]
    types = list(m["meta.iou_types_requested"])
    head = "| class | id | GT | " + " | ".join(f"{t} {s}" for t in types for s in PER_CLASS_STATS) + " | dice_f1 |"
    L += [head, "|" + "---|" * (3 + len(types) * len(PER_CLASS_STATS) + 1)]
    for cid in gt.cat_ids:
        b = f"per_class.{gt.cat_keys[cid]}"
        if not m.get(f"{b}.n_gt") and not any(m.get(f"{b}.{t}.n_pred") for t in types):
            continue
        L.append(
            f"| {gt.cat_names[cid]} | {cid} | {m.get(f'{b}.n_gt')} | "
            + " | ".join(_fmt(m.get(f"{b}.{t}.{s}")) for t in types for s in PER_CLASS_STATS)
            + f" | {_fmt(m.get(f'{b}.dice_f1'))} |"
        )
    L += ["", "Categories with neither ground truth nor predictions are left out of this table (their keys are null in metrics.json).", ""]
    for t in types:
        if f"pr_{t}" in pictures:
            L += [f"Precision-recall curves per class, {t}: ![pr {t}]({pictures[f'pr_{t}']})", ""]

    L += ["## Pixel metrics (thresholded masks)", ""]
    if m.get("dice") is None:
        L += ["Not computed: needs masks in the ground truth and the predictions.", ""]
    else:
        L += [
            "| metric | value | images |",
            "|---|---|---|",
            f"| dice (full tree) | {_fmt(m['dice'])} | {m['pixel.n_images']} |",
            f"| iou (full tree) | {_fmt(m['iou'])} | {m['pixel.n_images']} |",
            f"| arcade_f1 ({m['arcade.task']} rules) | {_fmt(m['arcade_f1'])} | {m['arcade.n_images']} |",
            f"| dice_f1 | {_fmt(m['dice_f1'])} | {m['dice_f1.n_images']} |",
            "",
            f"The official quirk set all category scores to 0 on {m['arcade.n_images_zeroed_by_quirk']} image(s) "
            f"(a predicted category absent from that image's ground truth); {m['arcade.n_images_without_gt']} image(s) "
            "without ground truth are outside arcade_f1 (the official script cannot score them).",
            "",
            f"ARCADE data and challenge: {ARCADE_CITATION}. `arcade_f1` follows the official scorer's rules on "
            "rasterised masks (it uses shapely polygons and the first polygon of each annotation), so values can "
            "differ from the leaderboard's in the last digits.",
            "",
        ]

    L += ["## Naming segments (end to end)", ""]
    if m.get("cass.naming_top1") is None:
        L += [f"Not computed: {m.get('cass.naming_skipped') or 'no segments'}.", ""]
    else:
        L += ["Each ground-truth segment is matched to the predicted instance with the highest mask IoU (>= 0.5, "
              "score >= the pixel threshold); it is named right when that instance carries its category.", "",
              "| naming top-1 (all segments) | top-1 of matched | match rate | segments |", "|---|---|---|---|",
              f"| {_fmt(m['cass.naming_top1'])} | {_fmt(m.get('cass.naming_top1_matched'))} | "
              f"{_fmt(m.get('cass.naming_match_rate'))} | {m.get('cass.naming_n_segments')} |", ""]
        if m.get("cass_head.top1_gt_regions") is not None:
            L += [f"The CASS head given the true regions: top-1 {_fmt(m['cass_head.top1_gt_regions'])} "
                  f"({m.get('cass_head.n_segments')} segments), an upper bound of the naming part.", ""]

    L += ["## CASS classification (one segment a frame)", ""]
    if m.get("cass.top1") is None and m.get("cass.n_images") is None:
        L += [f"Not computed: {m.get('cass.skipped') or 'no labelled images'}.", ""]
    else:
        L += ["| source | top-1 | balanced accuracy | images | no prediction |", "|---|---|---|---|---|"]
        for src in ("head", "detector"):
            if f"cass.{src}.top1" in m:
                L.append(
                    f"| {src} | {_fmt(m[f'cass.{src}.top1'])} | {_fmt(m[f'cass.{src}.balanced_accuracy'])} | "
                    f"{m[f'cass.{src}.n_images']} | {m[f'cass.{src}.n_no_prediction']} |"
                )
        L.append("")
        if "confusion" in pictures:
            L += [f"Confusion matrix ({m.get('cass.source')}): ![confusion]({pictures['confusion']})", ""]

    L += ["## Frames", ""]
    if pictures.get("overlays"):
        L += ["Ground truth (left) and predictions above the threshold (right), labelled by category:", ""]
        L += [f"![{p}]({p})" for p in pictures["overlays"]]
    elif images_dir is None:
        L += ["No overlays: pass the images folder (`--images DIR`) to draw predicted masks on frames."]
    else:
        L += [f"No overlays: no frames found under `{images_dir}` with the ground truth's file names and sizes, or no masks."]
    L.append("")
    return "\n".join(L)
