"""Inference inputs: any angiogram a user points ``tools/predict.py`` at -> a uniform list of
:class:`InputFrame` (one 8-bit grey frame ``(H, W)`` uint8, vessels dark, with its view angles, pixel
spacing and where each came from).

Public API (what the predictor and the CLI call)::

    read_input(path, frames="all", angles=None, mm_per_pixel=None, input_id=None) -> List[InputFrame]
    iter_inputs(paths, frames="all", angles=None, mm_per_pixel=None, recursive=False, progress=False)
        -> Iterator[InputFrame]                       # lazily, source after source
    find_inputs(paths, recursive=False) -> List[InputSource]        # no pixel read
    iter_source(source, frames="all", angles=None, mm_per_pixel=None) -> Iterator[InputFrame]
    check_source(source, frames="all", angles=None, mm_per_pixel=None)  # headers only, no pixel; InputError
    parse_angles("-30,25") -> (-30.0, 25.0);  parse_frames("all" | "best" | "0,5,9")  (frame_selection)
    check_mm_per_pixel_flag("0.3") -> 0.3         # a tool's --mm-per-pixel; warns outside 0.02-2.0
    describe(frame) -> dict                       # JSON-ready facts of a frame, for predictions.json

Inputs (``kind``), detected by content first, then by suffix (:mod:`sam3_angio.data.frame_files` opens and
reads every kind but the CSV):

- ``dicom``: a file with the DICM marker (any name, also without extension) or a ``.dcm`` / ``.dicom``
  file; single- or multi-frame, read by :mod:`sam3_angio.data.dicom` (angles and spacing from the header).
- ``cine``: ``.npy`` ``(T, H, W)`` or ``(T, H, W, C)``, memory-mapped, a frame read by
  :func:`sam3_angio.data.cine.read_frame`. A 2-D ``.npy`` is refused (issue 10 lists "a 2-D cine" as bad
  input): a single frame belongs in a PNG, or in a one-frame cine ``np.save(path, frame[None])``.
- ``image``: PNG / JPEG / BMP / TIFF / GIF, 8- or 16-bit grey or RGB(A), made 8-bit grey by
  :func:`sam3_angio.data.cine.to_gray_uint8` (RGB -> BT.601 luma, 16 bit -> percentile window). One
  frame, or a cine where the file holds several: a multi-page TIFF (one frame per page), an animated GIF
  or PNG (:mod:`sam3_angio.data.media`).
- ``video``: MP4 / M4V / MOV / AVI / MKV / WebM / MPEG / WMV, decoded by FFmpeg (PyAV), each frame's
  luma plane; the frame rate from the container. A video holds no view angles or pixel spacing.
- ``csv``: the study CSV (:mod:`sam3_angio.data.layout`): one input per distinct (cine, frame_index),
  however many segment rows share it, the cine any file of the kinds above; view angles and spacing by
  :func:`sam3_angio.data.layout.resolve_view`, the rule of the conversion for training (contours JSON
  angles, else a DICOM cine's; the ``mm_per_pixel`` column, else the contours JSON's, else a DICOM
  cine's). Only the columns inference needs
  are checked (cine_path, frame_index, contours_path, mm_per_pixel); the frames are the CSV's, so
  ``frames`` must be ``"all"``.
- a folder: its files of the kinds above (not CSVs, not sub-folders unless ``recursive``), sorted by
  name; other files are skipped and counted in a log line.

Frames: ``"all"``, a list of frame numbers (one out of range -> :class:`InputError` naming the file and
its number of frames), or ``"best"``: the best-opacified frame (:mod:`sam3_angio.data.frame_selection`).

Angles ``(primary, secondary)`` in degrees, LAO+/RAO-, CRA+/CAU-; ``angles_source`` is ``"dicom"``,
``"contours"``, ``"cli"`` (``angles=`` given: it overrides any header, and broken header angles are then
not read) or ``"unknown"`` (``view_angles`` None). ``mm_per_pixel`` at the isocenter;
``spacing_source`` is ``"dicom:<rule>"`` (:mod:`.dicom`), ``"csv"``, ``"contours"``, ``"cli"`` (overrides)
or ``"unknown"``. ``input_id`` names outputs: the caller's id or the file stem (made unique within one
call by adding the suffix, then a number); a CSV's patient_id is never used, nor a DICOM's patient tags.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import DataError
from ..view_angles import ViewAngles, parse_angles_text, parse_view_angles
from .frame_files import EXPECTED as _EXPECTED, FrameFile, frame_kind, open_frames
from .frame_selection import FrameSpec, FrameSpecError, best_frame, parse_frames

PathLike = Union[str, Path]
Angles = ViewAngles

log = logging.getLogger(__name__)

KINDS = ("dicom", "cine", "image", "video", "csv")
MIN_SIDE = 16  # px: a smaller frame shows no vessel (a thumbnail, an icon); predicting on it is noise
_PROGRESS_EVERY = 10  # files between plain progress lines when tqdm is missing

__all__ = ["InputError", "InputFrame", "InputSource", "PLAUSIBLE_MM_PER_PIXEL", "TYPICAL_MM_PER_PIXEL",
           "check_mm_per_pixel_flag", "check_source", "describe", "find_inputs", "iter_inputs", "iter_source",
           "parse_angles", "parse_frames", "read_input"]


class InputError(DataError):
    """An inference input that cannot be read; one line naming the file (and row), what was expected,
    what was found."""


@dataclass(frozen=True, eq=False)
class InputFrame:
    """One frame to run the model on, with what is known about how it was taken."""

    image: np.ndarray  # (H, W) uint8, vessels dark
    source: Path  # the file the pixels came from (the cine, for a CSV entry)
    frame_index: int  # 0-based, in the source
    n_frames: int  # frames in the source (1 for an image)
    view_angles: Optional[Angles]  # (primary LAO+/RAO-, secondary CRA+/CAU-) degrees; None = unknown
    angles_source: str  # dicom | contours | cli | unknown
    mm_per_pixel: Optional[float]  # at the isocenter; None = unknown
    spacing_source: str  # dicom:<rule> | csv | contours | cli | unknown
    input_id: str  # names the outputs of this source (caller's id or file stem; never a patient tag)
    kind: str  # dicom | cine | image | video | csv
    selection: str = "all"  # all | list | best | csv: how this frame was chosen
    fps: Optional[float] = None  # frame rate from a DICOM header, a video or a GIF, for animated overlays
    csv_rows: Tuple[int, ...] = ()  # 1-based data rows of the study CSV that name this frame

    @property
    def is_still(self) -> bool:
        """A one-frame image file (PNG, JPEG, one-page TIFF): its outputs carry no frame number."""
        return self.kind == "image" and self.n_frames == 1

    @property
    def name(self) -> str:
        """A file-name stem for this frame's outputs: ``<input_id>`` for a still image,
        ``<input_id>_f<frame:04d>`` for a frame of a cine / video / multi-page image / DICOM / CSV."""
        return self.input_id if self.is_still else f"{self.input_id}_f{self.frame_index:04d}"


@dataclass(frozen=True)
class InputSource:
    """One input file (kind detected, id assigned); no pixel data read yet."""

    path: Path
    kind: str  # dicom | cine | image | video | csv
    input_id: str


# --------------------------------------------------------------------------------------------------
# Command-line values


def parse_angles(text: Union[str, Sequence[float], None], what: str = "--angles") -> Optional[Angles]:
    """``"PRIMARY,SECONDARY"`` degrees (or a pair) -> ViewAngles, checked by the one view-angle parser
    (``sam3_angio.view_angles``). None stays None. On a command line a negative first angle needs
    ``--angles=-30,20`` (argparse reads ``-30,20`` as an option)."""
    if text is None:
        return None
    try:
        if isinstance(text, str):
            return parse_angles_text(text, what)
        return parse_view_angles(tuple(text), what)
    except DataError as e:
        raise InputError(str(e)) from None


# Pixel spacing at the isocentre of angiographic detectors (mm per pixel), and the wider range outside which
# a command-line value is more likely a slip of unit (cm, um) or of digits than a real frame; inside it,
# downsampled frames too. Outside it is warned about, not refused.
TYPICAL_MM_PER_PIXEL = (0.1, 0.5)
PLAUSIBLE_MM_PER_PIXEL = (0.02, 2.0)


def _check_mm(mm_per_pixel: Optional[float], what: str = "--mm-per-pixel") -> Optional[float]:
    if mm_per_pixel is None:
        return None
    try:
        v = float(mm_per_pixel)
    except (TypeError, ValueError):
        v = float("nan")
    if not math.isfinite(v) or v <= 0:
        raise InputError(f"{what} {mm_per_pixel!r}: expected positive millimetres per pixel at the isocenter "
                         f"(typically {TYPICAL_MM_PER_PIXEL[0]:g}-{TYPICAL_MM_PER_PIXEL[1]:g})")
    return v


def check_mm_per_pixel_flag(value: Union[str, float, None], what: str = "--mm-per-pixel") -> Optional[float]:
    """A tool's ``--mm-per-pixel`` (tools/predict.py, tools/qca.py), checked once before any file is read:
    None stays None; not a positive finite number -> :class:`InputError`; outside
    :data:`PLAUSIBLE_MM_PER_PIXEL` -> a one-line ``warning:`` on stderr (not an error: a downsampled frame
    has a coarser spacing), since every length and diameter in mm is scaled by it."""
    v = _check_mm(value, what)
    lo, hi = PLAUSIBLE_MM_PER_PIXEL
    if v is not None and not lo <= v <= hi:
        print(f"warning: {what} {v:g} is outside {lo:g}-{hi:g} mm per pixel (angiograms: about "
              f"{TYPICAL_MM_PER_PIXEL[0]:g}-{TYPICAL_MM_PER_PIXEL[1]:g} at the isocentre); every length in mm will "
              f"be scaled by it - check the value and its unit (mm, not cm or um)", file=sys.stderr, flush=True)
    return v


def _frames(spec: Union[str, Sequence[int]]) -> FrameSpec:
    try:
        return parse_frames(spec)
    except FrameSpecError as e:
        raise InputError(str(e)) from None


def _check_indices(path: Path, wanted: Sequence[int], n: int) -> None:
    bad = [k for k in wanted if k >= n]
    if bad:
        raise InputError(f"frame {bad[0]} is out of range for '{path}' with {n} frame{'s' if n != 1 else ''} "
                         f"(valid: 0..{n - 1})")


# --------------------------------------------------------------------------------------------------
# Finding inputs


def _kind(path: Path) -> Optional[str]:
    kind = frame_kind(path)
    if kind is None and path.suffix.lower() == ".csv":
        return "csv"
    return kind


def _unique_ids(paths: Sequence[Path]) -> List[str]:
    """File stems, with the suffix (then a number) added where two inputs of one call share a stem."""
    stems = [p.stem for p in paths]
    counts: Dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    ids, used = [], set()
    for p, s in zip(paths, stems):
        cand = s if counts[s] == 1 else f"{s}_{p.suffix.lstrip('.').lower() or 'file'}"
        k, base = 2, cand
        while cand in used:
            cand, k = f"{base}_{k}", k + 1
        used.add(cand)
        ids.append(cand)
    return ids


def _without_non_image_dicom(found: List[Tuple[Path, str]]) -> Tuple[List[Tuple[Path, str]], Dict[str, int]]:
    """A folder's inputs without the DICOM objects that hold no image (structured reports, dose sheets,
    presentation states, key-object notes: what a PACS export holds beside the cines), and how many of
    each kind were left out. A file named on the command line is never dropped: the reader refuses it."""
    from .dicom import non_image_object

    kept, objects = [], {}
    for q, k in found:
        what = non_image_object(q) if k == "dicom" else None
        if what is None:
            kept.append((q, k))
        else:
            objects[what] = objects.get(what, 0) + 1
    return kept, objects


def find_inputs(paths: Union[PathLike, Sequence[PathLike]], recursive: bool = False,
                exclude: Optional[PathLike] = None) -> List[InputSource]:
    """The input files named by ``paths`` (files, folders, study CSVs), kinds detected, ids assigned;
    checks existence only. A folder contributes its readable files (sorted; CSVs, other files and DICOM
    objects without an image skipped; hidden files and, with ``recursive``, hidden sub-folders too); a
    folder without any is an error. ``exclude``: a folder whose files a folder search leaves out
    (predict's ``--out``, when it lies inside an input folder: its overlays are no inputs)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise InputError(f"no input given; expected {_EXPECTED}, a folder of them, or the study CSV")
    skip = Path(exclude).expanduser().resolve() if exclude is not None else None
    found: List[Tuple[Path, str]] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            files = sorted(q for q in (p.rglob("*") if recursive else p.iterdir())
                           if q.is_file() and not any(part.startswith(".") for part in q.relative_to(p).parts)
                           and not (skip is not None and q.resolve().is_relative_to(skip)))
            kept = [(q, k) for q in files if (k := _kind(q)) not in (None, "csv")]
            if len(kept) < len(files):
                log.info("folder '%s': %d of %d files are not inputs (kept .npy, images, videos, DICOM) and were "
                         "skipped",
                         p, len(files) - len(kept), len(files))
            kept, objects = _without_non_image_dicom(kept)
            if objects:
                log.warning("folder '%s': %d DICOM file(s) hold no image and were skipped: %s", p,
                            sum(objects.values()), ", ".join(f"{n} {what}" for what, n in sorted(objects.items())))
            if not kept:
                held = f"; its {sum(objects.values())} DICOM file(s) hold no image" if objects else ""
                raise InputError(f"folder '{p}' has no input files (expected {_EXPECTED}"
                                 f"{'' if recursive else '; sub-folders are not searched'}{held})")
            found.extend(kept)
        elif p.is_file():
            k = _kind(p)
            if k is None:
                raise InputError(f"input '{p}' is not a supported file (expected {_EXPECTED}, a folder of them, or "
                                 f"the study CSV)")
            found.append((p, k))
        else:
            raise InputError(f"input '{p}' does not exist")
    ids = _unique_ids([p for p, _ in found])
    return [InputSource(p, k, i) for (p, k), i in zip(found, ids)]


# --------------------------------------------------------------------------------------------------
# Reading one source


def _select(path: Path, n: int, spec: FrameSpec, read, fps: Optional[float] = None
            ) -> Iterator[Tuple[int, np.ndarray, str]]:
    """Frames ``spec`` of a source with ``n`` frames; ``read(indices)`` yields ``(k, uint8 image)``."""
    if spec == "all":
        for k, img in read(None):
            yield k, img, "all"
    elif spec == "best":
        if n == 1:
            k, img = next(iter(read([0])))
            yield k, img, "best"
            return
        k, _ = best_frame(read(None), fps)
        for k2, img in read([k]):
            yield k2, img, "best"
    else:
        _check_indices(path, spec, n)
        for k, img in read(spec):
            yield k, img, "list"


def _open(path: Path, kind: str, read_angles: bool = True, read_spacing: bool = True) -> FrameFile:
    """The frame file at ``path`` opened from its header; a reader's error becomes one InputError line, and
    so does a frame that fails later, when it is decoded."""
    try:
        ff = open_frames(path, kind, read_angles, read_spacing)
    except DataError as e:
        raise InputError(str(e)) from None
    if min(ff.height, ff.width) < MIN_SIDE:
        raise InputError(f"{kind if kind != 'dicom' else 'DICOM'} '{path}' has frames of {ff.height}x{ff.width} "
                         f"pixels; an angiogram is at least {MIN_SIDE} px on each side (typically 512-1024): a "
                         f"thumbnail or a damaged file?")

    def read(indices):
        try:
            yield from ff.frames(indices)
        except InputError:
            raise
        except DataError as e:
            raise InputError(str(e)) from None

    return replace(ff, _read=read)


def _override(cli_angles: Optional[Angles], cli_mm: Optional[float], angles: Optional[Angles], angles_src: str,
              mm: Optional[float], mm_src: str) -> Tuple[Optional[Angles], str, Optional[float], str]:
    if cli_angles is not None:
        angles, angles_src = cli_angles, "cli"
    elif angles is None:
        angles_src = "unknown"
    if cli_mm is not None:
        mm, mm_src = cli_mm, "cli"
    elif mm is None:
        mm_src = "unknown"
    return angles, angles_src, mm, mm_src


_CSV_COLUMNS = ("cine_path", "frame_index", "contours_path", "mm_per_pixel")  # what inference reads


def _csv_row_view(r, cells: Dict[str, str], read_angles: bool
                  ) -> Tuple[Optional[FrameFile], Optional[Angles], str, Optional[float], str, List[tuple]]:
    """The cine of one parsed study-CSV row (its frame_index checked), and the view of its frame by
    :func:`sam3_angio.data.layout.resolve_view` - the rule the conversion for training uses:
    ``(cine, angles, angles_source, mm_per_pixel, spacing_source, [(column, problem)])``."""
    from .layout import DataLayoutError, check_cine, load_contours, resolve_view

    cine, problems = check_cine(r, read_angles=read_angles)
    contours = None
    if cine is not None and not problems and r.contours_path is not None:
        if not r.contours_path.is_file():
            problems = [("contours_path", f"file '{cells.get('contours_path')}' does not exist")]
        else:
            try:
                contours = load_contours(r.contours_path)
            except DataLayoutError as e:
                problems = [("contours_path", str(e))]
    if cine is None or problems:
        return cine, None, "unknown", r.mm_per_pixel, ("csv" if r.mm_per_pixel is not None else "unknown"), problems
    view, problems = resolve_view(r, contours, cine, require_view_angles=False)
    va = view.view_angles
    angles = None if va is None else ViewAngles(va["primary"], va["secondary"])
    return cine, angles, view.angles_source, view.mm_per_pixel, view.spacing_source, problems


def _iter_csv(source: InputSource, spec: FrameSpec, cli_angles: Optional[Angles], cli_mm: Optional[float]
              ) -> Iterator[InputFrame]:
    """The study CSV's frames, one per distinct (cine, frame_index); every row is checked before the
    first frame is read, and the rows' problems are raised together (the first shown)."""
    from .layout import DataLayoutError, RowError, RowProblem, parse_row, read_csv_rows

    csv_path = source.path
    if spec != "all":
        raise InputError(f"study CSV '{csv_path}': its frames are the rows' frame_index; frames={spec!r} applies "
                         f"to cines, images and DICOM files (run the CSV without --frames)")
    try:
        rows = read_csv_rows(csv_path)
    except DataLayoutError as e:
        raise InputError(str(e)) from None
    base = csv_path.resolve().parent
    problems: List[RowProblem] = []
    groups: Dict[Tuple[Path, int], dict] = {}
    for row, line, cells in rows:
        r, probs = parse_row(cells, row, line, base)
        # a row's own columns inference reads, and a whole-row problem (column "": a cell too many or too
        # few shifts every column after it, so none of its cells can be trusted)
        probs = [p for p in probs if p.column in _CSV_COLUMNS or p.column == ""]
        if probs:
            problems.extend(probs)
            continue
        cine, angles, a_src, mm, m_src, found = _csv_row_view(r, cells, read_angles=cli_angles is None)
        if not found:
            g = groups.setdefault((r.cine_path.resolve(), r.frame_index), {
                "cine": cine, "rows": [], "view": (angles, a_src, mm, m_src)})
            if _differ(g["view"][0], angles) or _differ(g["view"][2], mm):
                found = [("contours_path", f"names the same frame ({cells['cine_path']} frame {r.frame_index}) as "
                                           f"row {g['rows'][0]} with other view angles or mm_per_pixel ({angles}, {mm} "
                                           f"vs {g['view'][0]}, {g['view'][2]}); one frame has one view")]
            else:
                g["rows"].append(row)
        problems.extend(RowProblem(row, line, column, message, r.patient_id) for column, message in found)
    if problems:
        raise InputError(str(RowError(csv_path, problems)).replace("\n", " "))
    cines = list(dict.fromkeys(cine for cine, _ in groups))
    id_of = dict(zip(cines, _unique_ids(cines)))
    for (cine, k), g in groups.items():
        angles, a_src, mm, m_src = _override(cli_angles, cli_mm, *g["view"])
        ff = _open(g["cine"].path, g["cine"].kind, read_angles=False, read_spacing=False)
        for _, img in ff.frames([k]):
            yield InputFrame(img, ff.path, k, ff.n_frames, angles, a_src, mm, m_src, id_of[cine], "csv", "csv",
                             fps=ff.fps, csv_rows=tuple(g["rows"]))


def _differ(a, b) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    return bool(np.max(np.abs(np.subtract(a, b))) > 1e-6 * max(1.0, float(np.max(np.abs(a)))))


def iter_source(source: InputSource, frames: Union[str, Sequence[int]] = "all",
                angles: Union[str, Sequence[float], None] = None, mm_per_pixel: Optional[float] = None
                ) -> Iterator[InputFrame]:
    """The frames ``frames`` of one source as :class:`InputFrame`, read one at a time. ``angles`` /
    ``mm_per_pixel`` override what the file says. Raises :class:`InputError` (a DataError)."""
    spec = _frames(frames)
    cli_angles, cli_mm = parse_angles(angles), _check_mm(mm_per_pixel)
    yield from _iter_source(source, spec, cli_angles, cli_mm)


def check_source(source: InputSource, frames: Union[str, Sequence[int]] = "all",
                 angles: Union[str, Sequence[float], None] = None, mm_per_pixel: Optional[float] = None) -> None:
    """Whether ``source`` can be read, from headers only (no pixel is decoded) and before any model work:
    a DICOM's (its angles and spacing unless ``angles`` / ``mm_per_pixel`` override them, its decoder,
    its length), a cine's shape, an image's or a video's shape and frame count (a video container that
    stores no count - MKV, WebM, MPEG - is counted by one decoding pass); explicit ``frames`` against the
    frame count. A study CSV is checked row by row as it is read, not here. Raises :class:`InputError` naming the file;
    damaged pixel data (a truncated PNG, a broken frame deep in a compressed DICOM, NaN in a float cine or
    TIFF, a colour frame of an RGB DICOM) can still fail later, when it is decoded, naming the frame."""
    spec = _frames(frames)
    if source.kind == "csv":
        return
    n = _open(source.path, source.kind, read_angles=angles is None, read_spacing=mm_per_pixel is None).n_frames
    if n < 1:
        raise InputError(f"input '{source.path}' holds no frame to predict")
    if spec not in ("all", "best"):
        _check_indices(source.path, spec, n)


def _iter_source(source: InputSource, spec: FrameSpec, cli_angles: Optional[Angles], cli_mm: Optional[float]
                 ) -> Iterator[InputFrame]:
    path, kind = source.path, source.kind
    if kind == "csv":
        yield from _iter_csv(source, spec, cli_angles, cli_mm)
        return
    if kind not in KINDS:
        raise ValueError(f"unknown input kind {kind!r}; expected one of {KINDS}")
    ff = _open(path, kind, read_angles=cli_angles is None, read_spacing=cli_mm is None)
    va, a_src, mm, m_src = _override(cli_angles, cli_mm, ff.view_angles, ff.angles_source, ff.mm_per_pixel,
                                     ff.spacing_source)
    for k, img, how in _select(path, ff.n_frames, spec, ff.frames, ff.fps):
        yield InputFrame(img, path, k, ff.n_frames, va, a_src, mm, m_src, source.input_id, kind, how, ff.fps)


# --------------------------------------------------------------------------------------------------
# Many sources


def _progress(sources: List[InputSource], enabled: bool) -> Iterator[InputSource]:
    """Sources with a progress display on stderr: tqdm's bar on a terminal, else (a log file, a pipe, a
    SLURM output, where the bar's carriage returns pile up) a line every few files."""
    if not enabled or len(sources) < 2:
        yield from sources
        return
    try:
        from tqdm import tqdm

        if not getattr(sys.stderr, "isatty", lambda: False)():
            raise ImportError("not a terminal: plain lines")
    except ImportError:
        t0 = time.perf_counter()
        for i, s in enumerate(sources):
            if i % _PROGRESS_EVERY == 0:
                print(f"  inputs: {i}/{len(sources)} files, {time.perf_counter() - t0:.1f} s", file=sys.stderr,
                      flush=True)
            yield s
        print(f"  inputs: {len(sources)}/{len(sources)} files, {time.perf_counter() - t0:.1f} s", file=sys.stderr,
              flush=True)
        return
    yield from tqdm(sources, desc="inputs", unit="file", file=sys.stderr)


def iter_inputs(paths: Union[PathLike, Sequence[PathLike]], frames: Union[str, Sequence[int]] = "all",
                angles: Union[str, Sequence[float], None] = None, mm_per_pixel: Optional[float] = None,
                recursive: bool = False, progress: bool = False) -> Iterator[InputFrame]:
    """Every selected frame of every input in ``paths``, lazily (one frame in memory at a time unless
    the caller keeps them). Stops at the first bad input with :class:`InputError`; a caller that
    wants to skip bad files iterates :func:`find_inputs` and :func:`iter_source` itself."""
    spec = _frames(frames)
    cli_angles, cli_mm = parse_angles(angles), _check_mm(mm_per_pixel)
    for source in _progress(find_inputs(paths, recursive), progress):
        yield from iter_source(source, spec, cli_angles, cli_mm)


def read_input(path: PathLike, frames: Union[str, Sequence[int]] = "all",
               angles: Union[str, Sequence[float], None] = None, mm_per_pixel: Optional[float] = None,
               input_id: Optional[str] = None) -> List[InputFrame]:
    """The selected frames of one input (file, folder or study CSV) as a list. ``input_id`` replaces
    the file stem of a single-file input and prefixes the ids of a folder's or a CSV's inputs."""
    out = list(iter_inputs(path, frames, angles, mm_per_pixel))
    if input_id is None:
        return out
    single = Path(path).is_file() and _kind(Path(path)) != "csv"
    return [replace(f, input_id=input_id if single else f"{input_id}_{f.input_id}") for f in out]


def describe(frame: InputFrame) -> Dict[str, object]:
    """The JSON-ready facts of a frame (no pixels): for predictions.json's per-image record."""
    return {
        "input": str(frame.source), "input_id": frame.input_id, "kind": frame.kind, "frame_index": frame.frame_index,
        "n_frames": frame.n_frames, "selection": frame.selection, "height": int(frame.image.shape[0]),
        "width": int(frame.image.shape[1]),
        "view_angles": None if frame.view_angles is None else frame.view_angles.to_dict(),
        "angles_source": frame.angles_source, "mm_per_pixel": frame.mm_per_pixel,
        "spacing_source": frame.spacing_source, "csv_rows": list(frame.csv_rows),
    }

