"""Who takes part in a key's leases: the identity and settings every lock and elector has."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Generic, TypeVar

from mongoelector import _identity
from mongoelector._common.monitor import Monitor
from mongoelector._identity import local_host, local_pid, new_owner_id
from mongoelector._listeners import EventListener
from mongoelector._validation import check_key
from mongoelector.clock import Clock, SystemClock
from mongoelector.timing import LeaseTiming

__all__ = ["Participant"]

BackendT = TypeVar("BackendT")

#: Makes the first use of an object in a forked child reset it only once; made anew in
#: the child (another thread of the parent may have held it at the fork).
_FORK_GUARD = threading.Lock()


def _after_fork_in_child() -> None:
    global _FORK_GUARD  # noqa: PLW0603 - a fresh lock for the child
    _FORK_GUARD = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Participant(Generic[BackendT]):
    """A key, the store it lives in, the clock read, the lease timing, and a fresh owner id.

    Its events (a ``kind`` of :mod:`mongoelector.monitoring` event source) go
    to the log and to ``event_listeners`` through :attr:`_monitor`.

    A forked child never acts on its parent's holdings: an object copied into
    the child by ``os.fork()`` is reset on its first use there
    (:meth:`_check_fork`): a fresh owner id and process id, nothing held,
    nothing trusted, nothing to release. To the store it is a new contender,
    which can neither adopt nor release the parent's record.
    """

    __slots__ = (
        "__weakref__",
        "_backend",
        "_clock",
        "_forks",
        "_host",
        "_key",
        "_monitor",
        "_pid",
        "_timing",
        "_uuid",
    )

    def __init__(
        self,
        key: str,
        backend: BackendT,
        *,
        timing: LeaseTiming,
        clock: Clock | None,
        kind: str,
        event_listeners: Iterable[EventListener] = (),
    ) -> None:
        self._key = check_key(key)
        self._backend = backend
        self._timing = timing
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._uuid = new_owner_id()
        self._host = local_host()
        self._pid = local_pid()
        self._forks = _identity.forks
        self._monitor = Monitor(
            kind=kind,
            key=self._key,
            owner=self._uuid,
            renew_deadline=timing.renew_deadline,
            listeners=event_listeners,
        )

    def _check_fork(self) -> None:
        """Reset this object if it was copied into a forked child and not reset yet."""
        if self._forks != _identity.forks:
            with _FORK_GUARD:
                if self._forks != _identity.forks:
                    self._uuid = new_owner_id()
                    self._pid = local_pid()
                    self._monitor = self._monitor.for_owner(self._uuid)
                    self._after_fork()
                    self._forks = _identity.forks

    def _after_fork(self) -> None:
        """Forget, in a forked child, every holding copied from the parent (a subclass's
        state; :attr:`uuid` is new already). No store call, and no lock of the parent's
        taken: another thread may have held it at the fork."""

    @property
    def key(self) -> str:
        return self._key

    @property
    def backend(self) -> BackendT:
        return self._backend

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def ttl(self) -> float:
        return self._timing.ttl

    @property
    def renew_deadline(self) -> float:
        return self._timing.renew_deadline

    @property
    def uuid(self) -> str:
        """This object's owner id in the store (a new one in a forked child)."""
        self._check_fork()
        return self._uuid

    @property
    def host(self) -> str:
        return self._host

    @property
    def pid(self) -> int:
        self._check_fork()
        return self._pid
