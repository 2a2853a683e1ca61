"""Renewing the auto-renewed locks of one store together (the sync driver).

Every :class:`~mongoelector._sync.renewer.Renewer` whose backend renews in
batches (:func:`~mongoelector._common.batches.renews_in_batches`) belongs to
the :class:`RenewGroup` of its backend object and clock, and so does every
started :class:`~mongoelector.LeaderElector` of such a backend: while it
leads, its next poll is a renewal of its lease, made in the same batches. When one of them is
due to renew, the group asks the pure
:func:`~mongoelector.core.batching.renew_together` which of the others
(waiting for their own time) join it, moves them out of their wait, and
hands the lot to one worker, which makes one ``renew_many`` call (one plain
``renew`` when nobody joined) and gives each holding its own outcome, exactly
as a single renewal's. Everything else stays each renewer's own: its renew
deadline (armed when it joins, kept by the timer thread however long the
call takes), its listeners and ``on_lost`` (on a callback thread), its
``stop()``.

Backends without the capability are not grouped: their renewers call
``renew`` key by key, as before.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from typing import Protocol

from mongoelector._common.batches import (
    Outcome,
    Timings,
    clock_key,
    failed_batch,
    outcomes_of,
    plan_calls,
)
from mongoelector._sync import scheduler
from mongoelector.backends.protocol import RenewItem, RenewManyBackend
from mongoelector.clock import Clock
from mongoelector.core.events import Renew

__all__ = ["RenewGroup", "Renewer", "enter", "groups"]


class Renewer(Protocol):
    """A member of a :class:`RenewGroup`: what the group asks and tells it, in this order.

    A lock's :class:`~mongoelector._sync.renewer.Renewer`, or a started elector's
    loop while it leads (:mod:`mongoelector._sync.elector`). The trigger is queued
    by :meth:`_enqueue`, joiners (:meth:`_may_join` said they might) by
    :meth:`_join`, each arming its own renew deadline; on the worker
    :meth:`_batch_step` gives the renewal to send (``None``: it handled itself),
    :meth:`_may_go_on` is asked once more, then the call's outcome goes to
    :meth:`_batch_renewed` (or :meth:`_finish` if the batch crashed first).
    """

    @property
    def _rules(self) -> Timings: ...

    def _may_join(self, now: float) -> bool: ...

    def _enqueue(self) -> int | None: ...

    def _join(self) -> int | None: ...

    def _batch_step(self, ticket: int) -> Renew | None: ...

    def _may_go_on(self) -> bool: ...

    def _renew(self, step: Renew) -> Outcome: ...

    def _renew_item(self, step: Renew) -> RenewItem: ...

    def _batch_renewed(
        self, step: Renew, started_at: float, outcome: Outcome, answered_at: float
    ) -> None: ...

    def _finish(self) -> None: ...


logger = logging.getLogger("mongoelector.lock")

_registry_guard = threading.Lock()  # the registry and every group's members
_groups: dict[tuple[int, object], RenewGroup] = {}


def _after_fork_in_child() -> None:
    global _registry_guard  # noqa: PLW0603 - a fresh lock for the child
    _registry_guard = threading.Lock()
    _groups.clear()  # the parent's renewers do not run in the child


os.register_at_fork(after_in_child=_after_fork_in_child)


class RenewGroup:
    """The renewers of one backend object on one clock, which renew together.

    Members come and go with :func:`enter` and :meth:`leave`; the group leaves
    the registry with its last member.
    """

    def __init__(self, key: tuple[int, object], backend: RenewManyBackend, clock: Clock) -> None:
        self._key = key
        self.backend = backend
        self.clock = clock
        self._members: dict[Renewer, None] = {}  # insertion-ordered: ties go to the older

    def __len__(self) -> int:
        with _registry_guard:
            return len(self._members)

    def leave(self, renewer: Renewer) -> None:
        """``renewer`` ended: it is no longer a candidate of any batch."""
        with _registry_guard:
            self._members.pop(renewer, None)
            if not self._members and _groups.get(self._key) is self:
                del _groups[self._key]

    def due(self, trigger: Renewer) -> None:
        """``trigger`` must renew now: queue it with the members that join it (no I/O).

        Runs on the timer thread or a worker, never under a renewer's or lock's mutex.
        When more join than one call takes, the further calls follow on the same
        worker, one after the other (each holding's renew deadline is armed as it
        joins, so a slow store loses none of them later than its deadline).
        """
        ticket = trigger._enqueue()
        if ticket is None:
            return  # stopped meanwhile: it has ended
        with _registry_guard:
            members = list(self._members)
        calls = plan_calls(trigger, members, self.clock.monotonic())
        batches: list[list[tuple[Renewer, int]]] = []
        for number, call in enumerate(calls):
            batch = [(trigger, ticket)] if number == 0 else []
            for member in call:
                joined = member._join()
                if joined is not None:
                    batch.append((member, joined))
            if batch:
                batches.append(batch)
        # One worker makes the calls one after the other: they go to the same store, and
        # the process keeps its few threads (calls queued side by side would make the
        # scheduler add a worker for each while they wait).
        scheduler.submit(functools.partial(self._run_all, batches))

    def _run_all(self, batches: list[list[tuple[Renewer, int]]]) -> None:
        for batch in batches:
            self._run(batch)

    def _run(self, batch: list[tuple[Renewer, int]]) -> None:
        """On a worker: one store call for the holdings of ``batch`` still to renew."""
        steps: list[tuple[Renewer, Renew]] = []
        for renewer, ticket in batch:
            step = renewer._batch_step(ticket)
            if step is not None:
                steps.append((renewer, step))
        fed = 0
        try:
            steps = [(renewer, step) for renewer, step in steps if renewer._may_go_on()]
            if not steps:
                return
            started_at = self.clock.monotonic()
            outcomes = self._renew(steps)
            answered_at = self.clock.monotonic()  # each holding learns the call's round trip
            for (renewer, step), outcome in zip(steps, outcomes, strict=True):
                fed += 1
                renewer._batch_renewed(step, started_at, outcome, answered_at)
        except BaseException:
            logger.exception(
                "a batch of %d renewals crashed; those holdings will lapse", len(steps)
            )
            for renewer, _ in steps[fed:]:
                renewer._finish()

    def _renew(self, steps: list[tuple[Renewer, Renew]]) -> list[Outcome]:
        if len(steps) == 1:  # nobody joined: the store's own one-key call
            renewer, step = steps[0]
            return [renewer._renew(step)]
        items: list[RenewItem] = [renewer._renew_item(step) for renewer, step in steps]
        try:
            records = self.backend.renew_many(items)
        except Exception as error:
            return failed_batch(self.backend, len(items), error)
        return outcomes_of(self.backend, len(items), records)

    def __repr__(self) -> str:
        return f"RenewGroup({self.backend!r}, members={len(self)})"


def enter(renewer: Renewer, backend: RenewManyBackend, clock: Clock) -> RenewGroup:
    """Add ``renewer`` to the group of ``backend`` (the object) and ``clock``; that group."""
    key = (id(backend), clock_key(clock))
    with _registry_guard:
        group = _groups.get(key)
        if group is None or group.backend is not backend:
            group = _groups[key] = RenewGroup(key, backend, clock)
        group._members[renewer] = None
        return group


def groups() -> list[RenewGroup]:
    """The groups with members now (for tests and benchmarks)."""
    with _registry_guard:
        return list(_groups.values())
