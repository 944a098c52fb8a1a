"""A third-party plugin package adds a view encoder and a loss term with no edit to sam3-angio: the
worked example of docs/extending.md (tests/plugins/angio_example_plugin), installed into a folder of
its own and found through the ``sam3_angio.plugins`` entry point."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PLUGIN = ROOT / "tests" / "plugins" / "angio_example_plugin"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / PLUGIN.name  # a copy: a build leaves build/ and egg-info behind
    shutil.copytree(PLUGIN, source)
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--target", str(target), str(source)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return target


def _run(code_or_args, plugin_path: Path, tool: bool = False):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugin_path), str(ROOT)]))
    cmd = [sys.executable, str(ROOT / "tools" / "train.py"), *code_or_args] if tool else [sys.executable, "-c", code_or_args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def test_the_plugins_parts_are_listed_and_a_config_using_them_checks(plugin_path, tiny_data_root, tmp_path):
    listed = _run(["--list"], plugin_path, tool=True)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert re.search(r"quadrant\s+angio_example_plugin\.quadrant\.QuadrantViewEncoder", listed.stdout)
    assert "CassEntropyPenalty" in listed.stdout
    # (a folder of this test's own: the checkout's experiments/ may hold a demo run on other data)
    check = _run(["-c", "cass", "--check", "model.view.encoder=quadrant", f"paths.data_root={tiny_data_root}",
                  f"paths.experiments_root={tmp_path}",
                  "+scratch.loss_terms.entropy._target_=angio_example_plugin.entropy.CassEntropyPenalty",
                  "+scratch.loss_terms.entropy.weight=0.1"], plugin_path, tool=True)
    assert check.returncode == 0 and "config OK" in check.stdout, check.stdout[-2000:] + check.stderr[-2000:]
    typo = _run(["-c", "cass", "--check", "model.view.encoder=quadrnt", f"paths.data_root={tiny_data_root}",
                 f"paths.experiments_root={tmp_path}"],
                plugin_path, tool=True)
    assert typo.returncode == 1 and "Did you mean 'quadrant'" in typo.stdout


def test_the_plugins_view_encoder_and_loss_term_train_a_step(plugin_path, tiny_data_root):
    code = f"""
import sys, torch
sys.path.insert(0, {str(ROOT / 'tests')!r})
from hydra.utils import instantiate
from omegaconf import OmegaConf
from sam3_angio.config import compose, finalize
from sam3_angio.training.launch import ensure_process_group
from model_fixtures import make_batches
ensure_process_group()
over = ["model.name=sam3_tiny", "model.class_ids=[1,2,12,13]", "model.view.encoder=quadrant",
        "paths.data_root={tiny_data_root}", "data.demo.generate_if_missing=false",
        "+scratch.loss_terms.entropy._target_=angio_example_plugin.entropy.CassEntropyPenalty"]
cfg = OmegaConf.create(OmegaConf.to_container(finalize(compose("cass", over)), resolve=True))
model = instantiate(cfg.trainer.model, _convert_="all").train()
loss_fn = instantiate(cfg.scratch.angio_loss)
batch = make_batches({str(tiny_data_root)!r}, "cass")[0]
out = model(batch)
losses = loss_fn(out, [model.back_convert(t) for t in batch.find_targets])
losses["core_loss"].backward()
print(type(model.view_encoder).__name__, "loss_cass_entropy" in losses,
      model.view_encoder.quadrant.weight.grad is not None)
"""
    proc = _run(code, plugin_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "QuadrantViewEncoder True True"


def test_docs_show_the_plugin_files_as_they_are():
    doc = (ROOT / "docs" / "extending.md").read_text()
    for rel in ("pyproject.toml", "angio_example_plugin/quadrant.py", "angio_example_plugin/entropy.py"):
        text = (PLUGIN / rel).read_text().strip()
        assert text in doc, f"docs/extending.md does not show tests/plugins/angio_example_plugin/{rel} as it is"
