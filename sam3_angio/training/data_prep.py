"""Making sure a run's data exist before anything expensive starts: the embedded demo data set is
generated (and converted) on first use when the config allows it; anything else missing is an error."""

from __future__ import annotations

import os

from omegaconf import DictConfig, OmegaConf

from sam3_angio.errors import UserError


def prepare_data(cfg: DictConfig) -> None:
    """Generate the embedded demo data set when the configured files are missing and the config
    allows it (``data.demo.generate_if_missing``)."""
    need = [cfg.data.train_json, cfg.data.val_json]
    if all(os.path.isfile(p) for p in need):
        return
    if not OmegaConf.select(cfg, "data.demo.generate_if_missing"):
        missing = [p for p in need if not os.path.isfile(p)]
        raise UserError(
            f"data not found: {', '.join(missing)}. Convert your CSV with tools/convert_to_coco.py "
            f"and pass paths.data_root=..., or set data.demo.generate_if_missing=true for the demo"
        )
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
