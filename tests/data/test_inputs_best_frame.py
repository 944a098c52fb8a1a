"""frames="best" picks a fully opacified frame of a generated cine (the generator's contrast timeline is
the truth), from .npy and from DICOM alike; the frame specification parses and checks."""

from __future__ import annotations

import numpy as np
import pytest

from data_fixtures import read_rows, tiny_synthetic
from sam3_angio.data.dicom import write_xa_dicom
from sam3_angio.data.frame_selection import FrameSpecError, choose_best, parse_frames, smoothing_window
from sam3_angio.data.inputs import read_input

T = 20
# generator.py's timeline: the front has filled the tree at k_full = round(0.5 (T - 1)), washout after 0.8 T
K_FULL, K_WASH = int(round(0.5 * (T - 1))), int(np.floor(0.8 * T))
KEEP = 16  # frames 0..15 kept: the filled window 10..15 is off-centre, so the middle frame (8) is not in it


@pytest.fixture(scope="module")
def cut_cines(tmp_path_factory):
    """The generated cines cut to their first KEEP frames (recording stopped early)."""
    csv_path = tiny_synthetic(tmp_path_factory.mktemp("best"), n_patients=2, seed=0, size=128, frames=T)
    out = tmp_path_factory.mktemp("cut")
    paths = []
    for rel in sorted({r["cine_path"] for r in read_rows(csv_path)}):
        cine = np.load(csv_path.parent / rel)
        assert cine.shape[0] == T
        paths.append(out / f"{len(paths)}.npy")
        np.save(paths[-1], cine[:KEEP])
    return paths


def test_best_frame_is_fully_opacified_where_the_middle_frame_is_not(cut_cines):
    assert not (K_FULL <= KEEP // 2 <= K_WASH)
    chosen = [read_input(p, frames="best")[0] for p in cut_cines]
    assert len(chosen) >= 5
    assert all(f.selection == "best" and f.n_frames == KEEP for f in chosen)
    assert [f.frame_index for f in chosen if not (K_FULL <= f.frame_index <= K_WASH)] == []


def test_best_frame_is_the_same_from_dicom(cut_cines, tmp_path):
    cine = np.load(cut_cines[0])
    dcm = write_xa_dicom(tmp_path / "run.dcm", cine, view_angles=(-30, 20))
    a, b = read_input(cut_cines[0], frames="best")[0], read_input(dcm, frames="best")[0]
    assert a.frame_index == b.frame_index and b.view_angles == (-30.0, 20.0)
    np.testing.assert_array_equal(a.image, b.image)


def test_a_lucky_frame_at_the_plateau_edge_does_not_win():
    rng = np.random.default_rng(0)
    scores = np.concatenate([np.linspace(0, 1, 10), np.ones(12), np.linspace(1, 0.6, 8)]) + rng.normal(0, 0.02, 30)
    scores[10] = 1.3  # one frame at the start of the plateau scores high (motion, noise)
    k = choose_best(scores)
    assert 13 <= k <= 18 and int(np.argmax(scores)) == 10


def test_smoothing_window_follows_the_frame_rate():
    assert smoothing_window() == 9 and smoothing_window(30.0) == 19 and smoothing_window(7.5) == 5
    assert choose_best([3.0]) == 0 and choose_best([1.0, 2.0]) == 1


@pytest.mark.parametrize("text,expected", [("all", "all"), ("BEST", "best"), ("3", [3]), ("5, 0,5", [5, 0]),
                                           ([2, 1], [2, 1])])
def test_frame_spec_parses(text, expected):
    assert parse_frames(text) == expected


@pytest.mark.parametrize("text", ["", "first", "1,-2", [1.5], [True]])
def test_bad_frame_spec_is_refused(text):
    with pytest.raises(FrameSpecError):
        parse_frames(text)
