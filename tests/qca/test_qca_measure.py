"""measure_mask on tubes of known diameter: % diameter stenosis, MLD, reference diameter, lesion
position and length, several lesions, units, orientation, and the sub-pixel edge method's accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from qca_helpers import tube

from sam3_angio.qca import QCAParams, measure_mask, phantom
from sam3_angio.qca.errors import QCAInputError

MM = 0.25  # mm per pixel


def test_known_narrowing_gives_percent_stenosis_mld_and_reference_in_mm():
    # 10 px = 2.5 mm tube, 60 % narrowing (MLD 4 px = 1.0 mm) of 48 px centred 100 px along it
    mask, _, _ = tube(lesions=[(100.0, 48.0, 60.0)])
    q = measure_mask(mask, MM, ostium=(28.0, 70.0))
    assert q.units == "mm" and len(q.lesions) == 1
    les = q.lesions[0]
    assert les.percent_diameter_stenosis == pytest.approx(60.0, abs=3.0)
    assert les.mld == pytest.approx(1.0, abs=0.1)
    assert les.reference_diameter == pytest.approx(2.5, abs=0.1)
    # the centreline starts at the ostium end; the tube's mask reaches one radius beyond its path
    assert les.position == pytest.approx((100.0 + 5.0) * MM, abs=1.0)
    assert 0.5 * 48 * MM < les.lesion_length <= 48 * MM + 1.0
    d = q.to_dict()
    assert {"percent_diameter_stenosis", "mld_mm", "reference_diameter_mm", "lesion_length_mm",
            "position_mm"} <= set(d["lesions"][0]) and d["reference_diameter_mm"] == pytest.approx(2.5, abs=0.1)


def test_without_spacing_everything_is_in_pixels_and_says_so():
    mask, _, _ = tube(lesions=[(100.0, 48.0, 60.0)])
    d = measure_mask(mask).to_dict()
    assert d["units"] == "px" and d["mm_per_pixel"] is None and "pixels" in d["note"]
    assert not any(k.endswith("_mm") for k in d) and not any(k.endswith("_mm") for k in d["lesions"][0])
    assert d["lesions"][0]["mld_px"] == pytest.approx(4.0, abs=0.4)
    assert d["reference_diameter_px"] == pytest.approx(10.0, abs=0.4)


def test_two_lesions_are_reported_separately_in_order_along_the_vessel():
    mask, _, _ = tube(length=220.0, bend=40.0, lesions=[(60.0, 36.0, 40.0), (160.0, 36.0, 75.0)])
    q = measure_mask(mask, MM, ostium=(28.0, 70.0))
    assert len(q.lesions) == 2
    a, b = q.lesions
    assert a.position < b.position and a.end < b.start
    assert a.percent_diameter_stenosis == pytest.approx(40.0, abs=4.0)
    assert b.percent_diameter_stenosis == pytest.approx(75.0, abs=4.0)
    # the segment reports its worst lesion
    assert q.percent_diameter_stenosis == pytest.approx(b.percent_diameter_stenosis)


def test_healthy_tapering_tube_has_no_lesion_and_a_tapering_reference():
    mask, _, _ = tube(diameter=12.0, taper=0.02)  # 12 -> 8 px over 200 px
    q = measure_mask(mask, MM, ostium=(28.0, 70.0))
    assert q.lesions == []
    assert q.reference[5] > q.reference[-5] + 0.6  # mm
    assert q.percent_diameter_stenosis < 10.0


def test_the_start_is_the_end_nearest_the_ostium_else_the_wider_end():
    mask, path, _ = tube(diameter=12.0, taper=0.02, lesions=[(50.0, 30.0, 50.0)])
    far = tuple(path[-1])
    q_hint = measure_mask(mask, MM, ostium=far)  # from the narrow end
    q_rule = measure_mask(mask, MM)  # wider end = where the path starts
    assert q_rule.orientation == "wider_end" and q_hint.orientation == "ostium_hint"
    L = q_rule.centerline_length
    assert q_rule.lesions[0].position == pytest.approx(L - q_hint.lesions[0].position, abs=0.5)
    assert np.hypot(*(q_rule.centerline_xy[0] - path[0])) < 8


def test_edge_widths_are_more_accurate_than_twice_the_distance_transform():
    rng = np.random.default_rng(3)
    err = {"edge": [], "edt": []}
    for _ in range(6):
        D = rng.uniform(4.0, 12.0)
        mask, _, _ = tube(diameter=D, angle=rng.uniform(0, 90), bend=rng.uniform(-60, 60), start=(60.0, 60.0),
                          length=150.0)
        for method in err:
            q = measure_mask(mask, params=QCAParams(method=method))
            mid = (q.s > 2 * D) & (q.s < q.centerline_length - 2 * D)
            err[method].append(np.nanmean(np.abs(q.diameter_raw[mid] - D)))
    assert np.mean(err["edge"]) < 0.6 * np.mean(err["edt"])
    assert np.mean(err["edge"]) < 0.35  # px


def test_a_pure_function_of_the_mask():
    mask, _, _ = tube(lesions=[(100.0, 48.0, 60.0)])
    before = mask.copy()
    a = measure_mask(mask, MM).to_dict()
    b = measure_mask(mask, MM).to_dict()
    assert a == b and np.array_equal(mask, before)


def _thin_tube_with_a_quantisation_step():
    """A 2.9 px tube of constant calibre along x whose centreline moves half a pixel over 20 px: pixel
    centres within 1.45 px of it are 3 rows at y = 30 but only 2 at y = 30.5, so the mask loses a whole
    row of pixels there (a one-pixel step, 33 % of the diameter) while the lumen does not narrow."""
    x = np.arange(10.0, 190.0, 0.25)
    y = 30.0 + 0.5 * np.clip(np.minimum(x - 90.0, 110.0 - x), 0.0, 1.0)
    mask = phantom.tube_mask(np.stack([x, y], axis=1), np.full(len(x), 1.45), (64, 200))
    assert mask[:, 100].sum() == 2 and mask[:, 40].sum() == 3
    return mask


def test_a_one_pixel_quantisation_step_in_a_thin_tube_is_no_lesion():
    mask = _thin_tube_with_a_quantisation_step()
    # the relative rule alone (>= 20 % narrower) calls the missing row a lesion ...
    assert len(measure_mask(mask, ostium=(10.0, 30.0), params=QCAParams(min_depth_px=0.0)).lesions) == 1
    # ... the default asks for a narrowing deeper than the mask's quantisation
    q = measure_mask(mask, ostium=(10.0, 30.0))
    assert q.lesions == [] and q.reference_diameter == pytest.approx(2.9, abs=0.4)


@pytest.mark.parametrize("pct", [50.0, 70.0])
def test_a_real_narrowing_of_the_same_thin_tube_is_found(pct):
    mask, _, _ = tube(diameter=3.0, lesions=[(100.0, 24.0, pct)])
    q = measure_mask(mask)
    assert len(q.lesions) == 1
    assert q.lesions[0].percent_diameter_stenosis == pytest.approx(pct, abs=8.0)


def test_min_depth_must_be_a_non_negative_number_of_pixels():
    with pytest.raises(QCAInputError, match="min_depth_px"):
        QCAParams(min_depth_px=-1.0).check()


def test_a_lesion_that_runs_into_an_end_of_the_mask_says_so():
    """A narrowing cut by the mask's end (no healthy vessel beyond it) is reported with open_end and a
    flag + warning (a mask tapered at a junction looks the same); one with vessel on both sides is not."""
    closed = measure_mask(tube(lesions=[(100.0, 48.0, 60.0)])[0], MM, ostium=(28.0, 70.0))
    assert [L.open_end for L in closed.lesions] == [None] and "lesion_at_mask_end" not in closed.flags
    assert closed.to_dict()["lesions"][0]["open_end"] is None
    cut = measure_mask(tube(lesions=[(190.0, 60.0, 60.0)])[0], MM, ostium=(28.0, 70.0))  # tube is 200 px long
    assert [L.open_end for L in cut.lesions] == ["end"]
    assert "lesion_at_mask_end" in cut.flags and any("end of the mask" in w for w in cut.warnings)
    assert cut.to_dict()["lesions"][0]["open_end"] == "end"
    start = measure_mask(tube(lesions=[(10.0, 60.0, 60.0)])[0], MM, ostium=(28.0, 70.0))
    assert [L.open_end for L in start.lesions] == ["start"]
