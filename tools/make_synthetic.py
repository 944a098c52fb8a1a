#!/usr/bin/env python
"""Generate synthetic angiograms in the study's CSV layout.

    python tools/make_synthetic.py --out DIR --n-patients N --seed S [--frames T] [--size 512]

Logic: sam3_angio/data (docs/data.md).
"""

import sys

from sam3_angio.data.cli import make_synthetic_main

if __name__ == "__main__":
    sys.exit(make_synthetic_main())
