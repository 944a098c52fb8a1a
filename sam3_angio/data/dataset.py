"""SAM3's COCO dataset and collate, carrying each frame's C-arm view angles to the batch as typed fields.

One sample: COCO image record (``view_angles: {primary, secondary}`` in degrees or null) -> SAM3
``Datapoint`` -> ``AngioDatapoint`` (+ ``view``: ViewAngles or None) -> ``collate_fn_angio`` ->
``AngioBatchedDatapoint`` (+ ``views``: ViewBatch, angles (B_img, 2), known (B_img,)).

An annotation's measured values (``stenosis_pct``, ``mld_mm``, ``reference_diameter_mm``: what the
synthetic generator records and tools/convert_to_coco.py copies) ride on its object
(``AngioObject.qca``, NaN where absent) to the batch's ``qca_targets`` (N_targets, 3), in the order of
``find_targets[0].boxes`` - what the regression heads learn from.
Angles: primary LAO+ / RAO-, secondary CRA+ / CAU- (``sam3_angio.view_angles``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields
from typing import Any, Dict, List, Optional, Tuple

import torch

from sam3.model.data_misc import BatchedDatapoint
from sam3.train.data.coco_json_loaders import COCO_FROM_JSON
from sam3.train.data.collator import collate_fn_api
from sam3.train.data.sam3_image_dataset import Datapoint, Object, Sam3ImageDataset

from sam3_angio.errors import ConfigError, DataError, UserError
from sam3_angio.registry import DATASETS
from sam3_angio.view_angles import ViewAngles, ViewBatch, parse_view_angles


QCA_KEYS: Tuple[str, ...] = ("stenosis_pct", "mld_mm", "reference_diameter_mm")  # the order of qca targets
NAN3 = (math.nan, math.nan, math.nan)


def qca_values(ann: Dict[str, Any]) -> Tuple[float, float, float]:
    """An annotation's (stenosis_pct, mld_mm, reference_diameter_mm), NaN for each one absent, null,
    empty or not a finite number."""
    out = []
    for key in QCA_KEYS:
        v = ann.get(key)
        try:
            f = float(v) if v not in (None, "") else math.nan
        except (TypeError, ValueError):
            f = math.nan
        out.append(f if math.isfinite(f) else math.nan)
    return tuple(out)


@dataclass
class AngioObject(Object):
    """SAM3's Object plus the annotation's measured values (``QCA_KEYS`` order, NaN = not measured).
    SAM3's transforms keep or drop objects but never rebuild them, so the field survives them."""

    qca: Tuple[float, float, float] = NAN3


@dataclass
class AngioDatapoint(Datapoint):
    """SAM3's Datapoint plus the frame's view angles (``None`` = unknown). SAM3's transforms edit a
    Datapoint in place, so the subclass and its field survive the whole pipeline."""

    view: Optional[ViewAngles] = None

    @classmethod
    def from_datapoint(cls, dp: Datapoint, view: Optional[ViewAngles]) -> "AngioDatapoint":
        return cls(**{f.name: getattr(dp, f.name) for f in fields(Datapoint)}, view=view)


@DATASETS.register()
class AngioCocoLoader(COCO_FROM_JSON):
    """SAM3's COCO_FROM_JSON (one text query per category per image) that also hands each image's
    view angles and metadata to the dataset.

    ``labels_exhaustive=False`` is for study data where a frame's CSV rows label only some of the
    visible segments: every query is then marked non-exhaustive, and SAM3's ``weak_loss`` drops the
    negative loss there, so an unlabelled but visible segment is not taught as "absent". An image
    record's own ``labels_exhaustive`` key, when present, wins.

    ``vessel_group`` (``data.vessel_group``, with the table ``vessel_groups``): keep only the annotations
    of that group's vessels and the frames left with one (``sam3_angio/data/vessel_groups.py``).
    """

    def __init__(self, annotation_file, labels_exhaustive: bool = True, vessel_group: Optional[str] = None,
                 vessel_groups: Optional[Dict[str, List[str]]] = None, **kwargs):
        super().__init__(annotation_file, **kwargs)
        self.labels_exhaustive = bool(labels_exhaustive)
        self.vessel_group = vessel_group or None
        if self.vessel_group:
            from sam3_angio.data.vessel_groups import filter_grouped

            before = len(self._raw_data)
            self._raw_data = filter_grouped(self._raw_data, self.vessel_group, vessel_groups, str(annotation_file))
            logging.info("%s: vessel group %r keeps %d of %d frames", annotation_file, self.vessel_group,
                         len(self._raw_data), before)

    def loadQueriesAndAnnotationsFromDatapoint(self, idx):
        queries, annotations = super().loadQueriesAndAnnotationsFromDatapoint(idx)
        raw = self._raw_data[idx // len(self.category_chunks)]
        record = raw["image"]
        exhaustive = bool(record.get("labels_exhaustive", self.labels_exhaustive))
        for q in queries:
            q["is_exhaustive"] = exhaustive
        # SAM3's loader keeps only the geometry; it lists a chunk's annotations category by category,
        # each category's in file order - the same walk pairs each with its raw record.
        by_cat: Dict[Any, List[dict]] = {}
        for ann in raw["annotations"]:
            by_cat.setdefault(ann["category_id"], []).append(ann)
        ordered = [ann for cat in self.category_chunks[idx % len(self.category_chunks)] for ann in by_cat.get(cat, [])]
        if len(ordered) == len(annotations):
            for ann, src in zip(annotations, ordered):
                ann["qca"] = qca_values(src)
        return queries, annotations

    def loadImagesFromDatapoint(self, idx):
        images = super().loadImagesFromDatapoint(idx)
        record = self._raw_data[idx // len(self.category_chunks)]["image"]
        for key in ("view_angles", "patient_id", "phase", "vessel_name"):
            if key in record:
                images[0][key] = record[key]
        return images


class ImageLoadError(UserError):
    """A training/validation frame that cannot be read (deliberately not an OSError/ValueError)."""


@DATASETS.register()
class AngioImageDataset(Sam3ImageDataset):
    """Sam3ImageDataset over our COCO export whose Datapoints carry the frame's view angles
    (``AngioDatapoint.view``). ``require_view_angles=True`` makes a frame without angles an error.
    ``vessel_group`` / ``vessel_groups``: train or validate on one vessel group (``AngioCocoLoader``)."""

    def __init__(self, *args, require_view_angles: bool = False, labels_exhaustive: bool = True,
                 vessel_group: Optional[str] = None, vessel_groups: Optional[Dict[str, List[str]]] = None,
                 coco_json_loader=None, **kwargs):
        import functools

        if coco_json_loader is None:
            from sam3_angio.data.vessel_groups import as_groups

            coco_json_loader = functools.partial(AngioCocoLoader, include_negatives=True,
                                                 labels_exhaustive=labels_exhaustive, vessel_group=vessel_group,
                                                 vessel_groups=as_groups(vessel_groups))
        self.require_view_angles = require_view_angles
        self._check_split(kwargs.get("ann_file", args[1] if len(args) > 1 else None),
                          kwargs.get("img_folder", args[0] if args else None))
        import contextlib
        import io
        import logging

        said = io.StringIO()
        with contextlib.redirect_stdout(said):  # SAM3 prints an unlabelled "Raw dataset length = N"
            super().__init__(*args, coco_json_loader=coco_json_loader, **kwargs)
        logging.info("dataset %s: %s", self.annFile, said.getvalue().strip().replace("\n", "; "))
        self._check_angles()

    @staticmethod
    def _check_split(ann_file, img_folder) -> None:
        # One rule with tools/eval.py: an annotation of an unknown image, or a missing frame, stops the run
        # here (naming it) instead of being dropped or replaced by another sample mid-epoch.
        if ann_file is None or not str(ann_file).endswith(".json"):
            return
        from .coco_check import check_coco_split

        check_coco_split(str(ann_file), str(img_folder) if img_folder else None)

    def _load_images(self, datapoint_id, img_ids_to_load=None):
        # SAM3 retries a failing sample 100 times on other samples (a traceback each): an unreadable
        # frame is the user's to fix, so it is one error naming the file (not an OSError/ValueError,
        # which SAM3's retry loop would swallow).
        try:
            return super()._load_images(datapoint_id, img_ids_to_load)
        except (OSError, ValueError) as e:
            names = [m.get("file_name") for m in self.coco.loadImagesFromDatapoint(datapoint_id)]
            raise ImageLoadError(
                f"{self.annFile}: image {', '.join(map(str, names))} in {self.root} cannot be read "
                f"({type(e).__name__}: {e}); replace the file or remove its record"
            ) from None

    def _check_angles(self) -> None:
        # Fail at start-up, naming the image, rather than mid-epoch.
        raw = getattr(self.coco, "_raw_data", None)
        if raw is None:
            return
        for entry in raw:
            rec = entry["image"]
            where = f"{self.annFile}: image id {rec.get('id')} ({rec.get('file_name')})"
            angles = parse_view_angles(rec.get("view_angles"), where)
            if angles is None and self.require_view_angles:
                raise DataError(
                    f"{where} has no view_angles (expected degrees, LAO/CRA positive); pass "
                    f"data.require_view_angles=false to train without view conditioning"
                )

    def load_queries(self, pil_images, annotations, queries, img_metadata):
        datapoint = super().load_queries(pil_images, annotations, queries, img_metadata)
        # SAM3 appends one Object per annotation to its image, in order: the same walk pairs them.
        ids = [pil[0] for pil in pil_images]
        for i, image in enumerate(datapoint.images):
            anns = [a for a in annotations if a["image_id"] == ids[i]]
            if len(anns) == len(image.objects):
                image.objects = [AngioObject(**{f.name: getattr(o, f.name) for f in fields(Object)},
                                             qca=tuple(a.get("qca", NAN3))) for o, a in zip(image.objects, anns)]
        meta = img_metadata[0] if img_metadata else {}
        view = parse_view_angles(meta.get("view_angles"), f"{self.annFile}: image {meta.get('original_img_id')}")
        return AngioDatapoint.from_datapoint(datapoint, view)


@dataclass
class AngioBatchedDatapoint(BatchedDatapoint):
    """SAM3's BatchedDatapoint plus the view angles of its frames. A dataclass field (not an ad-hoc
    attribute), so it survives SAM3's ``copy_data_to_device``."""

    views: Optional[ViewBatch] = None  # angles (B_img, 2) degrees, known (B_img,)
    qca_targets: Optional[torch.Tensor] = None  # (N_targets, 3) QCA_KEYS, NaN = not measured


def collate_fn_angio(batch: List[Any], dict_key: str, accumulate: int = 1, **kwargs):
    """SAM3's ``collate_fn_api`` + the frames' view angles. Every item must be an ``AngioDatapoint``
    (our dataset makes them): a plain SAM3 Datapoint carries no angles, and silently calling its frame
    "unknown view" would train a view-conditioned model without its views.

    ``accumulate`` > 1 (``trainer.gradient_accumulation_steps``): the loader's batch holds that many
    micro-batches; they come back as a list of collated batches, which is what SAM3's trainer
    accumulates gradients over (one optimiser step per list)."""
    accumulate = int(accumulate)
    if accumulate > 1:
        if len(batch) % accumulate:
            raise ConfigError(
                f"collate_fn_angio: a batch of {len(batch)} frames does not split into "
                f"gradient_accumulation_steps={accumulate} equal micro-batches; keep drop_last=true and "
                f"batch_size = scratch.train_batch_size x gradient_accumulation_steps")
        n = len(batch) // accumulate
        return [collate_fn_angio(batch[i:i + n], dict_key, **kwargs) for i in range(0, len(batch), n)]
    views: List[Optional[ViewAngles]] = []
    for i, dp in enumerate(batch):
        if not isinstance(dp, AngioDatapoint):
            raise ConfigError(
                f"collate_fn_angio: batch item {i} is a {type(dp).__name__}, not an AngioDatapoint, so it "
                f"carries no view angles; use sam3_angio.data.dataset.AngioImageDataset as the dataset "
                f"(or SAM3's own collate_fn_api for a model without view conditioning)"
            )
        views += [dp.view] * len(dp.images)
    out = collate_fn_api(batch, dict_key, **kwargs)
    base = out[dict_key]
    out[dict_key] = AngioBatchedDatapoint(
        **{f.name: getattr(base, f.name) for f in fields(BatchedDatapoint)}, views=ViewBatch.of(views),
        qca_targets=qca_targets(batch),
    )
    return out


def qca_targets(batch: List[Any]) -> torch.Tensor:
    """(N_targets, 3) measured values of the first stage's target objects, in the order SAM3's collate
    lists them (datapoint by datapoint, query by query, the query's objects in order); NaN rows for
    objects without values (ARCADE, a plain SAM3 Object)."""
    rows: List[Tuple[float, float, float]] = []
    for dp in batch:
        for q in dp.find_queries:
            if q.query_processing_order != 0:
                continue
            for oid in q.object_ids_output:
                rows.append(tuple(getattr(dp.images[q.image_id].objects[oid], "qca", NAN3)))
    return torch.tensor(rows, dtype=torch.float32).view(-1, 3)


DATASETS.register(collate_fn_angio)
