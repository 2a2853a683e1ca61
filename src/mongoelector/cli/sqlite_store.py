"""Opening the SQLite file a command works on (``--sqlite FILE``), checked usable at once.

The backend opens its file lazily, on its first call; a command opens it here
first, so that a path that cannot be used stops the command at once, with the
reason, instead of every later call failing quietly.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from mongoelector.backends.sqlite import SQLiteBackend
from mongoelector.cli.errors import CliError, ExitCode
from mongoelector.errors import BackendError

__all__ = ["PROBE_KEY", "open_sqlite"]

#: The key read to check that the file opens (any valid key would do; nothing is written).
PROBE_KEY = "mongoelector-cli-probe"


@contextlib.contextmanager
def open_sqlite(path: str, *, timeout: float, create: bool) -> Iterator[SQLiteBackend]:
    """The :class:`SQLiteBackend` on ``path``, opened and read once before it is yielded.

    ``create``: a missing file is created (its directory must exist); else a
    missing file is an error, so that inspecting a mistyped path never leaves
    an empty database behind. ``timeout`` is the backend's ``busy_timeout``.
    Raises :class:`CliError` (``UNREACHABLE``) naming the path and the cause
    when the file cannot be opened or is not a usable database. Closed on exit.
    """
    if not create and not os.path.exists(path):
        raise CliError(f"cannot open SQLite file {path!r}: no such file", ExitCode.UNREACHABLE)
    if os.path.isdir(path):
        raise CliError(f"cannot open SQLite file {path!r}: it is a directory", ExitCode.UNREACHABLE)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CliError(
            f"cannot open SQLite file {path!r}: no such directory {directory!r}",
            ExitCode.UNREACHABLE,
        )
    with SQLiteBackend(path, busy_timeout=timeout) as backend:
        try:
            backend.get(PROBE_KEY)
        except BackendError as error:
            raise CliError(str(error), ExitCode.UNREACHABLE) from error
        yield backend
