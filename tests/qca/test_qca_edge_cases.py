"""Masks that are not a clean single tube: a bifurcation, the image edge, one pixel wide, empty, with
holes, in pieces, not binary; and bad spacings or ostium hints. Each gives a clear result or error."""

from __future__ import annotations

import numpy as np
import pytest
from qca_helpers import tube

from sam3_angio.errors import UserError
from sam3_angio.qca import EmptyMaskError, NonBinaryMaskError, QCAInputError, SpacingError, measure_mask, phantom


def _y_mask(lesion=None):
    """A main vessel (10 px, 220 px long) with a 6 px side branch leaving at 45 degrees half way."""
    main, mpath, _ = tube(length=220.0, angle=7.0, start=(18.0, 70.3),
                          lesions=[] if lesion is None else [lesion])
    side = phantom.curved_path(70.0, tuple(mpath[len(mpath) // 2]), 45.0)
    return main | phantom.tube_mask(side, np.full(len(side), 3.0), main.shape), mpath


def test_bifurcation_measures_the_main_path_and_says_it_ignored_the_branch():
    mask, mpath = _y_mask(lesion=(160.0, 40.0, 60.0))
    q = measure_mask(mask, 0.25, ostium=tuple(mpath[0]))
    assert q.n_side_branches == 1 and "bifurcation" in q.flags
    assert any("side branch" in w for w in q.warnings)
    assert q.centerline_length == pytest.approx(230 * 0.25, abs=1.5)  # main vessel + its caps, not the branch
    rel = q.centerline_xy - mpath[0]
    off_main = np.abs(rel[:, 1] * np.cos(np.deg2rad(7.0)) - rel[:, 0] * np.sin(np.deg2rad(7.0)))
    assert off_main.max() < 3.0  # stays on the main vessel
    assert len(q.lesions) == 1  # the widening at the take-off is no lesion
    assert q.lesions[0].percent_diameter_stenosis == pytest.approx(60.0, abs=4.0)
    assert q.reference_diameter == pytest.approx(2.5, abs=0.15)


def test_mask_touching_the_image_edge_is_flagged_and_the_oblique_cut_is_no_lesion():
    mask, _, _ = tube(shape=(160, 160), start=(60.0, 80.0), angle=-150.0, length=180.0)  # leaves through x = 0
    assert mask[:, 0].any()
    q = measure_mask(mask, 0.25)
    assert "touches_image_edge" in q.flags and any("image edge" in w for w in q.warnings)
    assert q.lesions == []
    assert q.reference_diameter == pytest.approx(2.5, abs=0.15)


def test_a_tight_crop_of_a_thick_vessel_is_measured_not_taken_for_an_inverted_mask():
    """A user's crop around one vessel: the vessel covers 70 % of it but meets the border only where it
    enters and leaves. An inverted mask (vessel 0) fills the border too and stays refused."""
    crop = np.zeros((20, 120), bool)
    crop[3:17, :] = True  # a 14 px vessel running through the crop
    q = measure_mask(crop, 0.25)
    assert crop.mean() > 0.5
    assert q.reference_diameter == pytest.approx(14 * 0.25, abs=0.2) and q.lesions == []
    frame = np.zeros((120, 120), bool)
    frame[50:64, :] = True
    with pytest.raises(QCAInputError, match="is it inverted"):
        measure_mask(~frame)


def test_one_pixel_wide_mask_gives_a_one_pixel_diameter_and_a_thin_flag():
    mask = np.zeros((64, 64), bool)
    mask[32, 5:60] = True
    q = measure_mask(mask)
    assert "thin" in q.flags and q.lesions == []
    assert q.reference_diameter == pytest.approx(1.0, abs=0.2)
    assert q.centerline_length == pytest.approx(55.0, abs=2.0)
    diag = np.eye(40, dtype=bool)  # 8-connected diagonal line
    qd = measure_mask(diag)
    assert qd.lesions == [] and qd.centerline_length == pytest.approx(40 * np.sqrt(2), abs=3.0)


def test_a_single_pixel_is_measured_without_crashing():
    mask = np.zeros((16, 16), bool)
    mask[8, 8] = True
    q = measure_mask(mask)
    assert q.lesions == [] and np.isfinite(q.reference_diameter)


def test_empty_mask_is_a_user_error_naming_the_input():
    with pytest.raises(EmptyMaskError, match="seg.png: the mask is empty"):
        measure_mask(np.zeros((32, 32), bool), source="seg.png")
    assert issubclass(EmptyMaskError, UserError)


def test_small_holes_are_filled_and_flagged_without_a_false_lesion():
    mask, path, _ = tube()
    holey = mask.copy()
    for k in (300, 450, 600):  # 2 x 2 holes on the centreline
        x, y = np.rint(path[k]).astype(int)
        holey[y - 1:y + 1, x - 1:x + 1] = False
    assert holey.sum() == mask.sum() - 12
    q = measure_mask(holey, 0.25)
    assert "holes_filled" in q.flags and q.lesions == []
    assert q.reference_diameter == pytest.approx(measure_mask(mask, 0.25).reference_diameter, abs=0.05)


def test_separate_pieces_keep_the_largest_and_say_so():
    mask, _, _ = tube()
    mask[5:9, 5:9] = True
    q = measure_mask(mask, 0.25)
    assert "components_dropped" in q.flags and q.reference_diameter == pytest.approx(2.5, abs=0.15)


@pytest.mark.parametrize("values", [(0, 1, 2), (0.0, 0.4, 1.0), (3, 7)])
def test_non_binary_masks_are_refused(values):
    m = np.zeros((32, 32))
    for k, v in enumerate(values):
        m[10 + 3 * k: 12 + 3 * k, 5:25] = v
    with pytest.raises(NonBinaryMaskError, match="m.png"):
        measure_mask(m, source="m.png")


@pytest.mark.parametrize("bad", [0, -0.2, float("nan"), float("inf"), "abc"])
def test_bad_spacing_is_refused(bad):
    mask, _, _ = tube()
    with pytest.raises(SpacingError, match="mm_per_pixel"):
        measure_mask(mask, bad)


def test_bad_ostium_and_three_dimensional_masks_are_refused():
    mask, _, _ = tube()
    with pytest.raises(QCAInputError, match="ostium"):
        measure_mask(mask, ostium=(1.0, float("nan")))
    with pytest.raises(QCAInputError, match="2-D"):
        measure_mask(np.stack([mask, mask]))
