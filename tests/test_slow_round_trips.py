"""Slow store calls: electors and locks renew early enough, and say once that the margin is gone.

Every store call here takes a set amount of *virtual* time: the wrapper
advances the FakeClock inside the call, as a slow network would. Nothing
measures real time; the assertions are on virtual times and counts.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator

import pytest

from mongoelector import LeaderElector, Lock
from mongoelector.aio import AsyncLeaderElector, AsyncLock
from mongoelector.backends import MemoryBackend
from mongoelector.core.lease import ROUND_TRIP_WINDOW, LeaseKeeper
from mongoelector.errors import BackendUnavailable
from mongoelector.monitoring import (
    EventListener,
    LeadershipLostEvent,
    MonitoringEvent,
    SlowRoundTripsEvent,
)
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import run_for
from tests.fakes import FlakyBackend, wait_for

GUARD = 30.0  # real seconds; a hang guard, not a timing assertion
NO_MARGIN = "leave no margin"

# An elector whose settings are fine for a fast store: renew every 8 s, deadline 10 s.
TTL, DEADLINE, RETRY = 15.0, 10.0, 8.0
# Each call takes 3 s: retry_period + round trip = 11 s > renew deadline, round trip < deadline.
ROUND_TRIP = 3.0


class Recorder(EventListener):
    def __init__(self) -> None:
        self.events: list[MonitoringEvent] = []

    def leadership_lost(self, event: LeadershipLostEvent) -> None:
        self.events.append(event)

    def slow_round_trips(self, event: SlowRoundTripsEvent) -> None:
        self.events.append(event)

    def slow(self) -> list[SlowRoundTripsEvent]:
        return [event for event in self.events if isinstance(event, SlowRoundTripsEvent)]

    def losses(self) -> list[LeadershipLostEvent]:
        return [event for event in self.events if isinstance(event, LeadershipLostEvent)]


class SlowStore(FlakyBackend):
    """A MemoryBackend whose acquires and renewals take ``round_trips[i]`` virtual seconds.

    ``round_trips`` is consumed one call at a time, then ``default`` applies.
    ``sent`` records when (monotonic) each renewal was sent; ``probe``, if set,
    is asked at the end of each renewal, just before its reply is handled (the
    moment its holder has waited longest), and its answers are kept in ``probed``.
    """

    def __init__(self, inner: MemoryBackend, clock: FakeClock, default: float) -> None:
        super().__init__(inner)
        self.clock = clock
        self.default = default
        self.round_trips: list[float] = []
        self.sent: list[float] = []
        self.probe: Callable[[], bool] | None = None
        self.probed: list[bool] = []
        self.before_call = self._slow

    def _slow(self, name: str) -> None:
        if name not in ("compare_and_set", "renew"):
            return
        if name == "renew":
            self.sent.append(self.clock.monotonic())
        self.clock.advance(self.round_trips.pop(0) if self.round_trips else self.default)
        if name == "renew" and self.probe is not None:
            self.probed.append(self.probe())


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def gaps(times: list[float]) -> list[float]:
    """The intervals between successive ``times``, to the microsecond."""
    return [round(b - a, 6) for a, b in itertools.pairwise(times)]


def slow_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and NO_MARGIN in r.message]


def leader(store: SlowStore, clock: FakeClock, recorder: Recorder) -> LeaderElector:
    return LeaderElector(
        "jobs",
        store,  # type: ignore[arg-type]
        ttl=TTL,
        renew_deadline=DEADLINE,
        retry_period=RETRY,
        clock=clock,
        report_status=False,
        event_listeners=[recorder],
    )


def polls(node: LeaderElector, clock: FakeClock, count: int) -> Iterator[tuple[float, float]]:
    """Poll ``count`` times, each at the elector's next poll time.

    Yields (the deadline trusted before the poll, the time its reply was handled).
    """
    for _ in range(count):
        clock.advance(max(0.0, node.next_poll_at - clock.monotonic()))
        holding = node.holding
        assert holding is not None
        node.poll()
        yield holding.valid_until, clock.monotonic()


class TestElector:
    def test_the_leader_keeps_leading_when_retry_period_plus_round_trip_passes_the_deadline(
        self, clock: FakeClock, backend: MemoryBackend, recorder: Recorder
    ) -> None:
        store = SlowStore(backend, clock, ROUND_TRIP)
        node = leader(store, clock, recorder)
        store.probe = lambda: node.is_leader
        node.poll()  # acquires; the reply comes 3 s after the request
        token = node.token
        assert token is not None

        for trusted_until, replied_at in polls(node, clock, 50):
            assert replied_at < trusted_until  # each reply beat the deadline it renewed
            assert node.token == token

        # Still leading at the end of every renewal: trust never lapsed in between.
        assert store.probed == [True] * 50
        assert recorder.losses() == []
        # The acquire (sent at 0, answered at 3) already taught the round trip.
        assert store.sent[0] == pytest.approx(DEADLINE - 1.5 * ROUND_TRIP)
        assert store.calls["renew"] == 50
        # Renewals go out 1.5 round trips before the deadline: every 10 - 4.5 = 5.5 s, not 8 s.
        assert set(gaps(store.sent)) == {DEADLINE - 1.5 * ROUND_TRIP}

    def test_with_the_old_rule_the_same_leader_blinks(
        self,
        clock: FakeClock,
        backend: MemoryBackend,
        recorder: Recorder,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # The old rule: renew every retry_period, whatever the round trip.
        monkeypatch.setattr(LeaseKeeper, "renew_lead", property(lambda self: 0.0))
        store = SlowStore(backend, clock, ROUND_TRIP)
        node = leader(store, clock, recorder)
        store.probe = lambda: node.is_leader
        node.poll()  # acquired by a request sent at 0: trusted until 10
        clock.advance(node.next_poll_at - clock.monotonic())
        node.poll()  # renewal sent at 8, answered at 11

        assert store.sent == [8.0]
        assert store.probed == [False]  # the deadline passed while the renewal was in flight
        assert node.is_leader  # ...and the late reply (sent before it) made it leader again

    def test_a_round_trip_of_half_the_deadline_is_more_than_renewals_can_keep_up_with(
        self, clock: FakeClock, backend: MemoryBackend, recorder: Recorder
    ) -> None:
        # Renewals go one at a time, so each is sent no earlier than the last reply:
        # one sent at s + 5 is answered at s + 10, exactly at the deadline of the one sent at s.
        store = SlowStore(backend, clock, DEADLINE / 2)
        node = leader(store, clock, recorder)
        store.probe = lambda: node.is_leader
        node.poll()  # sent at 0, answered at 5: trusted until 10, and a renewal is due at once
        clock.advance(max(0.0, node.next_poll_at - clock.monotonic()))
        node.poll()

        assert store.sent == [5.0]
        assert store.probed == [False]  # at 10, when its reply came, the term had lapsed

    def test_the_warning_comes_once_in_the_log_and_to_listeners(
        self,
        clock: FakeClock,
        backend: MemoryBackend,
        recorder: Recorder,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.INFO, logger="mongoelector")
        store = SlowStore(backend, clock, ROUND_TRIP)
        node = leader(store, clock, recorder)
        node.poll()
        for _ in polls(node, clock, 40):
            pass

        [event] = recorder.slow()
        assert event == SlowRoundTripsEvent(
            key="jobs",
            owner=node.uuid,
            kind="elector",
            round_trip=ROUND_TRIP,
            renew_deadline=DEADLINE,
            retry_period=RETRY,
            cleared=False,
        )
        [line] = slow_lines(caplog)
        assert line.name == "mongoelector.elector"
        assert "3000.0 ms" in line.message

    def test_the_warning_clears_when_round_trips_shorten_and_comes_back_with_them(
        self,
        clock: FakeClock,
        backend: MemoryBackend,
        recorder: Recorder,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.INFO, logger="mongoelector")
        store = SlowStore(backend, clock, 0.1)
        store.round_trips = [ROUND_TRIP] * 3  # the acquire and two renewals are slow
        node = leader(store, clock, recorder)
        node.poll()
        for _ in polls(node, clock, ROUND_TRIP_WINDOW + 5):
            pass
        store.round_trips = [ROUND_TRIP]
        for _ in polls(node, clock, 3):
            pass

        assert [event.cleared for event in recorder.slow()] == [False, True, False]
        assert len(slow_lines(caplog)) == 2
        [cleared] = [r for r in caplog.records if "leave a margin again" in r.message]
        assert cleared.levelno == logging.INFO
        assert recorder.losses() == []
        # Once the slow calls left the window, renewals came every retry_period again.
        assert store.sent[-4] - store.sent[-5] == pytest.approx(RETRY)

    async def test_the_asyncio_elector_warns_the_same_way(
        self,
        clock: FakeClock,
        backend: MemoryBackend,
        recorder: Recorder,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        store = SlowStore(backend, clock, ROUND_TRIP)
        node = AsyncLeaderElector(
            "jobs",
            store,  # type: ignore[arg-type]
            ttl=TTL,
            renew_deadline=DEADLINE,
            retry_period=RETRY,
            clock=clock,
            report_status=False,
            event_listeners=[recorder],
        )
        await node.poll()
        for _ in range(20):
            clock.advance(max(0.0, node.next_poll_at - clock.monotonic()))
            await node.poll()

        assert node.is_leader
        assert recorder.losses() == []
        assert [event.cleared for event in recorder.slow()] == [False]
        assert len(slow_lines(caplog)) == 1


# --- locks: the renewer thread and task use the same keeper ------------------------------------

# A lock with ttl 15 s trusts each write for 10 s and renews every 2 s. One renewal
# taking 5.4 s (1.5 * 5.4 = 8.1 > 10 - 2) makes the renewer send each later one
# 8.1 s before the deadline, i.e. 1.9 s after the last, until that slow call leaves
# the window of remembered round trips.
SLOW_RENEWAL = 5.4


def lock_steps(clock: FakeClock, lock: Lock, count: int) -> None:
    """Advance to each deadline the renewer sleeps until, ``count`` times."""
    assert lock.wait_idle(GUARD)
    for _ in range(count):
        # The renewer reports itself idle as it schedules its wake-up; the timer thread then
        # registers it with the clock, and until then may still wait there for an earlier
        # deadline of a step since cancelled: wait for the wake-up itself.
        def registered() -> bool:
            renewer = lock._renewer
            until = renewer._parked_until if renewer is not None else None
            due = clock.next_deadline
            return until is not None and due is not None and abs(due - until) < 1e-6

        assert wait_for(registered, limit=GUARD)
        due = clock.next_deadline
        assert due is not None
        clock.advance(max(0.0, due - clock.monotonic()))
        assert lock.wait_idle(GUARD)


class TestLock:
    def test_the_renewer_renews_early_after_a_slow_renewal_and_warns_once(
        self,
        clock: FakeClock,
        backend: MemoryBackend,
        recorder: Recorder,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.INFO, logger="mongoelector")
        store = SlowStore(backend, clock, 0.0)
        store.round_trips = [0.0, SLOW_RENEWAL]  # the acquire, then the first renewal
        lock = Lock("job", store, ttl=TTL, clock=clock, auto_renew=True, event_listeners=[recorder])
        lock.acquire()
        token = lock.token
        try:
            lock_steps(clock, lock, ROUND_TRIP_WINDOW + 4)
            assert lock.token == token
        finally:
            lock.release()

        sent = store.sent
        assert sent[0] == pytest.approx(2.0)
        assert sent[1] == pytest.approx(2.0 + SLOW_RENEWAL)  # at once: already due on reply
        after = gaps(sent[1:])
        # 1.9 s while the slow call is remembered (the window of 32 replies), 2 s after.
        assert after[: ROUND_TRIP_WINDOW - 1] == [1.9] * (ROUND_TRIP_WINDOW - 1)
        assert set(after[ROUND_TRIP_WINDOW:]) == {2.0}
        assert [(e.cleared, e.kind) for e in recorder.slow()] == [(False, "lock"), (True, "lock")]
        assert recorder.slow()[0].round_trip == pytest.approx(SLOW_RENEWAL)
        [line] = slow_lines(caplog)
        assert line.name == "mongoelector.lock"
        assert [loss.reason.name for loss in recorder.losses()] == ["RELEASED"]

    def test_touch_teaches_the_round_trip_and_failed_calls_do_not(
        self,
        clock: FakeClock,
        backend: MemoryBackend,
        recorder: Recorder,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        store = SlowStore(backend, clock, 0.0)
        lock = Lock("job", store, ttl=TTL, clock=clock, event_listeners=[recorder])
        lock.acquire()
        store.mode = "down"
        store.round_trips = [SLOW_RENEWAL]
        with pytest.raises(BackendUnavailable):
            lock.touch()  # fails after 5.4 s: not a reply, so not a round trip
        assert recorder.slow() == []

        store.mode = "ok"
        lock.release()
        lock.acquire()
        store.round_trips = [SLOW_RENEWAL]
        assert lock.touch() is not None  # answered after 5.4 s, within the 10 s deadline

        [event] = recorder.slow()
        assert event.round_trip == pytest.approx(SLOW_RENEWAL)
        assert len(slow_lines(caplog)) == 1
        lock.release()

    async def test_the_asyncio_renewer_does_the_same(
        self, clock: FakeClock, backend: MemoryBackend, recorder: Recorder
    ) -> None:
        store = SlowStore(backend, clock, 0.0)
        store.round_trips = [0.0, SLOW_RENEWAL]
        lock = AsyncLock(
            "job",
            store,  # type: ignore[arg-type]
            ttl=TTL,
            clock=clock,
            auto_renew=True,
            event_listeners=[recorder],
        )
        await lock.acquire()
        await run_for(clock, 20.0)
        await lock.release()

        after = gaps(store.sent[1:])
        assert after and set(after) == {1.9}
        assert [e.cleared for e in recorder.slow()] == [False]


def test_a_slow_acquire_teaches_the_first_renewal_of_its_lock(
    clock: FakeClock, backend: MemoryBackend, recorder: Recorder
) -> None:
    """The acquire's own round trip counts: the first renewal is early enough for it."""
    store = SlowStore(backend, clock, 0.0)
    lock = Lock("job", store, ttl=TTL, clock=clock, event_listeners=[recorder])
    store.round_trips = [SLOW_RENEWAL]
    lock.acquire()  # answered 5.4 s after it was sent
    holding = lock.holding
    assert holding is not None
    [event] = recorder.slow()
    assert event.round_trip == pytest.approx(SLOW_RENEWAL)
    # Renewed early enough that a reply as slow as the acquire's lands before the deadline.
    assert lock._keeper.wake_at() <= holding.valid_until - SLOW_RENEWAL
    lock.release()
