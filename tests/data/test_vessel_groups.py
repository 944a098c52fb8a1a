"""data.vessel_group (sam3_angio/data/vessel_groups.py): a split restricted to one group of vessels for
a vessel-specific adapter - in the training loader, the validation ground truth and the config check."""

from __future__ import annotations

import json

import pytest

from sam3_angio.data.dataset import AngioCocoLoader
from sam3_angio.data.vessel_groups import DEFAULT_GROUPS, filter_coco
from sam3_angio.errors import ConfigError, DataError


def _coco():
    ann = {"category_id": 1, "iscrowd": 0, "bbox": [1, 1, 4, 4], "area": 16.0,
           "segmentation": {"size": [8, 8], "counts": "0"}}
    images = [{"id": i, "file_name": f"{i}.png", "height": 8, "width": 8} for i in (1, 2, 3)]
    images[2]["vessel_name"] = "PDA"  # phase 1 style: the frame names the vessel, its annotation does not
    anns = [{**ann, "id": 1, "image_id": 1, "vessel_name": "RCA"},
            {**ann, "id": 2, "image_id": 1, "vessel_name": "LAD"},
            {**ann, "id": 3, "image_id": 2, "vessel_name": "LCX"}, {**ann, "id": 4, "image_id": 3}]
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "proximal RCA"}]}


def test_a_vessel_group_keeps_only_its_annotations_and_the_frames_left_with_one(tmp_path):
    rca = filter_coco(_coco(), "rca", DEFAULT_GROUPS, "x.json")
    assert [im["id"] for im in rca["images"]] == [1, 3]
    assert [a["id"] for a in rca["annotations"]] == [1, 4]
    left = filter_coco(_coco(), "left", DEFAULT_GROUPS, "x.json")
    assert [im["id"] for im in left["images"]] == [1, 2] and [a["id"] for a in left["annotations"]] == [2, 3]
    path = tmp_path / "annotations.json"  # the loader the trainer's dataset uses
    path.write_text(json.dumps(_coco()))
    loader = AngioCocoLoader(str(path), vessel_group="rca", vessel_groups={"rca": ["RCA", "PDA"], "left": ["LAD"]})
    assert [e["image"]["id"] for e in loader._raw_data] == [1, 3]
    assert [a["id"] for e in loader._raw_data for a in e["annotations"]] == [1, 4]
    assert len(loader.getDatapointIds()) == 2
    assert len(AngioCocoLoader(str(path))._raw_data) == 3  # no group: every frame


def test_an_unknown_group_is_an_error_naming_the_key_and_the_groups(tmp_path):
    with pytest.raises(ConfigError) as err:
        filter_coco(_coco(), "RCA", DEFAULT_GROUPS, "x.json")
    assert "data.vessel_group='RCA'" in str(err.value) and "left, rca" in str(err.value)
    from sam3_angio.config import compose, finalize
    from sam3_angio.training.preflight import check_config

    cfg = finalize(compose("cass", ["model.name=sam3_tiny", "data.vessel_group=lft", f"paths.data_root={tmp_path}"]))
    report = check_config(cfg)
    assert not report.ok and "data.vessel_group='lft'" in report.render() and "left, rca" in report.render()


def test_data_without_vessel_names_and_a_group_without_frames_are_errors(tmp_path):
    plain = _coco()
    for rec in plain["images"] + plain["annotations"]:
        rec.pop("vessel_name", None)
    path = tmp_path / "arcade.json"
    path.write_text(json.dumps(plain))
    with pytest.raises(ConfigError, match=r"arcade.json has no vessel_name.*data.vessel_group=null"):
        AngioCocoLoader(str(path), vessel_group="rca")
    with pytest.raises(DataError, match=r"no frame of x.json has an annotation of ramus"):
        filter_coco(_coco(), "ramus", {"ramus": ["Ramus"]}, "x.json")


def test_validation_ground_truth_is_restricted_to_the_group(tmp_path):
    from sam3_angio.evaluation.meter import AngioValMeter

    path = tmp_path / "val.json"
    path.write_text(json.dumps(_coco()))
    meter = AngioValMeter(gt_path=str(path), out_dir=str(tmp_path / "out"), vessel_group="left",
                          vessel_groups=DEFAULT_GROUPS)
    assert meter.gt.image_ids == [1, 2] and sorted(meter.gt.coco.anns) == [2, 3]
