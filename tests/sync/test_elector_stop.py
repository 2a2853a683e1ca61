"""Stopping right after an acquire of unknown outcome still frees the lease, by token."""

from __future__ import annotations

from mongoelector import LeaderElector
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock
from tests.fakes import FlakyBackend


def test_stop_after_an_ambiguous_acquire_reads_the_record_and_releases_it(
    clock: FakeClock,
) -> None:
    inner = MemoryBackend(clock)
    flaky = FlakyBackend(inner)
    node = LeaderElector("svc", flaky, clock=clock, report_status=False)
    flaky.mode = "lost-reply"
    node.poll()  # the acquire applied, but its reply was lost
    flaky.mode = "ok"
    record = inner.get("svc")
    assert not node.is_leader and record is not None and record.owner == node.uuid
    node.stop()
    record = inner.get("svc")
    assert record is not None and record.owner is None
    assert flaky.calls["get"] == 1 and flaky.calls["release"] == 1
