#!/usr/bin/env python
"""Import ARCADE (real angiograms) into this project's COCO layout.

    python tools/import_arcade.py --coco ANN.json --images DIR --out DIR --task cass|stenosis

Logic: sam3_angio/data (docs/data.md).
"""

import sys

from sam3_angio.data.cli import import_arcade_main

if __name__ == "__main__":
    sys.exit(import_arcade_main())
