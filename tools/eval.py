#!/usr/bin/env python
"""Evaluate predictions (any model) or a checkpoint: COCO AP per class, Dice, ARCADE F1, CASS accuracy.

    python tools/eval.py --gt GT.json --pred PRED.json [--out DIR [--overwrite]] [--images DIR]
    python tools/eval.py -c CONFIG --checkpoint CKPT [--split val] [--out DIR] [--overwrite]

Logic: sam3_angio/evaluation (docs/evaluation.md lists the metric keys).
"""

import sys

from sam3_angio.training.console import quiet_third_party_warnings

quiet_third_party_warnings()  # before sam3 is imported: its modules warn at import time

from sam3_angio.evaluation.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
