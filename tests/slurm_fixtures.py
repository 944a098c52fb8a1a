"""Fixtures for tests that submit to the real one-node SLURM cluster of ``scripts/slurm/start.sh``, and the
small task functions those tests run on it (importable by the job: the fixture puts tests/ on PYTHONPATH).

    from slurm_fixtures import slurm_cluster, wait_for_job      # in tests/conftest.py or a test module
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Dict

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
SLURM_DIR = Path(os.environ.get("SAM3_ANGIO_SLURM_DIR", "/tmp/sam3-angio-slurm"))
START = ROOT / "scripts" / "slurm" / "start.sh"
STOP = ROOT / "scripts" / "slurm" / "stop.sh"
#: start.sh's exit status for "the daemons cannot run on this machine" (not root, no packages, ...).
CANNOT_START = 3


class SlurmCluster:
    """What a test needs to know about the running cluster."""

    def __init__(self, state_dir: Path, started_here: bool, start_output: str) -> None:
        self.state_dir = state_dir
        self.conf = state_dir / "etc" / "slurm.conf"
        self.log_dir = state_dir / "log"
        self.started_here = started_here
        self.start_output = start_output
        text = self.conf.read_text()
        self.accounting = "AccountingStorageType=accounting_storage/slurmdbd" in text
        self.partition = next(
            line.split()[0].split("=", 1)[1] for line in text.splitlines() if line.startswith("PartitionName=")
        )

    def sacct_state(self, job_id: str, timeout: float = 30) -> str:
        """The job's final state in accounting (COMPLETED, FAILED, ...): the result file is written
        before the job step ends, so wait up to ``timeout`` seconds for the job to leave RUNNING."""
        deadline = time.time() + timeout
        while True:
            out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", str(job_id)],
                                 capture_output=True, text=True).stdout.split()
            state = out[-1] if out else ""
            if state not in ("", "PENDING", "RUNNING", "COMPLETING", "REQUEUED") or time.time() > deadline:
                return state
            time.sleep(0.3)


def _env_for_jobs() -> None:
    """Jobs inherit the submitting environment (sbatch --export=ALL): let them find the cluster's config
    and import this package and this module."""
    os.environ["SLURM_CONF"] = str(SLURM_DIR / "etc" / "slurm.conf")
    parts = [str(ROOT), str(TESTS)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    # Tasks share the machine's cores with the test process: keep torch's pools small.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def slurm_cluster():
    """The local one-node cluster: started with scripts/slurm/start.sh when it is not running yet (and
    then stopped again at the end of the session), reused when it is (CI starts it in .ci/run).
    Skips, with start.sh's reason, only where the daemons cannot run on this machine."""
    _env_for_jobs()
    proc = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, SAM3_ANGIO_SLURM_DIR=str(SLURM_DIR)))
    output = proc.stdout + proc.stderr
    if proc.returncode == CANNOT_START:
        pytest.skip(f"SLURM cannot run on this machine: {output.strip().splitlines()[-1]}")
    if proc.returncode != 0:
        pytest.fail(f"scripts/slurm/start.sh failed ({proc.returncode}):\n{output}\n"
                    f"logs: {SLURM_DIR / 'log'}", pytrace=False)
    started_here = "slurm/start: started " in output
    cluster = SlurmCluster(SLURM_DIR, started_here, output)
    yield cluster
    if started_here:
        subprocess.run(["bash", str(STOP)], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, SAM3_ANGIO_SLURM_DIR=str(SLURM_DIR)))


def wait_for_job(job, timeout: float, poll: float = 0.5) -> float:
    """Wait until ``job`` (a submitit job) is done, asking SLURM every ``poll`` seconds (submitit's own
    back-off waits up to minutes); fail the test after ``timeout`` seconds. Returns the seconds waited."""
    start = time.time()
    while not job.done(force_check=True):
        if time.time() - start > timeout:
            state = job.get_info(mode="force").get("State", "?")
            subprocess.run(["scancel", str(job.job_id)], capture_output=True)
            out = job.paths.stdout.read_text()[-3000:] if job.paths.stdout.exists() else "(no stdout)"
            err = job.paths.stderr.read_text()[-3000:] if job.paths.stderr.exists() else "(no stderr)"
            pytest.fail(f"job {job.job_id} not done after {timeout:.0f} s (state {state}); cancelled.\n"
                        f"stdout:\n{out}\nstderr:\n{err}", pytrace=False)
        time.sleep(poll)
    return time.time() - start


# ----------------------------------------------------------------------------- tasks the tests submit
# Each takes the task's config (as run_trainer does) and works in launcher.experiment_log_dir.

def _exp(cfg) -> Path:
    from omegaconf import OmegaConf

    path = Path(OmegaConf.select(cfg, "launcher.experiment_log_dir"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _rank_env() -> Dict[str, Any]:
    keys = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "SAM3_ANGIO_THREADS",
            "SLURM_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT", "CUDA_VISIBLE_DEVICES")
    return {k: os.environ.get(k) for k in keys}


def record_task(cfg) -> Dict[str, Any]:
    """Write what this task saw (rank variables, task index, folder) to ``task_seen_<rank>.json``."""
    from omegaconf import OmegaConf

    seen = dict(_rank_env(), task_index=OmegaConf.select(cfg, "submitit.job_array.task_index"),
                experiment_dir=str(_exp(cfg)), accelerator=OmegaConf.select(cfg, "trainer.accelerator"))
    (_exp(cfg) / f"task_seen_{os.environ.get('RANK', '0')}.json").write_text(json.dumps(seen))
    return seen


def gloo_all_reduce(cfg) -> Dict[str, Any]:
    """Join the job's process group (gloo, from the variables ClusterTask set) and sum the ranks."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="env://")
    try:
        t = torch.tensor([float(dist.get_rank() + 1)])
        dist.all_reduce(t)
        return dict(_rank_env(), total=float(t.item()), world=dist.get_world_size())
    finally:
        dist.destroy_process_group()


class DeliberateFailure(RuntimeError):
    pass


def fail(cfg) -> None:
    """Raise an error after writing one line, as a broken training run would."""
    print("about to fail on purpose", flush=True)
    raise DeliberateFailure("deliberate failure in a cluster task (test)")


def die_without_result(cfg) -> None:
    """Vanish as an OOM kill would: no Python exception, no result file."""
    print("about to SIGKILL myself", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def resumable_counter(cfg) -> Dict[str, Any]:
    """A stand-in for a training run that checkpoints: counts "steps" into ``state.json`` (written
    atomically each step) and resumes from it. The first run stops after 3 steps and waits to be preempted
    (up to 120 s); a later run finishes at 6 steps. Returns the steps and runs seen."""
    exp = _exp(cfg)
    state_path = exp / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"step": 0, "runs": []}
    state["runs"].append({"restart_count": os.environ.get("SLURM_RESTART_COUNT"), "resumed_from": state["step"]})
    first_run = len(state["runs"]) == 1
    while state["step"] < 6:
        if first_run and state["step"] == 3:
            (exp / "waiting_for_signal").write_text(str(time.time()))
            time.sleep(120)
            raise RuntimeError("no preemption signal arrived within 120 s")
        state["step"] += 1
        tmp = state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, state_path)
    return state
