"""Callbacks may stop, release or restart their own elector, from any thread, without deadlock.

Every scenario runs the calls that could hang in a helper thread and joins it
with a bound: a thread still alive after :data:`HANG_GUARD` real seconds is
reported as ``"deadlocked"``. That is a liveness check, not a timing claim.
``release()`` and ``stop()`` may wait for a store call in flight, never for a
user callback; the lease is freed in the store when they return.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from mongoelector import LeaderElector, LeaderInfo
from mongoelector._sync import elector as elector_module
from mongoelector._sync import scheduler
from mongoelector.backends import LeaseRequest, MemoryBackend
from mongoelector.testing import FakeClock
from tests.fakes import wait_for

#: Real seconds after which a call that has not returned counts as deadlocked (a hang guard).
HANG_GUARD = 5.0


def outcome(call: Callable[[], object], *, limit: float = HANG_GUARD) -> str:
    """Run ``call`` in a helper thread: ``"done"`` if it returns within ``limit`` s, else
    ``"deadlocked"``.

    A call that raises reports ``"raised ..."``.
    """
    errors: list[BaseException] = []

    def target() -> None:
        try:
            call()
        except BaseException as error:  # reported, not lost in the thread
            errors.append(error)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout=limit)
    if worker.is_alive():
        return "deadlocked"
    return f"raised {errors[0]!r}" if errors else "done"


class Calls:
    """Records callbacks in order, with the thread each ran in."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []
        self.threads: list[threading.Thread] = []

    def add(self, name: str, value: object = None) -> None:
        self.events.append((name, value))
        self.threads.append(threading.current_thread())

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


def lease_is_free(backend: MemoryBackend, key: str = "svc") -> bool:
    record = backend.get(key)
    return record is None or record.owner is None


def loop_ended(node: LeaderElector, clock: FakeClock) -> bool:
    """True once ``node``'s loop has ended: nothing of it is scheduled, no poll of it runs."""
    return scheduler.scheduled(clock) == 0 and node not in elector_module.running()


def one_loop_waits(node: LeaderElector, clock: FakeClock) -> bool:
    """True once ``node`` runs one loop, which waits in the scheduler for its next poll."""
    return node.wait_idle(HANG_GUARD) and scheduler.scheduled(clock) == 1


def started_leader(node: LeaderElector, clock: FakeClock) -> None:
    """Start ``node`` and wait until it leads and its loop waits for the fake clock."""
    node.start()
    assert wait_for(lambda: node.is_leader)
    assert node.wait_idle(HANG_GUARD)


# --- scenarios shared by the tests and the mutation tests ------------------------------------


def release_while_on_leader_loss_stops_from_another_thread(*, limit: float = HANG_GUARD) -> str:
    """A thread calls ``release()``; ``on_leader_loss`` stops the elector from a third thread.

    Returns ``"done"`` when every call returned and the lease is free, else what went wrong.
    """
    clock = FakeClock()
    backend = MemoryBackend(clock)
    stops: list[str] = []

    def on_leader_loss() -> None:
        stops.append(outcome(node.stop, limit=limit))

    node = LeaderElector("svc", backend, clock=clock, on_leader_loss=on_leader_loss)
    started_leader(node, clock)
    released = outcome(node.release, limit=2 * limit)
    if released != "done":
        return released
    if stops != ["done"]:
        return stops[0] if stops else "on_leader_loss never ran"
    return "done" if lease_is_free(backend) and not node.running else "lease still held"


def stop_while_on_leader_waits_for_the_stop(*, limit: float = HANG_GUARD) -> str:
    """``on_leader`` blocks until a ``stop()`` made by another thread has returned.

    Returns ``"done"`` if ``stop()`` returned while ``on_leader`` was still
    waiting, the lease was free by then, and ``on_leader_loss`` then ran once.
    """
    clock = FakeClock()
    backend = MemoryBackend(clock)
    calls = Calls()
    entered, stop_returned = threading.Event(), threading.Event()

    def on_leader() -> None:
        calls.add("leader")
        entered.set()
        stop_returned.wait(timeout=4 * limit)  # bounded, so a failing run still ends

    node = LeaderElector(
        "svc",
        backend,
        clock=clock,
        on_leader=on_leader,
        on_leader_loss=lambda: calls.add("loss"),
    )
    node.start()
    assert entered.wait(timeout=limit)
    stopped = outcome(node.stop, limit=limit)
    free = lease_is_free(backend)
    stop_returned.set()
    if stopped != "done":
        return stopped
    if not free:
        return "stop() returned with the lease still held"
    if not loop_ended(node, clock):
        return "stop() returned before the loop ended"
    if not node.wait_idle(limit):
        return "on_leader_loss did not follow once on_leader returned"
    return "done" if calls.names() == ["leader", "loss"] else f"callbacks ran {calls.names()}"


# --- the reported deadlock ------------------------------------------------------------------


def test_release_from_another_thread_while_on_leader_loss_calls_stop(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    holder: list[LeaderElector] = []
    calls = Calls()

    def on_leader_loss() -> None:
        calls.add("loss")
        holder[0].stop()

    node = LeaderElector("svc", backend, clock=clock, on_leader_loss=on_leader_loss)
    holder.append(node)
    started_leader(node, clock)
    assert outcome(node.release) == "done"
    assert lease_is_free(backend)
    assert not node.running and not node.is_leader
    assert calls.names() == ["loss"]
    assert loop_ended(node, clock)


def test_release_from_another_thread_while_on_leader_loss_stops_from_a_third_thread() -> None:
    assert release_while_on_leader_loss_stops_from_another_thread() == "done"


# --- stop() and release() from inside callbacks -----------------------------------------------


@pytest.mark.parametrize("callback", ["on_leader", "on_new_leader", "on_loop"])
@pytest.mark.parametrize("action", ["stop", "release"])
@pytest.mark.parametrize("from_thread", ["the callback's thread", "another thread"])
def test_a_callback_may_stop_or_release_its_elector(
    backend: MemoryBackend, clock: FakeClock, callback: str, action: str, from_thread: str
) -> None:
    holder: list[LeaderElector] = []
    results: list[str] = []

    def act(*_: object) -> None:
        if results:
            return  # once
        call = getattr(holder[0], action)
        if from_thread == "another thread":
            results.append(outcome(call))
        else:
            call()
            results.append("done")

    node = LeaderElector("svc", backend, clock=clock, **{callback: act})  # type: ignore[arg-type]
    holder.append(node)
    node.start()
    try:
        assert wait_for(lambda: bool(results))
        assert results == ["done"]
        assert wait_for(lambda: lease_is_free(backend) and not node.is_leader)
        assert node.running is (action == "release")
    finally:
        assert outcome(node.stop) == "done"
    assert loop_ended(node, clock)


def test_stop_from_on_leader_in_a_poll_frees_the_lease_and_fires_on_leader_loss_once(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    holder: list[LeaderElector] = []
    calls = Calls()

    def on_leader() -> None:
        calls.add("leader")
        holder[0].stop()

    node = LeaderElector(
        "svc", backend, clock=clock, on_leader=on_leader, on_leader_loss=lambda: calls.add("loss")
    )
    holder.append(node)
    node.poll()
    assert calls.names() == ["leader", "loss"]
    assert lease_is_free(backend) and not node.is_leader


def test_release_from_on_leader_then_the_running_elector_leads_again(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    holder: list[LeaderElector] = []
    calls = Calls()

    def on_leader() -> None:
        calls.add("leader", holder[0].token)
        if len(calls.events) == 1:
            holder[0].release()

    node = LeaderElector(
        "svc",
        backend,
        clock=clock,
        on_leader=on_leader,
        on_leader_loss=lambda: calls.add("loss"),
        on_new_leader=lambda info: calls.add("new", info.token),
    )
    holder.append(node)
    node.start()
    try:
        assert wait_for(lambda: calls.names() == ["leader", "loss"])
        assert node.wait_idle(HANG_GUARD)
        assert lease_is_free(backend) and node.running
        clock.advance(node.next_poll_at - clock.monotonic())  # the back-off after a release
        assert wait_for(lambda: node.token == 2)
        assert wait_for(lambda: len(calls.events) == 4)
        assert calls.events == [("leader", 1), ("loss", None), ("leader", 2), ("new", 2)]
    finally:
        assert outcome(node.stop) == "done"


def test_start_from_on_leader_loss_after_stop_runs_a_new_loop(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    holder: list[LeaderElector] = []
    calls = Calls()

    def on_leader_loss() -> None:
        calls.add("loss")
        if calls.names().count("loss") == 1:
            holder[0].start()

    node = LeaderElector(
        "svc",
        backend,
        clock=clock,
        on_leader=lambda: calls.add("leader", holder[0].token),
        on_leader_loss=on_leader_loss,
    )
    holder.append(node)
    started_leader(node, clock)
    assert outcome(node.stop) == "done"
    try:
        assert wait_for(lambda: node.running and node.token == 2)
        assert calls.events == [("leader", 1), ("loss", None), ("leader", 2)]
        assert one_loop_waits(node, clock)
    finally:
        assert outcome(node.stop) == "done"
    assert lease_is_free(backend)
    assert loop_ended(node, clock)


# --- release() and stop() never wait for a callback ------------------------------------------


def test_release_returns_while_on_leader_waits_for_it_and_on_leader_loss_follows(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    calls = Calls()
    entered, release_returned = threading.Event(), threading.Event()

    def on_leader() -> None:
        calls.add("leader")
        entered.set()
        release_returned.wait(timeout=4 * HANG_GUARD)

    node = LeaderElector(
        "svc", backend, clock=clock, on_leader=on_leader, on_leader_loss=lambda: calls.add("loss")
    )
    node.start()
    try:
        assert entered.wait(timeout=HANG_GUARD)
        assert outcome(node.release) == "done"
        assert lease_is_free(backend) and not node.is_leader
        assert calls.names() == ["leader"]  # on_leader_loss waits for its turn, release() doesn't
        release_returned.set()
        assert wait_for(lambda: calls.names() == ["leader", "loss"])
        # Both on the scheduler's callback thread (which took on_leader_loss once free).
        assert calls.threads[0] is calls.threads[1]
        assert calls.threads[0] in scheduler.threads()
        assert calls.threads[0].name.startswith("mongoelector-callbacks-")
    finally:
        release_returned.set()
        assert outcome(node.stop) == "done"


def test_stop_returns_while_on_leader_waits_for_it() -> None:
    assert stop_while_on_leader_waits_for_the_stop() == "done"


def test_stop_returns_while_on_loop_waits_for_it(backend: MemoryBackend, clock: FakeClock) -> None:
    entered, stop_returned = threading.Event(), threading.Event()

    def on_loop() -> None:
        entered.set()
        stop_returned.wait(timeout=4 * HANG_GUARD)

    node = LeaderElector("svc", backend, clock=clock, on_loop=on_loop)
    node.start()
    assert entered.wait(timeout=HANG_GUARD)
    try:
        assert outcome(node.stop) == "done"
        assert lease_is_free(backend) and not node.running
        assert loop_ended(node, clock)
    finally:
        stop_returned.set()


# --- a callback whose news is stale by its turn ---------------------------------------------


def test_on_new_leader_naming_this_node_is_skipped_once_on_leader_released(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    holder: list[LeaderElector] = []
    calls = Calls()

    def on_leader() -> None:
        calls.add("leader")
        holder[0].release()

    node = LeaderElector(
        "svc",
        backend,
        clock=clock,
        on_leader=on_leader,
        on_leader_loss=lambda: calls.add("loss"),
        on_new_leader=lambda info: calls.add("new", info),
    )
    holder.append(node)
    node.poll()
    assert calls.names() == ["leader", "loss"]
    assert lease_is_free(backend)


def test_on_new_leader_still_names_this_node_when_it_keeps_leading(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    seen: list[LeaderInfo] = []
    node = LeaderElector("svc", backend, clock=clock, on_new_leader=seen.append)
    node.poll()
    assert [info.uuid for info in seen] == [node.uuid]


def test_a_term_over_before_on_leader_gets_its_turn_fires_neither_on_leader_nor_its_loss(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    """A running callback holds up the ones after it; a term that ended meanwhile is skipped."""
    calls = Calls()
    in_loop, go_on = threading.Event(), threading.Event()
    holder: list[LeaderElector] = []

    def on_loop() -> None:
        calls.add("loop")
        if calls.names().count("loop") == 1:
            in_loop.set()
            go_on.wait(timeout=4 * HANG_GUARD)

    node = LeaderElector(
        "svc",
        backend,
        clock=clock,
        on_leader=lambda: calls.add("leader"),
        on_leader_loss=lambda: calls.add("loss"),
        on_loop=on_loop,
        report_status=False,
    )
    holder.append(node)
    backend.compare_and_set(LeaseRequest(key="svc", owner="other", ttl=15))  # another leads
    node.start()
    assert in_loop.wait(timeout=HANG_GUARD)
    backend.release("svc", "other")
    assert outcome(node.poll) == "done"  # gains leadership: on_leader waits behind on_loop
    assert node.is_leader
    assert outcome(node.release) == "done"  # ... and the term is over before its turn
    go_on.set()
    assert node.wait_idle(HANG_GUARD)  # the callbacks queued meanwhile have had their turn
    assert calls.names() == ["loop", "loop"]
    assert outcome(node.stop) == "done"


# --- on_leader_loss before the lease is freed, when it can run at once -----------------------


@pytest.mark.parametrize("action", ["release", "stop"])
def test_on_leader_loss_runs_before_the_lease_is_freed_when_nothing_else_runs(
    backend: MemoryBackend, clock: FakeClock, action: str
) -> None:
    held_during_loss: list[bool] = []
    node = LeaderElector(
        "svc",
        backend,
        clock=clock,
        on_leader_loss=lambda: held_during_loss.append(not lease_is_free(backend)),
    )
    node.poll()
    getattr(node, action)()
    assert held_during_loss == [True]
    assert lease_is_free(backend)
