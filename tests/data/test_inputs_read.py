"""read_input / iter_inputs over cines, PNG/JPEG/TIFF frames, folders and the study CSV: the frames,
their ids and the sources of angles and spacing; bad inputs give one clear line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from data_fixtures import read_rows, write_csv, write_handmade
from sam3_angio.data.cine import to_gray_uint8
from sam3_angio.data.dicom import write_xa_dicom
from sam3_angio.data.inputs import (InputError, check_mm_per_pixel_flag, check_source, describe, find_inputs,
                                    iter_inputs, parse_angles, read_input)

T, H, W = 5, 20, 24


@pytest.fixture
def cine(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (T, H, W)).astype(np.uint8)
    path = tmp_path / "run1.npy"
    np.save(path, arr)
    return path, arr


def test_cine_frames_all_and_listed(cine):
    path, arr = cine
    frames = read_input(path)
    assert [f.frame_index for f in frames] == list(range(T))
    assert all(f.kind == "cine" and f.n_frames == T and f.input_id == "run1" for f in frames)
    np.testing.assert_array_equal(np.stack([f.image for f in frames]), arr)
    assert frames[2].name == "run1_f0002" and frames[0].view_angles is None and frames[0].angles_source == "unknown"
    picked = read_input(path, frames="4,0")
    assert [f.frame_index for f in picked] == [4, 0] and {f.selection for f in picked} == {"list"}


def test_cine_frame_out_of_range_names_the_file_and_frame_count(cine):
    path, _ = cine
    with pytest.raises(InputError, match=rf"frame 9 is out of range for '.*run1\.npy' with {T} frames \(valid: 0..4\)"):
        read_input(path, frames=[1, 9])


@pytest.mark.parametrize("shape,dtype", [((T, H, W), np.uint16), ((T, H, W, 3), np.uint8)])
def test_deep_and_colour_cines_become_8bit_grey_as_cine_py_makes_them(tmp_path, shape, dtype):
    arr = np.random.default_rng(1).integers(0, 4096 if dtype == np.uint16 else 256, shape).astype(dtype)
    np.save(tmp_path / "c.npy", arr)
    (f,) = read_input(tmp_path / "c.npy", frames=[3])
    np.testing.assert_array_equal(f.image, to_gray_uint8(arr[3]))


def test_a_2d_npy_is_refused_with_the_fix(tmp_path):
    np.save(tmp_path / "frame.npy", np.zeros((H, W), np.uint8))
    with pytest.raises(InputError, match=r"frame\.npy' has shape \(20, 24\).*not a cine.*\(T, H, W\).*PNG") as e:
        read_input(tmp_path / "frame.npy")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("mode", ["L", "I;16", "RGB"])
def test_png_frames_8bit_16bit_and_rgb(tmp_path, mode):
    rng = np.random.default_rng(2)
    if mode == "L":
        arr = rng.integers(0, 256, (H, W)).astype(np.uint8)
    elif mode == "I;16":
        arr = rng.integers(0, 4096, (H, W)).astype(np.uint16)
    else:
        arr = rng.integers(0, 256, (H, W, 3)).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "f.png")
    (f,) = read_input(tmp_path / "f.png")
    assert f.kind == "image" and f.n_frames == 1 and f.name == "f" and f.image.dtype == np.uint8
    np.testing.assert_array_equal(f.image, arr if mode == "L" else to_gray_uint8(arr))


def test_jpeg_and_tiff_frames_read(tmp_path):
    arr = np.tile(np.linspace(0, 255, W, dtype=np.uint8), (H, 1))
    Image.fromarray(arr).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(arr).save(tmp_path / "b.tif")
    a, b = read_input(tmp_path / "a.jpg")[0], read_input(tmp_path / "b.tif")[0]
    assert np.abs(a.image.astype(int) - arr).max() <= 8
    np.testing.assert_array_equal(b.image, arr)


def test_best_on_a_single_image_is_that_image(tmp_path):
    Image.fromarray(np.zeros((H, W), np.uint8)).save(tmp_path / "one.png")
    (f,) = read_input(tmp_path / "one.png", frames="best")
    assert f.frame_index == 0 and f.selection == "best"
    with pytest.raises(InputError, match=r"frame 1 is out of range for '.*one\.png' with 1 frame "):
        read_input(tmp_path / "one.png", frames=[1])


def test_folder_of_mixed_inputs_sorted_with_unique_ids(tmp_path, cine, capsys):
    path, arr = cine
    Image.fromarray(arr[0]).save(tmp_path / "run1.png")  # same stem as the cine
    write_xa_dicom(tmp_path / "b.dcm", arr[:3], view_angles=(30, 0), pixel_spacing=0.3)
    write_xa_dicom(tmp_path / "tmp.dcm", arr[:2]).rename(tmp_path / "IM0001")  # no extension
    (tmp_path / "notes.txt").write_text("not an input")
    (tmp_path / "sub").mkdir()
    np.save(tmp_path / "sub" / "deep.npy", arr)
    sources = find_inputs(tmp_path)
    assert [(s.path.name, s.kind, s.input_id) for s in sources] == [
        ("IM0001", "dicom", "IM0001"), ("b.dcm", "dicom", "b"), ("run1.npy", "cine", "run1_npy"),
        ("run1.png", "image", "run1_png")]
    frames = list(iter_inputs(tmp_path, progress=True))
    assert len(frames) == 2 + 3 + T + 1
    b = [f for f in frames if f.input_id == "b"]
    assert b[0].view_angles == (30.0, 0.0) and b[0].mm_per_pixel == 0.3 and b[0].spacing_source == "dicom:PixelSpacing"
    err = capsys.readouterr().err
    assert "inputs" in err and "\r" not in err  # a progress display for a folder: lines, not a bar, off a terminal
    assert len(find_inputs(tmp_path, recursive=True)) == 5


def _structured_report(path):
    """A DICOM object with no image, as PACS exports hold beside the cines (a radiation dose SR)."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, XRayRadiationDoseSRStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = XRayRadiationDoseSRStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = XRayRadiationDoseSRStorage, meta.MediaStorageSOPInstanceUID, "SR"
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def test_a_pacs_export_folder_reads_its_cines_and_skips_objects_without_an_image(tmp_path, caplog):
    arr = np.random.default_rng(1).integers(0, 256, (2, H, W)).astype(np.uint8)
    series = tmp_path / "export" / "ST000000" / "SE000000"
    series.mkdir(parents=True)
    write_xa_dicom(series / "tmp.dcm", arr, view_angles=(-30, 25)).rename(series / "IM000000")
    _structured_report(series / "IM000001")
    _structured_report(series / "IM000002")
    with caplog.at_level("INFO", logger="sam3_angio.data.inputs"):
        sources = find_inputs(tmp_path / "export", recursive=True)
    assert [(s.path.name, s.kind) for s in sources] == [("IM000000", "dicom")]
    assert "2 DICOM file(s) hold no image and were skipped: 2 X-Ray Radiation Dose SR Storage" in caplog.text
    assert [f.frame_index for f in iter_inputs(tmp_path / "export", recursive=True)] == [0, 1]
    # only reports: the folder has no inputs, and the error says why; a report named on its own is refused
    (series / "IM000000").unlink()
    with pytest.raises(InputError, match=r"has no input files .*its 2 DICOM file\(s\) hold no image"):
        find_inputs(tmp_path / "export", recursive=True)
    (source,) = find_inputs(series / "IM000001")
    with pytest.raises(InputError, match=r"IM000001' has no image header"):
        check_source(source)


def test_empty_folder_and_unknown_files_are_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("x")
    with pytest.raises(InputError, match=r"folder '.*empty' has no input files"):
        find_inputs(tmp_path / "empty")
    with pytest.raises(InputError, match=r"readme\.md' is not a supported file"):
        find_inputs(tmp_path / "empty" / "readme.md")
    with pytest.raises(InputError, match=r"missing\.npy' does not exist"):
        find_inputs(tmp_path / "missing.npy")


def test_study_csv_one_input_per_frame_with_contour_angles_and_csv_spacing(tmp_path):
    csv_path = write_handmade(tmp_path / "study")  # 2 cines, two segment rows on frame 1 of each
    frames = read_input(csv_path)
    assert [(f.source.name, f.frame_index, f.csv_rows) for f in frames] == [
        ("p0.npy", 1, (1, 2)), ("p1.npy", 1, (3, 4))]
    assert [f.view_angles for f in frames] == [(-30.0, 25.0), (-29.0, 25.0)]
    assert {(f.kind, f.selection, f.angles_source, f.spacing_source, f.mm_per_pixel) for f in frames} == {
        ("csv", "csv", "contours", "csv", 0.3)}
    cine = np.load(tmp_path / "study" / "cines" / "p1.npy")
    np.testing.assert_array_equal(frames[1].image, cine[1])
    assert [f.input_id for f in frames] == ["p0", "p1"] and "P0" not in repr(describe(frames[0]))
    over = read_input(csv_path, angles=(10, -10), mm_per_pixel=0.25)
    assert {(f.view_angles, f.angles_source, f.mm_per_pixel, f.spacing_source) for f in over} == {
        ((10.0, -10.0), "cli", 0.25, "cli")}


def test_study_csv_bad_row_and_frame_spec_are_one_line_errors(tmp_path):
    csv_path = write_handmade(tmp_path / "study")
    with pytest.raises(InputError, match=r"study\.csv': its frames are the rows' frame_index"):
        read_input(csv_path, frames="best")
    rows = read_rows(csv_path)
    rows[2]["frame_index"] = "7"
    rows[3]["split"] = "nonsense"  # a column inference does not use: not an error here
    write_csv(csv_path, rows)
    with pytest.raises(InputError, match=r"study\.csv row 3 \(line 4\), column 'frame_index': 7 is out of range") as e:
        read_input(csv_path)
    assert "\n" not in str(e.value)


def test_study_csv_row_with_a_cell_too_many_is_refused_not_read_shifted(tmp_path):
    csv_path = write_handmade(tmp_path / "study")
    lines = csv_path.read_text().splitlines()
    lines[2] += ",stray"  # row 2: an unquoted comma somewhere shifts every cell after it
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"row 2 \(line 3\).*cells but the header has") as e:
        read_input(csv_path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("text", ["200,0", "0,91", "nan,0", "30", "a,b"])
def test_command_line_angles_are_checked(text):
    with pytest.raises(InputError, match=r"--angles"):
        parse_angles(text)


def test_a_nan_command_line_angle_says_to_leave_the_option_out_not_to_write_json():
    with pytest.raises(InputError, match=r"leave --angles out if the angles are unknown") as e:
        parse_angles("nan,0")
    assert "null" not in str(e.value)


@pytest.mark.parametrize("value,warned", [("0.3", False), (0.02, False), (2.0, False), (None, False),
                                          ("0.01", True), (3.0, True), ("25", True)])
def test_an_implausible_mm_per_pixel_flag_is_warned_about_not_refused(value, warned, capsys):
    """0.1-0.5 mm per pixel is typical at the isocentre; outside 0.02-2.0 (a cm / um slip, or a heavily
    downsampled frame) one warning line says so, and the value is still used."""
    assert check_mm_per_pixel_flag(value) == (None if value is None else float(value))
    err = capsys.readouterr().err
    assert bool(err) == warned
    if warned:
        assert err.count("\n") == 1 and err.startswith("warning: --mm-per-pixel ")
        assert "0.1-0.5" in err and "scaled by it" in err


@pytest.mark.parametrize("value", ["-0.3", 0, "nan", "inf", "abc"])
def test_a_non_positive_or_non_finite_mm_per_pixel_flag_is_an_error(value):
    with pytest.raises(InputError, match=r"--mm-per-pixel .*expected positive millimetres per pixel"):
        check_mm_per_pixel_flag(value)


def test_command_line_values_apply_to_cines_and_bad_spacing_is_refused(cine):
    path, _ = cine
    (f,) = read_input(path, frames=[0], angles="-30,25", mm_per_pixel=0.3)
    assert (f.view_angles, f.angles_source, f.mm_per_pixel, f.spacing_source) == ((-30.0, 25.0), "cli", 0.3, "cli")
    with pytest.raises(InputError, match=r"--mm-per-pixel"):
        read_input(path, mm_per_pixel=-1)
    with pytest.raises(InputError, match=r"frames 'some' is not 'all', 'best'"):
        read_input(path, frames="some")


def test_caller_given_id_replaces_the_file_stem(cine):
    path, _ = cine
    assert {f.input_id for f in read_input(path, input_id="case7")} == {"case7"}


@pytest.mark.parametrize("shape,words", [
    ((48, 64, 3), ["(48, 64, 3)", "64x3 pixels", "one image (H, W, C)", "image[None]"]),
    ((48, 64, 4), ["(48, 64, 4)", "one image (H, W, C)"]),
    ((4, 3, 48, 64), ["(4, 3, 48, 64)", "channels second (T, C, H, W)", "np.moveaxis(a, 1, -1)"]),
    ((4, 1, 48, 64), ["(4, 1, 48, 64)", "channels second"]),
    ((3, 48, 0), ["48x0 pixels"]),
])
def test_an_npy_that_is_not_a_cine_of_frames_is_refused_before_any_pixel(tmp_path, shape, words):
    """An RGB image saved as .npy (H, W, 3) used to be read as H frames of W x 3 pixels, and a PyTorch
    (T, C, H, W) array or frames of width 0 reached the model or failed deep in it."""
    path = tmp_path / "x.npy"
    np.save(path, np.zeros(shape, np.uint8))
    (source,) = find_inputs([path])
    with pytest.raises(InputError) as e:
        check_source(source)
    msg = str(e.value)
    assert "x.npy" in msg and "\n" not in msg
    for w in words:
        assert w in msg, (w, msg)
