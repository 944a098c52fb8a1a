"""What the main job prints: the banner, the data summary, one line per ``trainer.logging.log_freq``
steps with the loss terms that are not constantly zero, a validation summary and where things are.
Everything else SAM3 logs (module tree, meters, optimiser groups) goes to ``logs/log.txt`` only;
``--debug`` (or ``SAM3_ANGIO_VERBOSE=1``) brings it back to the console."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings

#: Third-party warnings that say nothing a user can act on (category, message regex).
QUIET_WARNINGS = (
    (FutureWarning, r"`torch\.jit\.script` is deprecated"),
    (UserWarning, r"CUDA is not available or torch_xla is imported"),
    (UserWarning, r"Grad strides do not match bucket view strides"),
    (UserWarning, r"Warning: Point prompts are ignored"),
)


def verbose() -> bool:
    return os.environ.get("SAM3_ANGIO_VERBOSE") == "1"


def quiet_third_party_warnings() -> None:
    """Silence :data:`QUIET_WARNINGS` (also in spawned ranks: they call this too) and SAM3's import-time
    'TIDE not installed' print."""
    if verbose():
        return
    for category, message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    os.environ["PYTHONWARNINGS"] = ",".join(
        filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore::FutureWarning:torch.jit._script"]))

def import_sam3_eval_quietly() -> None:
    """SAM3's COCO evaluator prints 'WARNING: TIDE not installed' on import (TIDE is optional)."""
    if verbose():
        return
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            import sam3.eval.coco_eval_offline  # noqa: F401
        except Exception:
            pass


def quiet_console() -> None:
    """SAM3's console handlers (stdout/stderr) show warnings and errors only; the log file keeps all."""
    if verbose():
        return
    # submitit's own lines (job start, "Requeued job ...") stay: they go to the job's log files on a
    # cluster and are what a user reads there.
    names = [n for n in list(logging.root.manager.loggerDict) if not n.startswith("submitit")]
    for logger in (logging.getLogger(), *(logging.getLogger(n) for n in names)):
        for h in getattr(logger, "handlers", []):
            if type(h) is logging.StreamHandler and getattr(h, "stream", None) in (sys.stdout, sys.stderr):
                h.setLevel(max(h.level, logging.WARNING))


def say(text: str) -> None:
    """A line for the user (rank 0 only)."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(text, flush=True)
