"""LeaderElector.holding: the current term's holding, while it is trusted."""

from __future__ import annotations

from mongoelector import LeaderElector
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock


def test_holding_is_the_current_term_until_its_renew_deadline() -> None:
    clock = FakeClock()
    elector = LeaderElector("job", MemoryBackend(clock=clock), ttl=15, clock=clock)
    assert elector.holding is None

    elector.poll()

    holding = elector.holding
    assert holding is not None
    assert (holding.token, holding.valid_until) == (elector.token, 10.0)
    clock.advance(10.0)  # not polled: the deadline passes
    assert elector.holding is None
    assert not elector.is_leader
