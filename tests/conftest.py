"""Shared fixtures: small COCO sets, the tiny SAM3, and running tools/train.py as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The real ARCADE validation splits: ../shared/data/arcade beside the checkout, else the workplace's copy
#: (a clone made elsewhere, e.g. by CI, still finds them).
ARCADE = ROOT.parent / "shared" / "data" / "arcade"
if not ARCADE.is_dir():
    ARCADE = Path("/work/shared/data/arcade")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _threads_per_worker() -> str:
    """The cores this run may use, split between pytest-xdist's workers (``-n N``): every test process and
    the training/predict subprocesses it starts use that many torch threads, so N workers never
    oversubscribe the machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    return str(max(1, cores // max(1, workers)))


os.environ.setdefault("OMP_NUM_THREADS", _threads_per_worker())

# Tests that share one resource run on one xdist worker, one after the other: the one-node SLURM cluster.
SERIAL_GROUPS = {"slurm": ("test_slurm_cluster.py", "test_slurm_train.py", "test_slurm_launcher.py")}


def pytest_collection_modifyitems(config, items):
    """With ``-n N --dist loadgroup`` (optional; the README's command is serial) a test file runs on one worker, so its
    module fixtures are built once; the files of a :data:`SERIAL_GROUPS` group share one worker."""
    by_file = {f: g for g, files in SERIAL_GROUPS.items() for f in files}
    for item in items:
        name = item.path.name
        item.add_marker(pytest.mark.xdist_group(by_file.get(name, str(item.path.relative_to(ROOT)))))


@pytest.fixture(scope="session")
def tiny_data_root(tmp_path_factory) -> Path:
    """paths.data_root holding coco_cass/, coco_vessel/ and coco_stenosis/ (4 train + 2 val frames each,
    128 px; half the stenosis annotations carry measured stenosis %, MLD and reference diameter)."""
    from tiny_coco import VESSEL_CATEGORIES, cass_categories, write_tiny_coco

    root = tmp_path_factory.mktemp("tiny_data")
    write_tiny_coco(str(root / "coco_cass"), cass_categories([1, 2, 12, 13]), n_train=4, n_val=2)
    write_tiny_coco(str(root / "coco_vessel"), VESSEL_CATEGORIES, n_train=4, n_val=2, cats_per_image=1)
    write_tiny_coco(str(root / "coco_stenosis"), [{"id": 1, "name": "stenosis"}], n_train=4, n_val=2,
                    cats_per_image=1, measured=True)
    return root


@pytest.fixture(scope="session")
def tiny_sam3():
    from sam3_angio.model.tiny import build_sam3_tiny

    return build_sam3_tiny()


def run_train(args: List[str], cwd: Optional[Path] = None, timeout: int = 600, env: Optional[dict] = None,
              check: bool = False) -> subprocess.CompletedProcess:
    """Run ``python tools/train.py ARGS`` the way a user types it."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "train.py"), *args],
        cwd=str(cwd or ROOT), capture_output=True, text=True, timeout=timeout, env=full_env,
    )
    if check:
        _assert_ok(args, proc)
    return proc


def _assert_ok(args: List[str], proc: subprocess.CompletedProcess) -> None:
    if proc.returncode != 0:
        raise AssertionError(f"train.py {args} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")



def check_train(args: List[str], cwd: Optional[Path] = None, check: bool = False) -> subprocess.CompletedProcess:
    """``tools/train.py ARGS`` for the paths that end before any training starts (``--check``,
    ``--print-config``, a config/data error found by the preflight): ``cli.main`` in this process,
    stdout/stderr captured, so each answer costs a fraction of a second instead of a new interpreter
    importing torch and sam3 (~5 s). An exception that is not a clear user error propagates and fails
    the test (in a subprocess it would be a traceback on stderr). Reaching the trainer is a test bug:
    ``run_train`` is for runs that train."""
    import contextlib
    import io

    from sam3_angio.training import launch
    from sam3_angio.training.cli import main

    def no_training(*_a, **_k):
        raise AssertionError(f"check_train({args}) reached training: use run_train for a run that trains")

    out, err = io.StringIO(), io.StringIO()
    old_cwd, old_launch = os.getcwd(), launch.launch_local
    launch.launch_local = no_training
    try:
        os.chdir(str(cwd or ROOT))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(list(args))
    finally:
        os.chdir(old_cwd)
        launch.launch_local = old_launch
    proc = subprocess.CompletedProcess(["tools/train.py", *args], rc, out.getvalue(), err.getvalue())
    if check:
        _assert_ok(args, proc)
    return proc


def kill_train_after(args: List[str], path: Path, timeout: float = 400, after: float = 0.0) -> None:
    """Start ``python tools/train.py ARGS``, wait until ``path`` (a checkpoint) exists, wait ``after``
    seconds more, then kill -9 the whole process group: a crash, not a polite stop."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, str(ROOT / "tools" / "train.py"), *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and not path.exists():
            assert proc.poll() is None, f"training ended before writing {path.name}"
            time.sleep(0.1)
        assert path.exists(), f"no {path.name} after {timeout} s"
        time.sleep(after)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def one_and_two_rank_runs(data_root: Path, tmp_path: Path, extra: List[str] = ()):
    """The same global batch of 2 on 1 rank and on 2 CPU ranks (no augmentation, no shuffling, loss not
    scaled by the per-rank batch); returns ``(one, two)`` run folders with per-rank loss traces."""
    common = [
        "scratch.train_transforms=${scratch.val_transforms}",
        "scratch.angio_loss.scale_by_find_batch_size=false",
        "profiles.sam3_tiny.limit_train_images=null",
        "trainer.data.train.shuffle=false",
        *extra,
    ]
    one, two = tmp_path / "one", tmp_path / "two"
    run_train(["-c", "vessel_segmentation", *small_run_overrides(data_root, one, epochs=1), *common,
               "scratch.train_batch_size=2", f"scratch.loss_trace_dir={one / 'trace'}"], check=True)
    run_train(["-c", "vessel_segmentation", "--num-gpus", "2", *small_run_overrides(data_root, two, epochs=1),
               *common, "scratch.train_batch_size=1", f"scratch.loss_trace_dir={two / 'trace'}"], check=True)
    return one, two


def loss_trace(folder: Path, rank: int) -> List[dict]:
    """The per-step losses a run wrote with ``scratch.loss_trace_dir=folder`` on ``rank``."""
    import json

    return [json.loads(ln) for ln in (folder / f"loss_trace_rank{rank}.jsonl").read_text().splitlines()]


def small_run_overrides(data_root: Path, exp_dir: Path, epochs: int = 2) -> List[str]:
    return [
        f"paths.data_root={data_root}",
        f"paths.experiment_dir={exp_dir}",
        "data.demo.generate_if_missing=false",
        f"trainer.max_epochs={epochs}",
        "model.name=sam3_tiny",
        "profiles.sam3_tiny.phase1_first=false",  # phase 2 tests start without phase 1 (the demo trains it)
    ]


@pytest.fixture(scope="session")
def single_rank_group():
    """A one-rank gloo process group: SAM3's losses all-reduce their normaliser, as in training."""
    from sam3_angio.training.launch import ensure_process_group

    ensure_process_group()
    yield


@pytest.fixture(scope="session")
def cass_batch(tiny_data_root):
    """One real training batch of the CASS task (2 frames), as the trainer builds it."""
    from model_fixtures import make_batches

    return make_batches(tiny_data_root, "cass")[0]


@pytest.fixture(scope="session")
def trained_cass_run(tiny_data_root, tmp_path_factory) -> Path:
    """A CASS run of the tiny model (1 epoch on ``tiny_data_root``) whose classes are the tiny data's
    [1, 2, 12, 13], so that a Predictor of it asks the text queries the val split's evaluation asks.
    Returns the experiment folder (checkpoints/checkpoint.pt, config_resolved.yaml)."""
    exp = tmp_path_factory.mktemp("cass_run_4cls")
    # Near its random start (0.001 x the tiny profile's rates), as these runs' 2 steps were before the
    # learning-rate schedule stopped starving short runs: two full-rate steps from random weights teach
    # "background everywhere", and the predictor tests then have no segment to check. They test the
    # plumbing from checkpoint to outputs; tests/training/test_learns.py tests learning.
    run_train(["-c", "configs/angiography/cass.yaml", *small_run_overrides(tiny_data_root, exp, epochs=1),
               "model.class_ids=[1,2,12,13]", "scratch.lr_scale=0.001"], check=True)
    return exp


@pytest.fixture(scope="session")
def proofread_cass_run(tiny_data_root, tmp_path_factory) -> Path:
    """A CASS run of the tiny model trained with ``training.modes=[automatic,proofread]`` (1 epoch):
    its Predictor takes clicks."""
    exp = tmp_path_factory.mktemp("cass_run_proofread")
    run_train(["-c", "configs/angiography/cass.yaml", *small_run_overrides(tiny_data_root, exp, epochs=1),
               "model.class_ids=[1,2,12,13]", "training.modes=[automatic,proofread]"], check=True)
    return exp


@pytest.fixture(scope="session")
def cass_predictor(trained_cass_run):
    """The Predictor of ``trained_cass_run``, as tools/predict.py builds it from the checkpoint."""
    from sam3_angio.inference import Predictor

    return Predictor.from_checkpoint(str(trained_cass_run / "checkpoints" / "checkpoint.pt"))


@pytest.fixture(scope="session")
def val_frames(tiny_data_root):
    """The tiny data's CASS val frames (H, W) uint8 and their COCO image records."""
    import json

    import numpy as np
    from PIL import Image

    split = tiny_data_root / "coco_cass" / "val"
    records = json.loads((split / "annotations.json").read_text())["images"]
    return [np.asarray(Image.open(split / "images" / r["file_name"])) for r in records], records
