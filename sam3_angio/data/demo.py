"""The embedded demo data set: synthetic angiograms generated and converted to COCO on first use.

``ensure_demo_data(root, task)`` returns the COCO paths under ``root`` (``root/coco_<task>/<split>/``,
what ``configs/angiography/base/paths.yaml`` points at), generating ``root/synthetic`` and converting
it first when they are missing. Safe to call from several processes at once (a file lock).
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, Union

from .atomic import is_complete, read_manifest
from .coco_io import ANNOTATIONS_JSON, IMAGES_DIR
from .layout import TASKS

PathLike = Union[str, Path]

RAW_DIR = "synthetic"


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".demo.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _refuse_incomplete(folder: Path) -> None:
    if folder.exists() and any(folder.iterdir()) and not is_complete(folder):
        raise FileExistsError(
            f"'{folder}' exists but is not a complete data set (no manifest.json: an interrupted run or "
            f"someone else's files); delete it or choose another data root"
        )


def demo_paths(root: PathLike, task: str) -> Dict[str, str]:
    """Where the demo COCO files of ``task`` live under ``root`` (whether or not they exist)."""
    coco = Path(root) / f"coco_{task}"
    return {
        "train_json": str(coco / "train" / ANNOTATIONS_JSON),
        "train_images": str(coco / "train" / IMAGES_DIR),
        "val_json": str(coco / "val" / ANNOTATIONS_JSON),
        "val_images": str(coco / "val" / IMAGES_DIR),
    }


def ensure_demo_data(
    root: PathLike,
    task: str,
    n_patients: int = 24,
    seed: int = 0,
    size: int = 256,
    frames: int = 8,
    verbose: bool = True,
) -> Dict[str, str]:
    """COCO train/val paths of the synthetic demo for ``task`` under ``root``; generates
    ``root/synthetic`` (``n_patients`` patients, ``size`` px, ``frames`` frames a cine) and converts it
    into ``root/coco_<task>`` when they are not there yet, saying so. Existing complete data are used
    as they are (a note says so when they were made with other settings).

    Returns ``{"train_json", "train_images", "val_json", "val_images"}`` (str paths).
    """
    from .coco_convert import convert_csv_to_coco
    from .synthetic.generator import CSV_NAME, generate_dataset

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if n_patients < 2:
        raise ValueError(f"the demo needs n_patients >= 2 (train and val patients), got {n_patients}")
    root = Path(root)
    raw = root / RAW_DIR
    coco = root / f"coco_{task}"
    paths = demo_paths(root, task)
    with _locked(root):
        if is_complete(coco):
            return paths
        _refuse_incomplete(raw)
        _refuse_incomplete(coco)
        if not is_complete(raw):
            if verbose:
                print(f"sam3_angio: no demo data in '{root}': generating {n_patients} synthetic patients "
                      f"({size} px, {frames} frames a cine, seed {seed}) into '{raw}'", flush=True)
            generate_dataset(raw, n_patients=n_patients, seed=seed, frames=frames, size=size,
                             pseudo_label_size=max(size, 256), progress=verbose)
        else:
            cfg = read_manifest(raw).get("config", {})
            wanted = {"n_patients": n_patients, "seed": seed, "size": size, "frames": frames}
            differs = {k: cfg.get(k) for k, v in wanted.items() if cfg.get(k) != v}
            if differs and verbose:
                print(f"sam3_angio: note: using the synthetic data already in '{raw}' ({differs}); delete "
                      f"it to regenerate with {wanted}", flush=True)
        if verbose:
            print(f"sam3_angio: converting '{raw / CSV_NAME}' for the {task} task into '{coco}'", flush=True)
        convert_csv_to_coco(raw / CSV_NAME, coco, task, progress=verbose)
    missing = [k for k in ("train_json", "val_json") if not Path(paths[k]).is_file()]
    if missing:
        raise RuntimeError(f"demo data in '{coco}' lack {', '.join(missing)} (too few patients for a val split?)")
    return paths
