"""Checks that bad keys, owners and ttls are rejected before they reach the store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mongoelector.backends.protocol import LeaseRequest
from mongoelector.testing.conformance.harness import BackendHarness
from mongoelector.testing.conformance.registry import ConformanceFailure, check
from mongoelector.testing.conformance.support import (
    LONG_TTL,
    SHORT_TTL,
    acquire,
    expect_refused,
    expect_same_record,
)

#: Keys every backend must refuse: not a str, empty, or shaped like a query.
BAD_KEYS: tuple[Any, ...] = (None, 42, b"key", "", {"$gt": ""}, ["key"])
#: Owner ids every backend must refuse.
BAD_OWNERS: tuple[Any, ...] = (None, 42, "", {"$ne": ""})
#: Lease durations every backend must refuse.
BAD_TTLS: tuple[Any, ...] = (0, -1, float("nan"), float("inf"), "5", None, True)


def expect_rejected(
    what: str,
    call: Callable[..., object],
    *args: Any,
    naming: str | None = None,
    **kwargs: Any,
) -> None:
    """Fail unless ``call(*args, **kwargs)`` raises TypeError or ValueError (whose message
    contains ``naming``, when given: the error says which input was bad)."""
    try:
        outcome = call(*args, **kwargs)
    except (TypeError, ValueError) as error:
        if naming is not None and naming not in str(error):
            raise ConformanceFailure(
                f"{what} must raise an error naming {naming!r}, "
                f"got {type(error).__name__}({str(error)!r})"
            ) from error
        return
    raise ConformanceFailure(f"{what} must raise TypeError or ValueError, returned {outcome!r}")


def _request(key: Any = "k", owner: Any = "mallory", ttl: Any = LONG_TTL) -> LeaseRequest:
    return LeaseRequest(key=key, owner=owner, ttl=ttl)


@check()
def bad_keys_are_rejected(harness: BackendHarness) -> None:
    """Every operation rejects a key that is not a non-empty str, and touches no other record."""
    backend = harness.backend
    holder = acquire(harness, "k", "alice")
    for key in BAD_KEYS:
        request = _request(key)
        expect_rejected(f"compare_and_set with key={key!r}", backend.compare_and_set, request)
        expect_rejected(
            f"forced compare_and_set with key={key!r}",
            backend.compare_and_set,
            request,
            force=True,
        )
        expect_rejected(
            f"renew with key={key!r}", backend.renew, key, "alice", holder.token, LONG_TTL
        )
        expect_rejected(f"release with key={key!r}", backend.release, key, "alice")
        expect_rejected(f"forced release with key={key!r}", backend.release, key, None, force=True)
        expect_rejected(f"get with key={key!r}", backend.get, key)
    expect_same_record(backend.get("k"), holder, "after operations with bad keys")


@check()
def bad_owners_and_ttls_are_rejected(harness: BackendHarness) -> None:
    """compare_and_set and renew reject a bad owner id or a ttl that is not positive and finite."""
    backend = harness.backend
    holder = acquire(harness, "k", "alice", ttl=SHORT_TTL)
    for owner in BAD_OWNERS:
        expect_rejected(
            f"compare_and_set with owner={owner!r}",
            backend.compare_and_set,
            _request(owner=owner),
            force=True,
        )
        expect_rejected(f"renew with owner={owner!r}", backend.renew, "k", owner, holder.token, 60)
    for ttl in BAD_TTLS:
        expect_rejected(
            f"compare_and_set with ttl={ttl!r}",
            backend.compare_and_set,
            _request(ttl=ttl),
            force=True,
        )
        expect_rejected(f"renew with ttl={ttl!r}", backend.renew, "k", "alice", holder.token, ttl)
    expect_same_record(backend.get("k"), holder, "after operations with bad owners and ttls")
    expect_refused(harness, "k", "bob", holder, "was granted while alice held the key")
