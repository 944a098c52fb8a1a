"""Synthetic angiograms: same seed same bytes, C-arm geometry against hand computation, rendered
segments where the projection puts them, and the study layout with consistent stenosis records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import read_rows, tiny_synthetic
from PIL import Image

from sam3_angio.cass import VESSEL_PATTERN_TO_CASS
from sam3_angio.data.layout import validate_csv
from sam3_angio.data.synthetic import CArmView, carm_axes, generate_dataset
from sam3_angio.data.synthetic.anatomy import make_anatomy
from sam3_angio.data.synthetic.xray import Tube, project_tube, render_tubes


def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_writes_identical_bytes_on_any_number_of_workers_and_another_seed_does_not(tmp_path):
    kw = dict(n_patients=2, frames=3, size=64, pseudo_label_size=48, progress=False)
    a = _files(generate_dataset(tmp_path / "a", seed=5, **kw).parent)
    b = _files(generate_dataset(tmp_path / "b", seed=5, workers=2, **kw).parent)  # two processes, same bytes
    c = _files(generate_dataset(tmp_path / "c", seed=6, **kw).parent)
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    assert len(a) > 10 and "angio.csv" in a
    assert a["angio.csv"] != c["angio.csv"]
    # a patient's data do not depend on how many patients are generated
    d = _files(generate_dataset(tmp_path / "d", seed=5, **{**kw, "n_patients": 3}).parent)
    shared = [k for k in a if k.startswith("cines/SYN0001")]
    assert shared and all(a[k] == d[k] for k in shared)


def test_carm_axes_follow_the_dicom_signs():
    d, u, v = carm_axes(0.0, 0.0)
    assert np.allclose(d, [0, -1, 0]) and np.allclose(u, [1, 0, 0]) and np.allclose(v, [0, 0, -1])
    d, u, v = carm_axes(30.0, 20.0)
    assert np.allclose(np.array([d, u, v]) @ np.array([d, u, v]).T, np.eye(3))
    assert d[0] > 0  # LAO: the detector towards the patient's left
    assert d[2] > 0  # cranial: towards the head
    assert carm_axes(-30.0, -20.0)[0][0] < 0 and carm_axes(-30.0, -20.0)[0][2] < 0


def test_projection_matches_a_hand_computation():
    # SID 1000, SOD 750 -> magnification 4/3 at the isocenter; 0.5 mm pixels; centre (50, 50).
    def view(p, s):
        return CArmView(p, s, height=101, width=101, sid_mm=1000.0, sod_mm=750.0, detector_spacing_mm=0.5)

    m = 1000.0 / 750.0 / 0.5
    xy, depth = view(0, 0).project(np.array([[10.0, 0, 0], [0, 0, 10.0], [0, 100.0, 0]]))
    assert np.allclose(xy[0], [50 + 10 * m, 50]) and np.isclose(depth[0], 750.0)
    assert np.allclose(xy[1], [50, 50 - 10 * m])  # superior is up
    assert np.allclose(xy[2], [50, 50]) and np.isclose(depth[2], 650.0)  # posterior: nearer the source
    # LAO 90: the detector on the patient's left, image x runs posterior.
    xy, depth = view(90, 0).project(np.array([[0, 10.0, 0]]))
    assert np.allclose(xy[0], [50 + 10 * m, 50]) and np.isclose(depth[0], 750.0)
    # CRA 30: a point 10 mm superior sits 5 mm deeper and cos(30) * 10 mm up.
    xy, depth = view(0, 30).project(np.array([[0, 0, 10.0]]))
    assert np.isclose(depth[0], 755.0)
    assert np.allclose(xy[0], [50, 50 - 1000.0 / 755.0 * 10 * np.cos(np.pi / 6) / 0.5])


def test_rendered_segment_moves_with_the_view_as_the_projection_predicts():
    anatomy = make_anatomy(np.random.default_rng(11))
    lad = anatomy.branches["LAD"]
    sel = lad.cass == 13  # mid LAD
    centroids, predicted = [], []
    for p, s in ((-30.0, 30.0), (45.0, 25.0), (0.0, -30.0)):
        view = CArmView(p, s, height=256, width=256, detector_spacing_mm=230.0 / 256)
        tube = project_tube(view, lad.points[sel], lad.radius_ref[sel], np.full(sel.sum(), 0.2), lad.cass[sel])
        mask = render_tubes([tube], (256, 256), want_masks=True).masks[13]
        ys, xs = np.nonzero(mask)
        centroids.append(np.array([xs.mean(), ys.mean()]))
        xy, _ = view.project(lad.points[sel])
        predicted.append(xy.mean(axis=0))
    for c, q in zip(centroids, predicted):
        assert np.linalg.norm(c - q) < 2.5, (c, q)
    shifts = [np.linalg.norm(centroids[i] - centroids[0]) for i in (1, 2)]
    assert min(shifts) > 15  # the same segment lands elsewhere in another view
    for i in (1, 2):
        assert np.linalg.norm((centroids[i] - centroids[0]) - (predicted[i] - predicted[0])) < 3.0


def _looping_tube(labels_after_junction: int) -> Tube:
    """A 3 px tube: label 1 runs right along row 40, label ``labels_after_junction`` turns down at
    (90, 40), comes back left along row 80 and up column 50, crossing label 1 at (50, 40)."""
    step = 0.5
    first = np.stack([np.arange(10.0, 90.0, step), np.full(160, 40.0)], 1)
    th = np.arange(0.0, np.pi, step / 20.0)
    turn = np.stack([90.0 + 20.0 * np.sin(th), 60.0 - 20.0 * np.cos(th)], 1)
    back = np.stack([np.arange(90.0, 50.0, -step), np.full(80, 80.0)], 1)
    up = np.stack([np.full(120, 50.0), np.arange(80.0, 20.0, -step)], 1)
    xy = np.concatenate([first, turn, back, up])
    n = len(xy)
    label = np.r_[np.ones(len(first), int), np.full(n - len(first), labels_after_junction)]
    return Tube(xy=xy, r_px=np.full(n, 3.0), mm_per_px=np.full(n, 0.25), mu=np.full(n, 0.2), label=label)


def test_segment_masks_hold_their_whole_lumen_where_the_vessel_overlaps_itself():
    shape = (100, 120)
    one = render_tubes([_looping_tube(1)], shape, want_masks=True)
    two = render_tubes([_looping_tube(2)], shape, want_masks=True)
    # labels change the masks only: the attenuation and the radius map are those of the one-label tube
    assert np.array_equal(one.attenuation, two.attenuation) and np.array_equal(one.radius_mm, two.radius_mm)
    yy, xx = np.mgrid[0: shape[0], 0: shape[1]]
    lumen1 = (np.abs(yy - 40) <= 3) & (xx >= 10) & (xx <= 86)  # segment 1 up to 4 px before its end
    assert two.masks[1][lumen1].all()  # the crossing segment 2 takes none of it
    assert two.masks[2][(np.abs(xx - 50) <= 3) & (yy >= 30) & (yy <= 50)].all()  # and has its own lumen there
    both = two.masks[1] & two.masks[2]
    assert both[37:44, 47:54].all()  # COCO-style: instances overlap where the vessel crosses itself
    near_junction = np.hypot(xx - 90, yy - 40) <= 6
    assert not both[near_junction].any()  # consecutive segments split at their junction, no double-up
    assert np.array_equal(two.masks[1] | two.masks[2], one.masks[1])


def test_generated_set_follows_the_study_layout(tmp_path_factory):
    csv_path = tiny_synthetic(tmp_path_factory.mktemp("syn"))
    root = csv_path.parent
    for task in ("vessel", "cass", "stenosis"):
        good, problems = validate_csv(csv_path, task)
        assert problems == [], problems[:3]
    rows = read_rows(csv_path)
    by_patient = {}
    for r in rows:
        by_patient.setdefault(r["patient_id"], set()).add(r["split"])
        assert VESSEL_PATTERN_TO_CASS[r["vessel_pattern"]] == int(r["cass_segment"])
        assert r["phase"] in ("PRE", "FINAL", "EVENT")
        assert float(r["mm_per_pixel"]) > 0
        mask = np.array(Image.open(root / r["vessel_mask_actual_path"])) > 0
        assert mask.shape == (96, 96) and mask.any()
        assert np.array(Image.open(root / r["deepsa_pseudo_label_path"])).shape == (64, 64)
        c = json.loads((root / r["contours_path"]).read_text())
        assert len(c["centerline"]) > 2 and len(c["lumen_edges"]["left"]) == len(c["centerline"])
        assert c["frame_index"] == int(r["frame_index"])
        if r["stenosis_pct"]:
            pct, ref, mld = float(r["stenosis_pct"]), float(r["reference_diameter_mm"]), float(r["mld_mm"])
            assert abs(mld - ref * (1 - pct / 100)) < 0.02
            if pct >= 20:
                st = c["stenosis"]
                assert st["pct"] == round(pct, 1) and st["length_px"] > 0
                x, y = np.round(st["center"]).astype(int)
                near = mask[max(y - 3, 0): y + 4, max(x - 3, 0): x + 4]
                assert near.any(), "the stenosis lies on its segment"
            else:
                assert c["stenosis"] is None
        else:
            assert c["stenosis"] is None and not r["mld_mm"]
    assert all(len(s) == 1 for s in by_patient.values()), "a patient is in one split only"
    assert {s for v in by_patient.values() for s in v} == {"train", "val"}


def test_frame_index_is_a_contrast_filled_frame(tmp_path):
    csv_path = generate_dataset(tmp_path / "s", n_patients=1, seed=2, frames=8, size=96, progress=False)
    rows = read_rows(csv_path)
    for r in rows[:3]:
        cine = np.load(csv_path.parent / r["cine_path"])
        k = int(r["frame_index"])
        mask = np.array(Image.open(csv_path.parent / r["vessel_mask_actual_path"])) > 0
        assert k >= 3
        # before the injection the segment is as bright as its surroundings; at frame_index it is dark
        assert cine[k][mask].mean() < cine[0][mask].mean() - 10


@pytest.mark.parametrize("args, expected", [
    (["--n-patients", "0"], "n_patients (--n-patients) must be >= 1, got 0"),
    (["--seed", "-1"], "seed (--seed) must be >= 0, got -1"),
    (["--val-fraction", "1.5"], "val_fraction (--val-fraction) must be in [0, 1), got 1.5"),
    (["--size", "10"], "size (--size) must be 32..2048 pixels, got 10"),
])
def test_make_synthetic_bad_arguments_are_one_error_line_not_a_traceback(tmp_path, capsys, args, expected):
    from sam3_angio.data.cli import make_synthetic_main

    assert make_synthetic_main(["--out", str(tmp_path / "syn"), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {expected}" and not (tmp_path / "syn").exists()
