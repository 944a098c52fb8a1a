"""The study's CSV layout (one row = one CASS segment of one patient at one phase): columns, reading,
and row validation whose errors name the CSV row, the column, what was expected and what was found.

Relative paths in the CSV are taken from the CSV's own folder. Data flow of one row::

    CSV row -> cine frame ``frame_index``: a .npy (T, H, W[, C]) (memory-mapped), a DICOM XA file, a
               multi-page TIFF or a video (any file :mod:`sam3_angio.data.frame_files` reads)
            -> contours JSON: view_angles {primary: LAO+/RAO- deg, secondary: CRA+/CAU- deg}, centerline
            -> vessel_mask_actual_path: (H, W) mask of the one segment, frame-sized
            -> deepsa_pseudo_label_path: (h, w) full-tree mask, resized to (H, W) by the converter
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ..cass import CASS_BY_ID, class_ids as _class_ids, cass_name
from ..errors import DataError
from ..view_angles import parse_view_angles
from .frame_files import FrameFile, open_frames
from .masks import MaskError, mask_shape

PathLike = Union[str, Path]

REQUIRED_COLUMNS: Tuple[str, ...] = (
    "patient_id",
    "vessel_pattern",  # e.g. MID_LAD (sam3_angio.cass.VESSEL_PATTERN_TO_CASS)
    "phase",  # PRE | FINAL | EVENT
    "vessel_name",  # LAD | RCA | LCX | PDA | Ramus (LM accepted)
    "cine_path",  # .npy (T, H, W[, C]), DICOM, multi-page TIFF or video (sam3_angio.data.frame_files)
    "frame_index",  # 0-based index into the cine
    "contours_path",  # JSON: view_angles, centerline, lumen_edges (frame pixel coordinates x, y)
    "vessel_mask_actual_path",  # the segment's ground-truth mask, frame-sized
    "deepsa_pseudo_label_path",  # full-tree pseudo-label, any size with the frame's aspect ratio
    "cass_segment",  # CASS segment number used for training (sam3_angio.cass)
    "cass_segment_original",  # the label as first recorded (kept as metadata, not validated)
    "split",  # train | val | test
)
# Quantitative columns written by the synthetic generator (and by study exports that have them).
OPTIONAL_COLUMNS: Tuple[str, ...] = ("stenosis_pct", "mld_mm", "reference_diameter_mm", "mm_per_pixel")
ALL_COLUMNS: Tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

PHASES: Tuple[str, ...] = ("PRE", "FINAL", "EVENT")
SPLITS: Tuple[str, ...] = ("train", "val", "test")
VESSEL_NAMES: Tuple[str, ...] = ("LAD", "RCA", "LCX", "PDA", "Ramus", "LM")
TASKS: Tuple[str, ...] = ("vessel", "cass", "stenosis")

# Pseudo-labels are resized to the frame; a different aspect ratio means a different image.
_ASPECT_TOLERANCE = 0.02
# Contours angles and a DICOM header's that differ by more than this (degrees) describe two different
# runs (a wrong file pairing, or a tool that writes the other sign convention); rounding stays below it.
_ANGLE_AGREEMENT_DEG = 1.0


class DataLayoutError(DataError):
    """A user's data does not follow the layout; the message says where and how to fix it."""


class CsvLayoutError(DataLayoutError):
    """The CSV file as a whole is unusable (missing, no header, missing columns)."""


@dataclass(frozen=True)
class RowProblem:
    """One reason why one CSV row cannot be used."""

    row: int  # 1-based data row (the header is not counted)
    line: int  # line in the file (the header is line 1)
    column: str
    message: str
    patient_id: str = ""

    def format(self, csv_name: str = "CSV") -> str:
        where = f", column '{self.column}'" if self.column else ""  # "": the row as a whole
        return f"{csv_name} row {self.row} (line {self.line}){where}: {self.message}"

    def as_dict(self) -> dict:
        return {
            "row": self.row, "line": self.line, "column": self.column,
            "reason": self.message, "patient_id": self.patient_id,
        }


class RowError(DataLayoutError):
    """Bad rows; ``problems`` lists them (the message shows the first one and how many more)."""

    def __init__(self, csv_path: PathLike, problems: Sequence[RowProblem], hint: str = ""):
        self.csv_path = Path(csv_path)
        self.problems = list(problems)
        first = self.problems[0].format(self.csv_path.name)
        more = len({p.row for p in self.problems}) - 1
        extra = f"\n({more} more bad row{'s' if more != 1 else ''})" if more > 0 else ""
        super().__init__(first + extra + (f"\n{hint}" if hint else ""))


@dataclass
class AngioRow:
    """One parsed CSV row; paths resolved against the CSV's folder (None where the cell is empty)."""

    row: int
    line: int
    patient_id: str
    vessel_pattern: str
    phase: str
    vessel_name: str
    cine_path: Optional[Path]
    frame_index: Optional[int]
    contours_path: Optional[Path]
    vessel_mask_actual_path: Optional[Path]
    deepsa_pseudo_label_path: Optional[Path]
    cass_segment: Optional[int]
    cass_segment_original: str
    split: str
    stenosis_pct: Optional[float] = None
    mld_mm: Optional[float] = None
    reference_diameter_mm: Optional[float] = None
    mm_per_pixel: Optional[float] = None
    raw: Dict[str, str] = field(default_factory=dict)  # the cells as written


@dataclass
class CheckedRow:
    """A row whose files were found and checked: the cine header, the contours JSON, mask shapes."""

    row: AngioRow
    cine: FrameFile
    contours: dict
    view_angles: Optional[Dict[str, float]]  # None = unknown (see resolve_view)
    angles_source: str = "contours"  # contours | dicom | unknown
    mm_per_pixel: Optional[float] = None  # at the isocenter (see resolve_view)
    spacing_source: str = "unknown"  # csv | contours | dicom:<rule> | unknown


# --------------------------------------------------------------------------------------------------
# Reading


# The cell under which read_csv_rows records a row whose cell count differs from the header's (parse_row
# reports it): a name no header can have.
CELL_COUNT_KEY = "\0cell_count"
_DELIMITERS = (",", ";", "\t")


def _delimiter(first_line: str) -> str:
    """The header's separator: ',' unless the header has none but has ';' (a spreadsheet in a locale
    whose decimal mark is a comma) or a tab."""
    if "," in first_line:
        return ","
    counts = {d: first_line.count(d) for d in _DELIMITERS[1:]}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def read_csv_rows(csv_path: PathLike) -> List[Tuple[int, int, Dict[str, str]]]:
    """``[(row, line, cells)]`` of the CSV; checks the file and its header.

    Comma-separated, or semicolon / tab-separated when the header says so; header names are matched
    without regard to case or surrounding spaces. A row that is entirely empty (``,,,,`` as spreadsheets
    write below the data) is left out; its row number is not reused. A row with more non-empty cells
    or fewer cells than the header has columns gets ``cells[CELL_COUNT_KEY]`` (reported by ``parse_row``).
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise CsvLayoutError(f"CSV '{csv_path}' does not exist")
    try:
        text = csv_path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = csv_path.read_bytes()[: e.start].count(b"\n") + 1
        raise CsvLayoutError(
            f"CSV '{csv_path}' is not UTF-8 text (byte 0x{e.object[e.start]:02x} on line {line}); save it as "
            f"UTF-8 (e.g. from a spreadsheet: CSV UTF-8)"
        ) from None
    delimiter = _delimiter(text.lstrip("\r\n").split("\n", 1)[0])
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        if reader.fieldnames is None:
            raise CsvLayoutError(f"CSV '{csv_path}' is empty (expected a header row with {', '.join(REQUIRED_COLUMNS)})")
        known = {c.lower(): c for c in ALL_COLUMNS}
        header = [known.get(h.strip().lower(), h.strip()) for h in reader.fieldnames]
        reader.fieldnames = header
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise CsvLayoutError(
                f"CSV '{csv_path}' lacks column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                f"found columns: {', '.join(header)}. The layout needs: {', '.join(REQUIRED_COLUMNS)} "
                f"(optional: {', '.join(OPTIONAL_COLUMNS)}), separated by commas"
            )
        rows = []
        prev_line = reader.line_num
        for i, rec in enumerate(reader, start=1):
            cells = {k: (v or "").strip() for k, v in rec.items() if k is not None}
            line = prev_line + 1
            prev_line = reader.line_num
            extra = [v for v in (rec.get(None) or []) if (v or "").strip()]
            short = any(v is None for k, v in rec.items() if k is not None)
            if not extra and not any(cells.values()):
                continue  # an empty row (only separators)
            if extra or short:
                n = sum(1 for k, v in rec.items() if k is not None and v is not None) + len(rec.get(None) or [])
                cells[CELL_COUNT_KEY] = (
                    f"has {n} cells but the header has {len(header)} columns: "
                    + (f"extra cells {', '.join(repr(v) for v in extra[:3])} - a value with an unquoted "
                       f"'{delimiter}' shifts every column after it; quote it" if extra else
                       "a cell is missing (each row needs one cell per column, empty ones too)")
                )
            rows.append((i, line, cells))
    if not rows:
        raise CsvLayoutError(f"CSV '{csv_path}' has a header but no rows")
    return rows


def _resolve(base: Path, cell: str) -> Optional[Path]:
    if not cell:
        return None
    p = Path(cell).expanduser()
    return p if p.is_absolute() else base / p


def _parse_float(cell: str) -> Optional[float]:
    if cell == "" or cell.lower() in ("na", "nan", "none", "null"):
        return None
    if cell.count(",") == 1 and "." not in cell:
        cell = cell.replace(",", ".")  # a decimal comma (0,25), as spreadsheets in many locales write it
    return float(cell)


def parse_row(cells: Dict[str, str], row: int, line: int, base_dir: Path) -> Tuple[AngioRow, List[RowProblem]]:
    """Parse the cells of one row (types and allowed values; no file access)."""
    problems: List[RowProblem] = []
    pid = cells.get("patient_id", "")

    def bad(column: str, message: str) -> None:
        problems.append(RowProblem(row, line, column, message, pid))

    if cells.get(CELL_COUNT_KEY):
        bad("", cells[CELL_COUNT_KEY])
    if not pid:
        bad("patient_id", "is empty (expected the patient's id in the study)")

    phase = cells.get("phase", "").upper()
    if phase not in PHASES:
        bad("phase", f"{cells.get('phase', '')!r} is not a phase (expected one of {', '.join(PHASES)})")

    split = cells.get("split", "").lower()
    if split not in SPLITS:
        bad("split", f"{cells.get('split', '')!r} is not a split (expected one of {', '.join(SPLITS)})")

    vessel = cells.get("vessel_name", "")
    known_vessels = {v.lower(): v for v in VESSEL_NAMES}
    if vessel.lower() not in known_vessels:
        bad("vessel_name", f"{vessel!r} is not a vessel name (expected one of {', '.join(VESSEL_NAMES)})")
    else:
        vessel = known_vessels[vessel.lower()]

    frame_index: Optional[int] = None
    fi = cells.get("frame_index", "")
    try:
        v = float(fi)
        if not v.is_integer():
            raise ValueError
        frame_index = int(v)
        if frame_index < 0:
            bad("frame_index", f"{fi!r} is negative (expected a 0-based frame number)")
            frame_index = None
    except ValueError:
        bad("frame_index", f"{fi!r} is not a frame number (expected a non-negative integer)")

    cass: Optional[int] = None
    cs = cells.get("cass_segment", "")
    try:
        v = float(cs)
        if not v.is_integer():
            raise ValueError
        cass = int(v)
        if cass not in CASS_BY_ID:
            bad("cass_segment", f"unknown CASS id {cs!r} (CASS segment numbers run 1..29; see sam3_angio.cass)")
            cass = None
    except ValueError:
        bad("cass_segment", f"{cs!r} is not a CASS segment number (expected an integer 1..29)")

    if not cells.get("cine_path"):
        bad("cine_path", "is empty (expected the path of the cine .npy)")

    optional: Dict[str, Optional[float]] = {}
    for col in OPTIONAL_COLUMNS:
        try:
            val = _parse_float(cells.get(col, ""))
            if val is not None and not math.isfinite(val):
                raise ValueError
            if col == "mm_per_pixel" and val is not None and val <= 0:
                bad(col, f"{cells[col]!r} must be positive (millimetres per pixel at the isocenter)")
                val = None
            optional[col] = val
        except ValueError:
            bad(col, f"{cells.get(col)!r} is not a finite number (leave the cell empty if unknown)")
            optional[col] = None

    parsed = AngioRow(
        row=row,
        line=line,
        patient_id=pid,
        vessel_pattern=cells.get("vessel_pattern", ""),
        phase=phase,
        vessel_name=vessel,
        cine_path=_resolve(base_dir, cells.get("cine_path", "")),
        frame_index=frame_index,
        contours_path=_resolve(base_dir, cells.get("contours_path", "")),
        vessel_mask_actual_path=_resolve(base_dir, cells.get("vessel_mask_actual_path", "")),
        deepsa_pseudo_label_path=_resolve(base_dir, cells.get("deepsa_pseudo_label_path", "")),
        cass_segment=cass,
        cass_segment_original=cells.get("cass_segment_original", ""),
        split=split,
        raw=dict(cells),
        **optional,
    )
    return parsed, problems


# --------------------------------------------------------------------------------------------------
# Contours JSON


def load_contours(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8-sig") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataLayoutError(f"contours JSON '{path}' is not valid JSON: {e}") from None
    except UnicodeDecodeError:
        raise DataLayoutError(f"contours JSON '{path}' is not UTF-8 text (is it a JSON file?)") from None
    except OSError as e:
        raise DataLayoutError(f"contours JSON '{path}' cannot be read: {e.strerror or e}") from None
    if not isinstance(data, dict):
        raise DataLayoutError(f"contours JSON '{path}' holds a {type(data).__name__}; expected an object")
    return data


def contours_view_angles(contours: dict, source: str, require: bool = True) -> Optional[Dict[str, float]]:
    """``{"primary": deg, "secondary": deg}`` from a contours JSON, or None when marked unknown.

    ``"view_angles": null`` marks unknown angles explicitly. A missing key is an error when
    ``require`` (real study data always has angles), else unknown. The values are checked by the one
    view-angle parser (``sam3_angio.view_angles``): NaN is always an error - a broken value, not a
    statement that the angle is unknown.
    """
    if "view_angles" not in contours:
        if require:
            raise DataLayoutError(
                f"contours JSON '{source}' has no view_angles (expected {{\"primary\": deg LAO+/RAO-, "
                f"\"secondary\": deg CRA+/CAU-}}, or null for unknown; a DICOM cine's header angles are used "
                f"where the JSON has none); pass --allow-missing-angles (require_view_angles=False) to convert "
                f"without them"
            )
        return None
    try:
        angles = parse_view_angles(contours["view_angles"], f"contours JSON '{source}'")
    except DataError as e:
        raise DataLayoutError(str(e)) from None
    return None if angles is None else angles.to_dict()


@dataclass(frozen=True)
class RowView:
    """How one row's frame was taken: its view angles and pixel spacing, and where each came from."""

    view_angles: Optional[Dict[str, float]]  # {"primary", "secondary"} degrees; None = unknown
    angles_source: str  # contours | dicom | unknown
    mm_per_pixel: Optional[float]  # at the isocenter; None = unknown
    spacing_source: str  # csv | contours | dicom:<rule> | unknown


def resolve_view(r: AngioRow, contours: Optional[dict], cine: Optional[FrameFile], require_view_angles: bool
                 ) -> Tuple[RowView, List[Tuple[str, str]]]:
    """The view of a row's frame from its contours JSON (``contours``; None when the row has none) and its
    cine's header (a DICOM file's angles and spacing; nothing for other kinds): ``(view, [(column,
    problem)])``. The one rule for conversion and for inference on a study CSV:

    - angles: the contours JSON's numbers; where it says ``null`` or has no ``view_angles`` (or the
      row has no contours JSON), the DICOM header's. Numbers in both that differ by more than 1 degree
      are a problem (two different runs, or the other sign convention). Neither: unknown (a missing
      key is a problem when ``require_view_angles``; ``null`` never is).
    - spacing: the ``mm_per_pixel`` column, else the contours JSON's ``mm_per_pixel``, else the DICOM
      header's (isocenter rules of :mod:`.dicom`), else unknown.
    """
    src = r.raw.get("contours_path", str(r.contours_path))
    header = cine.view_angles if cine is not None else None
    dicom = None if header is None else header.to_dict()
    problems: List[Tuple[str, str]] = []
    angles, a_src = None, "unknown"
    if contours is not None and ("view_angles" in contours or dicom is None):
        try:
            angles = contours_view_angles(contours, src, require_view_angles)
        except DataLayoutError as e:
            problems.append(("contours_path", str(e)))
        if angles is not None:
            a_src = "contours"
            off = None if dicom is None else max(abs(angles[k] - dicom[k]) for k in ("primary", "secondary"))
            if off is not None and off > _ANGLE_AGREEMENT_DEG:
                problems.append(("contours_path", (
                    f"contours JSON '{src}' has view_angles ({angles['primary']:g}, {angles['secondary']:g}) but "
                    f"the DICOM header of cine '{r.raw.get('cine_path')}' says ({dicom['primary']:g}, "
                    f"{dicom['secondary']:g}) (primary LAO+/RAO-, secondary CRA+/CAU-): the contours belong to "
                    f"another run, or their tool writes the other sign convention; fix one of them, or write "
                    f"\"view_angles\": null to use the header's")))
    if angles is None and dicom is not None:
        angles, a_src = dicom, "dicom"
    mm, m_src = r.mm_per_pixel, "csv"
    if mm is None:
        c_mm = (contours or {}).get("mm_per_pixel")  # the synthetic generator writes it; study exports may
        if isinstance(c_mm, (int, float)) and not isinstance(c_mm, bool) and math.isfinite(c_mm) and c_mm > 0:
            mm, m_src = float(c_mm), "contours"
        elif cine is not None and cine.mm_per_pixel is not None:
            mm, m_src = cine.mm_per_pixel, cine.spacing_source
        else:
            m_src = "unknown"
    return RowView(angles, a_src, mm, m_src), problems


def check_cine(r: AngioRow, read_angles: bool = True) -> Tuple[Optional[FrameFile], List[Tuple[str, str]]]:
    """The row's cine opened from its header, and its frame_index checked against the frame count:
    ``(cine or None, [(column, problem)])``."""
    try:
        cine = open_frames(r.cine_path, read_angles=read_angles)
    except DataError as e:
        return None, [("cine_path", str(e))]
    if r.frame_index is not None and r.frame_index >= cine.n_frames:
        return cine, [("frame_index", f"{r.frame_index} is out of range for cine '{r.raw.get('cine_path')}' with "
                                      f"{cine.n_frames} frames (valid: 0..{cine.n_frames - 1})")]
    return cine, []


# --------------------------------------------------------------------------------------------------
# Files of a row


def check_row_files(
    r: AngioRow,
    task: str,
    class_ids: Optional[Sequence[int]] = None,
    require_view_angles: bool = True,
) -> Tuple[Optional[CheckedRow], List[RowProblem]]:
    """Check what ``task`` needs from a parsed row's files, reading headers only (no pixel data)."""
    problems: List[RowProblem] = []

    def bad(column: str, message: str) -> None:
        problems.append(RowProblem(r.row, r.line, column, message, r.patient_id))

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")

    info: Optional[FrameFile] = None
    if r.cine_path is not None:
        info, found = check_cine(r)
        for column, message in found:
            bad(column, message)

    contours: Optional[dict] = None
    header_angles = info is not None and info.view_angles is not None
    if r.contours_path is None:
        if task == "stenosis" or (require_view_angles and not header_angles):
            bad("contours_path", "is empty (expected the contours JSON with view_angles"
                                 f"{', and the stenosis entry' if task == 'stenosis' else ''})")
    elif not r.contours_path.is_file():
        bad("contours_path", f"file '{r.raw.get('contours_path')}' does not exist")
    else:
        try:
            contours = load_contours(r.contours_path)
        except DataLayoutError as e:
            bad("contours_path", str(e))
        if task == "stenosis" and contours and "stenosis" not in contours:
            bad(
                "contours_path",
                f"contours JSON '{r.raw.get('contours_path')}' has no \"stenosis\" entry; the stenosis task "
                f"needs {{\"stenosis\": {{\"center\": [x, y], \"length_px\": L}}}} (or null for no "
                f"lesion) per row - the synthetic generator writes it, study exports must add it",
            )

    if task in ("cass", "stenosis"):
        if r.cass_segment is not None and task == "cass":
            allowed = _class_ids(class_ids)
            if r.cass_segment not in allowed:
                bad(
                    "cass_segment",
                    f"CASS id {r.cass_segment} ({cass_name(r.cass_segment)}) is not in the class set "
                    f"{allowed}; pass a class set that includes it or skip the row",
                )
        if r.vessel_mask_actual_path is None:
            bad("vessel_mask_actual_path", "is empty (expected the segment's mask)")
        else:
            try:
                shape = mask_shape(r.vessel_mask_actual_path)
                if info is not None and shape != info.frame_shape:
                    bad(
                        "vessel_mask_actual_path",
                        f"mask '{r.raw.get('vessel_mask_actual_path')}' has shape {shape[0]}x{shape[1]} "
                        f"(HxW) but the frame is {info.height}x{info.width}; the segment mask must "
                        f"have the frame's size",
                    )
            except MaskError as e:
                bad("vessel_mask_actual_path", str(e))

    if task == "vessel":
        if r.deepsa_pseudo_label_path is None:
            bad("deepsa_pseudo_label_path", "is empty (expected the full-tree pseudo-label mask)")
        else:
            try:
                h, w = mask_shape(r.deepsa_pseudo_label_path)
                if info is not None:
                    a, b = w / h, info.width / info.height
                    if abs(a - b) > _ASPECT_TOLERANCE * b:
                        bad(
                            "deepsa_pseudo_label_path",
                            f"pseudo-label '{r.raw.get('deepsa_pseudo_label_path')}' is {h}x{w} (HxW), "
                            f"a different aspect ratio from the {info.height}x{info.width} frame; it "
                            f"cannot be resized onto the frame",
                        )
            except MaskError as e:
                bad("deepsa_pseudo_label_path", str(e))

    view, found = resolve_view(r, contours, info, require_view_angles)
    for column, message in found:
        bad(column, message)
    if problems or info is None:
        return None, problems
    return CheckedRow(row=r, cine=info, contours=contours or {}, view_angles=view.view_angles,
                      angles_source=view.angles_source, mm_per_pixel=view.mm_per_pixel,
                      spacing_source=view.spacing_source), problems


def validate_csv(
    csv_path: PathLike,
    task: str,
    class_ids: Optional[Sequence[int]] = None,
    require_view_angles: bool = True,
) -> Tuple[List[CheckedRow], List[RowProblem]]:
    """Parse and check every row of ``csv_path`` for ``task``: ``(good rows, problems)``.

    Raises :class:`CsvLayoutError` when the file itself is unusable; row problems are returned, not
    raised, so a caller can stop at the first or skip them and report.
    """
    csv_path = Path(csv_path)
    base = csv_path.resolve().parent
    good: List[CheckedRow] = []
    problems: List[RowProblem] = []
    for row, line, cells in read_csv_rows(csv_path):
        parsed, probs = parse_row(cells, row, line, base)
        files_checked, fprobs = check_row_files(parsed, task, class_ids, require_view_angles)
        # Report field problems first, then file problems (a bad frame_index hides no file problem).
        probs = probs + [p for p in fprobs if p not in probs]
        if probs:
            problems.extend(probs)
        elif files_checked is not None:
            good.append(files_checked)
    return good, problems
