"""The Predictor: a trained run (config + checkpoint) that turns frames into named segments.

    predictor = Predictor.from_checkpoint("experiments/cass/checkpoints/checkpoint.pt")
    segments = predictor(frame, angles=(-30, 25))        # frame (H, W) uint8; LAO+/CRA+ degrees
    # -> [{"cass_name": "mid LAD", "score": 0.83, "segmentation": RLE, "bbox": [x, y, w, h], ...}, ...]
    fixed = predictor.correct(frame, [(120, 88, True), (140, 60, False)], "mid LAD", angles=(-30, 25))
    # -> the segment's corrected instance (+ "mask" (H, W) bool, "clicks"); needs a model trained with
    #    training.modes including proofread (docs/training_modes.md)

``tools/predict.py``, ``tools/eval.py`` (model mode) and validation during training all name segments
through ``predict_instances``; the first two also share this class, so the same frame gives the same
answer whichever tool ran it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from sam3_angio import cpu_compat
from sam3_angio.data.coco_io import categories_for
from sam3_angio.errors import ConfigError
from sam3_angio.inference.frames import collate_frames, frame_datapoint
from sam3_angio.inference.naming import check_rule
from sam3_angio.inference.postprocess import predict_instances
from sam3_angio.model.checkpoint import CheckpointError, load_into, read_checkpoint, strip_prefixes
from sam3_angio.model.lora import has_lora, merge_lora
from sam3_angio.view_angles import ViewAngles, parse_view_angles

log = logging.getLogger(__name__)

AnglesLike = Union[None, ViewAngles, Tuple[float, float], Mapping[str, float]]
RUN_CONFIG = "config_resolved.yaml"  # what tools/train.py writes into every experiment folder


def as_view(angles: AnglesLike, where: str = "angles") -> Optional[ViewAngles]:
    """ViewAngles | (primary, secondary) | {"primary", "secondary"} | None -> ViewAngles or None."""
    if angles is None or isinstance(angles, ViewAngles):
        return angles
    if isinstance(angles, (tuple, list)) and len(angles) == 2:
        angles = {"primary": angles[0], "secondary": angles[1]}
    return parse_view_angles(angles, where)


def run_config_for(checkpoint: str) -> Optional[str]:
    """The resolved config tools/train.py saved beside a run's checkpoints, if there is one."""
    exp = Path(checkpoint).resolve().parent.parent
    path = exp / RUN_CONFIG
    return str(path) if path.is_file() else None


@dataclass
class PredictorInfo:
    """What a prediction file records about the model that made it."""

    task: str
    model: str
    checkpoint: Optional[str]
    config: Optional[str]
    naming: str
    view_conditioned: bool
    categories: List[Tuple[int, str]]

    def to_dict(self) -> dict:
        return {"task": self.task, "model": self.model, "checkpoint": self.checkpoint, "config": self.config,
                "naming": self.naming, "view_conditioned": self.view_conditioned,
                "categories": [{"id": i, "name": n} for i, n in self.categories]}


class Predictor:
    """A model of a trained run, ready to name segments in frames (see the module docstring)."""

    def __init__(self, model: torch.nn.Module, cfg: DictConfig, naming: str = "fused",
                 device: Union[str, torch.device] = "cpu", checkpoint: Optional[str] = None,
                 max_dets: int = 100, batch_size: int = 2):
        self.model = model.to(device).eval()
        self.cfg = cfg
        self.device = torch.device(device)
        self.naming = check_rule(naming)
        self.max_dets = int(max_dets)
        self.batch_size = max(1, int(batch_size))
        class_ids = OmegaConf.select(cfg, "model.class_ids")
        cats = categories_for(cfg.data.task, list(class_ids) if class_ids is not None else None)
        self.categories: List[Tuple[int, str]] = [(c["id"], c["name"]) for c in cats]
        self.category_names: Dict[int, str] = dict(self.categories)
        self.transforms = instantiate(cfg.scratch.val_transforms)
        self.with_masks = bool(OmegaConf.select(cfg, "model.enable_segmentation"))
        self.info = PredictorInfo(
            task=str(cfg.data.task), model=str(cfg.model.resolved), checkpoint=checkpoint,
            config=OmegaConf.select(cfg, "config_source"), naming=self.naming,
            view_conditioned=bool(getattr(model, "view_conditioning", False)), categories=self.categories,
        )

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_checkpoint(cls, checkpoint: str, config: Optional[str] = None, overrides: Sequence[str] = (),
                        device: Optional[str] = None, naming: Optional[str] = None,
                        before_build: Optional[Callable[[DictConfig], None]] = None, **kwargs) -> "Predictor":
        """Build the run's model and load ``checkpoint`` (a trainer ``checkpoint.pt`` or a bare state
        dict). ``config``: a config path or name; default the ``config_resolved.yaml`` tools/train.py
        saved in the run's folder. A checkpoint of another task or model is an error. ``before_build``
        is called with the resolved config before the model is built (the slow part: tools/eval.py
        checks the split's ground truth and its output folder there)."""
        sd, meta = read_checkpoint(checkpoint)
        config = config or run_config_for(checkpoint)
        if config is None:
            raise ConfigError(
                f"no config for checkpoint {checkpoint}: its run folder has no {RUN_CONFIG}; pass -c CONFIG "
                f"(e.g. configs/angiography/cass.yaml) with the overrides the run was trained with")
        cfg, model = build_run_model(config, overrides, meta, checkpoint, before_build)
        report = load_into(model, strip_prefixes(sd, ("module.",)), checkpoint)
        if report.missing:  # one line (the CLI error contract); the full load report goes to the log
            log.info(report.summary())
            modules = ", ".join(f"{g}: {n}" for g, n in report.by_group(report.missing, depth=1).items())
            raise CheckpointError(
                f"checkpoint {checkpoint} lacks {len(report.missing)} of the {cfg.data.task} model's tensors "
                f"({modules}; {len(report.loaded)} loaded): it was trained for another task or model; "
                f"pass the config it was trained with (-c)")
        log.info(report.summary())
        if has_lora(model):  # a LoRA run: fold the adapters into the base weights (same outputs, plain SAM3)
            merge_lora(model)
        device, naming = run_defaults(cfg, device, naming)
        return cls(model, cfg, naming=naming, device=device, checkpoint=os.path.abspath(checkpoint), **kwargs)

    # ------------------------------------------------------------------ prediction

    def __call__(self, frame: np.ndarray, angles: AnglesLike = None, image_id: int = 0) -> List[dict]:
        """Named segments of one frame (H, W) uint8 (or (H, W, 3)), best first."""
        return self.predict([frame], [angles], [image_id])[0]

    @torch.no_grad()
    def predict(self, frames: Sequence[np.ndarray], angles: Optional[Sequence[AnglesLike]] = None,
                image_ids: Optional[Sequence[int]] = None,
                categories: Optional[Sequence[Tuple[int, str]]] = None) -> List[List[dict]]:
        """Named segments of each frame, in batches of ``batch_size``. ``categories`` (id, name): the text
        queries to ask (default: every category of the run's task; an evaluation asks those of its
        ground truth, as validation does)."""
        categories = list(categories) if categories is not None else self.categories
        names = {**self.category_names, **dict(categories)}
        n = len(frames)
        angles = list(angles) if angles is not None else [None] * n
        image_ids = list(image_ids) if image_ids is not None else list(range(n))
        if not (len(angles) == len(image_ids) == n):
            raise ValueError("frames, angles and image_ids must have the same length")
        results: List[List[dict]] = []
        for start in range(0, n, self.batch_size):
            stop = min(n, start + self.batch_size)
            dps = [frame_datapoint(frames[i], as_view(angles[i]), categories, image_ids[i], where=f"frame {image_ids[i]}")
                   for i in range(start, stop)]
            batch = collate_frames(dps, self.transforms, self.with_masks)
            by_image = self.predict_batch(batch, names)
            results += [by_image.get(int(image_ids[i]), []) for i in range(start, stop)]
        return results

    def segment_category(self, segment: Union[str, int]) -> Tuple[int, str]:
        """A segment named by its CASS name (case-insensitive) or category id -> (id, name) of the run."""
        for cid, name in self.categories:
            if str(segment).strip().lower() in (name.lower(), str(cid)):
                return cid, name
        raise ConfigError(f"--segment {segment!r}: not a category of this {self.info.task} run; expected one of "
                          f"{', '.join(n for _, n in self.categories)}")

    @torch.no_grad()
    def correct(self, frame: np.ndarray, clicks: Sequence[Click], segment: Union[str, int],
                angles: AnglesLike = None, image_id: int = 0, max_dets: int = 20) -> Optional[dict]:
        """Click-to-correct one segment: ``clicks`` [(x, y, positive)] in frame pixels on the segment
        ``segment`` (CASS name or id). Runs the proofread pass (the clicks through the prompt encoder)
        with that segment's text query and returns its corrected instance (a ``predict`` record plus
        ``mask`` (H, W) bool, ``clicks`` and ``corrected: true``), or None when it finds nothing."""
        from pycocotools import mask as mask_utils
        from sam3.model.utils.misc import copy_data_to_device

        from sam3_angio.model.prompt_encoder import Clicks

        model = getattr(self.model, "module", self.model)
        if getattr(model, "prompt_encoder", None) is None:
            raise ConfigError("this run's model takes no clicks: it was trained with training.modes=[automatic]; "
                              "train with training.modes=[automatic,proofread] (docs/training_modes.md)")
        cat_id, name = self.segment_category(segment)
        img = np.asarray(frame)
        h, w = img.shape[:2]
        clicks = [(float(x), float(y), bool(pos)) for x, y, pos in clicks]
        if not clicks or not any(pos for _, _, pos in clicks):
            raise ConfigError(f"--click: segment {name!r} needs at least one positive click (x,y)")
        for x, y, _ in clicks:
            if not (0 <= x < w and 0 <= y < h):
                raise ConfigError(f"--click {x:g},{y:g}: outside the {w}x{h} frame (x in 0..{w - 1}, y in 0..{h - 1})")
        dp = frame_datapoint(img, as_view(angles), [(cat_id, name)], image_id, where=f"frame {image_id}")
        batch = copy_data_to_device(collate_frames([dp], self.transforms, self.with_masks), self.device)
        target = int(model.class_index(torch.tensor([cat_id]))[0])
        prompt = Clicks.of([[((x + 0.5) / w, (y + 0.5) / h, pos) for x, y, pos in clicks]], [target])
        outputs = self.model(batch, clicks=prompt.to(self.device))
        last = outputs.output[-1][-1]
        records = predict_instances(last, batch.find_inputs[0], batch.find_metadatas[0], {cat_id: name},
                                    model=model, rule="query", max_dets=max_dets).get(int(image_id), [])
        records = [r for r in records if "segmentation" in r]
        masks = {id(r): mask_utils.decode({"size": r["segmentation"]["size"],
                                           "counts": r["segmentation"]["counts"].encode("ascii")}).astype(bool)
                 for r in records}
        best = click_to_correct_instance(records, lambda r: masks[id(r)], clicks)
        if best is None:
            return None
        return {**best, "mask": masks[id(best)], "corrected": True,
                "clicks": [{"x": x, "y": y, "positive": pos} for x, y, pos in clicks]}

    def predict_batch(self, batch, names: Optional[Mapping[int, str]] = None) -> Dict[int, List[dict]]:
        """A collated batch (our collate) -> {image_id: instances}."""
        from sam3.model.utils.misc import copy_data_to_device

        batch = copy_data_to_device(batch, self.device)
        outputs = self.model(batch)
        last = outputs.output[-1][-1] if hasattr(outputs, "output") else outputs[-1][-1]
        return predict_instances(last, batch.find_inputs[0], batch.find_metadatas[0], names or self.category_names,
                                 model=self.model, rule=self.naming, max_dets=self.max_dets)


Click = Tuple[float, float, bool]  # (x, y) frame pixels, positive?


def click_to_correct_instance(records: Sequence[dict], mask_of, clicks: Sequence[Click]) -> Optional[dict]:
    """The instance a person's clicks point at: the most positive clicks inside minus negative clicks
    inside, then the best score. ``mask_of(record)`` -> (H, W) bool."""
    best, best_key = None, None
    for rec in records:
        m = mask_of(rec)
        h, w = m.shape
        hits = 0
        for x, y, pos in clicks:
            xi, yi = min(w - 1, max(0, int(x))), min(h - 1, max(0, int(y)))
            if m[yi, xi]:
                hits += 1 if pos else -1
        key = (hits, rec["score"])
        if best_key is None or key > best_key:
            best, best_key = rec, key
    return best


def run_defaults(cfg: DictConfig, device: Optional[str], naming: Optional[str]) -> Tuple[str, str]:
    """The device (cuda when there is one and the run trained on it) and naming rule (the run's
    ``inference.naming``) a Predictor of ``cfg`` uses unless given."""
    device = device or ("cuda" if torch.cuda.is_available() and cfg.trainer.accelerator == "cuda" else "cpu")
    return device, naming or OmegaConf.select(cfg, "inference.naming") or "fused"


def build_run_model(config: str, overrides: Sequence[str], meta: Mapping[str, Any], checkpoint: str,
                    before_build: Optional[Callable[[DictConfig], None]] = None
                    ) -> Tuple[DictConfig, torch.nn.Module]:
    """The resolved config and the (randomly initialised) model of a run, for weights loaded next:
    ``meta`` (a checkpoint's or adapter's ``angio`` info) names the SAM3 size and must agree with the
    config's task and classes (``checkpoint``: the file it came from, for the error). ``before_build``
    sees the resolved config before the model is built."""
    from sam3_angio.config import compose, finalize, register_resolvers

    cpu_compat.apply()
    register_resolvers()
    pre = []
    if meta.get("model"):  # the checkpoint says which SAM3 it is; auto must not pick another
        pre.append(f"model.name={meta['model']}")
    cfg = finalize(compose(config, [*pre, *overrides]))
    _check_task(cfg, meta, checkpoint)
    with open_dict(cfg):
        cfg.trainer.model.checkpoint_path = None  # the trained checkpoint below holds every weight
        cfg.trainer.model.allow_random_init = True
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    if before_build is not None:
        before_build(cfg)
    return cfg, instantiate(cfg.trainer.model, _convert_="all")


def _check_task(cfg: DictConfig, meta: Mapping[str, Any], checkpoint: str) -> None:
    """A checkpoint written by our trainer says its task and classes: they must be the config's."""
    task = meta.get("task")
    if task and task != cfg.data.task:
        raise CheckpointError(
            f"checkpoint {checkpoint} was trained for the {task!r} task, but the config is for "
            f"{cfg.data.task!r}: pass the config of that run (e.g. -c configs/angiography/"
            f"{'vessel_segmentation' if task == 'vessel' else task}.yaml)")
    size = meta.get("model")
    if size and size != OmegaConf.select(cfg, "model.resolved"):  # before the other size's model is built
        raise CheckpointError(
            f"checkpoint {checkpoint} holds {size} weights, but the config builds {cfg.model.resolved} "
            f"(model.name): drop that override, or pass model.name={size}")
    want = OmegaConf.select(cfg, "model.class_ids")
    have = meta.get("class_ids")
    if have and want is not None and list(have) != list(want):
        raise CheckpointError(f"checkpoint {checkpoint} names CASS classes {list(have)}, the config {list(want)}: "
                              f"pass model.class_ids={list(have)}")
