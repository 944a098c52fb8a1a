"""Polygon checks before pycocotools (data/polygons.py): NaN, huge, string, odd-length and short
polygons are refused with the polygon named; good ones rasterise as pycocotools does; the ARCADE import
stops on them (exit 2, one line naming the annotation, no output folder), under a memory cap."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from memory_cap import run_main_capped
from sam3_angio.data.polygons import MAX_OUTLINE_FRAMES, PolygonError, check_polygons, polygons_to_rle

H, W = 48, 64
GOOD = [10, 10, 40, 12, 38, 30, 12, 28]

# (polygon, what the message says): one bad polygon each, as a user's file would have it
BAD = {
    "nan": ([10, 10, float("nan"), 12, 38, 30], "coordinate 2 is nan"),
    "huge": ([10, 10, 1e9, 12, 38, 30], "more than one image size outside"),
    "string": ([10, 10, "40", 12, 38, 30], "coordinate 2 is '40' (str), expected a number"),
    "odd": ([10, 10, 40, 12, 38, 30, 12], "7 numbers, an odd count"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_polygon_is_refused_naming_the_polygon_and_coordinate(name):
    poly, message = BAD[name]
    with pytest.raises(PolygonError, match=re.escape(message)) as e:
        check_polygons([GOOD, poly], H, W)
    assert str(e.value).startswith("polygon 1 ")


@pytest.mark.parametrize(
    "polys, message",
    [
        ([[10, 10, 40, 12]], "2 point\\(s\\), at least 3"),  # pycocotools would read 4 numbers as a box
        ([[10, 10, float("inf"), 12, 38, 30]], "coordinate 2 is inf"),
        ([[10, True, 40, 12, 38, 30]], "coordinate 1 is True \\(bool\\)"),
        ([[10, 10, [40], 12, 38, 30]], "expected a number"),
        ([GOOD[:2] + [None] + GOOD[3:]], "coordinate 2 is None"),
        ([[10, 10, 40, 12, 38, -1e4]], "y in \\[-48, 96\\]"),
        ([], "non-empty list"),
        ("10 10 40 12", "non-empty list"),
        ([GOOD, "x"], "polygon 1 is a str"),
    ],
)
def test_other_unusable_polygons_are_refused(polys, message):
    with pytest.raises(PolygonError, match=message):
        check_polygons(polys, H, W)


def test_an_outline_too_long_for_the_image_is_refused_even_with_every_vertex_in_range():
    # a zigzag across the frame: each vertex is in range, the walk pycocotools would allocate is not
    n = MAX_OUTLINE_FRAMES * (W + H) // W + 2
    zigzag = [v for i in range(n) for v in ((0.0, i % H) if i % 2 else (W, i % H))]
    with pytest.raises(PolygonError, match="outline is .* px long"):
        check_polygons([zigzag], H, W)


def test_good_polygons_rasterise_exactly_as_pycocotools_including_ones_past_the_border():
    polys = [GOOD, [-20.5, 40, 30, 44, 5, 70.25], [np.float32(50), 5, 70, 5, 70, 20]]  # numpy numbers are numbers
    rle = polygons_to_rle(polys, H, W)
    expected = mask_utils.merge(mask_utils.frPyObjects([[float(v) for v in p] for p in polys], H, W))
    assert np.array_equal(mask_utils.decode(rle), mask_utils.decode(expected))
    assert mask_utils.area(rle) > 0 and rle["size"] == [H, W]


# --------------------------------------------------------------------------- the ARCADE import, as a user runs it
def _arcade_dir(root: Path, polygon=None, corrupt_image=False) -> Path:
    """A two-image ARCADE-style syntax split; annotation 7 carries ``polygon`` when given."""
    (root / "images").mkdir(parents=True)
    for i in (1, 2):
        Image.fromarray(np.full((H, W), 100 + i, dtype=np.uint8)).save(root / "images" / f"{i}.png")
    if corrupt_image:
        (root / "images" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    anns = [{"id": 5, "image_id": 1, "category_id": 1, "segmentation": [GOOD], "iscrowd": 0},
            {"id": 7, "image_id": 2, "category_id": 2, "segmentation": [polygon or GOOD], "iscrowd": 0}]
    coco = {"images": [{"id": i, "file_name": f"{i}.png", "height": H, "width": W} for i in (1, 2)],
            "categories": [{"id": 1, "name": "1"}, {"id": 2, "name": "2"}], "annotations": anns}
    (root / "annotations.json").write_text(json.dumps(coco))  # NaN goes out as the NaN literal json reads back
    return root


def _import(src: Path, out: Path):
    return run_main_capped("sam3_angio.data.cli", "import_arcade_main", [
        "--coco", str(src / "annotations.json"), "--images", str(src / "images"), "--out", str(out),
        "--task", "cass", "--quiet"])


@pytest.mark.parametrize("name", sorted(BAD))
def test_arcade_import_stops_on_a_bad_polygon_naming_the_annotation_and_writes_nothing(tmp_path, name):
    src = _arcade_dir(tmp_path / "arcade", polygon=BAD[name][0])
    out = tmp_path / "out"
    p = _import(src, out)
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "annotation 7 (image 2)" in lines[0] and "annotations.json" in lines[0] and BAD[name][1] in lines[0]
    assert not out.exists()


def test_arcade_import_of_good_polygons_works_under_the_same_cap(tmp_path):
    src = _arcade_dir(tmp_path / "arcade")
    p = _import(src, tmp_path / "out")
    assert p.returncode == 0, p.stderr[-2000:]
    coco = json.loads((tmp_path / "out" / "val" / "annotations.json").read_text())
    assert [a["arcade_annotation_id"] for a in coco["annotations"]] == [5, 7]


def test_arcade_import_with_a_corrupt_image_names_it_and_leaves_no_empty_folder(tmp_path):
    src = _arcade_dir(tmp_path / "arcade", corrupt_image=True)
    out = tmp_path / "out"
    p = _import(src, out)
    assert p.returncode == 2, p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "2.png" in lines[0] and "cannot be read as an image" in lines[0]
    assert not out.exists()
