"""Does view conditioning help CASS naming? Train the CASS naming path twice - with and without the view
angles - same seed, same data, same budget, and print top-1 accuracy for both and their difference.

What is trained: the wrapper's view encoder, FiLM and CASS head (``ViewConditionedSam3``, the same code
the trainer runs) on top of a frozen ``sam3_tiny`` backbone whose feature maps are computed once. The
encoder/decoder of SAM3 are not in the naming path, so leaving them out changes nothing but the CPU time.
Data: synthetic angiograms (``ensure_demo_data``, CASS task), where a segment's place in the frame depends
on the C-arm view.

    python bench/bench_view_conditioning.py [--patients 40] [--epochs 60] [--seed 0] [--data DIR] [--compare-global]

``--end-to-end`` measures the whole phase 2 path instead: ``tools/train.py -c configs/angiography/cass.yaml``
with a trainable backbone, with and without the angles (``model.view.conditioning``), same data, seed and
budget, for each of ``--seeds``; it reports the end-to-end naming accuracy of predicted segments
(``cass.naming_top1``), CASS AP (``segm.AP``) and the head-on-true-regions accuracy, mean and spread over the
seeds, and the angle-sweep diagnostics of each conditioned model (``sam3_angio/evaluation/view_sweep.py``:
how much the CASS probabilities and the masks move when only the angles change). ``--phase1 auto`` trains
phase 1 once first and starts every phase 2 run from it (as the study does); ``--phase1 CKPT`` uses a
checkpoint; ``--phase1 none`` starts from random weights.

    python bench/bench_view_conditioning.py --end-to-end --seeds 0,1,2 --e2e-epochs 4 --out DIR

``--geometry-probe`` asks why the gain is small: how well does a segment's *shape and place in the frame*
alone (centroid, box, area, orientation, elongation of its mask; no pixels of the image) name it, with and
without the angles, by a gradient-boosted classifier (scikit-learn) trained on the train split and scored on
val, over ``--seeds``. If geometry alone already names most segments, the angles have little left to add.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pycocotools import mask as mask_util

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_split(root: str, split: str, size: int):
    """Images (N, 3, size, size) normalised as the configs do, masks (S, size, size), image index (S,),
    CASS category (S,), angles (N, 2), known (N,)."""
    with open(os.path.join(root, split, "annotations.json")) as f:
        coco = json.load(f)
    ids = [im["id"] for im in coco["images"]]
    index = {i: k for k, i in enumerate(ids)}
    imgs, angles, known = [], [], []
    for im in coco["images"]:
        pil = Image.open(os.path.join(root, split, "images", im["file_name"])).convert("RGB").resize((size, size))
        imgs.append(torch.from_numpy(np.asarray(pil)).permute(2, 0, 1).float() / 255.0)
        va = im.get("view_angles")
        angles.append([va["primary"], va["secondary"]] if va else [0.0, 0.0])
        known.append(va is not None)
    masks, img_idx, cats = [], [], []
    for a in coco["annotations"]:
        m = mask_util.decode(a["segmentation"])
        m = torch.from_numpy(m).float()[None, None]
        masks.append(F.interpolate(m, size=(size, size), mode="nearest")[0, 0] > 0)
        img_idx.append(index[a["image_id"]])
        cats.append(a["category_id"])
    x = (torch.stack(imgs) - 0.5) / 0.5
    return x, torch.stack(masks), torch.tensor(img_idx), torch.tensor(cats), torch.tensor(angles), torch.tensor(known)


@torch.no_grad()
def backbone_features(detector, x, batch=8):
    feats = []
    for i in range(0, len(x), batch):
        feats.append([f.clone() for f in detector.backbone.forward_image(x[i:i + batch])["backbone_fpn"]])
    return [torch.cat([f[lvl] for f in feats]) for lvl in range(len(feats[0]))]


def run(conditioning: bool, detector, train, val, class_ids, epochs: int, seed: int, lr: float = 1e-3,
        pooling: str = "region"):
    from sam3_angio.losses import CassCrossEntropy
    from sam3_angio.model.view_conditioned import ViewConditionedSam3
    from sam3_angio.view_angles import ViewBatch

    torch.manual_seed(seed)
    model = ViewConditionedSam3(detector, class_ids=class_ids, view_conditioning=conditioning,
                                cass_head={"name": "mlp", "pooling": pooling})
    heads = [p for n, p in model.named_parameters() if not n.startswith("detector.")]
    opt = torch.optim.AdamW(heads, lr=lr, weight_decay=1e-4)
    table = model._cat_to_class
    ce = CassCrossEntropy(class_ids=class_ids, class_weights="none")

    def logits(split, train_mode):
        feats, masks, img_idx, cats, angles, known = split
        model.train(train_mode)
        e = model.embed_views(ViewBatch(angles, known), "cpu")
        f = model.film[-1](feats, e) if conditioning else feats
        return model.name_regions(f, masks, img_idx, e), table[cats]

    gen = torch.Generator().manual_seed(seed)
    n = len(train[1])
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for chunk in order.split(64):
            feats, masks, img_idx, cats, angles, known = train
            used = torch.unique(img_idx[chunk])
            remap = torch.full((feats.shape[0],), -1, dtype=torch.long)
            remap[used] = torch.arange(len(used))
            sub = (feats[used], masks[chunk], remap[img_idx[chunk]], cats[chunk], angles[used], known[used])
            out, y = logits(sub, True)
            loss = ce(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        out, y = logits(val, False)
    keep = y >= 0
    pred = out[keep].argmax(1)
    top1 = (pred == y[keep]).float().mean().item()
    recalls = [((pred == c) & (y[keep] == c)).sum().item() / max(1, (y[keep] == c).sum().item())
               for c in torch.unique(y[keep])]
    return top1, float(np.mean(recalls)), int(keep.sum())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--patients", type=int, default=40)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", help="existing data root (coco_cass below it); default: a temporary folder")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--compare-global", action="store_true",
                   help="also train the globally pooled head (the study's phase 2 design), with angles")
    p.add_argument("--end-to-end", action="store_true",
                   help="train the whole phase 2 path through tools/train.py with and without angles, per seed")
    p.add_argument("--seeds", default="0,1,2", help="--end-to-end: comma-separated seeds (at least 3 for a spread)")
    p.add_argument("--e2e-epochs", type=int, default=4, help="--end-to-end: phase 2 epochs per run")
    p.add_argument("--train-images", type=int, default=None,
                   help="--end-to-end: train on the first N frames (default: all of the data set's train split)")
    p.add_argument("--phase1", default="auto", help="--end-to-end: auto (train phase 1 once, shared) | CKPT | none")
    p.add_argument("--phase1-epochs", type=int, default=6, help="--end-to-end, --phase1 auto: phase 1 epochs")
    p.add_argument("--sweep-frames", type=int, default=4, help="--end-to-end: val frames of the angle sweep")
    p.add_argument("--out", help="--end-to-end: output folder (runs, logs, view_conditioning_e2e.json); "
                                 "default: a temporary folder")
    p.add_argument("--geometry-probe", action="store_true",
                   help="name segments from their mask geometry alone, with and without the angles (no model)")
    args = p.parse_args(argv)
    if args.end_to_end:
        return end_to_end(args)
    if args.geometry_probe:
        return geometry_probe(args)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    from sam3_angio.cass import DEFAULT_CLASS_IDS
    from sam3_angio.data.demo import ensure_demo_data
    from sam3_angio.model.tiny import build_sam3_tiny

    t0 = time.process_time()
    root = args.data or tempfile.mkdtemp(prefix="bench_view_")
    paths = ensure_demo_data(root, "cass", n_patients=args.patients, seed=args.seed)
    coco_root = os.path.dirname(os.path.dirname(paths["train_json"]))
    detector = build_sam3_tiny(image_size=args.size, seed=args.seed).eval()
    splits = {}
    for split in ("train", "val"):
        x, masks, img_idx, cats, angles, known = load_split(coco_root, split, args.size)
        feats = backbone_features(detector, x)[-1]
        splits[split] = (feats, masks, img_idx, cats, angles, known)
        print(f"{split}: {len(x)} frames, {len(masks)} segments, angles known for {int(known.sum())}")
    results = {}
    for conditioning in (True, False):
        results[conditioning] = run(conditioning, detector, splits["train"], splits["val"],
                                    list(DEFAULT_CLASS_IDS), args.epochs, args.seed)
    if args.compare_global:
        glob = run(True, detector, splits["train"], splits["val"], list(DEFAULT_CLASS_IDS), args.epochs,
                   args.seed, pooling="global")
    cpu_min = (time.process_time() - t0) / 60
    on, off = results[True], results[False]
    print(f"CASS top-1 with view conditioning:    {on[0]:.4f}  (balanced {on[1]:.4f}, {on[2]} val segments)")
    print(f"CASS top-1 without view conditioning: {off[0]:.4f}  (balanced {off[1]:.4f})")
    print(f"difference (with - without):          {on[0] - off[0]:+.4f}  ratio {on[0] / max(off[0], 1e-9):.3f}")
    if args.compare_global:
        print(f"CASS top-1, global pooling + angles:  {glob[0]:.4f}  (balanced {glob[1]:.4f}): the whole frame "
              f"cannot say which segment is meant")
    print(f"CPU minutes: {cpu_min:.1f}")
    return 0


# ----------------------------------------------------------------------------- geometry probe

def region_geometry(coco_root: str, split: str):
    """Per annotation: geometry features (centroid x/y, box w/h, area: fractions of the frame; orientation
    as cos/sin of twice the principal angle; elongation), the frame's angles (NaN unknown), the category."""
    with open(os.path.join(coco_root, split, "annotations.json")) as f:
        coco = json.load(f)
    images = {im["id"]: im for im in coco["images"]}
    geo, ang, cats = [], [], []
    for a in coco["annotations"]:
        im = images[a["image_id"]]
        m = mask_util.decode(a["segmentation"]).astype(bool)
        ys, xs = np.nonzero(m)
        if len(xs) < 3:
            continue
        h, w = m.shape
        cx, cy = xs.mean() / w, ys.mean() / h
        cov = np.cov(np.stack([xs / w, ys / h]))
        evals, evecs = np.linalg.eigh(cov)
        theta = np.arctan2(evecs[1, 1], evecs[0, 1])
        elong = float(np.sqrt(evals[1] / max(evals[0], 1e-12)))
        geo.append([cx, cy, (xs.max() - xs.min() + 1) / w, (ys.max() - ys.min() + 1) / h, len(xs) / (h * w),
                    np.cos(2 * theta), np.sin(2 * theta), np.log(elong)])
        va = im.get("view_angles")
        ang.append([va["primary"], va["secondary"]] if va else [np.nan, np.nan])
        cats.append(a["category_id"])
    return np.asarray(geo), np.asarray(ang, float), np.asarray(cats)


def geometry_probe(args) -> int:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from sam3_angio.data.demo import ensure_demo_data

    t0 = time.process_time()
    root = args.data or tempfile.mkdtemp(prefix="bench_view_geo_")
    paths = ensure_demo_data(root, "cass", n_patients=args.patients, seed=0)
    coco_root = os.path.dirname(os.path.dirname(paths["train_json"]))
    tr, va = region_geometry(coco_root, "train"), region_geometry(coco_root, "val")
    print(f"segments: {len(tr[2])} train, {len(va[2])} val, {len(np.unique(tr[2]))} CASS classes")
    feature_sets = {"geometry": lambda d: d[0], "geometry + angles": lambda d: np.hstack([d[0], d[1]]),
                    "angles only": lambda d: d[1]}
    seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    results = {}
    for name, feats in feature_sets.items():
        accs = []
        for seed in seeds:
            clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=seed)
            clf.fit(feats(tr), tr[2])
            accs.append(float((clf.predict(feats(va)) == va[2]).mean()))
        results[name] = mean_std(accs)
    majority = float((va[2] == np.bincount(tr[2]).argmax()).mean())
    print(f"\nnaming top-1 on val from the mask geometry alone (no image), {len(seeds)} seeds, mean +- std:")
    for name, (m, sd) in results.items():
        print(f"  {name:20s} {m:.4f} +- {sd:.4f}")
    print(f"  {'majority class':20s} {majority:.4f}")
    g, ga = results["geometry"][0], results["geometry + angles"][0]
    print(f"angles add {100 * (ga - g):+.1f} points on top of geometry; CPU {(time.process_time() - t0) / 60:.1f} min")
    return 0


# ----------------------------------------------------------------------------- end to end

E2E_KEYS = ("cass.naming_top1", "cass.naming_top1_matched", "cass.naming_match_rate", "segm.AP", "segm.AP50",
            "bbox.AP50", "cass_head.top1_gt_regions")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(config: str, overrides, log_path: str) -> None:
    """One tools/train.py run; its console goes to ``log_path``; a failed run is an error naming the log."""
    import subprocess

    cmd = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "-c", config, *overrides]
    t0 = time.time()
    with open(log_path, "w") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    if rc != 0:
        with open(log_path) as f:
            tail = "".join(f.readlines()[-15:])
        raise SystemExit(f"error: training failed (exit {rc}); log: {log_path}\n{tail}")
    print(f"  done in {time.time() - t0:.0f} s (log: {log_path})", flush=True)


def val_frames(coco_root: str, n: int):
    """The first ``n`` validation frames (uint8 grey) of the CASS COCO split."""
    with open(os.path.join(coco_root, "val", "annotations.json")) as f:
        images = json.load(f)["images"][:n]
    return [np.asarray(Image.open(os.path.join(coco_root, "val", "images", im["file_name"])).convert("L"))
            for im in images]


def mean_std(values):
    v = [x for x in values if x is not None]
    if not v:
        return float("nan"), float("nan")
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def end_to_end(args) -> int:
    from sam3_angio.data.demo import ensure_demo_data
    from sam3_angio.evaluation.view_sweep import STANDARD_VIEWS, angle_sweep
    from sam3_angio.inference.predictor import Predictor

    seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    if not seeds:
        raise SystemExit("error: --seeds: give at least one seed, e.g. 0,1,2")
    out = os.path.abspath(args.out or tempfile.mkdtemp(prefix="bench_view_e2e_"))
    os.makedirs(out, exist_ok=True)
    t_cpu, t_wall = time.process_time(), time.time()
    data = os.path.abspath(args.data or os.path.join(out, "data"))
    paths = ensure_demo_data(data, "cass", n_patients=args.patients, seed=0)
    ensure_demo_data(data, "vessel", n_patients=args.patients, seed=0)
    coco_root = os.path.dirname(os.path.dirname(paths["train_json"]))
    common = [f"paths.data_root={data}", f"profiles.sam3_tiny.resolution={args.size}"]
    phase1 = None
    if args.phase1 == "auto":
        p1_root = os.path.join(out, "phase1")
        print(f"phase 1 (whole tree, {args.phase1_epochs} epochs, seed 0), shared by every phase 2 run", flush=True)
        train("configs/angiography/vessel_segmentation.yaml",
              [*common, f"paths.experiments_root={p1_root}", f"trainer.max_epochs={args.phase1_epochs}",
               "trainer.seed_value=0"], os.path.join(out, "phase1.log"))
        phase1 = os.path.join(p1_root, "vessel_segmentation", "checkpoints", "checkpoint.pt")
    elif args.phase1 != "none":
        phase1 = os.path.abspath(args.phase1)
        if not os.path.isfile(phase1):
            raise SystemExit(f"error: --phase1 {args.phase1}: no such checkpoint")
    limit = "null" if args.train_images is None else str(int(args.train_images))
    frames = val_frames(coco_root, args.sweep_frames)
    views = [(p_, s_) for _, p_, s_ in STANDARD_VIEWS]
    runs = {}
    for seed in seeds:
        for cond in (True, False):
            name = f"seed{seed}_{'with' if cond else 'without'}_angles"
            root = os.path.join(out, name)
            overrides = [*common, f"paths.experiments_root={root}", f"model.view.conditioning={str(cond).lower()}",
                         f"trainer.seed_value={seed}", "profiles.sam3_tiny.phase1_first=false",
                         f"trainer.max_epochs={args.e2e_epochs}", f"profiles.sam3_tiny.limit_train_images={limit}"]
            if phase1:
                overrides += [f"paths.phase1_checkpoint={phase1}"]
            print(f"phase 2, {name}", flush=True)
            train("configs/angiography/cass.yaml", overrides, os.path.join(out, f"{name}.log"))
            with open(os.path.join(root, "cass", "metrics.json")) as f:
                m = json.load(f)
            rec = {k: m.get(k) for k in E2E_KEYS}  # metrics.json: flat keys (evaluation/keys.py)
            ckpt = os.path.join(root, "cass", "checkpoints", "checkpoint.pt")
            rec["sweep"] = angle_sweep(Predictor.from_checkpoint(ckpt), frames, views)
            runs[name] = rec

    summary = {}
    for cond in ("with", "without"):
        recs = [runs[f"seed{s}_{cond}_angles"] for s in seeds]
        summary[cond] = {k: dict(zip(("mean", "std"), mean_std([r[k] for r in recs]))) for k in E2E_KEYS}
    diffs = {k: dict(zip(("mean", "std"), mean_std(
        [None if runs[f"seed{s}_with_angles"][k] is None or runs[f"seed{s}_without_angles"][k] is None
         else runs[f"seed{s}_with_angles"][k] - runs[f"seed{s}_without_angles"][k] for s in seeds])))
        for k in E2E_KEYS}
    sweep_keys = list(runs[f"seed{seeds[0]}_with_angles"]["sweep"])
    sweep = {c: {k: dict(zip(("mean", "std"), mean_std([runs[f"seed{s}_{c}_angles"]["sweep"][k] for s in seeds])))
                 for k in sweep_keys} for c in ("with", "without")}
    result = {"seeds": seeds, "epochs": args.e2e_epochs, "resolution": args.size, "patients": args.patients,
              "train_images": args.train_images, "phase1": phase1, "runs": runs, "summary": summary,
              "difference": diffs, "angle_sweep": sweep, "views": [v[0] for v in STANDARD_VIEWS],
              "cpu_minutes_this_process": (time.process_time() - t_cpu) / 60,
              "wall_minutes": (time.time() - t_wall) / 60}
    with open(os.path.join(out, "view_conditioning_e2e.json"), "w") as f:
        json.dump(result, f, indent=2)

    print(f"\nend to end, {len(seeds)} seeds ({seeds}), {args.e2e_epochs} phase 2 epochs at {args.size} px; "
          f"mean +- std over seeds")
    print(f"{'metric':32s} {'with angles':>18s} {'without':>18s} {'with - without':>18s}")
    for k in E2E_KEYS:
        w, o, d = summary["with"][k], summary["without"][k], diffs[k]
        print(f"{k:32s} {w['mean']:8.4f} +- {w['std']:6.4f} {o['mean']:8.4f} +- {o['std']:6.4f} "
              f"{d['mean']:+8.4f} +- {d['std']:6.4f}")
    print(f"\nangle sweep ({len(views)} standard views, {len(frames)} val frames; change against the first view)")
    for k in sweep_keys:
        w, o = sweep["with"][k], sweep["without"][k]
        print(f"{k:32s} {w['mean']:10.5f} +- {w['std']:8.5f} {o['mean']:10.5f} +- {o['std']:8.5f}")
    print(f"\nwrote {os.path.join(out, 'view_conditioning_e2e.json')}; wall {result['wall_minutes']:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
