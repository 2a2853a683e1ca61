"""N auto-renewed locks on one ``MongoBackend`` (mongomock) cost at most 2 commands per
renew interval, for N = 1, 10 and 1,000.

Each command mongomock is asked to run is counted: every outermost call of a
collection or database method, and each bulk operation executed. Everything
runs on a FakeClock, so nothing here measures time; ``GUARD`` real seconds only
bound waits that a broken build would never finish. The wire-level twin, on a
real pymongo client, is ``test_mongo_wire_renew_batches.py``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import mongomock
import mongomock.collection
import mongomock.database
import pytest

from mongoelector import Lock
from mongoelector._sync.renewer import running
from mongoelector.backends import MongoBackend
from mongoelector.core import batching
from mongoelector.testing import FakeClock
from tests.backends.mongo_pipeline_sim import install
from tests.fakes import wait_for

GUARD = 60.0  # real seconds; a hang guard, not a timing assertion
TTL = 15.0  # renew deadline 10 s, renewals every 2 s
INTERVAL = 2.0
INTERVALS = 3  # renew intervals counted, after the one in which the holdings line up

_COLLECTION_METHODS = (
    "find",
    "find_one",
    "find_one_and_update",
    "update_one",
    "update_many",
    "insert_one",
    "delete_one",
    "delete_many",
    "bulk_write",
    "create_index",
    "create_indexes",
)


class Commands:
    """Counts the commands mongomock is asked to run (outermost calls only), by name."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counted: Counter[str] = Counter()
        self._depth = threading.local()
        self._guard = threading.Lock()
        spied: dict[Any, tuple[str, ...]] = {
            mongomock.collection.Collection: _COLLECTION_METHODS,
            mongomock.collection.BulkOperationBuilder: ("execute",),
            mongomock.database.Database: ("command",),
        }
        for owner, names in spied.items():
            for name in names:
                monkeypatch.setattr(owner, name, self._spy(name, getattr(owner, name)))

    def _spy(self, name: str, original: Any) -> Any:
        def spy(this: Any, *args: Any, **kwargs: Any) -> Any:
            depth = getattr(self._depth, "value", 0)
            if depth == 0:
                with self._guard:
                    self.counted[name] += 1
            self._depth.value = depth + 1
            try:
                return original(this, *args, **kwargs)
            finally:
                self._depth.value = depth

        return spy

    @property
    def total(self) -> int:
        with self._guard:
            return sum(self.counted.values())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> Commands:
    return Commands(monkeypatch)


_made: list[Lock] = []
_databases: list[Any] = []


def database() -> Any:
    """A fresh mongomock database, emptied before the test's locks are released."""
    made = mongomock.MongoClient()["app"]
    _databases.append(made)
    return made


@pytest.fixture(autouse=True)
def nothing_left_behind(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    yield  # (before monkeypatch undoes the pipeline evaluator: the releases need it)
    made = list(_made)
    _made.clear()
    for each in _databases:  # mongomock scans a collection for every _id: release fast
        each.drop_collection("mongolocker")
    _databases.clear()
    for lock in made:
        lock.release()
    assert wait_for(lambda: [r for r in running() if r._clock is clock] == [], limit=GUARD)


def advance(clock: FakeClock, seconds: float, locks: list[Lock]) -> None:
    """Move the clock one second at a time; after each, wait until every renewer caught up."""
    for _ in range(int(seconds)):
        clock.advance(1.0)
        for lock in locks:
            assert lock.wait_idle(GUARD)


def commands_per_interval(
    n: int, backend: MongoBackend, clock: FakeClock, commands: Commands
) -> tuple[list[int], Counter[str]]:
    """Acquire ``n`` auto-renewed locks on ``backend``, in four groups 0.4 s apart; count the
    commands of each of :data:`INTERVALS` renew intervals after the first, and which."""
    locks = [Lock(f"job-{i}", backend, ttl=TTL, clock=clock, auto_renew=True) for i in range(n)]
    _made.extend(locks)
    for index, lock in enumerate(locks):
        lock.acquire()
        if n > 1 and index % max(1, n // 4) == 0:
            clock.advance(0.4)
    advance(clock, INTERVAL, locks)  # the holdings line up
    counts = []
    before_names = Counter(commands.counted)
    for _ in range(INTERVALS):
        before = commands.total
        advance(clock, INTERVAL, locks)
        counts.append(commands.total - before)
    assert all(lock.token is not None for lock in locks)  # every lock still holds
    return counts, Counter(commands.counted) - before_names


@pytest.mark.parametrize("n", [1, 10, 1000])
def test_n_locks_on_the_classic_path_cost_one_command_per_renew_interval(
    n: int, clock: FakeClock, commands: Commands
) -> None:
    backend = MongoBackend(database(), clock=clock)
    counts, names = commands_per_interval(n, backend, clock, commands)
    assert counts == [1] * INTERVALS  # at most 2 is the target
    # The holdings were seen through this backend: the bulk write alone, no read.
    assert names == Counter({"find_one_and_update" if n == 1 else "execute": INTERVALS})


@pytest.mark.parametrize("n", [1, 10])  # 1,000: the wire-level test (mongomock is slow at it)
def test_n_locks_on_the_pipeline_path_cost_at_most_two_commands_per_renew_interval(
    n: int, clock: FakeClock, commands: Commands, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(monkeypatch, clock.now)  # mongomock runs the MongoDB 4.2+ update pipelines
    backend = MongoBackend(database(), clock=clock, pipeline=True)
    counts, names = commands_per_interval(n, backend, clock, commands)
    assert all(count <= 2 for count in counts), counts
    if n == 1:
        assert names == Counter({"find_one_and_update": INTERVALS})  # one renew
    else:  # the bulk write, and the read that learns the $$NOW expiries
        assert names == Counter({"execute": INTERVALS, "find": INTERVALS})


def test_with_the_decision_mutated_to_never_batch_the_count_fails(
    clock: FakeClock, commands: Commands, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counts above are the batching decision's doing: without it, one command per lock."""
    monkeypatch.setattr(batching, "renew_together", lambda now, trigger, candidates, **kw: [[]])
    backend = MongoBackend(database(), clock=clock)
    counts, names = commands_per_interval(10, backend, clock, commands)
    assert counts == [10] * INTERVALS  # the bound of the tests above fails
    assert names == Counter({"find_one_and_update": 10 * INTERVALS})


def test_a_refused_renewal_in_a_batch_loses_that_lock_alone_for_one_more_read(
    clock: FakeClock, commands: Commands
) -> None:
    store = database()
    backend = MongoBackend(store, clock=clock)
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
    store["mongolocker"].delete_one({"_id": "job-4"})  # an operator removed it
    before = Counter(commands.counted)
    advance(clock, INTERVAL, locks)
    assert Counter(commands.counted) - before == Counter({"execute": 1, "find": 1})
    assert lost == Counter({"job-4": 1})
    assert locks[4].lost.is_set() and locks[4].token is None
    assert all(lock.token is not None for i, lock in enumerate(locks) if i != 4)
