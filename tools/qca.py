#!/usr/bin/env python
"""Quantitative coronary analysis (phase 4) from binary masks: MLD, reference diameter, % diameter stenosis.

    python tools/qca.py --mask MASK.png [--mm-per-pixel S] [--image FRAME.png] --out DIR
    python tools/qca.py --coco annotations.json [--images DIR] --out DIR
    python tools/qca.py --predictions predictions.json [--image-info annotations.json] --out DIR

Logic: sam3_angio/qca (docs/qca.md).
"""

import sys

from sam3_angio.qca.cli import main

if __name__ == "__main__":
    sys.exit(main())
