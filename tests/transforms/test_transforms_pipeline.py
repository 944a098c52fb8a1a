"""The whole SAM3 data pipeline with our transforms: real Datapoints from the project's AngioImageDataset (SAM3's Sam3ImageDataset) over a tiny
COCO set, the train/val pipelines exactly as docs/transforms.md gives them, collated by SAM3's
collate_fn_api(with_seg_masks=True) - shapes, finiteness, box/mask agreement, view angles."""

from __future__ import annotations

import json
import os
import random
import re

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image as PILImage
from pycocotools import mask as mask_utils

from sam3.model.box_ops import box_xyxy_to_cxcywh
from sam3.train.data.collator import collate_fn_api
from sam3.train.transforms.basic_for_api import ComposeAPI

from sam3_angio.data.dataset import AngioImageDataset
from sam3_angio.transforms import apply_affine, dropped_object_counts, reset_dropped_object_counts
from sam3_angio.transforms.targets import box_from_mask

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "transforms.md")
RES = 112
H, W = 80, 96  # non-square frames
ANGLES = {1: (30.0, -20.0), 2: (-35.0, 25.0)}


def _doc_yaml_blocks():
    with open(DOC, encoding="utf-8") as f:
        return re.findall(r"```yaml\n(.*?)```", f.read(), flags=re.S)


def _pipelines(resolution=RES):
    block = next(b for b in _doc_yaml_blocks() if "train_transforms:" in b)
    cfg = OmegaConf.create(block)
    cfg.scratch.resolution = resolution
    return instantiate(cfg.scratch.train_transforms), instantiate(cfg.scratch.val_transforms)


def _flip_transform():
    block = next(b for b in _doc_yaml_blocks() if "RandomFlipWithViewAngles" in b and "train_transforms" not in b)
    (item,) = OmegaConf.create(block)
    return instantiate(item)


def _polygon_mask(poly):
    rle = mask_utils.merge(mask_utils.frPyObjects([poly], H, W))
    return rle, mask_utils.decode(rle)


@pytest.fixture(scope="module")
def coco_dir(tmp_path_factory):
    """Two 8-bit gray frames, two categories; polygon and RLE segmentations; one vessel at the border."""
    root = tmp_path_factory.mktemp("coco")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    images, anns = [], []
    shapes = {
        1: [(1, [10, 20, 60, 20, 60, 26, 10, 26]), (1, [0, 50, 4, 50, 4, 70, 0, 70]),  # 2nd hugs the left border
            (2, [70, 10, 76, 10, 76, 60, 70, 60])],
        2: [(2, [20, 30, 80, 36, 80, 42, 20, 36])],
    }
    for img_id, objs in shapes.items():
        frame = (150 + 40 * rng.random((H, W))).astype(np.float32)
        for k, (cat, poly) in enumerate(objs):
            rle, m = _polygon_mask(poly)
            frame[m > 0] = 40  # dark, contrast-filled vessel
            if k % 2:  # every other annotation as compressed RLE, the rest as polygons
                seg = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
            else:
                seg = [poly]
            x, y, w, h = mask_utils.toBbox(rle).tolist()
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": cat, "segmentation": seg,
                         "bbox": [x, y, w, h], "area": float(m.sum()), "iscrowd": 0})
        PILImage.fromarray(frame.astype(np.uint8), mode="L").save(root / "images" / f"{img_id}.png")
        images.append({"id": img_id, "file_name": f"{img_id}.png", "height": H, "width": W,
                       "view_angles": {"primary": ANGLES[img_id][0], "secondary": ANGLES[img_id][1]}})
    cats = [{"id": 1, "name": "proximal RCA"}, {"id": 2, "name": "mid RCA"}]
    with open(root / "annotations.json", "w", encoding="utf-8") as f:
        json.dump({"images": images, "annotations": anns, "categories": cats}, f)
    return root


def _dataset(coco_dir, transforms, training=True):
    # The project's dataset: it reads each image record's view_angles before the transforms run.
    return AngioImageDataset(
        img_folder=str(coco_dir / "images"), ann_file=str(coco_dir / "annotations.json"),
        transforms=transforms, max_ann_per_img=50, multiplier=1, training=training, load_segmentation=True,
    )


def _check_batch(batch, n_images, resolution=RES):
    img = batch.img_batch
    assert img.shape == (n_images, 3, resolution, resolution) and img.dtype == torch.float32
    assert torch.isfinite(img).all() and -1.0 - 1e-5 <= img.min() and img.max() <= 1.0 + 1e-5
    tgt = batch.find_targets[0]
    boxes = tgt.boxes.view(-1, 4)
    n = int(tgt.num_boxes.sum())
    assert boxes.shape == (n, 4) and torch.isfinite(boxes).all() and torch.isfinite(tgt.boxes_padded).all()
    assert (boxes >= 0).all() and (boxes <= 1).all() and (boxes[:, 2:] > 0).all()
    if n == 0:  # SAM3's collate stacks an empty list: (0,), not (0, H, W)
        assert tgt.segments.numel() == 0
        return tgt
    assert tgt.segments.shape == (n, resolution, resolution) and tgt.segments.dtype == torch.bool
    assert tgt.is_valid_segment.all()
    if n:
        # every target box agrees with its target mask (after resize/pad/normalise) within 2 pixels
        # one mask at a time: sam3's masks_to_boxes mis-broadcasts for N not in (1, 4) masks
        from_masks = torch.stack([box_from_mask(m) for m in tgt.segments])
        from_masks = box_xyxy_to_cxcywh(from_masks) / resolution
        assert (tgt.segments.flatten(1).sum(1) > 0).all()
        assert torch.allclose(boxes, from_masks, atol=2.0 / resolution)
    return tgt


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_train_pipeline_from_docs_yields_valid_collated_batches(coco_dir, seed):
    train, _ = _pipelines()
    ds = _dataset(coco_dir, train)
    torch.manual_seed(seed)
    random.seed(seed)
    items = [ds[i] for i in range(len(ds))]
    for dp, img_id in zip(items, (1, 2)):
        assert dp.view_known is True and torch.equal(dp.view_angles, torch.tensor(ANGLES[img_id]))
    tgt = _check_batch(collate_fn_api(items, dict_key="all", with_seg_masks=True)["all"], 2)
    # 2 images x 2 categories (include_negatives): 4 queries, one of them negative (image 2 has no RCA 1)
    assert len(tgt.num_boxes) == 4 and tgt.num_boxes.tolist()[2] == 0


def test_val_pipeline_from_docs_is_deterministic_and_valid(coco_dir):
    _, val = _pipelines()
    ds = _dataset(coco_dir, val, training=False)
    a = collate_fn_api([ds[0], ds[1]], dict_key="all", with_seg_masks=True)["all"]
    b = collate_fn_api([ds[0], ds[1]], dict_key="all", with_seg_masks=True)["all"]
    _check_batch(a, 2)
    assert torch.equal(a.img_batch, b.img_batch)
    assert torch.equal(a.find_targets[0].boxes, b.find_targets[0].boxes)
    assert a.find_targets[0].num_boxes.tolist() == [2, 1, 0, 1]


def test_flip_from_docs_marks_angles_unknown_inside_the_pipeline(coco_dir):
    train, _ = _pipelines()
    flip = _flip_transform()
    flip.p_horizontal = 1.0
    steps = list(train[0].transforms)
    steps.insert(5, flip)  # after the photometric transform, as the docs say
    ds = _dataset(coco_dir, [ComposeAPI(steps)])
    dp = ds[0]
    assert dp.view_known is False
    _check_batch(collate_fn_api([dp, ds[1]], dict_key="all", with_seg_masks=True)["all"], 2)


class _ShiftRight:
    """A fixed large shift, to push objects out of the frame inside a real pipeline."""

    def __init__(self, frac):
        self.frac = frac

    def __call__(self, datapoint, **kwargs):
        return apply_affine(datapoint, 0.0, 1.0, (self.frac, 0.0))


@pytest.mark.parametrize("frac", [-0.1, 0.5, 1.0])
def test_objects_pushed_out_in_the_real_pipeline_are_dropped_and_batches_stay_valid(coco_dir, frac):
    train, _ = _pipelines()
    steps = list(train[0].transforms)
    steps[3] = _ShiftRight(frac)  # replaces RandomAffineWithTargets
    ds = _dataset(coco_dir, [ComposeAPI(steps)])
    reset_dropped_object_counts()
    items = [ds[0], ds[1]]
    tgt = _check_batch(collate_fn_api(items, dict_key="all", with_seg_masks=True)["all"], 2)
    dropped = dropped_object_counts().get("RandomAffineWithTargets", 0)
    assert dropped == 4 - int(tgt.num_boxes.sum())  # every missing target is a counted drop
    if frac == -0.1:
        assert dropped == 1  # only the vessel hugging the left border left the frame
        assert tgt.num_boxes.tolist() == [1, 1, 0, 1]
    if frac == 1.0:
        assert dropped == 4 and tgt.boxes.numel() == 0  # an all-negative batch still collates
    for dp in items:  # queries point at existing objects only
        n_obj = len(dp.images[0].objects)
        assert sorted(o for q in dp.find_queries for o in q.object_ids_output) == list(range(n_obj))
