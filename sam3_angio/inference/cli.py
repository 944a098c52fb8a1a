"""Command line of ``tools/predict.py``: angiograms in (DICOM, cine .npy, PNG/JPEG/TIFF/GIF, MP4/AVI video, a
folder of them, the study CSV), named coronary segments out (predictions.json, segments.csv, overlays; see
``outputs.py``).

    python tools/predict.py INPUT... --checkpoint CKPT [-c CONFIG] --out DIR [--frames all|i,j,k|best]
        [--angles P,S] [--mm-per-pixel S] [--naming fused|head|query] [--score-thr 0.5] [--recursive]
        [--qca [--no-qca-figures]] [--click X,Y[:neg] ... --segment NAME]
        [--cass-checkpoint CKPT [--cass-config CONFIG]] [--adapters DIR [--vessel GROUP]] [--skip-bad]
        [overrides...]

``--adapters DIR`` (vessel-specific adapters, docs/finetuning.md): ``--checkpoint`` is the base and DIR holds
one LoRA adapter a vessel group (``DIR/<group>/adapter.pt`` or a run folder ``DIR/<group>/checkpoints/``);
``--vessel GROUP`` picks that group's adapter, without it each adapter predicts and the higher total
segment score wins (``sam3_angio/inference/adapters.py``); ``images[].adapter`` in predictions.json says which.

``--click`` / ``--segment`` (proofread, docs/training_modes.md): clicks in frame pixels on one segment;
its instance is replaced by the corrected one (``"corrected": true`` in predictions.json) and the
overlay shows the clicks. Needs a run trained with ``training.modes`` including ``proofread``.

Inputs are read by ``sam3_angio.data.inputs`` and named by the ``Predictor`` that ``tools/eval.py`` uses.
Every input is opened (a DICOM's header and decoder, a cine's shape, an image) before the model loads:
an unreadable one stops the call with every such input listed, or with ``--skip-bad`` is left out (also
one that fails later, when a frame deep in it is decoded) and named in the closing summary.
One input is read whole before it is predicted (a long cine or a study CSV is held in memory as 8-bit
frames); its outputs are written to a hidden folder and renamed to ``DIR/<input_id>`` when complete.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from sam3_angio.data.atomic import OutputExistsError, atomic_output_dir
from sam3_angio.data.inputs import (InputError, InputFrame, InputSource, check_mm_per_pixel_flag, check_source,
                                    find_inputs, iter_source, parse_angles, parse_frames)
from sam3_angio.errors import UserError, run_cli
from sam3_angio.inference.naming import RULES

_NEGATIVE_VALUE = re.compile(r"^-\.?\d")  # "-30,25", "-.5,10": a value, not an option
_VALUE_OPTIONS = ("--angles",)  # options whose value may start with a minus sign


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tools/predict.py", allow_abbrev=False,
        description=("Name the coronary segments of angiograms with a trained run: writes DIR/<input>/"
                     "predictions.json, segments.csv and overlay pictures (docs/inference.md)."),
        epilog=(
            "examples:\n"
            "  tools/predict.py run.dcm --checkpoint experiments/cass/checkpoints/checkpoint.pt --out pred/\n"
            "  tools/predict.py cine.npy --frames best --angles -30,25 --mm-per-pixel 0.3 --checkpoint CKPT "
            "--out pred/\n"
            "  tools/predict.py frames/ --recursive --checkpoint CKPT -c configs/angiography/cass.yaml --out pred/ "
            "paths.data_root=/data\n"
            "Arguments with '=' that are not existing files are Hydra overrides for the config."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("items", nargs="+", metavar="INPUT", help="DICOM file, cine .npy (T,H,W[,C]), PNG/JPEG/BMP/TIFF/GIF "
                   "image (a multi-page TIFF or animated GIF is a cine), MP4/AVI/MOV/MKV/WebM/MPEG video, folder of "
                   "these, or the study CSV; then optional Hydra overrides (key=value)")
    p.add_argument("--checkpoint", required=True, help="the run's checkpoint.pt (or a bare state dict)")
    p.add_argument("-c", "--config", help="the run's config (path or name); default: the config_resolved.yaml "
                   "tools/train.py saved beside the checkpoint")
    p.add_argument("--out", required=True, help="output folder; each input writes DIR/<input name>/")
    p.add_argument("--frames", default="all", help="all | i,j,k (0-based) | best (the best-opacified frame, "
                   "docs/inference.md); default all")
    p.add_argument("--angles", help="PRIMARY,SECONDARY degrees, LAO and cranial positive (e.g. -30,25 = RAO 30 "
                   "CRA 25); overrides the DICOM header / contours JSON for every input")
    p.add_argument("--mm-per-pixel", type=float, help="pixel spacing at the isocenter in mm (typically 0.1-0.5; "
                   "outside 0.02-2 is warned about); overrides the DICOM header / CSV for every input")
    p.add_argument("--naming", choices=list(RULES), default=None,
                   help="how a segment is named: fused (head + query, default of the config), head, query")
    p.add_argument("--score-thr", type=float, default=0.5, help="segments at or above this score go to "
                   "segments.csv and the overlays (predictions.json keeps every instance); default 0.5")
    p.add_argument("--qca", action="store_true", help="quantitative coronary analysis (docs/qca.md) of every "
                   "segment in segments.csv: DIR/<input>/qca.json, qca.csv and qca_figures/ (mm when the "
                   "frame's pixel spacing is known: DICOM header, CSV or --mm-per-pixel; px otherwise)")
    p.add_argument("--no-qca-figures", action="store_true", help="with --qca: qca.json and qca.csv only")
    p.add_argument("--click", action="append", default=[], metavar="X,Y[:neg]",
                   help="a click in frame pixels on the --segment to correct (repeatable); ':neg' marks a "
                   "negative click (not this segment). Needs a run trained with proofread mode")
    p.add_argument("--segment", help="the segment the clicks correct, by CASS name (e.g. 'mid LAD') or id")
    p.add_argument("--cass-checkpoint", help="a phase 2 (CASS) run's checkpoint, when --checkpoint is a stenosis "
                   "(phase 3) run: each stenosis gets the CASS segment it lies in (cass_segment, largest overlap "
                   "with the segments that run predicts at or above --score-thr)")
    p.add_argument("--cass-config", help="the CASS run's config (default: its config_resolved.yaml)")
    p.add_argument("--adapters", metavar="DIR", help="vessel-specific LoRA adapters on top of --checkpoint (the "
                   "base): DIR/<group>/adapter.pt (or DIR/<group>/checkpoints/adapter.pt, a training run's folder) "
                   "per vessel group; config: -c or the first group's config_resolved.yaml (docs/finetuning.md)")
    p.add_argument("--vessel", metavar="GROUP", help="with --adapters: the vessel group the frames show (e.g. rca, "
                   "left): its adapter names them; without it each adapter predicts and the one whose segments at "
                   "or above --score-thr have the higher total score is kept")
    p.add_argument("--recursive", action="store_true", help="search folders' sub-folders too")
    p.add_argument("--skip-bad", action="store_true", help="leave out inputs that cannot be read (each named, "
                   "and listed at the end) and predict the others; without it one such input stops the call "
                   "before the model loads")
    p.add_argument("--overwrite", action="store_true", help="replace an existing DIR/<input> (the old one "
                   "is kept until the new one is complete)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available and the run "
                   "trained on it)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    return p


def join_negative_values(argv: Sequence[str], options: Sequence[str] = _VALUE_OPTIONS) -> List[str]:
    """``--angles -30,25`` -> ``--angles=-30,25``: argparse takes a value that starts with '-' (and is
    not a plain number) for an option and stops with "expected one argument"."""
    out: List[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in options and i + 1 < len(argv) and _NEGATIVE_VALUE.match(argv[i + 1]):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def split_items(items: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Positional arguments -> (inputs, Hydra overrides): an existing path is an input, else an
    argument with '=' is an override, else an input (reported missing by the input layer)."""
    inputs, overrides = [], []
    for item in items:
        if not os.path.exists(item) and "=" in item:
            overrides.append(item)
        else:
            inputs.append(item)
    return inputs, overrides


def main(argv: Optional[List[str]] = None, predictor=None, cass_predictor=None) -> int:
    """Run the command; ``predictor``: an already built Predictor (notebooks, tests) instead of
    ``--checkpoint``'s (the flag is still required and recorded); ``cass_predictor`` likewise for
    ``--cass-checkpoint``."""
    parser = build_parser()
    args = parser.parse_intermixed_args(join_negative_values(list(sys.argv[1:] if argv is None else argv)))
    inputs, overrides = split_items(args.items)
    if not inputs:
        parser.error("no INPUT given (only overrides): name a cine .npy, an image, a DICOM file, a folder or "
                     "the study CSV")
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    return run_cli(lambda: run(args, inputs, overrides, predictor, cass_predictor))


# ------------------------------------------------------------------------------------------------------


def say(*parts, file=None) -> None:
    """A console line (flushed) that does not tear a progress bar (tqdm's write when installed)."""
    text = " ".join(str(p) for p in parts)
    stream = file if file is not None else sys.stdout
    try:
        from tqdm import tqdm
    except ImportError:
        print(text, file=stream, flush=True)
        return
    tqdm.write(text, file=stream)
    stream.flush()


def _progress(items: Sequence, enabled: bool, unit: str, leave: bool = True) -> Iterable:
    """tqdm's bar on a terminal; plain lines to a log file or a pipe (where a bar's redraws pile up)."""
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return _plain_progress(items, unit)
    if not getattr(sys.stderr, "isatty", lambda: False)():
        return _plain_progress(items, unit)
    return tqdm(items, unit=unit, file=sys.stderr, leave=leave, dynamic_ncols=True)


def _plain_progress(items: Sequence, unit: str) -> Iterable:
    t0 = time.perf_counter()
    for i, item in enumerate(items):
        if i % 10 == 0:
            print(f"  {i}/{len(items)} {unit}s, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        yield item
    print(f"  {len(items)}/{len(items)} {unit}s, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)


def _check_free(out: Path, sources: Sequence[InputSource], overwrite: bool) -> None:
    """Before the model loads: no input may land on an existing output unless --overwrite. (A study
    CSV's outputs are named by its cines and checked when they are written.)"""
    if overwrite:
        return
    taken = [s.input_id for s in sources if s.kind != "csv" and (out / s.input_id).exists()
             and any((out / s.input_id).iterdir())]
    if taken:
        more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
        raise OutputExistsError(f"output folder '{out / taken[0]}'{more} already exists; pass --overwrite to "
                                f"replace it (the old one is kept until the new one is complete) or choose "
                                f"another --out")


def _unique_output(group: List[InputFrame], used: set) -> List[InputFrame]:
    """The frames of one input with an output name no earlier input of this call has: a study CSV names
    its outputs by its cines, whose stems may be those of another input or of another CSV's cines (two
    patients' ``run_0001.dcm``); the second would replace the first's folder (with --overwrite) or stop
    the call. It gets ``<id>_2`` (``_3``, ...), said on the console."""
    from dataclasses import replace

    first = group[0].input_id
    new, k = first, 2
    while new in used:
        new, k = f"{first}_{k}", k + 1
    used.add(new)
    if new == first:
        return group
    say(f"{first}: another input of this call already wrote '{first}'; {group[0].source} is written as '{new}'")
    return [replace(f, input_id=new) for f in group]


def _groups(frames: List[InputFrame]) -> List[List[InputFrame]]:
    """Frames of one source by input_id (a study CSV holds several cines), in order of first appearance."""
    by: Dict[str, List[InputFrame]] = {}
    for f in frames:
        by.setdefault(f.input_id, []).append(f)
    return list(by.values())


def _describe_view(frame: InputFrame) -> str:
    if frame.view_angles is None:
        return "angles unknown (none in the file, no --angles): named without the view"
    return f"angles {frame.view_angles.describe()} ({frame.angles_source})"


def _describe_spacing(frame: InputFrame) -> str:
    if frame.mm_per_pixel is None:
        return "spacing unknown (lengths in px only; --mm-per-pixel gives mm)"
    return f"{frame.mm_per_pixel:.4g} mm/px ({frame.spacing_source})"


def parse_click(text: str) -> Tuple[float, float, bool]:
    """``"x,y"`` / ``"x,y:pos"`` -> positive click, ``"x,y:neg"`` -> negative; frame pixels."""
    where, _, kind = text.strip().partition(":")
    kind = kind.strip().lower() or "pos"
    parts = where.split(",")
    try:
        if len(parts) != 2 or kind not in ("pos", "neg"):
            raise ValueError
        x, y = float(parts[0]), float(parts[1])
    except ValueError:
        raise InputError(f"--click {text!r}: expected X,Y or X,Y:neg (frame pixels, e.g. 120,88 or "
                         f"140,60:neg)") from None
    if x < 0 or y < 0:
        raise InputError(f"--click {text!r}: pixel coordinates are >= 0")
    return x, y, kind == "pos"


def parse_clicks(args: argparse.Namespace) -> List[Tuple[float, float, bool]]:
    clicks = [parse_click(c) for c in args.click]
    if clicks and not args.segment:
        raise InputError("--click needs --segment NAME (the segment the clicks correct, e.g. --segment 'mid LAD')")
    if args.segment and not clicks:
        raise InputError(f"--segment {args.segment!r} needs at least one --click X,Y on it")
    if clicks and not any(pos for _, _, pos in clicks):
        raise InputError("--click: at least one positive click (X,Y without ':neg') is needed")
    return clicks


def run(args: argparse.Namespace, inputs: List[str], overrides: List[str], predictor=None,
        cass_predictor=None) -> int:
    parse_angles(args.angles)  # bad values stop here, before any file is read or the model loads
    # (and are not taken for a bad input that --skip-bad would leave out, as each file would be)
    check_mm_per_pixel_flag(args.mm_per_pixel)
    args.clicks = parse_clicks(args)
    try:
        parse_frames(args.frames)
    except ValueError as e:  # FrameSpecError
        raise InputError(f"--frames: {e}") from None
    if args.no_qca_figures and not args.qca:
        raise InputError("--no-qca-figures needs --qca")
    if args.cass_config and not args.cass_checkpoint:
        raise InputError("--cass-config needs --cass-checkpoint")
    if not 0.0 <= args.score_thr <= 1.0:
        raise InputError(f"--score-thr {args.score_thr}: expected a score between 0 and 1")
    if args.vessel and not args.adapters:
        raise InputError("--vessel needs --adapters DIR (the folder of the vessel groups' adapters)")
    if args.adapters:
        if args.cass_checkpoint or args.clicks:
            raise InputError("--adapters does not combine with --cass-checkpoint or --click; run them separately")
        from sam3_angio.inference.adapters import find_adapters

        groups = find_adapters(args.adapters)  # a missing or empty DIR stops here, before the model loads
        if args.vessel and args.vessel not in groups:
            raise InputError(f"--vessel {args.vessel!r}: {args.adapters} has no adapter of that group; its groups "
                             f"are {', '.join(groups)}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out '{out}' is a file; expected a folder (created if missing)")
    if args.device and args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"--device {args.device}: this machine has no CUDA device; use --device cpu")
    sources = find_inputs(inputs, recursive=args.recursive, exclude=out)  # an --out inside an input folder
    _check_free(out, sources, args.overwrite)
    progress = not args.quiet
    sources, skipped = _check_sources(sources, args, progress)

    state = {"predictor": predictor, "cass": cass_predictor}

    def get_predictor():
        if state["predictor"] is None:
            from sam3_angio.inference.predictor import Predictor
            from sam3_angio.model.builders import banner

            if args.adapters:
                from sam3_angio.inference.adapters import AdapterPredictor

                p = AdapterPredictor.from_base(args.checkpoint, args.adapters, config=args.config, overrides=overrides,
                                               device=args.device, naming=args.naming, vessel=args.vessel,
                                               score_thr=args.score_thr)
            else:
                p = Predictor.from_checkpoint(args.checkpoint, config=args.config, overrides=overrides,
                                              device=args.device, naming=args.naming)
            say(banner(p.info.model))
            state["predictor"] = p
        if args.cass_checkpoint and state["cass"] is None:
            from sam3_angio.inference.predictor import Predictor

            state["cass"] = Predictor.from_checkpoint(args.cass_checkpoint, config=args.cass_config,
                                                      device=args.device)
        if args.cass_checkpoint:
            from sam3_angio.inference.attach import check_pair

            check_pair(state["predictor"], state["cass"])
        return state["predictor"]

    given_naming = predictor.naming if predictor is not None else None
    if predictor is not None and args.naming is not None:
        predictor.naming = args.naming  # for this run only (restored below)
    written: List[Path] = []
    used_ids: set = set()  # output folders this call has written (a CSV's cines may share a stem with them)
    t0 = time.perf_counter()
    n_frames = 0
    try:
        for source in _progress(sources, progress and len(sources) > 1, "file"):
            try:
                try:
                    frames = list(iter_source(source, args.frames, args.angles, args.mm_per_pixel))
                    if not frames:
                        raise InputError(f"input '{source.path}' holds no frame to predict")
                except InputError as e:
                    if not args.skip_bad:
                        raise
                    say(f"skipped: {e}", file=sys.stderr)
                    skipped.append((source, str(e)))
                    continue
                for group in _groups(frames):
                    group = _unique_output(group, used_ids)
                    written.append(predict_input(get_predictor(), group, out, args, progress,
                                                 cass_predictor=state["cass"] if args.cass_checkpoint else None))
                    n_frames += len(group)
            except UserError as e:
                if written:
                    raise UserError(f"{e} (stopped there; the {len(written)} input(s) before it are complete in "
                                    f"'{out}')") from None
                raise
    finally:
        if predictor is not None:
            predictor.naming = given_naming
    dt = time.perf_counter() - t0
    say(f"wrote {len(written)} input{'s' if len(written) != 1 else ''} ({n_frames} frames, {dt:.1f} s) to {out}")
    if skipped:
        names = ", ".join(str(s.path) for s, _ in skipped[:10]) + (", ..." if len(skipped) > 10 else "")
        say(f"skipped {len(skipped)} input{'s' if len(skipped) != 1 else ''} that cannot be read (--skip-bad): "
            f"{names}", file=sys.stderr)
    return 0


def _check_sources(sources: List[InputSource], args: argparse.Namespace, progress: bool
                   ) -> Tuple[List[InputSource], List[Tuple[InputSource, str]]]:
    """Every input opened before the model loads (``check_source``: headers, shapes, decoders), so that a
    bad file stops the call in seconds, not after hours of predicting the ones before it. Without
    ``--skip-bad`` any bad input is an error (each named); with it they are left out and returned."""
    bad: List[Tuple[InputSource, str]] = []
    for source in _progress(sources, progress and len(sources) > 50, "file", leave=False):
        try:
            check_source(source, args.frames, args.angles, args.mm_per_pixel)
        except InputError as e:
            bad.append((source, str(e)))
    if not bad:
        return sources, []
    if not args.skip_bad:
        if len(sources) == 1:
            raise InputError(bad[0][1])
        for _, msg in bad[1:]:
            say(f"  also cannot be read: {msg}", file=sys.stderr)
        more = f" and {len(bad) - 1} more listed above" if len(bad) > 1 else ""
        raise InputError(f"{bad[0][1]} ({len(bad)} of {len(sources)} inputs cannot be read: this one{more}; "
                         f"nothing was predicted. Fix or remove them, or pass --skip-bad to predict the others)")
    for _, msg in bad:
        say(f"skipped: {msg}", file=sys.stderr)
    bad_paths = {b.path for b, _ in bad}
    ok = [s for s in sources if s.path not in bad_paths]
    if not ok:
        raise InputError(f"none of the {len(sources)} inputs can be read (each named above)")
    return ok, bad


def predict_input(predictor, frames: List[InputFrame], out: Path, args: argparse.Namespace,
                  progress: bool = False, cass_predictor=None) -> Path:
    """Predict the frames of one input and write its folder ``out/<input_id>`` (all or nothing).
    ``cass_predictor`` (with a stenosis ``predictor``): each stenosis gets the CASS segment it lies in."""
    from sam3_angio.inference import outputs as O
    from sam3_angio.inference.overlay import write_gif

    first = frames[0]
    target = out / first.input_id
    say(f"{first.input_id}: {first.kind}, {len(frames)} of {first.n_frames} frame(s); {_describe_view(first)}; "
          f"{_describe_spacing(first)}")
    ids = list(range(1, len(frames) + 1))
    bs = predictor.batch_size
    chunks = [list(range(i, min(len(frames), i + bs))) for i in range(0, len(frames), bs)]
    instances: List[List[dict]] = []
    for chunk in _progress(chunks, progress and len(frames) > 2 * bs, "batch", leave=False):
        images_, angles_, ids_ = [frames[i].image for i in chunk], [frames[i].view_angles for i in chunk], \
            [ids[i] for i in chunk]
        found = predictor.predict(images_, angles_, ids_)
        if cass_predictor is not None:
            from sam3_angio.inference.attach import attach_cass_segments

            segments = cass_predictor.predict(images_, angles_, ids_)
            found = [attach_cass_segments(st, sg, args.score_thr) for st, sg in zip(found, segments)]
        instances += found
    clicks = getattr(args, "clicks", None) or []
    if clicks:
        instances = [correct_segment(predictor, f, insts, clicks, args.segment, image_id)
                     for f, insts, image_id in zip(frames, instances, ids)]
    info = predictor.info.to_dict()
    if cass_predictor is not None:
        cass_info = cass_predictor.info.to_dict()
        cass_info.pop("categories", None)
        info["cass_model"] = cass_info
    settings = {"frames": args.frames, "angles": args.angles, "mm_per_pixel": args.mm_per_pixel,
                "naming": predictor.naming, "score_thr": args.score_thr, "qca": bool(args.qca),
                "cass_checkpoint": args.cass_checkpoint}
    if getattr(args, "adapters", None):
        settings.update({"adapters": args.adapters, "vessel": args.vessel})
    if clicks:
        settings.update({"segment": args.segment, "clicks": [{"x": x, "y": y, "positive": p} for x, y, p in clicks]})
    notes = []
    if first.view_angles is None and info.get("view_conditioned"):
        notes.append("view angles unknown: the view-conditioned model named these segments without the view "
                     "(pass --angles PRIMARY,SECONDARY)")
    if first.mm_per_pixel is None:
        notes.append("pixel spacing unknown: lengths in px only (pass --mm-per-pixel)")
    with atomic_output_dir(target, overwrite=args.overwrite) as tmp:
        images, rows, all_instances, pictures, qca_items = [], [], [], [], []
        for image_id, frame, insts in zip(ids, frames, instances):
            images.append(O.image_record(image_id, frame))
            if hasattr(predictor, "choice_for"):  # --adapters: which group's adapter named the frame, and why
                images[-1]["adapter"] = predictor.choice_for(image_id)
            first_id = len(all_instances) + 1  # predictions.json numbers the instances 1..n
            all_instances += insts
            segs = O.measure(insts, args.score_thr)
            if args.qca:
                qca_items += O.qca_items(frame, segs, first_id, insts)
            rows += [O.segment_row(frame, s) for s in segs]
            picture = O.frame_overlay(frame, segs, info["model"], args.score_thr, clicks=clicks)
            O.save_png(tmp / O.overlay_name(frame), picture)
            pictures.append(O.overlay_name(frame))
            names = ", ".join(s.label for s in segs[:6]) + (", ..." if len(segs) > 6 else "")
            best = max((float(i["score"]) for i in insts), default=None)
            n_above = sum(1 for i in insts if float(i["score"]) >= args.score_thr)
            if segs:
                why = f": {names}"
            elif best is not None and best < args.score_thr:
                why = f" (best instance score {best:.2f}; a lower --score-thr shows more, with less confidence)"
            elif n_above:  # at or above the threshold, but nothing to outline (segments.csv needs a mask)
                why = f" ({n_above} instance(s) at or above it, all with empty masks)"
            else:
                why = ""
            say(f"  frame {frame.frame_index}: {len(segs)} segment(s) >= {args.score_thr:g}{why}")
        if len(frames) >= 2:
            write_gif(str(tmp / "overlay.gif"), [O.read_png(tmp / p) for p in pictures], first.fps)
        O.write_segments_csv(tmp / "segments.csv", rows)
        O.write_json(tmp / "predictions.json", O.predictions_document(info, settings, images, all_instances, notes))
        if args.qca:
            qca_summary = write_qca(tmp, qca_items, first, figures=not args.no_qca_figures)
    say(f"  -> {target}/ (predictions.json, segments.csv, {len(pictures)} overlay(s)"
        + (", overlay.gif" if len(frames) >= 2 else "") + (f", {qca_summary}" if args.qca else "") + ")")
    return target


def write_qca(folder: Path, items: list, first: InputFrame, figures: bool = True) -> str:
    """QCA of the segments of one input into ``folder``: qca.json, qca.csv (one row a lesion) and
    qca_figures/ (one figure a segment). A segment QCA cannot measure (too short, a blob) is listed
    under ``skipped`` in qca.json with the reason; it does not stop the input. Returns a summary."""
    from sam3_angio.inference.outputs import QCA_FIGURES
    from sam3_angio.qca.batch import run_items
    from sam3_angio.qca.report import write_report

    report = run_items(items, figures_dir=folder / QCA_FIGURES if figures and items else None)
    report.inputs = {"predictions": "predictions.json", "input": first.input_id, "mm_per_pixel": first.mm_per_pixel,
                     "spacing_source": first.spacing_source if first.mm_per_pixel is not None else None}
    write_report(report, folder)
    n_les = sum(len(s.lesions) for s in report.segments)
    for s in report.skipped:
        say(f"  qca: skipped {s['source']}: {s['error']}")
    return (f"qca.json, qca.csv: {len(report.segments)} segment(s) measured, {n_les} lesion(s)"
            + (f", {len(report.skipped)} skipped" if report.skipped else ""))


def correct_segment(predictor, frame: InputFrame, instances: List[dict], clicks, segment: str,
                    image_id: int) -> List[dict]:
    """The frame's instances with those of ``segment`` replaced by its click-corrected instance."""
    fixed = predictor.correct(frame.image, clicks, segment, frame.view_angles, image_id)
    if fixed is None:
        say(f"  frame {frame.frame_index}: no instance of {segment!r} found with the clicks")
        return instances
    fixed = {k: v for k, v in fixed.items() if k != "mask"}
    name = fixed["cass_name"]
    say(f"  frame {frame.frame_index}: {name} corrected from {len(clicks)} click(s) "
          f"(score {fixed['score']:.2f}, {fixed.get('area', 0)} px)")
    return [fixed] + [r for r in instances if r.get("cass_name") != name]
