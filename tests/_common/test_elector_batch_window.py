"""When a started elector's loop is due soon enough to join a batch, as both drivers ask it.

A follower joins a batch of reads within half its ``follower_period``, a leader a
batch of renewals within half its ``retry_period``; a loop that does not wait
joins nothing. One rule (``ElectorBase._due_to_join``) serves both drivers.
"""

from __future__ import annotations

from typing import Any

import pytest

from mongoelector import LeaderElector
from mongoelector._common.elector_base import ElectorBase
from mongoelector.aio import AsyncLeaderElector
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock


@pytest.fixture(params=["sync", "asyncio"])
def elector(request: pytest.FixtureRequest) -> ElectorBase[Any]:
    """An elector (not started) with retry period 1 s and follower poll 4 s."""
    clock = FakeClock()
    kind = LeaderElector if request.param == "sync" else AsyncLeaderElector
    return kind(
        "jobs",
        MemoryBackend(clock),
        ttl=15,
        renew_deadline=10,
        retry_period=1,
        follower_poll=4,
        clock=clock,
        report_status=False,
    )


def test_a_follower_joins_a_read_within_half_its_follower_period(elector: ElectorBase[Any]) -> None:
    assert elector._due_to_join(102.0, 100.0, read=True)
    assert not elector._due_to_join(102.01, 100.0, read=True)


def test_a_leader_joins_a_renewal_within_half_its_retry_period(elector: ElectorBase[Any]) -> None:
    assert elector._due_to_join(100.5, 100.0, read=False)
    assert not elector._due_to_join(100.51, 100.0, read=False)


def test_a_loop_that_does_not_wait_joins_nothing(elector: ElectorBase[Any]) -> None:
    assert not elector._due_to_join(None, 100.0, read=True)
    assert not elector._due_to_join(None, 100.0, read=False)
