"""AsyncLock: Lock's promises, awaited, on an in-memory store under a FakeClock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mongoelector import (
    AcquireTimeout,
    AmbiguousOutcome,
    BackendUnavailable,
    LockExists,
    LockLost,
)
from mongoelector.aio import AsyncLock, InlineBackend
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock
from tests.aio.doubles import GatedBackend
from tests.fakes import FlakyBackend


def make(backend: object, clock: FakeClock, ttl: float = 10, key: str = "job") -> AsyncLock:
    return AsyncLock(key, backend, ttl=ttl, clock=clock)  # type: ignore[arg-type]


async def test_acquire_returns_true_and_exposes_the_holding(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    lock = make(backend, clock)
    assert await lock.acquire() is True
    assert lock.token == 1
    assert await lock.owned() and await lock.locked()
    assert lock.ts_expire == clock.now() + timedelta(seconds=10)
    current = await lock.get_current()
    assert current is not None
    assert current["_id"] == "job" and current["uuid"] == lock.uuid and current["locked"] is True


async def test_non_blocking_acquire_of_a_held_lock_raises_lock_exists(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    await make(backend, clock).acquire()
    other = make(backend, clock)
    with pytest.raises(LockExists, match="job"):
        await other.acquire(blocking=False)
    assert other.token is None and not await other.owned()


async def test_blocking_acquire_with_timeout_advances_the_fake_clock_instead_of_sleeping(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    await make(backend, clock, ttl=7200).acquire()
    with pytest.raises(AcquireTimeout, match="3600"):
        await make(backend, clock).acquire(timeout=3600, step=60)
    assert clock.monotonic() == 3600


async def test_acquire_timeout_says_who_holds_the_lock(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    holder = make(backend, clock, ttl=7200)
    await holder.acquire()
    with pytest.raises(AcquireTimeout) as timed_out:
        await make(backend, clock).acquire(timeout=5, step=1)
    message = str(timed_out.value)
    assert message.startswith("lock 'job' not acquired within timeout=5 seconds: it is held by ")
    assert holder.uuid in message and "token 1" in message


async def test_blocking_acquire_gets_the_lock_once_it_expires(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    await make(backend, clock, ttl=10).acquire()
    waiter = make(backend, clock)
    assert await waiter.acquire(timeout=60, step=1)
    assert clock.monotonic() == 10
    assert waiter.token == 2


async def test_blocking_false_with_a_timeout_is_refused(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    with pytest.raises(ValueError, match="timeout=5"):
        await make(backend, clock).acquire(blocking=False, timeout=5)


async def test_acquiring_twice_through_one_object_raises(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    lock = make(backend, clock)
    await lock.acquire()
    with pytest.raises(LockExists, match="already held by this AsyncLock"):
        await lock.acquire(blocking=False)


async def test_release_frees_the_lock_for_the_next_holder_with_a_greater_token(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    first, second = make(backend, clock), make(backend, clock)
    await first.acquire()
    assert await first.release() is True
    assert first.token is None and not await first.locked()
    await second.acquire(blocking=False)
    assert second.token == 2


async def test_release_of_a_lock_not_held_is_a_no_op(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    holder, bystander = make(backend, clock), make(backend, clock)
    await holder.acquire()
    assert await bystander.release() is False
    assert await holder.owned()


async def test_forced_acquire_and_release_override_the_holder(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    holder, thief = make(backend, clock), make(backend, clock)
    await holder.acquire()
    await thief.acquire(blocking=False, force=True)
    assert thief.token == 2 and await thief.owned() and not await holder.owned()
    assert await holder.touch() is None
    assert await holder.release(force=True) is True
    assert not await thief.owned()


async def test_fencing_tokens_increase_across_release_expiry_and_force(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    a, b, c = make(backend, clock), make(backend, clock), make(backend, clock)
    tokens = []
    await a.acquire()
    tokens.append(a.token)
    await a.release()
    await b.acquire()
    tokens.append(b.token)
    clock.advance(10)
    await c.acquire(blocking=False)
    tokens.append(c.token)
    await a.acquire(force=True)
    tokens.append(a.token)
    backend.delete("job")
    await b.acquire(blocking=False)
    tokens.append(b.token)
    assert tokens == [1, 2, 3, 4, 5]


async def test_touch_extends_the_lease_and_returns_the_new_expiry(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    lock = make(backend, clock, ttl=10)
    await lock.acquire()
    clock.advance(6)
    assert await lock.touch() == clock.now() + timedelta(seconds=10)
    assert lock.ts_expire == clock.now() + timedelta(seconds=10)
    clock.advance(6)
    assert await lock.owned()
    assert await make(backend, clock).touch() is None


async def test_holder_stops_trusting_its_lease_at_the_renew_deadline(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    lock = AsyncLock("job", backend, ttl=9, renew_deadline=6, clock=clock)
    await lock.acquire()
    clock.advance(5.999)
    assert lock.token == 1
    clock.advance(0.001)
    assert lock.token is None and lock.ts_expire is None
    assert await lock.owned()  # the store has not expired it yet; the holder stopped trusting it


async def test_ensure_and_lost_report_a_holding_that_ended_without_release(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    lock = AsyncLock("job", backend, ttl=9, renew_deadline=6, clock=clock)
    await lock.acquire()
    assert lock.ensure() == 1 and lock.valid_until == 6 and lock.remaining() == 6
    clock.advance(6)
    assert lock.remaining() == 0.0 and not lock.lost.is_set()
    with pytest.raises(LockLost, match=r"token 1 was lost \(renew deadline passed\)"):
        lock.ensure()
    assert lock.lost.is_set()
    await lock.acquire(blocking=False, force=True)
    assert not lock.lost.is_set() and lock.ensure() == 2


async def test_touch_after_a_takeover_returns_none_and_sets_lost(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    lock = make(backend, clock)
    await lock.acquire()
    await make(backend, clock).acquire(force=True)
    assert await lock.touch() is None
    assert lock.lost.is_set()
    with pytest.raises(LockLost, match="no longer ours"):
        lock.ensure()


async def test_status_has_the_1x_keys(backend: MemoryBackend, clock: FakeClock) -> None:
    lock = make(backend, clock)
    await lock.acquire()
    status = await lock.status()
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


async def test_async_with_acquires_and_releases(backend: MemoryBackend, clock: FakeClock) -> None:
    async with make(backend, clock) as lock:
        assert await lock.owned()
    assert not await lock.locked()


async def test_a_lost_reply_on_acquire_is_resolved_by_reading_the_record(
    clock: FakeClock,
) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    lock = make(flaky, clock)
    calls = {"n": 0}

    def lose_first_reply(name: str) -> None:
        calls["n"] += 1
        flaky.mode = "lost-reply" if calls["n"] == 1 else "ok"

    flaky.before_call = lose_first_reply
    assert await lock.acquire(blocking=False)
    assert lock.token == 1 and await lock.owned()
    assert flaky.calls["compare_and_set"] == 1 and flaky.calls["renew"] == 1


async def test_unresolvable_ambiguity_raises_and_release_still_cleans_up(clock: FakeClock) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    lock = make(flaky, clock)
    flaky.mode = "lost-reply"
    calls = {"n": 0}

    def then_down(name: str) -> None:
        calls["n"] += 1
        if calls["n"] > 1:
            flaky.mode = "down"

    flaky.before_call = then_down
    with pytest.raises(AmbiguousOutcome, match="may be held"):
        await lock.acquire(blocking=False)
    assert lock.token is None
    flaky.before_call = None
    flaky.mode = "ok"
    assert await lock.release() is True
    assert not await lock.locked()


async def test_definite_failure_propagates_and_leaves_nothing_held(clock: FakeClock) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    flaky.mode = "down"
    lock = make(flaky, clock)
    with pytest.raises(BackendUnavailable):
        await lock.acquire()
    flaky.mode = "ok"
    assert not await lock.locked()


async def test_a_failed_release_is_retried_by_the_next_release(clock: FakeClock) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    lock = make(flaky, clock)
    await lock.acquire()
    flaky.mode = "down"
    with pytest.raises(BackendUnavailable):
        await lock.release()
    assert lock.token is None  # it stopped trusting the holding before asking the store
    flaky.mode = "ok"
    assert await lock.release() is True
    assert not await lock.locked()


async def test_a_sync_backend_is_called_inline_and_an_async_one_directly(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    inline = make(backend, clock)
    assert isinstance(inline.backend, InlineBackend) and inline.backend.wrapped is backend
    gated = GatedBackend(backend)
    direct = make(gated, clock)
    assert direct.backend is gated
    assert await direct.acquire(blocking=False)
    assert gated.calls["compare_and_set"] == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        ({"key": ""}, ValueError, "''"),
        ({"key": 5}, TypeError, "5"),
        ({"ttl": 0}, ValueError, "ttl"),
        ({"ttl": "10"}, TypeError, "ttl"),
        ({"backend": object()}, TypeError, "compare_and_set"),
    ],
)
def test_bad_input_is_refused_naming_the_value(
    backend: MemoryBackend, clock: FakeClock, kwargs: dict[str, object], error: type, named: str
) -> None:
    args: dict[str, object] = {"key": "job", "backend": backend, "ttl": 10}
    args.update(kwargs)
    with pytest.raises(error, match=named):
        AsyncLock(args["key"], args["backend"], ttl=args["ttl"], clock=clock)  # type: ignore[arg-type]
