"""Checkpoint files as untrusted input (sam3_angio/model/checkpoint.py): every file that is not a usable
checkpoint is one error line naming the file and what is wrong with it (no torch/pickle wall of text),
a pickle holding arbitrary objects is refused without running them, and NaN weights are refused at load
(they trained as a matcher traceback and predicted nothing, quietly)."""

from __future__ import annotations

import os

import pytest
import torch

from sam3_angio.model.checkpoint import CheckpointError, load_into, read_checkpoint


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _state(tmp_path):
    return {"a.weight": torch.ones(2, 2), "a.bias": torch.zeros(2)}


def _truncated(tmp_path):
    p = tmp_path / "full.pt"
    torch.save({"model": _state(tmp_path)}, p)
    return p.read_bytes()[: p.stat().st_size // 2]


def _png(tmp_path):
    from PIL import Image

    p = tmp_path / "x.png"
    Image.new("L", (4, 4)).save(p)
    return p.read_bytes()


CASES = [
    ("text", lambda t: b"model: sam3\nnot a checkpoint\n", "is not a torch checkpoint: it is a text file"),
    ("png", _png, "is not a torch checkpoint: it is a PNG image"),
    ("empty", lambda t: b"", "is empty (0 bytes)"),
    ("truncated", _truncated, "is truncated or damaged"),
]


@pytest.mark.parametrize("name, content, needle", CASES, ids=[c[0] for c in CASES])
def test_unusable_files_are_one_line_naming_the_file(tmp_path, name, content, needle):
    path = tmp_path / f"{name}.pt"
    path.write_bytes(content(tmp_path))
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(str(path))
    msg = str(e.value)
    assert str(path) in msg and needle in msg
    assert "\n" not in msg and len(msg) < 400, msg


def test_a_pickle_of_arbitrary_objects_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": _state(tmp_path), "extra": _RunsCode(str(marker))}, path)
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(str(path))
    assert not marker.exists()  # weights_only=True: the object was never built
    msg = str(e.value)
    assert "holds Python objects other than tensors" in msg and "weights_only=True" in msg and "\n" not in msg
    assert "mkdir" in msg  # names what it refused


def test_a_folder_names_the_checkpoint_inside(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    torch.save({"model": _state(tmp_path)}, tmp_path / "run" / "checkpoints" / "checkpoint.pt")
    with pytest.raises(CheckpointError, match=r"is a folder, not a file: pass .*run/checkpoints/checkpoint\.pt"):
        read_checkpoint(str(tmp_path / "run"))


def test_an_adapter_file_given_as_checkpoint_says_so(tmp_path):
    path = tmp_path / "adapter.pt"
    torch.save({"adapter": {"x.lora_A.weight": torch.zeros(2, 2)}, "angio": {"task": "cass"}}, path)
    with pytest.raises(CheckpointError, match="is an adapter file .* not a full checkpoint"):
        read_checkpoint(str(path))


def test_a_checkpoint_given_as_adapter_says_so(tmp_path):
    from sam3_angio.model.adapters import read_adapter_info

    path = tmp_path / "checkpoint.pt"
    torch.save({"model": _state(tmp_path), "epoch": 1}, path)
    with pytest.raises(CheckpointError, match="is a full checkpoint, not an adapter file"):
        read_adapter_info(str(path))


def test_nan_weights_are_refused_at_load(tmp_path):
    module = torch.nn.Linear(2, 2)
    sd = {k: v.clone() for k, v in module.state_dict().items()}
    sd["weight"][0, 0] = float("nan")
    before = module.weight.detach().clone()
    with pytest.raises(CheckpointError, match=r"nan\.pt holds NaN or inf values in 1 of its 2 tensors \(first: weight"):
        load_into(module, sd, "nan.pt", strict_shapes_under=())
    assert torch.equal(module.weight.detach(), before)  # nothing was loaded


def test_predictor_refuses_a_checkpoint_of_another_model_size_before_building_it(tmp_path, monkeypatch):
    """-c CONFIG model.name=sam3 with a sam3_tiny run's checkpoint built the 840 M model (a minute and GBs
    on a CPU) only to find that no backbone tensor fits."""
    import sam3.model_builder

    from sam3_angio.inference.predictor import Predictor
    from sam3_angio.model.tiny import build_sam3_tiny

    path = tmp_path / "checkpoint.pt"
    torch.save({"model": build_sam3_tiny().state_dict(), "epoch": 1,
                "angio": {"task": "vessel", "model": "sam3_tiny", "class_ids": None}}, path)

    def never(**kw):
        raise AssertionError("the real model was built for a sam3_tiny checkpoint")

    monkeypatch.setattr(sam3.model_builder, "build_sam3_image_model", never)
    with pytest.raises(CheckpointError, match="holds sam3_tiny weights, but the config builds sam3 .*=sam3_tiny"):
        Predictor.from_checkpoint(str(path), "vessel_segmentation", ["model.name=sam3"])
