"""Which status reports go together (``plan_reports``, and ``claim_reports`` that claims them,
shared by both drivers' status groups)."""

from __future__ import annotations

from dataclasses import dataclass

from mongoelector._common.batches import claim_reports, plan_reports
from mongoelector.core.batching import MAX_BATCH, RenewTiming

INTERVAL = 5.0  # a status interval (ttl 15 s)


@dataclass(eq=False)
class Member:
    """A status group's member whose report falls due at ``due`` (``queued``: in a batch)."""

    name: str
    due: float
    queued: bool = False

    def status_timing(self, now: float) -> RenewTiming:
        return RenewTiming(
            key=self.name, renew_at=max(self.due, now), valid_until=float("inf"), interval=INTERVAL
        )

    def _may_join_status(self) -> bool:
        return not self.queued

    def _claim_status(self) -> bool:
        if self.queued:
            return False
        self.queued = True
        return True

    def _unclaim_status(self) -> None:
        self.queued = False


def test_the_reports_due_within_half_an_interval_join_the_trigger() -> None:
    trigger = Member("t", due=10.0)
    soon, late, queued = Member("soon", 12.0), Member("late", 13.0), Member("q", 10.0, True)
    calls = plan_reports(trigger, [trigger, soon, late, queued], now=10.0)
    assert calls == [[soon]]  # late is due after 12.5; queued is in another batch


def test_a_trigger_whose_report_is_not_due_any_more_plans_nothing() -> None:
    """A batch took its report in and settled after its poll found it due."""
    trigger = Member("t", due=15.0)
    assert plan_reports(trigger, [trigger, Member("other", 10.0)], now=10.0) is None


def test_more_members_than_a_call_takes_go_in_further_calls() -> None:
    trigger = Member("t", due=10.0)
    others = [Member(f"m{i}", 10.0) for i in range(MAX_BATCH + 5)]
    calls = plan_reports(trigger, [trigger, *others], now=10.0)
    assert calls is not None
    assert [len(call) for call in calls] == [MAX_BATCH - 1, 6]


def test_claimed_batches_lead_with_the_trigger_and_mark_every_report_queued() -> None:
    trigger = Member("t", due=10.0)
    soon, late = Member("soon", 12.0), Member("late", 13.0)
    assert claim_reports(trigger, [trigger, soon, late], now=10.0) == [[trigger, soon]]
    assert trigger.queued and soon.queued and not late.queued


def test_a_trigger_already_queued_claims_nothing() -> None:
    """Its report is in a batch chosen a moment ago: no second batch for it."""
    trigger, other = Member("t", due=10.0, queued=True), Member("other", 10.0)
    assert claim_reports(trigger, [trigger, other], now=10.0) == []
    assert not other.queued


def test_a_trigger_not_due_any_more_gives_its_claim_back() -> None:
    trigger = Member("t", due=15.0)
    assert claim_reports(trigger, [trigger, Member("other", 10.0)], now=10.0) == []
    assert not trigger.queued  # a later poll may queue it again


def test_a_member_claimed_meanwhile_is_left_out() -> None:
    """A member found free when planned but claimed by another batch before its claim."""
    trigger, taken = Member("t", due=10.0), Member("taken", 10.0)

    def claimed_elsewhere() -> bool:
        return False

    taken._claim_status = claimed_elsewhere  # type: ignore[method-assign]
    assert claim_reports(trigger, [trigger, taken], now=10.0) == [[trigger]]
