"""``tools/train.py``: compose a config, check it, prepare data, and run SAM3's trainer here or on SLURM.

    python tools/train.py -c configs/angiography/cass.yaml [overrides ...]
        [--use-cluster 1 --partition P --account A --qos Q --num-gpus N --num-nodes M]
        [--check] [--list] [--print-config] [--debug]

Flags mirror sam3's own ``sam3/train/train.py``; extra positional arguments are Hydra overrides.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import List, Optional

from omegaconf import DictConfig, OmegaConf

from sam3_angio.errors import ConfigError, run_cli
from sam3_angio.training.console import quiet_third_party_warnings

quiet_third_party_warnings()  # before sam3 is imported: its modules warn at import time
from sam3_angio.evaluation.keys import SUMMARY_KEYS  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tools/train.py",
        description="Fine-tune SAM3 for coronary angiography with SAM3's native trainer.",
        epilog="Example: python tools/train.py -c configs/angiography/cass.yaml trainer.max_epochs=5",
    )
    p.add_argument("-c", "--config", help="config path (configs/angiography/cass.yaml) or name (cass)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. trainer.max_epochs=3 paths.data_root=/data")
    p.add_argument("--use-cluster", type=int, default=None, help="1: submit to SLURM through submitit; 0: run here")
    p.add_argument("--partition", default=None, help="SLURM partition")
    p.add_argument("--account", default=None, help="SLURM account")
    p.add_argument("--qos", default=None, help="SLURM QOS")
    p.add_argument("--num-gpus", type=int, default=None, help="GPUs (or CPU ranks without a GPU) per node")
    p.add_argument("--num-nodes", type=int, default=None, help="number of nodes (SLURM)")
    p.add_argument("--check", action="store_true", help="check the config (targets, paths) and exit 0/1")
    p.add_argument("--list", action="store_true", help="list registered components and exit")
    p.add_argument("--print-config", action="store_true", help="print the composed config and exit")
    p.add_argument("--restart", action="store_true",
                   help="start over in paths.experiment_dir (its checkpoints/logs are kept aside, renamed)")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    return p


def list_components(pattern: Optional[str] = None) -> str:
    import fnmatch

    from sam3_angio import registry

    lines = []
    for reg in registry.iter_registries():
        rows = [r for r in reg.summaries() if not pattern or fnmatch.fnmatch(r[0], pattern)]
        lines.append(f"{reg._name} ({reg.description}): {len(rows)}")
        for name, target, doc in rows:
            lines.append(f"  {name:<28} {target}")
            if doc:
                lines.append(f"  {'':<28} {doc}")
    return "\n".join(lines)


def save_run_config(cfg: DictConfig) -> None:
    """``config.yaml`` / ``config_resolved.yaml`` in the experiment folder. A restart with a different
    config keeps the earlier one as ``config.<time>.yaml`` instead of overwriting it."""
    exp = cfg.paths.experiment_dir
    os.makedirs(exp, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name, text in (("config", OmegaConf.to_yaml(cfg)), ("config_resolved", OmegaConf.to_yaml(cfg, resolve=True))):
        path = os.path.join(exp, f"{name}.yaml")
        if os.path.isfile(path):
            with open(path) as f:
                if f.read() == text:
                    continue
            os.replace(path, os.path.join(exp, f"{name}.{stamp}.yaml"))
        with open(path, "w") as f:
            f.write(text)


def data_summary(cfg: DictConfig) -> str:
    """One line: frames and annotations of each split, and where they are."""
    import json

    parts = []
    for split in ("train", "val"):
        path = OmegaConf.select(cfg, f"data.{split}_json")
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
            n = len(d.get("images", []))
            limit = OmegaConf.select(cfg, "trainer.data.train.dataset.limit_ids") if split == "train" else None
            # SAM3's limit_ids trains on a fixed random subset: say so, or the line overstates what trains.
            used = (f" ({int(limit)} of them trained on: profiles.{OmegaConf.select(cfg, 'model.resolved')}"
                    f".limit_train_images={int(limit)})") if isinstance(limit, int) and limit < n else ""
            parts.append(f"{split} {n} frames{used} / {len(d.get('annotations', []))} annotations")
        except (OSError, ValueError, TypeError):
            parts.append(f"{split} ?")
    return f"data ({cfg.data.task}): {', '.join(parts)} under {cfg.paths.data_root}"


def print_summary(metrics: Optional[dict], cfg: DictConfig, seconds: float) -> None:
    exp = cfg.paths.experiment_dir
    print(f"\nrun finished in {seconds:.0f} s; experiment folder: {exp}")
    ckpt = os.path.join(cfg.trainer.checkpoint.save_dir, "checkpoint.pt")
    if os.path.isfile(ckpt):
        print(f"  checkpoint: {ckpt}")
    best = os.path.join(cfg.trainer.checkpoint.save_dir, "checkpoint_best.pt")
    if os.path.isfile(best):
        metric = OmegaConf.select(cfg, "trainer.best_checkpoint.metric")
        print(f"  best ({metric}): {best}")
    print(f"  log:        {os.path.join(cfg.trainer.logging.log_dir, 'log.txt')}")
    if metrics:
        print(f"  metrics:    {os.path.join(exp, 'metrics.json')}")
        for key in SUMMARY_KEYS:
            value = metrics.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                print(f"    {key:<24} {value:.4f}")
    else:
        print("  no validation metrics were written (see the logs folder)")


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_intermixed_args(argv)  # overrides before or after the flags
    debug = args.debug or os.environ.get("HYDRA_FULL_ERROR") == "1"
    if args.debug:
        os.environ["SAM3_ANGIO_VERBOSE"] = "1"
    logging.basicConfig(level=logging.INFO if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_cli(lambda: _main(args), debug=debug,
                   interrupted="interrupted; the last checkpoint.pt (if any) resumes the run")


def _main(args: argparse.Namespace) -> int:
    from sam3_angio import config as config_mod
    from sam3_angio.training.preflight import check_config

    if args.list:
        print(list_components())
        return 0
    if not args.config:
        raise ConfigError("no config given: pass -c configs/angiography/cass.yaml (or --list)")
    cfg = config_mod.compose(args.config, args.overrides)
    from sam3_angio.training.cluster import apply_flags

    cfg = apply_flags(cfg, args)
    cfg = config_mod.finalize(cfg)
    if args.print_config:
        print(OmegaConf.to_yaml(cfg, resolve=True))
        return 0
    # --restart: checked as the run it will be (the folder's checkpoint.pt moved aside), and nothing is moved
    # before the checks pass and the folder's lock is held (a run in the folder keeps its files).
    report = check_config(cfg, restarting=args.restart)
    p1 = None
    from sam3_angio.training import showcase

    if not cfg.submitit.use_cluster and showcase.wants_phase1_first(cfg):
        # The demo trains phase 1 first: its config is checked now too, not after the untrained scoring.
        p1 = showcase.phase1_config(cfg, args.overrides, args)
        p1_errors = [f"phase 1 (trained first, into {p1.paths.experiment_dir}): {e}"
                     for e in check_config(p1).errors if e not in report.errors]  # not said twice
        if p1_errors:  # why phase 1 runs at all, and the way round it (said once)
            p1_errors[-1] += (f" [phase 1 is trained first because paths.phase1_checkpoint="
                              f"{cfg.paths.phase1_checkpoint} does not exist: point it at a trained one, or pass "
                              f"profiles.{cfg.model.resolved}.phase1_first=false to start phase 2 without it]")
        report.errors += p1_errors
    if args.check:
        print(report.render())
        return 0 if report.ok else 1
    if not report.ok:  # one error: its line alone; more: one line each
        listed = "\n".join(f"  {e}" for e in report.errors)
        raise ConfigError(report.errors[0] if len(report.errors) == 1 else
                          f"the config has {len(report.errors)} problems:\n{listed}")

    from sam3_angio.model.builders import banner
    from sam3_angio.training.experiment import ExperimentLock

    print(banner(cfg.model.resolved))
    if cfg.submitit.use_cluster:
        from sam3_angio.training.cluster import submit

        if args.restart:
            with ExperimentLock(cfg.paths.experiment_dir):
                _restart(cfg)
        save_run_config(cfg)
        submit(cfg, args)
        return 0

    from sam3_angio.training.data_prep import prepare_data

    with ExperimentLock(cfg.paths.experiment_dir):
        if args.restart:
            _restart(cfg)
        prepare_data(cfg)
        print(data_summary(cfg))
        save_run_config(cfg)
        from sam3_angio.training.launch import launch_local

        start = time.time()
        untrained = phase1 = None
        if p1 is not None:
            untrained = showcase.score_untrained(p1)
            with ExperimentLock(p1.paths.experiment_dir):
                phase1 = showcase.run_phase1(cfg, p1)
        metrics = launch_local(cfg, num_ranks=int(cfg.launcher.gpus_per_node))
        if p1 is None:  # a resumed demo run: its figures and summary keep the phase 1 it trained first
            p1, untrained, phase1 = showcase.resumed_demo(cfg, args.overrides, args)
        figures = {}
        try:
            figures = showcase.write_figures(cfg, untrained, phase1=p1)
        except Exception as e:  # a finished training is not lost to a plotting problem
            print(f"WARNING: could not draw the learning curve / overlay: {e}")
        print_summary(metrics, cfg, time.time() - start)
        for name, path in figures.items():
            print(f"  {name + ':':<11} {path}")
        if untrained is not None:
            print(showcase.summarise(cfg, untrained, phase1, metrics))
    return 0


def _restart(cfg: DictConfig) -> None:
    from sam3_angio.training.experiment import restart

    for moved in restart(cfg):
        print(f"--restart: kept the earlier run's files as {moved}")


if __name__ == "__main__":
    sys.exit(main())
