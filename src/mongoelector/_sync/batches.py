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

import logging
from typing import Protocol

from mongoelector._common.batches import (
    Outcome,
    Timings,
    failed_batch,
    outcomes_of,
    plan_calls,
)
from mongoelector._sync.groups import MemberGroup, Registry
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


class RenewGroup(MemberGroup[Renewer, RenewManyBackend]):
    """The renewers of one backend object on one clock, which renew together.

    Members come and go with :func:`enter` and :meth:`leave`; the group leaves
    the registry with its last member.
    """

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
        calls = plan_calls(trigger, self._members_now(), self.clock.monotonic())
        self._submit(self._batches(trigger, ticket, calls))  # one worker, one call after another

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
    return _registry.enter(
        renewer, backend, clock, lambda key: RenewGroup(_registry, key, backend, clock)
    )


_registry: Registry[RenewGroup] = Registry()


def groups() -> list[RenewGroup]:
    """The groups with members now (for tests and benchmarks)."""
    return _registry.snapshot()
