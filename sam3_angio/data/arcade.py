"""Import ARCADE (real X-ray coronary angiograms with SYNTAX-numbered segments or stenosis polygons)
into this project's COCO layout: ``<out>/<split>/{annotations.json, images/}``.

ARCADE: Popov et al., "Dataset for Automatic Region-based Coronary Artery Disease Diagnostics Using
X-Ray Angiography Images", Scientific Data 11 (2024), doi:10.1038/s41597-023-02871-z.

``cass``: SYNTAX segment names ("1".."16c") -> CASS ids through ``sam3_angio.cass.SYNTAX_TO_CASS``;
segments without a CASS counterpart or outside the class set (default: the study's 14) are dropped
and counted per SYNTAX class. ``stenosis``: the single "stenosis" category -> id 1. Polygons become
RLE after the checks of ``data/polygons.py`` (a polygon they refuse, or an image that does not decode,
is an error naming the annotation or image, raised before anything is written); view angles are
unknown (``null``): ARCADE records none.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from PIL import Image

from .. import __version__
from ..cass import SYNTAX_TO_CASS, class_ids as _class_ids, cass_name
from .atomic import atomic_output_dir, write_manifest
from .coco_io import IMAGES_DIR, STENOSIS_CATEGORY, categories_for, rle_from_polygons, write_split
from .layout import DataLayoutError

PathLike = Union[str, Path]

MANIFEST_KIND = "sam3_angio.coco.arcade"
MAPPING_REPORT = "mapping_report"  # .json and .txt in the output folder
ARCADE_CITATION = (
    "Popov et al., Dataset for Automatic Region-based Coronary Artery Disease Diagnostics Using X-Ray "
    "Angiography Images, Sci Data 11 (2024), doi:10.1038/s41597-023-02871-z"
)


class ArcadeImportError(DataLayoutError):
    """The ARCADE annotation file or image folder cannot be imported as asked."""


def _link_or_copy(src: Path, dst: Path) -> str:
    try:
        os.link(src, dst)
        return "linked"
    except OSError:
        shutil.copy2(src, dst)
        os.chmod(dst, 0o644)
        return "copied"


def _check_image(path: Path, im: dict, coco_json: Path) -> None:
    """The image opens, passes PIL's ``verify`` and has the recorded size.

    ``verify`` reads every chunk and checks its CRC (a truncated or garbled PNG fails) without
    decompressing: 0.7 ms a 512 x 512 ARCADE PNG against 10 ms for a full ``load`` (measured).
    """
    try:
        with Image.open(path) as pil:
            hw = (pil.height, pil.width)
            pil.verify()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ArcadeImportError(
            f"image '{path}' (id {im['id']}) of '{coco_json}' cannot be read as an image ({e}); "
            f"replace the file or remove its image record"
        ) from None
    if hw != (int(im["height"]), int(im["width"])):
        raise ArcadeImportError(
            f"image '{im['file_name']}' is {hw[0]}x{hw[1]} but '{coco_json}' says {im['height']}x{im['width']}"
        )


def _link_images(imgs: List[dict], images_dir: Path, img_dir: Path):
    """Link (or copy) every image into ``img_dir``; return the output image records and the how-counts."""
    img_dir.mkdir(parents=True)
    out_imgs: List[dict] = []
    how: Counter = Counter()
    for im in imgs:
        dst = img_dir / Path(im["file_name"]).name
        how[_link_or_copy(images_dir / im["file_name"], dst)] += 1
        out_imgs.append({
            "id": im["id"], "file_name": dst.name, "height": int(im["height"]), "width": int(im["width"]),
            "view_angles": None, "patient_id": None, "phase": None, "vessel_name": None,
            "cass_segment": None, "source": "ARCADE", "arcade_file_name": im["file_name"],
        })
    return out_imgs, how


def _check_structure(src, coco_json: Path):
    """``(categories, images, annotations)`` of a loaded COCO file, each record checked for what the
    import reads; raises :class:`ArcadeImportError` naming the record."""
    where = f"'{coco_json}'"
    if not isinstance(src, dict):
        raise ArcadeImportError(f"{where} is not a COCO annotation file (a JSON {type(src).__name__}, expected an "
                                f"object with 'images', 'annotations', 'categories')")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(src.get(k), list)]
    if missing:
        raise ArcadeImportError(f"{where} is not a COCO annotation file (no {' / '.join(repr(k) for k in missing)} "
                                f"list)")
    for key, need in (("categories", ("id", "name")), ("images", ("id", "file_name", "height", "width")),
                      ("annotations", ("image_id", "category_id"))):
        for i, rec in enumerate(src[key]):
            if not isinstance(rec, dict):
                raise ArcadeImportError(f"{where}: {key}[{i}] is a {type(rec).__name__}, expected an object")
            lacks = [k for k in need if rec.get(k) is None]
            if lacks:
                raise ArcadeImportError(f"{where}: {key}[{i}] has no {', '.join(repr(k) for k in lacks)}")
            for k in ("id", "image_id", "category_id"):
                if k in need and (not isinstance(rec[k], (int, str)) or isinstance(rec[k], bool)):
                    raise ArcadeImportError(f"{where}: {key}[{i}] has {k} {rec[k]!r}; expected an integer")
    seen_ids: Dict[object, int] = {}
    seen_names: Dict[str, int] = {}
    for i, im in enumerate(src["images"]):
        try:
            ok = all(float(im[k]).is_integer() and float(im[k]) > 0 for k in ("height", "width"))
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            raise ArcadeImportError(f"{where}: images[{i}] has height x width {im['height']!r} x {im['width']!r}; "
                                    f"expected positive integers")
        if im["id"] in seen_ids:
            raise ArcadeImportError(f"{where}: image id {im['id']!r} appears twice (images[{seen_ids[im['id']]}] "
                                    f"and images[{i}])")
        seen_ids[im["id"]] = i
        name = Path(str(im["file_name"])).name
        if name in seen_names:  # images/ is flat: the second would replace the first
            raise ArcadeImportError(f"{where}: images[{seen_names[name]}] and images[{i}] have the same file name "
                                    f"'{name}'; each image needs its own file")
        seen_names[name] = i
    return src["categories"], src["images"], src["annotations"]


def syntax_mapping(categories: List[dict], class_ids: Sequence[int]) -> "OrderedDict[int, dict]":
    """ARCADE category id -> ``{"syntax": name, "cass_id": int|None, "kept": bool, "reason": str}``."""
    out: "OrderedDict[int, dict]" = OrderedDict()
    for c in categories:
        name = str(c["name"]).strip()
        if name not in SYNTAX_TO_CASS:
            out[c["id"]] = {"syntax": name, "cass_id": None, "kept": False, "reason": "not a SYNTAX segment name"}
            continue
        cass = SYNTAX_TO_CASS[name]
        if cass is None:
            out[c["id"]] = {"syntax": name, "cass_id": None, "kept": False, "reason": "no CASS counterpart"}
        elif cass not in class_ids:
            out[c["id"]] = {"syntax": name, "cass_id": cass, "kept": False,
                            "reason": f"CASS {cass} ({cass_name(cass)}) is not in the class set"}
        else:
            out[c["id"]] = {"syntax": name, "cass_id": cass, "kept": True, "reason": f"-> CASS {cass} ({cass_name(cass)})"}
    return out


def import_arcade(
    coco_json: PathLike,
    images_dir: PathLike,
    out_dir: PathLike,
    task: str,
    *,
    split: str = "val",
    class_ids: Optional[Sequence[int]] = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Import one ARCADE COCO file into ``out_dir/<split>/`` for ``task`` (cass | stenosis).

    Every image is kept (hard-linked when the file system allows, else copied), also those left
    without annotations. Returns ``{"out_dir", "task", "split", "json", "images", "n_images",
    "n_annotations", "per_class": {syntax name: {...}}, "mapping_report": path}``.
    """
    if task not in ("cass", "stenosis"):
        raise ValueError(f"unknown ARCADE task {task!r}; expected cass or stenosis")
    coco_json, images_dir, out_dir = Path(coco_json), Path(images_dir), Path(out_dir)
    t0 = time.perf_counter()
    if not coco_json.is_file():
        raise ArcadeImportError(f"ARCADE annotation file '{coco_json}' does not exist")
    if not images_dir.is_dir():
        raise ArcadeImportError(f"ARCADE image folder '{images_dir}' does not exist")
    try:
        with open(coco_json, encoding="utf-8-sig") as f:  # -sig: a BOM is no error
            src = json.load(f)
    except json.JSONDecodeError as e:
        raise ArcadeImportError(f"'{coco_json}' is not a COCO annotation file ({e})") from None
    except UnicodeDecodeError:
        raise ArcadeImportError(f"'{coco_json}' is not a COCO annotation file (not UTF-8 text)") from None
    cats, imgs, anns = _check_structure(src, coco_json)

    ids = _class_ids(class_ids)
    if task == "cass":
        mapping = syntax_mapping(cats, ids)
        used = Counter(a["category_id"] for a in anns)
        if not any(mapping.get(cid, {}).get("cass_id") is not None for cid in used):
            names = sorted({mapping[cid]["syntax"] for cid in used if cid in mapping})
            raise ArcadeImportError(
                f"no annotation of '{coco_json}' is a SYNTAX segment (its annotations use: "
                f"{', '.join(names[:8]) or 'nothing'}); --task cass needs ARCADE's syntax split"
            )
        new_cat = {cid: m["cass_id"] for cid, m in mapping.items() if m["kept"]}
    else:
        sten = [c["id"] for c in cats if str(c["name"]).strip().lower() == "stenosis"]
        if not any(a["category_id"] in sten for a in anns):
            raise ArcadeImportError(
                f"'{coco_json}' has no annotation in a \"stenosis\" category (categories: "
                f"{', '.join(str(c['name']) for c in cats[:8])}...); --task stenosis needs ARCADE's stenosis split"
            )
        mapping = OrderedDict(
            (c["id"], {"syntax": str(c["name"]), "cass_id": None, "kept": c["id"] in sten,
                       "reason": "-> stenosis" if c["id"] in sten else "not the stenosis category"})
            for c in cats
        )
        new_cat = {cid: STENOSIS_CATEGORY["id"] for cid in sten}

    by_image: Dict[int, dict] = {}
    for im in imgs:
        f = images_dir / im["file_name"]
        if not f.is_file():
            raise ArcadeImportError(f"image '{im['file_name']}' (id {im['id']}) of '{coco_json}' is not in '{images_dir}'")
        by_image[im["id"]] = im

    counts: Counter = Counter()
    kept_counts: Counter = Counter()
    invalid: Counter = Counter()
    out_anns: List[dict] = []
    for a in anns:
        cid = a["category_id"]
        counts[cid] += 1
        if cid not in new_cat:
            continue
        im = by_image.get(a["image_id"])
        if im is None:
            raise ArcadeImportError(f"annotation {a.get('id')} refers to image {a['image_id']}, which '{coco_json}' lacks")
        polys = a.get("segmentation")
        if not isinstance(polys, list) or not polys:  # no polygon at all: counted, as an empty mask is
            invalid[cid] += 1
            continue
        rec = rle_from_polygons(polys, int(im["height"]), int(im["width"]),
                                where=f"'{coco_json}': annotation {a.get('id')} (image {a['image_id']})")
        if rec["area"] == 0:
            invalid[cid] += 1
            continue
        kept_counts[cid] += 1
        extra = {"syntax_segment": mapping[cid]["syntax"]} if task == "cass" else {}
        out_anns.append({
            "id": len(out_anns) + 1, "image_id": a["image_id"], "category_id": new_cat[cid], **rec,
            "iscrowd": 0, "arcade_annotation_id": a.get("id"), **extra,
        })

    per_class: "OrderedDict[str, dict]" = OrderedDict()
    for cid, m in mapping.items():
        per_class[m["syntax"]] = {
            "arcade_category_id": cid,
            "annotations": counts.get(cid, 0),
            "mapped": kept_counts.get(cid, 0),
            "dropped": counts.get(cid, 0) - kept_counts.get(cid, 0),
            "cass_id": m["cass_id"],
            "reason": m["reason"] if m["kept"] else f"dropped: {m['reason']}",
            **({"invalid_polygons": invalid[cid]} if invalid.get(cid) else {}),
        }

    for cid in sorted(set(counts) - set(mapping), key=str):  # ids the file's categories do not declare
        per_class[f"id {cid}"] = {
            "arcade_category_id": cid, "annotations": counts[cid], "mapped": 0, "dropped": counts[cid],
            "cass_id": None, "reason": "dropped: category id not declared in the file's 'categories'",
        }

    lines = [f"ARCADE import ({task}) of {coco_json.name}: {len(imgs)} images, {len(anns)} annotations -> "
             f"{len(out_anns)} kept, {len(anns) - len(out_anns)} dropped"]
    lines.append(f"  {'class':>8} {'count':>6} {'mapped':>6} {'dropped':>7}  mapping")
    for name, e in per_class.items():
        if e["annotations"] == 0:
            continue  # categories the file declares but never uses (kept in the JSON report)
        lines.append(f"  {name:>8} {e['annotations']:>6} {e['mapped']:>6} {e['dropped']:>7}  {e['reason']}")
    text = "\n".join(lines)

    for im in imgs:  # before anything is written: a bad image leaves no output behind
        _check_image(images_dir / im["file_name"], im, coco_json)

    categories = categories_for(task, ids)
    info = {
        "description": f"ARCADE {coco_json.parent.name} imported by sam3_angio ({task})",
        "citation": ARCADE_CITATION, "source_annotations": str(coco_json), "task": task, "split": split,
        "sam3_angio_version": __version__,
    }
    report = {"source": str(coco_json), "task": task, "class_ids": ids if task == "cass" else None,
              "n_images": len(imgs), "n_annotations_in": len(anns), "n_annotations_out": len(out_anns),
              "per_class": per_class}
    manifest = {"kind": MANIFEST_KIND, "task": task, "source": str(coco_json),
                "splits": {split: {"n_images": len(imgs), "n_annotations": len(out_anns)}},
                "categories": categories}
    created_root = not out_dir.exists()
    try:
        # One split is one all-or-nothing folder, so train, val and test import into the same root one
        # after the other (paths.data_root=<root's parent> when <root> is coco_cass / coco_stenosis).
        with atomic_output_dir(out_dir / split, overwrite=overwrite) as tmp:
            out_imgs, how = _link_images(imgs, images_dir, tmp / IMAGES_DIR)
            write_split(tmp, out_imgs, out_anns, categories, info)
            with open(tmp / f"{MAPPING_REPORT}.json", "w", encoding="utf-8") as f:
                json.dump(report, f, indent=2)
            (tmp / f"{MAPPING_REPORT}.txt").write_text(text + "\n", encoding="utf-8")
            write_manifest(tmp, manifest)
    except BaseException:
        if created_root and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()  # atomic_output_dir made the split folder's parent: leave no empty folder
        raise
    if progress:
        print(text, flush=True)
        print(f"  images {dict(how)}; wrote {out_dir / split} in {time.perf_counter() - t0:.1f} s", flush=True)
    return {
        "out_dir": str(out_dir), "task": task, "split": split,
        "json": str(out_dir / split / "annotations.json"), "images": str(out_dir / split / IMAGES_DIR),
        "n_images": len(out_imgs), "n_annotations": len(out_anns), "per_class": dict(per_class),
        "mapping_report": str(out_dir / split / f"{MAPPING_REPORT}.json"),
    }
