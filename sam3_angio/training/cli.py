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

from omegaconf import DictConfig, OmegaConf, open_dict

from sam3_angio.errors import ConfigError, UserError


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


def apply_flags(cfg: DictConfig, args: argparse.Namespace) -> DictConfig:
    """Command-line flags take precedence over the config's launcher/submitit blocks (sam3's rule)."""
    with open_dict(cfg):
        if args.num_gpus is not None:
            if args.num_gpus < 1:
                raise ConfigError(f"--num-gpus {args.num_gpus}: expected 1 or more")
            cfg.launcher.gpus_per_node = args.num_gpus
        if args.num_nodes is not None:
            cfg.launcher.num_nodes = args.num_nodes
        if args.use_cluster is not None:
            cfg.submitit.use_cluster = bool(args.use_cluster)
        for flag in ("partition", "account", "qos"):
            if getattr(args, flag) is not None:
                cfg.submitit[flag] = getattr(args, flag)
    return cfg


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


# What the end-of-run summary prints (metrics.json has everything; see docs/evaluation.md).
SUMMARY_KEYS = ("bbox.AP", "bbox.AP50", "segm.AP", "segm.AP50", "segm.AP75", "segm.AR100", "dice",
                "arcade_f1", "dice_f1", "cass.top1", "cass_head.top1", "cass_head.balanced_accuracy")


def print_summary(metrics: Optional[dict], cfg: DictConfig, seconds: float) -> None:
    exp = cfg.paths.experiment_dir
    print(f"\nrun finished in {seconds:.0f} s; experiment folder: {exp}")
    ckpt = os.path.join(cfg.trainer.checkpoint.save_dir, "checkpoint.pt")
    if os.path.isfile(ckpt):
        print(f"  checkpoint: {ckpt}")
    if metrics:
        print(f"  metrics:    {os.path.join(exp, 'metrics.json')}")
        for key in SUMMARY_KEYS:
            value = metrics.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                print(f"    {key:<24} {value:.4f}")
    else:
        print("  no validation metrics were written (see the logs folder)")


def find_user_error(exc: BaseException) -> Optional[UserError]:
    """The UserError behind ``exc``, also when Hydra's instantiate wrapped it."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UserError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("HYDRA_FULL_ERROR") == "1"
    logging.basicConfig(level=logging.INFO if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _main(args)
    except Exception as e:
        user_error = find_user_error(e)
        if user_error is None or debug:
            raise
        print(f"error: {user_error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint.pt (if any) resumes the run", file=sys.stderr)
        return 130


def _main(args: argparse.Namespace) -> int:
    from sam3_angio.training import config as config_mod
    from sam3_angio.training.preflight import check_config

    if args.list:
        print(list_components())
        return 0
    if not args.config:
        raise ConfigError("no config given: pass -c configs/angiography/cass.yaml (or --list)")
    cfg = config_mod.compose(args.config, args.overrides)
    cfg = apply_flags(cfg, args)
    cfg = config_mod.finalize(cfg)
    if args.print_config:
        print(OmegaConf.to_yaml(cfg, resolve=True))
        return 0
    report = check_config(cfg)
    if args.check:
        print(report.render())
        return 0 if report.ok else 1
    if not report.ok:
        raise ConfigError("the config has problems:\n" + report.render())

    from sam3_angio.model.builders import banner

    print(banner(cfg.model.resolved))
    if cfg.submitit.use_cluster:
        from sam3_angio.training.cluster import submit

        save_run_config(cfg)
        submit(cfg, args)
        return 0

    prepare_data(cfg)
    save_run_config(cfg)
    from sam3_angio.training.launch import launch_local

    start = time.time()
    metrics = launch_local(cfg, num_ranks=int(cfg.launcher.gpus_per_node))
    print_summary(metrics, cfg, time.time() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
