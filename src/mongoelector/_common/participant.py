"""Who takes part in a key's leases: the identity and settings every lock and elector has."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from mongoelector._common.monitor import Monitor
from mongoelector._identity import local_host, local_pid, new_owner_id
from mongoelector._listeners import EventListener
from mongoelector._validation import check_key
from mongoelector.clock import Clock, SystemClock
from mongoelector.timing import LeaseTiming

__all__ = ["Participant"]

BackendT = TypeVar("BackendT")


class Participant(Generic[BackendT]):
    """A key, the store it lives in, the clock read, the lease timing, and a fresh owner id.

    Its events (a ``kind`` of :mod:`mongoelector.monitoring` event source) go
    to the log and to ``event_listeners`` through :attr:`_monitor`.
    """

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
        self._monitor = Monitor(
            kind=kind,
            key=self._key,
            owner=self._uuid,
            renew_deadline=timing.renew_deadline,
            listeners=event_listeners,
        )

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
        """This object's owner id in the store."""
        return self._uuid

    @property
    def host(self) -> str:
        return self._host

    @property
    def pid(self) -> int:
        return self._pid
