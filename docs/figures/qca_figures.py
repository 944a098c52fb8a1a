#!/usr/bin/env python
"""Draws docs/figures/qca_synthetic.png, qca_arcade_stenosis.png and qca_arcade_mid_lad.png (docs/qca.md).

    python docs/figures/qca_figures.py [--arcade ../shared/data/arcade/stenosis_val] [--image-id 11]

Synthetic: a generated PRE frame with a lesion, QCA on its ground-truth segment mask with the CSV's
spacing. ARCADE: its stenosis annotations are loose polygons around the lesion, not lumen masks, so the
vessel inside the (dilated) polygon is segmented with a classical vesselness filter (Frangi et al.,
MICCAI 1998) and Otsu's threshold - an illustration of QCA on a real frame, not a validated
segmentation; no pixel spacing is known, so it reports pixels. ARCADE: Popov et al., Sci Data 11 (2024).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from scipy import ndimage  # noqa: E402
from skimage.filters import frangi, threshold_otsu  # noqa: E402
from skimage.measure import label  # noqa: E402
from skimage.morphology import disk, remove_small_objects  # noqa: E402

from sam3_angio.qca import measure_mask  # noqa: E402
from sam3_angio.qca.figures import segment_figure  # noqa: E402
from sam3_angio.qca.sources import decode_segmentation, iter_coco  # noqa: E402

HERE = Path(__file__).resolve().parent


def synthetic_figure(out: Path, seed: int = 5) -> None:
    from sam3_angio.data.synthetic import generate_dataset

    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "syn"
        generate_dataset(root, n_patients=2, seed=seed, frames=1, size=512, progress=False)
        with open(root / "angio.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["phase"] == "PRE" and r["stenosis_pct"]]
        r = rows[0]
        mask = np.asarray(Image.open(root / r["vessel_mask_actual_path"])) > 0
        frame = np.load(root / r["cine_path"])[int(r["frame_index"])].astype(np.float32)
        with open(root / r["contours_path"]) as f:
            ost = json.load(f)["centerline"][0]
        q = measure_mask(mask, float(r["mm_per_pixel"]), ostium=ost, source=Path(r["vessel_mask_actual_path"]).name)
        title = (f"synthetic {r['patient_id']} {r['vessel_pattern']} (seed {seed}): "
                 f"truth {float(r['stenosis_pct']):.0f}% DS, "
                 f"MLD {float(r['mld_mm']):.2f} mm, reference {float(r['reference_diameter_mm']):.2f} mm")
        segment_figure(q, out, image=frame / max(float(frame.max()), 1e-9), mask=mask, title=title)
        print(f"{out.name}: {title}; measured " + "; ".join(
            f"{L.percent_diameter_stenosis:.0f}% DS, MLD {L.mld:.2f} mm, ref {L.reference_diameter:.2f} mm"
            for L in q.lesions))


def vessel_near_stenosis(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Dark tubular pixels (Frangi vesselness, Otsu) inside ``region`` (the dilated polygon): the
    largest piece. ``image`` (H, W) 0..1, vessels dark."""
    ys, xs = np.nonzero(region)
    y0, y1, x0, x1 = max(ys.min() - 20, 0), ys.max() + 21, max(xs.min() - 20, 0), xs.max() + 21
    crop = ndimage.gaussian_filter(image[y0:y1, x0:x1], 1.0)
    v = frangi(crop, sigmas=range(2, 8), black_ridges=True)
    reg = region[y0:y1, x0:x1]
    m = (v > threshold_otsu(v[reg])) & reg
    m = ndimage.binary_opening(m, disk(1))
    m = remove_small_objects(m, max_size=30)
    lab = label(m, connectivity=2)
    if lab.max() == 0:
        raise RuntimeError("no vessel found in the stenosis region")
    keep = np.argmax(np.bincount(lab.ravel())[1:]) + 1
    out = np.zeros(image.shape, bool)
    out[y0:y1, x0:x1] = ndimage.binary_fill_holes(lab == keep)
    return out


def arcade_figure(out: Path, arcade: Path, image_id: int) -> None:
    data = json.loads((arcade / "annotations.json").read_text())
    im_rec = next(i for i in data["images"] if i["id"] == image_id)
    ann = next(a for a in data["annotations"] if a["image_id"] == image_id)
    image = np.asarray(Image.open(arcade / "images" / im_rec["file_name"]).convert("L"), np.float32) / 255.0
    poly = decode_segmentation(ann["segmentation"], im_rec["height"], im_rec["width"])
    region = ndimage.binary_dilation(poly, disk(6))
    vessel = vessel_near_stenosis(image, region)
    q = measure_mask(vessel, None, source=f"ARCADE stenosis_val {im_rec['file_name']}")
    title = (f"ARCADE stenosis_val {im_rec['file_name']} (Popov et al. 2024): vessel segmented classically inside the "
             f"annotated stenosis region - illustration only, pixels")
    segment_figure(q, out, image=image, mask=vessel, title=title)
    print(f"{out.name}: " + "; ".join(f"{L.percent_diameter_stenosis:.0f}% DS, MLD {L.mld:.1f} px, ref "
                                      f"{L.reference_diameter:.1f} px" for L in q.lesions), q.flags)


def arcade_pair_figure(out: Path, arcade: Path) -> None:
    """The one frame in both ARCADE validation splits (syntax_val 4.png = stenosis_val 58.png): QCA of
    the annotators' mid LAD (SYNTAX 7) mask, with the stenosis polygons the other annotation drew."""
    def masks(split: str, file_name: str):
        return [(it.meta["category_name"], it.mask) for it in iter_coco(arcade / split / "annotations.json")
                if it.meta.get("frame") == file_name]

    segments, stenoses = masks("syntax_val", "4.png"), masks("stenosis_val", "58.png")
    image = np.asarray(Image.open(arcade / "syntax_val" / "images" / "4.png").convert("L"), np.float32) / 255
    mid_lad = next(m for name, m in segments if name == "7")
    q = measure_mask(mid_lad, None, source="ARCADE syntax_val 4.png, SYNTAX 7 (mid LAD)")
    title = ("ARCADE syntax_val 4.png = stenosis_val 58.png (Popov et al. 2024): QCA of the annotated mid LAD "
             "mask; dashed: the annotated stenoses")
    segment_figure(q, out, image=image, mask=mid_lad, title=title,
                   outlines=[(m, "stenosis") for name, m in stenoses if name == "stenosis"])
    print(f"{out.name}: " + "; ".join(f"{L.percent_diameter_stenosis:.0f}% DS, MLD {L.mld:.1f} px, ref "
                                      f"{L.reference_diameter:.1f} px, open end {L.open_end}" for L in q.lesions))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arcade", default=str(HERE.parents[2] / "shared" / "data" / "arcade" / "stenosis_val"))
    ap.add_argument("--image-id", type=int, default=11)
    ap.add_argument("--out", default=str(HERE))
    ap.add_argument("--only", choices=("synthetic", "arcade", "arcade-pair"))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.only in (None, "synthetic"):
        synthetic_figure(out / "qca_synthetic.png")
    if a.only in (None, "arcade"):
        arcade_figure(out / "qca_arcade_stenosis.png", Path(a.arcade), a.image_id)
    if a.only in (None, "arcade-pair"):
        arcade_pair_figure(out / "qca_arcade_mid_lad.png", Path(a.arcade).parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
