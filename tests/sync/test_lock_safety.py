"""Lock's two core promises against callers and networks that are not gentle.

Never two holders acting at once, and a strictly greater fencing token for
every acquisition: after a late release, a release racing an acquire, one
``Lock`` shared by threads, a re-acquire after the renew deadline, an
acquire whose writes all fail ambiguously, and a release of unknown outcome
racing another thread's acquire of the same object. Each scenario runs on
``MemoryBackend`` and on ``MongoBackend`` (mongomock, classic and pipeline
paths; sync and async backends).
"""

from __future__ import annotations

import threading

import pytest

from mongoelector import AcquireTimeout, AmbiguousOutcome, Lock, LockExists
from mongoelector.backends import CasResult, LeaseRequest
from mongoelector.core.lock_machine import NON_BLOCKING_CALL_LIMIT
from mongoelector.errors import BackendError, BackendUnavailable
from tests.backends.mongo_support import STORE_KINDS, Store, make_store
from tests.lock_safety_support import HANG_GUARD, Wrapped

TTL = 30.0


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Store:
    return make_store(request.param, monkeypatch)


@pytest.fixture
def wrapped(store: Store) -> Wrapped:
    return Wrapped(store.storage)


def lock_on(backend: object, store: Store) -> Lock:
    return Lock("job", backend, ttl=TTL, clock=store.clock)  # type: ignore[arg-type]


def test_a_late_release_cannot_make_two_holders(store: Store, wrapped: Wrapped) -> None:
    """Scenario 1: release() is lost in flight, the same Lock acquires, the release lands."""
    lock = lock_on(wrapped, store)
    lock.acquire(blocking=False)
    first = lock.ensure()
    wrapped.lose_release = True
    with pytest.raises(AmbiguousOutcome):
        lock.release()

    assert lock.acquire(blocking=False)
    wrapped.land_lost_releases()

    assert lock.ensure() > first
    with pytest.raises(LockExists):
        lock_on(store.storage, store).acquire(blocking=False)


def test_a_slow_release_racing_an_acquire_of_the_same_object(
    store: Store, wrapped: Wrapped
) -> None:
    """Scenario 2: thread A's release is slow; B acquires meanwhile; the release lands."""
    lock = lock_on(wrapped, store)
    lock.acquire(blocking=False)
    first = lock.ensure()
    wrapped.hold_release = True
    releaser = threading.Thread(target=lock.release)
    releaser.start()
    assert wrapped.held.wait(HANG_GUARD)

    assert lock.acquire(blocking=False)
    wrapped.let_go()
    releaser.join(HANG_GUARD)

    assert not releaser.is_alive()
    token = lock.ensure()
    assert token > first
    record = store.storage.get("job")
    assert record is not None and record.owner == lock.uuid and record.token == token
    with pytest.raises(LockExists):
        lock_on(store.storage, store).acquire(blocking=False)


def test_a_shared_lock_object_admits_one_thread(store: Store, wrapped: Wrapped) -> None:
    """Scenario 3: two threads of one process call acquire(blocking=False) at once."""
    lock = lock_on(wrapped, store)
    wrapped.hold_cas = True
    results: list[object] = []

    def acquire() -> None:
        try:
            results.append(lock.acquire(blocking=False))
        except LockExists as error:
            results.append(error)

    first = threading.Thread(target=acquire)
    first.start()
    assert wrapped.held.wait(HANG_GUARD)
    acquire()  # the second caller, while the first is inside the store call
    wrapped.let_go()
    first.join(HANG_GUARD)

    assert results.count(True) == 1
    assert sum(isinstance(result, LockExists) for result in results) == 1
    assert wrapped.calls["compare_and_set"] == 1
    assert lock.ensure() > 0


def test_a_blocking_acquire_of_a_shared_object_waits_for_the_release(store: Store) -> None:
    lock = lock_on(store.storage, store)
    lock.acquire(blocking=False)
    token = lock.ensure()
    with pytest.raises(AcquireTimeout):
        lock.acquire(timeout=5, step=1)
    assert lock.ensure() == token  # the waiting caller did not disturb the holder


def test_reacquiring_after_the_renew_deadline_gets_a_greater_token(store: Store) -> None:
    """Scenario 4: the deadline passes before the store's expiry; acquire again."""
    lock = lock_on(store.storage, store)
    lock.acquire(blocking=False)
    first = lock.ensure()
    store.clock.advance(lock.renew_deadline)
    assert lock.token is None

    assert lock.acquire(blocking=False)

    assert lock.ensure() > first
    record = store.storage.get("job")
    assert record is not None and record.token == lock.ensure()


def test_a_non_blocking_acquire_is_bounded_when_every_write_is_ambiguous(
    store: Store, wrapped: Wrapped
) -> None:
    """Scenario 5: writes apply but every reply is lost; reads work."""
    wrapped.ambiguous = {"compare_and_set", "renew"}
    lock = lock_on(wrapped, store)

    with pytest.raises(AmbiguousOutcome):
        lock.acquire(blocking=False)

    assert sum(wrapped.calls.values()) <= NON_BLOCKING_CALL_LIMIT
    wrapped.ambiguous = set()
    assert lock.release() is True
    assert lock_on(store.storage, store).acquire(blocking=False)


def test_a_timeout_bounds_an_acquire_whose_writes_are_all_ambiguous(
    store: Store, wrapped: Wrapped
) -> None:
    wrapped.ambiguous = {"compare_and_set", "renew"}
    lock = lock_on(wrapped, store)
    start = store.clock.monotonic()

    with pytest.raises(AmbiguousOutcome):
        lock.acquire(timeout=1.0, step=0.25)

    assert store.clock.monotonic() - start <= 1.0
    assert sum(wrapped.calls.values()) <= 20
    wrapped.ambiguous = set()
    assert lock.release() is True


def threads_inside_at_once(lock: Lock, threads: int = 8, rounds: int = 25) -> int:
    """Run ``threads`` workers looping acquire / critical section / release on one object."""
    inside = 0
    most = 0
    mutex = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        nonlocal inside, most
        try:
            for _ in range(rounds):
                lock.acquire(timeout=HANG_GUARD, step=0.001)
                with mutex:
                    inside += 1
                    most = max(most, inside)
                with mutex:
                    inside -= 1
                lock.release()
        except BaseException as error:  # reported below
            errors.append(error)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(3 * HANG_GUARD)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in workers)
    return most


def test_eight_threads_sharing_one_lock_are_never_inside_together() -> None:
    from mongoelector.backends import MemoryBackend

    assert threads_inside_at_once(Lock("job", MemoryBackend(), ttl=TTL)) == 1


def test_mutation_without_the_object_mutex_the_check_sees_two_inside(
    monkeypatch: pytest.MonkeyPatch, store: Store, wrapped: Wrapped
) -> None:
    """The object-level mutex switched off: the shared-object check must fail."""
    from mongoelector._common.lock_base import LockBase

    if store.kind != "memory":
        pytest.skip("one store is enough to show the check can fail")
    monkeypatch.setattr(LockBase, "_claim", lambda self, run, *, force: True)
    with pytest.raises(AssertionError):
        test_a_shared_lock_object_admits_one_thread(store, wrapped)


def test_a_release_of_unknown_outcome_spares_a_holding_another_thread_just_took(
    store: Store, wrapped: Wrapped
) -> None:
    """Scenario 6: release() after an ambiguous acquire reads the record while another
    thread of the same object acquires; the release must not free that new holding."""
    wrapped.ambiguous = {"compare_and_set", "renew"}
    lock = lock_on(wrapped, store)
    with pytest.raises(AmbiguousOutcome):
        lock.acquire(blocking=False)
    wrapped.ambiguous = set()
    wrapped.hold_get = True
    releaser = threading.Thread(target=lock.release)
    releaser.start()
    assert wrapped.held.wait(HANG_GUARD)  # the release is reading the record

    assert lock.acquire(blocking=False)  # another thread of the object acquires
    token = lock.ensure()
    wrapped.let_go()
    releaser.join(HANG_GUARD)

    assert not releaser.is_alive()
    assert lock.ensure() == token
    record = store.storage.get("job")
    assert record is not None and record.owner == lock.uuid and record.token == token
    with pytest.raises(LockExists):
        lock_on(store.storage, store).acquire(blocking=False)


class LosesForcedTries(Wrapped):
    """A forced ``compare_and_set`` is lost (never applied) once, then the store is down."""

    def __init__(self, inner: object) -> None:
        super().__init__(inner)  # type: ignore[arg-type]
        self.forced = 0

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        if force:
            self.forced += 1
            if self.forced == 1:
                raise AmbiguousOutcome("compare_and_set: lost before it reached the store")
            raise BackendUnavailable("compare_and_set: the store is down")
        return super().compare_and_set(request, force=force)


def test_a_forced_acquire_that_releases_the_objects_holding_stops_trusting_it(
    store: Store,
) -> None:
    """Found by the simulation (seeds 1607 and 1838, takeovers by a holder): a forced
    acquire whose try was lost finds the object's own holding, releases it by its token,
    then fails. The object must not go on trusting the holding it released."""
    lock = lock_on(LosesForcedTries(store.storage), store)
    lock.acquire(blocking=False)
    first = lock.ensure()

    with pytest.raises(BackendError):
        lock.acquire(blocking=False, force=True)

    record = store.storage.get("job")
    assert record is not None and record.token == first and record.owner is None
    assert lock.holding is None
    assert lock_on(store.storage, store).acquire(blocking=False)


def test_a_forced_acquire_never_enters_while_another_caller_is_acquiring(
    store: Store, wrapped: Wrapped
) -> None:
    """force=True overrides holders in the store, not the object's own mutex."""
    lock = lock_on(wrapped, store)
    wrapped.hold_cas = True
    first = threading.Thread(target=lock.acquire, kwargs={"blocking": False})
    first.start()
    assert wrapped.held.wait(HANG_GUARD)

    with pytest.raises(LockExists, match="being acquired by another caller"):
        lock.acquire(blocking=False, force=True)

    wrapped.let_go()
    first.join(HANG_GUARD)
    assert not first.is_alive()
    assert wrapped.calls["compare_and_set"] == 1
    assert lock.ensure() > 0


def test_a_try_still_in_flight_when_another_succeeds_is_settled_by_a_later_release(
    store: Store, wrapped: Wrapped
) -> None:
    """Review finding: the first try's reply is lost while the write is still on its way;
    the second try succeeds. That first write lands after the release; the next release()
    must still settle it (read the record, release it by its token)."""
    lock = lock_on(wrapped, store)
    wrapped.lose_cas = True
    assert lock.acquire(blocking=False)  # try 1 in flight, try 2 granted
    assert lock.release() is True
    [late] = wrapped.land_lost_writes()
    assert late.acquired and late.record is not None and late.record.owner == lock.uuid

    assert lock.release() is True  # reads the record, frees the late write by its token

    assert lock_on(store.storage, store).acquire(blocking=False)


def test_a_forced_acquire_by_the_holder_is_not_reported_as_a_loss(
    store: Store, wrapped: Wrapped
) -> None:
    """Review finding: while the forced write is in flight the object must already have
    stopped trusting (and renewing) its old holding, so its renewer never sees it taken."""
    losses: list[int | None] = []
    lock = Lock(
        "job",
        wrapped,  # type: ignore[arg-type]
        ttl=TTL,
        clock=store.clock,
        auto_renew=True,
        on_lost=lambda: losses.append(lock.token),
    )
    assert lock.acquire(blocking=False)
    first = lock.ensure()
    wrapped.hold_cas = True
    forcing = threading.Thread(target=lock.acquire, kwargs={"force": True})
    forcing.start()
    assert wrapped.held.wait(HANG_GUARD)
    assert lock.token is None  # the old holding is no longer trusted

    store.clock.advance(lock.retry_period)
    assert lock.wait_idle(HANG_GUARD)
    wrapped.let_go()
    forcing.join(HANG_GUARD)

    assert not forcing.is_alive()
    assert losses == [] and not lock.lost.is_set()
    assert lock.ensure() > first
    lock.release()
