"""One acquire() call as a pure plan: tries, waits, and verdicts."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from mongoelector.backends import CasResult, LeaseRecord
from mongoelector.core.events import Inspect, Renew, TryAcquire
from mongoelector.core.lock_machine import (
    AcquireAttempt,
    Call,
    Fail,
    GiveUp,
    GiveUpReason,
    Succeed,
    WaitThenCall,
)

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def rec(owner: str | None, token: int = 1) -> LeaseRecord:
    return LeaseRecord(key="k", owner=owner, token=token, acquired_at=T0, expires_at=T0)


def attempt(**kwargs: object) -> AcquireAttempt:
    return AcquireAttempt(owner="me", renew_deadline=10, now=0.0, **kwargs)  # type: ignore[arg-type]


def test_success_holds_from_the_start_of_the_request() -> None:
    plan = attempt()
    assert plan.first() == Call(action=TryAcquire())
    decision = plan.on_result(TryAcquire(), 1.0, 1.5, CasResult(acquired=True, record=rec("me")))
    assert isinstance(decision, Succeed)
    assert decision.holding.valid_until == 11.0


def test_non_blocking_gives_up_at_once_naming_the_holder() -> None:
    plan = attempt(blocking=False)
    decision = plan.on_result(TryAcquire(), 0, 0, CasResult(acquired=False, record=rec("x")))
    assert decision == GiveUp(reason=GiveUpReason.HELD, holder=rec("x"))


def test_blocking_retries_every_step_and_times_out_after_a_last_try() -> None:
    plan = attempt(timeout=1.0, step=0.4)
    refused = CasResult(acquired=False, record=rec("x"))
    assert plan.on_result(TryAcquire(), 0, 0, refused) == WaitThenCall(
        until=0.4, action=TryAcquire()
    )
    assert plan.on_result(TryAcquire(), 0.8, 0.8, refused) == WaitThenCall(
        until=1.0, action=TryAcquire()
    )
    decision = plan.on_result(TryAcquire(), 1.0, 1.0, refused)
    assert isinstance(decision, GiveUp) and decision.reason is GiveUpReason.TIMEOUT


def test_force_is_carried_on_every_try() -> None:
    plan = attempt(force=True)
    assert plan.first() == Call(action=TryAcquire(force=True))


def test_ambiguous_failure_reads_the_record_then_confirms_with_a_renew() -> None:
    plan = attempt()
    assert plan.on_failure(TryAcquire(), 0.5, ambiguous=True) == Call(action=Inspect())
    assert plan.on_result(Inspect(), 0.6, 0.6, rec("me", 4)) == Call(action=Renew(token=4))
    decision = plan.on_result(Renew(token=4), 0.7, 0.8, rec("me", 4))
    assert isinstance(decision, Succeed) and decision.holding.started_at == 0.7


def test_definite_failure_after_an_ambiguous_one_reports_maybe_held() -> None:
    plan = attempt()
    plan.on_failure(TryAcquire(), 0.5, ambiguous=True)
    assert plan.on_failure(Inspect(), 0.6, ambiguous=False) == Fail(maybe_held=True)


def test_definite_failure_alone_is_not_maybe_held() -> None:
    assert attempt().on_failure(TryAcquire(), 0.1, ambiguous=False) == Fail(maybe_held=False)


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        ({"blocking": False, "timeout": 5}, ValueError, "timeout=5"),
        ({"timeout": -1}, ValueError, "-1"),
        ({"step": 0}, ValueError, "step"),
        ({"blocking": "yes"}, TypeError, "yes"),
        ({"force": 1}, TypeError, "force"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], error: type, named: str) -> None:
    with pytest.raises(error, match=named):
        attempt(**kwargs)
