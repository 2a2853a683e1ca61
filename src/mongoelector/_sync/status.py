"""Sending the status reports of the started electors of one store together (the sync driver).

A started elector with ``report_status`` stores a status report
(``report_member``) whenever one falls due after a poll (every
``status_interval``, ``ttl / 3``, and whenever it starts or stops leading). On
a store that stores many reports in one call
(:func:`~mongoelector._common.batches.reports_in_batches`:
``Capability.REPORT_MANY``), the started electors of one backend object and
clock belong to its :class:`StatusGroup`. When one of them has a report due
(the *trigger*), the group asks
:func:`~mongoelector._common.batches.claim_reports` (shared with the asyncio
driver: the pure :func:`~mongoelector.core.batching.renew_together` on each
member's
:meth:`~mongoelector.core.elector_machine.ElectorMachine.status_timing`) which
other members' reports fall due within half their status interval, and
sends all those reports with one ``report_members`` call, on a worker of the
process's scheduler (no thread of its own). Reporting early only refreshes a
report, so once lined up the members of one interval make one call per interval.

Status is informational: the poll that found a report due does not wait for
it (a batch that hangs delays no renewal and no follower's poll; the
scheduler adds workers while one is stuck), and a member whose report is
queued or in flight is neither a trigger nor a joiner again until it is
settled. Each member's outcome is its own: a failed call is each member's
failed report (logged, and retried at its next poll).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from mongoelector._common import batches
from mongoelector._common.batches import claim_reports
from mongoelector._sync.groups import Joiner, Key, MemberGroup, Registry
from mongoelector.backends.protocol import MemberStatusBackend, ReportManyBackend
from mongoelector.clock import Clock
from mongoelector.errors import AmbiguousOutcome, BackendError, BackendUnavailable

__all__ = ["Reporter", "StatusGroup", "enter", "groups"]

logger = logging.getLogger("mongoelector.elector")


class _Store(MemberStatusBackend, ReportManyBackend, Protocol):
    """A store that stores many status reports in one call."""


class Reporter(Joiner, batches.Reporter, Protocol):
    """A member of a :class:`StatusGroup`: a started elector's loop, as both drivers' status
    groups ask it (:class:`mongoelector._common.batches.Reporter`), also a member of its
    renew or read group here (a :class:`~mongoelector._sync.groups.Joiner`)."""


class StatusGroup(MemberGroup[Reporter, _Store]):
    """The started electors of one backend object on one clock, whose status reports go
    out together. Members come and go with :func:`enter` and :meth:`leave`."""

    def __init__(self, registry: Registry[Any], key: Key, backend: _Store, clock: Clock) -> None:
        super().__init__(registry, key, backend, clock)
        # One trigger at a time: triggers come from the workers ending polls, and two that
        # chose at once would each leave the other out of its batch (two calls, not one).
        self._choosing = threading.Lock()

    def due(self, trigger: Reporter) -> None:
        """``trigger`` has a report due now: queue it with the reports that join it, for a
        worker (no I/O here). Nothing if its report is queued or in flight already (say a
        batch chosen a moment ago took it in)."""
        with self._choosing:
            batches = self._choose(trigger)
        if batches:
            self._submit(batches)

    def _choose(self, trigger: Reporter) -> list[list[tuple[Reporter, int]]]:
        chosen = claim_reports(trigger, self._members_now(), self.clock.monotonic())
        return [[(member, 0) for member in batch] for batch in chosen]  # (no tickets here)

    def _run(self, batch: list[tuple[Reporter, int]]) -> None:
        """On a worker: the reports of ``batch`` (see :meth:`_report`)."""
        self._report([member for member, _ in batch])

    def _report(self, batch: list[Reporter]) -> None:
        """One ``report_members`` call (``report_member`` for one report) with the reports of
        ``batch`` still to send; each member settles its own."""
        begun = []
        for member in batch:
            report = member._status_begin()
            if report is not None:
                begun.append((member, *report))
        if not begun:
            return
        error: BackendError | None = None
        try:
            if len(begun) == 1:
                self.backend.report_member(begun[0][1])
            else:
                self.backend.report_members([record for _, record, _ in begun])
        except BackendError as caught:
            error = caught
        except Exception as caught:  # a backend bug: each report failed, the loops go on
            logger.exception("a batch of %d status reports raised", len(begun))
            error = BackendUnavailable(f"report_members raised {caught!r}", original=caught)
        except BaseException:  # interrupted (SystemExit, KeyboardInterrupt): each unknown
            unknown = AmbiguousOutcome("the status reports were cancelled")
            for member, record, at in begun:
                member._status_end(record, at, unknown)
            raise
        for member, record, at in begun:
            member._status_end(record, at, error)

    def __repr__(self) -> str:
        return f"StatusGroup({self.backend!r}, members={len(self)})"


def enter(reporter: Reporter, backend: object, clock: Clock) -> StatusGroup:
    """Add ``reporter`` to the group of ``backend`` (the object) and ``clock``; that group."""
    return _registry.enter(
        reporter,
        backend,
        clock,
        lambda key: StatusGroup(_registry, key, backend, clock),  # type: ignore[arg-type]
    )


_registry: Registry[StatusGroup] = Registry()


def groups() -> list[StatusGroup]:
    """The groups with members now (for tests and benchmarks)."""
    return _registry.snapshot()
