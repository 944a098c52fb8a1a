"""Image and video files read as cines: multi-page TIFF (plain and LZW-compressed), animated GIF and
PNG, MP4 / AVI / MKV video; frame counts and rates from the headers, frames in the order asked for,
and broken files as one line naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sam3_angio.data.inputs import InputError, check_source, find_inputs, read_input

H, W = 48, 64


def _frames(n):
    """Frames with a dark vertical bar that moves 6 px per frame (so each frame is identifiable)."""
    out = np.full((n, H, W), 200, np.uint8)
    for t in range(n):
        out[t, :, 4 + 6 * t:10 + 6 * t] = 40
    return out


def _bar_x(image):
    """The column where the dark bar starts."""
    return int(np.argmax(image.mean(axis=0) < 120))


def _video(path, frames, fps=15, codec="libx264"):
    import imageio.v3 as iio

    iio.imwrite(path, np.repeat(frames[..., None], 3, axis=3), plugin="pyav", codec=codec, fps=fps)
    return path


@pytest.mark.parametrize("compression", [None, "tiff_lzw"])
def test_a_multipage_tiff_is_a_cine_of_its_pages(tmp_path, compression):
    arr = _frames(3)
    pages = [Image.fromarray(a) for a in arr]
    extra = {"compression": compression} if compression else {}
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:], **extra)
    frames = read_input(tmp_path / "stack.tif")
    assert [(f.kind, f.frame_index, f.n_frames, f.fps) for f in frames] == [("image", k, 3, None) for k in range(3)]
    for f, a in zip(frames, arr):
        np.testing.assert_array_equal(f.image, a)  # lossless: the pages exactly
    assert [f.name for f in frames] == ["stack_f0000", "stack_f0001", "stack_f0002"]
    assert not frames[0].is_still
    picked = read_input(tmp_path / "stack.tif", frames=[2, 0])
    assert [(f.frame_index, f.selection) for f in picked] == [(2, "list"), (0, "list")]
    np.testing.assert_array_equal(picked[0].image, arr[2])
    with pytest.raises(InputError, match=r"frame 3 is out of range for '.*stack\.tif' with 3 frames"):
        check_source(find_inputs(tmp_path / "stack.tif")[0], frames=[3])


def test_a_one_page_tiff_and_a_planar_rgb_tiff_are_one_still_frame(tmp_path):
    import tifffile

    grey = _frames(1)[0]
    tifffile.imwrite(tmp_path / "one.tif", grey)
    tifffile.imwrite(tmp_path / "planar.tif", np.stack([grey] * 3), photometric="rgb", planarconfig="separate")
    tifffile.imwrite(tmp_path / "deep.tif", grey.astype(np.uint16) * 64)  # 16-bit: the percentile window
    for name in ("one.tif", "planar.tif", "deep.tif"):
        (f,) = read_input(tmp_path / name)
        assert f.is_still and f.n_frames == 1 and f.name == name.split(".")[0] and f.image.shape == (H, W)
        assert _bar_x(f.image) == 4, name
    np.testing.assert_array_equal(read_input(tmp_path / "planar.tif")[0].image, grey)


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_an_animated_gif_or_png_is_a_cine_with_its_frame_rate(tmp_path, suffix):
    arr = _frames(4)
    pages = [Image.fromarray(a) for a in arr]
    path = tmp_path / f"anim{suffix}"
    pages[0].save(path, save_all=True, append_images=pages[1:], duration=50, loop=0)
    frames = read_input(path)
    assert [f.frame_index for f in frames] == [0, 1, 2, 3] and frames[0].n_frames == 4
    assert frames[0].fps == pytest.approx(20.0)  # 50 ms a frame
    assert [_bar_x(f.image) for f in frames] == [4, 10, 16, 22]


def test_a_still_png_is_unchanged_one_frame(tmp_path):
    Image.fromarray(_frames(1)[0]).save(tmp_path / "f.png")
    (f,) = read_input(tmp_path / "f.png")
    assert f.is_still and f.name == "f" and f.fps is None and _bar_x(f.image) == 4


@pytest.mark.parametrize("suffix,codec", [(".mp4", "libx264"), (".avi", "mpeg4"), (".mkv", "libx264"),
                                          (".mpg", "mpeg2video")])
def test_a_video_is_a_cine_read_in_order_with_its_frame_rate(tmp_path, suffix, codec):
    """Every frame decoded in order (also where the container stores no frame count - MKV, MPEG - and
    where seeking by timestamp lands on the wrong frame - MPEG-PS); listed frames in the order asked."""
    arr = _frames(8)
    path = _video(tmp_path / f"clip{suffix}", arr, fps=15, codec=codec)
    (source,) = find_inputs(path)
    assert source.kind == "video"
    check_source(source, frames=[7])
    frames = read_input(path)
    assert [(f.kind, f.frame_index, f.n_frames) for f in frames] == [("video", k, 8) for k in range(8)]
    assert frames[0].fps == pytest.approx(15.0) and frames[0].name == "clip_f0000"
    assert frames[0].view_angles is None and frames[0].mm_per_pixel is None  # a video carries neither
    for f, a in zip(frames, arr):
        assert f.image.shape == (H, W) and f.image.dtype == np.uint8
        assert np.abs(f.image.astype(int) - a).mean() < 6  # lossy, but the same picture
        assert _bar_x(f.image) == _bar_x(a)
    picked = read_input(path, frames=[6, 1])
    assert [_bar_x(f.image) for f in picked] == [_bar_x(arr[6]), _bar_x(arr[1])]
    with pytest.raises(InputError, match=rf"frame 8 is out of range for '.*clip\{suffix}' with 8 frames"):
        read_input(path, frames=[0, 8])


def test_video_angles_and_spacing_come_from_the_command_line(tmp_path):
    path = _video(tmp_path / "run.mp4", _frames(2))
    f = read_input(path, angles="-30,25", mm_per_pixel=0.3)[0]
    assert f.view_angles == (-30.0, 25.0) and f.angles_source == "cli"
    assert f.mm_per_pixel == 0.3 and f.spacing_source == "cli"


def test_a_folder_keeps_videos_and_multipage_images(tmp_path):
    _video(tmp_path / "a.mp4", _frames(3))
    Image.fromarray(_frames(1)[0]).save(tmp_path / "b.gif")
    (tmp_path / "c.txt").write_text("notes")
    assert [(s.path.name, s.kind) for s in find_inputs(tmp_path)] == [("a.mp4", "video"), ("b.gif", "image")]
    assert [f.name for f in read_input(tmp_path)] == ["a_f0000", "a_f0001", "a_f0002", "b"]


@pytest.mark.parametrize("name,data,words", [
    ("zero.mp4", b"", ["zero.mp4", "empty (0 bytes)"]),
    ("junk.mp4", b"this is not a video file" * 40, ["junk.mp4", "cannot be read", "not a valid MP4"]),
    ("junk.tif", b"II*\0" + b"\xff" * 60, ["junk.tif", "cannot be read", "not a valid TIF"]),
    ("junk.gif", b"GIF89a" + b"\0" * 20, ["junk.gif", "cannot be read"]),
])
def test_a_broken_image_or_video_is_one_line_naming_it(tmp_path, name, data, words):
    (tmp_path / name).write_bytes(data)
    (source,) = find_inputs(tmp_path / name)
    with pytest.raises(InputError) as e:
        check_source(source)
    msg = str(e.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_a_jpeg_with_exif_orientation_is_read_as_viewers_show_it(tmp_path):
    """EXIF Orientation 6 (stored turned, shown 90 degrees clockwise): the frame and its header shape are the
    picture as shown, not the stored raster (which was read as is, sideways)."""
    arr = _frames(1)[0]
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    img.save(path, exif=exif.tobytes(), quality=100, subsampling=0)
    (source,) = find_inputs([path])
    from sam3_angio.data.frame_files import open_frames

    ff = open_frames(path)
    assert (ff.height, ff.width) == (W, H)
    (f,) = read_input(path)
    shown = np.rot90(arr, k=-1)  # clockwise
    assert f.image.shape == shown.shape == (W, H)
    assert np.abs(f.image.astype(int) - shown).mean() < 3
    check_source(source)


def test_a_cmyk_jpeg_is_made_grey_from_its_colours_not_its_inks(tmp_path):
    """A CMYK JPEG's first three planes are the C, M, Y inks (all 0 for grey: K holds the picture); it was
    read as RGB and came out black."""
    arr = _frames(1)[0]
    path = tmp_path / "print.jpg"
    Image.fromarray(arr).convert("CMYK").save(path, quality=100)
    (f,) = read_input(path)
    assert f.image.shape == (H, W)
    assert np.abs(f.image.astype(int) - arr).mean() < 3


def _float_with_holes(n):
    a = _frames(n).astype(np.float32)
    a[2, 3:5, 3:9] = np.nan  # 12 NaN pixels, and one infinite
    a[2, 0, 0] = np.inf
    return a


@pytest.mark.parametrize("name", ["cine.npy", "stack.tif", "rgb.npy", "one.tif"])
def test_nan_or_infinite_pixels_name_the_file_frame_and_count(tmp_path, name):
    """Float cines and TIFF stacks are read lazily (opening reads headers only), so the frame that holds
    NaN / Inf is refused when it is read, with its index and how many of its pixels are not finite."""
    import tifffile

    a = _float_with_holes(4)
    path = tmp_path / name
    if name == "cine.npy":
        np.save(path, a)
    elif name == "rgb.npy":  # a colour cine: a pixel with one NaN channel counts once
        rgb = np.repeat(a[..., None], 3, axis=3)
        rgb[2, 3:5, 3:9, 1:] = 0.0
        np.save(path, rgb)
    elif name == "stack.tif":
        tifffile.imwrite(path, a[:, None])  # (T, 1, H, W): one page a frame
    else:
        tifffile.imwrite(path, a[2])
    check_source(find_inputs(path)[0])  # headers only: nothing decoded yet
    with pytest.raises(InputError) as e:
        read_input(path, frames="best")
    msg = str(e.value)
    assert name in msg and "13 of 3,072 pixels are NaN or infinite (float32)" in msg and "\n" not in msg
    assert ("frame 2" in msg) == (name != "one.tif") and "np.nan_to_num" in msg
    if name != "one.tif":
        assert len(read_input(path, frames=[0, 3])) == 2  # the finite frames still read
