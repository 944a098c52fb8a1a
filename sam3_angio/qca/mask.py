"""A binary vessel or segment mask made ready to measure: checked, holes filled, the largest part kept,
cropped around it, and flagged where it touches the image edge.

Input ``(H, W)`` bool (or two-valued numbers) in frame pixels; output a padded crop ``(h, w)`` bool and
its offset ``(row0, col0)`` in the frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np
from skimage.measure import label

from .errors import EmptyMaskError, NonBinaryMaskError, QCAInputError

# A coronary segment (or tree) covers far less than half of a frame; a mask that covers more *and* fills
# most of the image border is inverted (vessel 0) or not a vessel mask (a frame, a constant image). A
# tight crop around a thick vessel can cover more than half of its image, but the vessel meets the
# border only where it enters and leaves, so it is measured.
MAX_FOREGROUND_FRACTION = 0.5
PAD_PX = 3  # background border around the crop: the skeleton and the edge profiles need a margin


@dataclass
class PreparedMask:
    crop: np.ndarray  # (h, w) bool, the kept component with small holes filled, zero-padded
    offset: Tuple[int, int]  # (row0, col0) of crop[0, 0] in the frame (may be negative: padding)
    frame_shape: Tuple[int, int]  # (H, W)
    touches_edge: bool
    n_holes_filled: int
    hole_area_px: int
    n_components_dropped: int
    dropped_area_px: int
    flags: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def as_binary(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    """``mask`` as ``(H, W)`` bool; raises when it is not 2-D or holds more than two values.

    Two-valued arrays must have 0 as background (``{0, 1}``, ``{0, 255}``, bool); anything else
    (a probability or label map) is refused rather than guessed at.
    """
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise QCAInputError(f"{name}: expected a 2-D (H, W) mask, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if not np.issubdtype(arr.dtype, np.number):
        raise NonBinaryMaskError(f"{name}: expected a numeric or bool mask, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise NonBinaryMaskError(f"{name}: the mask holds NaN or infinite values")
    values = np.unique(arr)
    if len(values) > 2 or (len(values) == 2 and values[0] != 0):
        shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
        raise NonBinaryMaskError(
            f"{name}: not a binary mask: {len(values)} distinct values ({shown}); expected background 0 and "
            f"one foreground value - threshold it first (e.g. mask > 127, or probability > 0.5)"
        )
    return arr != 0


def prepare_mask(mask: np.ndarray, name: str = "mask", max_hole_area_px: int = 64) -> PreparedMask:
    """Check ``mask (H, W)``, fill holes of at most ``max_hole_area_px`` pixels, keep the largest
    8-connected component and crop around it with a ``PAD_PX`` background border."""
    m = as_binary(mask, name)
    H, W = m.shape
    if not m.any():
        raise EmptyMaskError(f"{name}: the mask is empty (no foreground pixel); nothing to measure")
    border = np.concatenate([m[0], m[-1], m[1:-1, 0], m[1:-1, -1]])
    if m.mean() > MAX_FOREGROUND_FRACTION and border.mean() > MAX_FOREGROUND_FRACTION:
        raise QCAInputError(f"{name}: the mask covers {100 * m.mean():.1f} % of the image; a vessel covers far "
                            f"less - is it inverted (vessel 0, background non-zero)?")
    flags: List[str] = []
    warnings: List[str] = []

    lab, n = label(m, connectivity=2, return_num=True)
    dropped, dropped_area = 0, 0
    if n > 1:
        areas = np.bincount(lab.ravel())[1:]
        keep = int(np.argmax(areas)) + 1
        dropped, dropped_area = n - 1, int(areas.sum() - areas[keep - 1])
        m = lab == keep
        flags.append("components_dropped")
        warnings.append(
            f"{n} separate parts: measured the largest ({int(areas[keep - 1])} px), ignored {dropped} "
            f"({dropped_area} px); a gap in a vessel mask can be a total occlusion or a segmentation break"
        )

    rows, cols = np.nonzero(m)
    touches = bool(rows.min() == 0 or cols.min() == 0 or rows.max() == H - 1 or cols.max() == W - 1)
    if touches:
        flags.append("touches_image_edge")
        warnings.append("the mask touches the image edge: the vessel may continue outside the frame, so its "
                        "length, the lesion position and the ostium end may be cut off")
    r0, r1 = int(rows.min()) - PAD_PX, int(rows.max()) + PAD_PX + 1
    c0, c1 = int(cols.min()) - PAD_PX, int(cols.max()) + PAD_PX + 1
    crop = np.zeros((r1 - r0, c1 - c0), bool)
    crop[rows - r0, cols - c0] = True

    # Holes: background parts that do not reach the crop border. The crop's padding joins all
    # background cut off at the frame border to the outside, so that is never taken for a hole.
    bg, n_bg = label(~crop, connectivity=1, return_num=True)
    border = np.unique(np.concatenate([bg[0], bg[-1], bg[:, 0], bg[:, -1]]))
    sizes = np.bincount(bg.ravel(), minlength=n_bg + 1)
    inner = np.setdiff1d(np.arange(1, n_bg + 1), border)
    small = inner[sizes[inner] <= max_hole_area_px]
    filled = crop | np.isin(bg, small)
    hole_px = int(sizes[small].sum())
    n_holes = int(len(small))
    if n_holes:
        flags.append("holes_filled")
        warnings.append(f"filled {n_holes} hole(s), {hole_px} px in all (holes up to {max_hole_area_px} px "
                        f"are taken for segmentation gaps)")
    big_holes = int(len(inner) - len(small))
    if big_holes > 0:
        flags.append("loop")
        warnings.append(f"{big_holes} hole(s) larger than {max_hole_area_px} px kept (a vessel crossing itself "
                        f"in projection?): the centreline follows the longest way around")
    crop = filled
    return PreparedMask(
        crop=crop, offset=(r0, c0), frame_shape=(H, W), touches_edge=touches, n_holes_filled=n_holes,
        hole_area_px=hole_px, n_components_dropped=dropped, dropped_area_px=dropped_area,
        flags=flags, warnings=warnings,
    )
