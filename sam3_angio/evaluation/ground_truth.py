"""COCO ground truth, loaded and checked once and shared by every evaluator.

Holds the pycocotools ``COCO`` object (what COCOeval needs), per-image annotations, the categories
with the names used in metric keys, and the annotation masks as RLE (converted once, in place, exactly
as COCOeval's own ``_prepare`` would convert them).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from collections import defaultdict
from typing import Any, Dict, List, Optional, Union

from pycocotools.coco import COCO

from .errors import EvaluationInputError
from ..data.rle import RLE, GeometryError, to_rle

PathOrDict = Union[str, "os.PathLike[str]", Dict[str, Any]]


def read_json(path: Union[str, "os.PathLike[str]"], what: str) -> Any:
    """Load a JSON file with an error that names the file and the problem."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise EvaluationInputError(f"{what} file {path!r} does not exist (check the path)")
    try:
        with open(path, "r", encoding="utf-8-sig") as f:  # -sig: a BOM (Windows tools) is no error
            return json.load(f)
    except json.JSONDecodeError as e:
        raise EvaluationInputError(
            f"{what} file {path!r} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"
        ) from None
    except UnicodeDecodeError:
        raise EvaluationInputError(f"{what} file {path!r} is not UTF-8 text (is it a JSON file?)") from None


def _hashable(v: Any) -> bool:
    return isinstance(v, (int, str)) and not isinstance(v, bool)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_id(v: Any, what: str, seen: set) -> None:
    """An id COCOeval can use: an integer or a string, the same type as the ids before it (COCOeval
    sorts them)."""
    if not _hashable(v):
        raise EvaluationInputError(f"{what} {v!r}; expected an integer")
    if seen and type(v) is not type(next(iter(seen))):
        raise EvaluationInputError(f"{what} {v!r} ({type(v).__name__}) but earlier ids are "
                                   f"{type(next(iter(seen))).__name__}s; use one type (integers)")


def metric_name(name: str) -> str:
    """A category name as it appears inside metric keys: dots (key separators) and slashes (the
    trainer's and TensorBoard's tag separators, as in "mid/distal LCX") become underscores."""
    return str(name).replace(".", "_").replace("/", "_")


class GroundTruth:
    """A COCO ground-truth file prepared for evaluation.

    Attributes: ``coco`` (pycocotools COCO), ``image_ids`` (file order), ``images`` (id -> record),
    ``cat_ids`` (sorted), ``cat_names`` (id -> name in the file), ``cat_keys`` (id -> name used in
    ``per_class.<name>.*`` keys: unique, without dots), ``file_name_to_id``, ``path`` (or None).
    """

    def __init__(self, source: PathOrDict) -> None:
        if isinstance(source, dict):
            self.path: Optional[str] = None
            # Masks are converted in place later: never touch the caller's annotation records.
            data = dict(source)
            if isinstance(source.get("annotations"), list):
                data["annotations"] = [dict(a) if isinstance(a, dict) else a for a in source["annotations"]]
        else:
            self.path = os.fspath(source)
            data = read_json(self.path, "ground-truth")
        where = self.path or "ground truth"
        if not isinstance(data, dict):
            raise EvaluationInputError(
                f"{where}: expected a COCO dataset (an object with 'images', 'annotations', "
                f"'categories'), found a JSON {type(data).__name__}. Did you swap --gt and --pred?"
            )
        missing = [k for k in ("images", "annotations", "categories") if k not in data]
        if missing:
            raise EvaluationInputError(f"{where}: a COCO dataset needs {missing} (keys found: {sorted(data)})")
        self._check(data, where)
        coco = COCO()
        coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        self.coco = coco
        self.image_ids: List[int] = [im["id"] for im in data["images"]]
        self.images: Dict[int, dict] = {im["id"]: im for im in data["images"]}
        self.cat_ids: List[int] = sorted(c["id"] for c in data["categories"])
        self.cat_names: Dict[int, str] = {c["id"]: str(c.get("name", c["id"])) for c in data["categories"]}
        self.cat_keys = self._unique_keys()
        self.file_name_to_id: Dict[str, int] = {}
        for im in data["images"]:
            fn = im.get("file_name")
            if fn:
                self.file_name_to_id[str(fn)] = im["id"]
                self.file_name_to_id.setdefault(os.path.basename(str(fn)), im["id"])
        self._anns: Dict[int, List[dict]] = defaultdict(list)
        for a in data["annotations"]:
            self._anns[a["image_id"]].append(a)
        self.n_annotations = len(data["annotations"])
        self.has_segm = bool(data["annotations"]) and all(
            "segmentation" in a and a["segmentation"] not in (None, [], {}) for a in data["annotations"]
        )
        self._masks_ready = False

    @staticmethod
    def _check(data: dict, where: str) -> None:
        for k in ("images", "annotations", "categories"):
            if not isinstance(data[k], list) or not all(isinstance(x, dict) for x in data[k]):
                raise EvaluationInputError(f"{where}: {k!r} must be a list of objects")
        ids = set()
        for i, im in enumerate(data["images"]):
            for k in ("id", "height", "width"):
                if k not in im:
                    raise EvaluationInputError(
                        f"{where}: images[{i}] has no {k!r} (a COCO image needs id, height, width)")
            _check_id(im["id"], f"{where}: images[{i}] has id", ids)
            for k in ("height", "width"):
                v = im[k]  # a JSON number: "512" in quotes would fail int() later
                if not (_finite(v) and float(v).is_integer() and v > 0):
                    raise EvaluationInputError(f"{where}: images[{i}] (id {im['id']!r}) has {k} {v!r}; expected a "
                                               f"positive number of pixels")
            if im["id"] in ids:
                raise EvaluationInputError(f"{where}: image id {im['id']!r} appears twice in 'images'")
            ids.add(im["id"])
        cats = set()
        for i, c in enumerate(data["categories"]):
            if "id" not in c:
                raise EvaluationInputError(f"{where}: categories[{i}] has no 'id'")
            _check_id(c["id"], f"{where}: categories[{i}] has id", cats)
            if c["id"] in cats:
                raise EvaluationInputError(f"{where}: category id {c['id']!r} appears twice in 'categories'")
            cats.add(c["id"])
        ann_ids = set()
        for i, a in enumerate(data["annotations"]):
            for k in ("image_id", "category_id", "bbox"):
                if k not in a:
                    raise EvaluationInputError(f"{where}: annotations[{i}] has no {k!r}")
            if not _hashable(a["image_id"]) or a["image_id"] not in ids:
                raise EvaluationInputError(
                    f"{where}: annotations[{i}] refers to image_id {a['image_id']!r}, which is not in 'images'"
                )
            if not _hashable(a["category_id"]) or a["category_id"] not in cats:
                raise EvaluationInputError(
                    f"{where}: annotations[{i}] has category_id {a['category_id']!r}, which is not in 'categories'"
                )
            if "id" not in a:
                raise EvaluationInputError(f"{where}: annotations[{i}] has no 'id' (COCOeval needs annotation ids)")
            _check_id(a["id"], f"{where}: annotations[{i}] has id", ann_ids)
            if a["id"] in ann_ids:
                # pycocotools indexes annotations by id: the second would replace the first, which then
                # counts twice while the other is never matched (AP < 1 for the ground truth itself)
                raise EvaluationInputError(
                    f"{where}: annotation id {a['id']!r} appears twice in 'annotations' (annotations[{i}]); "
                    f"COCO annotation ids must be unique - renumber them"
                )
            ann_ids.add(a["id"])
            b = a["bbox"]
            if not (isinstance(b, (list, tuple)) and len(b) == 4 and all(_finite(v) for v in b)
                    and b[2] >= 0 and b[3] >= 0):
                raise EvaluationInputError(
                    f"{where}: annotations[{i}] (id {a['id']!r}) has bbox {b!r}; expected [x, y, width, height], "
                    f"4 finite numbers with width, height >= 0"
                )
            if a.get("iscrowd") is None:
                a["iscrowd"] = 0
            elif a["iscrowd"] not in (0, 1) or isinstance(a["iscrowd"], float) and not a["iscrowd"].is_integer():
                raise EvaluationInputError(
                    f"{where}: annotations[{i}] (id {a['id']!r}) has iscrowd {a['iscrowd']!r}; expected 0 or 1"
                )
            if a.get("area") is None:
                a["area"] = float(b[2]) * float(b[3])
            elif not _finite(a["area"]) or a["area"] < 0:
                raise EvaluationInputError(
                    f"{where}: annotations[{i}] (id {a['id']!r}) has area {a['area']!r}; expected a number >= 0 "
                    f"(or leave it out: the box area is used)"
                )

    def _unique_keys(self) -> Dict[int, str]:
        keys: Dict[int, str] = {}
        seen: Dict[str, int] = defaultdict(int)
        for cid in self.cat_ids:
            seen[metric_name(self.cat_names[cid])] += 1
        for cid in self.cat_ids:
            k = metric_name(self.cat_names[cid])
            keys[cid] = k if seen[k] == 1 else f"{k}#{cid}"
        return keys

    # --- per-image access -------------------------------------------------------------------
    def hw(self, image_id: int) -> tuple:
        im = self.images[image_id]
        return int(im["height"]), int(im["width"])

    def annotations(self, image_id: int, include_crowd: bool = False) -> List[dict]:
        """Annotations of one image in file order (crowd regions left out unless asked)."""
        anns = self._anns.get(image_id, [])
        return anns if include_crowd else [a for a in anns if not a.get("iscrowd", 0)]

    def prepare_masks(self) -> None:
        """Convert every annotation's segmentation to compressed RLE, in place (idempotent).

        COCOeval('segm') does the same conversion in its ``_prepare``, so doing it once here changes no
        number and saves doing it twice.
        """
        if self._masks_ready:
            return
        if not self.has_segm:
            raise EvaluationInputError(
                f"{self.path or 'ground truth'}: some annotations have no 'segmentation': "
                "mask metrics (segm AP, Dice, F1) need masks; evaluate with iou_types=('bbox',)"
            )
        for a in self.coco.dataset["annotations"]:
            h, w = self.hw(a["image_id"])
            try:
                a["segmentation"] = to_rle(a["segmentation"], h, w)
            except GeometryError as e:
                raise EvaluationInputError(
                    f"{self.path or 'ground truth'}: annotation id {a['id']} (image {a['image_id']}): {e}"
                ) from None
        self._masks_ready = True

    def rle(self, ann: dict) -> RLE:
        if not self._masks_ready:
            self.prepare_masks()
        return ann["segmentation"]

    def image_label(self, image_id: int, label_key: Optional[str] = None) -> Optional[int]:
        """The image's class for image-level classification metrics, only where the frame shows ONE
        segment: ``image[label_key]`` (or ``cass_id`` / ``cass_segment`` / ``category_id`` on the image
        record) or the category its annotations share. A frame whose annotations have several
        categories has no image-level class (a converter's per-frame field names only one of them)."""
        cats = {a["category_id"] for a in self.annotations(image_id)}
        if len(cats) > 1:
            return None
        im = self.images[image_id]
        keys = [label_key] if label_key else ["cass_id", "cass_segment", "category_id"]
        for k in keys:
            v = im.get(k)
            if v is not None and v != "":
                try:
                    return int(v)
                except (TypeError, ValueError):
                    raise EvaluationInputError(
                        f"{self.path or 'ground truth'}: image {image_id} has {k}={v!r}, expected a category id"
                    ) from None
        return cats.pop() if cats else None
