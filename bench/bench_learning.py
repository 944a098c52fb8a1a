"""Does the pipeline learn? Phase 1 (whole coronary tree, ``vessel_segmentation.yaml``) of the tiny model
from random weights for a fixed CPU budget, validated every N steps, beside a classical baseline on the
same validation frames: multi-scale Frangi vesselness (scikit-image) with its threshold chosen on the
training frames. Two data sets: the synthetic demo and real ARCADE frames (``syntax_val``: the first
frames train, the rest validate, the whole tree as one category).

    python bench/bench_learning.py [--budget-min 10] [--threads 2] [--val-every 36] [--datasets synthetic,arcade]
                                   [--arcade DIR] [--work DIR] [--out DIR]

The budget is CPU time, not wall time (the machine may be shared): ``--budget-min M --threads T`` gives the
training process M x T CPU-minutes ("M minutes on T cores"). The number of steps is planned from
``--cpu-s-per-step`` (measured on this kind of machine; the warm-up/inverse-sqrt/cooldown schedule needs the
total up front) and the run is stopped if it uses twice the budget (then its last validation is missing). ``cpu_minutes`` reports the CPU time the
training process really used (user + system, children included).

``--out DIR`` writes ``DIR/learning.json``: per data set (``synthetic``, ``arcade``) ``model.dice``,
``model.cldice``, ``model.segm_AP`` (last validation), ``frangi.dice``, ``frangi.cldice``, ``steps``,
``cpu_minutes``, plus ``frangi.threshold`` and ``curve`` (every validation), and ``DIR/learning_<set>.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)



def _find_arcade() -> str:
    """``../shared/data/arcade/syntax_val`` next to the checkout (or next to a folder above it)."""
    here = ROOT
    while os.path.dirname(here) != here:
        here = os.path.dirname(here)
        cand = os.path.join(here, "shared", "data", "arcade", "syntax_val")
        if os.path.isdir(cand):
            return cand
    return os.path.join(os.path.dirname(ROOT), "shared", "data", "arcade", "syntax_val")


ARCADE = _find_arcade()
VESSEL_CATEGORY = {"id": 1, "name": "coronary artery", "supercategory": "vessel"}


def arcade_vessel_coco(src: str, out_root: str, n_val: int = 40) -> str:
    """ARCADE's syntax split as our vessel task: per image the union of every SYNTAX segment (one
    category, "coronary artery"); the first images train, the last ``n_val`` validate. Images linked."""
    from pycocotools import mask as mask_util

    from sam3_angio.data.rle import polygons_to_rle, union

    with open(os.path.join(src, "annotations.json")) as f:
        coco = json.load(f)
    by_image = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    images = sorted((im for im in coco["images"] if im["id"] in by_image), key=lambda im: im["id"])
    splits = {"train": images[:-n_val], "val": images[-n_val:]}
    root = os.path.join(out_root, "coco_vessel")
    for split, ims in splits.items():
        img_dir = os.path.join(root, split, "images")
        os.makedirs(img_dir, exist_ok=True)
        recs, anns = [], []
        for k, im in enumerate(ims, 1):
            h, w = im["height"], im["width"]
            rle = union([polygons_to_rle(a["segmentation"], h, w) for a in by_image[im["id"]]], h, w)
            rle = {"size": rle["size"], "counts": rle["counts"].decode("ascii") if isinstance(rle["counts"], bytes)
                   else rle["counts"]}
            link = os.path.join(img_dir, im["file_name"])
            if not os.path.exists(link):
                os.symlink(os.path.abspath(os.path.join(src, "images", im["file_name"])), link)
            recs.append({"id": k, "file_name": im["file_name"], "height": h, "width": w, "view_angles": None,
                         "patient_id": f"ARCADE{im['id']}", "phase": "PRE"})
            anns.append({"id": k, "image_id": k, "category_id": 1, "segmentation": rle, "iscrowd": 0,
                         "area": float(mask_util.area(rle)), "bbox": mask_util.toBbox(rle).tolist()})
        with open(os.path.join(root, split, "annotations.json"), "w") as f:
            json.dump({"images": recs, "annotations": anns, "categories": [VESSEL_CATEGORY]}, f)
    return out_root


def load_frames(split_dir: str, limit: int = 0):
    """Grey frames and their whole-tree masks (union of every annotation) of a COCO split."""
    from PIL import Image

    from sam3_angio.evaluation.ground_truth import GroundTruth
    from sam3_angio.data.rle import union
    from pycocotools import mask as mask_util

    gt = GroundTruth(os.path.join(split_dir, "annotations.json"))
    gt.prepare_masks()
    frames, masks = [], []
    for image_id in gt.image_ids[: limit or None]:
        h, w = gt.hw(image_id)
        rec = gt.images[image_id]
        frames.append(np.asarray(Image.open(os.path.join(split_dir, "images", rec["file_name"])).convert("L")))
        masks.append(mask_util.decode(union([gt.rle(a) for a in gt.annotations(image_id)], h, w)).astype(bool))
    return frames, masks


def frangi_scores(coco_root: str, fit_frames: int = 40) -> dict:
    from sam3_angio.evaluation.vesselness import FrangiBaseline

    t0 = time.process_time()
    tr_f, tr_m = load_frames(os.path.join(coco_root, "train"), limit=fit_frames)
    va_f, va_m = load_frames(os.path.join(coco_root, "val"))
    scores = FrangiBaseline().fit(tr_f, tr_m).score(va_f, va_m)
    scores["cpu_minutes"] = (time.process_time() - t0) / 60
    scores["n_train_frames"], scores["n_val_frames"] = len(tr_f), len(va_f)
    return scores


def _cpu_s(pid: int) -> float:
    """utime + stime of a live process and its waited-for children (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / tick


def train(data_root: str, exp: str, steps_per_epoch: int, epochs: int, val_every_epochs: int, threads: int,
          cpu_limit_s: float) -> dict:
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", "configs/angiography/vessel_segmentation.yaml",
           "model.name=sam3_tiny", f"paths.data_root={data_root}", f"paths.experiment_dir={exp}",
           "data.demo.generate_if_missing=false", f"trainer.max_epochs={epochs}",
           f"trainer.val_epoch_freq={val_every_epochs}", "profiles.sam3_tiny.limit_train_images=null",
           "trainer.skip_saving_ckpts=true"]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=ROOT)
    os.makedirs(exp, exist_ok=True)
    log = open(os.path.join(exp, "bench_train.log"), "w")
    before = os.times()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    cpu, stopped = 0.0, False
    while proc.poll() is None:
        time.sleep(2)
        try:
            cpu = _cpu_s(proc.pid)
        except (OSError, IndexError):
            continue
        if cpu > cpu_limit_s:
            proc.terminate()
            stopped = True
            proc.wait()
    after = os.times()
    cpu = max(cpu, (after.children_user - before.children_user) + (after.children_system - before.children_system))
    log.close()
    if proc.returncode not in (0, None) and not stopped:
        raise SystemExit(f"training failed ({proc.returncode}); see {exp}/bench_train.log")
    return {"cpu_minutes": cpu / 60, "stopped_over_budget": stopped}


def run_set(name: str, coco_root: str, args) -> dict:
    from sam3_angio.evaluation.learning import plot_learning_curve, read_history

    data_root = os.path.dirname(coco_root)
    with open(os.path.join(coco_root, "train", "annotations.json")) as f:
        n_train = len(json.load(f)["images"])
    steps_per_epoch = n_train // 2  # tiny profile: batch 2, drop_last
    budget_s = args.budget_min * args.threads * 60
    planned = max(steps_per_epoch, int(budget_s / args.cpu_s_per_step))
    epochs = max(1, round(planned / steps_per_epoch))
    val_every = max(1, round(args.val_every / steps_per_epoch))
    print(f"[{name}] {n_train} training frames, {steps_per_epoch} steps an epoch; budget {budget_s / 60:.1f} CPU-min "
          f"-> {epochs} epochs ({epochs * steps_per_epoch} steps), validation every {val_every} epoch(s)", flush=True)
    frangi = frangi_scores(coco_root)
    print(f"[{name}] Frangi (threshold {frangi['threshold']:.3f} fitted on {frangi['n_train_frames']} training "
          f"frames): Dice {frangi['dice']:.3f} clDice {frangi['cldice']:.3f} on {frangi['n_val_frames']} val frames",
          flush=True)
    exp = os.path.join(args.work, f"run_{name}")
    info = train(data_root, exp, steps_per_epoch, epochs, val_every, args.threads, 2.0 * budget_s)
    history = read_history(exp)
    for r in history:
        print(f"[{name}]   step {r['steps']:>5}: Dice {r['dice']:.3f} clDice {r['cldice']:.3f} segm AP {r['segm.AP']:.4f}")
    last = history[-1] if history else {}
    out = {
        "model.dice": last.get("dice"), "model.cldice": last.get("cldice"), "model.segm_AP": last.get("segm.AP"),
        "frangi.dice": frangi["dice"], "frangi.cldice": frangi["cldice"], "frangi.threshold": frangi["threshold"],
        "steps": last.get("steps"), "cpu_minutes": round(info["cpu_minutes"], 2),
        "frangi.cpu_minutes": round(frangi["cpu_minutes"], 2), "stopped_over_budget": info["stopped_over_budget"],
        "curve": history, "experiment_dir": exp,
    }
    png = os.path.join(args.out or args.work, f"learning_{name}.png")
    plot_learning_curve(history, png, title=f"tiny SAM3 phase 1 from random weights, {name}: "
                        f"{out['cpu_minutes']:.1f} CPU-min", baseline={"dice": frangi["dice"], "cldice": frangi["cldice"]})
    out["png"] = png
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget-min", type=float, default=10.0, help="minutes on --threads cores (CPU time)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--val-every", type=int, default=36, help="validate about every N training steps")
    ap.add_argument("--cpu-s-per-step", type=float, default=1.6,
                    help="CPU seconds a step costs, validation included (plans the schedule's length)")
    ap.add_argument("--datasets", default="synthetic,arcade")
    ap.add_argument("--arcade", default=ARCADE, help="ARCADE syntax split (annotations.json + images/)")
    ap.add_argument("--arcade-val", type=int, default=40, help="ARCADE frames held out for validation")
    ap.add_argument("--work", default=None, help="data and runs (default: a folder under /tmp)")
    ap.add_argument("--out", default=None, help="write learning.json and the PNGs here")
    args = ap.parse_args(argv)
    args.work = args.work or os.path.join("/tmp", f"bench_learning_{os.getpid()}")
    os.makedirs(args.work, exist_ok=True)
    results = {}
    for name in [s.strip() for s in args.datasets.split(",") if s.strip()]:
        if name == "synthetic":
            from sam3_angio.data.demo import ensure_demo_data

            root = os.path.join(args.work, "synthetic_demo")
            ensure_demo_data(root, "vessel")
        elif name == "arcade":
            if not os.path.isfile(os.path.join(args.arcade, "annotations.json")):
                print(f"[arcade] no ARCADE data at {args.arcade} (--arcade DIR); skipped")
                continue
            root = arcade_vessel_coco(args.arcade, os.path.join(args.work, "arcade"), n_val=args.arcade_val)
        else:
            raise SystemExit(f"unknown data set {name!r}: expected synthetic or arcade")
        results[name] = run_set(name, os.path.join(root, "coco_vessel"), args)
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            with open(os.path.join(args.out, "learning.json"), "w") as f:
                json.dump(results, f, indent=2)

    print("\n data set  | model Dice | model clDice | model segm AP | Frangi Dice | Frangi clDice | steps | CPU-min")
    for name, r in results.items():
        fmt = lambda v, p=3: "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{p}f}"  # noqa: E731
        print(f" {name:<9} | {fmt(r['model.dice']):>10} | {fmt(r['model.cldice']):>12} | {fmt(r['model.segm_AP'], 4):>13} |"
              f" {fmt(r['frangi.dice']):>11} | {fmt(r['frangi.cldice']):>13} | {r['steps']} | {r['cpu_minutes']:.1f}")
    if args.out:
        print(f"\nwrote {os.path.join(args.out, 'learning.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
