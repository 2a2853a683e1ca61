"""Lock: the 1.x MongoLocker semantics over any backend, plus fencing tokens."""

from __future__ import annotations

import os
import threading
from datetime import timedelta

import pytest

from mongoelector import AcquireTimeout, AmbiguousOutcome, BackendUnavailable, Lock, LockExists
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock
from tests.fakes import FlakyBackend


def make(backend: object, clock: FakeClock, ttl: float = 10, key: str = "job") -> Lock:
    return Lock(key, backend, ttl=ttl, clock=clock)  # type: ignore[arg-type]


def test_acquire_returns_true_and_exposes_the_holding(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    lock = make(backend, clock)
    assert lock.acquire() is True
    assert lock.token == 1
    assert lock.owned() and lock.locked()
    assert lock.ts_expire == clock.now() + timedelta(seconds=10)
    current = lock.get_current()
    assert current is not None
    assert current["_id"] == "job" and current["uuid"] == lock.uuid and current["locked"] is True


def test_non_blocking_acquire_of_a_held_lock_raises_lock_exists(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    make(backend, clock).acquire()
    other = make(backend, clock)
    with pytest.raises(LockExists, match="job"):
        other.acquire(blocking=False)
    assert other.token is None and not other.owned()


def test_blocking_acquire_with_timeout_finishes_without_real_sleep_under_fake_clock(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    make(backend, clock, ttl=7200).acquire()
    with pytest.raises(AcquireTimeout, match="3600"):
        make(backend, clock).acquire(timeout=3600, step=60)
    assert clock.monotonic() == 3600


def test_acquire_timeout_says_who_holds_the_lock_as_lock_exists_does(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    holder = make(backend, clock, ttl=7200)
    holder.acquire()
    with pytest.raises(AcquireTimeout) as timed_out:
        make(backend, clock).acquire(timeout=5, step=1)
    message = str(timed_out.value)
    assert message.startswith("lock 'job' not acquired within timeout=5 seconds: it is held by ")
    assert holder.uuid in message and f"pid {os.getpid()}" in message and "token 1" in message
    with pytest.raises(LockExists) as exists:
        make(backend, clock).acquire(blocking=False)
    assert message.endswith(str(exists.value).removeprefix("lock 'job' is "))


def test_blocking_acquire_gets_the_lock_once_it_expires(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    make(backend, clock, ttl=10).acquire()
    waiter = make(backend, clock)
    assert waiter.acquire(timeout=60, step=1)
    assert clock.monotonic() == 10
    assert waiter.token == 2


def test_blocking_acquire_is_deterministic(backend: MemoryBackend, clock: FakeClock) -> None:
    runs = []
    for _ in range(2):
        run_clock = FakeClock()
        run_backend = MemoryBackend(run_clock)
        make(run_backend, run_clock, ttl=3.3).acquire()
        make(run_backend, run_clock).acquire(step=0.7)
        runs.append(run_clock.monotonic())
    assert runs[0] == runs[1] == pytest.approx(3.5)


def test_blocking_false_with_a_timeout_is_refused(backend: MemoryBackend, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="timeout=5"):
        make(backend, clock).acquire(blocking=False, timeout=5)


def test_acquiring_twice_through_one_object_raises(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    lock = make(backend, clock)
    lock.acquire()
    with pytest.raises(LockExists, match="already held by this Lock"):
        lock.acquire(blocking=False)


def test_release_frees_the_lock_for_the_next_holder_with_a_greater_token(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    first, second = make(backend, clock), make(backend, clock)
    first.acquire()
    assert first.release() is True
    assert first.token is None and not first.locked()
    second.acquire(blocking=False)
    assert second.token == 2


def test_release_of_a_lock_not_held_is_a_no_op(backend: MemoryBackend, clock: FakeClock) -> None:
    holder, bystander = make(backend, clock), make(backend, clock)
    holder.acquire()
    assert bystander.release() is False
    assert holder.owned()


def test_forced_acquire_and_release_override_the_holder(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    holder, thief = make(backend, clock), make(backend, clock)
    holder.acquire()
    thief.acquire(blocking=False, force=True)
    assert thief.token == 2 and thief.owned() and not holder.owned()
    assert holder.touch() is None
    assert holder.release(force=True) is True
    assert not thief.owned()


def test_fencing_tokens_increase_across_release_expiry_and_force(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    a, b, c = make(backend, clock), make(backend, clock), make(backend, clock)
    tokens = []
    a.acquire()
    tokens.append(a.token)
    a.release()
    b.acquire()
    tokens.append(b.token)
    clock.advance(10)
    c.acquire(blocking=False)
    tokens.append(c.token)
    a.acquire(force=True)
    tokens.append(a.token)
    backend.delete("job")
    b.acquire(blocking=False)
    tokens.append(b.token)
    assert tokens == [1, 2, 3, 4, 5]


def test_touch_extends_the_lease_and_returns_the_new_expiry(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    lock = make(backend, clock, ttl=10)
    lock.acquire()
    clock.advance(6)
    assert lock.touch() == clock.now() + timedelta(seconds=10)
    assert lock.ts_expire == clock.now() + timedelta(seconds=10)
    clock.advance(6)
    assert lock.owned()
    assert make(backend, clock).touch() is None


def test_holder_stops_trusting_its_lease_at_the_renew_deadline(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    lock = Lock("job", backend, ttl=9, renew_deadline=6, clock=clock)
    lock.acquire()
    clock.advance(5.999)
    assert lock.token == 1
    clock.advance(0.001)
    assert lock.token is None and lock.ts_expire is None
    assert lock.owned()  # the store has not expired it yet; the holder just stopped trusting it


def test_status_has_the_1x_keys(backend: MemoryBackend, clock: FakeClock) -> None:
    lock = make(backend, clock)
    lock.acquire()
    status = lock.status
    assert set(status) >= {
        "uuid",
        "key",
        "ttl",
        "timestamp",
        "host",
        "pid",
        "lock_owned",
        "lock_created",
        "lock_expires",
    }
    assert status["lock_owned"] is True and status["token"] == 1


def test_context_manager_acquires_and_releases(backend: MemoryBackend, clock: FakeClock) -> None:
    with make(backend, clock) as lock:
        assert lock.owned()
    assert not lock.locked()


def test_release_works_from_another_thread(backend: MemoryBackend, clock: FakeClock) -> None:
    lock = make(backend, clock)
    lock.acquire()
    worker = threading.Thread(target=lock.release)
    worker.start()
    worker.join()
    assert not lock.locked()


def test_a_lost_reply_on_acquire_is_resolved_by_reading_the_record(clock: FakeClock) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    lock = make(flaky, clock)
    calls = {"n": 0}

    def lose_first_reply(name: str) -> None:
        calls["n"] += 1
        flaky.mode = "lost-reply" if calls["n"] == 1 else "ok"

    flaky.before_call = lose_first_reply
    assert lock.acquire(blocking=False)
    assert lock.token == 1 and lock.owned()
    assert flaky.calls["compare_and_set"] == 1 and flaky.calls["renew"] == 1


def test_unresolvable_ambiguity_raises_and_release_still_cleans_up(clock: FakeClock) -> None:
    inner = MemoryBackend(clock)
    flaky = FlakyBackend(inner)
    lock = make(flaky, clock)
    flaky.mode = "lost-reply"
    calls = {"n": 0}

    def then_down(name: str) -> None:
        calls["n"] += 1
        if calls["n"] > 1:
            flaky.mode = "down"

    flaky.before_call = then_down
    with pytest.raises(AmbiguousOutcome, match="may be held"):
        lock.acquire(blocking=False)
    assert lock.token is None
    flaky.before_call = None
    flaky.mode = "ok"
    assert lock.release() is True
    assert not lock.locked()


def test_definite_failure_propagates_and_leaves_nothing_held(clock: FakeClock) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    flaky.mode = "down"
    lock = make(flaky, clock)
    with pytest.raises(BackendUnavailable):
        lock.acquire()
    flaky.mode = "ok"
    assert not lock.locked()


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        ({"key": ""}, ValueError, "''"),
        ({"key": 5}, TypeError, "5"),
        ({"key": {"$gt": ""}}, TypeError, r"\$gt"),
        ({"ttl": 0}, ValueError, "ttl"),
        ({"ttl": "10"}, TypeError, "ttl"),
        ({"ttl": -1.5}, ValueError, "-1.5"),
        ({"backend": object()}, TypeError, "compare_and_set"),
    ],
)
def test_bad_input_is_refused_naming_the_value(
    backend: MemoryBackend, clock: FakeClock, kwargs: dict[str, object], error: type, named: str
) -> None:
    args: dict[str, object] = {"key": "job", "backend": backend, "ttl": 10}
    args.update(kwargs)
    with pytest.raises(error, match=named):
        Lock(args["key"], args["backend"], ttl=args["ttl"], clock=clock)  # type: ignore[arg-type]


def test_float_ttl_is_allowed(backend: MemoryBackend, clock: FakeClock) -> None:
    assert Lock("job", backend, ttl=2.5, clock=clock).ttl == 2.5


def test_release_after_an_unresolved_acquire_names_the_token_it_frees(clock: FakeClock) -> None:
    inner = MemoryBackend(clock)
    flaky = FlakyBackend(inner)
    lock = make(flaky, clock)
    flaky.mode = "lost-reply"
    calls = {"n": 0}

    def then_down(name: str) -> None:
        calls["n"] += 1
        if calls["n"] > 1:
            flaky.mode = "down"

    flaky.before_call = then_down
    with pytest.raises(AmbiguousOutcome):
        lock.acquire(blocking=False)
    flaky.before_call = None
    flaky.mode = "ok"
    released: list[int | None] = []
    original = inner.release

    def spy(key: str, owner: str | None, *, token: int | None = None, force: bool = False) -> bool:
        released.append(token)
        return original(key, owner, token=token, force=force)

    inner.release = spy  # type: ignore[method-assign]
    assert lock.release() is True
    assert released == [1]
