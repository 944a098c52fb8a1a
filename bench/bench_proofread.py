#!/usr/bin/env python
"""Do clicks help, and does proofread training hurt automatic? Two runs of the CASS model, same seed, same
batches, same number of steps, CPU:

- ``automatic``: ``training.modes=[automatic]``;
- ``automatic+proofread``: ``training.modes=[automatic, proofread]`` (two passes a step, loss = their mean).

Then on the val frames: for each frame one target segment (fixed seed), Dice of the target's predicted mask
(the best-scoring instance of its text query, upsampled to the ground truth) without clicks (automatic
pass) and with 1, 3 and 5 positive clicks inside it (+1 negative on another labelled segment; the proofread
pass). The automatic Dice of both runs answers "does proofread training hurt automatic" (budget: the
proofread run is not given more steps; each of its steps costs about 1.5x).

Model: ``sam3_tiny`` (random init, ``build_sam3_tiny(seed)``) in ``ViewConditionedSam3`` with the cass
config's loss (``scratch.angio_loss``), all parameters trained with Adam. Data: synthetic frames of the
test suite's tiny COCO writer (``tests/tiny_coco.py``: 128 px, 4 CASS classes, ~3 segments a frame; 4
text queries a frame keep a step affordable on a shared 2-core CPU), or with ``--demo`` the synthetic
angiography demo (``ensure_demo_data``, 14 classes; about 5x slower a step). Train/val transforms and
collate of the config.

    python bench/bench_proofread.py [--train-frames 16] [--steps 12] [--seed 0] [--threads 2] [--demo]
                                    [--warmup 80] [--resolution 112]
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def config(data_root: str, class_ids, resolution: int = 224):
    from omegaconf import OmegaConf

    from sam3_angio.config import compose, finalize

    cfg = finalize(compose("cass", [f"paths.data_root={data_root}", "model.name=sam3_tiny",
                                    "data.demo.generate_if_missing=false", f"model.class_ids={list(class_ids)}",
                                    f"profiles.sam3_tiny.resolution={int(resolution)}"]))
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))


def batches(cfg, split: str, n_batches: int, seed: int, batch_size: int = 2):
    from hydra.utils import instantiate

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    data = cfg.trainer.data[split]
    dataset, collate, key = instantiate(data.dataset), instantiate(data.collate_fn), data.collate_fn.dict_key
    order = np.random.default_rng(seed).permutation(len(dataset)).tolist()
    out = []
    for b in range(n_batches):
        items = [dataset[order[(b * batch_size + j) % len(dataset)]] for j in range(batch_size)]
        out.append(collate(items)[key])
    return out, len(dataset)


def train(modes, detector, cfg, train_batches, seed: int, lr: float, start=None):
    """Train a fresh wrapper of ``detector`` (or, with ``start``, of the warm-up model's weights: the prompt
    encoder, which it lacks, starts new) on ``train_batches``; returns (model, seconds)."""
    from hydra.utils import instantiate

    from sam3_angio.model.view_conditioned import ViewConditionedSam3

    torch.manual_seed(seed)
    model = ViewConditionedSam3(copy.deepcopy(detector), class_ids=list(cfg.model.class_ids), modes=modes)
    if start is not None:
        missing, unexpected = model.load_state_dict(start.state_dict(), strict=False)
        stray = [k for k in [*missing, *unexpected] if not k.startswith("prompt_encoder.")]
        if stray:
            raise RuntimeError(f"warm-up weights do not fit the {'+'.join(modes)} model: {stray[:5]}")
    loss_fn = instantiate(cfg.scratch.angio_loss)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    t0 = time.perf_counter()
    for i, batch in enumerate(train_batches):
        targets = [model.back_convert(t) for t in batch.find_targets]
        loss = loss_fn(model(batch), targets)["core_loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i % 10 == 0:
            print(f"  {'+'.join(modes)} step {i}: loss {float(loss):.3f}", flush=True)
    return model.eval(), time.perf_counter() - t0


def dice(pred: torch.Tensor, gt: torch.Tensor) -> float:
    inter = (pred & gt).sum().item()
    return 2 * inter / max(1, pred.sum().item() + gt.sum().item())


def clicks_for(target: torch.Tensor, others: torch.Tensor, n_pos: int, rng: np.random.Generator):
    """n_pos positive clicks uniformly inside ``target`` (H, W) and one negative on ``others`` (or outside)."""
    h, w = target.shape
    inside = np.argwhere(target.numpy())
    pos = inside[rng.choice(len(inside), size=n_pos, replace=len(inside) < n_pos)]
    out_px = np.argwhere((others & ~target).numpy()) if others.any() else np.argwhere(~target.numpy())
    neg = out_px[rng.choice(len(out_px), size=1)]
    return [((x + 0.5) / w, (y + 0.5) / h, True) for y, x in pos] + [((x + 0.5) / w, (y + 0.5) / h, False)
                                                                     for y, x in neg]


@torch.no_grad()
def evaluate(model, val_batches, click_counts, seed: int):
    """{n_clicks: mean target Dice} (0 = automatic pass), one target a frame."""
    from sam3_angio.model.prompt_encoder import Clicks

    rng = np.random.default_rng(seed)
    scores = {n: [] for n in (0, *click_counts)}
    for batch in val_batches:
        target, inputs, meta = batch.find_targets[0], batch.find_inputs[0], batch.find_metadatas[0]
        num = target.num_boxes.long()
        q_img = inputs.img_ids.long()
        obj_q = torch.repeat_interleave(torch.arange(len(num)), num)
        segs = target.segments.bool()
        n_img = batch.img_batch.shape[0]
        picks = []  # (image, query, object) of each frame's target
        for b in range(n_img):
            objs = [o for o in range(len(obj_q)) if q_img[obj_q[o]] == b and segs[o].any()]
            if objs:
                picks.append((b, int(obj_q[objs[rng.integers(len(objs))]]), objs))
        if not picks:
            continue
        chosen = {b: objs[[int(obj_q[o]) for o in objs].index(q)] for b, q, objs in picks}

        def target_dice(last, b, q, o):
            probs = last["pred_logits"][q, :, 0].sigmoid()
            best = int(probs.argmax())
            low = last["pred_masks"][q, best][None, None].float()
            pred = F.interpolate(low, size=segs.shape[-2:], mode="bilinear", align_corners=False)[0, 0] > 0
            return dice(pred, segs[o])

        auto = model(batch).output[-1][-1]
        for b, q, _ in picks:
            scores[0].append(target_dice(auto, b, q, chosen[b]))
        if model.prompt_encoder is None:
            continue
        for n in click_counts:
            per_frame, classes = [[] for _ in range(n_img)], [-1] * n_img
            for b, q, objs in picks:
                o = chosen[b]
                others = torch.zeros_like(segs[o])
                for other in objs:
                    if other != o:
                        others |= segs[other]
                per_frame[b] = clicks_for(segs[o], others, n, rng)
                classes[b] = int(model.class_index(torch.tensor([int(meta.original_category_id[q])]))[0])
            out = model(batch, clicks=Clicks.of(per_frame, classes)).output[-1][-1]
            for b, q, _ in picks:
                scores[n].append(target_dice(out, b, q, chosen[b]))
    return {n: (float(np.mean(v)) if v else float("nan"), len(v)) for n, v in scores.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train-frames", type=int, default=16, help="tiny data: train frames (val: half)")
    p.add_argument("--demo", action="store_true", help="the synthetic angiography demo instead of the tiny data")
    p.add_argument("--patients", type=int, default=6, help="--demo: synthetic patients")
    p.add_argument("--steps", type=int, default=12, help="training steps of each run (batches of 2)")
    p.add_argument("--val-batches", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", help="existing data root (coco_cass below it); default: a temporary folder")
    p.add_argument("--warmup", type=int, default=0,
                   help="automatic steps (other batches) before both runs, so they start from a model that "
                        "already segments; 0: both start from random weights")
    p.add_argument("--resolution", type=int, default=224, help="model input size (the tiny profile's is 224)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from sam3_angio import cpu_compat
    from sam3_angio.cass import DEFAULT_CLASS_IDS
    from sam3_angio.data.demo import ensure_demo_data
    from sam3_angio.model.tiny import build_sam3_tiny
    from sam3_angio.training.launch import ensure_process_group

    cpu_compat.apply()
    ensure_process_group()  # SAM3's losses all-reduce their normaliser
    root = args.data or tempfile.mkdtemp(prefix="bench_proofread_")
    if args.demo:
        ensure_demo_data(root, "cass", n_patients=args.patients, seed=args.seed)
        class_ids = DEFAULT_CLASS_IDS
    else:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
        from tiny_coco import cass_categories, write_tiny_coco

        class_ids = [1, 2, 12, 13]
        if not os.path.isdir(os.path.join(root, "coco_cass")):
            write_tiny_coco(os.path.join(root, "coco_cass"), cass_categories(class_ids), n_train=args.train_frames,
                            n_val=max(2, args.train_frames // 2))
    cfg = config(root, class_ids, args.resolution)
    train_batches, n_train = batches(cfg, "train", args.steps, args.seed)
    val_batches, n_val = batches(cfg, "val", args.val_batches, args.seed + 1)
    print(f"data: {n_train} train / {n_val} val frames; {args.steps} steps of 2 frames each run, seed {args.seed}")
    detector = build_sam3_tiny(image_size=args.resolution, seed=args.seed)
    start = None
    if args.warmup:
        warm_batches, _ = batches(cfg, "train", args.warmup, args.seed + 2)
        print(f"warm-up: {args.warmup} automatic steps, shared by both runs")
        start, secs = train(["automatic"], detector, cfg, warm_batches, args.seed, args.lr)
        print(f"  warm-up done in {secs:.0f} s")
    results = {}
    for modes in (["automatic"], ["automatic", "proofread"]):
        model, secs = train(modes, detector, cfg, train_batches, args.seed, args.lr, start=start)
        results["+".join(modes)] = (evaluate(model, val_batches, (1, 3, 5), args.seed), secs)
    print("\nrun                   train s   target Dice: no clicks   1 click   3 clicks   5 clicks")
    for name, (res, secs) in results.items():
        cols = [f"{res[n][0]:.3f}" if n in res and res[n][1] else "-" for n in (0, 1, 3, 5)]
        print(f"{name:<22}{secs:8.0f}   {cols[0]:>22}   {cols[1]:>7}   {cols[2]:>8}   {cols[3]:>8}")
    a = results["automatic"][0][0][0]
    b = results["automatic+proofread"][0][0][0]
    print(f"\nautomatic Dice: automatic-only {a:.3f}, automatic+proofread {b:.3f} "
          f"(difference {100 * (b - a):+.1f} points; frames: {results['automatic'][0][0][1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
