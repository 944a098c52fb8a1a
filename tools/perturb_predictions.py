#!/usr/bin/env python
"""Write a deterministic imperfect copy of a COCO ground truth as a COCO results file (for checking
metrics; see sam3_angio.evaluation.perturb).

    python tools/perturb_predictions.py --gt GT.json --out PRED.json [--seed 0] [--exact]
"""

import argparse
import json
import os
import sys

from sam3_angio.evaluation.errors import EvaluationInputError
from sam3_angio.evaluation.perturb import gt_as_predictions, perturb_predictions


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gt", required=True, help="COCO ground truth")
    p.add_argument("--out", required=True, help="predictions JSON to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exact", action="store_true", help="the ground truth itself as predictions (score 1)")
    p.add_argument("--p-drop", type=float, default=0.1)
    p.add_argument("--p-swap", type=float, default=0.05)
    p.add_argument("--fp-per-image", type=float, default=0.5)
    a = p.parse_args()
    try:
        preds = gt_as_predictions(a.gt) if a.exact else perturb_predictions(
            a.gt, a.seed, p_drop=a.p_drop, p_swap=a.p_swap, fp_per_image=a.fp_per_image
        )
    except EvaluationInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(preds, f)
    os.replace(tmp, a.out)
    print(f"wrote {len(preds)} predictions to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
