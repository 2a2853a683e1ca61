"""A forked child never acts on its parent's holdings.

A ``Lock`` or ``LeaderElector`` copied into a child by ``os.fork()`` holds
nothing and trusts nothing there: ``ensure()`` raises, ``touch()`` returns
``None``, ``release()`` and ``stop()`` send nothing for the parent's holding,
and the object has a new owner id, so a later ``acquire()`` or poll in the
child competes with the parent like any other process. The parent goes on
holding and renewing. The child runs real checks and reports through a pipe;
a SQLite file is a store both processes share.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mongoelector import LeaderElector, Lock, LockExists, LockLost, _identity
from mongoelector._common.participant import Participant
from mongoelector.backends import MemoryBackend
from mongoelector.backends.sqlite import SQLiteBackend
from mongoelector.core.elector_machine import Role
from mongoelector.fencing._tokens import term_token
from mongoelector.testing import FakeClock
from tests.fakes import wait_for

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork") or sys.platform == "darwin", reason="needs os.fork()"
)


#: Real seconds a forked child may take before SIGALRM ends it: a hang bound, not a timing check.
CHILD_LIMIT = 60


def in_child(check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``check`` in a forked child; what it returned, or the error it raised."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() of a threaded process
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_end)
        signal.alarm(CHILD_LIMIT)  # a child stuck on a lock copied while held ends, reportless
        code = 0
        try:
            result: dict[str, Any] = check()
        except BaseException as error:
            result, code = {"error": repr(error)}, 1
        with os.fdopen(write_end, "w") as out:
            out.write(json.dumps(result))
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as report:
        text = report.read()
    _, status = os.waitpid(pid, 0)
    assert text, f"the child ended without a report (exit {os.waitstatus_to_exitcode(status)})"
    result = json.loads(text)
    assert os.waitstatus_to_exitcode(status) == 0, result
    return result


@pytest.fixture
def sqlite(tmp_path: Path, clock: FakeClock) -> SQLiteBackend:
    return SQLiteBackend(tmp_path / "leases.sqlite", clock=clock)


def test_a_child_s_copy_of_a_lock_holds_nothing_and_leaves_the_parent_s_holding(
    sqlite: SQLiteBackend,
) -> None:
    lock = Lock("job", sqlite, ttl=30)
    lock.acquire()
    token = lock.token

    def check() -> dict[str, Any]:
        report = {"uuid": lock.uuid, "token": lock.token, "touch": lock.touch() is not None}
        try:
            lock.ensure()
            report["ensure"] = "returned"
        except LockLost as error:
            report["ensure"] = str(error)
        report["release"] = lock.release()
        try:
            report["acquire"] = lock.acquire(blocking=False)
        except LockExists:
            report["acquire"] = "LockExists"
        return report

    report = in_child(check)

    record = sqlite.get("job")
    assert record is not None and (record.owner, record.token) == (lock.uuid, token)
    assert report["release"] is False
    assert report["acquire"] == "LockExists"
    assert report["uuid"] != lock.uuid
    assert report["token"] is None
    assert report["touch"] is False
    assert "parent process" in report["ensure"]
    assert lock.touch() is not None  # the parent's renew is accepted
    assert lock.ensure() == token
    lock.release()


def test_leaving_a_with_block_in_the_child_releases_nothing_of_the_parent(
    clock: FakeClock, backend: MemoryBackend
) -> None:
    lock = Lock("job", backend, ttl=30, clock=clock)
    lock.acquire()

    def check() -> dict[str, Any]:
        sent: list[tuple[str, object]] = []
        release = backend.release

        def spy(key: str, owner: str | None, **kwargs: Any) -> bool:
            sent.append((key, owner))
            return release(key, owner, **kwargs)

        backend.release = spy  # type: ignore[method-assign]
        parent_uuid = lock._uuid
        lock.__exit__(None, None, None)
        lock.release()
        return {"sent_for_parent": [owner == parent_uuid for _, owner in sent], "n": len(sent)}

    assert in_child(check) == {"sent_for_parent": [], "n": 0}
    assert lock.ensure() is not None
    lock.release()


def test_the_parent_goes_on_renewing_its_auto_renewed_lock(
    clock: FakeClock, sqlite: SQLiteBackend
) -> None:
    lock = Lock("job", sqlite, ttl=30, clock=clock, auto_renew=True)
    lock.acquire()
    token = lock.token
    before = sqlite.get("job")

    report = in_child(lambda: {"token": lock.token, "release": lock.release()})

    assert report == {"token": None, "release": False}
    clock.advance(lock.retry_period)
    assert lock.wait_idle(10)
    after = sqlite.get("job")
    assert before is not None and after is not None
    assert (after.owner, after.token) == (lock.uuid, token)
    assert after.expires_at is not None and before.expires_at is not None
    assert after.expires_at > before.expires_at  # renewed after the fork
    assert lock.ensure() == token
    lock.release()


def test_a_child_s_copy_of_a_leader_is_not_leader_and_its_stop_frees_nothing(
    clock: FakeClock, sqlite: SQLiteBackend
) -> None:
    child_s_copy_of_a_leader(clock, sqlite, started=True)


def child_s_copy_of_a_leader(clock: FakeClock, sqlite: SQLiteBackend, *, started: bool) -> None:
    """A started leader (its loop on the scheduler), or one driven by ``poll()``."""
    node = LeaderElector("k", sqlite, clock=clock, report_status=False)
    if started:
        node.start()
        assert node.wait_idle(10)
    else:
        node.poll()
    assert node.is_leader
    token = node.token

    def check() -> dict[str, Any]:
        report = {
            "uuid": node.uuid,
            "running": node.running,
            "is_leader": node.is_leader,
            "token": node.token,
        }
        node.stop()
        node.poll()  # a new contender: the parent's lease is live
        report["leader_after_poll"] = node.is_leader
        return report

    try:
        report = in_child(check)

        record = sqlite.get("k")
        assert record is not None and (record.owner, record.token) == (node.uuid, token)
        assert report["uuid"] != node.uuid
        assert report["running"] is False and report["is_leader"] is False
        assert report["token"] is None and report["leader_after_poll"] is False
        clock.advance(node.retry_period)
        if not started:
            node.poll()
        assert node.wait_idle(10) and node.is_leader and node.token == token
    finally:
        node.stop()


def child_s_copy_of_a_polled_leader(clock: FakeClock, sqlite: SQLiteBackend) -> None:
    child_s_copy_of_a_leader(clock, sqlite, started=False)


@pytest.mark.parametrize(
    "check",
    [
        test_a_child_s_copy_of_a_lock_holds_nothing_and_leaves_the_parent_s_holding,
        # Polled, not started: with the check gone, a child may also block on a lock that a
        # scheduler thread of the parent held at the fork, which proves nothing either way.
        child_s_copy_of_a_polled_leader,
    ],
)
def test_the_checks_see_a_child_that_acts_on_the_parent_s_holding(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    clock: FakeClock,
    check: Callable[..., None],
) -> None:
    monkeypatch.setattr(Participant, "_check_fork", lambda self: None)
    store = SQLiteBackend(tmp_path / "leases.sqlite", clock=clock)
    args = (store,) if check.__code__.co_argcount == 1 else (clock, store)
    with pytest.raises(AssertionError, match="LeaseRecord"):  # the parent's record: freed or taken
        check(*args)


def test_a_term_entered_before_the_fork_is_over_in_the_child(
    clock: FakeClock, sqlite: SQLiteBackend
) -> None:
    """``leadership()`` and ``fenced()`` in the child: the parent's term is not the child's.

    The child's copy of a ``term`` (and the token source of ``fenced()``) read
    the elector's term without touching its public entry points: they must see
    the reset too, or the child writes under the parent's fencing token.
    """
    node = LeaderElector("k", sqlite, clock=clock, report_status=False)
    node.poll()
    assert node.is_leader
    fenced_token = term_token(node)
    with node.leadership() as term:

        def check() -> dict[str, Any]:
            report: dict[str, Any] = {"lost": term.lost.is_set(), "reason": str(term.reason)}
            try:
                report["fenced"] = fenced_token()
            except LockLost:
                report["fenced"] = "LockLost"
            return report

        report = in_child(check)

        assert report["lost"] is True
        assert report["reason"] != "None"
        assert report["fenced"] == "LockLost"
        assert not term.lost.is_set() and fenced_token() == term.token  # the parent's lasts
    node.release()


def test_waiting_on_a_term_in_the_child_does_not_wait_for_a_lock_held_at_the_fork(
    clock: FakeClock, sqlite: SQLiteBackend
) -> None:
    """Another thread of the parent may hold the elector's listener lock when it forks."""
    node = LeaderElector("k", sqlite, clock=clock, report_status=False)
    node.poll()
    with node.leadership() as term:

        def check() -> dict[str, Any]:
            signal.alarm(30)  # a hang guard only: a stuck child exits by SIGALRM
            return {"wait": term.lost.wait(0)}

        with node._listeners_lock:  # as if another thread held it at the fork
            report = in_child(check)

        assert report == {"wait": True}
    node.release()


def test_the_term_check_sees_a_child_that_trusts_the_parent_s_term(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, sqlite: SQLiteBackend
) -> None:
    monkeypatch.setattr(Participant, "_check_fork", lambda self: None)
    with pytest.raises(AssertionError):
        test_a_term_entered_before_the_fork_is_over_in_the_child(clock, sqlite)


def test_a_child_s_copy_of_a_leader_reports_no_role_of_the_parent_s(
    clock: FakeClock, sqlite: SQLiteBackend
) -> None:
    """Read first in the child, ``role`` and the loop's cadence are the child's own."""
    node = LeaderElector("k", sqlite, clock=clock, report_status=False, follower_poll=10)
    node.poll()
    assert node.role is Role.LEADER and node.leader_exists
    leading_wait = node.poll_wait

    report = in_child(
        lambda: {
            "role": node.role.value,
            "next_poll_at": str(node.next_poll_at),
            "leader_exists": node.leader_exists,
            "poll_wait": node.poll_wait,
        }
    )

    assert report["role"] != Role.LEADER.value
    fresh = LeaderElector("k", sqlite, clock=clock, report_status=False)
    assert report["next_poll_at"] == str(fresh.next_poll_at)  # the parent's loop is not its
    assert report["poll_wait"] != leading_wait
    assert report["leader_exists"] is False  # it has not polled
    node.release()


def test_the_role_check_sees_a_child_that_reports_the_parent_s_role(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, sqlite: SQLiteBackend
) -> None:
    monkeypatch.setattr(Participant, "_check_fork", lambda self: None)
    with pytest.raises(AssertionError):
        test_a_child_s_copy_of_a_leader_reports_no_role_of_the_parent_s(clock, sqlite)


@pytest.mark.parametrize(
    ("guard", "first_use"),
    [
        ("mongoelector._common.stores._wrapped_guard", "lock_on_a_database"),
        ("mongoelector._listeners._registry_lock", "register_a_listener"),
        ("mongoelector._common.monitor._TERMS", "acquire_a_lock"),
    ],
)
def test_a_process_wide_lock_held_at_the_fork_does_not_hang_the_child(
    guard: str, first_use: str
) -> None:
    """Another thread of the parent may be inside one of them when it forks."""
    import importlib

    import mongomock

    from mongoelector import monitoring

    module, name = guard.rsplit(".", 1)
    held = getattr(importlib.import_module(module), name)
    database = mongomock.MongoClient()["app"]

    def check() -> dict[str, Any]:
        signal.alarm(30)  # a hang guard only: a stuck child exits by SIGALRM
        if first_use == "lock_on_a_database":
            return {"uuid": Lock("k", database).uuid != ""}
        if first_use == "acquire_a_lock":  # its monitor notes the term under _TERMS
            return {"acquired": Lock("k", MemoryBackend()).acquire()}
        monitoring.register(monitoring.EventListener())
        return {"registered": len(monitoring.registered()) > 0}

    with held:  # as if another thread held it at the fork
        report = in_child(check)

    assert list(report.values()) == [True]


def child_pids(lock: Lock, *, stale_cache: bool = False) -> dict[str, Any]:
    """In a child: the process id a copied lock and a new one report, and the child's."""

    def check() -> dict[str, Any]:
        if stale_cache:  # the mutation: the id read in the parent survives the fork
            _identity._pid = parent
        return {"copy": lock.pid, "new": Lock("k", MemoryBackend()).pid, "own": os.getpid()}

    parent = os.getpid()
    return in_child(check)


def test_a_child_s_locks_report_the_child_s_process_id(sqlite: SQLiteBackend) -> None:
    """The process id is read once per process (every lock keeps it), and again in a child."""
    lock = Lock("job", sqlite, ttl=30)
    assert lock.pid == os.getpid()
    report = child_pids(lock)
    assert report["copy"] == report["new"] == report["own"] != os.getpid()


def test_the_process_id_check_sees_an_id_kept_across_the_fork(sqlite: SQLiteBackend) -> None:
    lock = Lock("job", sqlite, ttl=30)
    report = child_pids(lock, stale_cache=True)
    assert report["copy"] == report["new"] == os.getpid() != report["own"]


def test_a_child_s_copies_describe_themselves_as_the_child_s(
    clock: FakeClock, sqlite: SQLiteBackend
) -> None:
    """``repr()`` read first in the child: no owner id or role of the parent's."""
    node = LeaderElector("k", sqlite, clock=clock, report_status=False)
    node.poll()
    lock = Lock("job", sqlite, ttl=30, clock=clock)
    lock.acquire()

    report = in_child(lambda: {"node": repr(node), "lock": repr(lock)})

    assert node.uuid not in report["node"] and "role=leader" not in report["node"]
    assert lock.uuid not in report["lock"] and "token=None" in report["lock"]
    lock.release()
    node.release()


def test_a_blocking_loop_forked_by_its_callback_polls_nothing_as_the_parent_in_the_child(
    clock: FakeClock, backend: MemoryBackend
) -> None:
    """``on_leader`` forks; the child returns into the copied ``start(blocking=True)`` loop.

    The child's first store call (if any) ends it and reports who sent it; with
    none, the loop ends and ``start()`` returns in the child, which reports that.
    """
    parent = os.getpid()
    read_end, write_end = os.pipe()
    reports: list[dict[str, Any]] = []

    def on_leader() -> None:
        owner = node._uuid
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child, back into the loop on return
            os.close(read_end)
            for name in ("renew", "compare_and_set", "release"):

                def spy(*args: Any, _name: str = name, **kwargs: Any) -> Any:
                    as_parent = owner in (*args, *kwargs.values())
                    os.write(
                        write_end, json.dumps({"sent": _name, "as_parent": as_parent}).encode()
                    )
                    os._exit(0)

                setattr(backend, name, spy)
            clock.advance(node.retry_period)  # the copied loop's next poll is due
            return
        os.close(write_end)
        with os.fdopen(read_end) as text:
            reports.append(json.loads(text.read()))
        os.waitpid(pid, 0)
        node.stop()

    node = LeaderElector("k", backend, clock=clock, report_status=False, on_leader=on_leader)
    node.start(blocking=True)
    if os.getpid() != parent:  # pragma: no cover - the child: its loop ended
        os.write(write_end, json.dumps({"sent": None}).encode())
        os._exit(0)

    assert reports == [{"sent": None}]


def test_the_loop_check_sees_a_copied_loop_that_renews_as_the_parent(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, backend: MemoryBackend
) -> None:
    monkeypatch.setattr(Participant, "_check_fork", lambda self: None)
    with pytest.raises(AssertionError, match="as_parent"):
        test_a_blocking_loop_forked_by_its_callback_polls_nothing_as_the_parent_in_the_child(
            clock, backend
        )


def test_a_child_s_copy_of_a_polled_leader_is_not_leader_and_frees_nothing(
    clock: FakeClock, sqlite: SQLiteBackend
) -> None:
    child_s_copy_of_a_polled_leader(clock, sqlite)


def queued_at_a_fork_from_the_scheduler(on: str) -> list[int]:
    """A callback (``on="callbacks"``) or a worker's call (``on="workers"``) forks while
    another waits behind it; the processes that ran the other.

    The child returns from the forking function into its copy of the thread. It
    must not run the parent's queued function (user code: an ``on_leader`` there
    would make the child act as leader; a store call would act as the parent); a
    child that does reports its pid and ends at once, one that does not ends when
    the copied thread does.
    """
    from mongoelector._sync import scheduler

    submit = scheduler.submit_callback if on == "callbacks" else scheduler.submit
    queue = scheduler._callbacks._queue if on == "callbacks" else scheduler._work

    parent = os.getpid()
    read_end, write_end = os.pipe()
    queued = threading.Event()
    children: list[int] = []

    def forks() -> None:
        queued.wait()
        assert queued_behind in queue, "the other function is not queued"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child, back into the copied thread on return
            signal.alarm(CHILD_LIMIT)
            return
        children.append(pid)
        released.set()

    def queued_behind() -> None:
        os.write(write_end, f"{os.getpid()}\n".encode())
        if os.getpid() != parent:  # pragma: no cover - the child ran the parent's callback
            os._exit(3)

    ran = threading.Event()
    released = threading.Event()
    if on == "workers":  # the other kept worker stays busy, so the second call waits
        assert wait_for(lambda: scheduler._pool.extra == 0, limit=CHILD_LIMIT)
        submit(functools.partial(released.wait, CHILD_LIMIT))
    submit(forks)
    submit(queued_behind)
    submit(ran.set)
    queued.set()
    assert ran.wait(CHILD_LIMIT)
    [child] = children
    os.waitpid(child, 0)
    os.close(write_end)
    with os.fdopen(read_end) as text:
        return [int(line) for line in text.read().split()]


@pytest.mark.parametrize("on", ["callbacks", "workers"])
def test_a_call_queued_in_the_parent_never_runs_in_a_child_forked_by_a_scheduler_thread(
    on: str,
) -> None:
    assert queued_at_a_fork_from_the_scheduler(on) == [os.getpid()]


def test_the_scheduler_fork_check_sees_a_child_that_runs_the_parent_s_callbacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """(The workers' queue is emptied in the child, so a copied worker without the check
    finds nothing of the parent's to run; it waits for ever instead of ending.)"""
    from mongoelector._sync import scheduler

    monkeypatch.setattr(scheduler, "_copied", lambda born: False)
    ran_in = queued_at_a_fork_from_the_scheduler("callbacks")
    assert len(ran_in) == 2 and os.getpid() in ran_in, ran_in


def test_only_a_real_fork_ends_a_scheduler_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """A copied thread ends in a child, never in the process that started it: the fork
    count objects compare (bumped here as the faked-fork tests do) is not what tells."""
    from mongoelector import _identity
    from mongoelector._sync import scheduler

    def kept_alive() -> int:
        names = [t.name for t in scheduler.threads()]
        return sum(name.startswith("mongoelector-worker-") for name in names)

    for submit in (scheduler.submit, scheduler.submit, scheduler.submit_callback):
        done = threading.Event()
        submit(done.set)
        assert done.wait(CHILD_LIMIT)
    monkeypatch.setattr(_identity, "forks", _identity.forks + 1)
    for submit in (scheduler.submit,) * 4 + (scheduler.submit_callback,) * 2:
        done = threading.Event()
        submit(done.set)
        assert done.wait(CHILD_LIMIT), "no thread left to run it"
    assert kept_alive() >= scheduler._pool.kept
