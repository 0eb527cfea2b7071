"""Errors the CLI reports in one clear line instead of a traceback."""


class DartsError(Exception):
    """A failure the user can act on (bad data, missing file, diverged run): exit code 1."""

    exit_code = 1


class ConfigError(DartsError):
    """A bad params file, key or value: exit code 2."""

    exit_code = 2
