"""A clock driven by hand runs its scheduling in the caller's thread, step by step, in order.

The simulation drives each node's clock this way: nothing of a driven clock
runs on the scheduler's threads, and ``run_due`` runs what is due (entries,
then the work they queued, then the callbacks) and says when it is next needed.
Every assertion counts calls or compares orders; none measures time.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from mongoelector import Lock
from mongoelector._sync import manual, scheduler
from mongoelector.backends import LeaseRecord, MemoryBackend
from mongoelector.clock import SystemClock
from mongoelector.testing import FakeClock

TTL = 15.0  # renew deadline 10 s, renewals every 2 s


class CountingBackend(MemoryBackend):
    """A MemoryBackend that counts renew calls and remembers the threads that made them."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.renews: Counter[str] = Counter()
        self.threads: set[int] = set()

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        self.renews[key] += 1
        self.threads.add(threading.get_ident())
        return super().renew(key, owner, token, ttl)


@pytest.fixture
def driven_clock() -> Iterator[FakeClock]:
    clock = FakeClock()
    manual.drive(clock)
    yield clock
    manual.forget(clock)


def run_order(clock: FakeClock) -> list[str]:
    """What ``run_due`` ran for an entry that queues work and a callback (which queues work)."""
    order: list[str] = []

    def entry() -> None:
        order.append("entry")
        scheduler.submit_callback(callback)
        scheduler.submit(lambda: order.append("work"))

    def callback() -> None:
        order.append("callback")
        scheduler.submit(lambda: order.append("work of the callback"))

    scheduler.call_at(clock, clock.monotonic() + 1, entry)
    clock.advance(1)
    manual.run_due(clock)
    return order


def test_run_due_runs_entries_then_their_work_then_the_callbacks(driven_clock: FakeClock) -> None:
    assert run_order(driven_clock) == ["entry", "work", "callback", "work of the callback"]
    assert manual.queued(driven_clock) == (0, 0)
    assert manual.next_due(driven_clock) == math.inf


def test_mutation_without_the_hook_work_goes_to_the_threads(
    driven_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check below (what a node submits is queued for it) fails without the hook."""
    monkeypatch.setattr(scheduler, "_divert", None)
    ran = threading.Event()
    with manual.acting_for(driven_clock):
        scheduler.submit(ran.set)
    assert manual.queued(driven_clock) == (0, 0)
    assert ran.wait(30)  # a worker thread ran it (30 real seconds: a hang guard only)


def test_nothing_runs_before_its_time_or_without_run_due(driven_clock: FakeClock) -> None:
    ran: list[str] = []
    scheduler.call_at(driven_clock, driven_clock.monotonic() + 5, lambda: ran.append("due"))

    assert manual.next_due(driven_clock) == driven_clock.monotonic() + 5
    assert manual.run_due(driven_clock) == driven_clock.monotonic() + 5
    assert ran == []
    driven_clock.advance(5)
    assert ran == []  # no timer thread: only run_due runs it
    assert manual.run_due(driven_clock) == math.inf
    assert ran == ["due"]


def test_work_submitted_for_a_node_waits_for_run_due(driven_clock: FakeClock) -> None:
    ran: list[str] = []
    with manual.acting_for(driven_clock):
        scheduler.submit(lambda: ran.append("work"))
        scheduler.submit_callback(lambda: ran.append("callback"))
    assert manual.queued(driven_clock) == (1, 1)
    assert manual.next_due(driven_clock) == -math.inf
    manual.run_due(driven_clock)
    assert ran == ["work", "callback"]


def test_an_auto_renewed_lock_renews_and_reports_its_loss_in_the_callers_thread(
    driven_clock: FakeClock,
) -> None:
    store = CountingBackend(driven_clock)
    lost: list[int] = []
    lock = Lock(
        "job",
        store,
        ttl=TTL,
        clock=driven_clock,
        auto_renew=True,
        on_lost=lambda: lost.append(threading.get_ident()),
    )
    with manual.acting_for(driven_clock):
        assert lock.acquire(blocking=False)
    for _ in range(5):
        driven_clock.advance(manual.next_due(driven_clock) - driven_clock.monotonic())
        manual.run_due(driven_clock)
    assert store.renews["job"] == 5
    assert store.threads == {threading.get_ident()}  # no worker made a renew call

    store.release("job", None, force=True)  # taken away: the next renew is refused
    driven_clock.advance(manual.next_due(driven_clock) - driven_clock.monotonic())
    manual.run_due(driven_clock)

    assert lost == [threading.get_ident()]
    assert lock.holding is None
    assert manual.next_due(driven_clock) == math.inf


def test_forget_drops_what_was_scheduled_and_queued() -> None:
    clock = FakeClock()
    manual.drive(clock)
    ran: list[str] = []
    scheduler.call_at(clock, 0, lambda: ran.append("entry"))
    with manual.acting_for(clock):
        scheduler.submit(lambda: ran.append("work"))
    manual.forget(clock)

    assert not manual.driven(clock)
    assert scheduler.scheduled(clock) == 0
    with pytest.raises(ValueError, match="not driven by hand"):
        manual.run_due(clock)
    assert ran == []


def test_the_system_clock_is_never_driven_by_hand() -> None:
    with pytest.raises(ValueError, match="system clock"):
        manual.drive(SystemClock())
