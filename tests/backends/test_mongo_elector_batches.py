"""N holdings kept by started, leading electors on one ``MongoBackend`` cost at most 2
commands per renew interval, for N = 1, 10 and 1,000: on mongomock and on the wire (a real
pymongo client against the scripted mockupdb primary), electors alone and half of them
auto-renewed locks instead.

A leader's poll is a renewal; on a backend that renews in batches it goes out in
the same ``renew_many`` calls as the locks' renewals (``test_mongo_renew_batches.py``
and ``test_mongo_wire_renew_batches.py`` count the locks alone). Everything runs on
a FakeClock; ``GUARD`` real seconds only bound waits a broken build would never finish.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import mongomock
import pytest

from mongoelector import LeaderElector, Lock
from mongoelector._sync import elector as elector_module
from mongoelector._sync import scheduler
from mongoelector.backends import MongoBackend
from mongoelector.testing import FakeClock
from tests.backends.mongo_wire_store import WireStore
from tests.backends.mongo_wire_support import NOW, Primary
from tests.backends.test_mongo_renew_batches import Commands
from tests.fakes import wait_for
from tests.holders import advance, settle

GUARD = 60.0  # real seconds; a hang guard, not a timing assertion
TTL = 15.0  # renew deadline 10 s, renewals every 2 s
INTERVAL = 2.0
INTERVALS = 3  # renew intervals counted, after the one in which the holdings line up

_made: list[LeaderElector | Lock] = []
_databases: list[Any] = []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture(autouse=True)
def nothing_left_behind(clock: FakeClock) -> Iterator[None]:
    yield
    clean_up(clock)


def clean_up(clock: FakeClock) -> None:
    """Stop the test's electors and release its locks; no loop of ``clock`` is left."""
    made = list(_made)
    _made.clear()
    for each in _databases:  # mongomock scans a collection for every _id: release fast
        each.drop_collection("mongolocker")
    _databases.clear()
    for holder in made:
        if isinstance(holder, LeaderElector):
            holder.stop()
        else:
            holder.release()
    assert wait_for(lambda: scheduler.scheduled(clock) == 0, limit=GUARD)


def mongomock_backend(clock: FakeClock) -> MongoBackend:
    database = mongomock.MongoClient()["app"]
    _databases.append(database)
    return MongoBackend(database, clock=clock)


def wire_backend(primary: Primary, clock: FakeClock) -> MongoBackend:
    return MongoBackend(primary.client(retryWrites=False)["app"], clock=clock, timeout=3)


def hold(n: int, backend: MongoBackend, clock: FakeClock, *, locks: bool) -> list[Any]:
    """``n`` holdings: started electors of their own keys (with ``locks``, half of them
    auto-renewed locks instead), taken in four groups 0.4 s apart; every one leads (holds)."""
    holders: list[Any] = []
    n_locks = n // 2 if locks else 0
    if n_locks:
        for index in range(n_locks):
            lock = Lock(f"job-{index}", backend, ttl=TTL, clock=clock, auto_renew=True)
            _made.append(lock)
            lock.acquire()
            holders.append(lock)
            if index % max(1, n_locks // 4) == 0:
                clock.advance(0.4)
    electors = []
    for index in range(n - n_locks):
        made = LeaderElector(f"tenant-{index}", backend, ttl=TTL, clock=clock, report_status=False)
        _made.append(made)
        made.start()
        electors.append(made)
        if n > 1 and index % max(1, (n - n_locks) // 4) == 0:
            clock.advance(0.4)
    holders.extend(electors)
    settle(holders)
    assert all(each.is_leader for each in electors)
    return holders


def per_interval(
    clock: FakeClock, holders: list[Any], total: Any, *, all_hold: bool = True
) -> list[int]:
    """The commands of each of :data:`INTERVALS` renew intervals after the holdings lined up."""
    advance(clock, INTERVAL, holders)
    counts = []
    for _ in range(INTERVALS):
        before = total()
        advance(clock, INTERVAL, holders)
        counts.append(total() - before)
    assert not all_hold or all(
        holder.is_leader if isinstance(holder, LeaderElector) else holder.token is not None
        for holder in holders
    )
    return counts


class OnTheWire:
    """Tests on the wire: a store that counts what the real client sends, and the test's
    holders ended before the primary and its clients stop (the releases need them)."""

    @pytest.fixture
    def store(self, primary: Primary) -> WireStore:
        return WireStore(primary)

    @pytest.fixture(autouse=True)
    def clean_up_first(self, primary: Primary, clock: FakeClock) -> Iterator[None]:
        yield
        clean_up(clock)  # before the primary and its clients stop: the releases need them


class TestOnMongomock:
    @pytest.fixture
    def commands(self, monkeypatch: pytest.MonkeyPatch) -> Commands:
        return Commands(monkeypatch)

    @pytest.mark.parametrize("locks", [False, True], ids=["electors", "electors+locks"])
    @pytest.mark.parametrize("n", [1, 10, 1000])
    def test_n_leaders_cost_at_most_two_commands_per_renew_interval(
        self, n: int, locks: bool, clock: FakeClock, commands: Commands
    ) -> None:
        if n == 1 and locks:
            pytest.skip("one holding is a lock or an elector")
        holders = hold(n, mongomock_backend(clock), clock, locks=locks)
        before = Counter(commands.counted)
        counts = per_interval(clock, holders, lambda: commands.total)
        assert all(count <= 2 for count in counts), counts
        names = Counter(commands.counted) - before
        if n == 1:
            assert names == Counter({"find_one_and_update": INTERVALS + 1})  # its own renew
        else:  # one bulk write per interval (the holdings were seen: no read)
            assert names == Counter({"execute": INTERVALS + 1})

    def test_with_batching_turned_off_for_electors_the_count_fails(
        self, clock: FakeClock, commands: Commands, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(elector_module, "renews_in_batches", lambda backend: False)
        holders = hold(10, mongomock_backend(clock), clock, locks=False)
        counts = per_interval(clock, holders, lambda: commands.total)
        assert counts == [10] * INTERVALS  # the bound of the test above fails

    def test_a_refused_renewal_in_a_batch_steps_that_elector_down_alone(
        self, clock: FakeClock, commands: Commands
    ) -> None:
        backend = mongomock_backend(clock)
        holders = hold(10, backend, clock, locks=False)
        advance(clock, INTERVAL, holders)  # they line up
        _databases[-1]["mongolocker"].update_one(
            {"_id": "tenant-4"}, {"$set": {"uuid": "someone-else"}}
        )  # taken over
        before = Counter(commands.counted)
        advance(clock, INTERVAL, holders)
        names = Counter(commands.counted) - before
        # the batch, and one read to tell which item was refused; then tenant-4 tries anew
        assert (names["execute"], names["find"]) == (1, 1)
        assert names.total() <= 3
        assert [each.is_leader for each in holders] == [i != 4 for i in range(10)]


class TestOnTheWire(OnTheWire):
    @pytest.mark.parametrize("locks", [False, True], ids=["electors", "electors+locks"])
    @pytest.mark.parametrize("n", [1, 10, 1000])
    def test_n_leaders_cost_at_most_two_commands_per_renew_interval(
        self, n: int, locks: bool, primary: Primary, clock: FakeClock, store: WireStore
    ) -> None:
        if n == 1 and locks:
            pytest.skip("one holding is a lock or an elector")
        holders = hold(n, wire_backend(primary, clock), clock, locks=locks)
        before = store.counted()
        counts = per_interval(clock, holders, lambda: store.total)
        assert all(count <= 2 for count in counts), counts
        names = store.counted() - before
        if n == 1:
            assert names == Counter({"findAndModify": INTERVALS + 1})  # its own renew
        else:  # one update, and one read of the $$NOW expiries
            assert names == Counter({"update": INTERVALS + 1, "find": INTERVALS + 1})

    def test_with_batching_turned_off_for_electors_the_count_fails(
        self,
        primary: Primary,
        clock: FakeClock,
        store: WireStore,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(elector_module, "renews_in_batches", lambda backend: False)
        holders = hold(10, wire_backend(primary, clock), clock, locks=False)
        counts = per_interval(clock, holders, lambda: store.total)
        assert counts == [10] * INTERVALS


def leaders_and_followers(n: int, backend: MongoBackend, clock: FakeClock) -> list[Any]:
    """``n`` leading electors, then ``n`` following ones of the same keys; all of them."""
    leaders = hold(n, backend, clock, locks=False)
    followers = []
    for index in range(n):
        made = LeaderElector(f"tenant-{index}", backend, ttl=TTL, clock=clock, report_status=False)
        _made.append(made)
        made.start()
        followers.append(made)
        if n > 1 and index % max(1, n // 4) == 0:
            clock.advance(0.4)
    settle(followers)
    assert not any(each.is_leader for each in followers)
    return [*leaders, *followers]


def check_followers(holders: list[Any]) -> None:
    n = len(holders) // 2
    for leader, follower in zip(holders[:n], holders[n:], strict=True):
        assert leader.is_leader and not follower.is_leader
        assert follower.leader is not None and follower.leader.uuid == leader.uuid


class TestFollowersOnMongomock:
    @pytest.fixture
    def commands(self, monkeypatch: pytest.MonkeyPatch) -> Commands:
        return Commands(monkeypatch)

    @pytest.mark.parametrize("n", [10, 1000])
    def test_n_leaders_and_n_followers_cost_two_commands_per_poll_window(
        self, n: int, clock: FakeClock, commands: Commands
    ) -> None:
        """One bulk write renews the leaders, one ``find`` reads the followers' records."""
        holders = leaders_and_followers(n, mongomock_backend(clock), clock)
        # The first interval, while the followers' polls spread out and line up, may
        # take a call more (a poll due before the others joined): its kinds are not counted.
        advance(clock, INTERVAL, holders)
        before = Counter(commands.counted)
        counts = per_interval(clock, holders, lambda: commands.total, all_hold=False)
        assert counts == [2] * INTERVALS
        assert Counter(commands.counted) - before == Counter(
            {"execute": INTERVALS + 1, "find": INTERVALS + 1}
        )
        check_followers(holders)

    def test_with_read_batching_turned_off_the_count_fails(
        self, clock: FakeClock, commands: Commands, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(elector_module, "reads_in_batches", lambda backend: False)
        holders = leaders_and_followers(10, mongomock_backend(clock), clock)
        counts = per_interval(clock, holders, lambda: commands.total, all_hold=False)
        assert counts == [11] * INTERVALS  # one try per follower


class TestFollowersOnTheWire(OnTheWire):
    @pytest.mark.parametrize("n", [10, 1000])
    def test_n_leaders_and_n_followers_cost_at_most_three_commands_per_poll_window(
        self, n: int, primary: Primary, clock: FakeClock, store: WireStore
    ) -> None:
        """The leaders' batch is one ``update`` and one ``find`` (the pipeline path reads the
        ``$$NOW`` expiries); the followers' records are one more ``find``."""
        holders = leaders_and_followers(n, wire_backend(primary, clock), clock)
        before = store.counted()
        counts = per_interval(clock, holders, lambda: store.total, all_hold=False)
        assert counts == [3] * INTERVALS
        assert set(store.counted() - before) == {"update", "find"}  # no try, no findAndModify
        check_followers(holders)


# --- status reports (report_status=True, the default) ----------------------------------------

STATUS_INTERVAL = TTL / 3  # a report falls due every 5 s (sent at the poll after: 6 s)
WINDOWS = 3  # status intervals counted, after two in which the reports line up


def reporting(n: int, backend: MongoBackend, clock: FakeClock) -> list[LeaderElector]:
    """``n`` started electors of their own keys with status reports on (the default),
    taken in four groups 0.4 s apart; every one leads."""
    electors = []
    for index in range(n):
        made = LeaderElector(f"tenant-{index}", backend, ttl=TTL, clock=clock)
        _made.append(made)
        made.start()
        electors.append(made)
        if n > 1 and index % max(1, n // 4) == 0:
            clock.advance(0.4)
    settle(electors)
    assert all(each.is_leader for each in electors)
    return electors


def per_status_window(
    clock: FakeClock, electors: list[LeaderElector], status_calls: Any, total: Any
) -> tuple[list[int], list[int]]:
    """The status calls of each of :data:`WINDOWS` status intervals after two in which the
    reports lined up, and every command of each renew interval meanwhile."""
    advance(clock, 2 * STATUS_INTERVAL, electors)
    statuses, commands = [], []
    for _ in range(WINDOWS):
        before_status = status_calls()
        for _ in range(int(STATUS_INTERVAL // INTERVAL)):
            before = total()
            advance(clock, INTERVAL, electors)
            commands.append(total() - before)
        advance(clock, STATUS_INTERVAL % INTERVAL, electors)
        statuses.append(status_calls() - before_status)
    assert all(each.is_leader for each in electors)
    return statuses, commands


class StatusCalls:
    """Counts the status calls made of MongoBackend (one report or a batch: one call each)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self._guard = threading.Lock()
        for name in ("report_member", "report_members"):
            monkeypatch.setattr(MongoBackend, name, self._spy(getattr(MongoBackend, name)))

    def _spy(self, original: Any) -> Any:
        def spy(this: Any, *args: Any) -> Any:
            with self._guard:
                self.count += 1
            return original(this, *args)

        return spy

    def __call__(self) -> int:
        with self._guard:
            return self.count


class TestStatusReportsOnMongomock:
    @pytest.mark.parametrize("n", [10, 1000])
    def test_n_reporting_electors_send_one_status_call_per_status_interval(
        self, n: int, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        commands = Commands(monkeypatch)
        status_calls = StatusCalls(monkeypatch)
        backend = mongomock_backend(clock)
        electors = reporting(n, backend, clock)
        statuses, per_renewal = per_status_window(
            clock, electors, status_calls, lambda: commands.total
        )
        assert all(count <= 1 for count in statuses), statuses
        assert all(count <= 3 for count in per_renewal), per_renewal  # 1 renewal + 1 status
        shown = {m.uuid for each in electors for m in backend.members(each.key)}
        assert shown == {each.uuid for each in electors}

    def test_with_status_batching_turned_off_the_count_fails(
        self, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(elector_module, "reports_in_batches", lambda backend: False)
        status_calls = StatusCalls(monkeypatch)
        electors = reporting(10, mongomock_backend(clock), clock)
        statuses, _ = per_status_window(clock, electors, status_calls, lambda: 0)
        assert not all(count <= 1 for count in statuses), statuses  # the bound above fails


class TestStatusReportsOnTheWire(OnTheWire):
    @pytest.mark.parametrize("n", [10, 1000])
    def test_n_reporting_electors_send_one_status_update_per_status_interval(
        self, n: int, primary: Primary, clock: FakeClock, store: WireStore
    ) -> None:
        electors = reporting(n, wire_backend(primary, clock), clock)
        statuses, per_renewal = per_status_window(
            clock, electors, lambda: store.counted()["status update"], lambda: store.total
        )
        assert all(count <= 1 for count in statuses), statuses
        assert sum(statuses) >= WINDOWS - 1
        assert all(count <= 3 for count in per_renewal), per_renewal  # ≤2 renew + 1 status
        assert store.reported == {each.uuid for each in electors}
        # the upserts one report sends, stamped by the server's own $$NOW (pipeline path)
        statement = store.last_status[0]
        assert statement["upsert"] is True
        assert statement["u"][0]["$set"]["timestamp"] == "$$NOW"
