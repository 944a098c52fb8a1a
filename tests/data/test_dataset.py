"""Our SAM3 dataset: view angles reach the batch, bad angles fail at start-up naming the image, and
partial labels are marked non-exhaustive."""

from __future__ import annotations

import json

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tiny_coco import cass_categories, write_tiny_coco


def _dataset(paths, **kw):
    from sam3_angio.config import compose, finalize

    cfg = finalize(compose("cass", ["model.name=sam3_tiny"]))
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    conf = cfg.trainer.data.train
    conf.dataset.ann_file, conf.dataset.img_folder = paths["train_json"], paths["train_images"]
    conf.dataset.limit_ids = None
    for k, v in kw.items():
        conf.dataset[k] = v
    return instantiate(conf.dataset), instantiate(conf.collate_fn)


def _user_error(fn):
    from sam3_angio.errors import DataError
    from sam3_angio.errors import user_error_in as find_user_error

    with pytest.raises(Exception) as info:  # Hydra wraps it in an InstantiationException
        fn()
    err = find_user_error(info.value)
    assert isinstance(err, DataError), info.value
    return str(err)


def _edit(path, fn):
    data = json.loads(open(path).read())
    fn(data)
    open(path, "w").write(json.dumps(data))


def test_angles_and_unknown_angles_reach_the_batch(tmp_path):
    paths = write_tiny_coco(str(tmp_path), cass_categories([1, 13]), n_train=2, n_val=1)
    _edit(paths["train_json"], lambda d: d["images"][1].update(view_angles=None))
    ds, collate = _dataset(paths)
    batch = collate([ds[0], ds[1]])["all"]
    rec = json.loads(open(paths["train_json"]).read())["images"][0]["view_angles"]
    assert batch.views.known.tolist() == [True, False]
    assert torch.allclose(batch.views.angles[0], torch.tensor([rec["primary"], rec["secondary"]]))


def test_nan_angle_fails_at_start_naming_the_image(tmp_path):
    paths = write_tiny_coco(str(tmp_path), cass_categories([1, 13]), n_train=2, n_val=1)
    _edit(paths["train_json"], lambda d: d["images"][1].update(view_angles={"primary": float("nan"), "secondary": 3}))
    msg = _user_error(lambda: _dataset(paths))
    assert "image id 2 (train_001.png)" in msg and "not finite" in msg


def test_required_angles_missing_is_an_error_with_the_fix(tmp_path):
    paths = write_tiny_coco(str(tmp_path), cass_categories([1, 13]), n_train=2, n_val=1, with_angles=False)
    assert "data.require_view_angles=false" in _user_error(lambda: _dataset(paths, require_view_angles=True))


@pytest.mark.parametrize("exhaustive", [True, False])
def test_partial_labels_mark_queries_non_exhaustive(tmp_path, exhaustive):
    paths = write_tiny_coco(str(tmp_path), cass_categories([1, 2, 12, 13]), n_train=2, n_val=1)
    ds, collate = _dataset(paths, labels_exhaustive=exhaustive)
    batch = collate([ds[0], ds[1]])["all"]
    flags = batch.find_targets[0].is_exhaustive
    assert flags.numel() == 8 and bool(flags.all()) == exhaustive and bool(flags.any()) == exhaustive
