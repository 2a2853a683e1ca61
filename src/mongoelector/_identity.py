"""Who this process is: a fresh owner id, the host name and the process id."""

from __future__ import annotations

import os
import socket
import uuid

__all__ = ["forks", "local_host", "local_pid", "new_acquisition_id", "new_owner_id"]

#: How many times this process's ancestry forked since this module was imported: bumped in
#: a forked child, so a lock or elector made before the fork can tell that it was copied
#: into a child (its own count differs) and give up what it held in the parent.
forks = 0


def _after_fork_in_child() -> None:
    global forks  # noqa: PLW0603 - the process-wide fork count
    forks += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


def new_owner_id() -> str:
    """A new random owner id (a UUID4 string), unique to one lock or elector object."""
    return str(uuid.uuid4())


def new_acquisition_id() -> str:
    """A new random id for one ``compare_and_set`` call (32 hex digits).

    128 random bits from ``os.urandom``, the source of ``uuid.uuid4`` (which
    would keep 122 of them and take four times as long: this runs for every
    acquire).
    """
    return os.urandom(16).hex()


def local_host() -> str:
    """This machine's host name."""
    return socket.gethostname()


def local_pid() -> int:
    """This process's id."""
    return os.getpid()
