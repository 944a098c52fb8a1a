"""Colour DICOM (secondary-capture exports of angiograms): RGB / YBR_FULL / YBR_FULL_422 read as grey
when the decoded frame's channels agree; a true colour frame or PALETTE COLOR is refused in one line."""

from __future__ import annotations

import io

import numpy as np
import pytest

from sam3_angio.data.dicom import DicomError, iter_dicom_frames, read_dicom_header, write_xa_dicom
from sam3_angio.data.inputs import InputError, check_source, find_inputs, read_input
from sam3_angio.errors import UserError

T, H, W = 3, 24, 32


def _grey(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (T, H, W)).astype(np.uint8)


def _rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=-1)


@pytest.mark.parametrize("photometric,planar", [("RGB", 0), ("RGB", 1), ("YBR_FULL", 0), ("YBR_FULL", 1),
                                                ("YBR_FULL_422", 0)])
def test_a_grey_angiogram_stored_as_colour_reads_as_its_grey_frames(tmp_path, photometric, planar):
    grey = _grey()
    path = write_xa_dicom(tmp_path / "sc.dcm", _rgb(grey), photometric=photometric, planar_configuration=planar,
                          pixel_spacing=0.3)
    frames = read_input(path)
    assert [f.frame_index for f in frames] == list(range(T)) and frames[0].mm_per_pixel == 0.3
    for f in frames:
        assert f.image.dtype == np.uint8 and f.image.shape == (H, W)
        np.testing.assert_array_equal(f.image, grey[f.frame_index])
    (last, first) = read_input(path, frames=[2, 0])  # out of file order: one decode per frame, as asked
    np.testing.assert_array_equal(last.image, grey[2])
    np.testing.assert_array_equal(first.image, grey[0])


@pytest.mark.parametrize("photometric", ["YBR_FULL", "YBR_FULL_422"])
def test_ybr_channels_within_the_tolerance_read_as_their_luma(tmp_path, photometric):
    """A few grey levels of chroma noise (a lossy or converted export) are grey: the luma is used."""
    grey = _grey()
    rgb = _rgb(grey).astype(np.int16)
    rgb[..., 1] += np.random.default_rng(1).integers(-3, 4, grey.shape).astype(np.int16)
    path = write_xa_dicom(tmp_path / "ybr.dcm", np.clip(rgb, 0, 255).astype(np.uint8), photometric=photometric)
    for f in read_input(path):
        assert np.abs(f.image.astype(int) - grey[f.frame_index]).max() <= 3


def test_a_jpeg_baseline_export_of_a_grey_angiogram_is_read(tmp_path):
    """The usual secondary capture: JPEG baseline, YBR_FULL_422, LossyImageCompression 01 (GDCM decodes)."""
    import pydicom
    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    yy, xx = np.mgrid[:H, :W]
    grey = np.stack([(np.sin(xx / 5.0 + k) * 60 + 128).astype(np.uint8) for k in range(T)])
    path = write_xa_dicom(tmp_path / "jpeg.dcm", _rgb(grey), photometric="YBR_FULL_422")
    ds = pydicom.dcmread(path)
    streams = []
    for frame in _rgb(grey):
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, "JPEG", quality=95, subsampling=1)  # 4:2:2, as the header says
        streams.append(buf.getvalue())
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData, ds.LossyImageCompression = encapsulate(streams), "01"
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    assert read_dicom_header(path).lossy
    for f in read_input(path):
        assert np.abs(f.image.astype(int) - grey[f.frame_index]).max() <= 8


@pytest.mark.parametrize("photometric", ["RGB", "YBR_FULL"])
def test_a_true_colour_frame_is_refused_with_its_channel_difference(tmp_path, photometric):
    """Burnt-in coloured annotations: the header passes (the decision is the pixels'), the frame does not."""
    rgb = _rgb(_grey())
    rgb[1, 4:8, 4:20] = (255, 0, 0)  # a red label on frame 1
    path = write_xa_dicom(tmp_path / "annotated.dcm", rgb, photometric=photometric)
    check_source(find_inputs(path)[0])  # no early refusal from the header
    with pytest.raises(InputError) as e:
        read_input(path)
    msg = str(e.value)
    assert isinstance(e.value, UserError) and "annotated.dcm" in msg and "frame 1" in msg and "\n" not in msg
    assert "colour picture" in msg and "differ by up to 25" in msg and "MONOCHROME2" in msg


def test_lossless_rgb_must_agree_exactly(tmp_path):
    rgb = _rgb(_grey())
    rgb[0, 10, 10, 2] ^= 1  # one level in one pixel of the blue channel
    header = read_dicom_header(write_xa_dicom(tmp_path / "almost.dcm", rgb, photometric="RGB"))
    with pytest.raises(DicomError, match=r"almost\.dcm' frame 0 .*differ by up to 1 grey levels.*none in lossless RGB"):
        list(iter_dicom_frames(header))


def test_palette_colour_is_refused_from_the_header(tmp_path):
    path = write_xa_dicom(tmp_path / "palette.dcm", _grey(), extra={"PhotometricInterpretation": "PALETTE COLOR"})
    with pytest.raises(DicomError, match=r"palette\.dcm.*PALETTE COLOR with SamplesPerPixel 1.*expected grey XA"):
        read_dicom_header(path)
