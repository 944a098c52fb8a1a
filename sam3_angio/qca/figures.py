"""One figure per measured segment: the frame crop with the centreline, lumen edges and MLD point(s),
beside the diameter profile with the reference line and the lesion(s) shaded (matplotlib, Agg).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from .result import SegmentQCA

PathLike = Union[str, Path]
LESION_COLOURS = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b")


def _crop_box(q: SegmentQCA, shape, margin: int = 24):
    pts = np.vstack([q.centerline_xy, *q.edges_xy]) if len(q.centerline_xy) else np.zeros((1, 2))
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + margin
    side = max(x1 - x0, y1 - y0, 48)  # square, so the vessel keeps its shape
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    x0, y0 = cx - side // 2, cy - side // 2
    H, W = shape
    x0, y0 = int(np.clip(x0, 0, max(W - side, 0))), int(np.clip(y0, 0, max(H - side, 0)))
    return x0, y0, min(x0 + side, W), min(y0 + side, H)


def segment_figure(q: SegmentQCA, out_path: PathLike, image: Optional[np.ndarray] = None,
                   mask: Optional[np.ndarray] = None, title: Optional[str] = None, dpi: int = 110,
                   outlines: Sequence[Tuple[np.ndarray, str]] = ()) -> Path:
    """Write the figure of ``q`` to ``out_path`` (PNG). ``image`` (H, W) or (H, W, 3) is the frame;
    without it the ``mask`` is shown. ``outlines``: ``(mask (H, W), label)`` pairs drawn as contours on the
    frame crop (e.g. an annotator's stenosis regions, to compare with the lesions found)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bg = image if image is not None else (mask.astype(np.float32) if mask is not None else None)
    u = q.units
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10.5, 4.4), gridspec_kw={"width_ratios": [1, 1.45]})
    if bg is not None:
        shape = bg.shape[:2]
        x0, y0, x1, y1 = _crop_box(q, shape)
        ax0.imshow(bg[y0:y1, x0:x1], cmap="gray", extent=(x0 - 0.5, x1 - 0.5, y1 - 0.5, y0 - 0.5),
                   interpolation="nearest")
    xy = q.centerline_xy
    ax0.plot(xy[:, 0], xy[:, 1], "-", color="#1f9bff", lw=1.2, label="centreline")
    for e in q.edges_xy:
        ax0.plot(e[:, 0], e[:, 1], "-", color="#ffd21f", lw=0.6, alpha=0.9)
    ax0.plot(xy[0, 0], xy[0, 1], "o", ms=4, color="#1f9bff", mfc="white")  # the start (ostium end)
    for k, les in enumerate(q.lesions):
        c = LESION_COLOURS[k % len(LESION_COLOURS)]
        sel = (q.s >= les.start) & (q.s <= les.end)
        ax0.plot(xy[sel, 0], xy[sel, 1], "-", color=c, lw=2.2)
        ax0.plot(*les.mld_xy, "x", color=c, ms=9, mew=2)
    if not q.lesions and len(xy):
        ax0.plot(xy[q.worst_index, 0], xy[q.worst_index, 1], "x", color="#2ca02c", ms=8, mew=2)
    limits = ax0.get_xlim(), ax0.get_ylim()
    for region, label in outlines:
        ax0.contour(np.asarray(region, np.float32), levels=[0.5], colors=["#ff3df5"], linewidths=1.0,
                    linestyles="dashed")
        ys, xs = np.nonzero(region)
        if len(xs):
            ax0.annotate(label, (float(xs.max()), float(ys.min())), fontsize=7, color="#ff3df5")
    if outlines:
        ax0.set_xlim(*limits[0])
        ax0.set_ylim(*limits[1])
    ax0.set_xticks([])
    ax0.set_yticks([])
    ax0.set_title("frame crop: centreline (o = start), edges, MLD (x)", fontsize=8)

    ax1.plot(q.s, q.diameter_raw, "-", color="0.75", lw=0.8, label="measured")
    ax1.plot(q.s, q.diameter, "-", color="#1f77b4", lw=1.6, label="smoothed")
    ax1.plot(q.s, q.reference, "--", color="#2ca02c", lw=1.4, label="interpolated reference")
    for k, les in enumerate(q.lesions):
        c = LESION_COLOURS[k % len(LESION_COLOURS)]
        ax1.axvspan(les.start, les.end, color=c, alpha=0.15)
        ax1.plot([les.position], [les.mld], "v", color=c, ms=7)
        label = f"{les.percent_diameter_stenosis:.0f}% DS\nMLD {les.mld:.2f} {u}\nref {les.reference_diameter:.2f} {u}"
        ax1.annotate(label,
                     (les.position, les.mld), textcoords="offset points", xytext=(6, -30), fontsize=7, color=c)
    ax1.set_xlabel(f"distance from the start along the centreline ({u})")
    ax1.set_ylabel(f"lumen diameter ({u})")
    finite = np.concatenate([q.diameter_raw[np.isfinite(q.diameter_raw)], q.reference])
    ax1.set_ylim(0, 1.15 * float(finite.max()) if finite.size else 1)
    ax1.legend(fontsize=7, loc="upper right")
    ax1.grid(alpha=0.3)
    head = title or q.source
    summary = (f"{len(q.lesions)} lesion(s); reference {q.reference_diameter:.2f} {u}, "
               f"worst {q.percent_diameter_stenosis:.0f}% DS"
               + ("" if u == "mm" else "  (no pixel spacing: pixels)"))
    if q.flags:
        summary += "  [" + ", ".join(q.flags) + "]"
    fig.suptitle(f"{head}\n{summary}", fontsize=9)
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=dpi)
    plt.close(fig)
    return out_path
