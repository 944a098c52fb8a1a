#!/usr/bin/env python
"""Draws docs/figures/synthetic_vs_arcade.png: a synthetic frame (sam3_angio.data.synthetic) with
its segment masks outlined, beside a real ARCADE frame (Popov et al., Sci Data 2024) with its SYNTAX
segment polygons.

    python docs/figures/synthetic_vs_arcade.py [--seed 0] [--arcade-image 2.png]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from pycocotools import mask as mask_util  # noqa: E402

from sam3_angio.cass import SYNTAX_TO_CASS, cass_name  # noqa: E402
from sam3_angio.data.synthetic import generate_dataset  # noqa: E402

ARCADE = HERE.parents[2] / "shared" / "data" / "arcade" / "syntax_val"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--view", default="RAO30_CRA30", help="standard view to show (first cine in it)")
    ap.add_argument("--segment", type=int, default=13, help="CASS segment to outline")
    ap.add_argument("--arcade-image", default="2.png")
    ap.add_argument("--out", default=str(HERE / "synthetic_vs_arcade.png"))
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as d:
        csv_path = generate_dataset(Path(d) / "syn", n_patients=6, seed=a.seed, frames=8, size=512, progress=False)
        import csv

        rows = list(csv.DictReader(open(csv_path)))
        view_of = {r["cine_path"]: json.loads((csv_path.parent / r["contours_path"]).read_text())["view_name"]
                   for r in rows}
        cine = next((c for c, v in view_of.items() if v == a.view), rows[0]["cine_path"])
        rows = [r for r in rows if r["cine_path"] == cine]
        frame = np.load(csv_path.parent / cine)[int(rows[0]["frame_index"])]
        masks = [(int(r["cass_segment"]), np.array(Image.open(csv_path.parent / r["vessel_mask_actual_path"])) > 0)
                 for r in rows]
        contours = json.loads((csv_path.parent / rows[0]["contours_path"]).read_text())
        va = contours["view_angles"]

    arc = json.loads((ARCADE / "annotations.json").read_text())
    img = [i for i in arc["images"] if i["file_name"] == a.arcade_image][0]
    names = {c["id"]: c["name"] for c in arc["categories"]}
    real = np.array(Image.open(ARCADE / "images" / a.arcade_image).convert("L"))

    fig, axs = plt.subplots(1, 2, figsize=(12, 6.4))
    ax = axs[0]
    ax.imshow(frame, cmap="gray", vmin=0, vmax=255)
    cid, m = next(((c, m) for c, m in masks if c == a.segment), masks[0])
    ax.contour(m, [0.5], colors=["#ffb000"], linewidths=0.8)
    prim, sec = va["primary"], va["secondary"]
    ax.set_title(f"synthetic, {'LAO' if prim >= 0 else 'RAO'} {abs(prim):.0f} {'CRA' if sec >= 0 else 'CAU'} "
                 f"{abs(sec):.0f}: mask of CASS {cid} ({cass_name(cid)})", fontsize=10)
    ax = axs[1]
    ax.imshow(real, cmap="gray", vmin=0, vmax=255)
    syntax = {v: k for k, v in reversed(list(SYNTAX_TO_CASS.items())) if v is not None}.get(cid)
    for ann in arc["annotations"]:
        if ann["image_id"] == img["id"] and names[ann["category_id"]] == syntax:
            m = mask_util.decode(mask_util.merge(mask_util.frPyObjects(ann["segmentation"], *real.shape)))
            ax.contour(m, [0.5], colors=["#ffb000"], linewidths=0.8)
    ax.set_title(f"ARCADE syntax val {a.arcade_image} (real, angles unknown): SYNTAX {syntax} polygon",
                 fontsize=10)
    for ax in axs:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
