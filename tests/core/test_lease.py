"""LeaseKeeper: when a holder renews, and when it stops trusting its lease."""

from __future__ import annotations

from datetime import datetime, timezone

from mongoelector.backends import LeaseRecord
from mongoelector.core.lease import LeaseKeeper

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def record(token: int = 1, owner: str = "me") -> LeaseRecord:
    return LeaseRecord(key="k", owner=owner, token=token, acquired_at=T0, expires_at=T0)


def test_holding_is_trusted_until_deadline_from_request_start() -> None:
    keeper = LeaseKeeper(renew_deadline=10, renew_interval=2)
    keeper.hold(record(), started_at=100.0)
    assert keeper.is_valid(109.999)
    assert not keeper.is_valid(110.0)
    assert keeper.deadline_passed(110.0)


def test_renewal_is_due_every_interval_and_moves_the_deadline() -> None:
    keeper = LeaseKeeper(renew_deadline=10, renew_interval=2)
    keeper.hold(record(), started_at=0.0)
    assert not keeper.renew_due(1.9)
    assert keeper.renew_due(2.0)
    assert keeper.on_renewed(2.0, record())
    assert keeper.holding is not None
    assert keeper.holding.valid_until == 12.0
    assert keeper.wake_at() == 4.0


def test_a_late_reply_to_an_old_renew_never_shortens_trust() -> None:
    keeper = LeaseKeeper(renew_deadline=10, renew_interval=2)
    keeper.hold(record(), started_at=5.0)
    keeper.on_renewed(1.0, record())
    assert keeper.holding is not None
    assert keeper.holding.valid_until == 15.0


def test_refused_or_foreign_renewal_drops_the_holding() -> None:
    keeper = LeaseKeeper(renew_deadline=10, renew_interval=2)
    keeper.hold(record(token=3), started_at=0.0)
    assert not keeper.on_renewed(2.0, record(token=4))
    assert keeper.holding is None
    keeper.hold(record(token=5), started_at=0.0)
    assert not keeper.on_renewed(2.0, None)
    assert keeper.holding is None


def test_failed_renewal_retries_after_interval_but_deadline_stands() -> None:
    keeper = LeaseKeeper(renew_deadline=10, renew_interval=2)
    keeper.hold(record(), started_at=0.0)
    keeper.on_renew_failed(9.0)
    assert keeper.wake_at() == 10.0  # the deadline comes first
    keeper.on_renew_failed(3.0)
    assert keeper.wake_at() == 5.0
