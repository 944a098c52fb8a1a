"""Overlay pictures of named segments: each mask tinted in its class colour, its name and score in a
label placed where it overlaps no other label, joined to the segment by a leader line (PIL).

    frame (H, W) uint8 + segments [(mask (H, W) bool, "mid LAD 0.83", category id)] + a header line
      -> RGB (header + H * s, W * s, 3) uint8, s = the integer scale that brings the long side to >= 512 px

Label placement is hand-written (matplotlib places no labels by itself; adjustText is not a dependency):
a greedy pass, best score first, over candidate boxes on rings around the label's anchor (a point on
the segment's centreline), nearest first: the first candidate inside the picture that overlaps no
placed label and covers no other anchor wins; else the first that overlaps no label; else the one with
the least overlap (only when the picture has no free place left for it).
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sam3_angio.cass import DEFAULT_CLASS_IDS

Box = Tuple[float, float, float, float]  # x0, y0, x1, y1 px
MIN_SIDE = 512  # px: overlays of smaller frames are scaled up by an integer factor to stay legible
ALPHA = 0.45  # mask tint opacity
_DIRECTIONS = 24


def class_colour(category_id: int) -> Tuple[int, int, int]:
    """A fixed colour a CASS class (tab20, by the class's place in the default CASS table), so one
    segment keeps its colour across frames, inputs and runs."""
    from matplotlib import colormaps

    ids = list(DEFAULT_CLASS_IDS)
    k = ids.index(category_id) if category_id in ids else (len(ids) + int(category_id)) % 20
    r, g, b, _ = colormaps["tab20"](k % 20)
    return int(r * 255), int(g * 255), int(b * 255)


def _overlap(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _contains(box: Box, p: Tuple[float, float], pad: float = 2.0) -> bool:
    return box[0] - pad <= p[0] <= box[2] + pad and box[1] - pad <= p[1] <= box[3] + pad


def _candidates(anchor: Tuple[float, float], size: Tuple[float, float], reach: float) -> List[Box]:
    """Boxes of ``size`` (w, h) on rings around ``anchor``, nearest ring first; on each ring the box's
    edge nearest the anchor sits on the ring, starting up-right and going round."""
    w, h = size
    out: List[Box] = []
    r = 10.0
    while r <= reach:
        for k in range(_DIRECTIONS):
            a = -math.pi / 4 + 2 * math.pi * k / _DIRECTIONS
            dx, dy = math.cos(a), math.sin(a)
            cx = anchor[0] + dx * (r + w / 2)
            cy = anchor[1] + dy * (r + h / 2)
            out.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        r = r * 1.3 + 6
    return out


def place_labels(anchors: Sequence[Tuple[float, float]], sizes: Sequence[Tuple[float, float]],
                 bounds: Box, gap: float = 3.0) -> List[Box]:
    """Greedy non-overlapping label boxes, one per (anchor (x, y), size (w, h)), in the order given
    (put the most important first). Boxes lie inside ``bounds`` and keep ``gap`` px between them."""
    reach = max(bounds[2] - bounds[0], bounds[3] - bounds[1])
    placed: List[Box] = []
    for i, (anchor, size) in enumerate(zip(anchors, sizes)):
        best, best_cost = None, math.inf
        for box in _candidates(anchor, size, reach):
            if box[0] < bounds[0] or box[1] < bounds[1] or box[2] > bounds[2] or box[3] > bounds[3]:
                continue
            grown = (box[0] - gap, box[1] - gap, box[2] + gap, box[3] + gap)
            cost = sum(_overlap(grown, p) for p in placed)
            if cost == 0 and not any(_contains(box, a) for j, a in enumerate(anchors) if j != i):
                best = box
                break
            cost += 1e-3  # covering an anchor beats overlapping a label, not a free place
            if cost < best_cost:
                best, best_cost = box, cost
        if best is None:  # no candidate fits inside: clamp the nearest one
            x0 = min(max(anchor[0] + 10, bounds[0]), bounds[2] - size[0])
            y0 = min(max(anchor[1] - 10 - size[1], bounds[1]), bounds[3] - size[1])
            best = (x0, y0, x0 + size[0], y0 + size[1])
        placed.append(best)
    return placed


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except TypeError:  # older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def _nearest_edge_point(box: Box, p: Tuple[float, float]) -> Tuple[float, float]:
    return (min(max(p[0], box[0]), box[2]), min(max(p[1], box[1]), box[3]))


CLICK_POSITIVE = (0, 255, 0)
CLICK_NEGATIVE = (255, 0, 0)


def render_overlay(image: np.ndarray, segments: Sequence[dict], header: str = "",
                   min_side: int = MIN_SIDE, clicks: Sequence[Tuple[float, float, bool]] = ()
                   ) -> Tuple[np.ndarray, List[Box]]:
    """The overlay picture of one frame (see the module docstring) and its label boxes (in picture px).

    ``segments``: dicts with ``mask`` (H, W) bool, ``label`` (text), ``category_id`` and ``anchor``
    (x, y) frame px, best first. ``clicks`` (x, y, positive) frame px: a person's clicks (proofread),
    drawn as a green plus (positive) or a red cross (negative) with a black outline."""
    img = np.asarray(image)
    h, w = img.shape[:2]
    s = max(1, int(math.ceil(min_side / max(h, w))))
    base = np.repeat(np.repeat(img, s, 0), s, 1) if s > 1 else img
    rgb = np.stack([base] * 3, axis=-1).astype(np.float32) if base.ndim == 2 else base[..., :3].astype(np.float32)
    for seg in reversed(segments):  # best last, so it is drawn on top
        m = np.asarray(seg["mask"], dtype=bool)
        if s > 1:
            m = np.repeat(np.repeat(m, s, 0), s, 1)
        rgb[m] = (1 - ALPHA) * rgb[m] + ALPHA * np.asarray(class_colour(seg["category_id"]), np.float32)
    font_size = max(11, int(round(max(h, w) * s / 40)))
    font = _font(font_size)
    header_h = int(font_size * 1.6) if header else 0
    canvas = Image.new("RGB", (w * s, h * s + header_h), (0, 0, 0))
    canvas.paste(Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)), (0, header_h))
    draw = ImageDraw.Draw(canvas)
    if header:
        draw.text((4, header_h / 2), header, fill=(255, 255, 255), font=font, anchor="lm")
    pad = max(2, font_size // 5)
    sizes, anchors = [], []
    for seg in segments:
        x0, y0, x1, y1 = draw.textbbox((0, 0), seg["label"], font=font, anchor="lt")
        sizes.append((x1 - x0 + 2 * pad, y1 - y0 + 2 * pad))
        ax, ay = seg["anchor"]
        anchors.append(((ax + 0.5) * s, (ay + 0.5) * s + header_h))
    boxes = place_labels(anchors, sizes, (0, header_h, w * s, h * s + header_h))
    for seg, box, anchor in zip(segments, boxes, anchors):
        colour = class_colour(seg["category_id"])
        draw.line([anchor, _nearest_edge_point(box, anchor)], fill=colour, width=max(1, s))
        r = max(2, s + 1)
        draw.ellipse([anchor[0] - r, anchor[1] - r, anchor[0] + r, anchor[1] + r], fill=colour)
        draw.rectangle(box, fill=(0, 0, 0), outline=colour, width=max(1, s // 2 + 1))
        draw.text((box[0] + pad, box[1] + pad), seg["label"], fill=(255, 255, 255), font=font, anchor="lt")
    arm = max(3, font_size // 2)
    for x, y, positive in clicks:
        cx, cy = (x + 0.5) * s, (y + 0.5) * s + header_h
        if positive:
            lines = [((cx - arm, cy), (cx + arm, cy)), ((cx, cy - arm), (cx, cy + arm))]
        else:
            lines = [((cx - arm, cy - arm), (cx + arm, cy + arm)), ((cx - arm, cy + arm), (cx + arm, cy - arm))]
        for a, b in lines:
            draw.line([a, b], fill=(0, 0, 0), width=max(3, s + 2))
        for a, b in lines:
            draw.line([a, b], fill=CLICK_POSITIVE if positive else CLICK_NEGATIVE, width=max(1, s))
    return np.asarray(canvas), boxes


def write_gif(path: str, pictures: Sequence[np.ndarray], fps: Optional[float]) -> None:
    """An animated overlay (imageio's GIF writer), looping, at the cine's frame rate (15 frames/s when
    unknown). Pictures of one input have one size."""
    import imageio.v3 as iio

    from sam3_angio.data.frame_selection import DEFAULT_FPS

    duration_ms = 1000.0 / float(fps or DEFAULT_FPS)
    iio.imwrite(path, np.stack(list(pictures)), extension=".gif", duration=duration_ms, loop=0)
