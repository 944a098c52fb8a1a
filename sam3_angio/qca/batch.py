"""QCA of many masks at once: every annotation of a COCO file, every record of a predictions file, or
any iterable of :class:`MaskItem`; optionally a figure per segment as it goes.

Returns a :class:`QCAReport` (segments measured, inputs skipped with the reason); one bad annotation
is skipped and reported, a bad file stops everything (QCAInputError).
"""

from __future__ import annotations

import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Union

import numpy as np

from .errors import QCAInputError
from .measure import QCAParams, measure_mask
from .result import SegmentQCA
from .sources import MaskItem, iter_coco, iter_predictions, read_frame

PathLike = Union[str, Path]
FIGURES_DIR = "figures"


@dataclass
class QCAReport:
    segments: List[SegmentQCA]
    skipped: List[Dict[str, str]] = field(default_factory=list)  # {"source", "error"}
    params: Dict[str, Any] = field(default_factory=dict)
    inputs: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self, profile: bool = False) -> Dict[str, Any]:
        return {
            "segments": [s.to_dict(profile=profile) for s in self.segments],
            "n_segments": len(self.segments),
            "n_lesions": sum(len(s.lesions) for s in self.segments),
            "skipped": list(self.skipped),
            "inputs": dict(self.inputs),
            "params": dict(self.params),
        }


def _as_figure_frame(image, shape) -> Optional[np.ndarray]:
    """An in-memory frame (H, W) or (H, W, C), any dtype -> (H, W) float32 in 0..1 (None when its size is
    not the mask's)."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[..., :3].mean(axis=2)
    if arr.shape != tuple(shape):
        return None
    lo, hi = float(arr.min()), float(arr.max())
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80] or "segment"


def run_items(items: Iterable[MaskItem], params: Optional[QCAParams] = None, figures_dir: Optional[PathLike] = None,
              strict: bool = False, progress: bool = False) -> QCAReport:
    """Measure every item; with ``figures_dir`` write ``figures_dir/NNNN_<source>.png`` per segment
    (its path relative to the folder above goes into the segment's ``figure`` key). ``strict``: the
    first unusable item raises instead of being skipped."""
    from .figures import segment_figure

    p = (params or QCAParams()).check()
    report = QCAReport(segments=[], params=asdict(p))
    fig_dir = Path(figures_dir) if figures_dir is not None else None
    if fig_dir is not None:
        fig_dir.mkdir(parents=True, exist_ok=True)
    for n, item in enumerate(items):
        if item.error is not None:
            if strict:
                raise QCAInputError(f"{item.source}: {item.error}")
            report.skipped.append({"source": item.source, "error": item.error})
            continue
        try:
            q = measure_mask(item.mask, item.mm_per_pixel, ostium=item.ostium, source=item.source,
                             meta=item.meta, params=p)
        except QCAInputError as e:
            if strict:
                raise
            why = str(e)  # measure_mask's errors start with the source, which the record holds already
            report.skipped.append({"source": item.source, "error": why.removeprefix(f"{item.source}: ")})
            continue
        if fig_dir is not None:
            image = None if item.image is None else _as_figure_frame(item.image, item.mask.shape)
            if image is None and item.image_path is not None:
                try:
                    image = read_frame(item.image_path, item.mask.shape)
                except QCAInputError as e:
                    if strict:
                        raise
                    q.warnings.append(f"figure drawn on the mask: {e}")
            base = item.source.replace("\\", "/").rsplit("/", 1)[-1]
            name = f"{len(report.segments):04d}_{_slug(base.removesuffix('.png'))}.png"
            title = item.source + (f"  ({q.meta['cass_name']})" if q.meta.get("cass_name") else "")
            segment_figure(q, fig_dir / name, image=image, mask=item.mask, title=title)
            q.meta["figure"] = f"{fig_dir.name}/{name}"
        report.segments.append(q)
        if progress and (n + 1) % 50 == 0:
            print(f"  qca: {n + 1} inputs, {len(report.segments)} measured", file=sys.stderr, flush=True)
    return report


def qca_from_coco(annotations: PathLike, images_dir: Optional[PathLike] = None, params: Optional[QCAParams] = None,
                  figures_dir: Optional[PathLike] = None, mm_per_pixel: Optional[float] = None) -> QCAReport:
    """QCA of every annotation of a COCO file (spacing: each image record's ``mm_per_pixel``, else
    ``mm_per_pixel``, else pixels). ``images_dir`` holds the frames for figures."""
    r = run_items(iter_coco(annotations, images_dir, mm_per_pixel), params, figures_dir)
    r.inputs = {"coco": str(annotations), "images": str(images_dir) if images_dir else None,
                "mm_per_pixel": mm_per_pixel}
    return r


def qca_from_predictions(predictions: PathLike, image_info: Optional[PathLike] = None,
                         images_dir: Optional[PathLike] = None, min_score: float = 0.5,
                         mm_per_pixel: Optional[float] = None, params: Optional[QCAParams] = None,
                         figures_dir: Optional[PathLike] = None) -> QCAReport:
    """QCA of every predicted mask (COCO results list with RLE ``segmentation``) scoring at least
    ``min_score``; spacing from the record, then its image in ``image_info``, then ``mm_per_pixel``."""
    r = run_items(iter_predictions(predictions, image_info, images_dir, min_score, mm_per_pixel), params, figures_dir)
    r.inputs = {"predictions": str(predictions), "image_info": str(image_info) if image_info else None,
                "images": str(images_dir) if images_dir else None, "min_score": min_score,
                "mm_per_pixel": mm_per_pixel}
    return r
