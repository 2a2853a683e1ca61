"""``SQLiteBackend.keys()`` lists what a file holds (for ``mongoelector status --sqlite``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mongoelector.backends.protocol import LeaseRequest, MemberRecord
from mongoelector.backends.sqlite import SQLiteBackend
from mongoelector.testing import FakeClock


@pytest.fixture
def backend(tmp_path: Path, clock: FakeClock) -> Iterator[SQLiteBackend]:
    with SQLiteBackend(tmp_path / "leases.sqlite", clock=clock, boot_id="boot-1") as opened:
        yield opened


def test_keys_lists_every_leased_key_and_every_key_with_live_reports(
    backend: SQLiteBackend, clock: FakeClock
) -> None:
    assert backend.keys() == []
    backend.compare_and_set(LeaseRequest(key="zeta", owner="alice", ttl=5))
    backend.compare_and_set(LeaseRequest(key="alpha", owner="bob", ttl=5))
    backend.release("alpha", "bob")
    backend.report_member(
        MemberRecord(key="reports-only", uuid="u", host="h", pid=1, is_leader=False,
                     elector_running=True, ttl=10)
    )  # fmt: skip

    assert backend.keys() == ["alpha", "reports-only", "zeta"]  # released leases stay listed

    clock.advance(11)  # the report lapses; the expired lease record stays
    assert backend.keys() == ["alpha", "zeta"]
