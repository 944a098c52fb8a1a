"""Where masks come from: a mask image file, every annotation of a COCO file, or every record of a
predictions file (COCO results with RLE masks); each yields :class:`MaskItem` records for measuring.

Masks are decoded with pycocotools to ``(H, W)`` bool at the image size; the pixel spacing comes from
the item (image record ``mm_per_pixel``, prediction ``mm_per_pixel``) or a fallback the caller gives.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as mask_utils

from ..cass import CASS_BY_ID, SYNTAX_TO_CASS
from ..data.masks import lossy_foreground, without_alpha
from .errors import NonBinaryMaskError, QCAInputError

PathLike = Union[str, Path]
_CASS_BY_NAME = {s.name.lower(): s.id for s in CASS_BY_ID.values()}


@dataclass
class MaskItem:
    """One mask to measure, or the reason it cannot be (``error``)."""

    source: str  # names the input in results and messages: "FILE", "FILE#annotation=ID", ...
    mask: Optional[np.ndarray] = None  # (H, W) bool
    mm_per_pixel: Optional[float] = None
    meta: Dict[str, Any] = field(default_factory=dict)  # frame, image_id, cass_segment, ...
    image_path: Optional[Path] = None  # the frame, for the figure
    image: Optional[np.ndarray] = None  # or the frame itself (H, W) in memory (tools/predict.py --qca)
    ostium: Optional[Tuple[float, float]] = None
    error: Optional[str] = None


# ----------------------------------------------------------------------------------------------
# Files


def read_mask_file(path: PathLike) -> np.ndarray:
    """A binary mask image (PNG or any PIL format) or ``.npy`` -> ``(H, W)`` bool.

    Two values only (0 and one foreground value, any channel count with equal channels; a constant
    colour with a varying alpha channel: the alpha); a JPEG, whose compression adds grey values, is
    thresholded half-way between its darkest and brightest value. Anything else is refused with a
    message naming the file."""
    path = Path(path)
    if path.is_dir():
        raise QCAInputError(f"mask '{path}' is a folder, not a mask file")
    if not path.is_file():
        raise QCAInputError(f"mask '{path}' does not exist (check the path)")
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False)
        else:
            with Image.open(path) as im:
                im.load()
                arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise QCAInputError(f"mask '{path}' cannot be read as an image or .npy array ({e or type(e).__name__}); "
                            f"expected a binary PNG (0 = background)") from None
    if arr.dtype.kind not in "biuf":
        raise NonBinaryMaskError(f"mask '{path}' holds {arr.dtype} values; expected a binary mask of numbers "
                                 f"(0 = background)")
    if arr.ndim == 3 and arr.shape[0] == 1 and arr.shape[2] > 4:
        arr = arr[0]  # a stack of one mask, (1, H, W)
    if arr.ndim == 3 and arr.shape[2] <= 4:
        arr = without_alpha(arr)
        if arr.shape[2] > 1 and not np.all(arr == arr[..., :1]):
            raise NonBinaryMaskError(f"mask '{path}' is a colour image with differing channels; expected a "
                                     f"binary (single-channel) mask")
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise QCAInputError(f"mask '{path}' has shape {arr.shape}; expected a 2-D (H, W) mask")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise NonBinaryMaskError(f"mask '{path}' holds NaN or infinite values; expected 0 for background and "
                                 f"one foreground value")
    lossy = lossy_foreground(arr, path)
    if lossy is not None:
        return lossy
    values = np.unique(arr)
    if len(values) > 2 or (len(values) == 2 and values[0] != 0):
        raise NonBinaryMaskError(
            f"mask '{path}' is not binary: {len(values)} distinct values ({values.min():g}..{values.max():g}); "
            f"expected 0 for background and one foreground value - threshold it first (e.g. > 127)"
        )
    return arr != 0


def read_frame(path: PathLike, shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """A frame image (any PIL format, or ``.npy`` (H, W)) as ``(H, W)`` float32 in 0..1, for figures."""
    path = Path(path)
    if not path.is_file():
        raise QCAInputError(f"image '{path}' does not exist (check the path)")
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False).astype(np.float32)
        else:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("L"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise QCAInputError(f"image '{path}' cannot be read ({e})") from None
    if arr.ndim != 2:
        raise QCAInputError(f"image '{path}' has shape {arr.shape}; expected a 2-D frame")
    if shape is not None and arr.shape != tuple(shape):
        raise QCAInputError(f"image '{path}' is {arr.shape[1]}x{arr.shape[0]} (w x h) but the mask is "
                            f"{shape[1]}x{shape[0]}; give the frame the mask was drawn on")
    lo, hi = float(arr.min()), float(arr.max())
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def read_json(path: PathLike, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise QCAInputError(f"{what} '{path}' does not exist (check the path)")
    try:
        with open(path, encoding="utf-8-sig") as f:  # -sig: a BOM (Windows tools write one) is not an error
            return json.load(f)
    except json.JSONDecodeError as e:
        raise QCAInputError(f"{what} '{path}' is not valid JSON: {e.msg} at line {e.lineno}, "
                            f"column {e.colno}") from None
    except UnicodeDecodeError:
        raise QCAInputError(f"{what} '{path}' is not UTF-8 text (is it a JSON file?)") from None


def spacing_of(record: Dict[str, Any], where: str) -> Optional[float]:
    """A record's ``mm_per_pixel`` (None when absent or null); raises on a bad value."""
    v = record.get("mm_per_pixel")
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        f = float("nan")
    if not math.isfinite(f) or f <= 0:
        from .errors import SpacingError

        raise SpacingError(f"{where}: mm_per_pixel must be a positive number (mm per pixel), got {v!r}")
    return f


# ----------------------------------------------------------------------------------------------
# CASS naming


def cass_of(name: Optional[str], explicit: Any = None) -> Tuple[Optional[int], Optional[str]]:
    """``(CASS id, CASS name)`` from an explicit id, a CASS text prompt ("mid LAD"), a CASS number or an
    ARCADE/SYNTAX segment name ("7"); ``(None, None)`` when it is none of these (e.g. "stenosis")."""
    cid = None
    if explicit not in (None, ""):
        try:
            cid = int(explicit)
        except (TypeError, ValueError):
            cid = None
    elif name is not None:
        key = str(name).strip()
        if key.lower() in _CASS_BY_NAME:
            cid = _CASS_BY_NAME[key.lower()]
        elif key in SYNTAX_TO_CASS:
            cid = SYNTAX_TO_CASS[key]
    if cid is None or cid not in CASS_BY_ID:
        return None, None
    return cid, CASS_BY_ID[cid].name


def decode_segmentation(seg: Any, h: int, w: int) -> np.ndarray:
    """A COCO segmentation (polygons, uncompressed or compressed RLE) -> ``(h, w)`` bool.

    Checked first (``sam3_angio.data.rle.to_rle``, the checks evaluation uses): pycocotools trusts
    an RLE's run lengths, and decodes one that covers too few pixels into a mask whose tail is
    uninitialised memory; a polygon far outside the image or with NaN can exhaust memory. Raises
    ``ValueError`` saying what is wrong."""
    from ..data.rle import to_rle

    if seg is None:
        raise ValueError("the annotation has no 'segmentation' (a box alone cannot be measured)")
    if isinstance(seg, list) and not seg:
        raise ValueError("the segmentation is an empty polygon list")
    m = mask_utils.decode(to_rle(seg, h, w))  # GeometryError is a ValueError
    if m.shape != (h, w):
        raise ValueError(f"decoded mask is {m.shape}, expected ({h}, {w})")
    return m.astype(bool)


def _rle_hw(seg: Any) -> Optional[Tuple[int, int]]:
    """``(h, w)`` an RLE dict says it has, or None."""
    size = seg.get("size") if isinstance(seg, dict) else None
    if (isinstance(size, (list, tuple)) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        return int(size[0]), int(size[1])
    return None


def _image_hw(im: dict) -> Optional[Tuple[int, int]]:
    """An image record's ``(height, width)`` as positive integers, or None when absent or unusable."""
    try:
        h, w = float(im["height"]), float(im["width"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (math.isfinite(h) and math.isfinite(w) and h.is_integer() and w.is_integer() and h > 0 and w > 0):
        return None
    return int(h), int(w)


def _mask_size(seg: Any, im: Optional[dict], image_name: str) -> Tuple[int, int]:
    """The size to decode ``seg`` at: its image record's, else (RLE) its own; raises ``ValueError``."""
    hw = _image_hw(im) if im else None
    if hw is not None:
        return hw
    own = _rle_hw(seg)
    if own is not None:
        return own
    if isinstance(seg, dict):
        raise ValueError(f"RLE 'size' must be [h, w] positive integers, found {seg.get('size')!r}")
    if im:
        raise ValueError(f"{image_name} has no usable height/width ({im.get('height')!r} x {im.get('width')!r}); "
                         f"polygons need the image size")
    raise ValueError("polygons need the image size: give --image-info with the images")


# ----------------------------------------------------------------------------------------------
# COCO annotations


def _images_by_id(data: Dict[str, Any], path: Path) -> Dict[Any, dict]:
    """Image records by id; each needs an ``id`` (an integer or a string). A record without a usable
    ``height``/``width`` is kept: an RLE carries its own size, a polygon annotation on it is skipped."""
    imgs = data.get("images")
    if not isinstance(imgs, list):
        raise QCAInputError(f"COCO file '{path}' has no 'images' list")
    out = {}
    for i, im in enumerate(imgs):
        if not isinstance(im, dict) or "id" not in im:
            raise QCAInputError(f"COCO file '{path}': images[{i}] needs an 'id' (and 'height', 'width')")
        if not isinstance(im["id"], (int, str)) or isinstance(im["id"], bool):
            raise QCAInputError(f"COCO file '{path}': images[{i}] has id {im['id']!r}; expected an integer")
        out[im["id"]] = im
    return out


def iter_coco(path: PathLike, images_dir: Optional[PathLike] = None,
              mm_per_pixel: Optional[float] = None) -> Iterator[MaskItem]:
    """One item per annotation of the COCO file ``path``; frames from ``images_dir/<file_name>``
    when given; spacing from the image record's ``mm_per_pixel``, else ``mm_per_pixel``."""
    path = Path(path)
    data = read_json(path, "COCO file")
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise QCAInputError(f"COCO file '{path}' has no 'annotations' list (is it a COCO annotations file?)")
    images = _images_by_id(data, path)
    cats = {c.get("id"): c.get("name") for c in data.get("categories", []) if isinstance(c, dict)}
    if images_dir is not None and not Path(images_dir).is_dir():
        raise QCAInputError(f"images folder '{images_dir}' does not exist")
    for i, ann in enumerate(data["annotations"]):
        aid = ann.get("id", i) if isinstance(ann, dict) else i
        src = f"{path.name}#annotation={aid}"
        known = isinstance(ann, dict) and isinstance(ann.get("image_id"), (int, str)) and ann["image_id"] in images
        if not known:
            yield MaskItem(source=src, error="annotation without a known image_id")
            continue
        im = images[ann["image_id"]]
        cat_name = cats.get(ann.get("category_id"))
        cid, cname = cass_of(cat_name, ann.get("cass_segment"))
        meta = {"frame": im.get("file_name"), "image_id": ann["image_id"], "annotation_id": aid,
                "category_id": ann.get("category_id"), "category_name": cat_name,
                "cass_segment": cid, "cass_name": cname}
        item = MaskItem(source=src, meta=meta,
                        image_path=Path(images_dir) / im["file_name"] if images_dir and im.get("file_name") else None)
        try:
            sp = spacing_of(im, f"COCO file '{path}', image {im['id']}")
            item.mm_per_pixel = sp if sp is not None else mm_per_pixel
            seg = ann.get("segmentation")
            item.mask = decode_segmentation(seg, *_mask_size(seg, im, f"image {im['id']}"))
        except QCAInputError:
            raise
        except Exception as e:  # one unreadable annotation does not stop the others
            item.error = f"segmentation cannot be decoded: {e}"
        yield item


# ----------------------------------------------------------------------------------------------
# Predictions (COCO results)


def iter_predictions(path: PathLike, image_info: Optional[PathLike] = None, images_dir: Optional[PathLike] = None,
                     min_score: float = 0.5, mm_per_pixel: Optional[float] = None) -> Iterator[MaskItem]:
    """One item per prediction with a mask and ``score >= min_score`` (records without a score are
    kept). ``path``: a COCO results list ``[{"image_id", "category_id", "segmentation": RLE, "score",
    "cass_name"?, "cass_segment"?, "mm_per_pixel"?, "file_name"?}, ...]`` or a dict with such a list
    under ``annotations``. ``image_info``: a COCO file whose ``images`` give file names and spacing
    by ``image_id``; ``mm_per_pixel``: the spacing where neither the record nor its image has one."""
    path = Path(path)
    data = read_json(path, "predictions file")
    images: Dict[Any, dict] = {}
    cats: Dict[Any, str] = {}
    if isinstance(data, dict):
        if isinstance(data.get("images"), list):
            images = _images_by_id(data, path)
        cats = {c.get("id"): c.get("name") for c in data.get("categories", []) if isinstance(c, dict)}
        data = data.get("annotations")
    if not isinstance(data, list):
        raise QCAInputError(f"predictions file '{path}' is not a COCO results list (or a dict with 'annotations')")
    if image_info is not None:
        info = read_json(image_info, "image info COCO file")
        if not isinstance(info, dict):
            raise QCAInputError(f"image info COCO file '{image_info}' is not a COCO dict with 'images'")
        images.update(_images_by_id(info, Path(image_info)))
        cats.update({c.get("id"): c.get("name") for c in info.get("categories", []) if isinstance(c, dict)})
    if images_dir is not None and not Path(images_dir).is_dir():
        raise QCAInputError(f"images folder '{images_dir}' does not exist")
    for i, rec in enumerate(data):
        src = f"{path.name}#{i}"
        if not isinstance(rec, dict) or "segmentation" not in rec:
            yield MaskItem(source=src, error="record without a 'segmentation'")
            continue
        score = rec.get("score")
        if score is not None and (not isinstance(score, (int, float)) or isinstance(score, bool)
                                  or not math.isfinite(score)):
            yield MaskItem(source=src, error=f"score {score!r} is not a finite number")
            continue
        if score is not None and score < min_score:
            continue
        im = images.get(rec.get("image_id"), {}) if isinstance(rec.get("image_id"), (int, str)) else {}
        cat_name = rec.get("cass_name") or cats.get(rec.get("category_id"))
        cid, cname = cass_of(cat_name, rec.get("cass_segment"))
        frame = rec.get("file_name") or im.get("file_name")
        meta = {"frame": frame, "image_id": rec.get("image_id"), "prediction_index": i,
                "category_id": rec.get("category_id"), "score": score, "cass_segment": cid,
                "cass_name": cname or rec.get("cass_name")}
        item = MaskItem(source=src, meta=meta,
                        image_path=Path(images_dir) / frame if images_dir and frame else None)
        seg = rec["segmentation"]
        try:
            spacing = spacing_of(rec, f"predictions file '{path}', record {i}")
            if spacing is None and im:
                spacing = spacing_of(im, f"image {im.get('id')}")
            item.mm_per_pixel = spacing if spacing is not None else mm_per_pixel
            item.mask = decode_segmentation(seg, *_mask_size(seg, im, f"image {im.get('id')}"))
        except QCAInputError:
            raise
        except Exception as e:
            item.error = f"segmentation cannot be decoded: {e}"
        yield item


def mask_file_item(mask_path: PathLike, mm_per_pixel: Optional[float] = None, image: Optional[PathLike] = None,
                   ostium: Optional[Tuple[float, float]] = None, meta: Optional[Dict[str, Any]] = None) -> MaskItem:
    """The item of one mask file (errors raise: a single input is all or nothing)."""
    m = read_mask_file(mask_path)
    if ostium is not None:
        x, y = ostium
        H, W = m.shape[:2]
        if not (0 <= x <= W - 1 and 0 <= y <= H - 1):
            raise QCAInputError(f"--ostium {x:g} {y:g} lies outside mask '{mask_path}' ({W} x {H} px: x is the "
                                f"column 0..{W - 1}, y the row 0..{H - 1}); give a pixel near the vessel's proximal "
                                f"end, or leave --ostium out to start at the wider end")
    frame = Path(image).name if image else Path(mask_path).name
    if image is not None:
        read_frame(image, m.shape)  # fail now, not after measuring
    return MaskItem(source=str(mask_path), mask=m, mm_per_pixel=mm_per_pixel, image_path=Path(image) if image else None,
                    ostium=ostium, meta={"frame": frame, **(meta or {})})


__all__: List[str] = ["MaskItem", "cass_of", "decode_segmentation", "iter_coco", "iter_predictions", "mask_file_item",
                      "read_frame", "read_mask_file"]
