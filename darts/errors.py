"""Errors the CLI reports in one clear line instead of a traceback."""

from __future__ import annotations

import errno
import os

# The cause of an OSError in the user's words, by errno (the rest fall back to strerror).
_CAUSES = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file system",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a component of the path is a file, not a directory",
    errno.EISDIR: "is a directory, not a file",
    errno.ENOENT: "no such file or directory",
    errno.EIO: "input/output error (failing disk or lost network mount)",
}


class DartsError(Exception):
    """A failure the user can act on (bad data, missing file, diverged run): exit code 1."""

    exit_code = 1


class ConfigError(DartsError):
    """A bad params file, key or value: exit code 2."""

    exit_code = 2


def os_cause(exc: OSError) -> str:
    """Why an OSError happened, in words (no space, permission, not a directory, ...)."""
    if exc.errno == errno.EEXIST:  # mkdir(exist_ok=True) over a file: a file where a folder is needed
        return "exists and is not a directory" if exc.filename and not os.path.isdir(exc.filename) else "already exists"
    if exc.errno in _CAUSES:
        return _CAUSES[exc.errno]
    return exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))


def os_error_message(exc: OSError, path: object = None) -> str:
    """One line naming the path (``path``, else the error's own file names) and the cause."""
    if path is None:
        path = exc.filename
        if exc.filename2 is not None:
            path = f"{exc.filename} -> {exc.filename2}"
    return f"{path}: {os_cause(exc)}" if path is not None else os_cause(exc)
