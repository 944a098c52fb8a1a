"""The real command on the real one-node SLURM cluster: ``tools/train.py --use-cluster 1`` trains the tiny
SAM3, writes its checkpoint and metrics, a job preempted mid-run is requeued and resumes from its
checkpoint.pt, and a second submission resumes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import submitit
import torch

from conftest import run_train, small_run_overrides
from slurm_fixtures import slurm_cluster, wait_for_job  # noqa: F401  (fixture)

CONFIG = "configs/angiography/vessel_segmentation.yaml"
# Both cores for the one rank; a short time limit keeps a stuck job from holding the node.
CLUSTER_ARGS = ["--use-cluster", "1", "--num-gpus", "1", "submitit.cpus_per_task=2", "submitit.timeout_hour=0.25"]


def submit_train(data_root: Path, exp: Path, epochs: int):
    proc = run_train(["-c", CONFIG, *CLUSTER_ARGS, *small_run_overrides(data_root, exp, epochs)], check=True)
    record = json.loads((exp / "submitit_job.json").read_text())
    job = submitit.SlurmJob(folder=record["submitit_folder"], job_id=record["job_id"])
    assert f"squeue -j {record['job_id']}" in proc.stdout and record["tasks"][0]["stdout"] in proc.stdout
    return job, proc


def train_epochs(exp: Path):
    lines = (exp / "logs" / "train_stats.json").read_text().splitlines()
    return [json.loads(ln)["Trainer/epoch"] for ln in lines if ln.strip()]


def checkpoint_epoch(exp: Path) -> int:
    return torch.load(exp / "checkpoints" / "checkpoint.pt", map_location="cpu", weights_only=True)["epoch"]


def test_cluster_training_survives_preemption_writes_checkpoint_and_metrics_and_resubmission_resumes(
        slurm_cluster, tiny_data_root, tmp_path):
    # One job does the three things a cluster user relies on (each a minute of CPU on its own):
    # it trains and writes checkpoint + metrics, it is preempted mid-run, requeued and resumes from its
    # checkpoint.pt, and a later submission of the same command resumes instead of starting over.
    exp = tmp_path / "exp"
    job, proc = submit_train(tiny_data_root, exp, epochs=3)
    assert "cpu (gloo, no GPUs requested)" in proc.stdout  # no GPU here: CPU ranks
    ckpt = exp / "checkpoints" / "checkpoint.pt"
    deadline = time.time() + 600
    while not ckpt.exists():  # epoch 0 is done and saved; epoch 1 is under way
        assert time.time() < deadline, "no checkpoint after 600 s"
        assert not job.done(force_check=True), job.paths.stderr.read_text()[-3000:]
        time.sleep(0.5)
    assert checkpoint_epoch(exp) == 1
    job._interrupt()  # preemption: SIGTERM, then submitit's SIGUSR2 -> checkpoint() + requeue
    wait_for_job(job, timeout=600)
    job.result()  # raises with the task's traceback if training failed
    if slurm_cluster.accounting:
        assert slurm_cluster.sacct_state(job.job_id) == "COMPLETED"
    log = (exp / "logs" / "log.txt").read_text()
    assert "Resuming training from epoch: 1" in log
    # Epoch 0 ran once; epoch 1 (interrupted) and 2 completed after the requeue: never epoch 0 again.
    assert train_epochs(exp) == [0, 1, 2]
    assert checkpoint_epoch(exp) == 3
    metrics = json.loads((exp / "metrics.json").read_text())
    assert 0.0 <= metrics["segm.AP"] <= 1.0 and metrics["epoch"] == 2
    # SAM3's logging sends INFO lines to stdout: read both streams submit() pointed at.
    logs = job.paths.stdout.read_text() + job.paths.stderr.read_text()
    assert "Requeued job" in logs and "run 2" in logs

    # Same command, one more epoch: the new job resumes from checkpoint.pt instead of starting over.
    job2, _ = submit_train(tiny_data_root, exp, epochs=4)
    assert job2.paths.folder != job.paths.folder  # a fresh submitit folder per submission
    wait_for_job(job2, timeout=600)
    job2.result()
    assert "Resuming training from epoch: 3" in (exp / "logs" / "log.txt").read_text()
    assert train_epochs(exp) == [0, 1, 2, 3]
    assert checkpoint_epoch(exp) == 4
