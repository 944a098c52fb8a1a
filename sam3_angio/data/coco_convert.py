"""The study's CSV layout -> COCO folders for SAM3, one per split, for the vessel, cass or stenosis task.

Rows sharing a (cine, frame) become one image with several annotations. Per row and task::

    vessel   : deepsa pseudo-label (h, w) --nearest--> (H, W), union over the image's rows -> 1 annotation,
               category 1 "coronary artery"
    cass     : segment mask (H, W) -> 1 annotation, category id = CASS number, name = text prompt
    stenosis : contours["stenosis"] {center [x, y], length_px} -> (segment mask dilated by 2 px) inside a
               disc of radius length_px / 2 + 3 px -> 1 annotation, category 1 "stenosis"
               (``"stenosis": null`` = no lesion: the image stays, as a negative)

Frames are read by :mod:`sam3_angio.data.frame_files` (a ``.npy`` memory-mapped, a DICOM frame by frame,
a video in one decoding pass for all its rows) and written as 8-bit grayscale PNG (scaling in
:func:`sam3_angio.data.cine.to_gray_uint8`), the pixels ``tools/predict.py`` sees for the same file.
Output is written to a temporary folder and moved into place at the end.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image
from scipy import ndimage

from .. import __version__
from ..cass import class_ids as _class_ids
from .atomic import atomic_output_dir, write_manifest
from ..errors import DataError
from .coco_io import IMAGES_DIR, categories_for, rle_from_mask, write_split
from .layout import TASKS, CheckedRow, DataLayoutError, RowError, RowProblem, validate_csv
from .masks import MaskError, read_mask, resize_nearest

PathLike = Union[str, Path]

MANIFEST_KIND = "sam3_angio.coco"
SKIP_REPORT = "skipped_rows"  # .json and .txt in the output folder
_STENOSIS_MARGIN_PX = 3.0

_SKIP_HINT = "Pass --skip-bad-rows (skip_bad_rows=True) to leave bad rows out and get a report of them."
_NOTHING_LEFT = ("Every row was bad, so --skip-bad-rows left nothing to convert; nothing was written. "
                 "Fix the rows above.")


@dataclass
class _Image:
    key: Tuple[str, int]
    rows: List[CheckedRow] = field(default_factory=list)


# A vessel (or a whole tree) covers far less than half of an angiogram; a mask that covers more is
# inverted (vessel 0), or not a mask at all (a frame, a JPEG's noise read as vessel).
MAX_MASK_FRACTION = 0.5


def _unusable_mask(mask: np.ndarray, label: str) -> Optional[str]:
    """Why a frame's mask (``label``: "mask 'x.png'") cannot be an annotation - empty, or inverted - or None."""
    if not mask.any():
        return f"{label} is empty"
    if mask.mean() > MAX_MASK_FRACTION:
        return (f"{label} covers {100 * mask.mean():.1f} % of the frame: is it inverted (vessel 0, background "
                f"non-zero)?")
    return None


def _safe_stem(cell: str) -> str:
    stem = Path(cell).stem or "frame"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)


def _group(rows: List[CheckedRow]) -> Tuple[List[_Image], List[RowProblem]]:
    """Group rows by (cine file, frame); rows that disagree with the first row of their image on
    patient, phase, split or view angles are problems (a frame cannot have two sets of metadata)."""
    groups: "OrderedDict[Tuple[str, int], _Image]" = OrderedDict()
    problems: List[RowProblem] = []
    for cr in rows:
        key = (str(cr.row.cine_path.resolve()), int(cr.row.frame_index))
        g = groups.setdefault(key, _Image(key))
        if g.rows:
            first = g.rows[0]
            for name, a, b in (
                ("patient_id", first.row.patient_id, cr.row.patient_id),
                ("phase", first.row.phase, cr.row.phase),
                ("split", first.row.split, cr.row.split),
                ("contours_path", first.view_angles, cr.view_angles),
            ):
                if a != b:
                    what = "view_angles" if name == "contours_path" else name
                    problems.append(RowProblem(
                        cr.row.row, cr.row.line, name,
                        f"shares cine '{cr.row.raw.get('cine_path')}' frame {cr.row.frame_index} with row "
                        f"{first.row.row} but has {what} {b!r} instead of {a!r}; one frame has one {what}",
                        cr.row.patient_id,
                    ))
                    break
            else:
                g.rows.append(cr)
        else:
            g.rows.append(cr)
    return list(groups.values()), problems


def _stenosis_mask(cr: CheckedRow, seg: np.ndarray) -> Optional[np.ndarray]:
    """The stenosis region of a row, or None when the row records no lesion. Raises DataLayoutError."""
    st = cr.contours.get("stenosis")
    if st is None:
        return None
    src = cr.row.raw.get("contours_path")
    try:
        cx, cy = (float(v) for v in st["center"])
        length = float(st["length_px"])
    except (KeyError, TypeError, ValueError):
        raise DataLayoutError(
            f"contours JSON '{src}': \"stenosis\" is {st!r}; expected {{\"center\": [x, y], \"length_px\": L}} "
            f"in frame pixels, or null for no lesion"
        ) from None
    if not (np.isfinite(cx) and np.isfinite(cy) and np.isfinite(length) and length >= 0):
        raise DataLayoutError(f"contours JSON '{src}': stenosis center/length_px must be finite numbers, got {st!r}")
    H, W = seg.shape
    radius = 0.5 * length + _STENOSIS_MARGIN_PX * max(H, W) / 512.0
    yy, xx = np.ogrid[0:H, 0:W]
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
    region = ndimage.binary_dilation(seg, iterations=2) & disc
    if region.sum() < 4:
        raise DataLayoutError(
            f"contours JSON '{src}': the stenosis at ({cx:.1f}, {cy:.1f}) does not lie on the segment mask "
            f"'{cr.row.raw.get('vessel_mask_actual_path')}' (check x = column, y = row, frame pixels)"
        )
    return region


def _annotations_for(img: _Image, task: str, shape: Tuple[int, int]) -> Tuple[List[dict], List[RowProblem]]:
    """Annotation records (without ids) of one image, and the rows that failed."""
    anns: List[dict] = []
    problems: List[RowProblem] = []

    def fail(cr: CheckedRow, column: str, message: str) -> None:
        problems.append(RowProblem(cr.row.row, cr.row.line, column, message, cr.row.patient_id))

    if task == "vessel":
        union = np.zeros(shape, bool)
        used: List[int] = []
        seen: Dict[str, np.ndarray] = {}
        for cr in img.rows:
            key = str(cr.row.deepsa_pseudo_label_path.resolve())
            try:
                if key not in seen:
                    seen[key] = resize_nearest(read_mask(cr.row.deepsa_pseudo_label_path), shape)
            except MaskError as e:
                fail(cr, "deepsa_pseudo_label_path", str(e))
                continue
            unusable = _unusable_mask(seen[key], f"pseudo-label '{cr.row.raw.get('deepsa_pseudo_label_path')}'")
            if unusable:
                fail(cr, "deepsa_pseudo_label_path", unusable)
                continue
            union |= seen[key]
            used.append(cr.row.row)
        if used:
            anns.append({"category_id": 1, **rle_from_mask(union), "iscrowd": 0, "source_rows": used})
        return anns, problems

    by_cat: "OrderedDict[int, dict]" = OrderedDict()
    for cr in img.rows:
        r = cr.row
        try:
            seg = read_mask(r.vessel_mask_actual_path)
        except MaskError as e:
            fail(cr, "vessel_mask_actual_path", str(e))
            continue
        if seg.shape != shape:
            fail(cr, "vessel_mask_actual_path", f"mask has shape {seg.shape}, the frame {shape}")
            continue
        unusable = _unusable_mask(seg, f"mask '{r.raw.get('vessel_mask_actual_path')}'")
        if unusable:
            fail(cr, "vessel_mask_actual_path", unusable)
            continue
        meta = {
            "cass_segment": r.cass_segment,
            "cass_segment_original": r.cass_segment_original,
            "vessel_pattern": r.vessel_pattern,
            "vessel_name": r.vessel_name,
            "stenosis_pct": r.stenosis_pct,
            "mld_mm": r.mld_mm,
            "reference_diameter_mm": r.reference_diameter_mm,
        }
        if task == "cass":
            entry = by_cat.get(r.cass_segment)
            if entry is None:
                by_cat[r.cass_segment] = {"mask": seg, "source_rows": [r.row], "meta": meta}
            else:  # two rows of one segment in one frame (tandem lesions): one instance
                entry["mask"] = entry["mask"] | seg
                entry["source_rows"].append(r.row)
        else:
            try:
                region = _stenosis_mask(cr, seg)
            except DataLayoutError as e:
                fail(cr, "contours_path", str(e))
                continue
            if region is not None:
                anns.append({"category_id": 1, **rle_from_mask(region), "iscrowd": 0,
                             "source_rows": [r.row], **meta})
    for cat, entry in by_cat.items():
        anns.append({"category_id": int(cat), **rle_from_mask(entry["mask"]), "iscrowd": 0,
                     "source_rows": entry["source_rows"], **entry["meta"]})
    return anns, problems


def _image_record(img: _Image, image_id: int, file_name: str, shape: Tuple[int, int]) -> dict:
    first = img.rows[0]
    r = first.row
    return {
        "id": image_id,
        "file_name": file_name,
        "height": int(shape[0]),
        "width": int(shape[1]),
        "view_angles": first.view_angles,  # {"primary": deg LAO+, "secondary": deg CRA+} or None
        "angles_source": first.angles_source,  # contours | dicom | unknown
        "patient_id": r.patient_id,
        "phase": r.phase,
        "vessel_name": r.vessel_name,
        "vessel_names": [c.row.vessel_name for c in img.rows],
        "cass_segment": r.cass_segment,
        "cass_segments": [c.row.cass_segment for c in img.rows],
        "source_rows": [c.row.row for c in img.rows],
        "cine_path": r.raw.get("cine_path"),
        "frame_index": int(r.frame_index),
        "split": r.split,
        "mm_per_pixel": first.mm_per_pixel,
        "spacing_source": first.spacing_source,  # csv | contours | dicom:<rule> | unknown
    }


class _FrameReader:
    """The images' frames, each read once. A video cine is decoded front to back, so all the frames its
    rows need are taken in one pass and held until their image is written; other kinds are read one
    frame at a time."""

    def __init__(self, images: List[_Image]):
        self._wanted: Dict[str, List[int]] = {}
        for img in images:
            self._wanted.setdefault(img.key[0], []).append(img.key[1])
        self._held: Dict[Tuple[str, int], np.ndarray] = {}

    def __call__(self, img: _Image) -> np.ndarray:
        cine = img.rows[0].cine
        if img.key not in self._held:
            todo = sorted(set(self._wanted[img.key[0]])) if cine.kind == "video" else [img.key[1]]
            for k, frame in cine.frames(todo):
                self._held[(img.key[0], k)] = frame
        self._wanted[img.key[0]].remove(img.key[1])
        return self._held.pop(img.key)


def _write_skip_report(out: Path, csv_path: Path, task: str, n_rows: int, problems: List[RowProblem]) -> Path:
    import json

    by_row: "OrderedDict[int, dict]" = OrderedDict()
    for p in sorted(problems, key=lambda p: (p.row, p.column)):
        e = by_row.setdefault(p.row, {"row": p.row, "line": p.line, "patient_id": p.patient_id, "problems": []})
        item = {"column": p.column, "reason": p.message}
        if item not in e["problems"]:
            e["problems"].append(item)
    report = {"csv": str(csv_path), "task": task, "n_rows": n_rows, "n_skipped_rows": len(by_row),
              "skipped": list(by_row.values())}
    with open(out / f"{SKIP_REPORT}.json", "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    lines = [f"{len(by_row)} of {n_rows} rows of {csv_path.name} skipped (task {task}):"]
    for e in by_row.values():
        for item in e["problems"]:
            where = f", column '{item['column']}'" if item["column"] else ""
            lines.append(f"row {e['row']} (line {e['line']}){where}: {item['reason']}")
    (out / f"{SKIP_REPORT}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out / f"{SKIP_REPORT}.json"


def convert_csv_to_coco(
    csv_path: PathLike,
    out_dir: PathLike,
    task: str,
    *,
    skip_bad_rows: bool = False,
    class_ids: Optional[Sequence[int]] = None,
    require_view_angles: bool = True,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Convert the study CSV at ``csv_path`` into ``out_dir/<split>/{annotations.json, images/}``.

    Returns ``{"out_dir", "task", "splits": {split: {"json", "images", "n_images", "n_annotations"}},
    "n_rows", "skipped_rows": [row numbers], "skip_report": path or None, "seconds"}``.
    Raises :class:`~sam3_angio.data.layout.RowError` at the first bad row unless ``skip_bad_rows``.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    csv_path = Path(csv_path)
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    ids = _class_ids(class_ids) if task == "cass" else None
    good, problems = validate_csv(csv_path, task, ids, require_view_angles)
    n_rows = len(good) + len({p.row for p in problems})
    if problems and not skip_bad_rows:
        raise RowError(csv_path, problems, _SKIP_HINT)
    images, gproblems = _group(good)
    if gproblems and not skip_bad_rows:
        raise RowError(csv_path, gproblems, _SKIP_HINT)
    problems += gproblems
    if not images:
        raise RowError(csv_path, problems, _NOTHING_LEFT)
    categories = categories_for(task, ids)
    info = {
        "description": f"sam3_angio COCO export ({task}) of {csv_path.name}",
        "task": task,
        "source_csv": str(csv_path),
        "sam3_angio_version": __version__,
        "frame_scaling": "uint8 unchanged; float in [0,1] x255; else per-frame 0.5-99.5 percentile window",
    }
    if progress:
        print(f"  convert: {len(good)} rows -> {len(images)} images ({task}); writing {out_dir}", flush=True)

    result_splits: Dict[str, dict] = {}
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        per_split: Dict[str, Tuple[List[dict], List[dict]]] = {}
        used_names: Dict[str, set] = {}
        last_print = time.perf_counter()
        read_frame = _FrameReader(images)
        for n, img in enumerate(images, start=1):
            first = img.rows[0]
            try:
                frame = read_frame(img)
            except DataError as e:
                bad = [RowProblem(c.row.row, c.row.line, "cine_path", str(e), c.row.patient_id) for c in img.rows]
                if not skip_bad_rows:
                    raise RowError(csv_path, bad, _SKIP_HINT) from None
                problems += bad
                continue
            anns, aproblems = _annotations_for(img, task, frame.shape)
            if aproblems:
                if not skip_bad_rows:
                    raise RowError(csv_path, aproblems, _SKIP_HINT)
                problems += aproblems
                bad_rows = {p.row for p in aproblems}
                img.rows = [c for c in img.rows if c.row.row not in bad_rows]
                if not img.rows:
                    continue
            split = first.row.split
            images_out, anns_out = per_split.setdefault(split, ([], []))
            names = used_names.setdefault(split, set())
            name = f"{_safe_stem(first.row.raw.get('cine_path', 'cine'))}_f{first.row.frame_index:04d}.png"
            k = 2
            while name in names:
                name = f"{_safe_stem(first.row.raw.get('cine_path', 'cine'))}_{k}_f{first.row.frame_index:04d}.png"
                k += 1
            names.add(name)
            img_dir = tmp / split / IMAGES_DIR
            img_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(frame).save(img_dir / name, optimize=False)
            image_id = len(images_out) + 1
            images_out.append(_image_record(img, image_id, name, frame.shape))
            for a in anns:
                anns_out.append({"id": len(anns_out) + 1, "image_id": image_id, **a})
            if progress and time.perf_counter() - last_print > 5.0:
                last_print = time.perf_counter()
                print(f"  convert: {n}/{len(images)} images, {last_print - t0:.1f} s", flush=True)

        if not per_split:  # an output with no split would pass for a converted (empty) data set
            raise RowError(csv_path, problems, _NOTHING_LEFT)
        for split, (imgs, anns) in sorted(per_split.items()):
            path = write_split(tmp / split, imgs, anns, categories, {**info, "split": split})
            result_splits[split] = {
                "json": str(out_dir / split / path.name),
                "images": str(out_dir / split / IMAGES_DIR),
                "n_images": len(imgs),
                "n_annotations": len(anns),
            }
        report = None
        if skip_bad_rows:
            report = _write_skip_report(tmp, csv_path, task, n_rows, problems)
        write_manifest(tmp, {
            "kind": MANIFEST_KIND,
            "task": task,
            "source_csv": str(csv_path),
            "categories": categories,
            "splits": {s: {k: v for k, v in d.items() if k.startswith("n_")} for s, d in result_splits.items()},
            "n_rows": n_rows,
            "n_skipped_rows": len({p.row for p in problems}),
        })
    seconds = time.perf_counter() - t0
    skipped = sorted({p.row for p in problems})
    if progress:
        counts = ", ".join(f"{s}: {d['n_images']} images / {d['n_annotations']} annotations" for s, d in result_splits.items())
        print(f"  convert: done in {seconds:.1f} s -> {out_dir} ({counts})", flush=True)
        if skip_bad_rows:
            print(f"  convert: skipped {len(skipped)} of {n_rows} rows; report: {out_dir / (SKIP_REPORT + '.txt')}", flush=True)
    return {
        "out_dir": str(out_dir),
        "task": task,
        "splits": result_splits,
        "n_rows": n_rows,
        "skipped_rows": skipped,
        "skip_report": str(out_dir / f"{SKIP_REPORT}.json") if report else None,
        "seconds": seconds,
    }
