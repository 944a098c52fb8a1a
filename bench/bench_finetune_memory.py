"""Fine-tuning cost: full fine-tuning vs LoRA vs LoRA + text cache, in one process.

For each mode it prints trainable parameters, AdamW optimiser-state bytes (measured from the optimiser's
state after a step) and the median training-step time on the CASS task (forward, SAM3's matcher and
losses + CASS CE, backward, AdamW step) of the tiny model on CPU, batch 2 at 224 px, the ratios to full
fine-tuning, the CASS / vessel step-time ratio (vessel: phase 1, one phrase) before and after
``model.shared_image_work`` (SAM3's segmentation head vs the shared one) and where one CASS step's
time goes (image backbone, text, prompt/geometry encoder, fusion encoder, decoder, segmentation head,
matcher + losses, our heads, backward, optimiser).

    python bench/bench_finetune_memory.py [--steps 5] [--batch 2] [--max-phrases 3]
    python bench/bench_finetune_memory.py --model sam3 --device cpu --dry-run
    python bench/bench_finetune_memory.py --model sam3 --device cuda --steps 10   # bench/gpu/finetune_step.sh

``--dry-run`` builds the real 840 M architecture with random weights (no checkpoint needed, ~4 GB of
RAM) and prints trainable parameters and optimiser bytes per mode - the full-size numbers to plan a GPU
with (AdamW: 2 fp32 moments per trainable parameter; weights and activations come on top).

Modes: ``full`` = every SAM3 weight trains (language backbone too, so no cache); ``lora`` = LoRA on the
default groups (model.lora.targets), language backbone frozen, cache off; ``lora+cache`` = the same
with the text cache (the default of a LoRA CASS run); ``lora+cache, sampled`` = that with at most
``--max-phrases`` text queries a training frame (``data.max_phrases_per_frame``, a quarter of them absent
categories; sam3_angio/transforms/queries.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MODES = {
    "full": ["model.freeze.language_backbone=false", "model.text_cache=false"],
    "lora": ["model.lora.enabled=true", "model.text_cache=false"],
    "lora+cache": ["model.lora.enabled=true", "model.text_cache=true"],
}
# "Before": SAM3's segmentation head as released, its pixel decoder per (frame, phrase); the modes above
# run with the config's default model.shared_image_work=true (sam3_angio/model/shared_seg_head.py).
BEFORE = "lora+cache, SAM3 head"
BEFORE_OVERRIDES = [*MODES["lora+cache"], "model.shared_image_work=false"]
SAMPLED = "lora+cache, sampled"


def _cfg(task_config: str, root: str, batch: int, extra=()):
    from omegaconf import OmegaConf

    from sam3_angio.config import compose, finalize

    cfg = finalize(compose(task_config, [f"paths.data_root={root}", "model.name=sam3_tiny",
                                         f"scratch.train_batch_size={batch}", *extra]))
    return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))


def _batch(cfg):
    from hydra.utils import instantiate

    data = cfg.trainer.data.train
    dataset = instantiate(data.dataset)
    collate = instantiate(data.collate_fn)
    n = cfg.scratch.train_batch_size
    return collate([dataset[i % len(dataset)] for i in range(n)])[data.collate_fn.dict_key]


def optimizer_state_bytes(opt: torch.optim.Optimizer) -> int:
    return sum(v.numel() * v.element_size() for st in opt.state.values() for v in st.values()
               if isinstance(v, torch.Tensor))


class Profile:
    """Wall time per stage, by wrapping the stage functions of one model instance."""

    def __init__(self):
        self.t = defaultdict(float)
        self.calls = defaultdict(int)
        self.on = False

    def wrap(self, obj, attr, label):
        fn = getattr(obj, attr)

        def timed(*a, **k):
            if not self.on:
                return fn(*a, **k)
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.t[label] += time.perf_counter() - t0
                self.calls[label] += 1

        setattr(obj, attr, timed)


def _instrument(model, prof: Profile):
    det = getattr(model, "detector", model)
    if hasattr(model, "detector"):
        prof.wrap(model, "image_features", "image backbone + FiLM")
        prof.wrap(model, "text_features", "text (language backbone / cache)")
        prof.wrap(model, "_add_cass_outputs", "our heads (CASS head)")
    else:
        prof.wrap(det.backbone, "forward_image", "image backbone + FiLM")
        prof.wrap(det.backbone, "forward_text", "text (language backbone / cache)")
    prof.wrap(det, "_encode_prompt", "prompt / geometry encoder")
    prof.wrap(det, "_run_encoder", "fusion encoder")
    prof.wrap(det, "_run_decoder", "decoder")
    prof.wrap(det, "_run_segmentation_heads", "segmentation head")
    prof.wrap(det, "_compute_matching", "matcher (in forward)")


def step_time(cfg, batch, steps: int, profile: bool = False):
    """Build cfg's model, run ``steps`` timed training steps (after one warm-up); returns
    (median s, trainable params, total params, optimiser bytes, profile or None)."""
    from hydra.utils import instantiate

    torch.manual_seed(0)
    model = instantiate(cfg.trainer.model, _convert_="all").train()
    loss_fn = instantiate(cfg.trainer.loss)["all"]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    prof = Profile()
    if profile:
        _instrument(model, prof)
    times = []
    for i in range(steps + 1):
        prof.on = profile and i > 0
        t0 = time.perf_counter()
        out = model(batch)
        targets = [model.back_convert(x) for x in batch.find_targets]
        tl = time.perf_counter()
        losses = loss_fn(out, targets)
        loss = losses["core_loss"] if isinstance(losses, dict) else losses
        tb = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        to = time.perf_counter()
        opt.step()
        t1 = time.perf_counter()
        if prof.on:
            prof.t["matcher + losses"] += tb - tl
            prof.t["backward"] += to - tb
            prof.t["optimiser step"] += t1 - to
        if i > 0:
            times.append(t1 - t0)
    n_train = sum(p.numel() for p in params)
    n_all = sum(p.numel() for p in model.parameters())
    result = (statistics.median(times), n_train, n_all, optimizer_state_bytes(opt), prof if profile else None)
    del model, opt
    return result


def _print_profile(title, prof: Profile, steps: int):
    total = sum(v for k, v in prof.t.items() if k != "matcher (in forward)")
    print(f"\n{title}: seconds per step by stage (means over the {steps} timed steps; warm-up excluded)")
    for label, v in sorted(prof.t.items(), key=lambda kv: -kv[1]):
        calls = prof.calls.get(label, steps) / steps
        print(f"  {label:36s} {v / steps:8.3f} s  {100 * v / max(total, 1e-9):5.1f}%  calls/step {calls:.0f}")


def tiny(args) -> int:
    from sam3_angio.data.demo import ensure_demo_data
    from sam3_angio.training.launch import ensure_process_group

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    ensure_process_group()
    root = args.data or tempfile.mkdtemp(prefix="bench_ft_")
    for task in ("cass", "vessel"):
        ensure_demo_data(os.path.join(root), task, n_patients=4, seed=0)
    cass_batch = _batch(_cfg("cass", root, args.batch))
    vessel_cfg = _cfg("vessel_segmentation", root, args.batch)
    vessel_batch = _batch(vessel_cfg)
    phrases = len(cass_batch.find_text_batch)
    print(f"tiny model, CPU, {torch.get_num_threads()} thread(s), batch {args.batch} at 224 px, "
          f"CASS batch: {phrases} (frame, phrase) queries; {args.steps} timed steps per mode")
    rows = {}
    for mode, over in [*MODES.items(), (BEFORE, BEFORE_OVERRIDES)]:
        cfg = _cfg("cass", root, args.batch, over)
        rows[mode] = step_time(cfg, cass_batch, args.steps, profile=mode in ("lora+cache", BEFORE))
        s, n_train, n_all, opt_b, _ = rows[mode]
        print(f"  {mode:21s} step {s:6.3f} s  trainable {n_train:>11,d} / {n_all:,d}  "
              f"optimiser state {opt_b / 2**20:8.2f} MB")
    # Phrase sub-sampling (data.max_phrases_per_frame): fewer (frame, phrase) queries a step; the batch is
    # drawn through the training transforms with the cap, from the same frames.
    sampled = [*MODES["lora+cache"], f"data.max_phrases_per_frame={args.max_phrases}"]
    sampled_cfg = _cfg("cass", root, args.batch, sampled)
    sampled_batch = _batch(sampled_cfg)
    rows[SAMPLED] = step_time(sampled_cfg, sampled_batch, args.steps)
    print(f"  {SAMPLED:21s} step {rows[SAMPLED][0]:6.3f} s  ({len(sampled_batch.find_text_batch)} phrases, "
          f"{len(sampled_batch.find_inputs[0].img_ids)} (frame, phrase) queries in the batch)")
    v_full = step_time(vessel_cfg, vessel_batch, args.steps)
    v_lora = step_time(_cfg("vessel_segmentation", root, args.batch, ["model.lora.enabled=true"]), vessel_batch, args.steps)
    full, lora, cache = rows["full"], rows["lora"], rows["lora+cache"]
    print("\nratios")
    print(f"  optimiser state, full / LoRA:            {full[3] / max(lora[3], 1):7.1f}x  (target >= 20x)")
    print(f"  trainable parameters, full / LoRA:       {full[1] / max(lora[1], 1):7.1f}x")
    print(f"  step time saved by the text cache:       {100 * (1 - cache[0] / lora[0]):6.1f}%  (LoRA -> LoRA + cache; target >= 15%)")
    print(f"  step time, LoRA + cache / full:          {cache[0] / full[0]:7.2f}")
    print(f"  CASS / vessel step, full fine-tuning:    {full[0] / v_full[0]:7.2f}x  (vessel {v_full[0]:.3f} s)")
    # One phrase a frame: the shared head runs SAM3's own code, so the vessel step is the same before and after.
    print(f"  CASS / vessel step, LoRA + cache, before: {rows[BEFORE][0] / v_lora[0]:6.2f}x  (SAM3's head: "
          f"CASS {rows[BEFORE][0]:.3f} s)")
    print(f"  CASS / vessel step, LoRA + cache, after:  {cache[0] / v_lora[0]:6.2f}x  (shared image work: CASS "
          f"{cache[0]:.3f} s, vessel LoRA {v_lora[0]:.3f} s; target <= 2.5x)")
    print(f"  CASS / vessel step, LoRA + cache, <= {args.max_phrases} phrases a frame: "
          f"{rows[SAMPLED][0] / v_lora[0]:5.2f}x  (data.max_phrases_per_frame={args.max_phrases}; target <= 2.5x)")
    _print_profile("CASS step, LoRA + cache, SAM3's segmentation head (before)", rows[BEFORE][4], args.steps)
    _print_profile("CASS step, LoRA + cache, shared image work (after)", cache[4], args.steps)
    return 0


def dry_run(args) -> int:
    from sam3_angio.cass import DEFAULT_CLASS_IDS
    from sam3_angio.model.lora import DEFAULT_TARGETS, apply_lora
    from sam3_angio.model.view_conditioned import build_view_conditioned

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    t0 = time.perf_counter()
    with torch.device(args.device):
        model = build_view_conditioned(name="sam3", checkpoint_path=None, allow_random_init=True, image_size=1008,
                                       class_ids=list(DEFAULT_CLASS_IDS))
    n_all = sum(p.numel() for p in model.parameters())
    lang = sum(p.numel() for p in model.detector.backbone.language_backbone.parameters())
    print(f"sam3 (random weights, {args.device}), built in {time.perf_counter() - t0:.0f} s: {n_all:,d} parameters, "
          f"language backbone {lang:,d} ({100 * lang / n_all:.0f}%)")
    # AdamW keeps exp_avg and exp_avg_sq per trainable parameter, in the parameter's dtype (fp32).
    adam = 8
    full = n_all
    frozen_text = n_all - lang
    apply_lora(model.detector, {"enabled": True, "r": args.r, "alpha": 2 * args.r, "targets": list(DEFAULT_TARGETS)})
    n_lora_all = sum(p.numel() for p in model.parameters())
    n_lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    adapters = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    print(f"  {'mode':34s} {'trainable':>14s} {'AdamW state':>12s} {'fp32 weights':>12s} {'grads':>10s}")
    for mode, n_train, n_weights in (("full (text encoder too)", full, n_all),
                                     ("full, text encoder frozen", frozen_text, n_all),
                                     (f"LoRA r={args.r} (+ cache: same)", n_lora, n_lora_all)):
        print(f"  {mode:34s} {n_train:>14,d} {n_train * adam / 2**30:>9.2f} GB {n_weights * 4 / 2**30:>9.2f} GB "
              f"{n_train * 4 / 2**30:>7.2f} GB")
    print(f"  LoRA: {adapters:,d} adapter parameters + {n_lora - adapters:,d} in our heads; "
          f"optimiser state full / LoRA = {full / n_lora:.0f}x")
    if args.time_text:
        time_text_vs_image(model, args)
    return 0


def time_text_vs_image(model, args) -> None:
    """What the text cache can save on the real architecture, timed on this CPU in one process: one
    ``forward_text`` of a CASS step's phrases (the 14 names; frozen encoder: no backward) against one
    ``forward_image`` of a frame at ``--resolution`` (the forward alone; a training step adds at least
    the trunk's backward, so the text share of a step is below the share printed here)."""
    from sam3_angio.cass import DEFAULT_CLASS_IDS, cass_name

    backbone = model.detector.backbone
    backbone.eval()
    phrases = [cass_name(i) for i in DEFAULT_CLASS_IDS]
    image = torch.randn(1, 3, args.resolution, args.resolution)
    with torch.inference_mode():
        backbone.forward_text(phrases[:2], device="cpu")  # warm-up (allocations, tokenizer)
        t0 = time.perf_counter()
        backbone.forward_text(phrases, device="cpu")
        text_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        backbone.forward_image(image)
        image_s = time.perf_counter() - t0
    share = text_s / (text_s + image_s)
    print(f"\nreal architecture, {torch.get_num_threads()} CPU thread(s), forward only: text encoder on "
          f"{len(phrases)} phrases {text_s:.1f} s, image backbone at {args.resolution} px {image_s:.1f} s; "
          f"the text is {100 * share:.1f}% of these two forwards - the most the text cache can save of a "
          f"step's backbone work (a training step adds the image trunk's backward)")


def gpu(args) -> int:
    """The real architecture on a GPU (random weights unless --checkpoint): for each mode, ``--steps``
    training steps at ``--resolution``, batch 1, bf16 autocast, activation checkpointing; peak memory
    (torch.cuda.max_memory_allocated) and seconds per step."""
    from hydra.utils import instantiate
    from sam3.model.utils.misc import copy_data_to_device

    from sam3_angio.data.demo import ensure_demo_data
    from sam3_angio.training.launch import ensure_process_group

    ensure_process_group()
    dev = torch.device(args.device)
    root = args.data or tempfile.mkdtemp(prefix="bench_ft_gpu_")
    ensure_demo_data(root, "cass", n_patients=2, seed=0)
    base = [f"scratch.resolution={args.resolution}", "model.activation_checkpointing=true",
            "+trainer.model.allow_random_init=true", f"paths.sam3_checkpoint={args.checkpoint or 'null'}"]
    print(f"{torch.cuda.get_device_name(dev)}: real SAM3 ({'weights ' + args.checkpoint if args.checkpoint else 'random weights'}), "
          f"{args.resolution} px, batch 1, bf16 autocast, activation checkpointing, {args.steps} steps per mode")
    for mode, over in MODES.items():
        cfg = _cfg("cass", root, 1, [*base, *over, "model.name=sam3"])
        batch = copy_data_to_device(_batch(cfg), dev)
        torch.manual_seed(0)
        model = instantiate(cfg.trainer.model, _convert_="all").to(dev).train()
        loss_fn = instantiate(cfg.trainer.loss)["all"]
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-5)
        torch.cuda.reset_peak_memory_stats(dev)
        times = []
        for i in range(args.steps + 1):
            torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = model(batch)
                losses = loss_fn(out, [model.back_convert(x) for x in batch.find_targets])
            loss = losses["core_loss"] if isinstance(losses, dict) else losses
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            torch.cuda.synchronize(dev)
            if i > 0:
                times.append(time.perf_counter() - t0)
        peak = torch.cuda.max_memory_allocated(dev) / 2**30
        print(f"  {mode:11s} peak {peak:6.2f} GB  {statistics.median(times):6.3f} s/step  "
              f"trainable {sum(p.numel() for p in params):,d}  optimiser state {optimizer_state_bytes(opt) / 2**30:.2f} GB",
              flush=True)
        del model, opt, out, loss, losses
        torch.cuda.empty_cache()
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="sam3_tiny", choices=["sam3_tiny", "sam3"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dry-run", action="store_true", help="build and count only (the real model: no steps)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--max-phrases", type=int, default=3, help="the sampled row: data.max_phrases_per_frame")
    p.add_argument("--r", type=int, default=16, help="LoRA rank for --dry-run")
    p.add_argument("--time-text", action="store_true", help="--model sam3 --dry-run: also time one text forward "
                   "of the 14 CASS phrases against one image forward at --resolution (CPU, minutes)")
    p.add_argument("--data", help="data root with the demo data (default: a temporary folder)")
    p.add_argument("--resolution", type=int, default=1008, help="--model sam3 on cuda")
    p.add_argument("--checkpoint", help="--model sam3 on cuda: sam3.pt (default: random weights)")
    args = p.parse_args(argv)
    if args.model == "sam3":
        if args.dry_run:
            return dry_run(args)
        if not args.device.startswith("cuda"):
            p.error("--model sam3 on CPU only counts (--dry-run); time it on a GPU with bench/gpu/finetune_step.sh")
        return gpu(args)
    return tiny(args)


if __name__ == "__main__":
    sys.exit(main())
