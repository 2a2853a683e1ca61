"""Which holdings renew together (``core.batching``): the window, the cap, one key per call,
and that holdings renewed this way line up, one call per interval, whatever their start."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mongoelector.backends.protocol import LeaseRecord
from mongoelector.core.batching import (
    JOIN_FRACTION,
    MAX_BATCH,
    RenewTiming,
    joins,
    renew_together,
)
from mongoelector.core.events import Renew
from mongoelector.core.lease import LeaseKeeper
from mongoelector.core.renewal import Ended, Lost, Renewal

INTERVAL = 2.0  # ttl 15: renew every 2 s, deadline 10 s
DEADLINE = 10.0


def timing(key: str, renew_at: float, *, valid_until: float = 100.0, interval: float = INTERVAL):
    return RenewTiming(key=key, renew_at=renew_at, valid_until=valid_until, interval=interval)


TRIGGER = timing("trigger", 10.0)


class TestJoins:
    def test_a_holding_due_within_half_its_interval_joins(self) -> None:
        assert JOIN_FRACTION == 0.5
        assert joins(10.0, timing("a", 11.0))  # due in exactly half an interval
        assert joins(10.0, timing("a", 9.0))  # overdue already
        assert not joins(10.0, timing("a", 11.001))

    def test_the_window_is_the_joining_holdings_own_interval(self) -> None:
        # A long-lived holding (interval 80 s) joins a 2 s neighbour only in its last 40 s.
        assert joins(10.0, timing("long", 50.0, interval=80.0))
        assert not joins(10.0, timing("long", 50.1, interval=80.0))

    def test_a_holding_past_its_deadline_never_joins(self) -> None:
        assert not joins(10.0, timing("a", 9.0, valid_until=10.0))
        assert not joins(10.0, timing("a", 9.0, valid_until=9.5))
        assert joins(10.0, timing("a", 9.0, valid_until=10.001))


class TestRenewTogether:
    def test_nobody_joins_an_empty_store(self) -> None:
        assert renew_together(10.0, TRIGGER, []) == [[]]

    def test_the_holdings_due_soon_join_soonest_first(self) -> None:
        candidates = [
            ("late", timing("late", 10.9)),
            ("too-late", timing("too-late", 11.5)),
            ("soon", timing("soon", 10.1)),
            ("lost", timing("lost", 10.0, valid_until=9.0)),
        ]
        assert renew_together(10.0, TRIGGER, candidates) == [["soon", "late"]]

    def test_ties_keep_the_candidates_order(self) -> None:
        candidates = [(name, timing(name, 10.5)) for name in "dcba"]
        assert renew_together(10.0, TRIGGER, candidates) == [list("dcba")]

    def test_the_triggers_call_takes_at_most_the_cap_and_the_rest_follow(self) -> None:
        candidates = [(n, timing(f"k{n}", 10.0 + n / 1000)) for n in range(7)]
        calls = renew_together(10.0, TRIGGER, candidates, limit=3)
        assert calls == [[0, 1], [2, 3, 4], [5, 6]]  # the trigger counts in the first

    def test_the_default_cap_is_a_thousand(self) -> None:
        assert MAX_BATCH == 1000
        candidates = [(n, timing(f"k{n}", 10.5)) for n in range(2500)]
        calls = renew_together(10.0, TRIGGER, candidates)
        assert [len(call) for call in calls] == [999, 1000, 501]
        assert sorted(n for call in calls for n in call) == list(range(2500))

    def test_no_call_names_a_key_twice(self) -> None:
        candidates = [
            ("trigger-again", timing("trigger", 10.1)),  # another lock object's holding
            ("a1", timing("a", 10.2)),
            ("a2", timing("a", 10.3)),
            ("b", timing("b", 10.4)),
        ]
        calls = renew_together(10.0, TRIGGER, candidates)
        assert calls == [["a1", "b"], ["trigger-again", "a2"]]

    def test_a_key_repeated_in_a_full_call_goes_to_the_next(self) -> None:
        candidates = [
            ("a1", timing("a", 10.1)),
            ("b", timing("b", 10.2)),
            ("a2", timing("a", 10.3)),
        ]
        assert renew_together(10.0, TRIGGER, candidates, limit=2) == [["a1"], ["b", "a2"]]

    def test_a_cap_of_one_renews_the_trigger_alone(self) -> None:
        candidates = [("a", timing("a", 10.1)), ("b", timing("b", 10.2))]
        assert renew_together(10.0, TRIGGER, candidates, limit=1) == [[], ["a"], ["b"]]

    def test_the_cap_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="limit"):
            renew_together(10.0, TRIGGER, [], limit=0)


class TestTheRenewalRules:
    """What a driver asks a holding's rules for a batch: its timing, and to renew early."""

    def hold(self, now: float = 0.0) -> tuple[LeaseKeeper, Renewal]:
        keeper = LeaseKeeper(renew_deadline=DEADLINE, renew_interval=INTERVAL)
        record = LeaseRecord(key="k", owner="me", token=3, acquired_at=None, expires_at=None)
        keeper.hold(record, now)
        return keeper, Renewal(keeper, 3)

    def test_a_kept_holding_tells_when_it_falls_due(self) -> None:
        _, renewal = self.hold()
        assert renewal.timing(0.5, key="k") == RenewTiming(
            key="k", renew_at=INTERVAL, valid_until=DEADLINE, interval=INTERVAL
        )
        assert renewal.renew_interval == INTERVAL

    def test_a_holding_past_its_deadline_or_gone_has_no_timing(self) -> None:
        keeper, renewal = self.hold()
        assert renewal.timing(DEADLINE, key="k") is None
        assert keeper.holding is not None  # asking drops nothing and reports nothing
        keeper.drop()
        assert renewal.timing(1.0, key="k") is None

    def test_renewing_now_is_renewing_early_until_the_deadline(self) -> None:
        keeper, renewal = self.hold()
        assert renewal.renew_now(0.5) == Renew(token=3)  # due only at 2.0
        verdict = renewal.renew_now(DEADLINE)
        assert isinstance(verdict, Lost) and verdict.token == 3
        assert keeper.holding is None  # the deadline verdict dropped it, once
        assert renewal.renew_now(DEADLINE + 1) == Ended(token=3)

    def test_an_early_renewal_moves_the_next_one_an_interval_after_it(self) -> None:
        keeper, renewal = self.hold()
        record = keeper.holding.record if keeper.holding else None
        assert renewal.on_renewed(0.5, 0.5, record) is None
        timing_after = renewal.timing(0.6, key="k")
        assert timing_after is not None
        assert timing_after.renew_at == 0.5 + INTERVAL
        assert timing_after.valid_until == 0.5 + DEADLINE


# --- the holdings line up ------------------------------------------------------------------

#: When a holding was acquired, within the first renew interval.
STARTS = st.floats(min_value=0.0, max_value=INTERVAL, exclude_max=True)


def simulate(
    starts: list[float], intervals: list[float], *, until: float, limit: int
) -> tuple[list[float], list[int]]:
    """Renew holdings acquired at ``starts`` the way a driver does, with instant replies.

    At each moment the earliest due holding triggers a batch (with those that join
    it, in as many calls as the cap asks); returns the time of every call, and how
    many times each holding was renewed.
    """
    renewed = [0] * len(starts)
    keepers = []
    for start, interval in zip(starts, intervals, strict=True):
        keeper = LeaseKeeper(renew_deadline=5 * interval, renew_interval=interval)
        record = LeaseRecord(key="k", owner="me", token=1, acquired_at=None, expires_at=None)
        keeper.hold(record, start)
        keepers.append(keeper)
    calls: list[float] = []
    while True:
        now = min(keeper.next_renew for keeper in keepers)
        if now > until:
            return calls, renewed
        trigger = min(range(len(keepers)), key=lambda i: keepers[i].next_renew)
        timings = [
            Renewal(keeper, 1).timing(now, key=f"k{index}") for index, keeper in enumerate(keepers)
        ]
        trigger_timing = timings[trigger]
        assert trigger_timing is not None
        candidates = [
            (index, found)
            for index, found in enumerate(timings)
            if index != trigger and found is not None
        ]
        batches = renew_together(now, trigger_timing, candidates, limit=limit)
        batches[0].append(trigger)
        for batch in batches:
            calls.append(now)
            for index in batch:
                renewed[index] += 1
                keeper = keepers[index]
                assert keeper.on_renewed(now, keeper.holding.record if keeper.holding else None)


def calls_per_interval(calls: list[float], start: float, interval: float) -> list[int]:
    """How many ``calls`` fall in each interval from ``start`` to the last call (each window
    centred on ``start + k * interval``, so that calls one interval apart never sit on an edge).
    """
    windows = round((max(calls) - start) / interval) + 1
    counts = [0] * windows
    for at in calls:
        index = math.floor((at - start) / interval + 0.5)
        if 0 <= index < windows:
            counts[index] += 1
    return counts


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.floats(min_value=0.0, max_value=INTERVAL, exclude_max=True), min_size=1, max_size=60
    )
)
def test_holdings_acquired_within_one_interval_make_one_call_per_interval_after_two(
    starts: list[float],
) -> None:
    calls, _ = simulate(starts, [INTERVAL] * len(starts), until=40.0, limit=MAX_BATCH)
    assert len([at for at in calls if at < 2 * INTERVAL]) <= 2  # the first interval: two at most
    first = calls[1] if len(calls) > 1 else calls[0]  # every holding is in the second call
    steady = calls_per_interval(calls, first, INTERVAL)
    assert steady and set(steady) == {1}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.floats(min_value=0.0, max_value=INTERVAL, exclude_max=True), min_size=5, max_size=40
    ),
    st.integers(min_value=2, max_value=5),
)
def test_with_a_cap_n_holdings_make_n_over_the_cap_calls_per_interval(
    starts: list[float], limit: int
) -> None:
    calls, _ = simulate(starts, [INTERVAL] * len(starts), until=40.0, limit=limit)
    moments = sorted(set(calls))  # the calls of one moment go out together
    lined_up = moments[1]  # every holding is in the calls of the second moment
    steady = calls_per_interval([at for at in calls if at >= lined_up], lined_up, INTERVAL)
    assert set(steady) == {math.ceil(len(starts) / limit)}


def test_a_long_lived_holding_among_short_ones_renews_at_most_about_twice_as_often() -> None:
    # Ten holdings renewing every 2 s, one every 80 s (ttl 600): the long one joins their
    # calls only once its own renewal is due within 40 s.
    starts = [0.1 * n for n in range(11)]
    intervals = [INTERVAL] * 10 + [80.0]
    calls, renewed = simulate(starts, intervals, until=800.0, limit=MAX_BATCH)
    assert len(calls) <= 400 + 2  # one call per 2 s, after at most two to line up
    assert 10 <= renewed[-1] <= 21  # alone: 10 in 800 s; at most about twice that
    assert all(380 <= count <= 402 for count in renewed[:-1])
