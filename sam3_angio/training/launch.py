"""Local launch: one process, or N ranks on this machine (GPUs with nccl, or CPU ranks with gloo and
the CPU threads split between them). SLURM launches live in ``cluster.py``."""

from __future__ import annotations

import os
import random
import socket
from typing import Optional

import torch
from omegaconf import DictConfig, OmegaConf


def free_port(port_range=(10000, 65000)) -> int:
    for _ in range(50):
        port = random.randint(*port_range)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError(f"no free TCP port found in {port_range}")


def ensure_process_group() -> None:
    """A one-rank gloo group when none exists: SAM3's losses and dumpers all-reduce / gather even when
    there is only this process (predicting, tests)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ["MASTER_PORT"] = str(free_port())
        dist.init_process_group("gloo", rank=0, world_size=1)


def threads_per_rank(num_ranks: int, cpus: Optional[int] = None) -> int:
    """CPU threads for each of ``num_ranks`` ranks. ``OMP_NUM_THREADS``, when set (a shared machine's
    budget), is each process's count, as for any OpenMP program; otherwise ``cpus`` (default: the cores
    this process may use) is split between the ranks."""
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if cpus is None and omp.isdigit() and int(omp) > 0:
        return int(omp)
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) // max(1, num_ranks))


def _run_rank(local_rank: int, port: int, cfg: DictConfig, world_size: int, threads: int):
    """One rank on this machine: the torch.distributed environment, its thread budget, the trainer."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(local_rank),
        LOCAL_RANK=str(local_rank), WORLD_SIZE=str(world_size), SAM3_ANGIO_THREADS=str(threads),
    )
    torch.set_num_threads(threads)
    from sam3_angio.training.runner import run_trainer

    return run_trainer(cfg)


def _rank_main(local_rank: int, port: int, cfg_yaml: str, world_size: int, threads: int) -> None:
    _run_rank(local_rank, port, OmegaConf.create(cfg_yaml), world_size, threads)  # a spawned process


def launch_local(cfg: DictConfig, num_ranks: int = 1):
    """Run the trainer here. One rank runs in this process (breakpoints work); more ranks are
    spawned processes, each given ``cpus // num_ranks`` threads on a CPU."""
    port = free_port(tuple(OmegaConf.select(cfg, "submitit.port_range") or (10000, 65000)))
    cpu = cfg.trainer.accelerator == "cpu"
    if not cpu and num_ranks > torch.cuda.device_count():
        from sam3_angio.errors import ConfigError

        raise ConfigError(f"--num-gpus {num_ranks} but only {torch.cuda.device_count()} CUDA devices are visible")
    threads = threads_per_rank(num_ranks) if cpu else max(1, torch.get_num_threads())
    if num_ranks == 1:
        return _run_rank(0, port, cfg, 1, threads)
    cfg_yaml = OmegaConf.to_yaml(cfg)
    torch.multiprocessing.start_processes(
        _rank_main, args=(port, cfg_yaml, num_ranks, threads), nprocs=num_ranks, start_method="spawn"
    )
    from sam3_angio.training.runner import write_metrics

    return write_metrics(cfg)
