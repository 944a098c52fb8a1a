"""The package's layers import downwards only, never up and never in a circle (DESIGN.md):

    tools -> training -> evaluation -> inference -> (model, losses, transforms, data, qca, config)
          -> (registry, errors, cass, view_angles, cpu_compat, lazy)

Every import statement counts, also the ones inside functions (a lazy upward import is still an
upward dependency)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import Dict, Set

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sam3_angio"

# Rank of each part of the package; a module may import its own part or parts of a lower rank, and parts of
# the same rank only without a cycle between them.
RANK = {
    "errors": 0, "registry": 0, "cass": 0, "view_angles": 0, "cpu_compat": 0, "lazy": 0,
    "data": 1, "transforms": 1, "model": 1, "losses": 1, "qca": 1, "config": 1,
    "inference": 2,
    "evaluation": 3,
    "training": 4,
}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, mod: str = "") -> Set[str]:
    """Absolute names of the sam3_angio modules ``path`` (module ``mod``) imports, relative imports resolved."""
    mod = mod or _module_name(path)
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("sam3_angio")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("sam3_angio"):
                out.add(name)
                out |= {f"{name}.{a.name}" for a in node.names}  # `from pkg import module`
    return out


def _graph() -> Dict[str, Set[str]]:
    """part -> parts it imports (only parts that exist)."""
    graph: Dict[str, Set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        src = _part(_module_name(path))
        for name in _imports(path):
            dst = _part(name)
            if dst in RANK and dst != src:
                graph[src].add(dst)
    return graph


def test_every_part_of_the_package_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.stem != "__init__")}
    assert parts <= set(RANK), f"parts without a layer in tests/test_layers.py: {sorted(parts - set(RANK))}"


def test_no_part_imports_a_higher_layer():
    upward = [f"{src} -> {dst}" for src, dsts in _graph().items() if src in RANK
              for dst in dsts if RANK[dst] > RANK[src]]
    assert not upward, "upward imports: " + ", ".join(sorted(upward))


def test_the_parts_import_each_other_without_a_cycle():
    graph = _graph()
    state: Dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(path + [node, nxt]))
            if state.get(nxt) is None:
                visit(nxt, path + [node])
        state[node] = 2

    for node in list(graph):
        if state.get(node) is None:
            visit(node, [])


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from sam3_angio.training.cli import main\n\nfrom ..training import runner\n")
    found = _imports(probe, "sam3_angio.evaluation.probe")
    assert "sam3_angio.training.cli" in found and "sam3_angio.training.runner" in found
