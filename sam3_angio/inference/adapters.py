"""Vessel-specific adapters at inference (``tools/predict.py --adapters DIR``): one LoRA adapter per vessel
group on one base checkpoint, and the rule that picks a frame's adapter.

Layout of ``DIR``: one folder per group, named as the group (``data.vessel_group`` of its run), holding
``adapter.pt`` either directly or in ``checkpoints/`` - so a training run's folder is one::

    DIR/rca/adapter.pt                    or  DIR/rca/checkpoints/adapter.pt  (+ DIR/rca/config_resolved.yaml)
    DIR/left/adapter.pt                   or  DIR/left/checkpoints/adapter.pt

The model is built from ``-c CONFIG`` or else the ``config_resolved.yaml`` of the first group's run
(beside ``adapter.pt`` or one folder up) and given the SAM3 weights of the base ``--checkpoint`` (the
``sam3.pt`` or phase 1 checkpoint the adapters were trained on: their recorded base fingerprint and LoRA
options must match); each adapter is merged into its own copy of it.

The rule (``images[].adapter`` in predictions.json says which one chose): the frame's vessel when it is
known (``--vessel GROUP``) picks that group's adapter; otherwise every adapter predicts the frame and
the one whose segments at or above ``--score-thr`` have the higher total score wins (ties: the higher
total of all its scores, then the group name). Each adapter was trained only on its group's segments,
so on a frame of the other side it finds fewer segments, with lower scores. A first pass of the base
naming the segments was not chosen: the base of a phase 2 adapter is usually the phase 1 model, which
predicts one category ("coronary artery") and no CASS names.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch

from sam3_angio.errors import UserError
from sam3_angio.inference.predictor import (RUN_CONFIG, AnglesLike, Predictor, PredictorInfo, build_run_model,
                                            run_defaults)
from sam3_angio.model.adapters import OWN_HEADS, load_adapter, read_adapter_info
from sam3_angio.model.checkpoint import CheckpointError, load_into, read_checkpoint, sam3_image_keys, strip_prefixes
from sam3_angio.model.lora import LORA_KEY, merge_lora

log = logging.getLogger(__name__)

ADAPTER_FILE = "adapter.pt"
RULE_GIVEN = "--vessel"
RULE_SCORE = "higher total score"


class AdapterError(UserError):
    """An adapters folder that cannot be used (missing, empty, a group that does not match)."""


def find_adapters(folder: str) -> Dict[str, str]:
    """``{group: path of its adapter.pt}`` of an adapters folder (layout in the module docstring)."""
    root = Path(folder)
    if root.is_file():
        raise AdapterError(f"--adapters {folder}: is a file; --adapters takes the folder that holds one "
                           f"<group>/adapter.pt per vessel group (DIR/rca/adapter.pt, DIR/left/adapter.pt; "
                           f"docs/finetuning.md); for one LoRA run on every frame give its checkpoint.pt as "
                           f"--checkpoint")
    if not root.is_dir():
        raise AdapterError(f"--adapters {folder}: no such folder; expected DIR/<group>/adapter.pt (e.g. DIR/rca/, "
                           f"DIR/left/), one folder per vessel group (docs/finetuning.md)")
    found: Dict[str, str] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for cand in (sub / ADAPTER_FILE, sub / "checkpoints" / ADAPTER_FILE):
            if cand.is_file():
                found[sub.name] = str(cand)
                break
    if not found:
        raise AdapterError(f"--adapters {folder}: no <group>/{ADAPTER_FILE} or <group>/checkpoints/{ADAPTER_FILE} "
                           f"in it; a LoRA run trained with data.vessel_group=GROUP writes one (docs/finetuning.md)")
    return found


def adapter_config_for(path: str) -> Optional[str]:
    """The config_resolved.yaml of the run that wrote an adapter (beside it or one folder up)."""
    here = Path(path).resolve().parent
    for cand in (here / RUN_CONFIG, here.parent / RUN_CONFIG):
        if cand.is_file():
            return str(cand)
    return None


def total_score(instances: Sequence[dict], score_thr: float) -> float:
    return float(sum(r["score"] for r in instances if r["score"] >= score_thr))


def choose(results: Mapping[str, List[dict]], score_thr: float) -> str:
    """The group whose instances of one frame have the higher total score at or above ``score_thr``;
    ties: the higher total of all scores, then the first group name."""
    best, best_key = None, None
    for g in sorted(results):  # strictly higher wins, so a tie keeps the first name
        key = (total_score(results[g], score_thr), total_score(results[g], float("-inf")))
        if best_key is None or key > best_key:
            best, best_key = g, key
    return best


def load_base(model: torch.nn.Module, checkpoint: str) -> None:
    """The base's SAM3 weights into ``model.detector`` as phase 2 loads phase 1 (``sam3.pt``, a phase 1
    ``checkpoint.pt``, a bare SAM3 state dict or a LoRA run's checkpoint: ``sam3_image_keys``). The
    adapters bring the LoRA tensors and our heads; anything else the model has must come from here."""
    sd, _ = read_checkpoint(checkpoint)
    target = getattr(model, "detector", model)
    report = load_into(target, sam3_image_keys(sd), checkpoint)
    log.info(report.summary())
    lacking = [k for k in report.missing if LORA_KEY not in k]
    own = strip_prefixes(sd, ("module.",))
    extra = {k: v for k, v in own.items() if not k.startswith(("detector.", *OWN_HEADS))}
    others = [k for k in model.state_dict() if target is not model and not k.startswith(("detector.", *OWN_HEADS))]
    lacking += [k for k in others if k not in extra]
    if lacking:
        raise CheckpointError(
            f"base checkpoint {checkpoint} lacks {len(lacking)} tensors the adapters do not hold (first: "
            f"{lacking[0]}): pass the sam3.pt or phase 1 checkpoint.pt the adapters were trained on")
    if others:  # e.g. a regression head the base run trained: not part of an adapter file
        model.load_state_dict({k: extra[k] for k in others}, strict=False)


@dataclass
class AdapterInfo:
    """What predictions.json records about an adapter set (the base Predictor's info + the adapters)."""

    base: PredictorInfo
    adapters: Dict[str, str]
    vessel: Optional[str]
    infos: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return self.base.model

    def to_dict(self) -> dict:
        return {**self.base.to_dict(), "adapters": {g: {"path": p, "epoch": self.infos.get(g, {}).get("epoch")}
                                                    for g, p in self.adapters.items()},
                "adapter_rule": RULE_GIVEN if self.vessel else RULE_SCORE}


class AdapterPredictor:
    """Predictors of one base with each group's adapter merged, and the rule that picks one a frame.
    The ``Predictor`` interface tools/predict.py uses (``predict``, ``batch_size``, ``naming``, ``info``)
    plus ``choice_for(image_id)``: the adapter that named a frame and why."""

    def __init__(self, predictors: Mapping[str, Predictor], adapters: Mapping[str, str],
                 vessel: Optional[str] = None, score_thr: float = 0.5,
                 infos: Optional[Mapping[str, Dict[str, Any]]] = None):
        if vessel is not None and vessel not in predictors:
            raise AdapterError(f"--vessel {vessel!r}: no adapter of that group; the groups are "
                               f"{', '.join(sorted(predictors))}")
        self.predictors = dict(predictors)
        self.vessel = vessel
        self.score_thr = float(score_thr)
        first = self.predictors[sorted(self.predictors)[0]]
        self.info = AdapterInfo(first.info, dict(adapters), vessel, dict(infos or {}))
        self.batch_size = first.batch_size
        self.choices: Dict[int, dict] = {}

    @property
    def naming(self) -> str:
        return next(iter(self.predictors.values())).naming

    @naming.setter
    def naming(self, rule: str) -> None:
        for p in self.predictors.values():
            p.naming = rule

    def choice_for(self, image_id: int) -> Optional[dict]:
        return self.choices.get(int(image_id))

    def predict(self, frames: Sequence[np.ndarray], angles: Optional[Sequence[AnglesLike]] = None,
                image_ids: Optional[Sequence[int]] = None) -> List[List[dict]]:
        """Named segments of each frame by the adapter the rule picks (``choice_for`` says which)."""
        ids = list(image_ids) if image_ids is not None else list(range(len(frames)))
        if self.vessel is not None:
            out = self.predictors[self.vessel].predict(frames, angles, ids)
            for i in ids:
                self.choices[int(i)] = {"group": self.vessel, "rule": RULE_GIVEN}
            return out
        by_group = {g: p.predict(frames, angles, ids) for g, p in self.predictors.items()}
        out = []
        for k, i in enumerate(ids):
            results = {g: by_group[g][k] for g in by_group}
            best = choose(results, self.score_thr)
            self.choices[int(i)] = {"group": best, "rule": RULE_SCORE, "score_thr": self.score_thr,
                                    "total_score": {g: round(total_score(r, self.score_thr), 4)
                                                    for g, r in sorted(results.items())}}
            out.append(results[best])
        return out

    @classmethod
    def from_base(cls, checkpoint: str, adapters_dir: str, config: Optional[str] = None,
                  overrides: Sequence[str] = (), device: Optional[str] = None, naming: Optional[str] = None,
                  vessel: Optional[str] = None, score_thr: float = 0.5, **kwargs) -> "AdapterPredictor":
        """Build the adapters' model, load the base ``checkpoint`` into it, then one copy per group with
        that group's adapter merged. Errors name the folder, the file or the mismatch."""
        adapters = find_adapters(adapters_dir)
        if vessel is not None and vessel not in adapters:
            raise AdapterError(f"--vessel {vessel!r}: {adapters_dir} has no adapter of that group; its groups are "
                               f"{', '.join(adapters)}")
        infos = {g: read_adapter_info(p) for g, p in adapters.items()}
        for g, info in infos.items():
            recorded = info.get("vessel_group", g)
            if recorded != g:
                what = f"group {recorded!r}" if recorded else "every vessel (data.vessel_group=null)"
                raise AdapterError(f"{adapters[g]}: this adapter was trained on {what}, but its folder says {g!r}; "
                                   f"move it to {adapters_dir}/{recorded or '<group>'}/ or retrain with "
                                   f"data.vessel_group={g}")
        first = next(iter(adapters))
        config = config or adapter_config_for(adapters[first])
        if config is None:
            raise AdapterError(f"no config for the adapters in {adapters_dir}: no {RUN_CONFIG} beside "
                               f"{adapters[first]} or one folder up; pass -c CONFIG with the adapters' "
                               f"model.lora settings (e.g. -c configs/angiography/cass.yaml model.lora.enabled=true)")
        for g, info in infos.items():  # the same task, model and classes for every adapter
            for key in ("task", "model", "class_ids"):
                if key in info and key in infos[first] and info[key] != infos[first][key]:
                    raise AdapterError(f"adapters {adapters[first]} and {adapters[g]} disagree on {key} "
                                       f"({infos[first][key]} vs {info[key]}): every group needs the same run settings")
        cfg, model = build_run_model(config, overrides, infos[first], adapters[first])
        load_base(model, checkpoint)
        device, naming = run_defaults(cfg, device, naming)
        predictors: Dict[str, Predictor] = {}
        for g, path in adapters.items():
            m = copy.deepcopy(model)
            load_adapter(m, path)  # checks the LoRA options and the base fingerprint
            merge_lora(m)
            predictors[g] = Predictor(m, cfg, naming=naming, device=device, checkpoint=os.path.abspath(checkpoint),
                                      **kwargs)
        del model
        return cls(predictors, adapters, vessel=vessel, score_thr=score_thr, infos=infos)
