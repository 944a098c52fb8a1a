"""Errors that are the user's to fix: the command-line tools print their message alone (no traceback)
and exit non-zero. Anything else is a bug and keeps its traceback."""


class UserError(Exception):
    """A mistake in input, configuration or environment, with a message that says how to fix it."""


class ConfigError(UserError, ValueError):
    """A config that cannot be composed, resolved or run."""


class DataError(UserError, ValueError):
    """Input data that is missing or malformed (names the file / row / key)."""
