"""``Lock(auto_renew=True)``: a background renewer keeps the holding alive, or reports it lost.

Every test runs on a FakeClock. The renewer sleeps until the test advances the
clock; ``Lock.wait_idle()`` returns once it has reacted, so each assertion
sees the state that virtual time calls for. ``GUARD`` only bounds how long a
broken renewer may hang the suite; it is never reached when things work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from mongoelector import Lock, LockExists, LockLost
from mongoelector._sync import scheduler
from mongoelector._sync.renewer import Renewer, running
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock
from tests.fakes import FlakyBackend

GUARD = 30.0  # real seconds; a hang guard, not a timing assertion
TTL = 15.0  # renew deadline 10 s, renewals every 2 s


def renewers() -> list[Renewer]:
    """The process's running renewers (they have no threads: they share the scheduler's)."""
    return running()


def run_for(clock: FakeClock, seconds: float, *locks: Lock, step: float = 1.0) -> Iterator[float]:
    """Advance ``clock`` by ``step`` at a time; after each, wait for the renewers and yield."""
    end = clock.monotonic() + seconds
    while clock.monotonic() < end:
        clock.advance(step)
        for lock in locks:
            assert lock.wait_idle(GUARD)
        yield clock.monotonic()


@pytest.fixture
def link(backend: MemoryBackend) -> FlakyBackend:
    return FlakyBackend(backend)


@pytest.fixture(autouse=True)
def no_renewer_left_behind() -> Iterator[None]:
    yield
    assert renewers() == []


class Calls:
    def __init__(self) -> None:
        self.count = 0
        self.threads: list[str] = []

    def __call__(self) -> None:
        self.count += 1
        self.threads.append(threading.current_thread().name)


class TestHealthyStore:
    def test_the_holder_keeps_the_lock_for_100_ttls(
        self, clock: FakeClock, backend: MemoryBackend, link: FlakyBackend
    ) -> None:
        on_lost = Calls()
        lock = Lock("job", link, ttl=TTL, clock=clock, auto_renew=True, on_lost=on_lost)
        other = Lock("job", backend, ttl=TTL, clock=clock)
        lock.acquire()
        token = lock.token
        assert token is not None
        for now in run_for(clock, 100 * TTL, lock):
            assert lock.ensure() == token
            assert lock.remaining() > lock.renew_deadline - lock.retry_period - 1
            if now % 50 == 0:
                with pytest.raises(LockExists):
                    other.acquire(blocking=False)
        assert link.calls["renew"] >= 100 * TTL / lock.retry_period - 1
        assert not lock.lost.is_set()
        assert on_lost.count == 0
        assert lock.owned()
        assert lock.release()
        assert renewers() == []

    def test_renewal_outages_shorter_than_the_deadline_are_ridden_out(
        self, clock: FakeClock, link: FlakyBackend
    ) -> None:
        lock = Lock("job", link, ttl=TTL, clock=clock, auto_renew=True)
        lock.acquire()
        token = lock.token
        list(run_for(clock, 5, lock))
        link.mode = "down"
        renews_before = link.calls["renew"]
        list(run_for(clock, lock.renew_deadline - 2 * lock.retry_period, lock))
        assert link.calls["renew"] - renews_before >= 2  # retried, and failed
        assert lock.token == token
        link.mode = "ok"
        list(run_for(clock, 3 * TTL, lock))
        assert lock.ensure() == token
        assert not lock.lost.is_set()
        lock.release()

    def test_valid_until_moves_with_each_renewal_and_reads_no_store(
        self, clock: FakeClock, link: FlakyBackend
    ) -> None:
        lock = Lock("job", link, ttl=TTL, clock=clock, auto_renew=True)
        assert lock.valid_until is None
        assert lock.remaining() == 0.0
        lock.acquire()
        assert lock.valid_until == lock.renew_deadline
        calls = dict(link.calls)
        assert lock.remaining() == lock.renew_deadline
        assert lock.valid_until == lock.renew_deadline
        assert link.calls == calls
        list(run_for(clock, lock.retry_period, lock))
        assert lock.valid_until == lock.retry_period + lock.renew_deadline
        assert lock.remaining() == lock.renew_deadline
        lock.release()
        assert lock.valid_until is None
        assert lock.remaining() == 0.0


class TestUnreachableStore:
    def test_the_holder_gives_up_before_anyone_else_can_acquire(
        self, clock: FakeClock, backend: MemoryBackend, link: FlakyBackend
    ) -> None:
        on_lost = Calls()
        holder = Lock("job", link, ttl=TTL, clock=clock, auto_renew=True, on_lost=on_lost)
        rival = Lock("job", backend, ttl=TTL, clock=clock)
        holder.acquire()
        first_token = holder.token
        assert first_token is not None
        list(run_for(clock, 7, holder))
        link.mode = "down"
        trusted_until = holder.valid_until
        lost_at = rival_acquired_at = None
        for now in run_for(clock, 2 * TTL, holder, step=0.25):
            if holder.valid_until is not None:
                trusted_until = holder.valid_until
            if lost_at is None and holder.lost.is_set():
                lost_at = now
            try:
                rival.acquire(blocking=False)
            except LockExists:
                continue
            rival_acquired_at = now
            # The moment another node can hold the lock, the first no longer believes it does.
            assert holder.lost.is_set()
            assert holder.token is None
            assert holder.remaining() == 0.0
            assert trusted_until is not None
            assert now >= trusted_until
            break
        assert lost_at is not None
        assert rival_acquired_at is not None
        assert lost_at < rival_acquired_at
        assert rival.token is not None
        assert rival.token > first_token
        assert on_lost.count == 1
        assert len(on_lost.threads) == 1
        assert on_lost.threads[0].startswith("mongoelector-callbacks-")  # the scheduler's
        assert renewers() == []
        list(run_for(clock, 3 * TTL, holder))
        assert on_lost.count == 1
        with pytest.raises(LockLost, match=rf"token {first_token} was lost"):
            holder.ensure()
        rival.release()

    def test_release_after_a_loss_frees_the_stores_record_once_reachable(
        self, clock: FakeClock, backend: MemoryBackend, link: FlakyBackend
    ) -> None:
        holder = Lock("job", link, ttl=TTL, clock=clock, auto_renew=True)
        holder.acquire()
        link.mode = "down"
        list(run_for(clock, holder.renew_deadline, holder))
        assert holder.lost.is_set()
        link.mode = "ok"
        assert holder.release()  # the store still had it for ttl - renew_deadline seconds
        assert Lock("job", backend, ttl=TTL, clock=clock).acquire(blocking=False)


class TestTakeover:
    def test_a_forced_takeover_is_seen_at_the_next_renewal(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        on_lost = Calls()
        holder = Lock("job", backend, ttl=TTL, clock=clock, auto_renew=True, on_lost=on_lost)
        holder.acquire()
        token = holder.token
        Lock("job", backend, ttl=TTL, clock=clock).acquire(force=True)
        assert not holder.lost.is_set()
        list(run_for(clock, holder.retry_period, holder))
        assert holder.lost.is_set()
        assert on_lost.count == 1
        assert holder.token is None
        with pytest.raises(LockLost, match=rf"token {token} was lost \(the record is no longer"):
            holder.ensure()
        assert renewers() == []
        assert not holder.release()  # the new holder keeps its lock

    def test_a_forced_release_is_seen_at_the_next_renewal(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        holder = Lock("job", backend, ttl=TTL, clock=clock, auto_renew=True)
        holder.acquire()
        Lock("job", backend, ttl=TTL, clock=clock).release(force=True)
        list(run_for(clock, holder.retry_period, holder))
        assert holder.lost.is_set()
        assert holder.token is None


class TestOnLost:
    def test_fires_once_per_holding_and_lost_is_cleared_by_the_next_acquire(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        on_lost = Calls()
        holder = Lock("job", backend, ttl=TTL, clock=clock, auto_renew=True, on_lost=on_lost)
        rival = Lock("job", backend, ttl=TTL, clock=clock)
        for term in (1, 2):
            holder.acquire()
            assert not holder.lost.is_set()
            rival.acquire(force=True)
            list(run_for(clock, 3 * TTL, holder))
            assert holder.lost.is_set()
            assert on_lost.count == term
            rival.release()

    def test_a_raising_callback_is_logged_and_the_renewer_still_ends(
        self, clock: FakeClock, backend: MemoryBackend, caplog: pytest.LogCaptureFixture
    ) -> None:
        def explode() -> None:
            raise RuntimeError("boom")

        holder = Lock("job", backend, ttl=TTL, clock=clock, auto_renew=True, on_lost=explode)
        holder.acquire()
        backend.delete("job")
        with caplog.at_level(logging.ERROR, logger="mongoelector.lock"):
            list(run_for(clock, holder.retry_period, holder))
        assert holder.lost.is_set()
        assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [RuntimeError]
        assert renewers() == []

    def test_the_callback_may_release_or_reacquire_the_lock(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        holders: list[Lock] = []

        def retry() -> None:
            holders[0].release()
            holders[0].acquire(blocking=False)

        holder = Lock("job", backend, ttl=TTL, clock=clock, auto_renew=True, on_lost=retry)
        holders.append(holder)
        holder.acquire()
        first = holder.token
        backend.delete("job")
        list(run_for(clock, holder.retry_period, holder))
        assert holder.token is not None
        assert first is not None
        assert holder.token > first
        assert not holder.lost.is_set()
        assert len(renewers()) == 1
        holder.release()


class TestThreads:
    def test_the_renewer_runs_only_while_held_on_the_schedulers_threads(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        lock = Lock("job", backend, ttl=TTL, clock=clock, auto_renew=True)
        assert renewers() == []
        lock.acquire()
        assert [r.name for r in renewers()] == ["mongoelector-renew-job"]
        # No thread of its own: the scheduler's few daemon threads serve every lock.
        assert not [t for t in threading.enumerate() if t.name.startswith("mongoelector-renew-")]
        assert scheduler.threads() and all(t.daemon for t in scheduler.threads())
        lock.release()
        assert renewers() == []
        assert not lock.lost.is_set()

    def test_release_from_another_thread_than_the_acquirer(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        lock = Lock("job", backend, ttl=TTL, clock=clock, auto_renew=True)
        worker = threading.Thread(target=lock.acquire)
        worker.start()
        worker.join(GUARD)
        assert lock.token is not None
        assert lock.release()
        assert renewers() == []
        assert not lock.locked()

    def test_release_during_an_in_flight_renewal_lets_it_finish_first(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        entered, leave = threading.Event(), threading.Event()
        order: list[str] = []
        expiry_seen_by_release = []

        def hold_renewals(name: str) -> None:
            order.append(name)
            if name == "renew":
                entered.set()
                leave.wait(GUARD)
            if name == "release":
                record = backend.get("job")
                assert record is not None
                expiry_seen_by_release.append(record.expires_at)

        link = FlakyBackend(backend)
        link.before_call = hold_renewals
        lock = Lock("job", link, ttl=TTL, clock=clock, auto_renew=True)
        lock.acquire()
        clock.advance(lock.retry_period)
        assert entered.wait(GUARD)
        releaser = threading.Thread(target=lock.release)
        releaser.start()
        leave.set()
        releaser.join(GUARD)
        assert not releaser.is_alive()
        assert order == ["compare_and_set", "renew", "release"]
        assert expiry_seen_by_release == [clock.now() + timedelta(seconds=TTL)]  # renewed first
        assert renewers() == []
        assert not lock.locked()
        assert not lock.lost.is_set()

    def test_a_forced_reacquire_replaces_the_renewer_without_a_loss(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        lock = Lock("job", backend, ttl=TTL, clock=clock, auto_renew=True, on_lost=pytest.fail)
        lock.acquire()
        first = renewers()
        lock.acquire(force=True)
        assert lock.token == 2
        assert len(renewers()) == 1
        assert renewers() != first
        list(run_for(clock, 3 * TTL, lock))
        assert lock.ensure() == 2
        assert not lock.lost.is_set()
        lock.release()

    def test_wait_idle_returns_at_once_without_a_renewer(self, backend: MemoryBackend) -> None:
        assert Lock("job", backend).wait_idle()


class TestTheLostEvent:
    """``lock.lost`` is made on first use; it says the same whenever it is first asked for."""

    def lose(self, clock: FakeClock, backend: MemoryBackend, *, ask_first: bool) -> Lock:
        holder = Lock("job", backend, ttl=TTL, clock=clock)
        if ask_first:
            assert not holder.lost.is_set()
        assert holder.acquire()
        assert Lock("job", backend, ttl=TTL, clock=clock).acquire(force=True)
        assert holder.touch() is None  # finds the holding lost
        return holder

    @pytest.mark.parametrize("ask_first", [True, False])
    def test_it_is_set_by_a_loss_made_before_or_after_it(
        self, clock: FakeClock, backend: MemoryBackend, ask_first: bool
    ) -> None:
        holder = self.lose(clock, backend, ask_first=ask_first)
        assert holder.lost.is_set()
        assert holder.lost is holder.lost

    @pytest.mark.parametrize("ask_first", [True, False])
    def test_the_next_acquire_clears_it(
        self, clock: FakeClock, backend: MemoryBackend, ask_first: bool
    ) -> None:
        holder = self.lose(clock, backend, ask_first=ask_first)
        if ask_first:
            assert holder.lost.is_set()
        assert holder.acquire(force=True)
        assert not holder.lost.is_set()
        holder.release()
