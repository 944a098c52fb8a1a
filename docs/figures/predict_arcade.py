#!/usr/bin/env python
"""Makes docs/figures/predict_arcade.png: tools/predict.py's overlay of one real ARCADE frame (right) beside
that frame's ARCADE annotation with SYNTAX segments mapped to CASS names (left).

The model is ``sam3_tiny`` (random init) trained briefly on other ARCADE frames: the first 80 frames of
syntax_val (without the shown one) as train (the tiny profile uses 16 of them an epoch), 4 more as val,
``--epochs`` epochs (default 4) on a CPU. The shown frame is in neither. Steps already done in ``--work``
are not repeated.

    python docs/figures/predict_arcade.py [--arcade ../shared/data/arcade] [--work /tmp/predict_arcade]
        [--image-id 128] [--epochs 4] [--score-thr 0.05]

ARCADE: Popov et al., Scientific Data 11 (2024), doi:10.1038/s41597-023-02871-z.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def run(args):
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, check=True)


def subset(coco: dict, ids, path: Path) -> None:
    ids = set(ids)
    path.write_text(json.dumps({**coco, "images": [im for im in coco["images"] if im["id"] in ids],
                                "annotations": [a for a in coco["annotations"] if a["image_id"] in ids]}))


def ground_truth_panel(coco: dict, image_id: int, images: Path):
    """The frame with its ARCADE segments (SYNTAX -> CASS names) drawn by the same overlay code."""
    import numpy as np
    from PIL import Image
    from pycocotools import mask as mask_utils

    from sam3_angio.cass import DEFAULT_CLASS_IDS, SYNTAX_TO_CASS, cass_name
    from sam3_angio.inference.centreline import anchor_point
    from sam3_angio.inference.overlay import render_overlay

    im = next(i for i in coco["images"] if i["id"] == image_id)
    frame = np.asarray(Image.open(images / im["file_name"]).convert("L"))
    names = {c["id"]: c["name"] for c in coco["categories"]}
    segs = []
    for a in coco["annotations"]:
        if a["image_id"] != image_id:
            continue
        cass = SYNTAX_TO_CASS.get(str(names[a["category_id"]]).strip())
        if cass not in DEFAULT_CLASS_IDS:  # as tools/import_arcade.py: left main etc. are not in the class set
            continue
        rles = mask_utils.frPyObjects(a["segmentation"], im["height"], im["width"])
        m = mask_utils.decode(mask_utils.merge(rles)).astype(bool)
        segs.append({"mask": m, "label": cass_name(cass), "category_id": cass, "anchor": anchor_point(m)})
    picture, _ = render_overlay(frame, segs, f"ARCADE annotation (SYNTAX -> CASS), not a prediction")
    return picture


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arcade", default=str(ROOT.parent / "shared" / "data" / "arcade"))
    ap.add_argument("--work", default="/tmp/predict_arcade")
    ap.add_argument("--image-id", type=int, default=128, help="the ARCADE syntax_val image shown (128 = 33.png)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--score-thr", type=float, default=0.05)
    ap.add_argument("--out", default=str(ROOT / "docs" / "figures" / "predict_arcade.png"))
    args = ap.parse_args()

    src = Path(args.arcade) / "syntax_val"
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    coco = json.loads((src / "annotations.json").read_text())
    others = [im["id"] for im in coco["images"] if im["id"] != args.image_id]
    data = work / "arcroot" / "coco_cass"
    for split, ids in (("train", others[:80]), ("val", others[80:84])):
        if not (data / split / "annotations.json").is_file():
            subset(coco, ids, work / f"{split}.json")
            run([ROOT / "tools" / "import_arcade.py", "--coco", work / f"{split}.json", "--images", src / "images",
                 "--out", data, "--task", "cass", "--split", split, "--quiet"])
    ckpt = work / "run" / "checkpoints" / "checkpoint.pt"
    if not ckpt.is_file():
        run([ROOT / "tools" / "train.py", "-c", "configs/angiography/cass.yaml", f"paths.data_root={work / 'arcroot'}",
             f"paths.experiment_dir={work / 'run'}", "data.demo.generate_if_missing=false",
             f"trainer.max_epochs={args.epochs}", "model.name=sam3_tiny"])
    shown = next(im for im in coco["images"] if im["id"] == args.image_id)
    pred = work / "pred"
    run([ROOT / "tools" / "predict.py", src / "images" / shown["file_name"], "--checkpoint", ckpt, "--out", pred,
         "--score-thr", args.score_thr, "--overwrite", "--quiet"])

    import imageio.v3 as iio
    import numpy as np

    right = np.asarray(iio.imread(pred / Path(shown["file_name"]).stem / "overlay.png"))[..., :3]
    left = ground_truth_panel(coco, args.image_id, src / "images")
    h = max(left.shape[0], right.shape[0])
    pad = lambda a: np.pad(a, ((0, h - a.shape[0]), (0, 0), (0, 0)))  # noqa: E731
    figure = np.concatenate([pad(left), np.full((h, 8, 3), 255, np.uint8), pad(right)], axis=1)
    from PIL import Image

    Image.fromarray(figure).resize((figure.shape[1] * 3 // 4, h * 3 // 4), Image.LANCZOS).save(args.out, optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
