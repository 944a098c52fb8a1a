"""DICOM files written by other software (the test files pydicom ships: DCMTK, GDCM, scanners' encodings)
and a 12-bit lossy JPEG XA cine as archives store them: each reads to its frames or fails with one
DicomError line, never another exception."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from sam3_angio.data.dicom import DicomError, iter_dicom_frames, read_dicom_header, to_uint8, write_xa_dicom
from sam3_angio.data.inputs import read_input

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
ALL_FILES = sorted(p.name for p in PYDICOM_FILES.glob("*.dcm"))
# grey images pydicom decodes itself, one per encoding: ours must give the same frame
GREY = ["CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "JPEGLSNearLossless_16.dcm", "693_J2KI.dcm",
        "image_dfl.dcm", "examples_overlay.dcm"]


@pytest.mark.parametrize("name", ALL_FILES)
def test_every_file_pydicom_ships_reads_or_fails_in_one_dicom_error_line(name):
    path = PYDICOM_FILES / name
    try:
        header = read_dicom_header(path)
        frames = list(iter_dicom_frames(header))
    except DicomError as e:
        msg = str(e)
        assert str(path) in msg and "\n" not in msg.strip(), msg
        return
    assert len(frames) == header.n_frames >= 1
    for k, (index, img) in enumerate(frames):
        assert index == k and img.dtype == np.uint8 and img.shape == (header.rows, header.columns)


@pytest.mark.parametrize("name", GREY)
def test_grey_files_of_other_writers_decode_as_pydicom_decodes_them(name):
    path = PYDICOM_FILES / name
    header = read_dicom_header(path)
    (_, ours), = list(iter_dicom_frames(header, [0]))
    theirs = pydicom.dcmread(path).pixel_array
    np.testing.assert_array_equal(ours, to_uint8(header, theirs if theirs.ndim == 2 else theirs[0]))


def test_12_bit_jpeg_extended_decodes_to_pydicoms_reference_values():
    """GDCM and Pillow refuse 12-bit JPEG Extended; the imagecodecs plugin decodes it, and pydicom's own
    reference values for this file (from the GPL pylibjpeg-libjpeg decoder) hold."""
    from pydicom.pixels import iter_pixels

    path = PYDICOM_FILES / "JPGExtended.dcm"
    header = read_dicom_header(path)
    assert header.transfer_syntax.startswith("JPEG Extended") and header.bits_stored == 12
    (_, img), = list(iter_dicom_frames(header))
    assert img.shape == (1024, 256) and img.std() > 10
    raw = next(iter_pixels(path))  # the plugin is registered with pydicom by the read above
    assert raw[420, 140] == 244 and raw[230, 120] == 95


def test_a_stream_pydicom_cannot_walk_is_read_from_the_whole_file():
    """SC_rgb_jpeg.dcm declares explicit VR over implicit VR data: pydicom's frame streamer fails on it,
    dcmread reads it whole. It is a real colour picture, so it reaches the colour check (not 'cannot be
    decoded')."""
    with pytest.raises(DicomError, match="colour picture"):
        list(iter_dicom_frames(read_dicom_header(PYDICOM_FILES / "SC_rgb_jpeg.dcm")))


def _cine_12bit(t: int = 3, h: int = 96, w: int = 128) -> np.ndarray:
    """Smooth background near 3000 with dark winding vessels, as 12-bit XA detectors store them."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    frames = []
    for k in range(t):
        bg = 2600 + 600 * np.exp(-((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (2 * (0.6 * w) ** 2))
        centre = h / 2 + 18 * np.sin(xx / 17.0 + k * 0.3)
        vessel = np.exp(-((yy - centre) ** 2) / (2 * 2.5 ** 2))
        frames.append(np.clip(bg - 1400 * vessel, 0, 4095))
    return np.round(np.stack(frames)).astype(np.uint16)


def test_a_12_bit_lossy_jpeg_xa_cine_reads_with_its_angles_and_spacing(tmp_path):
    """An X-ray angiography cine as an archive stores it: multi-frame XA, 12 bits, JPEG Extended lossy
    (1.2.840.10008.1.2.4.51), LossyImageCompression 01, positioner angles and calibrated spacing."""
    import imagecodecs
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGExtended12Bit

    cine = _cine_12bit()
    plain = write_xa_dicom(tmp_path / "plain.dcm", cine, view_angles=(-30.0, 20.0), pixel_spacing=0.28,
                           bits_stored=12, fps=15.0)
    ds = pydicom.dcmread(plain)
    ds.PixelData = encapsulate([imagecodecs.jpeg8_encode(f, level=92, bitspersample=12) for f in cine])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGExtended12Bit
    ds.LossyImageCompression = "01"
    jpeg = tmp_path / "xa_jpeg12.dcm"
    ds.save_as(jpeg, enforce_file_format=True)

    frames = read_input(jpeg)
    reference = read_input(plain)
    assert [f.frame_index for f in frames] == [0, 1, 2]
    for got, ref in zip(frames, reference):
        assert got.mm_per_pixel == pytest.approx(0.28)
        assert got.view_angles is not None and tuple(got.view_angles)[:2] == (-30.0, 20.0)
        assert got.image.shape == ref.image.shape == (96, 128)
        # lossy at quality 92: within a couple of grey levels of the uncompressed file on average
        assert np.abs(got.image.astype(int) - ref.image.astype(int)).mean() < 2.0
