"""Reading the records of the following electors of one store together (the sync driver).

A follower's poll is a try to acquire (``compare_and_set``). On a store that
reads many keys in one call (:func:`~mongoelector._common.batches.reads_in_batches`:
``Capability.GET_MANY``), the started electors of one backend object and clock
belong to its :class:`ReadGroup`. When one of them is due to poll as a
follower, the group asks the pure
:func:`~mongoelector.core.batching.renew_together` which other followers
(waiting for their own time, due within half their ``follower_period``) join
it, and reads all their records with one ``get_many`` call, then the store's
time (``server_time``). Each elector's machine decides on its own record
(:meth:`~mongoelector.core.elector_machine.ElectorMachine.on_observe_result`):
a record that is absent, released, expired or its own is tried at once with
its own ``compare_and_set``, in the same poll; a live leader is noted as a
refused try would report it. Acquiring is still only ever done by
``compare_and_set``: a read that is stale by the time it is used can only put
a try off by one poll.

A follower that nobody joins polls on its own, as before (one try, no read).
Backends without the capability are not grouped.
"""

from __future__ import annotations

import logging
from typing import Protocol

from mongoelector._common.batches import Observed, observed_of
from mongoelector._common.outcomes import Failure, failure_of
from mongoelector._sync.groups import MemberGroup, Registry
from mongoelector.backends.protocol import GetManyBackend, StorageBackend
from mongoelector.clock import Clock
from mongoelector.core import batching
from mongoelector.core.batching import RenewTiming
from mongoelector.core.events import Observe

__all__ = ["ReadGroup", "Reader", "enter", "groups"]

logger = logging.getLogger("mongoelector.elector")


class _Store(StorageBackend, GetManyBackend, Protocol):
    """A store that reads many keys in one call."""


class Reader(Protocol):
    """A member of a :class:`ReadGroup` (a started elector's loop), in the order asked.

    The trigger is queued by :meth:`_enqueue`, joiners (:meth:`_may_join_read` said
    they might) by :meth:`_join`; a trigger nobody joined polls on its own
    (:meth:`_poll_alone`). On the worker :meth:`_read_step` begins each poll (the
    ``Observe`` to read, or ``None``: it handled itself), then each gets its read
    (:meth:`_observed`), or :meth:`_finish` if the batch crashed first.
    """

    @property
    def key(self) -> str: ...

    def read_timing(self, now: float | None = None) -> RenewTiming | None: ...

    def _may_join_read(self, now: float) -> bool: ...

    def _enqueue(self) -> int | None: ...

    def _join(self) -> int | None: ...

    def _poll_alone(self, ticket: int) -> None: ...

    def _read_step(self, ticket: int) -> Observe | None: ...

    def _observed(self, started_at: float, outcome: Observed | Failure) -> None: ...

    def _finish(self) -> None: ...


class ReadGroup(MemberGroup[Reader, _Store]):
    """The started electors of one backend object on one clock, whose follower polls read
    their records together. Members come and go with :func:`enter` and :meth:`leave`."""

    def due(self, trigger: Reader) -> None:
        """``trigger`` must poll now as a follower: queue it with the followers that join it
        (no I/O). Alone, it polls as before (its own try, no read)."""
        ticket = trigger._enqueue()
        if ticket is None:
            return  # stopped meanwhile: it has ended
        members = self._members_now()
        now = self.clock.monotonic()
        timing = trigger.read_timing(now)
        calls: list[list[Reader]] = [[]]
        if timing is not None:
            candidates = []
            for member in members:
                if member is trigger or not member._may_join_read(now):
                    continue
                joining = member.read_timing(now)
                if joining is not None:
                    candidates.append((member, joining))
            calls = batching.renew_together(now, timing, candidates)
        batches = self._batches(trigger, ticket, calls)
        if len(batches) == 1 and len(batches[0]) == 1:
            trigger._poll_alone(ticket)  # nobody joined: its own try, as ever
            return
        self._submit(batches)

    def _run(self, batch: list[tuple[Reader, int]]) -> None:
        """On a worker: one read of the records of ``batch``'s followers still to read."""
        readers = [reader for reader, ticket in batch if reader._read_step(ticket) is not None]
        fed = 0
        try:
            if not readers:
                return
            started_at = self.clock.monotonic()
            outcomes = self._read([reader.key for reader in readers])
            for reader, outcome in zip(readers, outcomes, strict=True):
                fed += 1
                reader._observed(started_at, outcome)
        except BaseException:
            logger.exception("a batch of %d follower reads crashed", len(readers))
            for reader in readers[fed:]:
                reader._finish()

    def _read(self, keys: list[str]) -> list[Observed | Failure]:
        """One ``get`` (one key) or ``get_many``, then the store's time after it."""
        try:
            if len(keys) == 1:
                records: object = {keys[0]: self.backend.get(keys[0])}
            else:
                records = self.backend.get_many(keys)
            server_now = self.backend.server_time()
        except Exception as error:
            return [failure_of(self.backend, error)] * len(keys)
        return observed_of(self.backend, keys, records, server_now)

    def __repr__(self) -> str:
        return f"ReadGroup({self.backend!r}, members={len(self)})"


def enter(reader: Reader, backend: StorageBackend, clock: Clock) -> ReadGroup:
    """Add ``reader`` to the group of ``backend`` (the object) and ``clock``; that group."""
    return _registry.enter(
        reader,
        backend,
        clock,
        lambda key: ReadGroup(_registry, key, backend, clock),  # type: ignore[arg-type]
    )


_registry: Registry[ReadGroup] = Registry()


def groups() -> list[ReadGroup]:
    """The groups with members now (for tests and benchmarks)."""
    return _registry.snapshot()
