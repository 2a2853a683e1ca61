"""N auto-renewed locks on one ``MongoBackend`` over a real pymongo client cost at most 2
commands per renew interval, for N = 1, 10 and 1,000.

The server is the scripted mockupdb primary on loopback; a
:class:`~tests.backends.mongo_wire_store.WireStore` answers and counts every
lease command it receives (``hello`` and ``createIndexes`` are answered apart,
and are no lease work). Locks run on a FakeClock, so nothing here measures
time; ``GUARD`` real seconds only bound waits that a broken build would never
finish. The pipeline path (what MongoDB 4.2+ gets): a batch is one ``update``
and one ``find`` (only the read learns the ``$$NOW`` expiries), one holding
alone is one ``findAndModify``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from mongoelector import Lock
from mongoelector._sync.renewer import running
from mongoelector.backends import MongoBackend
from mongoelector.core import batching
from mongoelector.testing import FakeClock
from tests.backends.mongo_wire_store import WireStore
from tests.backends.mongo_wire_support import NOW, Primary
from tests.fakes import wait_for

GUARD = 60.0  # real seconds; a hang guard, not a timing assertion
TTL = 15.0  # renew deadline 10 s, renewals every 2 s
INTERVAL = 2.0
INTERVALS = 3  # renew intervals counted, after the one in which the holdings line up


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def store(primary: Primary) -> WireStore:
    return WireStore(primary)


_made: list[Lock] = []


@pytest.fixture(autouse=True)
def nothing_left_behind(clock: FakeClock, store: WireStore) -> Iterator[None]:
    yield  # (before the primary and its clients stop: the releases need them)
    made = list(_made)
    _made.clear()
    for lock in made:
        lock.release()
    assert wait_for(lambda: [r for r in running() if r._clock is clock] == [], limit=GUARD)


def backend_on(primary: Primary, clock: FakeClock) -> MongoBackend:
    return MongoBackend(primary.client(retryWrites=False)["app"], clock=clock, timeout=3)


def advance(clock: FakeClock, seconds: float, locks: list[Lock]) -> None:
    """Move the clock one second at a time; after each, wait until every renewer caught up."""
    for _ in range(int(seconds)):
        clock.advance(1.0)
        for lock in locks:
            assert lock.wait_idle(GUARD)


def commands_per_interval(
    n: int, backend: MongoBackend, clock: FakeClock, store: WireStore
) -> tuple[list[int], Counter[str]]:
    """Acquire ``n`` auto-renewed locks in four groups 0.4 s apart; count the commands of
    each of :data:`INTERVALS` renew intervals after the first, and which."""
    locks = [Lock(f"job-{i}", backend, ttl=TTL, clock=clock, auto_renew=True) for i in range(n)]
    _made.extend(locks)
    for index, lock in enumerate(locks):
        lock.acquire()
        if n > 1 and index % max(1, n // 4) == 0:
            clock.advance(0.4)
    advance(clock, INTERVAL, locks)  # the holdings line up
    before_names = store.counted()
    counts = []
    for _ in range(INTERVALS):
        before = store.total
        advance(clock, INTERVAL, locks)
        counts.append(store.total - before)
    assert all(lock.token is not None for lock in locks)  # every lock still holds
    return counts, store.counted() - before_names


@pytest.mark.parametrize("n", [1, 10, 1000])
def test_n_locks_cost_at_most_two_commands_per_renew_interval(
    n: int, primary: Primary, clock: FakeClock, store: WireStore
) -> None:
    counts, names = commands_per_interval(n, backend_on(primary, clock), clock, store)
    assert all(count <= 2 for count in counts), counts
    if n == 1:
        assert names == Counter({"findAndModify": INTERVALS})  # its own renew
    else:
        assert names == Counter({"update": INTERVALS, "find": INTERVALS})


def test_with_the_decision_mutated_to_never_batch_the_count_fails(
    primary: Primary, clock: FakeClock, store: WireStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counts above are the batching decision's doing: without it, one command per lock."""
    monkeypatch.setattr(batching, "renew_together", lambda now, trigger, candidates, **kw: [[]])
    counts, names = commands_per_interval(10, backend_on(primary, clock), clock, store)
    assert counts == [10] * INTERVALS  # the bound of the test above fails
    assert names == Counter({"findAndModify": 10 * INTERVALS})


def test_a_refused_renewal_in_a_batch_loses_that_lock_alone(
    primary: Primary, clock: FakeClock, store: WireStore
) -> None:
    backend = backend_on(primary, clock)
    lost = Counter[str]()
    locks = [
        Lock(
            f"job-{i}",
            backend,
            ttl=TTL,
            clock=clock,
            auto_renew=True,
            on_lost=lambda i=i: lost.update([f"job-{i}"]),
        )
        for i in range(10)
    ]
    _made.extend(locks)
    for lock in locks:
        lock.acquire()
    del store.documents["job-4"]  # an operator removed it
    before = store.counted()
    advance(clock, INTERVAL, locks)
    assert store.counted() - before == Counter({"update": 1, "find": 1})
    assert lost == Counter({"job-4": 1})
    assert all(lock.token is not None for i, lock in enumerate(locks) if i != 4)
