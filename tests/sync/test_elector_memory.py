"""What a started elector and a held lock keep in memory.

Issue 14 asks for 10,000 auto-renewed locks and 1,000 started electors in one
process within 30 MB, so neither keeps an object it can do without: no
instance dict (``__slots__`` through the class hierarchy), no condition
variable per elector unless someone waits for it (``wait_idle()``,
``stop()``), no closure per scheduled wake-up, and no kept request with an
unused acquisition id. Memory is counted in bytes allocated (tracemalloc),
never in time.
"""

from __future__ import annotations

import gc
import threading
import tracemalloc
from typing import Any

import pytest

from mongoelector import LeaderElector, Lock
from mongoelector._sync import elector as elector_module
from mongoelector.aio import AsyncLeaderElector, AsyncLock
from mongoelector.backends import MemoryBackend
from mongoelector.core import elector_machine
from mongoelector.core.elector_machine import ElectorMachine
from mongoelector.testing import FakeClock

GUARD = 30.0  # real seconds; a hang guard, not a timing assertion
TTL = 15.0
ELECTORS = 200

#: Bytes a started elector (leading its own key, with its record in a MemoryBackend) may
#: keep. Measured 3,800 on Python 3.11 (7,200 before the electors' slots, lazy condition
#: and lazy sets); a Condition per elector alone adds about 1,000.
ELECTOR_BYTES = 4_500


def started(
    clock: FakeClock, backend: MemoryBackend, prefix: str, count: int
) -> list[LeaderElector]:
    """``count`` started electors, each leading its own key, after a few polls."""
    electors = [
        LeaderElector(f"{prefix}-{i}", backend, ttl=TTL, clock=clock, report_status=False)
        for i in range(count)
    ]
    for elector in electors:
        elector.start()
    for _ in range(4):
        clock.advance(1.0)
        for elector in electors:
            assert elector.wait_idle(GUARD)
    return electors


def bytes_per_elector(clock: FakeClock, backend: MemoryBackend) -> float:
    """Bytes allocated, and still held, per elector for ``ELECTORS`` started electors."""
    warm = started(clock, backend, "warm", 5)  # imports, caches, the scheduler's threads
    gc.collect()
    tracemalloc.start()
    try:
        electors = started(clock, backend, "tenant", ELECTORS)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert all(elector.is_leader for elector in electors)
    for elector in [*warm, *electors]:
        elector.stop()
    return held / ELECTORS


class TestBytesPerStartedElector:
    def test_a_started_elector_keeps_at_most_4500_bytes(
        self, clock: FakeClock, backend: MemoryBackend, not_traced: None
    ) -> None:
        assert 0 < bytes_per_elector(clock, backend) <= ELECTOR_BYTES

    def test_the_check_catches_a_condition_variable_per_elector(
        self,
        clock: FakeClock,
        backend: MemoryBackend,
        not_traced: None,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # The mutation: each elector makes its condition variable up front, as it used to.
        monkeypatch.setattr(elector_module, "Guard", lambda: threading.Condition(threading.Lock()))
        assert bytes_per_elector(clock, backend) > ELECTOR_BYTES

    def test_an_elector_nobody_waits_for_has_no_condition_variable(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        (elector,) = started(clock, backend, "alone", 1)
        assert not elector._state.has_condition
        elector.stop()
        assert not elector._state.has_condition


def empty_sets_shared(elector: LeaderElector) -> bool:
    machine = elector._machine
    return machine._sent is elector_machine._NO_IDS and (
        machine._relinquished is elector_machine._NO_TOKENS
    )


class TestALeaderKeepsNoEmptySets:
    def test_a_leading_machine_shares_the_empty_sets(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        (elector,) = started(clock, backend, "alone", 1)
        assert elector.is_leader and empty_sets_shared(elector)
        elector.release()  # its token is relinquished: a set of its own now
        assert not empty_sets_shared(elector)
        assert elector.token is None
        elector.stop()

    def test_the_check_catches_a_set_kept_after_a_term_began(
        self, clock: FakeClock, backend: MemoryBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The mutation: a term's start empties the sent ids in place, as it used to.
        take = ElectorMachine._take

        def keeping(machine: ElectorMachine, *args: Any) -> Any:
            step = take(machine, *args)
            machine._sent = set()
            return step

        monkeypatch.setattr(ElectorMachine, "_take", keeping)
        (elector,) = started(clock, backend, "alone", 1)
        assert elector.is_leader and not empty_sets_shared(elector)
        elector.stop()


def has_instance_dict(thing: object) -> bool:
    return hasattr(thing, "__dict__")


class TestNoInstanceDict:
    @pytest.mark.parametrize("kind", [Lock, LeaderElector, AsyncLock, AsyncLeaderElector])
    def test_locks_and_electors_keep_their_state_in_slots(
        self, backend: MemoryBackend, kind: type[object]
    ) -> None:
        made = kind("key", backend)  # type: ignore[call-arg]
        assert not has_instance_dict(made)

    def test_the_check_catches_a_class_without_slots(self, backend: MemoryBackend) -> None:
        # The mutation: a class in the hierarchy without __slots__ (a subclass here).
        class Roomy(Lock):
            pass

        assert has_instance_dict(Roomy("key", backend))
