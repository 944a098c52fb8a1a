"""The embedded demo shows a model learning: when the tiny profile asks for it (``init.phase1_first``) and
no phase 1 checkpoint exists, a phase 2 run first scores the untrained model on the validation frames,
trains phase 1 (``vessel_segmentation.yaml``, same data root) into ``paths.phase1_checkpoint``, and then
runs phase 2 from it. The run ends with ``learning_curve.png`` and ``val_overlay.png`` in the experiment
folder and a summary of what was learnt compared with the untrained start (``learning_summary.json``).
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence

from omegaconf import DictConfig, OmegaConf, open_dict

# Overrides of a phase 2 command that mean the same to phase 1 (data, model size, budget, machine).
PASSED_TO_PHASE1 = ("paths.data_root", "paths.sam3_checkpoint", "model.name", "profiles.", "data.demo.",
                    "trainer.max_epochs", "trainer.accelerator", "trainer.seed_value", "launcher.")
SUMMARY = ("dice", "cldice", "segm.AP50", "segm.AP", "bbox.AP50", "cass.naming_top1", "cass_head.top1_gt_regions")
CURVE_PNG, OVERLAY_PNG, SUMMARY_JSON = "learning_curve.png", "val_overlay.png", "learning_summary.json"


def wants_phase1_first(cfg: DictConfig) -> bool:
    """A phase 2 (CASS) run whose profile says ``phase1_first`` and whose phase 1 checkpoint is missing."""
    if OmegaConf.select(cfg, "data.task") != "cass":
        return False
    ckpt = OmegaConf.select(cfg, "paths.phase1_checkpoint")
    first = OmegaConf.select(cfg, f"profiles.{cfg.model.resolved}.phase1_first")
    return bool(first) and bool(ckpt) and not os.path.isfile(ckpt)


def _phase1_overrides(overrides: Sequence[str], phase1_dir: str) -> List[str]:
    keep = [o for o in overrides if o.lstrip("+~").startswith(PASSED_TO_PHASE1)]
    return keep + [f"paths.experiment_dir={phase1_dir}"]


def _compose(config: str, overrides: Sequence[str], args) -> DictConfig:
    from sam3_angio import config as config_mod
    from sam3_angio.training.cluster import apply_flags

    return config_mod.finalize(apply_flags(config_mod.compose(config, list(overrides)), args))


def phase1_config(cfg: DictConfig, overrides: Sequence[str], args) -> DictConfig:
    """Phase 1 (``vessel_segmentation.yaml``) with the phase 2 command's data/model/machine overrides,
    written to the folder of ``paths.phase1_checkpoint``, for the profile's ``phase1_epochs``."""
    phase1_dir = os.path.dirname(os.path.dirname(cfg.paths.phase1_checkpoint))
    p1_overrides = _phase1_overrides(overrides, phase1_dir)
    if not any(o.startswith("trainer.max_epochs=") for o in overrides):
        # The profile's phase 1 length; validation half-way and at the end (the curve's points).
        key = f"profiles.{cfg.model.resolved}.phase1_epochs"
        epochs = OmegaConf.select(cfg, key)
        epochs = cfg.trainer.max_epochs if epochs is None else epochs
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            from sam3_angio.errors import ConfigError

            raise ConfigError(f"{key} = {epochs!r}: expected a whole number >= 1 (the epochs of phase 1, which "
                              f"the demo trains first)")
        p1_overrides += [f"trainer.max_epochs={epochs}", f"trainer.val_epoch_freq={max(1, epochs // 2)}"]
    return _compose("vessel_segmentation", p1_overrides, args)


def resumed_demo(cfg: DictConfig, overrides: Sequence[str], args):
    """``(phase 1 config, untrained metrics, phase 1 metrics)`` of the phase 1 a demo run trained first,
    when this start resumes that run (its folder has ``learning_summary.json`` and phase 1's folder its
    metrics), so its learning curve and summary keep phase 1 and the untrained start; else Nones. (A
    resumed demo redrew learning_curve.png without them and the overlay from phase 2's predictions.)"""
    if OmegaConf.select(cfg, "data.task") != "cass" or not os.path.isfile(
            os.path.join(cfg.paths.experiment_dir, SUMMARY_JSON)):
        return None, None, None
    ckpt = OmegaConf.select(cfg, "paths.phase1_checkpoint")
    phase1_dir = os.path.dirname(os.path.dirname(ckpt)) if ckpt else None
    if not phase1_dir or not os.path.isfile(os.path.join(phase1_dir, "metrics.json")):
        return None, None, None

    def read(path):
        try:
            with open(path) as f:
                out = json.load(f)
            return out if isinstance(out, dict) else None
        except (OSError, ValueError):
            return None

    try:
        p1 = phase1_config(cfg, overrides, args)
    except Exception:  # the figures are a bonus: never a reason to fail a finished training
        return None, None, None
    untrained = read(os.path.join(phase1_dir, "untrained", "metrics.json"))
    return p1, untrained, read(os.path.join(phase1_dir, "metrics.json"))


def score_untrained(p1: DictConfig) -> Optional[Dict[str, float]]:
    """Phase 1 validation metrics (whole tree, one query a frame) of the model as it starts, random
    weights: SAM3's trainer in ``val`` mode, written under ``<phase 1 experiment_dir>/untrained``."""
    from sam3_angio.training.data_prep import prepare_data
    from sam3_angio.training.launch import launch_local

    prepare_data(p1)
    ucfg = OmegaConf.create(OmegaConf.to_container(p1))
    with open_dict(ucfg):
        ucfg.paths.experiment_dir = os.path.join(p1.paths.experiment_dir, "untrained")
        ucfg.trainer.mode = "val"
        ucfg.trainer.skip_saving_ckpts = True
    print("demo: scoring the untrained model on the validation frames (the start to compare with)", flush=True)
    return launch_local(ucfg, num_ranks=int(ucfg.launcher.gpus_per_node))


def run_phase1(cfg: DictConfig, p1: DictConfig) -> Optional[Dict[str, float]]:
    from sam3_angio.training.cli import save_run_config
    from sam3_angio.training.data_prep import prepare_data
    from sam3_angio.training.launch import launch_local

    print(f"demo: no phase 1 checkpoint yet: training phase 1 (whole coronary tree) into "
          f"{p1.paths.experiment_dir} first", flush=True)
    prepare_data(p1)
    save_run_config(p1)
    metrics = launch_local(p1, num_ranks=int(p1.launcher.gpus_per_node))
    if not os.path.isfile(cfg.paths.phase1_checkpoint):
        from sam3_angio.errors import ConfigError

        raise ConfigError(f"phase 1 ran but wrote no {cfg.paths.phase1_checkpoint}; see {p1.paths.experiment_dir}/logs")
    return metrics


def write_figures(cfg: DictConfig, start: Optional[Dict[str, float]] = None,
                  phase1: Optional[DictConfig] = None) -> Dict[str, str]:
    """``learning_curve.png`` (validation metrics against steps, the untrained start at step 0; with
    ``phase1``, the config of the phase 1 run this one followed, its points first and this run's steps
    counted after them) and ``val_overlay.png`` (the last validation's predictions on the first
    validation frames: phase 1's when given, since phase 2's few demo steps rarely reach the threshold)."""
    from sam3_angio.evaluation.learning import plot_learning_curve, plot_overlays, read_history

    exp = cfg.paths.experiment_dir
    out = {}
    history = read_history(exp)
    offset = None
    before = phase1.paths.experiment_dir if phase1 is not None else None
    if before:
        first = read_history(before)
        offset = max([r["steps"] or 0 for r in first] or [0])
        history = first + [{**r, "steps": (r["steps"] or 0) + offset} for r in history]
    out["curve"] = plot_learning_curve(history, os.path.join(exp, CURVE_PNG), start=start, phase_break=offset,
                                       phase_labels=("phase 1 (whole tree)", "phase 2 (CASS)"),
                                       title=f"{OmegaConf.select(cfg, 'experiment_name')} ({cfg.model.resolved}): "
                                             + ("phase 1, then phase 2 from it" if before else "validation"))
    if phase1 is not None:
        source = (os.path.join(before, "predictions", "predictions.json"), phase1.data.val_json,
                  phase1.data.val_images, "phase 1 (whole tree), last validation")
    else:
        source = (os.path.join(exp, "predictions", "predictions.json"), cfg.data.val_json, cfg.data.val_images,
                  "last validation")
    preds, gt_json, images, title = source
    if os.path.isfile(preds) and os.path.isfile(gt_json):
        with open(preds) as f:
            instances = json.load(f)
        out["overlay"] = plot_overlays(gt_json, images, instances, os.path.join(exp, OVERLAY_PNG), title=title)
    return out


def summarise(cfg: DictConfig, start: Optional[Dict[str, float]], phase1: Optional[Dict[str, float]],
              end: Optional[Dict[str, float]]) -> str:
    """What was learnt: phase 1 (whole tree) untrained -> trained on the same validation frames, and
    where phase 2 ended; also written to ``learning_summary.json``."""
    def num(d, k):
        v = (d or {}).get(k)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    rows = [(k, num(start, k), num(phase1, k)) for k in SUMMARY if num(phase1, k) is not None]
    with open(os.path.join(cfg.paths.experiment_dir, SUMMARY_JSON), "w") as f:
        json.dump({"untrained": {k: a for k, a, _ in rows}, "phase1": {k: b for k, _, b in rows},
                   "phase2": {k: num(end, k) for k in SUMMARY if num(end, k) is not None}}, f, indent=2)
    lines = ["  learnt (validation, whole tree; untrained start -> after phase 1):"]
    for key, a, b in rows:
        lines.append(f"    {key:<24} {'n/a' if a is None else f'{a:.4f}'} -> {b:.4f}")
    naming, head = num(end, "cass.naming_top1"), num(end, "cass_head.top1_gt_regions")
    if naming is not None or head is not None:
        n_cls = len(OmegaConf.select(cfg, "model.class_ids") or []) or None
        chance = f" (chance {1 / n_cls:.3f})" if n_cls else ""
        lines.append("  phase 2 (CASS naming, from phase 1; a CPU demo's budget starts the CASS head, it does not "
                     "yet name predicted segments - docs/learning.md):")
        if naming is not None:
            lines.append(f"    {'cass.naming_top1':<24} {naming:.4f}  (predicted segments named right)")
        if head is not None:
            lines.append(f"    {'cass_head.top1_gt_regions':<24} {head:.4f}{chance}  (the head on the true regions)")
    return "\n".join(lines)
