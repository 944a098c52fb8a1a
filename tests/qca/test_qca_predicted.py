"""QCA accuracy on predicted masks (bench/bench_qca.py --checkpoint): a predicted mask of a generator
segment is compared with the same truth as its ground-truth mask; the bench finds each segment's
prediction by name and overlap and reports it separately."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from scipy import ndimage

from conftest import ROOT
from sam3_angio.data.synthetic import generate_dataset
from sam3_angio.qca.validation import evaluate_predicted, evaluate_row, read_row_mask, read_truth

sys.path.insert(0, str(ROOT / "bench"))


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    root = tmp_path_factory.mktemp("qca_pred") / "syn"
    generate_dataset(root, n_patients=2, seed=11, frames=1, size=256, progress=False)
    return root


def _lesion_row(rows):
    return next(r for r in rows if r.stenosis_pct is not None and r.stenosis_pct >= 50 and r.lesion_index is not None)


def test_the_ground_truth_mask_as_a_prediction_measures_as_the_ground_truth(syn):
    row = _lesion_row(read_truth(syn))
    a, b = evaluate_row(row), evaluate_predicted(row, read_row_mask(row))
    assert (a.pct, a.mld_mm, a.ref_mm, a.found, a.carved) == (b.pct, b.mld_mm, b.ref_mm, b.found, b.carved)
    assert b.errors == a.errors


def test_a_thinner_predicted_mask_measures_a_smaller_reference(syn):
    row = _lesion_row(read_truth(syn))
    gt = read_row_mask(row)
    thin = ndimage.binary_erosion(gt, iterations=1)
    a, b = evaluate_row(row), evaluate_predicted(row, thin)
    assert b.ref_mm < a.ref_mm  # an eroded lumen is about 2 px narrower
    with pytest.raises(ValueError, match="differs from the frame"):
        evaluate_predicted(row, gt[:-1])


def _rle(m):
    r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    r["counts"] = r["counts"].decode("ascii")
    return r


def test_each_segment_is_found_by_its_name_and_overlap(syn):
    from bench_qca import predicted_rows

    rows = read_truth(syn)
    masks = {r.tag: read_row_mask(r) for r in rows}
    first = {}
    for r in rows:
        first.setdefault((str(r.cine_path), r.frame_index), []).append(r)

    class Fake:  # names every segment of a frame right, except that it calls the first one "distal LAD"
        info = SimpleNamespace(model="fake", checkpoint=None)

        def __call__(self, frame, angles=None):
            group = next(g for g in first.values() if np.array_equal(
                np.load(g[0].cine_path, mmap_mode="r")[g[0].frame_index], frame))
            out = []
            for k, r in enumerate(group):
                cat = 14 if k == 0 and r.cass != 14 else r.cass
                out.append({"category_id": cat, "score": 0.9, "segmentation": _rle(masks[r.tag]),
                            "area": int(masks[r.tag].sum())})
            return out

    found, missed = predicted_rows(Fake(), rows, min_iou=0.1)
    wrong = {g[0].tag for g in first.values() if g[0].cass != 14}
    assert {r.tag for r, _, _ in found} == {r.tag for r in rows} - wrong  # a wrong name is not found
    assert missed == len(wrong) and all(iou == 1.0 for _, _, iou in found)


def test_bench_with_a_checkpoint_reports_predicted_masks_separately(syn, trained_cass_run):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_qca.py"), "--patients", "2", "--seed", "11", "--sizes", "256",
         "--phantoms", "0", "--workers", "1", "--data", str(syn.parent), "--checkpoint",
         str(trained_cass_run / "checkpoints" / "checkpoint.pt")],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "ours, every row" in out  # the ground-truth benchmark as before
    gt_part, pred_part = out.split("PREDICTED masks")
    assert "segments found (named right" in pred_part and "ours, every row" not in pred_part
