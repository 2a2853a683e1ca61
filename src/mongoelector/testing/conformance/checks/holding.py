"""Checks of renew and release: only the holder of the current token may extend or end it."""

from __future__ import annotations

from datetime import timedelta

from mongoelector.backends.protocol import LeaseRecord
from mongoelector.testing.conformance.harness import BackendHarness
from mongoelector.testing.conformance.registry import check, expect, present
from mongoelector.testing.conformance.support import (
    LONG_TTL,
    SHORT_TTL,
    acquire,
    expect_refused,
    expect_same_record,
    stamped_between,
)


def _expect_released(record: LeaseRecord | None, token: int, what: str) -> None:
    """A released record is gone, or kept with no owner and its token."""
    if record is not None:
        expect(
            record.owner is None and record.token == token,
            f"{what}: the record must keep token {token} with no owner, got {record!r}",
        )


def _held_twice(harness: BackendHarness, key: str) -> tuple[LeaseRecord, LeaseRecord]:
    """alice's released first holding of ``key``, and her live second one."""
    first = acquire(harness, key, "alice")
    harness.backend.release(key, "alice", token=first.token)
    return first, acquire(harness, key, "alice")


@check()
def renew_extends_the_lease_from_server_now(harness: BackendHarness) -> None:
    """renew() by the holder moves expiry to server now + ttl and keeps owner and token."""
    backend = harness.backend
    holder = acquire(harness, "renewed", "alice", ttl=SHORT_TTL)
    harness.advance(SHORT_TTL / 2)
    before = backend.server_time()
    renewed = present(
        backend.renew("renewed", "alice", holder.token, LONG_TTL),
        "renew() by the live holder with its token returned None",
    )
    after = backend.server_time()
    expect(
        renewed.owner == "alice" and renewed.token == holder.token,
        f"renew() must keep the owner and token ({holder!r}), got {renewed!r}",
    )
    expires_at = present(renewed.expires_at, f"a renewed record needs expires_at: {renewed!r}")
    ttl = timedelta(seconds=LONG_TTL)
    expect(
        stamped_between(harness, expires_at, before + ttl, after + ttl),
        f"renew() must set expires_at to server now + ttl (between {before + ttl} and "
        f"{after + ttl}), got {expires_at}",
    )
    expect_same_record(backend.get("renewed"), renewed, "get() after renew()")
    harness.advance(SHORT_TTL)
    expect_refused(harness, "renewed", "bob", renewed, "was granted after the holder renewed")


@check()
def renew_is_refused_for_a_non_owner(harness: BackendHarness) -> None:
    """renew() by anyone but the holder returns None and changes nothing."""
    backend = harness.backend
    holder = acquire(harness, "renew-owner", "alice")
    outcome = backend.renew("renew-owner", "bob", holder.token, LONG_TTL * 2)
    expect(outcome is None, f"renew() by a non-owner must return None, got {outcome!r}")
    expect_same_record(backend.get("renew-owner"), holder, "after a non-owner's renew()")
    missing = backend.renew("renew-nobody", "alice", holder.token, LONG_TTL)
    expect(missing is None, f"renew() of a key without a record must return None: {missing!r}")


@check()
def renew_is_refused_for_a_stale_token(harness: BackendHarness) -> None:
    """renew() with the token of an earlier holding returns None, even from the same owner."""
    backend = harness.backend
    first, second = _held_twice(harness, "renew-token")
    outcome = backend.renew("renew-token", "alice", first.token, LONG_TTL * 2)
    expect(outcome is None, f"renew() with a stale token must return None, got {outcome!r}")
    expect_same_record(backend.get("renew-token"), second, "after a stale-token renew()")


@check()
def renew_is_refused_after_release(harness: BackendHarness) -> None:
    """renew() of a holding its owner released returns None and does not revive it."""
    backend = harness.backend
    holder = acquire(harness, "renew-released", "alice")
    backend.release("renew-released", "alice", token=holder.token)
    outcome = backend.renew("renew-released", "alice", holder.token, LONG_TTL)
    expect(outcome is None, f"renew() after release must return None, got {outcome!r}")
    _expect_released(backend.get("renew-released"), holder.token, "after renew() of a release")


@check()
def renew_is_refused_once_the_lease_was_taken(harness: BackendHarness) -> None:
    """renew() by a holder whose lease expired and was taken returns None."""
    backend = harness.backend
    old = acquire(harness, "renew-taken", "alice", ttl=SHORT_TTL)
    harness.advance(SHORT_TTL)
    new = acquire(harness, "renew-taken", "bob")
    outcome = backend.renew("renew-taken", "alice", old.token, LONG_TTL)
    expect(outcome is None, f"renew() of a lease someone took must return None: {outcome!r}")
    expect_same_record(backend.get("renew-taken"), new, "after the old holder's renew()")


@check()
def release_ends_the_owners_holding(harness: BackendHarness) -> None:
    """release() by the holder (with or without its token) ends the lease and returns True once."""
    backend = harness.backend
    for key, with_token in (("release-token", True), ("release-owner", False)):
        holder = acquire(harness, key, "alice")
        token = holder.token if with_token else None
        expect(
            backend.release(key, "alice", token=token) is True,
            f"release(token={token!r}) by the holder of a live lease must return True",
        )
        _expect_released(backend.get(key), holder.token, "after release()")
        expect(
            backend.release(key, "alice", token=token) is False,
            "a second release() of the same holding must return False",
        )


@check()
def release_is_refused_for_a_non_owner(harness: BackendHarness) -> None:
    """release() by anyone but the holder returns False and changes nothing."""
    backend = harness.backend
    holder = acquire(harness, "release-other", "alice")
    for token in (holder.token, None):
        outcome = backend.release("release-other", "bob", token=token)
        expect(outcome is False, f"release(token={token!r}) by a non-owner must return False")
    expect_same_record(backend.get("release-other"), holder, "after a non-owner's release()")


@check()
def release_is_refused_for_a_stale_token(harness: BackendHarness) -> None:
    """release() with the token of an earlier holding returns False, even from the same owner."""
    backend = harness.backend
    first, second = _held_twice(harness, "release-stale")
    outcome = backend.release("release-stale", "alice", token=first.token)
    expect(outcome is False, "release() with a stale token must return False")
    expect_same_record(backend.get("release-stale"), second, "after a stale-token release()")


@check()
def release_of_an_expired_holding_returns_false(harness: BackendHarness) -> None:
    """release() of a lease that already expired returns False: no live holding ended."""
    backend = harness.backend
    holder = acquire(harness, "release-expired", "alice", ttl=SHORT_TTL)
    harness.advance(SHORT_TTL)
    outcome = backend.release("release-expired", "alice", token=holder.token)
    expect(outcome is False, "release() of an expired lease must return False")
    later = acquire(harness, "release-expired", "bob")
    expect(later.token > holder.token, f"tokens must grow: {holder.token} then {later.token}")


@check()
def forced_release_ends_anyones_holding(harness: BackendHarness) -> None:
    """release(force=True) ends whoever's live lease and returns True; False when none is live."""
    backend = harness.backend
    holder = acquire(harness, "release-forced", "alice")
    expect(
        backend.release("release-forced", None, force=True) is True,
        "a forced release() of a live lease must return True",
    )
    _expect_released(backend.get("release-forced"), holder.token, "after a forced release()")
    expect(
        backend.release("release-forced", None, force=True) is False,
        "a forced release() of a released lease must return False",
    )
    expect(
        backend.release("release-nobody", None, force=True) is False,
        "a forced release() of a key without a record must return False",
    )
    expect(
        backend.release("release-nobody", "alice") is False,
        "release() of a key without a record must return False",
    )
    later = acquire(harness, "release-forced", "bob")
    expect(later.token > holder.token, f"tokens must grow: {holder.token} then {later.token}")
