"""Each checker fires on the history it exists to reject, and stays quiet otherwise."""

from __future__ import annotations

import dataclasses

from mongoelector.testing.simulation import (
    ELECTION_KEY,
    Belief,
    History,
    NodeSpec,
    Notice,
    Pause,
    Scenario,
    StoreState,
    check_all,
    check_exclusion,
    check_leases,
    check_liveness,
    check_notifications,
    check_tokens,
    liveness_bound,
)
from mongoelector.timing import LeaseTiming

S = 1_000_000
TIMING = LeaseTiming(ttl=15.0, renew_deadline=10.0, retry_period=2.0, max_drift=0.0)
SCENARIO = Scenario(
    seed=0, timing=TIMING, nodes=(NodeSpec(name="a"), NodeSpec(name="b")), duration=100.0
)


def belief(holder: str, token: int, start: float, end: float) -> Belief:
    return Belief(
        key=ELECTION_KEY, holder=holder, token=token, start=int(start * S), end=int(end * S)
    )


def state(time: float, owner: str | None, token: int, expires: float) -> StoreState:
    return StoreState(
        time=int(time * S), key=ELECTION_KEY, owner=owner, token=token, expires=int(expires * S)
    )


def history(
    beliefs: list[Belief], store: list[StoreState], *, quiet: float = 0.0, end: float = 100.0
) -> History:
    result = History(scenario=SCENARIO, quiet_since=int(quiet * S), end=int(end * S))
    for record in [*store, *beliefs]:
        result.add(record)
    return result


def clean() -> History:
    return history(
        [belief("a", 1, 0, 40), belief("b", 2, 45, 100)],
        [
            state(0, "a", 1, 15),
            state(10, "a", 1, 25),
            state(20, "a", 1, 35),
            state(30, "a", 1, 45),
            state(45, "b", 2, 60),
            state(55, "b", 2, 70),
            state(65, "b", 2, 80),
            state(75, "b", 2, 90),
            state(85, "b", 2, 100),
        ],
        quiet=40,
    )


def test_a_clean_history_passes_every_checker() -> None:
    assert check_all(clean()) == []


def test_exclusion_catches_two_overlapping_holders() -> None:
    broken = history([belief("a", 1, 0, 40), belief("b", 2, 39, 100)], [])

    (violation,) = check_exclusion(broken)

    assert violation.kind == "exclusion"
    assert violation.nodes == ("a", "b")
    assert violation.time == 39 * S
    assert "for 1.000000s" in violation.message


def test_exclusion_allows_one_holder_to_follow_another_at_the_same_instant() -> None:
    assert check_exclusion(history([belief("a", 1, 0, 40), belief("b", 2, 40, 100)], [])) == []


def test_tokens_must_grow_from_one_holding_to_the_next() -> None:
    broken = history([belief("a", 2, 0, 40), belief("b", 2, 45, 100)], [])

    (violation,) = check_tokens(broken)

    assert (violation.kind, violation.nodes) == ("tokens", ("a", "b"))


def test_one_holding_may_lapse_and_resume_with_its_token() -> None:
    resumed = history([belief("a", 1, 0, 10), belief("a", 1, 12, 20)], [])

    assert check_tokens(resumed) == []


def test_leases_catch_a_belief_that_outlasts_the_lease_in_server_time() -> None:
    broken = history([belief("a", 1, 0, 16)], [state(0, "a", 1, 15)])

    (violation,) = check_leases(broken)

    assert violation.time == 15 * S
    assert "the lease expired at 15.000000" in violation.message


def test_leases_catch_a_belief_in_a_record_that_is_someone_elses() -> None:
    broken = history([belief("a", 1, 0, 10)], [state(0, "a", 1, 15), state(5, "b", 2, 20)])

    (violation,) = check_leases(broken)

    assert violation.time == 5 * S
    assert "the record is b's with token 2" in violation.message


def test_leases_catch_a_belief_with_no_record_at_all() -> None:
    (violation,) = check_leases(history([belief("a", 1, 0, 10)], []))

    assert "with no record" in violation.message


def test_every_notice_is_a_notification_violation() -> None:
    noted = clean()
    noted.add(Notice(time=3 * S, node="a", message="on_leader fired while is_leader is False"))

    (violation,) = check_notifications(noted)

    assert (violation.kind, violation.nodes, violation.time) == ("notification", ("a",), 3 * S)


def test_liveness_bound_is_ttl_plus_a_retry_period_with_exact_clocks_and_instant_calls() -> None:
    assert liveness_bound(SCENARIO) == 17.0


def test_liveness_catches_no_leader_within_the_bound_after_faults_stop() -> None:
    late = history([belief("a", 1, 0, 10), belief("b", 2, 38, 100)], [], quiet=20)

    (violation,) = check_liveness(late)

    assert violation.kind == "liveness"
    assert violation.time == 37 * S


def test_a_liveness_violation_gives_its_bound_rounded_and_from_when_it_counts() -> None:
    timing = LeaseTiming(ttl=15.0, renew_deadline=10.0, retry_period=2.123456789, max_drift=0.0)
    quiet = dataclasses.replace(SCENARIO, timing=timing)
    faulty = dataclasses.replace(quiet, faults=(Pause(node="a", at=1.0, duration=19.0),))
    for scenario, since in ((quiet, "the start"), (faulty, "the last fault")):
        late = History(scenario=scenario, quiet_since=20 * S, end=100 * S)
        late.add(belief("b", 2, 60, 100))

        (violation,) = check_liveness(late)

        assert f"no elector leads within 17.12s of {since} (quiet since" in violation.message


def test_liveness_accepts_a_leader_just_within_the_bound() -> None:
    assert check_liveness(history([belief("b", 2, 37, 100)], [], quiet=20)) == []


def test_liveness_catches_a_gap_after_the_bound() -> None:
    gap = history([belief("b", 2, 30, 60), belief("b", 3, 61, 100)], [], quiet=20)

    (violation,) = check_liveness(gap)

    assert violation.time == 60 * S
    assert "from 60.000000 to 61.000000" in violation.message


def test_liveness_catches_leadership_ending_before_the_run_does() -> None:
    (violation,) = check_liveness(history([belief("b", 2, 30, 90)], [], quiet=20))

    assert "to the end" in violation.message


def test_liveness_is_not_judged_when_the_run_ends_within_the_bound() -> None:
    assert check_liveness(history([], [], quiet=90)) == []
