"""A primary that steps down under a held lease and under an election: real replica set only.

Set ``MONGOELECTOR_TEST_URI`` to a replica set (``...?replicaSet=<name>``) whose
user may run ``replSetStepDown``; on anything else these tests skip with the
reason (or fail, with ``MONGOELECTOR_TEST_REQUIRE_FAILOVER=1``, as in CI).
``scripts/mongodb-replset.sh start`` starts such a set in docker.

What a failover may do: make renewals fail for a while, so that a holder
gives its lease up at its renew deadline. What it must never do, and what
these tests assert: leak a lease (after a release or a reported loss another
lock takes it within a ttl), hand a lease to two holders at once, or let a
fencing token go down (the token counter survives the election of a new
primary, since lease writes wait for a majority). Waits are bounded by the
lease times plus slack; nothing asserts speed.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest

from mongoelector import LeaderElector, LeaderInfo, Lock, LockExists, LockLost
from mongoelector.backends import LeaseRecord, MongoBackend
from mongoelector.errors import AmbiguousOutcome, BackendError
from tests.backends.mongo_failover_support import (
    URI,
    Watch,
    connect,
    require_failover,
    step_down,
    strictly_increasing,
    wait_for_primary,
    wait_until,
)

pytestmark = [
    pytest.mark.skipif(
        not URI, reason="set MONGOELECTOR_TEST_URI to a MongoDB replica set to run failover tests"
    ),
    pytest.mark.slow,
]

KEY = "job"
#: Long enough for a holder to renew through an election (renew deadline ttl * 2/3).
TTL = 8.0
#: Scheduling and round trips on a shared CI machine, on top of lease bounds.
SLACK = 5.0


@pytest.fixture
def client() -> Iterator[pymongo.MongoClient[Any]]:
    client = connect()
    yield client
    client.close()


@pytest.fixture
def database(client: pymongo.MongoClient[Any]) -> Iterator[Any]:
    """A fresh database on a replica set the test may fail over; left with a primary."""
    require_failover(client)
    name = f"mongoelector_failover_{uuid.uuid4().hex[:12]}"
    yield client[name]
    wait_for_primary(client)
    client.drop_database(name)


def read(backend: MongoBackend) -> LeaseRecord | None:
    """The lease record, read again while the store is still failing over (bounded by SLACK)."""
    deadline = time.monotonic() + SLACK
    while True:
        try:
            return backend.get(KEY)
        except BackendError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def new_lock(database: Any, **options: Any) -> Lock:
    """A lock on :data:`KEY` with its own backend, as another process would have."""
    return Lock(KEY, MongoBackend(database), ttl=TTL, **options)


class Contender:
    """A second lock trying to take the lease every quarter second, in a thread, until it does.

    When it gets the lease it notes whether the holder still trusted its own
    holding at that moment: if it did, two holders acted at once.
    """

    def __init__(self, database: Any, holder: Lock) -> None:
        self.lock = new_lock(database)
        self.holder = holder
        self.token: int | None = None
        self.holder_token_then: int | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="contender", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                if self.lock.acquire(blocking=False):
                    self.holder_token_then = self.holder.token
                    self.token = self.lock.token
                    return
            except AmbiguousOutcome:
                self._settle()
            except (LockExists, BackendError):
                pass
            self._stopped.wait(0.25)

    def _settle(self) -> None:
        """Free what an acquire of unknown outcome may have taken, so the next try is clean."""
        with contextlib.suppress(BackendError):
            self.lock.release()

    def wait(self, timeout: float) -> bool:
        """True once the contender holds the lease; False if ``timeout`` seconds passed first."""
        self._thread.join(timeout)
        return self.token is not None

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


def test_a_held_lease_survives_a_step_down_or_reports_its_loss_and_never_leaks(
    client: pymongo.MongoClient[Any], database: Any
) -> None:
    backend = MongoBackend(database)
    losses: list[float] = []
    holder = new_lock(database, auto_renew=True, on_lost=lambda: losses.append(time.monotonic()))
    assert holder.acquire(timeout=TTL)
    first = holder.token
    assert first is not None
    time.sleep(2 * holder.retry_period)  # renewed on the old primary
    contender = Contender(database, holder)

    step_down(client)
    wait_for_primary(client)
    after_election = read(backend)
    # A renewer that cannot renew through the new primary gives the holding up at its renew
    # deadline: watch it for that long after the election, and a few retry periods more.
    lost = holder.lost.wait(holder.renew_deadline + 3 * holder.retry_period)

    if not lost:
        record = read(backend)
        assert record is not None and after_election is not None
        assert (record.owner, record.token, holder.token) == (holder.uuid, first, first)
        assert record.expires_at > after_election.expires_at, "not renewed since the election"
        contender.stop()
        assert contender.token is None, "a second lock took a lease its holder kept renewing"
        assert holder.release() is True
        successor = new_lock(database)
        assert successor.acquire(blocking=False), "the released lease is still held"
    else:
        assert holder.token is None
        with pytest.raises(LockLost):
            holder.ensure()
        assert wait_until(lambda: len(losses) == 1, SLACK), "on_lost was not called once"
        assert contender.wait(TTL + SLACK), "the lost lease leaked: nobody took it within a ttl"
        assert contender.holder_token_then is None, "the holder still trusted a taken lease"
        successor = contender.lock
        assert holder.release() is False, "the lost holder's release freed its successor"
        assert successor.owned()

    tokens = [first, successor.token]
    assert successor.release() is True
    last = new_lock(database)
    assert last.acquire(blocking=False), "the released lease is still held"
    tokens.append(last.token)
    assert last.release() is True
    assert None not in tokens and strictly_increasing(tokens), tokens  # type: ignore[arg-type]


class Gains:
    """Tokens of the terms the nodes gained, in the order their ``on_leader`` callbacks ran."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: list[int] = []

    def add(self, token: int) -> None:
        with self._lock:
            self._tokens.append(token)

    def tokens(self) -> list[int]:
        with self._lock:
            return list(self._tokens)


class Node:
    """One elector of the election, recording the fencing tokens its callbacks report."""

    def __init__(self, database: Any, gains: Gains) -> None:
        #: Tokens of every term this node saw, in order (``on_new_leader``).
        self.seen: list[int] = []
        self._gains = gains
        self.elector = LeaderElector(
            KEY,
            MongoBackend(database),
            ttl=TTL,
            on_leader=self._on_leader,
            on_new_leader=self._on_new_leader,
        )

    def _on_leader(self) -> None:
        token = self.elector.token
        if token is not None:
            self._gains.add(token)

    def _on_new_leader(self, leader: LeaderInfo) -> None:
        self.seen.append(leader.token)


def the_leader(nodes: list[Node], backend: MongoBackend) -> Node | None:
    """The one node that leads and whose term the store holds, or None."""
    leaders = [node for node in nodes if node.elector.is_leader]
    if len(leaders) != 1:
        return None
    try:
        record = backend.get(KEY)
    except BackendError:
        return None  # still failing over: ask again
    leader = leaders[0].elector
    if record is None or (record.owner, record.token) != (leader.uuid, leader.token):
        return None
    return leaders[0]


def leaders(nodes: list[Node]) -> set[str]:
    return {node.elector.uuid for node in nodes if node.elector.is_leader}


def at_most_one_leader(nodes: list[Node]) -> None:
    """No two nodes lead at once.

    The nodes are read one after the other, so a hand-over can show both the
    old leader (read just before it let go) and the new one; a node that has
    let go no longer leads a moment later, while two real leaders both still
    would (each trusts its term until its renew deadline, seconds away).
    """
    seen = leaders(nodes)
    if len(seen) > 1:
        time.sleep(0.2)
        both = seen & leaders(nodes)
        assert len(both) <= 1, f"two leaders at once: {sorted(both)}"


def test_a_step_down_in_the_middle_of_an_election_leaves_one_leader_and_no_leak(
    client: pymongo.MongoClient[Any], database: Any
) -> None:
    backend = MongoBackend(database)
    gains = Gains()
    nodes = [Node(database, gains) for _ in range(3)]
    watch = Watch(lambda: at_most_one_leader(nodes))
    try:
        for node in nodes:
            node.elector.start()
        assert wait_until(lambda: the_leader(nodes, backend) is not None, 2 * TTL + SLACK)
        first = the_leader(nodes, backend)
        assert first is not None and first.elector.token is not None
        first_token = first.elector.token
        assert wait_until(lambda: first_token in gains.tokens(), SLACK), "on_leader did not run"

        # The election: the leader lets go, and while the three race for the free lease the
        # primary steps down. A release that fails in the failover leaves the lease to expire.
        def let_go() -> None:
            with contextlib.suppress(BackendError):
                first.elector.release()

        releasing = threading.Thread(target=let_go, name="release")
        releasing.start()
        step_down(client)
        releasing.join()
        wait_for_primary(client)

        assert wait_until(lambda: the_leader(nodes, backend) is not None, 2 * TTL + SLACK), (
            "no single leader after the failover"
        )
        leader = the_leader(nodes, backend)
        assert leader is not None and leader.elector.token is not None
        final = leader.elector.token
        assert final > first_token
        assert wait_until(lambda: final in gains.tokens(), SLACK), (
            "on_leader of the last term did not run"
        )
        assert wait_until(lambda: all(final in node.seen for node in nodes), 2 * TTL + SLACK)
    finally:
        for node in nodes:
            node.elector.stop()
        watch.stop()

    history = gains.tokens()
    assert strictly_increasing(history), f"a token went down: {history}"
    assert first_token in history and history[-1] == final, history
    for node in nodes:
        assert strictly_increasing(node.seen), f"a token went down: {node.seen}"

    fresh = new_lock(database)
    assert fresh.acquire(blocking=False), "the electors' stop() left the lease held"
    assert fresh.token is not None and fresh.token > final
    assert fresh.release() is True
