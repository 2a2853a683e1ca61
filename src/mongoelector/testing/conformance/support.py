"""Small helpers the checks share: requests, expected outcomes, and record comparison."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from mongoelector.backends.protocol import CasResult, LeaseRecord, LeaseRequest
from mongoelector.testing.conformance.harness import BackendHarness
from mongoelector.testing.conformance.registry import expect, present

__all__ = [
    "LONG_TTL",
    "SHORT_TTL",
    "TIME_TOLERANCE",
    "acquire",
    "close_in_time",
    "expect_refused",
    "expect_same_record",
    "lease_request",
    "same_record",
    "stamped_between",
    "stored",
]

#: A lease that outlives every check: it only ends when a check ends it.
LONG_TTL = 600.0
#: A lease the checks let expire by advancing server time past it.
SHORT_TTL = 2.0
#: How far apart two stored copies of the same instant may be (stores may keep milliseconds).
TIME_TOLERANCE = timedelta(milliseconds=1)


def lease_request(
    key: str,
    owner: str,
    *,
    ttl: float = LONG_TTL,
    metadata: Mapping[str, str] | None = None,
    acquisition: str | None = None,
) -> LeaseRequest:
    """A request by ``owner`` for ``key``, with a recognisable host and pid.

    ``acquisition`` is the request's acquisition id; a fresh one when ``None``.
    """
    request = LeaseRequest(
        key=key,
        owner=owner,
        ttl=ttl,
        host=f"host-of-{owner}",
        pid=4242,
        metadata=dict(metadata or {}),
    )
    return request if acquisition is None else replace(request, acquisition=acquisition)


def acquire(
    harness: BackendHarness, key: str, owner: str, *, ttl: float = LONG_TTL, force: bool = False
) -> LeaseRecord:
    """Take ``key`` for ``owner``, failing the check unless it is granted."""
    result = harness.backend.compare_and_set(lease_request(key, owner, ttl=ttl), force=force)
    expect(
        isinstance(result, CasResult),
        f"compare_and_set must return a CasResult, got {result!r}",
    )
    how = "forced compare_and_set" if force else "compare_and_set"
    expect(result.acquired, f"{how} by {owner!r} on {key!r} was refused: {result!r}")
    record = present(result.record, f"a granted {how} must return the new record, got {result!r}")
    expect(
        record.key == key and record.owner == owner,
        f"a granted {how} must return {owner!r}'s record of {key!r}, got {record!r}",
    )
    return record


def expect_refused(
    harness: BackendHarness, key: str, owner: str, holder: LeaseRecord, why: str
) -> CasResult:
    """Ask for ``key`` as ``owner``; fail unless refused in favour of ``holder``."""
    result = harness.backend.compare_and_set(lease_request(key, owner))
    expect(not result.acquired, f"compare_and_set by {owner!r} on {key!r} {why}: {result!r}")
    if result.record is not None:
        expect(
            result.record.owner == holder.owner and result.record.token == holder.token,
            f"a refused compare_and_set must return the holder's record "
            f"(owner {holder.owner!r}, token {holder.token}), got {result.record!r}",
        )
    return result


def stored(harness: BackendHarness, key: str) -> LeaseRecord:
    """The record of ``key``; fail the check if there is none."""
    return present(harness.backend.get(key), f"get({key!r}) returned None, but it has a record")


def stamped_between(
    harness: BackendHarness, moment: datetime, earliest: datetime, latest: datetime
) -> bool:
    """True if ``moment`` lies between two server-time readings, give or take the tolerance."""
    return earliest - harness.tolerance <= moment <= latest + harness.tolerance


def close_in_time(first: datetime | None, second: datetime | None) -> bool:
    """True if both are ``None``, or both are times within :data:`TIME_TOLERANCE`."""
    if first is None or second is None:
        return first is second
    return abs(first - second) <= TIME_TOLERANCE


def same_record(first: LeaseRecord | None, second: LeaseRecord | None) -> bool:
    """True if both are ``None`` or store the same lease (times to the millisecond)."""
    if first is None or second is None:
        return first is second
    return (
        first.key == second.key
        and first.owner == second.owner
        and first.token == second.token
        and close_in_time(first.acquired_at, second.acquired_at)
        and close_in_time(first.expires_at, second.expires_at)
        and first.host == second.host
        and first.pid == second.pid
        and dict(first.metadata) == dict(second.metadata)
    )


def expect_same_record(actual: LeaseRecord | None, expected: LeaseRecord, what: str) -> None:
    """Fail unless ``actual`` stores the same lease as ``expected``."""
    actual = present(actual, f"{what}: the record of {expected.key!r} is gone")
    expect(same_record(actual, expected), f"{what}: expected {expected!r}, found {actual!r}")
