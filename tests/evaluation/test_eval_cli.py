"""tools/eval.py as a user runs it: metrics.json with every documented key, report.md with its pictures."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam3_angio.evaluation.predictions import IGNORE_REASONS
from sam3_angio.evaluation.synthetic import jittered_predictions, synthetic_coco

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "eval.py"


def documented_keys():
    """Every key named in the first column of docs/evaluation.md's metric-key table."""
    doc = (ROOT / "docs" / "evaluation.md").read_text()
    section = doc.split("## Metric keys", 1)[1].split("\n## ", 1)[0]
    keys = []
    for line in section.splitlines():
        if line.startswith("| `"):
            keys += re.findall(r"`([^`]+)`", line.split("|")[1])
    return keys


def run_tool(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """Six 48 px frames, one labelled segment each (CASS-like), images on disk, a CASS head's logits."""
    d = tmp_path_factory.mktemp("cli")
    gt = synthetic_coco(6, cat_ids=(1, 2, 3), size=48, seed=4)
    labels = [1, 2, 3, 1, 2, 3]
    gt["annotations"] = [a for a in gt["annotations"] if a["category_id"] == labels[a["image_id"] - 1]]
    (d / "images").mkdir()
    rng = np.random.default_rng(0)
    for im in gt["images"]:
        Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(d / "images" / im["file_name"])
    (d / "gt.json").write_text(json.dumps(gt))
    (d / "pred.json").write_text(json.dumps(jittered_predictions(gt, seed=1, n_fp=1)))
    logits = [{"image_id": i, "logits": [1.0 if c == lab else 0.0 for c in (1, 2, 3)]} for i, lab in enumerate(labels, 1)]
    (d / "logits.json").write_text(json.dumps({"class_ids": [1, 2, 3], "predictions": logits}))
    return d


def test_eval_tool_writes_every_documented_key_and_a_report_with_pictures(case):
    out = case / "out"
    r = run_tool("--gt", case / "gt.json", "--pred", case / "pred.json", "--out", out,
                 "--images", case / "images", "--cass-logits", case / "logits.json")
    assert r.returncode == 0, r.stderr
    assert "segm  AP" in r.stdout and "wrote" in r.stdout
    m = json.loads((out / "metrics.json").read_text())
    keys = documented_keys()
    assert len(keys) > 60
    for key in keys:
        names = ["class 1"] if "<name>" in key else [None]
        for expanded in (key.replace("<name>", n) if n else key for n in names):
            if "<reason>" in expanded:
                assert all(expanded.replace("<reason>", r) in m for r in IGNORE_REASONS)
            else:
                assert expanded in m, f"documented key {expanded!r} missing from metrics.json"
    assert isinstance(m["segm.AP"], float) and m["cass.source"] == "head" and m["cass.head.top1"] == 1.0
    report = (out / "report.md").read_text()
    links = re.findall(r"\]\(([^)]+\.png)\)", report)
    assert {"pr_segm.png", "pr_bbox.png", "confusion.png"} <= set(links)
    assert any(link.startswith("overlays/") for link in links)
    for link in links:
        assert (out / link).is_file() and (out / link).stat().st_size > 1000
    assert "arcade_f1" in report and "not an AP" in report
    assert (out / "per_image.csv").read_text().splitlines()[0].startswith("image_id,file_name")


def test_eval_tool_reports_unusable_input_without_a_traceback(case, tmp_path):
    (tmp_path / "empty.json").write_text("[]")
    r = run_tool("--gt", case / "gt.json", "--pred", tmp_path / "empty.json", "--out", tmp_path / "o")
    assert r.returncode == 2
    assert "holds no predictions" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o" / "metrics.json").exists()
    r = run_tool("--gt", case / "gt.json")
    assert r.returncode == 2 and "--pred" in r.stderr


def test_eval_tool_warnings_are_plain_lines_without_the_module_path(case, tmp_path):
    # sam3 logs at import time, which gave the root logger Python's default "LEVEL:module:message" handler
    # before the tool's own format was set
    preds = json.loads((case / "pred.json").read_text())
    preds.append(dict(preds[0], image_id=999))
    (tmp_path / "pred.json").write_text(json.dumps(preds))
    r = run_tool("--gt", case / "gt.json", "--pred", tmp_path / "pred.json", "--out", tmp_path / "o", "--no-report")
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "unknown_image_id" in line or "999" in line]
    assert warnings, r.stderr
    assert all(line.startswith("WARNING: ") for line in warnings), warnings
    assert "sam3_angio.evaluation" not in r.stderr


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_eval_tool_refuses_an_existing_out_folder_and_replaces_it_whole_with_overwrite(case, tmp_path):
    out = tmp_path / "e"
    common = ["--gt", case / "gt.json", "--pred", case / "pred.json", "--out", out]
    r = run_tool(*common, "--images", case / "images")
    assert r.returncode == 0, r.stderr
    before = _files(out)
    assert any(k.startswith("overlays/") for k in before)
    r = run_tool(*common, "--score-thr", "0.3", "--no-report")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"output folder '{out}' already exists" in r.stderr and "--overwrite" in r.stderr
    assert _files(out) == before  # nothing already written is lost
    r = run_tool(*common, "--score-thr", "0.3", "--no-report", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "metrics.json").read_text())["pixel.score_thr"] == 0.3
    after = _files(out)
    assert "report.md" not in after and not any(k.startswith("overlays/") for k in after)  # no stale files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e"]  # no temporary folder left beside it


def test_eval_tool_overwrite_never_replaces_a_folder_holding_its_inputs(case, tmp_path):
    out = tmp_path / "e"
    out.mkdir()
    (out / "pred.json").write_bytes((case / "pred.json").read_bytes())
    r = run_tool("--gt", case / "gt.json", "--pred", out / "pred.json", "--out", out, "--overwrite")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "holds --pred" in r.stderr and "choose another --out" in r.stderr
    assert _files(out) == {"pred.json": (case / "pred.json").read_bytes()}
