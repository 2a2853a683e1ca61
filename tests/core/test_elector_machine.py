"""The elector state machine, driven with bare inputs: no backend, no clock, no threads."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from mongoelector.backends import CasResult, LeaseRecord
from mongoelector.core.elector_machine import (
    TRANSITIONS,
    ElectorMachine,
    InvalidTransition,
    Outcome,
    Role,
    Step,
)
from mongoelector.core.events import (
    Inspect,
    LeaderChanged,
    LeadershipGained,
    LeadershipLost,
    LossReason,
    Release,
    Renew,
    TryAcquire,
)
from mongoelector.timing import LeaseTiming

TIMING = LeaseTiming(ttl=15, renew_deadline=10, retry_period=2)
#: The first try of a machine built with :func:`counter`.
TRY = TryAcquire(acquisition="a1")


def counter() -> Callable[[], str]:
    """Acquisition ids a1, a2, ... in the order a machine asks for them."""
    numbers = itertools.count(1)
    return lambda: f"a{next(numbers)}"


T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def rec(owner: str | None, token: int, acquisition: str | None = None) -> LeaseRecord:
    return LeaseRecord(
        key="k",
        owner=owner,
        token=token,
        acquired_at=T0,
        expires_at=T0 + timedelta(seconds=15),
        host="h",
        pid=1,
        acquisition=acquisition,
    )


def won(token: int = 1) -> CasResult:
    return CasResult(acquired=True, record=rec("me", token))


def lost_to(owner: str = "other", token: int = 1) -> CasResult:
    return CasResult(acquired=False, record=rec(owner, token))


def leader_at(now: float = 0.0, token: int = 1) -> ElectorMachine:
    machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=counter())
    step = machine.begin_poll(now)
    assert isinstance(step.action, TryAcquire)
    machine.on_acquire_result(now, now, won(token))
    return machine


def test_a_fresh_follower_tries_to_acquire_at_once() -> None:
    machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=counter())
    assert machine.role is Role.FOLLOWER
    assert machine.wake_at() == -math.inf
    assert isinstance(machine.begin_poll(0.0).action, TryAcquire)


def test_winning_the_lease_makes_a_leader_and_announces_it() -> None:
    machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=counter())
    machine.begin_poll(0.0)
    step = machine.on_acquire_result(0.0, 0.1, won(token=7))
    assert machine.role is Role.LEADER
    assert machine.is_leader(0.1)
    assert machine.token(0.1) == 7
    assert step.notifications[0] == LeadershipGained(token=7)
    assert isinstance(step.notifications[1], LeaderChanged)
    assert step.notifications[1].leader.uuid == "me"


def test_a_leader_renews_every_retry_period() -> None:
    machine = leader_at(0.0, token=3)
    assert machine.wake_at() == 2.0
    assert machine.begin_poll(2.0).action == Renew(token=3)
    step = machine.on_renew_result(2.0, 2.0, rec("me", 3))
    assert step.notifications == ()
    assert machine.wake_at() == 4.0


def test_refused_follower_sees_the_leader_and_retries_after_retry_period() -> None:
    machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=counter())
    machine.begin_poll(0.0)
    step = machine.on_acquire_result(0.0, 0.0, lost_to("other", 4))
    assert machine.role is Role.FOLLOWER
    assert [type(n) for n in step.notifications] == [LeaderChanged]
    assert machine.leader is not None and machine.leader.token == 4
    assert machine.wake_at() == 2.0
    assert machine.leader_exists(14.9)
    assert not machine.leader_exists(15.0)


def test_seeing_the_same_term_again_announces_nothing() -> None:
    machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=counter())
    machine.on_acquire_result(0.0, 0.0, lost_to("other", 4))
    assert machine.on_acquire_result(2.0, 2.0, lost_to("other", 4)).notifications == ()
    assert len(machine.on_acquire_result(4.0, 4.0, lost_to("other", 5)).notifications) == 1


def test_leader_that_cannot_renew_steps_down_at_the_deadline_without_a_call() -> None:
    machine = leader_at(0.0, token=2)
    for now in (2.0, 4.0, 6.0, 8.0):
        assert machine.begin_poll(now).action == Renew(token=2)
        machine.on_failure(Renew(token=2), now, ambiguous=False)
        assert machine.is_leader(now)
    assert machine.wake_at() == 10.0
    assert not machine.is_leader(10.0)
    step = machine.begin_poll(10.0)
    assert step.notifications == (LeadershipLost(token=2, reason=LossReason.DEADLINE),)
    assert machine.role is Role.FOLLOWER
    assert isinstance(step.action, TryAcquire)


def test_deadline_counts_from_the_start_of_the_last_successful_renew() -> None:
    machine = leader_at(0.0)
    machine.begin_poll(2.0)
    machine.on_renew_result(2.0, 5.0, rec("me", 1))  # slow reply: start counts
    assert machine.is_leader(11.99)
    assert not machine.is_leader(12.0)


def test_renew_refused_means_taken_over() -> None:
    machine = leader_at(0.0, token=2)
    machine.begin_poll(2.0)
    step = machine.on_renew_result(2.0, 2.0, None)
    assert step.notifications == (LeadershipLost(token=2, reason=LossReason.TAKEN_OVER),)
    assert machine.role is Role.FOLLOWER
    assert machine.leader is None


def test_ambiguous_acquire_is_confirmed_by_reading_then_renewing() -> None:
    machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=counter())
    machine.begin_poll(0.0)
    machine.on_failure(TRY, 0.5, ambiguous=True)
    assert machine.role is Role.CONFIRMING
    assert not machine.is_leader(0.5)
    assert machine.begin_poll(0.5).action == Inspect()
    machine.on_inspect_result(0.6, rec("me", 9, "a1"))
    assert machine.begin_poll(0.6).action == Renew(token=9)
    step = machine.on_renew_result(0.7, 0.8, rec("me", 9, "a1"))
    assert step.notifications[0] == LeadershipGained(token=9)
    assert machine.is_leader(10.69) and not machine.is_leader(10.7)


def test_ambiguous_acquire_that_did_not_apply_returns_to_following() -> None:
    machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=counter())
    machine.on_failure(TRY, 0.0, ambiguous=True)
    step = machine.on_inspect_result(0.1, rec("other", 3))
    assert machine.role is Role.FOLLOWER
    assert [type(n) for n in step.notifications] == [LeaderChanged]


def test_a_refusal_showing_this_tries_own_record_is_confirmed_before_leading() -> None:
    machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=counter())
    machine.begin_poll(0.0)
    mine = CasResult(acquired=False, record=rec("me", 5, "a1"))
    machine.on_acquire_result(0.0, 0.0, mine)
    assert machine.role is Role.CONFIRMING
    assert machine.begin_poll(0.0).action == Renew(token=5)


def test_a_term_given_up_at_its_deadline_is_released_never_led_again() -> None:
    """After stepping down, its still-live record is another holding: no new term with token 1."""
    machine = leader_at(0.0, token=1)
    step = machine.begin_poll(10.0)
    assert LeadershipLost(token=1, reason=LossReason.DEADLINE) in step.notifications
    assert isinstance(step.action, TryAcquire)
    earlier_term = CasResult(acquired=False, record=rec("me", 1, "a1"))
    step = machine.on_acquire_result(10.0, 10.1, earlier_term)
    assert not any(isinstance(note, LeadershipGained) for note in step.notifications)
    assert machine.role is Role.FOLLOWER
    assert machine.wake_at() == 10.1
    assert machine.begin_poll(10.1).action == Release(token=1)
    retry = machine.begin_poll(10.2)
    assert isinstance(retry.action, TryAcquire)
    step = machine.on_acquire_result(10.2, 10.3, won(2))
    assert LeadershipGained(token=2) in step.notifications


def test_a_record_of_ours_that_no_try_of_this_node_wrote_is_not_adopted() -> None:
    machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=counter())
    machine.begin_poll(0.0)
    machine.on_failure(TRY, 0.1, ambiguous=True)
    machine.begin_poll(0.1)
    machine.on_inspect_result(0.2, rec("me", 3, "some-earlier-try"))
    assert machine.role is Role.FOLLOWER
    assert machine.begin_poll(0.2).action == Release(token=3)


def test_release_steps_down_first_then_asks_for_the_store_release() -> None:
    machine = leader_at(0.0, token=4)
    step = machine.release(1.0)
    assert step.notifications == (LeadershipLost(token=4, reason=LossReason.RELEASED),)
    assert step.action == Release(token=4)
    assert not machine.is_leader(1.0)


def test_after_release_the_node_waits_two_retry_periods_before_competing() -> None:
    machine = leader_at(0.0)
    machine.release(1.0)
    assert machine.begin_poll(4.9).action is None
    assert machine.wake_at() == 5.0
    assert isinstance(machine.begin_poll(5.0).action, TryAcquire)


def test_stop_releases_and_then_nothing_is_due() -> None:
    machine = leader_at(0.0, token=2)
    step = machine.stop(1.0)
    assert step.action == Release(token=2)
    assert step.notifications == (LeadershipLost(token=2, reason=LossReason.STOPPED),)
    assert machine.wake_at() == math.inf
    assert machine.begin_poll(100.0).action is None
    machine.start()
    assert isinstance(machine.begin_poll(100.0).action, TryAcquire)


def test_stopping_a_follower_releases_nothing() -> None:
    machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=counter())
    assert machine.stop(0.0).action is None


def test_status_is_due_at_first_on_change_and_every_interval() -> None:
    machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=counter())
    assert machine.status_due(0.0)
    machine.status_reported(0.0, leading=False)
    assert not machine.status_due(1.0)
    machine.on_acquire_result(1.0, 1.0, won())
    assert machine.status_due(1.0)
    machine.status_reported(1.0, leading=True)
    assert not machine.status_due(5.9)
    assert machine.status_due(6.0)  # ttl / 3


def test_status_is_due_at_the_first_poll_after_a_restart() -> None:
    """The last report before a restart says the node stopped, or (a stop that sent none,
    started again first) tells the term before: the new run reports at once, whatever its
    leadership and that report's age."""
    machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=counter())
    machine.status_reported(0.0, leading=False)
    machine.stop(1.0)
    machine.status_reported(1.0, leading=False)  # the stop's elector_running=False
    machine.start()
    assert machine.status_due(2.0)
    machine.status_reported(2.0, leading=False)
    assert not machine.status_due(3.0)
    machine.start()  # not stopped: nothing changes
    assert not machine.status_due(3.0)


def test_outcomes_impossible_in_a_role_are_refused() -> None:
    machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=counter())
    machine.stop(0.0)
    with pytest.raises(InvalidTransition):
        machine.on_acquire_result(0.0, 0.0, won())


def test_every_role_can_be_stopped_and_only_stopped_can_start() -> None:
    for role in Role:
        assert (role, Outcome.STOP) in TRANSITIONS
        assert ((role, Outcome.START) in TRANSITIONS) == (role is Role.STOPPED)
    assert {TRANSITIONS[(role, Outcome.STOP)] for role in Role} == {Role.STOPPED}


def test_only_acquiring_or_confirming_leads_to_leadership() -> None:
    into_leader = {key for key, role in TRANSITIONS.items() if role is Role.LEADER}
    assert {outcome for _, outcome in into_leader} <= {
        Outcome.ACQUIRED,
        Outcome.RENEWED,
        Outcome.FAILED,
        Outcome.AMBIGUOUS,
    }
    assert (Role.FOLLOWER, Outcome.RENEWED) not in TRANSITIONS


def test_a_token_given_up_is_never_adopted_again() -> None:
    machine = leader_at(0.0, token=4)
    assert machine.release(1.0).action == Release(token=4)
    machine.on_failure(Release(token=4), 1.1, ambiguous=True)  # it may still land later
    step = machine.begin_poll(5.0)
    assert isinstance(step.action, TryAcquire)
    machine.on_acquire_result(5.0, 5.0, lost_to("me", 4))  # the store still shows token 4
    assert machine.role is Role.FOLLOWER
    machine.on_failure(TRY, 7.0, ambiguous=True)
    machine.on_inspect_result(7.1, rec("me", 4))
    assert machine.role is Role.FOLLOWER
    assert not machine.is_leader(7.1)


def test_a_fresh_token_after_giving_one_up_is_led_with() -> None:
    machine = leader_at(0.0, token=4)
    machine.release(1.0)
    machine.begin_poll(5.0)
    machine.on_acquire_result(5.0, 5.0, won(token=5))
    assert machine.is_leader(5.0) and machine.token(5.0) == 5


def test_an_unconfirmed_record_is_never_released_without_its_token() -> None:
    machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=counter())
    machine.on_failure(TRY, 0.0, ambiguous=True)
    assert machine.role is Role.CONFIRMING
    assert machine.stop(0.1).action is None


def test_a_follower_polls_every_follower_poll_while_another_node_leads() -> None:
    timing = LeaseTiming(ttl=15, renew_deadline=10, retry_period=7.5, follower_poll=15)
    machine = ElectorMachine(owner="me", timing=timing, new_acquisition=counter())
    machine.on_acquire_result(0.0, 0.0, lost_to("other", 1))
    assert machine.wake_at() == 15.0
    machine.on_failure(TRY, 15.0, ambiguous=False)
    assert machine.wake_at() == 22.5  # failures are retried after retry_period


def test_a_leader_still_renews_every_retry_period_with_a_slower_follower_poll() -> None:
    timing = LeaseTiming(ttl=15, renew_deadline=10, retry_period=7.5, follower_poll=15)
    machine = ElectorMachine(owner="me", timing=timing, new_acquisition=counter())
    machine.on_acquire_result(0.0, 0.0, won(1))
    assert machine.wake_at() == 7.5
    machine.release(1.0)
    assert machine.wake_at() == 31.0  # waits two follower polls before competing again


# --- the step-down at the deadline, decided apart from a poll (a driver's timer) -------------


def test_expire_before_the_deadline_changes_nothing() -> None:
    machine = leader_at(0.0, token=3)
    assert machine.expire(9.999) == Step()
    assert machine.is_leader(9.999) and machine.role is Role.LEADER


def test_expire_at_the_deadline_steps_down_once_and_asks_for_a_poll_at_once() -> None:
    machine = leader_at(0.0, token=3)
    step = machine.expire(10.0)
    assert step == Step(notifications=(LeadershipLost(token=3, reason=LossReason.DEADLINE),))
    assert machine.role is Role.FOLLOWER and machine.leader is None
    assert machine.wake_at() == 10.0
    assert machine.expire(10.5) == Step()
    follow_up = machine.begin_poll(10.5)  # the loss is not reported a second time
    assert follow_up.notifications == ()
    assert isinstance(follow_up.action, TryAcquire)


def test_expire_of_a_follower_or_a_stopped_node_changes_nothing() -> None:
    machine = ElectorMachine(owner="me", timing=TIMING, new_acquisition=counter())
    assert machine.expire(100.0) == Step()
    machine.stop(100.0)
    assert machine.expire(200.0) == Step()
    assert machine.role is Role.STOPPED


def test_a_renew_granted_after_its_term_expired_is_not_trusted_and_its_record_is_released() -> None:
    machine = leader_at(0.0, token=3)
    assert machine.begin_poll(8.0).action == Renew(token=3)  # sent; the store hangs
    machine.expire(10.0)
    step = machine.on_renew_result(8.0, 12.0, rec("me", 3))  # the late reply: granted
    assert not any(isinstance(note, LeadershipGained) for note in step.notifications)
    assert machine.role is Role.FOLLOWER and not machine.is_leader(12.0)
    assert machine.token(12.0) is None
    retry = machine.begin_poll(12.0)
    assert isinstance(retry.action, TryAcquire)
    machine.on_acquire_result(12.0, 12.1, CasResult(acquired=False, record=rec("me", 3, "a1")))
    assert machine.begin_poll(12.1).action == Release(token=3)


@pytest.mark.parametrize("ambiguous", [False, True])
def test_a_renew_failing_after_its_term_expired_leaves_the_follower_as_it_is(
    ambiguous: bool,
) -> None:
    machine = leader_at(0.0, token=3)
    machine.begin_poll(8.0)
    machine.expire(10.0)
    assert machine.on_failure(Renew(token=3), 12.0, ambiguous=ambiguous) == Step()
    assert machine.role is Role.FOLLOWER
    assert machine.wake_at() == 10.0  # still due at once: try again


def test_a_renew_refused_after_its_term_expired_reports_no_second_loss() -> None:
    machine = leader_at(0.0, token=3)
    machine.begin_poll(8.0)
    machine.expire(10.0)
    step = machine.on_renew_result(8.0, 12.0, None)
    assert not any(isinstance(note, LeadershipLost) for note in step.notifications)
    assert machine.role is Role.FOLLOWER


# --- stopping after the term lapsed: the lease the store may still keep is freed -------------


@pytest.mark.parametrize("let_go", ["stop", "release"])
def test_a_stop_or_release_after_the_deadline_frees_the_lapsed_term_by_its_token(
    let_go: str,
) -> None:
    """The term ended at its renew deadline; the store keeps its lease until the ttl (longer
    if a late renew landed): ``stop()`` and ``release()`` free it by its token, as the next
    poll would have, instead of making the others wait for it."""
    machine = leader_at(0.0, token=3)
    machine.expire(10.0)
    step = getattr(machine, let_go)(10.5)
    assert step.action == Release(token=3)
    assert step.notifications == ()  # the loss was reported at the deadline, once
    assert getattr(machine, let_go)(11.0).action is None  # once


def test_a_lapsed_term_is_not_released_again_once_a_poll_settled_it() -> None:
    machine = leader_at(0.0, token=3)
    machine.expire(10.0)
    machine.begin_poll(10.0)
    machine.on_acquire_result(10.0, 10.0, CasResult(acquired=False, record=rec("me", 3)))
    assert machine.begin_poll(10.0).action == Release(token=3)  # found stale: freed by a poll
    assert machine.stop(10.5).action is None


def test_a_found_stale_holding_not_yet_released_is_freed_by_a_stop() -> None:
    machine = leader_at(0.0, token=3)
    machine.expire(10.0)
    machine.begin_poll(10.0)
    machine.on_acquire_result(10.0, 10.0, CasResult(acquired=False, record=rec("me", 3)))
    assert machine.stop(10.5).action == Release(token=3)


@pytest.mark.parametrize("seen", [None, rec("other", 4), rec(None, 3)])
def test_a_lapsed_term_gone_from_the_store_is_not_released(seen: LeaseRecord | None) -> None:
    machine = leader_at(0.0, token=3)
    machine.expire(10.0)
    machine.begin_poll(10.0)
    machine.on_acquire_result(10.0, 10.0, CasResult(acquired=False, record=seen))
    assert machine.stop(10.5).action is None


def test_a_new_term_replaces_the_lapsed_one() -> None:
    machine = leader_at(0.0, token=3)
    machine.expire(10.0)
    machine.begin_poll(10.0)
    machine.on_acquire_result(10.0, 10.0, won(token=4))
    assert machine.stop(10.5).action == Release(token=4)
    assert machine.start() is None and machine.stop(11.0).action is None


def test_mutation_a_stop_that_forgets_the_lapsed_term_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first check above fails if the machine does not remember the lapsed term."""
    expire = ElectorMachine.expire

    def forgetful(self: ElectorMachine, now: float) -> Step:
        step = expire(self, now)
        self._lapsed_token = None
        return step

    monkeypatch.setattr(ElectorMachine, "expire", forgetful)
    with pytest.raises(AssertionError):
        test_a_stop_or_release_after_the_deadline_frees_the_lapsed_term_by_its_token("stop")
