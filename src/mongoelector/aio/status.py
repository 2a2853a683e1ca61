"""Sending the status reports of the started electors of one store together (asyncio).

The asyncio twin of :mod:`mongoelector._sync.status`, with the same decisions:
on a store that declares ``Capability.REPORT_MANY``
(:func:`~mongoelector._common.batches.reports_in_batches`), the started
electors of one event loop, store and clock belong to its
:class:`AsyncStatusGroup`. When one of them has a report due (the trigger),
the reports of the members due within half their status interval join it
(:func:`~mongoelector._common.batches.claim_reports`, shared with the sync
driver: :func:`~mongoelector.core.batching.renew_together` on each member's
``status_timing``), and one ``report_members`` call sends them, in a task of
its own: the poll that found the report due does not wait for it, so a call
that hangs delays no renewal and no follower's poll. A member whose report is
queued or in flight is neither a trigger nor a joiner until it is settled;
each member's outcome is its own (a failed call is each member's failed report,
retried after its next poll).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from mongoelector._common.batches import Reporter, claim_reports
from mongoelector.aio.groups import MemberGroup, Registry
from mongoelector.backends.async_protocol import AsyncMemberStatusBackend, AsyncReportManyBackend
from mongoelector.clock import Clock
from mongoelector.errors import AmbiguousOutcome, BackendError, BackendUnavailable

__all__ = ["AsyncStatusGroup", "Reporter", "enter", "groups"]

logger = logging.getLogger("mongoelector.elector")


class _Store(AsyncMemberStatusBackend, AsyncReportManyBackend, Protocol):
    """A store that stores many status reports in one call."""


class AsyncStatusGroup(MemberGroup[Reporter, _Store]):
    """The started electors of one store and clock on one event loop, whose status reports
    go out together. Members come and go with :func:`enter` and :meth:`leave`."""

    def due(self, trigger: Reporter) -> None:
        """``trigger`` has a report due now: start sending it with the reports that join it,
        in a task of its own. Nothing if its report is queued or in flight already."""
        for batch in claim_reports(trigger, list(self._members), self.clock.monotonic()):
            self._start(self._report(batch), name="mongoelector-status-reports")

    async def _report(self, batch: list[Reporter]) -> None:
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
                await self.backend.report_member(begun[0][1])
            else:
                await self.backend.report_members([record for _, record, _ in begun])
        except BackendError as caught:
            error = caught
        except Exception as caught:  # a backend bug: each report failed, the loops go on
            logger.exception("a batch of %d status reports raised", len(begun))
            error = BackendUnavailable(f"report_members raised {caught!r}", original=caught)
        except BaseException:  # cancelled (the event loop closes): each outcome unknown
            unknown = AmbiguousOutcome("the status reports were cancelled")
            for member, record, at in begun:
                member._status_end(record, at, unknown)
            raise
        for member, record, at in begun:
            member._status_end(record, at, error)

    def __repr__(self) -> str:
        return f"AsyncStatusGroup({self.backend!r}, members={len(self)})"


_registry: Registry[AsyncStatusGroup] = Registry()


def enter(reporter: Reporter, backend: object, clock: Clock) -> AsyncStatusGroup:
    """Add ``reporter`` to the group of the running loop, ``backend``'s store and ``clock``."""
    return _registry.enter(
        reporter,
        backend,
        clock,
        lambda key, loop: AsyncStatusGroup(_registry, key, backend, clock, loop),  # type: ignore[arg-type]
    )


def groups(loop: asyncio.AbstractEventLoop | None = None) -> list[AsyncStatusGroup]:
    """The groups with members now, of ``loop`` (every live loop's when ``None``)."""
    return _registry.snapshot(loop)
