"""SLURM launches through submitit, with sam3's own launcher semantics (``sam3/train/train.py``): flags
over the config's ``launcher:``/``submitit:`` blocks, one task per GPU (or CPU rank), job-array sweeps,
and requeue on preemption/timeout that resumes from ``checkpoint.pt``.

    jobs = submit(cfg, args)      # prints the job id(s), log folder and how to follow the job; returns

Config keys read (all optional except ``launcher.experiment_log_dir`` or ``paths.experiment_dir``):
    launcher.gpus_per_node, launcher.num_nodes, launcher.experiment_log_dir
    submitit.{partition, account, qos, name, timeout_hour, cpus_per_task, mem_gb | mem,
              constraint | constraints, exclude_nodes, include_nodes, comment, srun_args.cpu_bind,
              signal_delay_s, max_num_timeout, port_range, cpu_only, job_array.{num_tasks, task_index}}
    trainer.accelerator (cpu/cuda), paths.experiment_dir, trainer.checkpoint.save_dir
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import traceback
import uuid
from copy import deepcopy
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

import submitit
from omegaconf import DictConfig, OmegaConf, open_dict

from sam3_angio.config import set_accelerator
from sam3_angio.errors import ConfigError, UserError

log = logging.getLogger(__name__)

#: submitit's default: SIGUSR2 this many seconds before the time limit (checkpoint + requeue).
DEFAULT_SIGNAL_DELAY_S = 90
#: The submitit folder below the experiment folder; each submission gets a fresh sub-folder, because
#: job ids restart at 1 when a cluster's state is wiped and a reused folder could return an old result.
SUBMITIT_SUBDIR = "submitit"
JOB_RECORD = "submitit_job.json"


# --------------------------------------------------------------------------- the task that runs on a node
class ClusterTask(submitit.helpers.Checkpointable):
    """One SLURM task (one rank): sets up torch.distributed's environment from SLURM's, then runs
    ``target(cfg)`` (default: :func:`sam3_angio.training.runner.run_trainer`).

    On SIGUSR2 (time limit near, or preemption) submitit calls :meth:`checkpoint` and requeues the job;
    the next run starts this same task again, and SAM3's Trainer resumes from ``checkpoint.pt`` in
    ``trainer.checkpoint.save_dir`` (the last saved epoch).
    """

    def __init__(self, cfg: DictConfig, port: int, target: Optional[str] = None, cpu: bool = True) -> None:
        self.cfg = cfg
        self.port = int(port)
        self.target = target or "sam3_angio.training.runner.run_trainer"
        self.cpu = cpu
        self.runs = 0  # how many times this task started (1 + requeues), for the log

    def __call__(self) -> Any:
        env = submitit.JobEnvironment()
        self.runs += 1
        _setup_task_logging()
        # One node: loopback always works, also where the node name does not resolve.
        os.environ["MASTER_ADDR"] = "127.0.0.1" if env.num_nodes == 1 else env.hostnames[0]
        os.environ["MASTER_PORT"] = str(self.port)
        os.environ["RANK"] = str(env.global_rank)
        os.environ["LOCAL_RANK"] = str(env.local_rank)
        os.environ["WORLD_SIZE"] = str(env.num_tasks)
        if self.cpu:
            # CPU ranks: each rank uses the cores SLURM gave its task, no more (whatever the
            # submitting shell, whose environment the job inherits, said).
            os.environ["SAM3_ANGIO_THREADS"] = os.environ.get(
                "SLURM_CPUS_PER_TASK", os.environ.get("SAM3_ANGIO_THREADS", "1"))
        log.info(
            "SLURM job %s rank %d/%d (local %d) on %s, run %d, master %s:%s, experiment %s",
            env.job_id, env.global_rank, env.num_tasks, env.local_rank, env.hostname, self.runs,
            os.environ["MASTER_ADDR"], self.port, OmegaConf.select(self.cfg, "launcher.experiment_log_dir"),
        )
        try:
            return _import_target(self.target)(self.cfg)
        except Exception as e:
            # Lands in <folder>/<job id>_<rank>_log.err, where submit() told the user to look.
            log.error("rank %d failed: %s: %s\n%s", env.global_rank, type(e).__name__, e, traceback.format_exc())
            raise

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        from sam3_angio.training.trainer import save_on_signal

        saved = save_on_signal()
        log.warning("preempted or near the time limit: %srequeueing; the next run resumes from checkpoint.pt",
                    "saved checkpoint.pt at the current step; " if saved else "")
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def _setup_task_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _import_target(path: str) -> Callable[[DictConfig], Any]:
    module, _, name = path.rpartition(":") if ":" in path else path.rpartition(".")
    mod = __import__(module, fromlist=[name])
    return getattr(mod, name)


# --------------------------------------------------------------------------- config -> sbatch parameters
def _get(cfg: DictConfig, key: str, default: Any = None) -> Any:
    value = OmegaConf.select(cfg, key, default=default)
    return default if value is None else value


def apply_flags(cfg: DictConfig, args: Optional[argparse.Namespace]) -> DictConfig:
    """Flags take precedence over the config (sam3's rule); a flag left at None keeps the config's value."""
    if args is None:
        return cfg
    with open_dict(cfg):
        if getattr(args, "num_gpus", None) is not None:
            if int(args.num_gpus) < 1:
                raise ConfigError(f"--num-gpus {args.num_gpus}: expected 1 or more")
            cfg.launcher.gpus_per_node = int(args.num_gpus)
        if getattr(args, "num_nodes", None) is not None:
            cfg.launcher.num_nodes = int(args.num_nodes)
        if getattr(args, "use_cluster", None) is not None:
            cfg.submitit.use_cluster = bool(args.use_cluster)
        for flag in ("partition", "account", "qos"):
            if getattr(args, flag, None) is not None:
                cfg.submitit[flag] = getattr(args, flag)
    return cfg


def use_cpu(cfg: DictConfig) -> bool:
    """CPU ranks (gloo, no GPUs asked of SLURM)? ``submitit.cpu_only`` decides when set; otherwise
    ``trainer.accelerator`` (cpu/cuda) when the config has one; otherwise whether this (submitting)
    machine sees a GPU."""
    explicit = OmegaConf.select(cfg, "submitit.cpu_only")
    if explicit is not None:
        return bool(explicit)
    accel = OmegaConf.select(cfg, "trainer.accelerator")
    if accel in ("cpu", "cuda"):
        return accel == "cpu"
    import torch

    return not torch.cuda.is_available()


def signal_delay(cfg: DictConfig, timeout_min: int) -> int:
    """Seconds before the time limit that SLURM sends SIGUSR2 (checkpoint + requeue).

    ``submitit.signal_delay_s`` (default 90 s), limited to a fifth of a short time limit (at least 10 s),
    so that a 5-minute job is not told to stop right after it starts."""
    requested = int(_get(cfg, "submitit.signal_delay_s", DEFAULT_SIGNAL_DELAY_S))
    if requested < 1:
        raise ConfigError(f"submitit.signal_delay_s={requested}: expected seconds > 0")
    return max(10, min(requested, timeout_min * 60 // 5))


def _as_list(value: Any) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split(",") if "," in value else value.split()
    return [str(v) for v in value]


def slurm_parameters(cfg: DictConfig) -> Dict[str, Any]:
    """The ``AutoExecutor.update_parameters`` keywords for this config (flags already applied).

    Mirrors sam3's launcher: ``tasks_per_node = gpus_per_node`` (one task a GPU); on CPU the same number of
    CPU ranks and no GPUs requested."""
    sub = cfg.submitit
    ranks = int(_get(cfg, "launcher.gpus_per_node", 1))
    nodes = int(_get(cfg, "launcher.num_nodes", 1))
    if ranks < 1 or nodes < 1:
        raise ConfigError(f"launcher.gpus_per_node={ranks}, launcher.num_nodes={nodes}: expected 1 or more each")
    hours = float(_get(cfg, "submitit.timeout_hour", 24))
    timeout_min = max(1, int(round(60 * hours)))
    cpu = use_cpu(cfg)
    params: Dict[str, Any] = {
        "timeout_min": timeout_min,
        "name": str(_get(cfg, "submitit.name", None) or _get(cfg, "experiment_name", "sam3_angio")),
        "nodes": nodes,
        "tasks_per_node": ranks,
        "slurm_signal_delay_s": signal_delay(cfg, timeout_min),
    }
    if not cpu:
        params["gpus_per_node"] = ranks
    cpus = _get(cfg, "submitit.cpus_per_task")
    if cpus is not None:
        params["cpus_per_task"] = int(cpus)
    if _get(cfg, "submitit.partition") is not None:
        params["slurm_partition"] = str(sub.partition)
    extra: Dict[str, Any] = {}
    for key in ("account", "qos"):
        if _get(cfg, f"submitit.{key}") is not None:
            extra[key] = str(sub[key])
    exclude = _as_list(_get(cfg, "submitit.exclude_nodes"))
    if exclude:
        extra["exclude"] = ",".join(exclude)
    include = _as_list(_get(cfg, "submitit.include_nodes"))
    if include:
        if len(include) < nodes:
            raise ConfigError(
                f"submitit.include_nodes lists {len(include)} node(s) but launcher.num_nodes={nodes}: "
                f"list at least {nodes} or lower --num-nodes"
            )
        extra["nodelist"] = ",".join(include)
    if extra:
        params["slurm_additional_parameters"] = extra
    if _get(cfg, "submitit.mem_gb") is not None:
        params["mem_gb"] = float(sub.mem_gb)
    elif _get(cfg, "submitit.mem") is not None:
        params["slurm_mem"] = str(sub.mem)
    constraint = _get(cfg, "submitit.constraint", _get(cfg, "submitit.constraints"))
    if constraint is not None:
        params["slurm_constraint"] = constraint if isinstance(constraint, str) else "&".join(_as_list(constraint))
    if _get(cfg, "submitit.comment") is not None:
        params["slurm_comment"] = str(sub.comment)
    cpu_bind = _get(cfg, "submitit.srun_args.cpu_bind")
    if cpu_bind is not None:
        params["slurm_srun_args"] = ["--cpu-bind", str(cpu_bind)]
    return params


def sbatch_equivalent(params: Dict[str, Any]) -> List[str]:
    """The ``#SBATCH`` options ``params`` stand for (for the user's eyes; submitit writes the real file)."""
    from submitit.slurm.slurm import SlurmExecutor, _make_sbatch_string

    converted = {}
    for key, value in params.items():
        key = key[len("slurm_"):] if key.startswith("slurm_") else key
        key = SlurmExecutor._equivalence_dict().get(key, key)
        converted[key] = value
    if "mem" in converted and "mem_gb" in params:
        from submitit.slurm.slurm import _convert_mem

        converted["mem"] = _convert_mem(params["mem_gb"])
    text = _make_sbatch_string(command="python -m submitit.core._submit FOLDER", folder="FOLDER", **converted)
    return [line for line in text.splitlines() if line.startswith("#SBATCH")
            and not any(k in line for k in ("--output", "--error", "--open-mode", "--wckey"))]


# --------------------------------------------------------------------------- submission
def experiment_dir(cfg: DictConfig) -> str:
    path = OmegaConf.select(cfg, "launcher.experiment_log_dir") or OmegaConf.select(cfg, "paths.experiment_dir")
    if not path:
        raise ConfigError("no experiment folder: set launcher.experiment_log_dir (or paths.experiment_dir)")
    return os.path.abspath(str(path))


def task_config(cfg: DictConfig, index: int, base_dir: str) -> DictConfig:
    """The config of job-array task ``index``: ``submitit.job_array.task_index`` set, and its own experiment
    folder ``<base_dir>/task_<index>`` (``paths.experiment_dir`` and ``launcher.experiment_log_dir``), so
    everything interpolated from them (checkpoints, logs, predictions) is per task."""
    c = deepcopy(cfg)
    folder = os.path.join(base_dir, f"task_{index}")
    with open_dict(c):
        c.submitit.job_array.task_index = index
        if OmegaConf.select(c, "paths.experiment_dir") is not None:
            c.paths.experiment_dir = folder
        c.launcher.experiment_log_dir = folder
    return c


def _check_distinct_save_dirs(cfgs: Sequence[DictConfig]) -> None:
    seen: Dict[str, int] = {}
    for i, c in enumerate(cfgs):
        save_dir = OmegaConf.select(c, "trainer.checkpoint.save_dir")
        if save_dir is None:
            continue
        if save_dir in seen:
            raise ConfigError(
                f"job-array tasks {seen[save_dir]} and {i} would share trainer.checkpoint.save_dir={save_dir} "
                f"and resume from each other's checkpoint.pt; make it depend on the task folder, e.g. "
                f"trainer.checkpoint.save_dir='${{paths.experiment_dir}}/checkpoints'"
            )
        seen[save_dir] = i


def _write_json(path: str, data: Dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp_", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def _write_yaml(path: str, cfg: DictConfig) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp_", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(OmegaConf.to_yaml(cfg))
    os.replace(tmp, path)


def _default_prepare(cfg: DictConfig) -> None:
    """Data must exist before the tasks start: generate the demo set here, as a local run would."""
    if OmegaConf.select(cfg, "data.train_json") is None:
        return
    from sam3_angio.training.data_prep import prepare_data

    prepare_data(cfg)


def fresh_folder(exp_dir: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join(exp_dir, SUBMITIT_SUBDIR, f"{stamp}-{uuid.uuid4().hex[:6]}")


def submit(
    cfg: DictConfig,
    args: Optional[argparse.Namespace] = None,
    *,
    target: Optional[str] = None,
    folder: Optional[str] = None,
    prepare: Optional[Callable[[DictConfig], None]] = _default_prepare,
    out: Optional[TextIO] = None,
) -> List[submitit.Job]:
    """Submit ``cfg`` to SLURM and return at once: one job, or one job a task for a job array
    (``submitit.job_array.num_tasks > 0``).

    ``args`` (argparse namespace: use_cluster, partition, account, qos, num_gpus, num_nodes) take
    precedence over the config. ``target`` is the dotted path of the function each task runs with its
    config (default ``sam3_angio.training.runner.run_trainer``). ``folder`` is the submitit folder
    (default: a fresh ``<experiment>/submitit/<time>-<id>``). ``prepare(cfg)`` runs here before submitting
    (default: generate the demo data when the config asks for it). Prints the job id(s), the log folder and
    how to follow the job, and writes them to ``<experiment>/submitit_job.json``.
    """
    out = out or sys.stdout
    cfg = apply_flags(deepcopy(cfg), args)
    cpu = use_cpu(cfg)
    cfg = set_accelerator(cfg, "cpu" if cpu else "cuda")
    params = slurm_parameters(cfg)
    exp_dir = experiment_dir(cfg)
    folder = os.path.abspath(folder or fresh_folder(exp_dir))
    port_range = [int(p) for p in _get(cfg, "submitit.port_range", [10000, 65000])]

    num_tasks = int(_get(cfg, "submitit.job_array.num_tasks", 0))
    if num_tasks > 0:
        cfgs = [task_config(cfg, i, exp_dir) for i in range(num_tasks)]
        _check_distinct_save_dirs(cfgs)
    else:
        cfgs = [cfg]
    if shutil.which("sbatch") is None:
        raise UserError(
            "--use-cluster 1 but SLURM's sbatch is not on PATH: submit from a SLURM login node, "
            "or run without --use-cluster (scripts/slurm/start.sh starts a one-node test cluster)"
        )
    if prepare is not None:
        for c in cfgs:
            prepare(c)
    ports = random.sample(range(port_range[0], port_range[1] + 1), k=len(cfgs))
    tasks = [ClusterTask(c, port, target=target, cpu=cpu) for c, port in zip(cfgs, ports)]

    executor = submitit.AutoExecutor(
        folder=folder, cluster="slurm", slurm_max_num_timeout=int(_get(cfg, "submitit.max_num_timeout", 3))
    )
    executor.update_parameters(**params)
    try:
        if len(tasks) == 1:
            jobs = [executor.submit(tasks[0])]
        else:
            with executor.batch():
                pending = [executor.submit(t) for t in tasks]
            jobs = list(pending)
    except (submitit.core.utils.FailedJobError, submitit.core.utils.FailedSubmissionError) as e:
        # sbatch refused the job (its stderr is the message)
        raise UserError(_explain_sbatch_error(str(e), params)) from None

    record = _record(jobs, cfgs, folder, params, cpu)
    _write_json(os.path.join(exp_dir, JOB_RECORD), record)
    if num_tasks > 0:
        for job, c, task in zip(jobs, cfgs, record["tasks"]):
            task_dir = experiment_dir(c)
            _write_yaml(os.path.join(task_dir, "config.yaml"), c)
            _write_json(os.path.join(task_dir, JOB_RECORD), dict(record, tasks=[task]))
    out.write(describe(record) + "\n")
    out.flush()
    return jobs


def _explain_sbatch_error(message: str, params: Dict[str, Any]) -> str:
    hint = ""
    low = message.lower()
    if "invalid generic resource" in low or "gres" in low:
        hint = "this partition has no GPUs (GRES): set submitit.cpu_only=true or trainer.accelerator=cpu"
    elif "invalid feature" in low:
        hint = "submitit.constraint names a node feature this cluster does not have"
    elif "node configuration is not available" in low or "more processors" in low:
        hint = ("no node has that many CPUs/memory: lower submitit.cpus_per_task, submitit.mem_gb or "
                "--num-gpus (sinfo -o '%N %c %m' shows what the nodes have)")
    elif "invalid partition" in low:
        hint = "--partition names no partition of this cluster (sinfo lists them)"
    elif "invalid account" in low or "invalid qos" in low:
        hint = "--account/--qos is not valid for you here (sacctmgr show assoc user=$USER)"
    opts = " ".join(sbatch_equivalent(params)).replace("#SBATCH ", "")
    return f"sbatch refused the job: {message.strip()}\n  asked for: {opts}" + (f"\n  hint: {hint}" if hint else "")


def _record(jobs: Sequence[submitit.Job], cfgs: Sequence[DictConfig], folder: str, params: Dict[str, Any],
            cpu: bool) -> Dict[str, Any]:
    first = jobs[0]
    main_id = str(first.job_id).split("_")[0]
    tasks = []
    for i, (job, c) in enumerate(zip(jobs, cfgs)):
        tasks.append({
            "job_id": str(job.job_id),
            "task_index": i if len(jobs) > 1 else None,
            "experiment_dir": experiment_dir(c),
            "stdout": str(job.paths.stdout),
            "stderr": str(job.paths.stderr),
        })
    return {
        "job_id": main_id,
        "array": len(jobs) > 1,
        "submitit_folder": folder,
        "sbatch_script": str(first.paths.submission_file),
        "submitted_at": datetime.datetime.now().isoformat(timespec="seconds"),
        "ranks_per_node": params["tasks_per_node"],
        "nodes": params["nodes"],
        "device": "cpu (gloo, no GPUs requested)" if cpu else "cuda (nccl, one GPU a task)",
        "sbatch_options": sbatch_equivalent(params),
        "tasks": tasks,
    }


def describe(record: Dict[str, Any]) -> str:
    """What submit() prints: job id(s), logs, and the commands to follow, inspect and cancel the job."""
    jid = record["job_id"]
    tasks = record["tasks"]
    what = f"job array of {len(tasks)} task(s)" if record["array"] else "job"
    lines = [
        f"submitted SLURM {what} {jid}: {record['nodes']} node(s) x {record['ranks_per_node']} rank(s), "
        f"{record['device']}",
        f"  submitit folder: {record['submitit_folder']}",
        f"  sbatch script:   {record['sbatch_script']}",
    ]
    for t in tasks:
        label = f"task {t['task_index']} ({t['job_id']})" if t["task_index"] is not None else "log"
        lines.append(f"  {label}: {t['stdout']}")
        if t["task_index"] is not None:
            lines.append(f"      experiment: {t['experiment_dir']}")
    lines += [
        f"  errors: the same name ending in _log.err (rank 0); other ranks: {jid}*_<rank>_log.*",
        "follow it:",
        f"  squeue -j {jid}",
        f"  tail -f {tasks[0]['stdout']}",
        f"  sacct -j {jid} --format=JobID,JobName,State,Elapsed,ExitCode",
        f"cancel: scancel {jid}    resume: submit the same command again (it continues from checkpoint.pt)",
    ]
    return "\n".join(lines)
