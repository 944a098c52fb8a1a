"""Augmentation gallery: one real ARCADE frame with its segment masks under each augmentation, drawn
with matplotlib (docs/figures/augmentations.png). Run: ``python -m sam3_angio.transforms.gallery``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
from typing import List, Tuple

import numpy as np
import torch
from PIL import Image as PILImage
from pycocotools import mask as mask_utils

from sam3.train.data.sam3_image_dataset import Datapoint, FindQueryLoaded, Image, InferenceMetadata, Object

from sam3_angio.data.dataset import AngioDatapoint
from sam3_angio.transforms.flip import apply_flip
from sam3_angio.transforms.frame import PrepareXRayFrame
from sam3_angio.transforms.geometric import apply_affine
from sam3_angio.transforms.image_data import to_unit_tensor
from sam3_angio.transforms.photometric import XRayPhotometricAugment
from sam3_angio.transforms.targets import box_from_mask

DEFAULT_ARCADE = os.path.join("..", "shared", "data", "arcade", "syntax_val")


def load_arcade_datapoint(split_dir: str, file_name: str) -> Tuple[Datapoint, List[str]]:
    """One ARCADE frame -> Datapoint (PIL RGB, decoded masks, pixel-edge boxes, one query per object)
    plus the SYNTAX segment name of each object. ARCADE has no view angles: ``view`` is None."""
    ann_path = os.path.join(split_dir, "annotations.json")
    with open(ann_path, encoding="utf-8") as f:
        coco = json.load(f)
    rec = next((r for r in coco["images"] if r["file_name"] == file_name), None)
    if rec is None:
        raise FileNotFoundError(f"{ann_path} has no image record with file_name {file_name!r}")
    cats = {c["id"]: c["name"] for c in coco["categories"]}
    h, w = rec["height"], rec["width"]
    objects, names = [], []
    for ann in (a for a in coco["annotations"] if a["image_id"] == rec["id"]):
        rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], h, w))
        m = torch.from_numpy(mask_utils.decode(rle)).to(torch.uint8)
        objects.append(Object(bbox=box_from_mask(m).clone(), area=float(m.sum()), object_id=len(objects), segment=m))
        names.append(cats[ann["category_id"]])
    queries = [
        FindQueryLoaded(
            query_text=n, image_id=0, object_ids_output=[i], is_exhaustive=True,
            inference_metadata=InferenceMetadata(-1, -1, -1, (h, w), i, 0),
        )
        for i, n in enumerate(names)
    ]
    with PILImage.open(os.path.join(split_dir, "images", file_name)) as im:
        data = im.copy()
    dp = AngioDatapoint(find_queries=queries, images=[Image(data=data, objects=objects, size=(h, w))], view=None)
    PrepareXRayFrame()(dp)
    return dp, names


def _photometric(dp: Datapoint, **params) -> Datapoint:
    aug = XRayPhotometricAugment()
    full = {k: None for k in ("underfill", "blur", "noise", "gamma", "contrast", "brightness")}
    full.update(params)
    x, restore = to_unit_tensor(dp.images[0].data, "gallery")
    dp.images[0].data = restore(aug.apply(x, full))
    return dp


def render(split_dir: str, file_name: str, out_path: str, seed: int = 0) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    base, names = load_arcade_datapoint(split_dir, file_name)
    torch.manual_seed(seed)
    panels = [
        ("original", lambda d: d),
        ("rotate 10°, scale 1.1, shift (4%, -3%)", lambda d: apply_affine(d, 10.0, 1.1, (0.04, -0.03))),
        ("rotate -8°, scale 0.9", lambda d: apply_affine(d, -8.0, 0.9, (0.0, 0.0))),
        ("gamma 1.4, contrast 0.8", lambda d: _photometric(d, gamma=1.4, contrast=0.8)),
        ("low dose: 300 quanta/pixel + read-out 0.01", lambda d: _photometric(d, noise=(300.0, 0.01))),
        ("detector blur sigma 1.2 px", lambda d: _photometric(d, blur=1.2)),
        ("under-filled: vessel contrast x0.3", lambda d: _photometric(d, underfill=0.3)),
        ("h-flip (view angles -> unknown)", lambda d: apply_flip(d, True, False)),
    ]
    cmap = plt.get_cmap("tab20")
    colours = {n: cmap(i % 20) for i, n in enumerate(sorted(set(names)))}
    fig, axes = plt.subplots(2, 4, figsize=(16, 9.0), gridspec_kw={"hspace": 0.12, "wspace": 0.04})
    for ax, (title, fn) in zip(axes.ravel(), panels):
        dp = fn(copy.deepcopy(base))
        img = np.asarray(dp.images[0].data, dtype=np.float32)[..., 0] / 255.0
        rgb = np.repeat(img[..., None], 3, axis=2)
        for obj in dp.images[0].objects:
            m = obj.segment.numpy() > 0
            rgb[m] = 0.7 * rgb[m] + 0.3 * np.asarray(colours[names[obj.object_id]][:3])
        ax.imshow(rgb, vmin=0, vmax=1)
        for obj in dp.images[0].objects:
            c = colours[names[obj.object_id]]
            # mask outline drawn on the transformed image: the vessel must sit inside it
            ax.contour(obj.segment.numpy(), levels=[0.5], colors=[c], linewidths=0.7)
            x0, y0, x1, y1 = obj.bbox.view(4).tolist()
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=0.6, ls="--", ec=c))
        n_dropped = len(base.images[0].objects) - len(dp.images[0].objects)
        extra = f"  [{n_dropped} dropped]" if n_dropped else ""
        ax.set_title(title + extra, fontsize=9)
        ax.axis("off")
    handles = [plt.Line2D([], [], color=colours[n], lw=6) for n in sorted(set(names))]
    fig.legend(handles, [f"SYNTAX {n}" for n in sorted(set(names))], loc="lower center",
               ncol=min(12, len(handles)), fontsize=8, frameon=False)
    fig.suptitle(
        f"ARCADE syntax_val/{file_name}: segment masks (outline + tint) and boxes (dashed, recomputed "
        f"from the transformed masks). Data: Popov et al., Sci Data 11 (2024)", fontsize=10,
    )
    fig.subplots_adjust(left=0.01, right=0.99, top=0.93, bottom=0.06)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=os.path.dirname(os.path.abspath(out_path)))
    os.close(fd)
    try:
        # plain RGB: palette quantisation merges the legend colours or bands the gray ramps
        fig.savefig(tmp, dpi=80)
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, out_path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return out_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arcade", default=DEFAULT_ARCADE, help="ARCADE split folder (annotations.json, images/)")
    ap.add_argument("--image", default="33.png", help="file_name of the frame to show")
    ap.add_argument("--out", default=os.path.join("docs", "figures", "augmentations.png"))
    args = ap.parse_args(argv)
    try:
        print(render(args.arcade, args.image, args.out))
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
