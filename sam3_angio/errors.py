"""Errors that are the user's to fix, and the one way the command-line tools report them: the message
alone (no traceback), exit status 2. Anything else is a bug and keeps its traceback."""

from __future__ import annotations

import sys
from typing import Callable, Optional


class UserError(Exception):
    """A mistake in input, configuration or environment, with a message that says how to fix it."""


class ConfigError(UserError, ValueError):
    """A config that cannot be composed, resolved or run."""


class DataError(UserError, ValueError):
    """Input data that is missing or malformed (names the file / row / key)."""


def user_error_in(exc: Optional[BaseException]) -> Optional[UserError]:
    """The UserError behind ``exc``, also when a library (Hydra's instantiate, a DataLoader) wrapped it."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UserError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def run_cli(main: Callable[[], int], debug: bool = False, interrupted: str = "interrupted") -> int:
    """Run a tool's ``main``: a UserError is one ``error:`` line on stderr and exit status 2 (with
    ``debug``, the traceback); Ctrl-C exits 130 with ``interrupted``; anything else propagates."""
    try:
        return main()
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    except Exception as e:
        err = user_error_in(e)
        if err is None or debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
