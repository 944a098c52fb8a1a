"""The registry: registration at definition, did-you-mean, plugins through entry points."""

from __future__ import annotations

import importlib
import sys
import types

import pytest

from sam3_angio import registry
from sam3_angio.errors import ConfigError


def test_registry_registers_at_definition_and_suggests():
    reg = registry.Registry("scratch")

    @reg.register()
    class ViewThing:
        """One line."""

    assert reg.get("ViewThing") is ViewThing
    with pytest.raises(ConfigError, match="Did you mean 'ViewThing'"):
        reg.get("ViewThng")
    assert reg.summaries()[0][2] == "One line."


def test_plugins_register_through_entry_points(monkeypatch):
    mod = types.ModuleType("fake_angio_plugin")

    def register():
        @registry.LOSSES.register()
        class PluginLoss:
            """A plugin's loss."""

    mod.register = register
    monkeypatch.setitem(sys.modules, "fake_angio_plugin", mod)

    class EP:
        name, value = "fake", "fake_angio_plugin:register"

        def load(self):
            return importlib.import_module("fake_angio_plugin").register

    monkeypatch.setattr(registry, "_entry_points", lambda: [EP()])
    monkeypatch.setattr(registry, "_loaded", False)
    registry.load_all()
    assert "PluginLoss" in registry.LOSSES
    registry.LOSSES._obj_map.pop("PluginLoss")


# ---------------------------------------------------------------- metrics summary

