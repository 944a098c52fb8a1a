"""Checking a COCO split before training reads it: the rules ``tools/eval.py`` applies to ground truth,
plus the image files. Used by ``AngioImageDataset`` at start-up and by ``tools/train.py --check``, so a
split that would train on less than it says (an annotation of an unknown image silently dropped, a
missing frame silently replaced) stops with one line naming the file and the record instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional

from sam3_angio.errors import DataError


@dataclass
class SplitSummary:
    """What a checked split holds: ``images`` and ``annotations`` counts."""

    images: int
    annotations: int


def read_coco_json(path: str, what: str = "annotations") -> Dict[str, Any]:
    """The JSON object in ``path``; a missing, non-UTF-8 or malformed file is a DataError naming it."""
    if not os.path.isfile(path):
        raise DataError(f"{what} file {path!r} does not exist (check paths.data_root / data.*_json)")
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{what} file {path!r} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except UnicodeDecodeError:
        raise DataError(f"{what} file {path!r} is not UTF-8 text (is it a COCO JSON file?)") from None
    if not isinstance(data, dict):
        raise DataError(f"{what} file {path!r}: expected a JSON object with images, annotations, categories")
    return data


def check_coco_split(json_path: str, images_dir: Optional[str] = None,
                     data: Optional[Dict[str, Any]] = None) -> SplitSummary:
    """Raise DataError (naming ``json_path`` and the record) when the split is not what training needs:
    ``images`` / ``annotations`` / ``categories`` lists, unique image ids, every annotation pointing at
    a listed image and a declared category, and (with ``images_dir``) every image file present."""
    if data is None:
        data = read_coco_json(json_path)
    where = json_path
    for k in ("images", "annotations", "categories"):
        if k not in data:
            raise DataError(f"{where}: no {k!r} list (a COCO file needs images, annotations, categories)")
        if not isinstance(data[k], list) or not all(isinstance(x, dict) for x in data[k]):
            raise DataError(f"{where}: {k!r} must be a list of objects")
    ids = set()
    for i, im in enumerate(data["images"]):
        for k in ("id", "file_name"):
            if k not in im:
                raise DataError(f"{where}: images[{i}] has no {k!r}")
        if im["id"] in ids:
            raise DataError(f"{where}: image id {im['id']!r} appears twice in 'images'")
        ids.add(im["id"])
    cats = {c.get("id") for c in data["categories"]}
    for i, a in enumerate(data["annotations"]):
        name = f"annotations[{i}] (id {a.get('id')!r})"
        for k in ("image_id", "category_id"):
            if k not in a:
                raise DataError(f"{where}: {name} has no {k!r}")
        if a["image_id"] not in ids:
            raise DataError(
                f"{where}: {name} refers to image_id {a['image_id']!r}, which is not in 'images' "
                f"(its frame would silently train as a negative); fix or remove the annotation"
            )
        if a["category_id"] not in cats:
            raise DataError(
                f"{where}: {name} has category_id {a['category_id']!r}, which is not in 'categories' "
                f"(declared: {sorted(c for c in cats if c is not None)})"
            )
    if images_dir is not None:
        missing = [im for im in data["images"] if not os.path.isfile(os.path.join(images_dir, im["file_name"]))]
        if missing:
            first = missing[0]
            raise DataError(
                f"{where}: image id {first['id']!r} file {os.path.join(images_dir, first['file_name'])!r} does not "
                f"exist ({len(missing)} of {len(data['images'])} image files missing); restore them or "
                f"remove their records (tools/convert_to_coco.py writes both)"
            )
    return SplitSummary(images=len(data["images"]), annotations=len(data["annotations"]))
