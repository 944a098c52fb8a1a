"""Run a tool's ``main(argv)`` in a subprocess whose address space may grow by at most ``cap`` bytes
beyond what its imports took (``RLIMIT_AS``), so that a memory blow-up fails the test (a MemoryError,
a segfault from a failed allocation) instead of filling the machine. Imported by tests (tests/ is on
sys.path via conftest)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parents[1]
CAP = 4 << 30  # 4 GiB

_SCRIPT = """
import importlib, resource, sys
module, func, cap = sys.argv[1], sys.argv[2], int(sys.argv[3])
main = getattr(importlib.import_module(module), func)  # imports first: torch alone maps ~3 GiB
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + cap, vm + cap))
sys.exit(main(sys.argv[4:]))
"""


def run_main_capped(module: str, func: str, argv: List[str], cap: int = CAP, timeout: float = 300):
    """``module.func(argv)`` in a fresh interpreter under the cap; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, module, func, str(cap), *argv],
        capture_output=True, text=True, timeout=timeout, cwd=str(ROOT),
    )
