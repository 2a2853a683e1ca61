"""Checks that the records of different keys are independent of each other."""

from __future__ import annotations

from mongoelector.testing.conformance.harness import BackendHarness
from mongoelector.testing.conformance.registry import check, expect
from mongoelector.testing.conformance.support import (
    SHORT_TTL,
    acquire,
    expect_refused,
    expect_same_record,
)


@check()
def keys_are_independent(harness: BackendHarness) -> None:
    """Holding, expiring or releasing one key does nothing to another."""
    backend = harness.backend
    short = acquire(harness, "key-a", "alice", ttl=SHORT_TTL)
    long = acquire(harness, "key-b", "bob")
    harness.advance(SHORT_TTL)
    expect_refused(harness, "key-b", "carol", long, "was granted when another key expired")
    taken = acquire(harness, "key-a", "carol")
    expect(taken.token > short.token, f"tokens must grow: {short.token} then {taken.token}")
    expect(
        backend.release("key-b", "bob", token=long.token) is True,
        "release() by the holder of a live lease must return True",
    )
    expect_same_record(backend.get("key-a"), taken, "after another key was released")


@check()
def similar_keys_are_distinct(harness: BackendHarness) -> None:
    """Keys that differ only in case, a prefix, spacing or a dot are different keys."""
    holder = acquire(harness, "lock", "alice")
    for key in ("Lock", "LOCK", "lock2", "loc", "lock ", " lock", "lock.sub", "lock/sub"):
        acquire(harness, key, "bob")
    expect_same_record(harness.backend.get("lock"), holder, "after taking similar keys")
