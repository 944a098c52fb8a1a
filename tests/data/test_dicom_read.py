"""DICOM X-ray angiograms written with pydicom read back with their frames, view angles and spacing;
bad files (corrupt, undecodable, broken angles; colour: test_dicom_colour.py) give one clear error naming the file."""

from __future__ import annotations

import numpy as np
import pytest

from sam3_angio.data.cine import to_gray_uint8
from sam3_angio.data.dicom import DicomError, is_dicom, iter_dicom_frames, read_dicom_header, write_xa_dicom
from sam3_angio.data.inputs import InputError, read_input

T, H, W = 4, 24, 32


def _cine(dtype, bits: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2 ** bits, (T, H, W)).astype(dtype)


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
@pytest.mark.parametrize("dtype,bits", [(np.uint8, 8), (np.uint16, 12), (np.uint16, 16)])
def test_multiframe_xa_reads_back_pixels_angles_and_isocenter_spacing(tmp_path, photometric, dtype, bits):
    frames = _cine(dtype, bits)
    path = write_xa_dicom(tmp_path / "run.dcm", frames, view_angles=(-30.5, 25.0), imager_pixel_spacing=0.2,
                          magnification=1.25, photometric=photometric, bits_stored=bits)
    got = read_input(path)
    assert [f.frame_index for f in got] == list(range(T))
    for f in got:
        assert f.kind == "dicom" and f.n_frames == T and f.image.dtype == np.uint8 and f.image.shape == (H, W)
        assert f.view_angles == (-30.5, 25.0) and f.angles_source == "dicom"
        assert f.mm_per_pixel == pytest.approx(0.2 / 1.25)
        assert f.spacing_source == "dicom:ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"
        stored = frames[f.frame_index]
        expected = stored.astype(np.uint8) if bits == 8 else to_gray_uint8(stored)
        if photometric == "MONOCHROME1":  # white = low: inverted so that vessels are dark
            expected = 255 - expected
        np.testing.assert_array_equal(f.image, expected)


def test_single_frame_dicom_without_extension_is_found_by_its_preamble(tmp_path):
    frame = _cine(np.uint8, 8)[0]
    path = write_xa_dicom(tmp_path / "dcm.tmp", frame, view_angles=(40, -20))
    bare = path.rename(tmp_path / "IM000001")
    assert is_dicom(bare)
    (f,) = read_input(bare)
    assert f.kind == "dicom" and f.n_frames == 1 and f.frame_index == 0 and f.input_id == "IM000001"
    np.testing.assert_array_equal(f.image, frame)


def test_negative_rescale_slope_inverts_like_monochrome1(tmp_path):
    frames = _cine(np.uint16, 12)
    plain = read_input(write_xa_dicom(tmp_path / "a.dcm", frames, bits_stored=12))
    flipped = read_input(write_xa_dicom(tmp_path / "b.dcm", frames, bits_stored=12,
                                        extra={"RescaleSlope": "-1", "RescaleIntercept": "4095"}))
    np.testing.assert_array_equal(flipped[1].image, 255 - plain[1].image)


@pytest.mark.parametrize("tags,mm,rule", [
    ({"pixel_spacing": 0.3}, 0.3, "PixelSpacing"),
    ({"imager_pixel_spacing": 0.3, "extra": {"DistanceSourceToDetector": "1100", "DistanceSourceToPatient": "770"}},
     0.3 * 770 / 1100, "ImagerPixelSpacing*DistanceSourceToPatient/DistanceSourceToDetector"),
    ({"imager_pixel_spacing": 0.3, "magnification": 1.5, "pixel_spacing": 0.25}, 0.2,
     "ImagerPixelSpacing/EstimatedRadiographicMagnificationFactor"),
    ({"imager_pixel_spacing": 0.3}, None, "unknown"),  # detector plane only: not the isocenter spacing
    ({}, None, "unknown"),
])
def test_spacing_rule_is_recorded(tmp_path, tags, mm, rule):
    header = read_dicom_header(write_xa_dicom(tmp_path / "s.dcm", _cine(np.uint8, 8), **tags))
    assert header.spacing_source == rule
    assert header.mm_per_pixel == (None if mm is None else pytest.approx(mm))


def test_missing_angles_are_unknown(tmp_path):
    (f, *_) = read_input(write_xa_dicom(tmp_path / "n.dcm", _cine(np.uint8, 8)))
    assert f.view_angles is None and f.angles_source == "unknown" and f.spacing_source == "unknown"


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")  # pydicom, writing the broken value
@pytest.mark.parametrize("tag,value", [("PositionerPrimaryAngle", "200"), ("PositionerSecondaryAngle", "-95"),
                                       ("PositionerPrimaryAngle", "nan")])
def test_broken_angles_name_the_file_and_tag_unless_given_on_the_command_line(tmp_path, tag, value):
    path = write_xa_dicom(tmp_path / "bad_angles.dcm", _cine(np.uint8, 8), view_angles=(10, 10), extra={tag: value})
    with pytest.raises(InputError) as e:
        read_input(path)
    assert "bad_angles.dcm" in str(e.value) and tag in str(e.value) and "\n" not in str(e.value)
    f = read_input(path, angles="-30,20")[0]  # the command line overrides, and the header is not read
    assert f.view_angles == (-30.0, 20.0) and f.angles_source == "cli"


def test_command_line_spacing_overrides_the_header(tmp_path):
    path = write_xa_dicom(tmp_path / "s.dcm", _cine(np.uint8, 8), pixel_spacing=0.3)
    f = read_input(path, mm_per_pixel=0.21)[0]
    assert f.mm_per_pixel == 0.21 and f.spacing_source == "cli"


@pytest.mark.parametrize("damage", ["truncated_pixels", "truncated_header", "garbage"])
def test_corrupt_dicom_gives_one_clear_error(tmp_path, damage):
    path = write_xa_dicom(tmp_path / "broken.dcm", _cine(np.uint16, 12), bits_stored=12)
    data = path.read_bytes()
    if damage == "truncated_pixels":
        path.write_bytes(data[: len(data) - 500])
    elif damage == "truncated_header":
        path.write_bytes(data[:200])
    else:
        path.write_bytes(b"not a dicom file at all" * 20)
    with pytest.raises(InputError) as e:
        read_input(path)
    msg = str(e.value)
    assert "broken.dcm" in msg and "\n" not in msg


def _transcode(src, dst, syntax: str):
    """``src`` re-encoded by GDCM (the dependency that decodes compressed XA) in ``syntax``."""
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(src))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, syntax)))
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(dst))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write()
    return dst


@pytest.mark.parametrize("syntax,name", [("JPEGLosslessProcess14_1", "JPEG Lossless"),
                                         ("JPEGLSLossless", "JPEG-LS Lossless"),
                                         ("JPEG2000Lossless", "JPEG 2000"),
                                         ("RLELossless", "RLE Lossless")])
@pytest.mark.parametrize("dtype,bits", [(np.uint8, 8), (np.uint16, 12)])
def test_compressed_xa_reads_the_same_frames_as_uncompressed(tmp_path, syntax, name, dtype, bits):
    """Cath labs archive XA runs compressed (JPEG Lossless most often): the installed requirements decode
    them to exactly the frames of the uncompressed file, with the same header facts."""
    frames = _cine(dtype, bits, seed=3)
    raw = write_xa_dicom(tmp_path / "raw.dcm", frames, view_angles=(35.0, -20.0), pixel_spacing=0.3,
                         bits_stored=bits, photometric="MONOCHROME1")
    packed = _transcode(raw, tmp_path / "packed.dcm", syntax)
    header = read_dicom_header(packed)
    assert name in header.transfer_syntax
    want, got = read_input(raw), read_input(packed)
    assert len(got) == T
    for a, b in zip(want, got):
        assert b.view_angles == (35.0, -20.0) and b.mm_per_pixel == pytest.approx(0.3)
        np.testing.assert_array_equal(b.image, a.image)


def test_compressed_pixels_without_a_decoder_name_the_packages_to_install(tmp_path, monkeypatch):
    """A syntax no installed plugin decodes (here: GDCM made unavailable) is refused before any frame."""
    import pydicom
    import pydicom.pixels

    path = _transcode(write_xa_dicom(tmp_path / "raw.dcm", _cine(np.uint8, 8)), tmp_path / "jpegll.dcm",
                      "JPEGLosslessProcess14_1")
    real = pydicom.pixels.get_decoder

    class Unavailable:
        is_available = False
        missing_dependencies = ["gdcm - requires python-gdcm"]

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda uid: Unavailable() if uid.is_compressed else real(uid))
    with pytest.raises(InputError, match=r"jpegll\.dcm.*JPEG Lossless.*python-gdcm.*pip install python-gdcm"):
        read_input(path)


def test_a_damaged_compressed_stream_names_the_file_and_frame(tmp_path):
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLosslessSV1

    path = write_xa_dicom(tmp_path / "jpegll.dcm", _cine(np.uint8, 8))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xc3" + b"\0" * 60 + b"\xff\xd9"] * T)
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(InputError) as e:
        read_input(path)
    msg = str(e.value)
    assert "jpegll.dcm" in msg and "frame 0 cannot be decoded" in msg and "\n" not in msg


def test_explicit_frames_out_of_range_name_the_file_and_its_frame_count(tmp_path):
    path = write_xa_dicom(tmp_path / "run.dcm", _cine(np.uint8, 8))
    assert [f.frame_index for f in read_input(path, frames=[3, 1])] == [3, 1]
    with pytest.raises(InputError, match=rf"frame 7 is out of range for '.*run\.dcm' with {T} frames"):
        read_input(path, frames="1,7")


def test_frames_decode_in_the_order_asked(tmp_path):
    frames = _cine(np.uint8, 8)
    header = read_dicom_header(write_xa_dicom(tmp_path / "o.dcm", frames))
    got = list(iter_dicom_frames(header, [2, 0, 2]))
    assert [k for k, _ in got] == [2, 0, 2]
    np.testing.assert_array_equal(got[1][1], frames[0])


def test_patient_identity_never_reaches_the_result(tmp_path):
    from sam3_angio.data.inputs import describe

    path = write_xa_dicom(tmp_path / "study.dcm", _cine(np.uint8, 8),
                          extra={"PatientName": "DOE^JANE", "PatientID": "123456789"})
    text = repr([describe(f) for f in read_input(path)]) + repr(read_dicom_header(path))
    assert "DOE" not in text and "123456789" not in text


def test_header_refuses_anisotropic_pixels(tmp_path):
    path = write_xa_dicom(tmp_path / "aniso.dcm", _cine(np.uint8, 8), extra={"PixelSpacing": ["0.3", "0.2"]})
    with pytest.raises(DicomError, match=r"aniso\.dcm.*PixelSpacing.*not square"):
        read_dicom_header(path)


def test_enhanced_xa_angles_and_spacing_are_found_in_functional_groups(tmp_path):
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    path = write_xa_dicom(tmp_path / "enh.dcm", _cine(np.uint8, 8))
    ds = pydicom.dcmread(path)
    position, measures, shared = Dataset(), Dataset(), Dataset()
    position.PositionerPrimaryAngle, position.PositionerSecondaryAngle = "-35", "-20"
    measures.PixelSpacing = ["0.28", "0.28"]
    shared.PositionerPositionSequence, shared.PixelMeasuresSequence = Sequence([position]), Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.save_as(path)
    header = read_dicom_header(path)
    assert header.view_angles == (-35.0, -20.0)
    assert (header.mm_per_pixel, header.spacing_source) == (pytest.approx(0.28), "PixelSpacing")


@pytest.mark.parametrize("syntax", ["ExplicitVRLittleEndian", "JPEGLosslessSV1"])
def test_a_dicom_without_pixel_data_is_refused_from_its_header(tmp_path, syntax):
    """A header-only object (no Pixel Data element) is named when opened - also with a compressed transfer
    syntax, where no length check applies and it used to fail only when frame 0 was decoded."""
    import pydicom

    from sam3_angio.data.frame_files import open_frames

    path = write_xa_dicom(tmp_path / "nopix.dcm", _cine(np.uint8, 8))
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.file_meta.TransferSyntaxUID = getattr(pydicom.uid, syntax)
    ds.save_as(path)
    with pytest.raises(DicomError, match=r"nopix\.dcm' has no pixel data.*expected an X-ray angiogram") as e:
        open_frames(path)
    assert "\n" not in str(e.value)


def test_a_header_of_zero_rows_is_refused_when_opened(tmp_path):
    import pydicom

    path = write_xa_dicom(tmp_path / "rows0.dcm", _cine(np.uint8, 8))
    ds = pydicom.dcmread(path)
    ds.Rows = 0
    ds.save_as(path)
    with pytest.raises(DicomError, match=r"rows0\.dcm' has an image of 0x32 pixels"):
        read_dicom_header(path)


def test_broken_header_spacing_says_how_to_give_it_on_the_command_line(tmp_path):
    path = write_xa_dicom(tmp_path / "ps0.dcm", _cine(np.uint8, 8), pixel_spacing=0.0)
    with pytest.raises(DicomError, match=r"ps0\.dcm.*PixelSpacing.*positive.*--mm-per-pixel"):
        read_dicom_header(path)
    assert read_dicom_header(path, read_spacing=False).mm_per_pixel is None


def _raw_dataset(src, dst):
    """``src`` written as a bare dataset: no preamble, no meta header, implicit VR little endian."""
    import pydicom
    from pydicom.filebase import DicomFileLike
    from pydicom.filewriter import write_dataset

    ds = pydicom.dcmread(src)
    del ds.file_meta
    with open(dst, "wb") as f:
        fp = DicomFileLike(f)
        fp.is_little_endian, fp.is_implicit_VR = True, True
        write_dataset(fp, ds)
    return dst


@pytest.mark.parametrize("form", ["deflated", "no meta header"])
def test_deflated_and_meta_less_dicom_read_the_same_frames(tmp_path, form):
    """Deflated Explicit VR files and bare datasets (no preamble, no file meta: old exports) decode to the
    frames of the plain file (pydicom cannot stream them from a path; both used to fail at frame 0)."""
    import pydicom

    frames = _cine(np.uint16, 12)
    plain = write_xa_dicom(tmp_path / "plain.dcm", frames, bits_stored=12, view_angles=(-30, 25))
    if form == "deflated":
        ds = pydicom.dcmread(plain)
        ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
        path = tmp_path / "deflated.dcm"
        ds.save_as(path, enforce_file_format=True)
    else:
        path = _raw_dataset(plain, tmp_path / "raw.dcm")
    want = [f.image for f in read_input(plain)]
    got = read_input(path)
    assert len(got) == T and got[0].view_angles == (-30, 25)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.image, w)


def test_a_truncated_meta_less_dicom_is_caught_before_decoding(tmp_path):
    path = _raw_dataset(write_xa_dicom(tmp_path / "plain.dcm", _cine(np.uint16, 12), bits_stored=12),
                        tmp_path / "raw.dcm")
    path.write_bytes(path.read_bytes()[:-500])
    from sam3_angio.data.frame_files import open_frames

    with pytest.raises(DicomError, match=r"raw\.dcm' is truncated"):
        open_frames(path)


def test_a_frame_of_fewer_than_8_bits_is_spread_onto_0_255(tmp_path):
    """BitsStored 6 holds 0..63: it reached the model as it was, a frame at a quarter of its brightness."""
    frames = _cine(np.uint8, 6)
    (f,) = read_input(write_xa_dicom(tmp_path / "b6.dcm", frames[:1], bits_stored=6))
    np.testing.assert_array_equal(f.image, np.round(frames[0] * (255 / 63)).astype(np.uint8))
    assert f.image.max() == 255
