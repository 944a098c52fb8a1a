#!/usr/bin/env python
"""Convert the study's CSV layout to COCO folders for SAM3.

    python tools/convert_to_coco.py --csv CSV --out DIR --task vessel|cass|stenosis [--skip-bad-rows]

Logic: sam3_angio/data (docs/data.md).
"""

import sys

from sam3_angio.data.cli import convert_main

if __name__ == "__main__":
    sys.exit(convert_main())
