"""What electors and locks log: every change of leadership with key, token and timings;
routine polls and renewals never at INFO."""

from __future__ import annotations

import logging

import pytest

from mongoelector import Lock
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock
from tests.electors import elector
from tests.fakes import FlakyBackend


def lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


def test_gaining_and_releasing_leadership_is_logged_at_info_with_key_token_and_time(
    backend: MemoryBackend, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    node = elector(backend, clock)
    caplog.set_level(logging.INFO, logger="mongoelector")

    node.poll()
    clock.advance(6)
    node.release()

    gained, released = lines(caplog)
    assert gained.startswith(f"elector 'jobs' ({node.uuid}) leads with token 1")
    assert "(the winning call took 0.0 ms)" in gained
    assert released == f"elector 'jobs' ({node.uuid}) released token 1; held 6.0 s"
    assert {r.name for r in caplog.records} == {"mongoelector.elector"}


def test_routine_polls_and_renewals_are_not_logged_at_info(
    backend: MemoryBackend, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    leader, follower = elector(backend, clock), elector(backend, clock)
    leader.poll()
    follower.poll()
    caplog.set_level(logging.DEBUG, logger="mongoelector")

    for _ in range(10):
        clock.advance(2)
        leader.poll()
        follower.poll()

    assert lines(caplog, logging.INFO) == []
    debug = lines(caplog, logging.DEBUG)
    assert len(debug) == 10
    assert debug[0] == (
        f"elector 'jobs' ({leader.uuid}) renewed token 1 in 0.0 ms, "
        "8.00 s before its renew deadline"
    )


def test_failed_and_late_renewals_and_stepping_down_are_warnings(
    flaky: FlakyBackend, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    node = elector(flaky, clock)
    node.poll()
    caplog.set_level(logging.INFO, logger="mongoelector")
    flaky.mode = "down"
    for _ in range(3):
        clock.advance(2)
        node.poll()
    flaky.mode = "ok"
    clock.advance(2)
    node.poll()
    flaky.mode = "lost-reply"
    clock.advance(2)
    node.poll()
    flaky.mode = "down"
    clock.advance(8)
    node.poll()

    warnings = lines(caplog, logging.WARNING)
    me = f"elector 'jobs' ({node.uuid})"
    assert warnings[:3] == [
        f"{me}: renew of token 1 failed: renew: store unreachable; {left} s left before the "
        "renew deadline"
        for left in ("8.00", "6.00", "4.00")
    ]
    assert warnings[3] == f"{me} renewed token 1 late: 2.00 s before its renew deadline " + (
        "(the call took 0.0 ms)"
    )
    assert warnings[4].startswith(f"{me}: renew of token 1 failed (outcome unknown): ")
    assert warnings[5] == (
        f"{me} stepped down from token 1: no successful renewal within the renew deadline "
        "(10 s); held 18.0 s"
    )
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_a_lease_taken_over_and_a_new_leader_are_logged(
    backend: MemoryBackend, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = elector(backend, clock), elector(backend, clock)
    first.poll()
    caplog.set_level(logging.INFO, logger="mongoelector")

    Lock("jobs", backend, ttl=5, clock=clock).acquire(force=True)
    clock.advance(2)
    first.poll()
    clock.advance(5)
    second.poll()
    first.poll()

    messages = lines(caplog)
    assert (
        f"elector 'jobs' ({first.uuid}) lost token 1: the lease was taken over "
        "(the store has another record); held 2.0 s"
    ) in messages
    assert any(
        m.startswith(f"elector 'jobs' ({first.uuid}) sees a new leader: {second.uuid} (pid ")
        and m.endswith("with token 3")
        for m in messages
    )


def test_locks_log_acquire_loss_and_release(
    flaky: FlakyBackend, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mongoelector")
    lock = Lock("job", flaky, ttl=15, renew_deadline=10, clock=clock)

    lock.acquire()
    clock.advance(10)
    assert lock.touch() is None
    clock.advance(5)  # the store expires it too
    lock.acquire()
    lock.release()

    me = f"lock 'job' ({lock.uuid})"
    acquired, lost, again, released = lines(caplog)
    assert acquired.startswith(f"{me} holds the lock with token 1 (the winning call took")
    assert lost == (
        f"{me} stepped down from token 1: no successful renewal within the renew deadline "
        "(10 s); held 10.0 s"
    )
    assert again.startswith(f"{me} holds the lock with token 2")
    assert released == f"{me} released token 2; held 0.0 s"
    assert {r.name for r in caplog.records} == {"mongoelector.lock"}


def test_no_log_line_says_a_negative_time_left() -> None:
    """Issue 15, item 6: a renewal answered after its deadline, or an error after it."""
    from mongoelector._common.monitor import _left_before_deadline, _relative_to_deadline

    assert _left_before_deadline(1.5) == "1.50 s left before the renew deadline"
    assert _left_before_deadline(0.001) == "at the renew deadline"
    assert _left_before_deadline(-1.18) == "the renew deadline passed 1.18 s ago"
    assert _relative_to_deadline(0.25) == "0.25 s before its renew deadline"
    assert _relative_to_deadline(-0.01) == "0.01 s after its renew deadline"
    assert "-" not in _relative_to_deadline(-0.004) + _left_before_deadline(-0.004)
