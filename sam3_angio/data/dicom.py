"""X-ray angiography DICOM files through pydicom: the header facts inference needs (frames, view
angles, pixel spacing) and the frames as 8-bit grey images ``(H, W)`` uint8, vessels dark.

Public API::

    is_dicom(path) -> bool                        # the 'DICM' marker at byte 128 (any file name)
    non_image_object(path) -> str | None          # "Basic Text SR", ... for a DICOM that holds no image
    read_dicom_header(path) -> DicomHeader        # header only, no pixel data read
    iter_dicom_frames(header, indices=None)       # -> Iterator[(frame index, (H, W) uint8)]
    check_decodable(header)                       # a decoder exists and the file is long enough; no decoding
    write_xa_dicom(path, frames, ...)             # a minimal uncompressed XA file (tests, demos)

Decisions (what a frame looks like after reading):

- Pixels: the stored values of one frame, ``(Rows, Columns)``. BitsStored 8 is used as it is (uint8,
  no window, as an 8-bit cine); BitsStored 1-7 is scaled from ``0..2^b-1`` onto 0..255 (used as it was, a
  6-bit frame reached the model at a quarter of its brightness). BitsStored 9-16 is windowed to 8 bit per frame by
  :func:`sam3_angio.data.cine.to_gray_uint8` (0.5th-99.5th percentile), the rule the study's uint16 cines
  were converted with, so the model sees what it was trained on.
- RescaleSlope / RescaleIntercept: the percentile window is invariant to a positive affine map, so only
  the slope's sign matters: a negative slope inverts the grey scale (as MONOCHROME1 does).
- VOI LUT / WindowCenter / WindowWidth are read by nobody here and ignored on purpose: vendors set
  them for a viewer's display, and training frames were windowed by percentile, not by VOI.
- MONOCHROME1 (white = low value) is inverted so that vessels are dark, as in MONOCHROME2 angiograms.
- Colour: a secondary-capture export of an angiogram is often RGB (or YBR_FULL / YBR_FULL_422, which
  pydicom converts to RGB as it decodes; PlanarConfiguration 0 or 1) with R = G = B. Such a file is
  read, and the decision is made per decoded frame, from its pixels: the three channels must agree
  exactly (RGB, lossless syntax) or within :data:`GREY_TOLERANCE` grey levels at 8 bit (YBR, whose
  conversion rounds, or a lossy syntax / LossyImageCompression 01), and the frame is their BT.601 luma
  (the one channel when they agree exactly). A true colour frame (burnt-in coloured annotations) is
  refused naming the frame and the channels' largest difference. PALETTE COLOR and other colour models
  are refused from the header.
- Compressed transfer syntaxes decode through pydicom's plugins: RLE natively, everything cath labs write
  (JPEG Lossless - the usual XA syntax -, JPEG-LS, JPEG 2000, JPEG baseline / extended) through GDCM
  (``python-gdcm``, a dependency), and 12-bit JPEG Extended - which GDCM and Pillow refuse and archives
  use for lossy XA cines - through imagecodecs (:mod:`sam3_angio.data.dicom_codecs`, a pydicom plugin).
  A syntax no installed plugin decodes raises :class:`DicomError` naming the file, the syntax and the
  packages to install; a damaged stream names the frame. Deflated files and bare datasets (no preamble
  or file meta header; their encoding as pydicom detects it) are read whole, as pydicom cannot stream
  their frames from the path; so is a file whose frames pydicom's streamer cannot find (a header that
  declares explicit VR over implicit VR data), after the streamed first frame failed.
- Refused from the header, before any frame is decoded: no Pixel Data element (a header-only object),
  Rows or Columns 0, an uncompressed file shorter than its frames, a photometric interpretation other
  than those above. Broken spacing tags and broken angle
  tags say how to give the value on the command line instead.

Header (degrees and millimetres; per-frame functional groups of Enhanced XA are searched when a tag
is not at the top level, frame 0 first, then the shared group):

- View angles ``(primary, secondary)``: PositionerPrimaryAngle (LAO positive, RAO negative) and
  PositionerSecondaryAngle (cranial positive, caudal negative), the DICOM sign convention (PS3.3
  C.8.7.5). Missing (either) -> None (unknown). Non-numeric, non-finite or out of range
  (|primary| > 180, |secondary| > 90) -> :class:`DicomError` naming the file and the tag. Per-frame
  increments of rotational runs (PositionerPrimaryAngleIncrement) are not applied.
- ``mm_per_pixel`` at the isocenter, first rule that applies (``spacing_source`` records it):
  1. ``ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor`` (detector spacing / magnification);
  2. ``PixelSpacing`` (spacing calibrated in the patient);
  3. ``ImagerPixelSpacing*DistanceSourceToPatient/DistanceSourceToDetector`` (magnification SID/SOD);
  4. none: None, ``"unknown"``. ImagerPixelSpacing alone (detector plane, 30-50 % larger than at the
     isocenter) is not used: a length in mm from it would be silently wrong.
  Row and column spacing must agree within 2 %; non-finite or non-positive values raise DicomError.
- Patient identity (PatientName, PatientID, ...) is never read into a result or a message.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import DataError
from ..view_angles import ViewAngles, check_angle
from .cine import CineError, to_gray_uint8

PathLike = Union[str, Path]

DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
GREY = ("MONOCHROME1", "MONOCHROME2")
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422")  # read when the decoded frame is grey (module docstring)
# Largest channel difference (grey levels at 8 bit, scaled to deeper data) of a grey frame stored as YBR
# or compressed lossily: the YBR -> RGB conversion rounds, and JPEG quantises the chroma planes. A burnt-in
# coloured annotation differs by tens to hundreds of levels.
GREY_TOLERANCE = 8
# A detector pixel is square; more than this relative difference between the row and column spacing
# means the header is wrong or the image was resampled, and one mm-per-pixel number cannot hold.
_ANISOTROPY_TOLERANCE = 0.02
# (7FE0,0010) Pixel Data, (7FE0,0008) Float Pixel Data, (7FE0,0009) Double Float Pixel Data, as the 4 bytes of
# their tag in a little- or big-endian file
_PIXEL_TAGS = {bytes.fromhex(h) for h in ("e07f1000", "e07f0800", "e07f0900", "7fe00010", "7fe00008", "7fe00009")}
_MM_HINT = "; fix the header or pass the isocenter spacing on the command line (--mm-per-pixel)"
_INSTALL_HINT = ("install sam3-angio's decoder again (pip install python-gdcm) or pydicom's other plugins "
                 "(pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg), or convert the file to "
                 "uncompressed DICOM (e.g. gdcmconv --raw) first")
# pydicom's names of the transfer syntaxes whose decoded pixels may differ from the original (JPEG 2000 and
# HTJ2K may be either)
_LOSSY_SYNTAXES = ("JPEGBaseline8Bit", "JPEGExtended12Bit", "JPEGLSNearLossless", "JPEG2000", "HTJ2K")


class DicomError(DataError):
    """A DICOM file that cannot be used as an angiogram; the message names the file and the tag."""


@dataclass(frozen=True)
class DicomHeader:
    """What inference needs from one DICOM file, read without its pixel data."""

    path: Path
    n_frames: int
    rows: int
    columns: int
    photometric: str  # MONOCHROME1 | MONOCHROME2 | RGB | YBR_FULL | YBR_FULL_422
    bits_stored: int
    rescale_slope: float
    transfer_syntax: str  # its name, e.g. "Explicit VR Little Endian"
    view_angles: Optional[ViewAngles]  # (primary LAO+/RAO-, secondary CRA+/CAU-) degrees
    mm_per_pixel: Optional[float]  # at the isocenter
    spacing_source: str  # the rule used (see the module docstring) or "unknown"
    fps: Optional[float] = None  # RecommendedDisplayFrameRate, CineRate or 1000 / FrameTime
    sop_class: str = ""
    samples_per_pixel: int = 1  # 3 for the colour models
    lossy: bool = False  # a lossy transfer syntax or LossyImageCompression 01: colour channels may differ a little
    _meta: Any = field(default=None, repr=False, compare=False)  # the header Dataset (no pixel data)


def is_dicom(path: PathLike) -> bool:
    """True when the file carries the DICOM preamble marker ``DICM`` at byte 128 (PS3.10 7.1)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def non_image_object(path: PathLike) -> Optional[str]:
    """What a DICOM file is when it holds no image (Rows / Columns absent): its SOP class name ("Basic Text SR",
    "Grayscale Softcopy Presentation State", ...), for a folder search to leave out the reports, dose sheets
    and presentation states a PACS export holds beside the cines. None for an image, and for a file that
    cannot be read: the reader then says what is wrong with it."""
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ds = pydicom.dcmread(path, stop_before_pixels=True,
                                 specific_tags=["SOPClassUID", "Modality", "Rows", "Columns"])
    except Exception:  # not our verdict to give: the reader names the file and the fault
        return None
    if "Rows" in ds or "Columns" in ds:
        return None
    sop = ds.get("SOPClassUID")
    name = getattr(sop, "name", None) if sop is not None else None
    return str(name or (f"modality {ds.Modality}" if ds.get("Modality") else "a DICOM object without an image"))


def _get(ds: Any, keyword: str, path: Path) -> Any:
    """``ds.keyword`` or None; a value pydicom cannot convert (a DS that is not a number) -> DicomError."""
    try:
        value = ds.get(keyword, None)
    except (ValueError, TypeError, OverflowError) as e:
        raise DicomError(f"DICOM '{path}': {keyword} cannot be read ({e}); expected a number") from None
    return None if value in (None, "") else value


def _lookup(ds: Any, keyword: str, path: Path) -> Any:
    """``keyword``'s value at the top level, else in the first per-frame or the shared functional
    group (Enhanced XA nests header tags one sequence deep there); None if absent or empty."""
    value = _get(ds, keyword, path)
    if value is not None:
        return value
    for groups in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        seq = ds.get(groups, None)
        if not seq:
            continue
        for elem in seq[0]:
            if elem.VR == "SQ" and len(elem.value) and keyword in elem.value[0]:
                value = _get(elem.value[0], keyword, path)
                if value is not None:
                    return value
    return None


def _numbers(path: Path, keyword: str, value: Any) -> Tuple[float, ...]:
    from pydicom.multival import MultiValue

    values = value if isinstance(value, (list, tuple, MultiValue)) else [value]
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise DicomError(f"DICOM '{path}': {keyword} is {value!r}; expected a number") from None
    for v in out:
        if not math.isfinite(v):
            raise DicomError(f"DICOM '{path}': {keyword} is {value!r}; expected a finite number")
    return out


def _view_angles(path: Path, ds: Any) -> Optional[ViewAngles]:
    raw = {k: _lookup(ds, k, path) for k in ("PositionerPrimaryAngle", "PositionerSecondaryAngle")}
    if any(v is None for v in raw.values()):
        return None
    where = f"DICOM '{path}'"
    try:
        return ViewAngles(*(check_angle(key, _numbers(path, tag, value)[0], where, label=tag)
                            for key, (tag, value) in zip(("primary", "secondary"), raw.items())))
    except DataError as e:
        raise DicomError(f"{e}; fix the header or pass the angles on the command line (--angles)") from None


def _spacing(path: Path, keyword: str, value: Any) -> float:
    v = _numbers(path, keyword, value)
    row, col = (v[0], v[1]) if len(v) >= 2 else (v[0], v[0])
    if row <= 0 or col <= 0:
        raise DicomError(f"DICOM '{path}': {keyword} is {value!r}; expected positive millimetres")
    if abs(row - col) > _ANISOTROPY_TOLERANCE * max(row, col):
        raise DicomError(
            f"DICOM '{path}': {keyword} is {row:g}\\{col:g} mm (row\\column), not square pixels; "
            f"pass the isocenter spacing on the command line (--mm-per-pixel)"
        )
    return 0.5 * (row + col)


def _positive(path: Path, keyword: str, value: Any) -> float:
    (v,) = _numbers(path, keyword, value)[:1]
    if v <= 0:
        raise DicomError(f"DICOM '{path}': {keyword} is {value!r}; expected a positive number")
    return v


def _mm_per_pixel(path: Path, ds: Any) -> Tuple[Optional[float], str]:
    try:
        return _mm_rules(path, ds)
    except DicomError as e:
        if "--mm-per-pixel" in str(e):
            raise
        raise DicomError(f"{e}{_MM_HINT}") from None


def _mm_rules(path: Path, ds: Any) -> Tuple[Optional[float], str]:
    ips = _lookup(ds, "ImagerPixelSpacing", path)
    ermf = _lookup(ds, "EstimatedRadiographicMagnificationFactor", path)
    if ips is not None and ermf is not None:
        return (_spacing(path, "ImagerPixelSpacing", ips)
                / _positive(path, "EstimatedRadiographicMagnificationFactor", ermf),
                "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor")
    ps = _lookup(ds, "PixelSpacing", path)
    if ps is not None:
        return _spacing(path, "PixelSpacing", ps), "PixelSpacing"
    sid, sod = _lookup(ds, "DistanceSourceToDetector", path), _lookup(ds, "DistanceSourceToPatient", path)
    if ips is not None and sid is not None and sod is not None:
        return (_spacing(path, "ImagerPixelSpacing", ips) * _positive(path, "DistanceSourceToPatient", sod)
                / _positive(path, "DistanceSourceToDetector", sid),
                "ImagerPixelSpacing*DistanceSourceToPatient/DistanceSourceToDetector")
    return None, "unknown"


def _fps(path: Path, ds: Any) -> Optional[float]:
    for keyword, to_fps in (("RecommendedDisplayFrameRate", float), ("CineRate", float),
                            ("FrameTime", lambda ms: 1000.0 / ms)):
        value = ds.get(keyword, None)
        try:
            fps = to_fps(float(value)) if value not in (None, "") else None
        except (TypeError, ValueError, ZeroDivisionError):
            fps = None
        if fps is not None and math.isfinite(fps) and fps > 0:
            return fps
    return None


def read_dicom_header(path: PathLike, read_angles: bool = True, read_spacing: bool = True) -> DicomHeader:
    """Header facts of the DICOM file at ``path`` (pixel data not read). Raises :class:`DicomError`
    for a file that is not DICOM, has no image, is colour, or has broken angles / spacing.
    ``read_angles`` / ``read_spacing`` False skip those tags (None, ``"unknown"``): for a caller that
    has the values from elsewhere, so that broken header values do not stop it."""
    path = Path(path)
    if not path.is_file():
        raise DicomError(f"DICOM '{path}' does not exist")
    # pydicom warns about malformed values as it meets them; they are checked below, with the file named.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return _read_header(path, read_angles, read_spacing)


def _read_header(path: Path, read_angles: bool, read_spacing: bool) -> DicomHeader:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with open(path, "rb") as f:
            ds = pydicom.dcmread(f, stop_before_pixels=True, force=not is_dicom(path))
            # pydicom stops with the file at the pixel data element's tag; without one it read to the end
            next_tag = f.read(4)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise DicomError(f"DICOM '{path}' cannot be read: {type(e).__name__}: {e} (is it a complete "
                         f"DICOM file?)") from None
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        bits_alloc, bits_stored = int(ds.BitsAllocated), int(ds.get("BitsStored", ds.BitsAllocated))
    except (AttributeError, TypeError, ValueError):
        raise DicomError(f"DICOM '{path}' has no image header (Rows / Columns / BitsAllocated missing): the "
                         f"file is truncated, not DICOM, or not an image (a report, a DICOMDIR); expected an "
                         f"X-ray angiogram") from None
    if rows < 1 or columns < 1:
        raise DicomError(f"DICOM '{path}' has an image of {rows}x{columns} pixels (Rows x Columns); expected "
                         f"at least 1x1: the header is damaged")
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if not ((samples == 1 and photometric in GREY) or (samples == 3 and photometric in COLOUR)):
        raise DicomError(
            f"DICOM '{path}' has PhotometricInterpretation {photometric} with SamplesPerPixel {samples}; "
            f"expected grey XA (MONOCHROME1 or MONOCHROME2, 1 sample) or a grey angiogram exported as "
            f"{' / '.join(COLOUR)} (3 samples); export the angiogram in grey"
        )
    if not (1 <= bits_stored <= 16) or bits_alloc not in (8, 16):
        raise DicomError(f"DICOM '{path}' stores {bits_stored} bits in {bits_alloc}; expected "
                         f"BitsStored 1..16 in 8 or 16 bits allocated")
    try:
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        raise DicomError(f"DICOM '{path}': NumberOfFrames is {ds.get('NumberOfFrames')!r}; expected an "
                         f"integer") from None
    slope = _get(ds, "RescaleSlope", path)
    slope = _numbers(path, "RescaleSlope", slope)[0] if slope is not None else 1.0
    if slope == 0:
        raise DicomError(f"DICOM '{path}': RescaleSlope is 0; expected a non-zero number")
    meta = getattr(ds, "file_meta", None)
    tsuid = meta.get("TransferSyntaxUID", None) if meta is not None else None
    if tsuid is None:  # no meta header (a raw dataset): the encoding pydicom found when reading it
        tsuid = _encoding_syntax(ds)
    if not pydicom.uid.UID(tsuid).is_deflated and next_tag not in _PIXEL_TAGS:  # a deflated file is read inflated
        raise DicomError(f"DICOM '{path}' has no pixel data (no Pixel Data element after its header): it holds "
                         f"no image (a header-only export, a report or a presentation state?); expected an X-ray "
                         f"angiogram with its frames")
    mm, source = _mm_per_pixel(path, ds) if read_spacing else (None, "unknown")
    lossy = (tsuid in {getattr(pydicom.uid, name) for name in _LOSSY_SYNTAXES}
             or str(ds.get("LossyImageCompression", "")).strip() == "01")
    return DicomHeader(
        path=path, n_frames=n_frames, rows=rows, columns=columns, photometric=photometric,
        bits_stored=bits_stored, rescale_slope=slope, transfer_syntax=pydicom.uid.UID(tsuid).name,
        view_angles=_view_angles(path, ds) if read_angles else None, mm_per_pixel=mm, spacing_source=source,
        fps=_fps(path, ds), sop_class=str(ds.get("SOPClassUID", "")), samples_per_pixel=samples, lossy=lossy,
        _meta=ds,
    )


def _encoding_syntax(ds: Any) -> str:
    """The uncompressed transfer syntax of a dataset read without a file meta header (PS3.5 default:
    implicit VR little endian), from the encoding pydicom detected."""
    import pydicom.uid as U

    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit in (None, True):
        return U.ImplicitVRLittleEndian
    return U.ExplicitVRLittleEndian if little in (None, True) else U.ExplicitVRBigEndian


def _check_decoder(header: DicomHeader) -> None:
    from pydicom.pixels import get_decoder

    from .dicom_codecs import register

    register()  # 12-bit JPEG Extended through imagecodecs, which pydicom's BSD plugins do not decode

    meta = getattr(header._meta, "file_meta", None)
    uid = meta.get("TransferSyntaxUID", None) if meta is not None else None
    if uid is None:
        return
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise DicomError(f"DICOM '{header.path}': transfer syntax {header.transfer_syntax} ({uid}) has no "
                         f"pixel decoder in pydicom; {_INSTALL_HINT}") from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "a decoder plugin"
        raise DicomError(
            f"DICOM '{header.path}': pixel data are compressed as {header.transfer_syntax} ({uid}) and no "
            f"installed package decodes it (needs one of: {missing}); {_INSTALL_HINT}"
        )


def check_decodable(header: DicomHeader) -> None:
    """What :func:`iter_dicom_frames` checks before its first frame (a decoder for the transfer syntax,
    an uncompressed file long enough for its frames), without decoding: raises :class:`DicomError`."""
    _check_decoder(header)
    _check_length(header)


def _check_length(header: DicomHeader) -> None:
    """A truncated uncompressed file is caught before any frame is handed out (pydicom would fail at
    the first missing frame, after the earlier ones were used)."""
    meta = getattr(header._meta, "file_meta", None)
    uid = meta.get("TransferSyntaxUID", None) if meta is not None else None
    if uid is None:  # a raw dataset without meta header is uncompressed
        from pydicom.uid import UID

        uid = UID(_encoding_syntax(header._meta))
    if uid.is_encapsulated or uid.is_deflated:
        return
    bits = int(header._meta.get("BitsAllocated", 8))
    # YBR_FULL_422 stores two luma samples and one Cb, Cr pair for every two pixels (PS3.3 C.7.6.3.1.2)
    samples = 2 if header.photometric == "YBR_FULL_422" else header.samples_per_pixel
    need = header.rows * header.columns * samples * header.n_frames * bits // 8
    size = header.path.stat().st_size
    if size < need:
        raise DicomError(f"DICOM '{header.path}' is truncated: the file has {size} bytes but its {header.n_frames} "
                         f"frame(s) of {header.rows}x{header.columns}x{samples} at {bits} bits need {need} bytes of "
                         f"pixel data; copy the file again")


def _grey_of_colour(header: DicomHeader, rgb: np.ndarray, frame: Optional[int]) -> np.ndarray:
    """A decoded colour frame ``(Rows, Columns, 3)`` RGB -> ``(Rows, Columns)`` in its own dtype, when its
    channels agree (exactly, or within :data:`GREY_TOLERANCE` for YBR or lossy data); else DicomError."""
    where = f"DICOM '{header.path}'" + (f" frame {frame}" if frame is not None else "")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DicomError(f"{where}: a {header.photometric} frame has shape {rgb.shape}; expected "
                         f"(Rows, Columns, 3)")
    ch = rgb.astype(np.int64)
    diff = np.max(np.abs(ch - np.roll(ch, 1, axis=2)), axis=2)  # per pixel: the largest of |R-G|, |G-B|, |B-R|
    worst = int(diff.max())
    if worst == 0:
        return np.ascontiguousarray(rgb[..., 0])
    exact = header.photometric == "RGB" and not header.lossy
    tolerance = 0 if exact else max(1, round(GREY_TOLERANCE * ((1 << header.bits_stored) - 1) / 255))
    if worst > tolerance:
        share = 100.0 * float(np.count_nonzero(diff > tolerance)) / diff.size
        allowed = ("none in lossless RGB" if exact else
                   f"at most {tolerance} in {header.photometric}{' compressed lossily' if header.lossy else ''}")
        raise DicomError(f"{where} is a colour picture, not a grey angiogram: its R, G, B channels differ by up to "
                         f"{worst} grey levels in {share:.2g} % of the pixels, expected {allowed}; coloured "
                         f"annotations burnt in? Export the angiogram in grey (MONOCHROME2), without overlays")
    luma = ch.astype(np.float64) @ np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as for colour cines
    info = np.iinfo(rgb.dtype)
    return np.clip(np.round(luma), info.min, info.max).astype(rgb.dtype)


def to_uint8(header: DicomHeader, stored: np.ndarray, frame: Optional[int] = None) -> np.ndarray:
    """One frame's stored values ``(Rows, Columns)`` (colour: ``(Rows, Columns, 3)`` RGB, as pydicom
    decodes it) -> ``(H, W)`` uint8, vessels dark (the module's rules: a grey colour frame to one
    channel, 8-bit as is, 1-7 bit scaled to 0..255, deeper windowed by percentile; MONOCHROME1 or a
    negative slope inverted). ``frame``: its index, for the messages."""
    if header.photometric in COLOUR:
        stored = _grey_of_colour(header, stored, frame)
    if stored.ndim != 2:
        raise DicomError(f"DICOM '{header.path}': a frame has shape {stored.shape}; expected (Rows, Columns)")
    if header.bits_stored == 8 and stored.dtype.kind == "u":
        img = stored.astype(np.uint8)
    elif header.bits_stored < 8 and stored.dtype.kind == "u":  # 0..2^b-1 spread onto 0..255, as a viewer shows it
        top = (1 << header.bits_stored) - 1
        img = np.round(np.minimum(stored, top).astype(np.float64) * (255.0 / top)).astype(np.uint8)
    else:
        try:
            img = to_gray_uint8(stored)
        except CineError as e:
            raise DicomError(f"DICOM '{header.path}': {e}") from None
    invert = (header.photometric == "MONOCHROME1") != (header.rescale_slope < 0)
    return 255 - img if invert else img


def _read_whole(path: Path) -> Any:
    """The dataset read whole, with a TransferSyntaxUID even when the file has no meta header."""
    import pydicom

    with warnings.catch_warnings():  # malformed values are checked where they are used, the file named
        warnings.simplefilter("ignore", UserWarning)
        ds = pydicom.dcmread(path, force=True)
    if ds.get("file_meta") is None or "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta = getattr(ds, "file_meta", None) or pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = _encoding_syntax(ds)
    return ds


def _frames(src: Any, header: DicomHeader, uid: Any, order: Sequence[int]) -> Iterator[np.ndarray]:
    """pydicom's frames ``order`` of ``src`` (a path streams, a dataset is in memory), in that order."""
    from pydicom.pixels import iter_pixels

    if header.photometric == "YBR_FULL_422" and not (uid is not None and uid.is_encapsulated):
        # pydicom 3.0 reads the second and later frames of uncompressed YBR_FULL_422 with the frame length of
        # YBR_FULL when it decodes several in one call (it relabels the data after expanding the first): one
        # call a frame
        return (frame for k in order for frame in iter_pixels(src, indices=[k]))
    return iter_pixels(src, indices=order)


def iter_dicom_frames(header: DicomHeader, indices: Optional[Iterable[int]] = None
                      ) -> Iterator[Tuple[int, np.ndarray]]:
    """``(frame index, (H, W) uint8)`` for each of ``indices`` (all frames when None), decoded one at a
    time. Indices must be in ``0..n_frames-1`` (the caller checks and names the file)."""
    check_decodable(header)
    wanted = list(range(header.n_frames)) if indices is None else [int(i) for i in indices]
    if not wanted:
        return
    # iter_pixels yields frames in file order: stream them when asked in that order, else decode each
    # distinct frame once and hand them out as asked.
    order = sorted(set(wanted))
    meta = getattr(header._meta, "file_meta", None)
    uid = meta.get("TransferSyntaxUID", None) if meta is not None else None
    # pydicom streams frames from a path only for a Part 10 file (preamble, meta header) that is not
    # deflated; any other is read whole and given the transfer syntax its header resolved to
    streamed = is_dicom(header.path) and uid is not None and not uid.is_deflated
    src: Any = header.path if streamed else _read_whole(header.path)
    frames = _frames(src, header, uid, order)
    decoded = {}
    for i, k in enumerate(order):
        try:
            try:
                stored = np.asarray(next(frames))
            except Exception as first:
                # pydicom's frame streamer trips on some malformed files that dcmread reads whole (a
                # header that says explicit VR over implicit VR data): try once more from the whole file.
                # Not when a decoder refused the frame's data: the whole file would not decode either.
                if not (streamed and i == 0) or str(first).startswith("Unable to decode"):
                    raise
                streamed = False
                frames = _frames(_read_whole(header.path), header, uid, order)
                stored = np.asarray(next(frames))
        except Exception as e:  # pydicom raises RuntimeError / ValueError / ... from its plugins
            # pydicom puts each plugin's reason on a line of its own: one line here
            why = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
            hint = (f"a variant the installed decoders do not handle; {_INSTALL_HINT}" if "not support" in why
                    else "is the file complete?")
            raise DicomError(f"DICOM '{header.path}': pixel data ({header.transfer_syntax}) of frame {k} cannot "
                             f"be decoded: {type(e).__name__}: {why} ({hint})") from None
        if wanted == order:
            yield k, to_uint8(header, stored, k)
        else:
            decoded[k] = stored
    if wanted != order:
        for k in wanted:
            yield k, to_uint8(header, decoded[k], k)


def write_xa_dicom(
    path: PathLike,
    frames: np.ndarray,
    *,
    view_angles: Optional[Tuple[float, float]] = None,
    imager_pixel_spacing: Optional[float] = None,
    magnification: Optional[float] = None,
    pixel_spacing: Optional[float] = None,
    photometric: str = "MONOCHROME2",
    bits_stored: Optional[int] = None,
    fps: Optional[float] = None,
    planar_configuration: int = 0,
    extra: Optional[dict] = None,
) -> Path:
    """Write ``frames`` ``(T, H, W)`` or ``(H, W)`` (uint8 or uint16) as an uncompressed X-Ray
    Angiographic Image Storage file (explicit VR little endian) with the given header values; for
    tests and demos (a synthetic cine as DICOM). ``extra`` sets further keywords (``{"RescaleSlope": 2}``).
    ``photometric`` one of :data:`COLOUR`: ``frames`` are RGB ``(T, H, W, 3)`` or ``(H, W, 3)`` uint8,
    stored as that model (YBR through pydicom's ``convert_color_space``; YBR_FULL_422 needs an even width
    and ``planar_configuration`` 0) with ``planar_configuration`` 0 (RGBRGB...) or 1 (RR..GG..BB..).
    No patient data: PatientName is ``ANONYMOUS``."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, XRayAngiographicImageStorage, generate_uid

    arr = np.asarray(frames)
    colour = photometric in COLOUR
    if arr.ndim == 2 + colour:
        arr = arr[None]
    if colour and (arr.ndim != 4 or arr.shape[3] != 3 or arr.dtype != np.uint8):
        raise ValueError(f"{photometric} frames must be (T, H, W, 3) or (H, W, 3) uint8, got {arr.shape} {arr.dtype}")
    if not colour and (arr.ndim != 3 or arr.dtype not in (np.uint8, np.uint16)):
        raise ValueError(f"frames must be (T, H, W) or (H, W) uint8/uint16, got {arr.shape} {arr.dtype}")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = XRayAngiographicImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientName, ds.PatientID = "XA", "ANONYMOUS", "ANONYMOUS"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = (3 if colour else 1), photometric
    if colour:
        ds.PlanarConfiguration = int(planar_configuration)
    ds.Rows, ds.Columns = int(arr.shape[1]), int(arr.shape[2])
    ds.BitsAllocated = 8 * arr.dtype.itemsize
    ds.BitsStored = int(bits_stored or ds.BitsAllocated)
    ds.HighBit, ds.PixelRepresentation = ds.BitsStored - 1, 0
    if arr.shape[0] > 1:
        ds.NumberOfFrames = int(arr.shape[0])
        ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
        ds.FrameTime = f"{1000.0 / (fps or 15.0):.6g}"
    if view_angles is not None:
        ds.PositionerPrimaryAngle, ds.PositionerSecondaryAngle = (f"{float(a):.6g}" for a in view_angles)
    if imager_pixel_spacing is not None:
        ds.ImagerPixelSpacing = [f"{imager_pixel_spacing:.8g}"] * 2
    if magnification is not None:
        ds.EstimatedRadiographicMagnificationFactor = f"{magnification:.8g}"
    if pixel_spacing is not None:
        ds.PixelSpacing = [f"{pixel_spacing:.8g}"] * 2
    for keyword, value in (extra or {}).items():
        setattr(ds, keyword, value)
    if colour:
        ds.PixelData = _colour_pixel_data(arr, photometric, int(planar_configuration))
    else:
        ds.PixelData = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"))).tobytes()
    path = Path(path)
    ds.save_as(path, enforce_file_format=True)
    return path


def _colour_pixel_data(rgb: np.ndarray, photometric: str, planar: int) -> bytes:
    """``(T, H, W, 3)`` uint8 RGB -> the Pixel Data bytes of ``photometric`` with PlanarConfiguration
    ``planar``."""
    from pydicom.pixels import convert_color_space

    arr = rgb if photometric == "RGB" else convert_color_space(rgb, "RGB", "YBR_FULL")
    if photometric == "YBR_FULL_422":  # Y1 Y2 Cb Cr for each pair of pixels of a row (PS3.3 C.7.6.3.1.2)
        if planar != 0 or arr.shape[2] % 2:
            raise ValueError("YBR_FULL_422 needs planar_configuration 0 and an even number of columns")
        pairs = arr.reshape(arr.shape[0], arr.shape[1], -1, 2, 3).astype(np.uint16)
        chroma = ((pairs[..., 0, 1:] + pairs[..., 1, 1:] + 1) // 2).astype(np.uint8)  # (T, H, W/2, 2)
        arr = np.concatenate([pairs[..., :, 0].astype(np.uint8), chroma], axis=-1)  # (T, H, W/2, 4)
    elif planar == 1:
        arr = np.moveaxis(arr, -1, 1)  # (T, 3, H, W)
    return np.ascontiguousarray(arr).tobytes()


__all__: Sequence[str] = ("DicomError", "DicomHeader", "is_dicom", "iter_dicom_frames", "read_dicom_header",
                          "to_uint8", "write_xa_dicom")
