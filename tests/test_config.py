"""Config composition, accelerator resolution, metric-name summaries, run-config history."""

from __future__ import annotations


import torch



def test_config_composes_from_path_or_name_with_overrides():
    from sam3_angio.config import compose

    a = compose("configs/angiography/cass.yaml", ["trainer.max_epochs=7"])
    b = compose("cass", ["trainer.max_epochs=7"])
    assert a.trainer.max_epochs == b.trainer.max_epochs == 7
    assert a.data.task == "cass"


def test_accelerator_auto_resolves_to_cpu_with_gloo_here():
    from sam3_angio.config import compose, finalize

    cfg = finalize(compose("vessel_segmentation"))
    if not torch.cuda.is_available():
        assert cfg.trainer.accelerator == "cpu"
        assert cfg.model.resolved == "sam3_tiny"
        assert cfg.trainer.optim.amp.enabled is False


def test_cluster_submission_from_a_gpu_less_login_node_targets_the_gpu_partition():
    from sam3_angio.config import compose, finalize

    cfg = finalize(compose("cass", ["submitit.use_cluster=true", "submitit.cpu_only=false",
                                    "paths.sam3_checkpoint=/models/sam3.pt"]))
    assert cfg.trainer.accelerator == "cuda" and cfg.model.resolved == "sam3"
    assert cfg.trainer.optim.amp.enabled is True
    cpu = finalize(compose("cass", ["submitit.use_cluster=true", "submitit.cpu_only=true"]))
    assert cpu.trainer.accelerator == "cpu" and cpu.model.resolved == "sam3_tiny"


def test_a_restart_with_another_config_keeps_the_earlier_one(tmp_path):
    from sam3_angio.training.cli import save_run_config
    from sam3_angio.config import compose, finalize

    a = finalize(compose("cass", [f"paths.experiment_dir={tmp_path}", "trainer.max_epochs=2"]))
    b = finalize(compose("cass", [f"paths.experiment_dir={tmp_path}", "trainer.max_epochs=5"]))
    save_run_config(a)
    save_run_config(a)  # same config: nothing to keep
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "config_resolved.yaml"]
    save_run_config(b)
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("config.2")]
    assert len(kept) == 1 and "max_epochs: 2" in kept[0].read_text()
    assert "max_epochs: 5" in (tmp_path / "config.yaml").read_text()


def test_an_override_of_the_wrong_type_names_the_key_it_breaks_and_its_value(tmp_path):
    """scratch.lr_scale=abc fails inside another key's interpolation: the error was OmegaConf's three lines
    with numpy's ufunc text and the other key only; it is one line naming both and the value."""
    from sam3_angio.config import compose, finalize
    from sam3_angio.training.preflight import check_config

    cfg = finalize(compose("cass", [f"paths.experiments_root={tmp_path}", "scratch.lr_scale=abc"]))
    errors = check_config(cfg).errors
    assert len(errors) == 1 and "\n" not in errors[0], errors
    assert errors[0].startswith("scratch.lr_transformer = ${times:8e-4,${scratch.lr_scale}} cannot be computed")
    assert "it uses scratch.lr_scale='abc'" in errors[0]


def test_a_damaged_config_file_is_one_line_naming_it(tmp_path):
    """A run's config_resolved.yaml that is not YAML was a PyYAML message over four lines; an empty one was
    'override model.name=sam3_tiny names a key the config does not have' - an override the Predictor adds."""
    import pytest

    from sam3_angio.config import compose
    from sam3_angio.errors import ConfigError

    path = tmp_path / "config_resolved.yaml"
    for content, needle in ((b"data: [unclosed\n  task: x\n", "is not valid YAML at line 2, column 7"),
                            (b"\n", "is empty"), (b"- a\n- b\n", "holds a list at its top level"),
                            (b"\xff\xfe\x00", "is not UTF-8 text")):
        path.write_bytes(content)
        with pytest.raises(ConfigError) as e:
            compose(str(path), ["model.name=sam3_tiny"])
        assert str(e.value).startswith(f"config {path} ") and needle in str(e.value), str(e.value)
        assert "\n" not in str(e.value)


def test_a_config_fragment_or_an_unset_task_is_not_a_run_config():
    """tools/train.py -c configs/angiography/base/paths.yaml (a fragment) or data.task=??? was an OmegaConf
    traceback from finalize (InterpolationKeyError / MissingMandatoryValue)."""
    import pytest

    from sam3_angio.config import compose, finalize
    from sam3_angio.errors import ConfigError

    with pytest.raises(ConfigError, match=r"base/paths\.yaml is not a run config: it has no experiment_name\. "
                                          r"Pass a phase config"):
        finalize(compose("configs/angiography/base/paths.yaml"))
    with pytest.raises(ConfigError, match=r"cass\.yaml is not a run config: it leaves data\.task unset"):
        finalize(compose("cass", ["data.task=???"]))


def test_a_malformed_override_is_one_line():
    """'=3' was a ValueError traceback from Hydra's defaults list; Hydra's parse errors spanned three lines."""
    import pytest

    from sam3_angio.config import compose
    from sam3_angio.errors import ConfigError

    for bad in ("=3", "trainer.max_epochs"):
        with pytest.raises(ConfigError, match=rf"override '{bad}' is not key=value \(e\.g\. trainer\.max_epochs=3"):
            compose("cass", [bad])
    with pytest.raises(ConfigError) as e:
        compose("cass", ["trainer.max_epochs=[1,"])
    assert "no viable alternative at input '[1,'" in str(e.value) and "\n" not in str(e.value)
