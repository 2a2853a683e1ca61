"""Who takes part in a key's leases: the identity and settings every lock and elector has."""

from __future__ import annotations

from typing import Generic, TypeVar

from mongoelector._identity import local_host, local_pid, new_owner_id
from mongoelector._validation import check_key
from mongoelector.clock import Clock, SystemClock
from mongoelector.timing import LeaseTiming

__all__ = ["Participant"]

BackendT = TypeVar("BackendT")


class Participant(Generic[BackendT]):
    """A key, the store it lives in, the clock read, the lease timing, and a fresh owner id."""

    def __init__(
        self, key: str, backend: BackendT, *, timing: LeaseTiming, clock: Clock | None
    ) -> None:
        self._key = check_key(key)
        self._backend = backend
        self._timing = timing
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._uuid = new_owner_id()
        self._host = local_host()
        self._pid = local_pid()

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
