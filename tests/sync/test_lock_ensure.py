"""``ensure()``, ``lost`` and ``on_lost`` on a lock, with and without ``auto_renew``."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from mongoelector import Lock, LockLost
from mongoelector._sync import scheduler
from mongoelector._sync.renewer import running
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock

TTL = 15.0


class TestEnsure:
    def test_returns_the_fencing_token_while_held(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        lock = Lock("job", backend, ttl=TTL, clock=clock)
        lock.acquire()
        assert lock.ensure() == lock.token
        clock.advance(lock.renew_deadline - 0.001)
        assert lock.ensure() == lock.token

    def test_raises_lock_lost_naming_the_token_once_the_deadline_passed(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        lock = Lock("job", backend, ttl=TTL, clock=clock)
        lock.acquire()
        token = lock.token
        clock.advance(lock.renew_deadline)
        with pytest.raises(LockLost, match=rf"'job'.*token {token} was lost \(renew deadline"):
            lock.ensure()

    def test_raises_after_release(self, backend: MemoryBackend) -> None:
        lock = Lock("job", backend)
        lock.acquire()
        token = lock.token
        lock.release()
        with pytest.raises(LockLost, match=rf"token {token} was released"):
            lock.ensure()

    def test_raises_when_never_acquired(self, backend: MemoryBackend) -> None:
        with pytest.raises(LockLost, match="never acquired"):
            Lock("job", backend).ensure()

    def test_lock_lost_is_a_mongoelector_error(self) -> None:
        from mongoelector import MongoElectorError

        assert issubclass(LockLost, MongoElectorError)


class TestWithoutAutoRenew:
    """Nothing runs in the background: a loss is found by ensure(), touch() or acquire()."""

    def test_no_thread_is_started_and_nothing_scheduled(self, backend: MemoryBackend) -> None:
        # The scheduler's shared threads may live on from earlier tests; this lock adds none.
        threads, entries = set(threading.enumerate()), scheduler.scheduled()
        lock = Lock("job", backend)
        lock.acquire()
        assert set(threading.enumerate()) <= threads
        assert scheduler.scheduled() == entries
        assert running() == []
        lock.release()

    def test_ensure_reports_a_passed_deadline_once(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        fired: list[str] = []
        lock = Lock(
            "job",
            backend,
            ttl=TTL,
            clock=clock,
            on_lost=lambda: fired.append(threading.current_thread().name),
        )
        lock.acquire()
        clock.advance(lock.renew_deadline)
        assert not lock.lost.is_set()  # nobody has looked yet
        for _ in range(3):
            with pytest.raises(LockLost):
                lock.ensure()
        assert lock.lost.is_set()
        assert fired == [threading.current_thread().name]

    def test_touch_after_the_deadline_does_not_revive_the_holding(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        lock = Lock("job", backend, ttl=TTL, clock=clock)
        lock.acquire()
        clock.advance(lock.renew_deadline)
        assert lock.touch() is None
        assert lock.lost.is_set()
        assert lock.token is None
        assert lock.release()  # the store still had it: release frees it

    def test_touch_refused_by_the_store_sets_lost(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        calls: list[None] = []
        lock = Lock("job", backend, ttl=TTL, clock=clock, on_lost=lambda: calls.append(None))
        lock.acquire()
        Lock("job", backend, ttl=TTL, clock=clock).acquire(force=True)
        assert lock.touch() is None
        assert lock.touch() is None
        assert lock.lost.is_set()
        assert len(calls) == 1

    def test_acquire_reports_the_previous_holdings_unnoticed_loss(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        calls: list[None] = []
        lock = Lock("job", backend, ttl=TTL, clock=clock, on_lost=lambda: calls.append(None))
        lock.acquire()
        clock.advance(TTL)
        lock.acquire()
        assert len(calls) == 1
        assert not lock.lost.is_set()  # cleared for the new holding
        assert lock.ensure() == lock.token

    def test_release_never_sets_lost(self, clock: FakeClock, backend: MemoryBackend) -> None:
        lock = Lock("job", backend, ttl=TTL, clock=clock, on_lost=pytest.fail)
        lock.acquire()
        lock.release()
        assert not lock.lost.is_set()


class TestSettings:
    def test_defaults(self, backend: MemoryBackend) -> None:
        lock = Lock("job", backend)
        assert lock.auto_renew is False
        assert not lock.lost.is_set()

    @pytest.mark.parametrize("value", ["yes", 1, None])
    def test_auto_renew_must_be_a_bool(self, backend: MemoryBackend, value: Any) -> None:
        with pytest.raises(TypeError, match=rf"auto_renew must be a bool, got {value!r}"):
            Lock("job", backend, auto_renew=value)

    def test_on_lost_must_be_callable(self, backend: MemoryBackend) -> None:
        with pytest.raises(TypeError, match="on_lost must be callable or None, got int 3"):
            Lock("job", backend, on_lost=3)  # type: ignore[arg-type]

    def test_a_subclass_forwarding_keywords_gets_them(
        self, clock: FakeClock, backend: MemoryBackend
    ) -> None:
        class Facade(Lock):
            def __init__(self, key: str, backend: MemoryBackend, **kwargs: Any) -> None:
                super().__init__(key, backend, **kwargs)

        calls: list[None] = []
        lock = Facade(
            "job",
            backend,
            ttl=TTL,
            clock=clock,
            auto_renew=True,
            on_lost=lambda: calls.append(None),
        )
        assert lock.auto_renew
        lock.acquire()
        backend.delete("job")
        clock.advance(lock.retry_period)
        assert lock.wait_idle(30.0)
        assert calls == [None]
