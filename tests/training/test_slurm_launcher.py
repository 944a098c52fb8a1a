"""cluster.py without a cluster: flags over config (sam3's rule), what SLURM is asked for (GPU vs CPU ranks,
resources, signal delay), job-array task configs, the rank environment a task sets, and config mistakes
caught before anything is submitted."""

from __future__ import annotations

import argparse
import os

import pytest
import submitit
from omegaconf import OmegaConf

from sam3_angio.errors import ConfigError, UserError
from sam3_angio.training import cluster


def make_cfg(**submitit_keys):
    sub = {"use_cluster": True, "partition": "cfg_part", "account": None, "qos": None, "timeout_hour": 24,
           "cpus_per_task": 8, "port_range": [10000, 65000], "job_array": {"num_tasks": 0, "task_index": 0}}
    sub.update(submitit_keys)
    return OmegaConf.create({
        "experiment_name": "vessel",
        "paths": {"experiment_dir": "/exp/vessel"},
        "launcher": {"gpus_per_node": 1, "num_nodes": 1, "experiment_log_dir": "${paths.experiment_dir}"},
        "submitit": sub,
        "trainer": {"accelerator": "cuda", "checkpoint": {"save_dir": "${paths.experiment_dir}/checkpoints"}},
    })


def flags(**kw):
    base = dict(use_cluster=None, partition=None, account=None, qos=None, num_gpus=None, num_nodes=None)
    base.update(kw)
    return argparse.Namespace(**base)


def test_flags_take_precedence_over_the_config_and_unset_flags_keep_it():
    cfg = cluster.apply_flags(make_cfg(qos="cfg_qos"), flags(partition="gpu", account="lab", num_gpus=4, num_nodes=2))
    assert cfg.submitit.partition == "gpu" and cfg.submitit.account == "lab"
    assert cfg.submitit.qos == "cfg_qos"
    assert cfg.launcher.gpus_per_node == 4 and cfg.launcher.num_nodes == 2
    params = cluster.slurm_parameters(cfg)
    assert params["slurm_partition"] == "gpu"
    assert params["slurm_additional_parameters"] == {"account": "lab", "qos": "cfg_qos"}
    assert (params["nodes"], params["tasks_per_node"], params["gpus_per_node"]) == (2, 4, 4)


def test_gpu_run_asks_one_task_per_gpu():
    cfg = make_cfg()
    cfg.launcher.gpus_per_node = 8
    params = cluster.slurm_parameters(cfg)
    assert params["gpus_per_node"] == 8 and params["tasks_per_node"] == 8 and params["cpus_per_task"] == 8


@pytest.mark.parametrize("cpu_only, accelerator, expect_gpus", [
    (True, "cuda", False),    # the explicit key wins
    (False, "cpu", True),
    (None, "cpu", False),     # unset: follow trainer.accelerator
    (None, "cuda", True),
])
def test_cpu_runs_ask_slurm_for_no_gpus(cpu_only, accelerator, expect_gpus):
    cfg = make_cfg(cpu_only=cpu_only)
    cfg.trainer.accelerator = accelerator
    cfg.launcher.gpus_per_node = 2
    params = cluster.slurm_parameters(cfg)
    assert ("gpus_per_node" in params) is expect_gpus
    assert params["tasks_per_node"] == 2  # CPU ranks, one a task, like GPUs
    assert any("--gpus" in line for line in cluster.sbatch_equivalent(params)) is expect_gpus


def test_resources_become_the_sbatch_options_sam3_would_ask_for():
    cfg = make_cfg(timeout_hour=2, cpus_per_task=6, mem_gb=64, mem="999G", constraints=["a100", "ib"],
                   exclude_nodes=["n1", "n2"], include_nodes=["n3"], comment="sweep 1",
                   srun_args={"cpu_bind": "none"}, name="vessel_run")
    params = cluster.slurm_parameters(cfg)
    assert params["mem_gb"] == 64 and "slurm_mem" not in params  # mem_gb wins over mem, as in sam3
    assert params["slurm_srun_args"] == ["--cpu-bind", "none"]
    lines = set(cluster.sbatch_equivalent(params))
    for expected in ("--time=120", "--cpus-per-task=6", "--mem=64GB", "--constraint='a100&ib'",
                     "--exclude=n1,n2", "--nodelist=n3", "--comment='sweep 1'", "--job-name=vessel_run",
                     "--partition=cfg_part", "--gpus-per-node=1", "--ntasks-per-node=1", "--signal=USR2@90"):
        assert f"#SBATCH {expected}" in lines, (expected, sorted(lines))
    cfg2 = make_cfg(mem="32G", constraint="v100")
    params2 = cluster.slurm_parameters(cfg2)
    assert params2["slurm_mem"] == "32G" and params2["slurm_constraint"] == "v100"


def test_include_nodes_fewer_than_num_nodes_is_a_config_error():
    cfg = make_cfg(include_nodes=["n1"])
    cfg.launcher.num_nodes = 2
    with pytest.raises(ConfigError, match="include_nodes lists 1 node"):
        cluster.slurm_parameters(cfg)


@pytest.mark.parametrize("hours, configured, expected", [
    (24, 120, 120),        # long jobs: as configured
    (24, None, 90),        # submitit's default
    (0.25, 120, 120),      # 15 min: a fifth is 180 s, the configured 120 s fits
    (0.1, 90, 72),         # 6 min: at most a fifth of the time limit
    (1 / 60, 90, 12),      # 1 min
    (1 / 60, 5, 10),       # never under 10 s
])
def test_signal_delay_is_clamped_for_short_time_limits(hours, configured, expected):
    cfg = make_cfg(timeout_hour=hours, signal_delay_s=configured)
    assert cluster.slurm_parameters(cfg)["slurm_signal_delay_s"] == expected


def test_job_array_tasks_get_their_index_and_own_experiment_folder():
    cfg = make_cfg()
    cfg.data = {"fold": "${submitit.job_array.task_index}"}
    tasks = [cluster.task_config(cfg, i, "/exp/vessel") for i in range(3)]
    for i, t in enumerate(tasks):
        assert t.submitit.job_array.task_index == i and t.data.fold == i
        assert t.paths.experiment_dir == f"/exp/vessel/task_{i}"
        assert t.launcher.experiment_log_dir == f"/exp/vessel/task_{i}"
        assert t.trainer.checkpoint.save_dir == f"/exp/vessel/task_{i}/checkpoints"
    assert cfg.submitit.job_array.task_index == 0  # the original is untouched


def test_job_array_tasks_sharing_one_checkpoint_folder_are_refused(tmp_path):
    cfg = make_cfg(job_array={"num_tasks": 2, "task_index": 0})
    cfg.paths.experiment_dir = str(tmp_path)
    cfg.trainer.checkpoint.save_dir = str(tmp_path / "shared_ckpt")  # not per task
    with pytest.raises(ConfigError, match="share trainer.checkpoint.save_dir"):
        cluster.submit(cfg, prepare=None)


def test_submitting_without_slurm_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch anywhere
    cfg = make_cfg()
    cfg.paths.experiment_dir = str(tmp_path)
    with pytest.raises(UserError, match="sbatch is not on PATH"):
        cluster.submit(cfg, prepare=None)


def record_env(cfg):
    keys = ("MASTER_ADDR", "MASTER_PORT", "RANK", "LOCAL_RANK", "WORLD_SIZE", "SAM3_ANGIO_THREADS")
    return {k: os.environ.get(k) for k in keys}


def test_task_sets_the_rank_environment_from_slurm_and_requeues_itself(monkeypatch):
    # The task writes os.environ: give it a copy, so nothing leaks into later tests (or their jobs).
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(SUBMITIT_EXECUTOR="slurm", SAM3_ANGIO_THREADS="7", SLURM_JOB_ID="41", SLURM_NTASKS="4",
               SLURM_PROCID="3", SLURM_LOCALID="1", SLURM_JOB_NUM_NODES="2", SLURM_NODEID="1",
               SLURM_JOB_NODELIST="gpu[07-08]", SLURM_CPUS_PER_TASK="5")
    monkeypatch.setattr(os, "environ", env)
    task = cluster.ClusterTask(make_cfg(), port=23456, target=f"{__name__}.record_env", cpu=True)
    env = task()
    assert env == {"MASTER_ADDR": "gpu07", "MASTER_PORT": "23456", "RANK": "3", "LOCAL_RANK": "1",
                   "WORLD_SIZE": "4", "SAM3_ANGIO_THREADS": "5"}
    requeued = task.checkpoint()
    assert isinstance(requeued, submitit.helpers.DelayedSubmission) and requeued.function is task
