"""Who this process is: a fresh owner id, the host name and the process id."""

from __future__ import annotations

import os
import socket
import uuid

__all__ = ["local_host", "local_pid", "new_acquisition_id", "new_owner_id"]


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
