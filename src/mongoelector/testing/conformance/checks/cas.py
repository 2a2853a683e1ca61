"""Checks of compare_and_set on free, held, expired and released records, and forced takeover."""

from __future__ import annotations

from datetime import timedelta

from mongoelector.testing.conformance.harness import BackendHarness, HarnessFeature
from mongoelector.testing.conformance.registry import check, expect, present
from mongoelector.testing.conformance.support import (
    SHORT_TTL,
    acquire,
    close_in_time,
    expect_refused,
    expect_same_record,
    lease_request,
    stamped_between,
    stored,
)


@check()
def cas_takes_a_free_key(harness: BackendHarness) -> None:
    """compare_and_set grants a key without a record, stamped with server time."""
    backend = harness.backend
    request = lease_request("free", "alice", ttl=30, metadata={"role": "scheduler"})
    before = backend.server_time()
    result = backend.compare_and_set(request)
    after = backend.server_time()
    expect(result.acquired, f"compare_and_set on a key without a record was refused: {result!r}")
    record = present(result.record, f"a granted compare_and_set returned no record: {result!r}")
    expect(
        (record.key, record.owner, record.host, record.pid, dict(record.metadata))
        == ("free", "alice", request.host, request.pid, {"role": "scheduler"}),
        f"the new record must carry the request's key, owner, host, pid and metadata "
        f"({request!r}), got {record!r}",
    )
    expect(
        isinstance(record.token, int) and not isinstance(record.token, bool) and record.token > 0,
        f"a fencing token must be a positive int, got {record.token!r}",
    )
    acquired_at = present(record.acquired_at, f"a granted record needs acquired_at: {record!r}")
    expect(
        stamped_between(harness, acquired_at, before, after),
        f"acquired_at must be the server time of the write (between {before} and {after}), "
        f"got {acquired_at}",
    )
    expect(
        close_in_time(record.expires_at, acquired_at + timedelta(seconds=30)),
        f"expires_at must be acquired_at + ttl (30 s), got {record.expires_at} "
        f"for acquired_at {acquired_at}",
    )
    expect_same_record(backend.get("free"), record, "get() after a granted compare_and_set")


@check()
def cas_refuses_a_held_key(harness: BackendHarness) -> None:
    """compare_and_set is refused while someone else holds the key, and changes nothing."""
    holder = acquire(harness, "held", "alice")
    expect_refused(harness, "held", "bob", holder, "was granted while alice held the key")
    expect_same_record(harness.backend.get("held"), holder, "after a refused compare_and_set")


@check()
def cas_refuses_the_live_holder_itself(harness: BackendHarness) -> None:
    """compare_and_set by the live holder itself is refused and does not extend its lease."""
    holder = acquire(harness, "held", "alice")
    harness.advance(1)
    expect_refused(harness, "held", "alice", holder, "was granted again to the live holder")
    expect_same_record(
        harness.backend.get("held"), holder, "after the holder's own refused compare_and_set"
    )


@check()
def cas_takes_an_expired_key(harness: BackendHarness) -> None:
    """Once server time passes a lease's expiry, compare_and_set grants it to someone else."""
    first = acquire(harness, "expiring", "alice", ttl=SHORT_TTL)
    harness.advance(SHORT_TTL)
    second = acquire(harness, "expiring", "bob")
    expect(
        second.token > first.token,
        f"the token must grow on takeover after expiry: {first.token} then {second.token}",
    )


@check()
def cas_takes_a_released_key(harness: BackendHarness) -> None:
    """After its holder releases a key, compare_and_set grants it at once."""
    first = acquire(harness, "released", "alice")
    expect(
        harness.backend.release("released", "alice", token=first.token) is True,
        "release() by the holder of a live lease must return True",
    )
    second = acquire(harness, "released", "bob")
    expect(
        second.token > first.token,
        f"the token must grow after a release: {first.token} then {second.token}",
    )


@check(HarnessFeature.EXACT_TIME)
def expiry_is_judged_by_server_time_only(harness: BackendHarness) -> None:
    """A lease is held until server time reaches its expiry, and free from that instant.

    Nothing in a request carries the caller's time, so the caller's clocks
    play no part. With a harness whose server time is far from the host's
    clock (a FakeClock starts in 2030), a backend that judged expiry by the
    host clock would get both halves wrong.
    """
    holder = acquire(harness, "timed", "alice", ttl=10)
    harness.advance(9.99)
    expect_refused(
        harness, "timed", "bob", holder, "was granted 10 ms before the lease expires by server time"
    )
    expect(
        stored(harness, "timed").is_held(harness.backend.server_time()),
        "the lease must still be held 10 ms before its expiry",
    )
    harness.advance(0.01)
    acquire(harness, "timed", "bob")


@check()
def forced_cas_takes_a_held_key(harness: BackendHarness) -> None:
    """A forced compare_and_set takes a live lease; the old holder can neither renew nor release."""
    backend = harness.backend
    victim = acquire(harness, "taken", "alice")
    taker = acquire(harness, "taken", "bob", force=True)
    expect(
        taker.token > victim.token,
        f"the token must grow on a forced takeover: {victim.token} then {taker.token}",
    )
    renewed = backend.renew("taken", "alice", victim.token, 60)
    expect(renewed is None, f"renew() by the holder that was taken over must fail: {renewed!r}")
    released = backend.release("taken", "alice", token=victim.token)
    expect(released is False, "release() by the holder that was taken over must return False")
    expect_same_record(backend.get("taken"), taker, "after the old holder's renew and release")


@check()
def forced_cas_takes_a_free_key(harness: BackendHarness) -> None:
    """A forced compare_and_set on a key without a record grants it like a normal one."""
    record = acquire(harness, "forced-free", "alice", force=True)
    expect_same_record(harness.backend.get("forced-free"), record, "after a forced grant")
