"""Who this process is: a fresh owner id, the host name and the process id; release ids."""

from __future__ import annotations

import itertools
import os
import socket
import uuid

__all__ = [
    "forks",
    "local_host",
    "local_pid",
    "new_acquisition_id",
    "new_owner_id",
    "new_release_id",
]

#: How many times this process's ancestry forked since this module was imported: bumped in
#: a forked child, so a lock or elector made before the fork can tell that it was copied
#: into a child (its own count differs) and give up what it held in the parent.
forks = 0

# The host name and process id, read once (and the id again in a forked child): each
# lock and elector keeps them, and one shared object costs nothing per lock.
_host: str | None = None
_pid: int | None = None


def _new_release_prefix() -> str:
    """A random prefix for this process's release ids (32 hex digits and a colon)."""
    return os.urandom(16).hex() + ":"


# Release ids: this process's random prefix and a count. Made anew in a forked child, which
# would otherwise send the very ids its parent sends next (a copied backend object, or any
# other: the count is the process's).
_release_prefix = _new_release_prefix()
_release_count = itertools.count(1)


def _after_fork_in_child() -> None:
    global forks, _pid, _release_prefix  # noqa: PLW0603 - the process's fork count, id, prefix
    forks += 1
    _pid = None
    _release_prefix = _new_release_prefix()


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


def new_release_id() -> str:
    """A new id for one ``release`` call of a MongoDB backend, sent in every send of it.

    Unique among the release calls of every process: a random prefix per process
    (made anew in a forked child) and a count. A release whose reply was lost tells its
    own write by it, so an id sent by two calls would take another's write for its own.
    """
    return _release_prefix + str(next(_release_count))


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
