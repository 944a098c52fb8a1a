"""A pydicom decoder plugin for 12-bit JPEG Extended (Process 2 and 4, transfer syntax
1.2.840.10008.1.2.4.51), backed by imagecodecs' libjpeg-turbo build.

Why our own: pydicom's BSD-licensed plugins refuse this syntax at 12 bits (GDCM: "does not support
'JPEG Extended' for samples with 12-bit precision"; Pillow likewise), and the one that decodes it,
pylibjpeg-libjpeg, is GPL-3.0. Archives and some vendors store X-ray angiography cines as lossy 12-bit
JPEG, so without it such a file could not be read at all. imagecodecs (BSD, already a dependency for
TIFF) decodes it; this module plugs it into pydicom's own decoder machinery
(``Decoder.add_plugin``), so frames still stream through ``pydicom.pixels.iter_pixels`` and pydicom
tries its own plugins first.

Plugin contract (pydicom 3 decoder plugins): ``DECODER_DEPENDENCIES``, ``is_available(uid)`` and a
frame function ``(encoded frame bytes, runner) -> decoded bytes`` in the runner's pixel dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_TS_JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
DECODER_DEPENDENCIES = {_TS_JPEG_EXTENDED: ("numpy", "imagecodecs")}
LABEL = "sam3_angio-imagecodecs"


def is_available(uid: str) -> bool:
    if uid != _TS_JPEG_EXTENDED:
        return False
    try:
        import imagecodecs
    except ImportError:
        return False
    return hasattr(imagecodecs, "jpeg8_decode")


def decode_frame(src: bytes, runner: Any) -> bytes:
    """One encoded frame -> its samples as bytes: (rows, columns) in ``runner.pixel_dtype``. Grey
    (one sample per pixel) only: colour 12-bit JPEG is not something angiography writes."""
    import imagecodecs

    if runner.samples_per_pixel != 1:
        raise NotImplementedError("the imagecodecs plugin decodes grey (1 sample per pixel) 12-bit JPEG only")
    arr = np.asarray(imagecodecs.jpeg8_decode(src))
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.shape != (runner.rows, runner.columns):
        raise ValueError(f"the JPEG stream holds a {arr.shape} image; the header says "
                         f"{runner.rows}x{runner.columns}")
    dtype = runner.pixel_dtype
    out = arr.astype(f"u{dtype.itemsize}")
    if runner.pixel_representation == 1:  # signed samples travel as their bit pattern: sign-extend
        bits = int(runner.bits_stored)
        signed = out.astype(np.int64)
        signed[signed >= 2 ** (bits - 1)] -= 2 ** bits
        out = signed.astype(dtype)
    return out.tobytes()


def register() -> None:
    """Add the plugin to pydicom's JPEG Extended decoder, once (pydicom's own plugins stay first)."""
    from pydicom.pixels.decoders import JPEGExtended12BitDecoder as decoder

    if LABEL not in decoder.available_plugins:
        try:
            decoder.add_plugin(LABEL, (__name__, "decode_frame"))
        except ValueError:  # added meanwhile (or listed as unavailable: imagecodecs missing)
            pass
