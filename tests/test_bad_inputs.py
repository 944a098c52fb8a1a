"""The bad-input matrix of issue 11: each case is a mistake a user makes, run through the tool they
would use (in process, so the matrix stays fast). Every case asserts the exit code, a one-line message
naming the file / row / key, no traceback, and that nothing written earlier was changed."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Sequence

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

CASS = "configs/angiography/cass.yaml"
VESSEL = "configs/angiography/vessel_segmentation.yaml"


@dataclass
class World:
    root: Path
    data: Path      # paths.data_root with coco_cass/, coco_vessel/ (tiny)
    exp: Path       # an experiment folder with an earlier run's files
    csv: Path       # a valid study CSV (tests/data_fixtures.write_handmade)
    gt: Path        # a valid COCO ground truth
    pred: Path      # valid predictions for it
    earlier: Path   # an earlier tool output folder

    def train(self, *overrides: str, config: str = CASS) -> List[str]:
        return ["-c", config, f"paths.data_root={self.data}", f"paths.experiment_dir={self.exp}",
                "data.demo.generate_if_missing=false", "model.name=sam3_tiny", *overrides, "--check"]

    def edit(self, rel: str, fn: Callable[[dict], None]) -> None:
        path = self.data / rel
        data = json.loads(path.read_text())
        fn(data)
        path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def template(tiny_data_root, tmp_path_factory) -> Path:
    from data_fixtures import write_handmade

    root = tmp_path_factory.mktemp("bad_inputs_template")
    shutil.copytree(tiny_data_root / "coco_cass", root / "data" / "coco_cass")
    shutil.copytree(tiny_data_root / "coco_vessel", root / "data" / "coco_vessel")
    write_handmade(root / "study")
    (root / "exp").mkdir()
    (root / "exp" / "earlier.txt").write_text("an earlier run's file")
    (root / "earlier").mkdir()
    (root / "earlier" / "metrics.json").write_text("{}")
    gt = json.loads((root / "data" / "coco_cass" / "val" / "annotations.json").read_text())
    (root / "gt.json").write_text(json.dumps(gt))
    preds = [{"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": a["segmentation"],
              "bbox": a["bbox"], "score": 0.9} for a in gt["annotations"]]
    (root / "pred.json").write_text(json.dumps(preds))
    return root


@pytest.fixture
def world(template, tmp_path) -> World:
    root = tmp_path / "w"
    shutil.copytree(template, root)
    return World(root, root / "data", root / "exp", root / "study" / "study.csv", root / "gt.json",
                 root / "pred.json", root / "earlier")


def snapshot(root: Path):
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def run_tool(tool: str, argv: Sequence[str], capsys):
    from sam3_angio.data.cli import convert_main, import_arcade_main
    from sam3_angio.evaluation.cli import main as eval_main
    from sam3_angio.training.cli import main as train_main

    main = {"train": train_main, "convert": convert_main, "eval": eval_main, "arcade": import_arcade_main}[tool]
    try:
        rc = main(list(argv))
    except SystemExit as e:  # argparse
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def _drop_column(world: World, column: str) -> None:
    import csv

    rows = list(csv.DictReader(world.csv.open()))
    with world.csv.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[c for c in rows[0] if c != column])
        w.writeheader()
        for r in rows:
            r.pop(column)
            w.writerow(r)


def _set_cell(world: World, row: int, column: str, value: str) -> None:
    import csv

    rows = list(csv.DictReader(world.csv.open()))
    rows[row][column] = value
    with world.csv.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _pred(world: World, fn) -> None:
    preds = json.loads(world.pred.read_text())
    fn(preds)
    world.pred.write_text(json.dumps(preds))


def _torch_save(path: Path, obj) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)


def _previous_run(w: World, task: str) -> None:
    (w.exp / "config_resolved.yaml").write_text(f"data:\n  task: {task}\nmodel:\n  name: sam3_tiny\n")
    _torch_save(w.exp / "checkpoints" / "checkpoint.pt",
                {"model": {}, "optimizer": {}, "epoch": 1, "steps": {"train": 1}, "loss": {}})


CC = "coco_cass/train/annotations.json"
CV = "coco_cass/val/annotations.json"

# (id, setup(world) -> (tool, argv), exit code, needles that one line of the output holds)
CASES = [
    # --- config keys and values: tools/train.py --check
    ("batch-size-0", lambda w: ("train", w.train("scratch.train_batch_size=0")), 1, ["scratch.train_batch_size", "0"]),
    ("batch-size-negative", lambda w: ("train", w.train("scratch.train_batch_size=-2")), 1, ["scratch.train_batch_size", "-2"]),
    ("val-batch-size-0", lambda w: ("train", w.train("scratch.val_batch_size=0")), 1, ["scratch.val_batch_size"]),
    ("batch-larger-than-split", lambda w: ("train", w.train("scratch.train_batch_size=50")), 1,
     ["annotations.json", "0 optimiser steps", "scratch.train_batch_size=50"]),
    ("plus-misspelt-key", lambda w: ("train", w.train("+scratch.train_batchsize=1")), 2, ["did you mean scratch.train_batch_size"]),
    ("plus-misspelt-trainer-key", lambda w: ("train", w.train("+trainer.max_epoch=1")), 2, ["did you mean trainer.max_epochs"]),
    ("hydra-rejected-key", lambda w: ("train", w.train("trainer.max_epoch=1")), 2, ["trainer.max_epoch=1", "did you mean trainer.max_epochs"]),
    ("plus-key-nothing-reads", lambda w: ("train", w.train("+data.nonsense=1")), 2, ["+data.nonsense=1", "nothing reads"]),
    ("unknown-model-name", lambda w: ("train", w.train("model.name=sam4")), 2, ["model.name='sam4'"]),
    ("misspelt-target", lambda w: ("train", w.train("trainer.model._target_=sam3_angio.model.builders.build_modle")), 1,
     ["trainer.model._target_", "Did you mean 'sam3_angio.model.builders.build_model'"]),
    ("missing-sam3-checkpoint", lambda w: ("train", w.train("paths.sam3_checkpoint=/nowhere/sam3.pt")), 1, ["/nowhere/sam3.pt"]),
    ("unknown-config", lambda w: ("train", ["-c", "configs/angiography/nope.yaml", "--check"]), 2, ["nope.yaml", "not found"]),
    ("bad-accelerator", lambda w: ("train", w.train("trainer.accelerator=tpu")), 2, ["trainer.accelerator='tpu'"]),
    ("bad-demo-switch", lambda w: ("train", w.train("data.demo.generate_if_missing=maybe")), 1, ["data.demo.generate_if_missing='maybe'"]),
    ("save-every-steps-negative", lambda w: ("train", w.train("trainer.checkpoint.save_every_steps=-1")), 1,
     ["trainer.checkpoint.save_every_steps", "-1"]),
    ("nan-guard-0", lambda w: ("train", w.train("trainer.nan_guard.max_consecutive=0")), 1, ["trainer.nan_guard.max_consecutive"]),
    ("best-mode", lambda w: ("train", w.train("trainer.best_checkpoint.mode=up")), 1, ["trainer.best_checkpoint.mode", "'up'"]),
    ("unknown-view-encoder", lambda w: ("train", w.train("model.view.encoder=sinusodial")), 1, ["model.view.encoder"]),
    # --- where the data and the run live
    ("misspelt-data-root", lambda w: ("train", w.train(f"paths.data_root={w.root}/studdy")), 1,
     ["studdy does not exist", "paths.demo_data_root"]),
    ("experiment-dir-under-a-file", lambda w: ("train", w.train(f"paths.experiment_dir={w.exp}/earlier.txt/run")), 1,
     ["paths.experiment_dir", "earlier.txt is a file"]),
    ("truncated-checkpoint", lambda w: (
        _torch_save(w.exp / "checkpoints" / "checkpoint.pt", {"model": {}}),
        (w.exp / "checkpoints" / "checkpoint.pt").write_bytes((w.exp / "checkpoints" / "checkpoint.pt").read_bytes()[:40]),
        ("train", w.train()))[-1], 1, ["checkpoint.pt cannot be resumed from", "--restart"]),
    ("foreign-checkpoint", lambda w: (_torch_save(w.exp / "checkpoints" / "checkpoint.pt", {"weights": {}}),
                                      ("train", w.train()))[-1], 1,
     ["checkpoint.pt is not a resumable trainer checkpoint", "model"]),
    ("resume-another-run", lambda w: (_previous_run(w, "vessel"), ("train", w.train()))[-1], 1,
     ["another run's checkpoint.pt", "data.task", "--restart"]),
    # --- training data (COCO) found by --check
    ("ann-unknown-image-train", lambda w: (w.edit(CC, lambda d: d["annotations"][0].update(image_id=777)),
                                           ("train", w.train()))[-1], 1, [CC, "annotations[0]", "image_id 777"]),
    ("ann-unknown-image-val", lambda w: (w.edit(CV, lambda d: d["annotations"][1].update(image_id=778)),
                                         ("train", w.train()))[-1], 1, [CV, "annotations[1]", "image_id 778"]),
    ("ann-undeclared-category", lambda w: (w.edit(CC, lambda d: d["annotations"][0].update(category_id=99)),
                                           ("train", w.train()))[-1], 1, [CC, "annotations[0]", "category_id 99"]),
    ("missing-image-file", lambda w: ((w.data / "coco_cass" / "train" / "images" /
                                       json.loads((w.data / CC).read_text())["images"][0]["file_name"]).unlink(),
                                      ("train", w.train()))[-1], 1, [CC, "does not exist", "1 of 4"]),
    ("malformed-annotations-json", lambda w: ((w.data / CC).write_text('{"images": [,'), ("train", w.train()))[-1], 1,
     [CC, "not valid JSON"]),
    ("non-utf8-annotations-json", lambda w: ((w.data / CC).write_bytes(b'{"images": "\xff\xfe"}'),
                                             ("train", w.train()))[-1], 1, [CC, "not UTF-8"]),
    ("annotations-json-a-list", lambda w: ((w.data / CC).write_text("[]"), ("train", w.train()))[-1], 1,
     [CC, "expected a JSON object"]),
    ("annotations-without-images", lambda w: (w.edit(CC, lambda d: d.pop("images")), ("train", w.train()))[-1], 1,
     [CC, "no 'images'"]),
    ("duplicate-image-id", lambda w: (w.edit(CC, lambda d: d["images"][1].update(id=d["images"][0]["id"])),
                                      ("train", w.train()))[-1], 1, [CC, "appears twice"]),
    ("empty-training-split", lambda w: (w.edit(CC, lambda d: d.update(images=[], annotations=[])),
                                        ("train", w.train()))[-1], 1, [CC, "has no images"]),
    ("missing-val-json", lambda w: ((w.data / CV).unlink(), ("train", w.train()))[-1], 1, [CV, "data not found"]),
    # --- the study CSV: tools/convert_to_coco.py
    ("csv-missing", lambda w: ("convert", ["--csv", str(w.root / "nope.csv"), "--out", str(w.root / "o"), "--task", "cass"]),
     2, ["nope.csv"]),
    ("csv-not-utf8", lambda w: (w.csv.write_bytes(w.csv.read_bytes().replace(b"LAD", b"L\xe9D", 1)),
                                ("convert", ["--csv", str(w.csv), "--out", str(w.root / "o"), "--task", "cass"]))[-1],
     2, ["study.csv", "not UTF-8", "line 2"]),
    ("csv-missing-column", lambda w: (_drop_column(w, "cine_path"),
                                      ("convert", ["--csv", str(w.csv), "--out", str(w.root / "o"), "--task", "cass"]))[-1],
     2, ["study.csv", "cine_path"]),
    ("csv-missing-cine", lambda w: (_set_cell(w, 0, "cine_path", "cines/gone.npy"),
                                    ("convert", ["--csv", str(w.csv), "--out", str(w.root / "o"), "--task", "cass"]))[-1],
     2, ["gone.npy"]),
    ("csv-bad-frame-index", lambda w: (_set_cell(w, 1, "frame_index", "first"),
                                       ("convert", ["--csv", str(w.csv), "--out", str(w.root / "o"), "--task", "cass"]))[-1],
     2, ["frame_index"]),
    ("csv-frame-out-of-range", lambda w: (_set_cell(w, 0, "frame_index", "999"),
                                          ("convert", ["--csv", str(w.csv), "--out", str(w.root / "o"), "--task", "cass"]))[-1],
     2, ["999"]),
    ("convert-out-under-a-file", lambda w: ("convert", ["--csv", str(w.csv), "--out", str(w.earlier / "metrics.json" / "o"),
                                                        "--task", "cass"]), 2, ["--out", "metrics.json' is a file"]),
    ("convert-out-exists", lambda w: ("convert", ["--csv", str(w.csv), "--out", str(w.earlier), "--task", "cass"]), 2,
     ["earlier' already exists", "--overwrite"]),
    # --- evaluation: tools/eval.py
    ("eval-gt-missing", lambda w: ("eval", ["--gt", str(w.root / "gone.json"), "--pred", str(w.pred), "--out", str(w.root / "e")]),
     2, ["gone.json"]),
    ("eval-gt-not-json", lambda w: ((w.gt).write_text("{oops"),
                                    ("eval", ["--gt", str(w.gt), "--pred", str(w.pred), "--out", str(w.root / "e")]))[-1],
     2, ["gt.json", "not valid JSON"]),
    ("eval-pred-unknown-image", lambda w: (_pred(w, lambda p: p[0].update(image_id=4242)),
                                           ("eval", ["--gt", str(w.gt), "--pred", str(w.pred), "--out", str(w.root / "e")]))[-1],
     0, ["ignored predictions: unknown_image_id 1"]),  # counted and shown, as docs/evaluation.md says
    ("eval-pred-huge-polygon", lambda w: (_pred(w, lambda p: p[0].update(segmentation=[[0, 0, 1e9, 0, 1e9, 1e9]])),
                                          ("eval", ["--gt", str(w.gt), "--pred", str(w.pred), "--out", str(w.root / "e")]))[-1],
     0, ["ignored predictions: malformed_polygon 1"]),
    ("eval-pred-nan-polygon", lambda w: (_pred(w, lambda p: p[0].update(segmentation=[[0, 0, float("nan"), 5, 5, 5]])),
                                         ("eval", ["--gt", str(w.gt), "--pred", str(w.pred), "--out", str(w.root / "e")]))[-1],
     0, ["ignored predictions: malformed_polygon 1"]),
    ("eval-pred-string-coordinates", lambda w: (_pred(w, lambda p: p[0].update(segmentation=[["0", "0", "5", "0", "5", "5"]])),
                                                ("eval", ["--gt", str(w.gt), "--pred", str(w.pred), "--out", str(w.root / "e")]))[-1],
     0, ["ignored predictions: malformed_polygon 1"]),
    ("eval-out-under-a-file", lambda w: ("eval", ["--gt", str(w.gt), "--pred", str(w.pred),
                                                  "--out", str(w.earlier / "metrics.json" / "e")]), 2, ["--out", "metrics.json' is a file"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, world, capsys):
    name, setup, code, needles = case
    tool, argv = setup(world)
    before = snapshot(world.root)
    rc, out, err = run_tool(tool, argv, capsys)
    text = out + err
    assert rc == code, f"{name}: exit {rc}, expected {code}\n{text[-3000:]}"
    assert "Traceback" not in text
    lines = [ln for ln in text.splitlines() if all(n in ln for n in needles)]
    assert lines, f"{name}: no single line holds {needles}:\n{text[-3000:]}"
    after = snapshot(world.root)
    changed = [p for p, h in before.items() if after.get(p) != h]
    assert not changed, f"{name}: earlier files changed or removed: {changed}"
