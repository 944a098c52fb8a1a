"""cluster.submit against the real one-node SLURM cluster (scripts/slurm/start.sh): jobs run and return,
job arrays give each task its own folder and index, failures surface with their traceback, two ranks
form a gloo group, and a preempted job is requeued and resumes from its saved state."""

from __future__ import annotations

import io
import json
import time

import pytest
import submitit
from omegaconf import OmegaConf

from sam3_angio.errors import UserError
from sam3_angio.training import cluster
from slurm_fixtures import slurm_cluster, wait_for_job  # noqa: F401  (fixture)


def small_cfg(exp_dir, **submitit_overrides):
    sub = {"timeout_hour": 0.1, "cpus_per_task": 1, "cpu_only": True, "port_range": [20000, 40000],
           "job_array": {"num_tasks": 0, "task_index": 0}}
    sub.update(submitit_overrides)
    return OmegaConf.create({
        "experiment_name": "slurm_test",
        "launcher": {"gpus_per_node": 1, "num_nodes": 1, "experiment_log_dir": str(exp_dir)},
        "submitit": sub,
        "trainer": {"accelerator": "cpu", "checkpoint": {"save_dir": "${launcher.experiment_log_dir}/ckpt"}},
    })


def submit(cfg, target, **kw):
    out = io.StringIO()
    jobs = cluster.submit(cfg, target=f"slurm_fixtures.{target}", out=out, **kw)
    return jobs, out.getvalue()


def test_trivial_job_runs_and_submit_says_where_to_look(slurm_cluster, tmp_path):
    t0 = time.time()
    jobs, printed = submit(small_cfg(tmp_path), "record_task")
    assert len(jobs) == 1
    job = jobs[0]
    wait_for_job(job, timeout=120)
    turnaround = time.time() - t0
    seen = job.result()
    assert seen["RANK"] == "0" and seen["WORLD_SIZE"] == "1" and seen["SLURM_JOB_ID"] == str(job.job_id)
    assert seen["MASTER_ADDR"] == "127.0.0.1" and 20000 <= int(seen["MASTER_PORT"]) <= 40000
    assert seen["SAM3_ANGIO_THREADS"] == "1"  # the one CPU SLURM gave the task
    # What the user is told, and the record written next to the experiment.
    record = json.loads((tmp_path / "submitit_job.json").read_text())
    assert record["job_id"] == str(job.job_id)
    assert record["tasks"][0]["stdout"] == str(job.paths.stdout) and job.paths.stdout.is_file()
    assert record["submitit_folder"].startswith(str(tmp_path / "submitit"))
    for needle in (f"squeue -j {job.job_id}", f"tail -f {job.paths.stdout}", f"sacct -j {job.job_id}",
                   record["submitit_folder"]):
        assert needle in printed
    if slurm_cluster.accounting:
        assert slurm_cluster.sacct_state(job.job_id) == "COMPLETED"
    print(f"\nturnaround (submit -> result) of a trivial job: {turnaround:.2f} s")


def test_each_submission_gets_a_fresh_submitit_folder(slurm_cluster, tmp_path):
    cfg = small_cfg(tmp_path)
    first, _ = submit(cfg, "record_task")
    second, _ = submit(cfg, "record_task")
    assert first[0].paths.folder != second[0].paths.folder
    for job in first + second:
        wait_for_job(job, timeout=120)
        assert job.result()["SLURM_JOB_ID"] == str(job.job_id)


def test_job_array_runs_each_task_in_its_own_folder_with_its_index(slurm_cluster, tmp_path):
    cfg = small_cfg(tmp_path, job_array={"num_tasks": 2, "task_index": 0})
    jobs, printed = submit(cfg, "record_task")
    assert len(jobs) == 2
    array_id = str(jobs[0].job_id).split("_")[0]
    assert [j.job_id for j in jobs] == [f"{array_id}_0", f"{array_id}_1"]
    for job in jobs:
        wait_for_job(job, timeout=120)
    seen = [job.result() for job in jobs]
    assert [s["task_index"] for s in seen] == [0, 1]
    assert [s["experiment_dir"] for s in seen] == [str(tmp_path / "task_0"), str(tmp_path / "task_1")]
    assert [s["SLURM_ARRAY_TASK_ID"] for s in seen] == ["0", "1"]
    assert seen[0]["MASTER_PORT"] != seen[1]["MASTER_PORT"]  # tasks may share a node
    for i in range(2):
        task_cfg = OmegaConf.load(tmp_path / f"task_{i}" / "config.yaml")
        assert task_cfg.submitit.job_array.task_index == i
        assert OmegaConf.select(task_cfg, "trainer.checkpoint.save_dir") == str(tmp_path / f"task_{i}" / "ckpt")
        assert json.loads((tmp_path / f"task_{i}" / "submitit_job.json").read_text())["tasks"][0]["job_id"] == \
            f"{array_id}_{i}"
    assert f"squeue -j {array_id}" in printed and "task 1" in printed


def test_two_cpu_ranks_in_one_job_form_a_gloo_group(slurm_cluster, tmp_path):
    cfg = small_cfg(tmp_path)
    cfg.launcher.gpus_per_node = 2  # --num-gpus 2 on a CPU partition: two CPU ranks, no GPU asked
    jobs, printed = submit(cfg, "gloo_all_reduce")
    assert "2 rank(s), cpu" in printed
    wait_for_job(jobs[0], timeout=180)
    results = jobs[0].results()
    assert sorted(r["RANK"] for r in results) == ["0", "1"]
    assert all(r["WORLD_SIZE"] == "2" and r["world"] == 2 and r["total"] == 3.0 for r in results)


def test_failing_job_raises_with_its_traceback_in_the_log_it_named(slurm_cluster, tmp_path):
    jobs, printed = submit(small_cfg(tmp_path), "fail")
    job = jobs[0]
    waited = wait_for_job(job, timeout=120)
    with pytest.raises(submitit.core.utils.FailedJobError) as err:
        job.result()
    assert "deliberate failure in a cluster task" in str(err.value)
    assert str(job.paths.stdout) in printed
    log = job.paths.stderr.read_text()
    assert "Traceback" in log and "DeliberateFailure: deliberate failure in a cluster task" in log
    assert "rank 0 failed" in log  # our own error line, not only submitit's
    if slurm_cluster.accounting:
        assert slurm_cluster.sacct_state(job.job_id) == "FAILED"
    assert waited < 60


def test_job_killed_without_a_result_raises_uncompleted_within_a_minute(slurm_cluster, tmp_path):
    if not slurm_cluster.accounting:
        pytest.skip("this cluster runs without slurmdbd: sacct cannot tell submitit the job died")
    jobs, _ = submit(small_cfg(tmp_path), "die_without_result")
    job = jobs[0]
    start = time.time()
    wait_for_job(job, timeout=90)
    with pytest.raises(submitit.core.utils.UncompletedJobError) as err:
        job.result()
    assert time.time() - start < 60
    assert "has not produced any output" in str(err.value)


def test_preempted_job_is_requeued_and_resumes_from_its_saved_state(slurm_cluster, tmp_path):
    jobs, _ = submit(small_cfg(tmp_path), "resumable_counter")
    job = jobs[0]
    marker = tmp_path / "waiting_for_signal"
    deadline = time.time() + 120
    while not marker.exists():
        assert time.time() < deadline, "the task never reached its preemption point"
        assert not job.done(force_check=True), job.paths.stderr.read_text()
        time.sleep(0.2)
    job._interrupt()  # what SLURM does on preemption: SIGTERM, then submitit's SIGUSR2
    wait_for_job(job, timeout=180)
    state = job.result()
    assert state["step"] == 6
    assert [r["resumed_from"] for r in state["runs"]] == [0, 3]  # the second run started at the saved step
    assert state["runs"][1]["restart_count"] == "1"
    log = job.paths.stderr.read_text()
    assert "requeueing; the next run resumes from checkpoint.pt" in log and "Requeued job" in log


@pytest.mark.parametrize("overrides, needles", [
    # this cluster's node has no features
    ({"constraint": "a100"}, ["Invalid feature", "submitit.constraint", "--constraint=a100"]),
    # more CPUs than the node has: refused at once (EnforcePartLimits), not pending for ever
    ({"cpus_per_task": 64}, ["More processors requested than permitted", "lower submitit.cpus_per_task",
                             "--cpus-per-task=64"]),
])
def test_sbatch_refusal_is_a_user_error_that_names_the_cause(slurm_cluster, tmp_path, overrides, needles):
    with pytest.raises(UserError) as err:
        submit(small_cfg(tmp_path, **overrides), "record_task")
    message = str(err.value)
    assert message.startswith("sbatch refused the job")
    for needle in needles:
        assert needle in message, (needle, message)
