"""``fenced_transaction`` on the wire: the exact commands of a fenced transaction (mockupdb).

A lock (or leader) on ``MongoBackend`` / ``AsyncMongoBackend`` opens a
transaction on the backend's own client; the block inserts one document; the
scripted primary answers every command. Each scenario runs with ``Lock`` and
``AsyncLock``; the leader's variant runs once with each elector.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mongoelector import LeaderElector, Lock
from mongoelector.aio import AsyncLeaderElector, AsyncLock
from mongoelector.backends import MemoryBackend
from mongoelector.core.events import LossReason
from mongoelector.errors import AmbiguousOutcome, BackendUnavailable, LockLost
from mongoelector.monitoring import EventListener, LeadershipLostEvent
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import EventLoopThread
from tests.backends.mongo_wire_support import (
    KINDS,
    NOW,
    Primary,
    answer_acquire,
    inner,
    lease_document,
    make_backend,
    warm_up,
)

GUARD = 10.0  # real seconds: a hang guard, never reached when things work
TOKEN = 5


class Boom(Exception):
    pass


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Holder:
    """A lock of ``kind`` holding ``job`` with token 5, and a way to run a fenced block."""

    def __init__(self, primary: Primary, loop: EventLoopThread, kind: str) -> None:
        self.primary, self.loop, self.kind = primary, loop, kind
        backend = make_backend(primary, kind, retryWrites=False)
        self.backend = inner(backend)
        self.client = self.backend.database.client
        warm_up(primary, backend)
        self.lock: Lock | AsyncLock
        self.on_lost: list[int] = []
        self.losses = Losses()
        options: dict[str, Any] = {
            "ttl": 10,
            "clock": self.backend.clock,
            "on_lost": lambda: self.on_lost.append(1),
            "event_listeners": [self.losses],
        }
        if kind == "async":
            self.lock = AsyncLock("job", self.backend, **options)
        else:
            self.lock = Lock("job", self.backend, **options)
        acquiring = self.start(self.lock.acquire)
        answer_acquire(primary.receives("findAndModify"), token=TOKEN)
        assert acquiring.result(GUARD) is True
        assert self.lock.token == TOKEN

    def settle(self) -> None:
        """Let the event loop run what is due (an ``AsyncLock``'s ``on_lost`` is a task)."""
        if self.kind == "async":
            for _ in range(3):
                self.loop.run(asyncio.sleep(0))

    def start(self, call: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        """Run ``call`` (a coroutine function for the async kind) off the test thread."""
        if self.kind == "async":
            return asyncio.run_coroutine_threadsafe(call(), self.loop.loop)
        pool = concurrent.futures.ThreadPoolExecutor(1)
        future = pool.submit(call)
        pool.shutdown(wait=False)
        return future

    def fenced(
        self, block: Callable[[Any, Any], Any] | None = None, holder: Any = None
    ) -> concurrent.futures.Future[Any]:
        """Start a fenced transaction whose block inserts ``{_id: 1}`` into ``app.orders``."""
        holder = self.lock if holder is None else holder
        orders = self.client["app"]["orders"]

        def sync_run() -> None:
            with holder.fenced_transaction(self.client) as session:
                orders.insert_one({"_id": 1}, session=session)
                if block is not None:
                    block(orders, session)

        async def async_run() -> None:
            async with holder.fenced_transaction(self.client) as session:
                await orders.insert_one({"_id": 1}, session=session)
                if block is not None:
                    block(orders, session)

        return self.start(async_run if self.kind == "async" else sync_run)


class Losses(EventListener):
    def __init__(self) -> None:
        self.events: list[LeadershipLostEvent] = []

    def leadership_lost(self, event: LeadershipLostEvent) -> None:
        self.events.append(event)


@pytest.fixture
def holder(primary: Primary, loop: EventLoopThread, kind: str) -> Holder:
    return Holder(primary, loop, kind)


def receive_insert(primary: Primary) -> Any:
    """The block's insert: it starts the transaction."""
    insert = primary.receives("insert")
    assert insert["insert"] == "orders"
    assert insert["$db"] == "app"
    assert insert["documents"] == [{"_id": 1}]
    assert insert["startTransaction"] is True
    assert insert["autocommit"] is False
    assert insert["readConcern"] == {"level": "snapshot"}
    assert "writeConcern" not in insert  # the transaction's, sent at commit
    insert.ok(n=1)
    return insert


def receive_check(primary: Primary, insert: Any, *, key: str, owner: str, token: int) -> Any:
    """The lock-record check: an update in the same transaction, not yet answered."""
    check = primary.receives("update")
    assert check["update"] == "mongolocker"
    assert check["$db"] == "app"
    assert check["updates"] == [
        {
            "q": {
                "_id": key,
                "locked": True,
                "uuid": owner,
                "token": token,
                "$expr": {"$gt": ["$ts_expire", "$$NOW"]},
            },
            "u": {"$inc": {"fenced_commits": 1}},
            "multi": False,
            "upsert": False,
        }
    ]
    assert check["lsid"] == insert["lsid"]
    assert check["txnNumber"] == insert["txnNumber"]
    assert check["autocommit"] is False
    assert "startTransaction" not in check
    assert "writeConcern" not in check
    return check


def receive_end(primary: Primary, insert: Any, command: str) -> Any:
    end = primary.receives(command)
    assert end["$db"] == "admin"
    assert end["lsid"] == insert["lsid"]
    assert end["txnNumber"] == insert["txnNumber"]
    assert end["autocommit"] is False
    assert end["writeConcern"] == {"w": "majority"}
    return end


def test_the_block_then_the_check_then_the_commit(primary: Primary, holder: Holder) -> None:
    done = holder.fenced()
    insert = receive_insert(primary)
    check = receive_check(primary, insert, key="job", owner=holder.lock.uuid, token=TOKEN)
    check.ok(n=1, nModified=1)
    receive_end(primary, insert, "commitTransaction").ok()
    assert done.result(GUARD) is None
    assert primary.idle()


def fail_the_check(primary: Primary, insert: Any, failure: str, owner: str) -> None:
    """Make the transaction fail by ``failure``: the check matches nothing, the check meets a
    write conflict, or the commit does."""
    check = receive_check(primary, insert, key="job", owner=owner, token=TOKEN)
    if failure == "no-match":
        check.ok(n=0, nModified=0)
        receive_end(primary, insert, "abortTransaction").ok()
    elif failure == "check-conflict":
        check.command_err(112, "WriteConflict", errorLabels=["TransientTransactionError"])
        receive_end(primary, insert, "abortTransaction").ok()
    else:
        check.ok(n=1, nModified=1)
        receive_end(primary, insert, "commitTransaction").command_err(
            112, "WriteConflict", errorLabels=["TransientTransactionError"]
        )


FAILURES = {
    "no-match": "no longer belongs to this acquisition or has expired",
    "check-conflict": "written concurrently",
    "commit-conflict": "commitTransaction met a write conflict",
}


def receive_record_read(primary: Primary, insert: Any) -> Any:
    """The read of the lock record after the failure: outside the transaction, primary,
    majority-committed."""
    read = primary.receives("find")
    assert read["find"] == "mongolocker"
    assert read["filter"] == {"_id": "job"}
    assert read["readConcern"] == {"level": "majority"}
    assert "txnNumber" not in read and "autocommit" not in read
    assert read.doc.get("lsid") != insert["lsid"]
    return read


def answer_record(read: Any, document: dict[str, Any] | None) -> None:
    batch = [] if document is None else [document]
    read.ok(cursor={"id": 0, "firstBatch": batch, "ns": "app.mongolocker"})


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize(
    "record",
    ["another-owner", "another-token", "released", "gone"],
)
def test_a_failure_whose_record_is_no_longer_ours_marks_the_holding_lost(
    primary: Primary, holder: Holder, failure: str, record: str
) -> None:
    """As a refused renewal does: lost set, listeners and on_lost told once, token gone."""
    lock = holder.lock
    done = holder.fenced()
    insert = receive_insert(primary)
    fail_the_check(primary, insert, failure, lock.uuid)
    document: dict[str, Any] | None = {
        "another-owner": lease_document(owner="other", token=TOKEN + 1),
        "another-token": lease_document(owner=lock.uuid, token=TOKEN + 1),
        "released": {**lease_document(owner=lock.uuid, token=TOKEN), "locked": False},
        "gone": None,
    }[record]
    answer_record(receive_record_read(primary, insert), document)
    with pytest.raises(LockLost, match=FAILURES[failure]) as caught:
        done.result(GUARD)
    assert "the holding is lost" in str(caught.value)
    holder.settle()
    assert lock.lost.is_set()
    assert holder.on_lost == [1]
    assert [(e.token, e.reason) for e in holder.losses.events] == [(TOKEN, LossReason.TAKEN_OVER)]
    assert lock.token is None
    with pytest.raises(LockLost, match="the record is no longer ours"):
        lock.ensure()
    assert primary.idle()


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("record", ["still-ours", "read-fails"])
def test_a_failure_that_proves_nothing_leaves_the_holding_as_it_was(
    primary: Primary, holder: Holder, failure: str, record: str
) -> None:
    """The check's snapshot may predate the lock's own renewal, which also conflicts: the
    record still ours (even expired by the server's clock), or unread, proves no loss."""
    lock = holder.lock
    done = holder.fenced()
    insert = receive_insert(primary)
    fail_the_check(primary, insert, failure, lock.uuid)
    read = receive_record_read(primary, insert)
    if record == "still-ours":
        answer_record(read, lease_document(owner=lock.uuid, token=TOKEN))
    else:
        read.command_err(13, "not authorized on app to execute command")
    with pytest.raises(LockLost, match=FAILURES[failure]) as caught:
        done.result(GUARD)
    assert "the holding is lost" not in str(caught.value)
    holder.settle()
    assert not lock.lost.is_set()
    assert (holder.on_lost, holder.losses.events) == ([], [])
    assert lock.ensure() == TOKEN
    assert primary.idle()


def test_a_record_read_answered_after_a_release_marks_nothing(
    primary: Primary, holder: Holder
) -> None:
    """A late answer: the lock was released (by another thread or task) while the read was
    on its way. The holding it describes is over already: no loss, no on_lost."""
    lock = holder.lock
    done = holder.fenced()
    insert = receive_insert(primary)
    fail_the_check(primary, insert, "no-match", lock.uuid)
    read = receive_record_read(primary, insert)
    releasing = holder.start(lock.release)
    release = primary.receives("findAndModify")
    assert release["query"] == {"_id": "job", "locked": True, "uuid": lock.uuid, "token": TOKEN}
    release.ok(value=lease_document(owner=lock.uuid, token=TOKEN))
    assert releasing.result(GUARD) is True
    answer_record(read, {**lease_document(owner=lock.uuid, token=TOKEN), "locked": False})
    with pytest.raises(LockLost):
        done.result(GUARD)
    holder.settle()
    assert not lock.lost.is_set()
    assert holder.on_lost == []
    assert [e.reason for e in holder.losses.events] == [LossReason.RELEASED]
    assert primary.idle()


def test_a_commit_of_unknown_result_is_ambiguous(primary: Primary, holder: Holder) -> None:
    done = holder.fenced()
    insert = receive_insert(primary)
    receive_check(primary, insert, key="job", owner=holder.lock.uuid, token=TOKEN).ok(
        n=1, nModified=1
    )
    # A write concern timeout: the commit applied on the primary but may be rolled back.
    receive_end(primary, insert, "commitTransaction").ok(
        writeConcernError={"code": 64, "errmsg": "waiting for replication timed out"}
    )
    with pytest.raises(AmbiguousOutcome, match="may have committed"):
        done.result(GUARD)
    assert primary.idle()  # no read of the record: nothing is marked
    assert not holder.lock.lost.is_set() and holder.lock.token == TOKEN


def test_another_failure_of_the_check_is_unavailable_and_aborts(
    primary: Primary, holder: Holder
) -> None:
    done = holder.fenced()
    insert = receive_insert(primary)
    check = receive_check(primary, insert, key="job", owner=holder.lock.uuid, token=TOKEN)
    check.command_err(13, "not authorized on app to execute command")
    receive_end(primary, insert, "abortTransaction").ok()
    with pytest.raises(BackendUnavailable, match="not committed"):
        done.result(GUARD)
    assert primary.idle()  # no read of the record: nothing is marked
    assert not holder.lock.lost.is_set() and holder.lock.token == TOKEN


def test_an_exception_in_the_block_aborts_and_is_raised(primary: Primary, holder: Holder) -> None:
    def fail(orders: Any, session: Any) -> None:
        raise Boom("the caller's own failure")

    done = holder.fenced(fail)
    insert = receive_insert(primary)
    receive_end(primary, insert, "abortTransaction").ok()
    with pytest.raises(Boom):
        done.result(GUARD)
    assert primary.idle()


def test_a_block_that_ends_the_transaction_itself_is_refused(
    primary: Primary, holder: Holder
) -> None:
    if holder.kind == "async":
        pytest.skip("the block here is sync code; it cannot await commit_transaction")
    done = holder.fenced(lambda orders, session: session.commit_transaction())
    insert = receive_insert(primary)
    receive_end(primary, insert, "commitTransaction").ok()
    with pytest.raises(RuntimeError, match="ended the fenced transaction itself"):
        done.result(GUARD)
    assert primary.idle()


def test_a_lock_not_trusted_raises_lock_lost_and_sends_nothing(
    primary: Primary, holder: Holder
) -> None:
    clock = holder.backend.clock
    assert isinstance(clock, FakeClock)
    clock.advance(holder.lock.renew_deadline + 1)  # past the renew deadline
    done = holder.fenced()
    with pytest.raises(LockLost, match="not held"):
        done.result(GUARD)
    assert primary.idle()


def test_a_leader_fences_by_its_term(primary: Primary, loop: EventLoopThread, kind: str) -> None:
    holder = Holder(primary, loop, kind)
    elector: LeaderElector | AsyncLeaderElector
    if kind == "async":
        elector = AsyncLeaderElector(
            "job", holder.backend, ttl=10, clock=holder.backend.clock, report_status=False
        )
    else:
        elector = LeaderElector(
            "job", holder.backend, ttl=10, clock=holder.backend.clock, report_status=False
        )
    polling = holder.start(elector.poll)
    # The backend saw the lock's lease held: it reads before it writes.
    primary.receives("find").ok(cursor={"id": 0, "firstBatch": [], "ns": "app.mongolocker"})
    answer_acquire(primary.receives("findAndModify"), token=7)
    polling.result(GUARD)
    assert elector.token == 7
    done = holder.fenced(holder=elector)
    insert = receive_insert(primary)
    check = receive_check(primary, insert, key="job", owner=elector.uuid, token=7)
    check.ok(n=1, nModified=1)
    receive_end(primary, insert, "commitTransaction").ok()
    assert done.result(GUARD) is None


@pytest.mark.parametrize("record", ["another-owner", "still-ours"])
def test_a_leader_whose_record_is_no_longer_its_term_steps_down(
    primary: Primary, loop: EventLoopThread, kind: str, record: str
) -> None:
    holder = Holder(primary, loop, kind)
    losses: list[int] = []
    elector: LeaderElector | AsyncLeaderElector
    options: dict[str, Any] = {
        "ttl": 10,
        "clock": holder.backend.clock,
        "report_status": False,
        "on_leader_loss": lambda: losses.append(1),
    }
    if kind == "async":
        elector = AsyncLeaderElector("job", holder.backend, **options)
    else:
        elector = LeaderElector("job", holder.backend, **options)
    polling = holder.start(elector.poll)
    primary.receives("find").ok(cursor={"id": 0, "firstBatch": [], "ns": "app.mongolocker"})
    answer_acquire(primary.receives("findAndModify"), token=7)
    polling.result(GUARD)
    assert elector.token == 7
    done = holder.fenced(holder=elector)
    insert = receive_insert(primary)
    check = receive_check(primary, insert, key="job", owner=elector.uuid, token=7)
    check.ok(n=0, nModified=0)
    receive_end(primary, insert, "abortTransaction").ok()
    owner = "other" if record == "another-owner" else elector.uuid
    answer_record(receive_record_read(primary, insert), lease_document(owner=owner, token=7))
    with pytest.raises(LockLost):
        done.result(GUARD)
    if record == "another-owner":
        assert losses == [1]
        assert not elector.is_leader and elector.token is None
    else:
        assert losses == []
        assert elector.is_leader and elector.token == 7
    assert primary.idle()


def test_a_follower_raises_lock_lost_and_sends_nothing(
    primary: Primary, loop: EventLoopThread, kind: str
) -> None:
    holder = Holder(primary, loop, kind)
    elector: LeaderElector | AsyncLeaderElector
    if kind == "async":
        elector = AsyncLeaderElector(
            "job", holder.backend, ttl=10, clock=holder.backend.clock, report_status=False
        )
    else:
        elector = LeaderElector(
            "job", holder.backend, ttl=10, clock=holder.backend.clock, report_status=False
        )
    with pytest.raises(LockLost, match="does not lead"):
        holder.fenced(holder=elector).result(GUARD)
    assert primary.idle()


@pytest.fixture
def memory_locks() -> Iterator[tuple[Lock, AsyncLock]]:
    backend = MemoryBackend(clock=FakeClock(NOW))
    yield Lock("job", backend), AsyncLock("job", backend)


def test_another_backend_is_a_type_error(
    memory_locks: tuple[Lock, AsyncLock], primary: Primary
) -> None:
    lock, async_lock = memory_locks
    client = primary.client()
    with (
        pytest.raises(TypeError, match="needs a MongoBackend; Lock 'job' uses MemoryBackend"),
        lock.fenced_transaction(client),
    ):
        pass  # pragma: no cover
    context = async_lock.fenced_transaction(client)  # type: ignore[arg-type]

    async def enter() -> None:
        async with context:
            pass  # pragma: no cover

    with pytest.raises(TypeError, match="needs a AsyncMongoBackend"):
        asyncio.run(enter())
    assert primary.idle()


def test_a_client_of_the_other_kind_is_a_type_error(primary: Primary, holder: Holder) -> None:
    lock: Any = holder.lock
    if holder.kind == "async":
        sync_client = primary.client()

        async def enter() -> None:
            async with lock.fenced_transaction(sync_client):
                pass  # pragma: no cover

        with pytest.raises(TypeError, match="needs a pymongo AsyncMongoClient"):
            asyncio.run_coroutine_threadsafe(enter(), holder.loop.loop).result(GUARD)
    else:
        with (
            pytest.raises(TypeError, match="needs a pymongo MongoClient"),
            lock.fenced_transaction(primary.async_client()),
        ):
            pass  # pragma: no cover
    assert primary.idle()
