#!/usr/bin/env python
"""Fine-tune SAM3 for coronary angiography: `python tools/train.py -c configs/angiography/cass.yaml`.

Thin entry point; the logic is in sam3_angio.training.cli (see --help).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sam3_angio.training.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
