"""Exit codes of the command line, and the error that carries one."""

from __future__ import annotations

import enum

__all__ = ["CliError", "ExitCode"]


class ExitCode(enum.IntEnum):
    """What a command's exit status means (the same for every command)."""

    #: The command did what was asked.
    OK = 0
    #: The command ran, and what it checked failed (a simulation violation, a missed demo bound).
    FAILED = 1
    #: The command line was wrong: an unknown option, a bad URI, a missing ``--force``.
    USAGE = 2
    #: The server could not be reached in time, or refused us (authentication), or the
    #: SQLite file could not be opened.
    UNREACHABLE = 3
    #: The named key is in none of the collections looked at.
    NOT_FOUND = 4
    #: ``run``: the lock was lost while the command ran, and the command was stopped
    #: (sysexits' EX_SOFTWARE).
    LOST = 70
    #: ``run``: the lock is held by another process (and ``--wait`` did not get it in time);
    #: sysexits' EX_TEMPFAIL, "try again later".
    HELD = 75
    #: ``run``/``elect``: the command could not be executed (as a shell reports it).
    CANNOT_EXECUTE = 126
    #: ``run``/``elect``: the command was not found (as a shell reports it).
    NOT_FOUND_COMMAND = 127


class CliError(Exception):
    """A command cannot go on; ``main`` prints ``message`` (masked) and exits with ``code``."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code
