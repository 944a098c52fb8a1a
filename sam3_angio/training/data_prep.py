"""Making sure a run's data exist before anything expensive starts: the embedded demo data set is
generated (and converted) on first use when the config allows it; anything else missing is an error."""

from __future__ import annotations

import os

from omegaconf import DictConfig, OmegaConf

from sam3_angio.errors import UserError


def will_generate_demo(cfg: DictConfig) -> bool:
    """Whether missing data files are generated as the demo: ``data.demo.generate_if_missing`` true, or
    ``auto`` (the default) with ``paths.data_root`` being the demo's own folder ``paths.demo_data_root``."""
    mode = OmegaConf.select(cfg, "data.demo.generate_if_missing")
    if isinstance(mode, str) and mode.lower() == "auto":
        root, demo = OmegaConf.select(cfg, "paths.data_root"), OmegaConf.select(cfg, "paths.demo_data_root")
        return bool(root and demo and os.path.abspath(root) == os.path.abspath(demo))
    if isinstance(mode, str):
        if mode.lower() not in ("true", "false"):
            raise UserError(f"data.demo.generate_if_missing={mode!r}: expected auto, true or false")
        return mode.lower() == "true"
    return bool(mode)


def _data_root_hint(cfg: DictConfig, root) -> str:
    """What the data root holds instead, when that says what went wrong: a COCO folder itself (one level
    too deep), or other tasks' COCO folders."""
    if not root or not os.path.isdir(root):
        return ""
    task = OmegaConf.select(cfg, "data.task")
    parent = os.path.dirname(os.path.abspath(root))
    if os.path.isfile(os.path.join(root, "train", "annotations.json")):
        right = parent if os.path.basename(os.path.abspath(root)) == f"coco_{task}" else None
        return (f"; it is a COCO folder itself (train/annotations.json): paths.data_root is the folder that holds "
                f"coco_{task}/" + (f", here paths.data_root={right}" if right else ""))
    own = os.path.join(root, f"coco_{task}")
    if os.path.isdir(own):  # the task's folder is there, a split of it is not (ARCADE ships val only)
        has = sorted(n for n in os.listdir(own) if os.path.isfile(os.path.join(own, n, "annotations.json")))
        return (f"; its coco_{task}/ holds {', '.join(n + '/' for n in has) or 'no split'} but a run needs "
                f"train/ and val/ (each with annotations.json): convert or import the missing split into it "
                f"(tools/import_arcade.py --split train, tools/convert_to_coco.py with train rows)")
    others = sorted(n for n in os.listdir(root) if n.startswith("coco_") and os.path.isdir(os.path.join(root, n)))
    if others:
        config = {"vessel": "vessel_segmentation"}.get(others[0][5:], others[0][5:])
        return (f"; it holds {', '.join(n + '/' for n in others)} but no coco_{task}/ (this config's task is "
                f"{task}): convert the data for that task, or train theirs (-c configs/angiography/{config}.yaml)")
    return ""


def missing_data_message(cfg: DictConfig, missing) -> str:
    root = OmegaConf.select(cfg, "paths.data_root")
    where = f"paths.data_root={root} does not exist" if root and not os.path.isdir(root) else f"paths.data_root={root}"
    where += _data_root_hint(cfg, root)
    return (
        f"data not found: {', '.join(missing)} ({where}). Check the path, or convert your CSV with "
        f"tools/convert_to_coco.py; demo data are generated only in paths.demo_data_root="
        f"{OmegaConf.select(cfg, 'paths.demo_data_root')} (or anywhere with data.demo.generate_if_missing=true)"
    )


def prepare_data(cfg: DictConfig) -> None:
    """Generate the embedded demo data set when the configured files are missing and the config
    allows it (:func:`will_generate_demo`); otherwise missing data are an error."""
    need = [cfg.data.train_json, cfg.data.val_json]
    if all(os.path.isfile(p) for p in need):
        return
    if not will_generate_demo(cfg):
        raise UserError(missing_data_message(cfg, [p for p in need if not os.path.isfile(p)]))
    from sam3_angio.data.demo import ensure_demo_data

    coco_root = os.path.dirname(os.path.dirname(cfg.data.train_json))
    expected = os.path.join(cfg.paths.data_root, f"coco_{cfg.data.task}")
    if os.path.abspath(coco_root) != os.path.abspath(expected):
        raise UserError(
            f"data.train_json={cfg.data.train_json} is missing and is not under paths.data_root, so the "
            f"demo generator cannot make it; fix the path or convert your data first"
        )
    ensure_demo_data(
        cfg.paths.data_root, cfg.data.task,
        n_patients=int(cfg.data.demo.n_patients), seed=int(cfg.data.demo.seed),
    )
