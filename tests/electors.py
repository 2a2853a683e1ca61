"""A ready-made elector for tests that watch what electors report (events, logs)."""

from __future__ import annotations

from mongoelector import LeaderElector
from mongoelector.monitoring import EventListener
from mongoelector.testing import FakeClock


def elector(backend: object, clock: FakeClock, *listeners: EventListener) -> LeaderElector:
    """An elector of ``"jobs"``: ttl 15 s, renew deadline 10 s, retry period 2 s, no status
    reports, telling ``listeners``."""
    return LeaderElector(
        "jobs",
        backend,  # type: ignore[arg-type]
        ttl=15,
        renew_deadline=10,
        retry_period=2,
        clock=clock,
        report_status=False,
        event_listeners=listeners,
    )
