"""Does view conditioning help CASS naming? Train the CASS naming path twice - with and without the view
angles - same seed, same data, same budget, and print top-1 accuracy for both and their difference.

What is trained: the wrapper's view encoder, FiLM and CASS head (``ViewConditionedSam3``, the same code
the trainer runs) on top of a frozen ``sam3_tiny`` backbone whose feature maps are computed once. The
encoder/decoder of SAM3 are not in the naming path, so leaving them out changes nothing but the CPU time.
Data: synthetic angiograms (``ensure_demo_data``, CASS task), where a segment's place in the frame depends
on the C-arm view.

    python bench/bench_view_conditioning.py [--patients 40] [--epochs 60] [--seed 0] [--data DIR] [--compare-global]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pycocotools import mask as mask_util

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_split(root: str, split: str, size: int):
    """Images (N, 3, size, size) normalised as the configs do, masks (S, size, size), image index (S,),
    CASS category (S,), angles (N, 2), known (N,)."""
    with open(os.path.join(root, split, "annotations.json")) as f:
        coco = json.load(f)
    ids = [im["id"] for im in coco["images"]]
    index = {i: k for k, i in enumerate(ids)}
    imgs, angles, known = [], [], []
    for im in coco["images"]:
        pil = Image.open(os.path.join(root, split, "images", im["file_name"])).convert("RGB").resize((size, size))
        imgs.append(torch.from_numpy(np.asarray(pil)).permute(2, 0, 1).float() / 255.0)
        va = im.get("view_angles")
        angles.append([va["primary"], va["secondary"]] if va else [0.0, 0.0])
        known.append(va is not None)
    masks, img_idx, cats = [], [], []
    for a in coco["annotations"]:
        m = mask_util.decode(a["segmentation"])
        m = torch.from_numpy(m).float()[None, None]
        masks.append(F.interpolate(m, size=(size, size), mode="nearest")[0, 0] > 0)
        img_idx.append(index[a["image_id"]])
        cats.append(a["category_id"])
    x = (torch.stack(imgs) - 0.5) / 0.5
    return x, torch.stack(masks), torch.tensor(img_idx), torch.tensor(cats), torch.tensor(angles), torch.tensor(known)


@torch.no_grad()
def backbone_features(detector, x, batch=8):
    feats = []
    for i in range(0, len(x), batch):
        feats.append([f.clone() for f in detector.backbone.forward_image(x[i:i + batch])["backbone_fpn"]])
    return [torch.cat([f[lvl] for f in feats]) for lvl in range(len(feats[0]))]


def run(conditioning: bool, detector, train, val, class_ids, epochs: int, seed: int, lr: float = 1e-3,
        pooling: str = "region"):
    from sam3_angio.losses import CassCrossEntropy
    from sam3_angio.model.view_conditioned import ViewConditionedSam3
    from sam3_angio.view_angles import ViewBatch

    torch.manual_seed(seed)
    model = ViewConditionedSam3(detector, class_ids=class_ids, view_conditioning=conditioning,
                                cass_head={"name": "mlp", "pooling": pooling})
    heads = [p for n, p in model.named_parameters() if not n.startswith("detector.")]
    opt = torch.optim.AdamW(heads, lr=lr, weight_decay=1e-4)
    table = model._cat_to_class
    ce = CassCrossEntropy(class_ids=class_ids, class_weights="none")

    def logits(split, train_mode):
        feats, masks, img_idx, cats, angles, known = split
        model.train(train_mode)
        e = model.embed_views(ViewBatch(angles, known), "cpu")
        f = model.film[-1](feats, e) if conditioning else feats
        return model.name_regions(f, masks, img_idx, e), table[cats]

    gen = torch.Generator().manual_seed(seed)
    n = len(train[1])
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for chunk in order.split(64):
            feats, masks, img_idx, cats, angles, known = train
            used = torch.unique(img_idx[chunk])
            remap = torch.full((feats.shape[0],), -1, dtype=torch.long)
            remap[used] = torch.arange(len(used))
            sub = (feats[used], masks[chunk], remap[img_idx[chunk]], cats[chunk], angles[used], known[used])
            out, y = logits(sub, True)
            loss = ce(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        out, y = logits(val, False)
    keep = y >= 0
    pred = out[keep].argmax(1)
    top1 = (pred == y[keep]).float().mean().item()
    recalls = [((pred == c) & (y[keep] == c)).sum().item() / max(1, (y[keep] == c).sum().item())
               for c in torch.unique(y[keep])]
    return top1, float(np.mean(recalls)), int(keep.sum())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--patients", type=int, default=40)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", help="existing data root (coco_cass below it); default: a temporary folder")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--compare-global", action="store_true",
                   help="also train the globally pooled head (the study's phase 2 design), with angles")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    from sam3_angio.cass import DEFAULT_CLASS_IDS
    from sam3_angio.data.demo import ensure_demo_data
    from sam3_angio.model.tiny import build_sam3_tiny

    t0 = time.process_time()
    root = args.data or tempfile.mkdtemp(prefix="bench_view_")
    paths = ensure_demo_data(root, "cass", n_patients=args.patients, seed=args.seed)
    coco_root = os.path.dirname(os.path.dirname(paths["train_json"]))
    detector = build_sam3_tiny(image_size=args.size, seed=args.seed).eval()
    splits = {}
    for split in ("train", "val"):
        x, masks, img_idx, cats, angles, known = load_split(coco_root, split, args.size)
        feats = backbone_features(detector, x)[-1]
        splits[split] = (feats, masks, img_idx, cats, angles, known)
        print(f"{split}: {len(x)} frames, {len(masks)} segments, angles known for {int(known.sum())}")
    results = {}
    for conditioning in (True, False):
        results[conditioning] = run(conditioning, detector, splits["train"], splits["val"],
                                    list(DEFAULT_CLASS_IDS), args.epochs, args.seed)
    if args.compare_global:
        glob = run(True, detector, splits["train"], splits["val"], list(DEFAULT_CLASS_IDS), args.epochs,
                   args.seed, pooling="global")
    cpu_min = (time.process_time() - t0) / 60
    on, off = results[True], results[False]
    print(f"CASS top-1 with view conditioning:    {on[0]:.4f}  (balanced {on[1]:.4f}, {on[2]} val segments)")
    print(f"CASS top-1 without view conditioning: {off[0]:.4f}  (balanced {off[1]:.4f})")
    print(f"difference (with - without):          {on[0] - off[0]:+.4f}  ratio {on[0] / max(off[0], 1e-9):.3f}")
    if args.compare_global:
        print(f"CASS top-1, global pooling + angles:  {glob[0]:.4f}  (balanced {glob[1]:.4f}): the whole frame "
              f"cannot say which segment is meant")
    print(f"CPU minutes: {cpu_min:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
