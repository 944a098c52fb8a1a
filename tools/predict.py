#!/usr/bin/env python
"""Name the coronary segments of angiograms with a trained run:
`python tools/predict.py INPUT... --checkpoint CKPT --out DIR` (DICOM, cine .npy, PNG/JPEG/TIFF/GIF, video, folder,
study CSV).

Thin entry point; the logic is in sam3_angio.inference.cli (see --help and docs/inference.md).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sam3_angio.training.console import quiet_third_party_warnings  # noqa: E402

quiet_third_party_warnings()  # before sam3 is imported: its modules warn at import time

from sam3_angio.inference.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
