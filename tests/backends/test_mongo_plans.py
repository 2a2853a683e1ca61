"""The MongoDB backends' plans, driven by hand: the steps they ask for, and what they decide.

No store and no shell: a test answers each step the plan yields (a value, or
an exception raised at the ``yield``), as the sync and async shells do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, NotPrimaryError, OperationFailure

from mongoelector.backends._mongo.failures import RetryPolicy
from mongoelector.backends._mongo.indexes import IndexSpec
from mongoelector.backends._mongo.plans import (
    Bounded,
    Command,
    CreateIndex,
    FindOne,
    Plan,
    Sleep,
    Step,
    create_indexes,
    hello,
    with_retries,
)
from mongoelector.backends._mongo_sync import drive
from mongoelector.errors import AmbiguousOutcome, BackendUnavailable
from mongoelector.testing import FakeClock

Answer = Callable[[Step], object]


def scripted(*answers: object) -> tuple[list[Step], Answer]:
    """A performer that answers steps in order (raising an answer that is an exception)."""
    seen: list[Step] = []
    queue = list(answers)

    def answer(step: Step) -> object:
        seen.append(step)
        if isinstance(step, Sleep):
            return None
        reply = queue.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    return seen, answer


def read_job() -> Plan[Any]:
    return (yield FindOne("leases", {"_id": "job"}))


def not_primary() -> NotPrimaryError:
    return NotPrimaryError("not primary", {"ok": 0, "code": 10107, "errmsg": "x"})


def retried(clock: FakeClock, *, write: bool, budget: float = 5.0) -> Plan[Any]:
    return with_retries(clock, RetryPolicy(budget=budget), "read of 'job'", read_job, write=write)


def test_each_step_of_an_attempt_is_bounded_by_what_is_left_of_the_budget() -> None:
    clock = FakeClock()
    seen, answer = scripted({"_id": "job"})
    assert drive(retried(clock, write=False), answer) == {"_id": "job"}
    assert seen == [Bounded(FindOne("leases", {"_id": "job"}), 5.0)]


def test_a_transient_failure_is_retried_after_a_pause_on_the_clock() -> None:
    clock = FakeClock()
    seen, answer = scripted(not_primary(), AutoReconnect("reset"), {"_id": "job"})
    assert drive(retried(clock, write=False), answer) == {"_id": "job"}
    pauses = [step.seconds for step in seen if isinstance(step, Sleep)]
    assert pauses == [0.05, 0.1]
    bounds = [step.seconds for step in seen if isinstance(step, Bounded)]
    assert bounds == [5.0, 5.0, 5.0]  # the fake clock did not move: nothing spent


def test_a_write_that_may_have_applied_ends_ambiguous_even_if_later_attempts_are_refused() -> None:
    clock = FakeClock()
    refused = OperationFailure("bad value", code=2)
    _, answer = scripted(AutoReconnect("connection closed"), refused)
    with pytest.raises(AmbiguousOutcome, match="an earlier attempt may have applied") as raised:
        drive(retried(clock, write=True), answer)
    assert raised.value.original is refused


def test_a_failure_not_worth_retrying_is_raised_at_once() -> None:
    clock = FakeClock()
    seen, answer = scripted(OperationFailure("bad value", code=2))
    with pytest.raises(BackendUnavailable):
        drive(retried(clock, write=True), answer)
    assert not any(isinstance(step, Sleep) for step in seen)


def test_later_attempts_get_what_is_left_and_no_pause_runs_past_the_budget() -> None:
    clock = FakeClock()
    bounds: list[float] = []

    def answer(step: Step) -> object:
        if isinstance(step, Sleep):
            clock.advance(step.seconds)
            return None
        assert isinstance(step, Bounded)
        bounds.append(step.seconds)
        clock.advance(min(0.4, step.seconds))  # pymongo.timeout cuts a slow attempt short
        raise not_primary()

    with pytest.raises(BackendUnavailable):
        drive(retried(clock, write=False, budget=1.0), answer)
    assert bounds == pytest.approx([1.0, 0.55, 0.05])
    assert clock.monotonic() == pytest.approx(1.0)


def test_hello_falls_back_to_is_master_and_to_nothing() -> None:
    seen, answer = scripted(OperationFailure("no such command", code=59), {"ismaster": True})
    assert drive(hello("db"), answer) == {"ismaster": True}
    assert seen == [Command("db", "hello"), Command("db", "isMaster")]
    _, answer = scripted(NotImplementedError("mongomock"))
    assert drive(hello("db"), answer) is None
    _, answer = scripted(OperationFailure("unauthorized", code=13))
    with pytest.raises(OperationFailure):
        drive(hello("db"), answer)


class Named:
    name = "mongolocker"


def test_a_refused_index_is_left_alone_and_an_unreachable_server_postpones_the_rest() -> None:
    specs = [IndexSpec([("a", 1)]), IndexSpec([("b", 1)])]
    conflict = OperationFailure("exists with other options", code=85)
    seen, answer = scripted(conflict, None)
    collection = Named()
    assert drive(create_indexes(collection, specs, budget=2.0), answer) is True
    assert seen == [Bounded(CreateIndex(collection, spec), 2.0) for spec in specs]
    _, answer = scripted(AutoReconnect("no server"))
    assert drive(create_indexes(Named(), specs, budget=2.0), answer) is False


def test_an_interruption_that_is_not_an_exception_closes_the_plan() -> None:
    closed: list[bool] = []

    def plan() -> Plan[None]:
        try:
            yield FindOne("leases", {})
        finally:
            closed.append(True)

    def answer(step: Step) -> object:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        drive(plan(), answer)
    assert closed == [True]
