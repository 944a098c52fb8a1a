"""QCA on the synthetic generator's ground-truth segment masks meets the issue's targets: MAE of %
diameter stenosis <= 3 points, MLD <= 0.15 mm, reference <= 0.2 mm, >= 95 % of lesions >= 30 % found,
>= 95 % of healthy segments lesion-free (3 patients, 512 px, seed 7; bench/bench_qca.py runs more)."""

from __future__ import annotations

import pytest

from sam3_angio.data.synthetic import generate_dataset
from sam3_angio.qca.validation import evaluate_dataset, summarize


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("qca_synthetic") / "syn"
    generate_dataset(root, n_patients=3, seed=7, frames=1, size=512, progress=False)
    return evaluate_dataset(root)


def test_generator_lesions_are_measured_within_the_targets(results):
    s = summarize(results)
    a = s["all"]
    assert a["n"] >= 8  # PRE, FINAL and EVENT rows of the patients' lesions
    assert a["pct"]["mae"] <= 3.0
    assert a["mld_mm"]["mae"] <= 0.15
    assert a["ref_mm"]["mae"] <= 0.2
    assert s["detection"]["n"] >= 4 and s["detection"]["rate"] >= 0.95


def test_healthy_generator_segments_are_lesion_free(results):
    s = summarize(results)
    assert s["healthy"]["n"] >= 50
    assert s["healthy"]["clean_rate"] >= 0.95
