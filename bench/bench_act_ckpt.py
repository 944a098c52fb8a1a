"""Activation checkpointing in the tiny model: step time with every optional switch on vs off (vision
trunk, the segmentation head around and inside, geometry encoder; SAM3's fusion encoder and decoder
require theirs on), in one process, alternating (the machine's noise hits both alike), and the gradients
of the two (they must be identical: checkpointing recomputes the same forward).

    python bench/bench_act_ckpt.py [--task vessel_segmentation|cass] [--rounds 6] [--only ViT]

Measured 2026-12-03 13:35 UTC, 2 quiet cores (OMP_NUM_THREADS=2), tiny model, batch 2 at 224 px:
vessel task 0.531 s on, 0.420 s off (off / on 0.79); CASS task (4 phrases) 1.549 s on, 1.115 s off
(0.72); the vision trunk alone 0.444 vs 0.432 s (0.97); max |grad difference| 0 in each. ``sam3_tiny``
builds with them off (its profile's ``activation_checkpointing: false`` for the trunk).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="vessel_segmentation", choices=["vessel_segmentation", "cass"])
    ap.add_argument("--rounds", type=int, default=6, help="steps per setting (the first is warm-up)")
    ap.add_argument("--only", default="", help="toggle one module type's switch (e.g. ViT), not all")
    args = ap.parse_args()

    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from model_fixtures import make_batches
    from sam3_angio.config import compose, finalize
    from sam3_angio.training.launch import ensure_process_group
    from tiny_coco import VESSEL_CATEGORIES, cass_categories, write_tiny_coco

    root = tempfile.mkdtemp(prefix="bench_act_ckpt_")
    write_tiny_coco(os.path.join(root, "coco_vessel"), VESSEL_CATEGORIES, n_train=4, n_val=2, cats_per_image=1)
    write_tiny_coco(os.path.join(root, "coco_cass"), cass_categories([1, 2, 12, 13]), n_train=4, n_val=2)
    ensure_process_group()
    over = ["model.name=sam3_tiny", f"paths.data_root={root}", "data.demo.generate_if_missing=false"]
    if args.task == "cass":
        over.append("model.class_ids=[1,2,12,13]")
    cfg = OmegaConf.create(OmegaConf.to_container(finalize(compose(args.task, over)), resolve=True))
    torch.manual_seed(0)
    model = instantiate(cfg.trainer.model, _convert_="all").train()
    loss_fn = instantiate(cfg.scratch.angio_loss)
    batch = make_batches(root, args.task)[0]
    # (module, attribute) of every switch but the fusion encoder's and decoder's, which SAM3 requires on in
    # training (sam3.model.encoder and sam3.model.decoder assert it).
    attrs = ("act_ckpt", "use_act_checkpoint", "use_act_ckpt", "use_act_checkpoint_seg_head")
    required = ("TransformerDecoder", "TransformerEncoderFusion")
    switches = [(m, a) for m in model.modules() for a in attrs if hasattr(m, a) and type(m).__name__ not in required]
    if args.only:
        switches = [(m, a) for m, a in switches if type(m).__name__ == args.only]
    if not switches:
        print("no activation-checkpointing switch in this model")
        return 1

    def step():
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        out = model(batch)
        loss_fn(out, [model.back_convert(t) for t in batch.find_targets])["core_loss"].backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    times, grads = {True: [], False: []}, {}
    for _ in range(args.rounds):
        for flag in (True, False):
            for m, a in switches:
                setattr(m, a, flag)
            t0 = time.perf_counter()
            grads[flag] = step()
            times[flag].append(time.perf_counter() - t0)
    on, off = (statistics.median(times[f][1:]) for f in (True, False))
    diff = max((grads[True][k] - grads[False][k]).abs().max().item() for k in grads[True])
    names = ", ".join(sorted({type(m).__name__ for m, _ in switches}))
    print(f"{args.task}, {names}: step {on:.3f} s with activation checkpointing, "
          f"{off:.3f} s without; off / on = {off / on:.3f}; max |grad difference| {diff:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
