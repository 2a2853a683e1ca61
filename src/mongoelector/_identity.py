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

# The host name and process id, read once (and the id again in a forked child): each
# lock and elector keeps them, and one shared object costs nothing per lock.
_host: str | None = None
_pid: int | None = None


def _after_fork_in_child() -> None:
    global forks, _pid  # noqa: PLW0603 - the process-wide fork count, the child's own id
    forks += 1
    _pid = None


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
    """This machine's host name (as read at first use)."""
    global _host  # noqa: PLW0603 - read once
    host = _host
    if host is None:
        host = _host = socket.gethostname()
    return host


def local_pid() -> int:
    """This process's id."""
    global _pid  # noqa: PLW0603 - read once per process
    pid = _pid
    if pid is None:
        pid = _pid = os.getpid()
    return pid
