"""What ``tools/predict.py`` writes for one input, into a folder that appears whole or not at all:

    OUT/<input_id>/predictions.json   COCO-shaped: info (model, checkpoint, settings), images (one record a
                                      frame: angles and spacing with their sources), categories,
                                      annotations (every named instance: COCO result + names + probabilities)
    OUT/<input_id>/segments.csv       one row a segment with score >= --score-thr: area, centreline length
    OUT/<input_id>/overlay.png        (an image input) or overlay_f<frame:04d>.png (a frame of a cine,
                                      DICOM or study-CSV cine), overlay.gif when the input has >= 2 frames
    OUT/<input_id>/qca.json, qca.csv  with --qca: QCA (sam3_angio.qca) of every segment in segments.csv,
    OUT/<input_id>/qca_figures/       in mm when the frame's spacing is known (docs/qca.md)

Masks are compressed RLE at the frame's size (H, W) as read; lengths in frame px, mm = px x mm_per_pixel
(only when the spacing is known). docs/inference.md documents every key.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
from pycocotools import mask as mask_utils

from sam3_angio.data.inputs import InputFrame, describe
from sam3_angio.inference.centreline import anchor_point, skeleton, skeleton_length

SCHEMA = "sam3_angio.predictions/1"
SEGMENT_COLUMNS = ("input", "frame", "image_id", "name", "category_id", "score", "area_px", "length_px",
                   "length_mm")


def view_text(frame: InputFrame) -> str:
    """"RAO 30 / CRA 25" or "unknown"."""
    return "unknown" if frame.view_angles is None else frame.view_angles.describe()


def overlay_name(frame: InputFrame) -> str:
    """``overlay.png`` for an image input, ``overlay_f<frame:04d>.png`` for a frame of a cine."""
    return "overlay.png" if frame.is_still else f"overlay_f{frame.frame_index:04d}.png"


def file_name(frame: InputFrame) -> str:
    """The frame's ``file_name`` in predictions.json: the image file's own name, or
    ``<input_id>_f<frame:04d>.png`` - the name ``tools/convert_to_coco.py`` gives that cine frame, so
    ``tools/eval.py --pred`` matches predictions to ground truth by file name."""
    return frame.source.name if frame.is_still else f"{frame.name}.png"


def image_record(image_id: int, frame: InputFrame) -> dict:
    """The predictions.json record of one frame (no pixels, no patient identity)."""
    rec = {"id": int(image_id), "file_name": file_name(frame), **describe(frame), "view": view_text(frame),
           "fps": frame.fps, "overlay": overlay_name(frame)}
    if not rec["csv_rows"]:
        rec.pop("csv_rows")
    return rec


@dataclass
class Segment:
    """One instance at or above the score threshold, measured: mask (H, W) bool, centreline."""

    instance: dict
    mask: np.ndarray
    length_px: float
    anchor: Tuple[float, float]  # (x, y) frame px on the centreline, where its label's leader ends

    @property
    def label(self) -> str:
        where = self.instance.get("cass_segment_name")  # a stenosis placed on a segment (--cass-checkpoint)
        name = f"{self.instance['cass_name']} ({where})" if where else self.instance["cass_name"]
        return f"{name} {self.instance['score']:.2f}"


def measure(instances: Sequence[dict], score_thr: float) -> List[Segment]:
    """The instances with ``score >= score_thr`` and a non-empty mask (best first, as given), each
    decoded and measured. (An instance whose mask is empty at the frame's size has no place in the
    frame: it stays in predictions.json, not in segments.csv or the overlay.) A click-corrected instance
(``corrected``) is kept whatever its score."""
    out = []
    for inst in instances:
        below = inst["score"] < score_thr and not inst.get("corrected")  # a person's correction is always shown
        if below or inst.get("segmentation") is None or inst.get("area", 1) == 0:
            continue
        mask = mask_utils.decode(inst["segmentation"]).astype(bool)
        if not mask.any():
            continue
        skel = skeleton(mask)
        out.append(Segment(inst, mask, skeleton_length(skel), anchor_point(mask, skel)))
    return out


def frame_overlay(frame: InputFrame, segments: Sequence[Segment], model: str = "", score_thr: float = 0.5,
                  clicks: Sequence[Tuple[float, float, bool]] = ()) -> np.ndarray:
    """The overlay picture (RGB uint8) of one frame and its measured segments, with a header line
    (model, view, frame, how many segments) - what ``overlay*.png`` hold."""
    from sam3_angio.inference.overlay import render_overlay

    parts = [model] if model else []
    parts.append(view_text(frame) if frame.view_angles is not None else "angles unknown")
    if not frame.is_still:
        parts.append(f"frame {frame.frame_index} of {frame.n_frames}")
    parts.append(f"{len(segments)} segment(s) >= {score_thr:g}")
    picture, _ = render_overlay(frame.image, [{"mask": s.mask, "label": s.label, "anchor": s.anchor,
                                               "category_id": s.instance["category_id"]} for s in segments],
                                " | ".join(parts), clicks=clicks)
    return picture


QCA_FIGURES = "qca_figures"


def qca_items(frame: InputFrame, segments: Sequence[Segment], first_annotation_id: int,
              instances: Sequence[dict]) -> list:
    """The QCA inputs (``sam3_angio.qca.sources.MaskItem``) of one frame's measured segments: the mask,
    the frame's spacing (None: QCA reports pixels), the CASS segment of the name, and ``annotation_id``
    = the instance's ``id`` in predictions.json (instances numbered from ``first_annotation_id``)."""
    from sam3_angio.qca.sources import MaskItem, cass_of

    index = {id(inst): k for k, inst in enumerate(instances)}
    items = []
    for seg in segments:
        inst = seg.instance
        ann_id = first_annotation_id + index[id(inst)]
        # a named segment ("mid LAD" -> 13), or a stenosis placed on one (--cass-checkpoint); else None
        cid, cname = cass_of(inst.get("cass_name"), inst.get("cass_segment"))
        items.append(MaskItem(
            source=f"{frame.input_id}/{file_name(frame)}#annotation={ann_id}", mask=seg.mask,
            mm_per_pixel=frame.mm_per_pixel, image=frame.image,
            meta={"frame": file_name(frame), "frame_index": frame.frame_index, "image_id": inst["image_id"],
                  "annotation_id": ann_id, "name": inst.get("cass_name"), "score": round(float(inst["score"]), 4),
                  "cass_segment": cid, "cass_name": cname}))
    return items


def segment_row(frame: InputFrame, seg: Segment) -> dict:
    inst = seg.instance
    mm = frame.mm_per_pixel
    return {"input": frame.input_id, "frame": frame.frame_index, "image_id": inst["image_id"],
            "name": inst["cass_name"], "category_id": inst["category_id"], "score": f"{inst['score']:.4f}",
            "area_px": int(inst.get("area", int(seg.mask.sum()))), "length_px": f"{seg.length_px:.1f}",
            "length_mm": "" if mm is None else f"{seg.length_px * mm:.2f}"}


def predictions_document(model: dict, settings: dict, images: List[dict], instances: List[dict],
                         notes: Sequence[str] = ()) -> dict:
    """predictions.json: ``info`` (schema, tool, time, model, settings, notes), ``images``,
    ``categories``, ``annotations`` (the instances, numbered ``id`` 1..n)."""
    model = dict(model)
    categories = model.pop("categories", [])
    annotations = [{"id": i + 1, **inst} for i, inst in enumerate(instances)]
    return {
        "info": {"schema": SCHEMA, "tool": "tools/predict.py",
                 "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "model": model, "settings": settings, "notes": list(notes)},
        "images": images, "categories": categories, "annotations": annotations,
    }


def write_json(path: Path, doc: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def write_segments_csv(path: Path, rows: Sequence[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=SEGMENT_COLUMNS)
        w.writeheader()
        w.writerows(rows)


def save_png(path: Path, picture: np.ndarray) -> None:
    import imageio.v3 as iio

    iio.imwrite(path, picture, extension=".png")


def read_png(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    return np.asarray(iio.imread(path))


def relative(path: Path, start: Optional[Path] = None) -> str:
    try:
        return os.path.relpath(path, start or Path.cwd())
    except ValueError:  # another drive (Windows)
        return str(path)
