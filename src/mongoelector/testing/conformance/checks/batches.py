"""Checks of batch calls (for backends that declare Capability.RENEW_MANY or GET_MANY).

A batch call must mean exactly what the same calls made one key at a time
would mean: ``renew_many`` is ``renew`` per item, ``get_many`` is ``get`` per
key. The checks set up the same scene twice, once for each way, and compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from mongoelector.backends.protocol import (
    Capability,
    GetManyBackend,
    LeaseRecord,
    RenewItem,
    RenewManyBackend,
)
from mongoelector.testing.conformance.checks.inputs import (
    BAD_KEYS,
    BAD_OWNERS,
    BAD_TTLS,
    expect_rejected,
)
from mongoelector.testing.conformance.harness import BackendHarness
from mongoelector.testing.conformance.registry import ConformanceFailure, check, expect, present
from mongoelector.testing.conformance.support import (
    LONG_TTL,
    SHORT_TTL,
    acquire,
    expect_same_record,
    same_record,
    stamped_between,
)

#: Tokens every backend must refuse in a renewal.
BAD_TOKENS: tuple[Any, ...] = (None, "5", 1.5, True)


def _renew_many_backend(harness: BackendHarness) -> RenewManyBackend:
    backend = harness.backend
    if not isinstance(backend, RenewManyBackend):
        raise ConformanceFailure(
            "the backend declares Capability.RENEW_MANY but lacks renew_many()"
        )
    return backend


def _get_many_backend(harness: BackendHarness) -> GetManyBackend:
    backend = harness.backend
    if not isinstance(backend, GetManyBackend):
        raise ConformanceFailure("the backend declares Capability.GET_MANY but lacks get_many()")
    return backend


@dataclass(frozen=True)
class _Case:
    """One renewal of the scene: its item, and whether ``renew`` must grant it (None: either)."""

    item: RenewItem
    granted: bool | None


def _scene(harness: BackendHarness, prefix: str) -> list[_Case]:
    """Keys in every state a renewal can meet, and the renewal to try on each.

    Leaves the scene at the moment its short leases have expired, and one of
    them was taken by bob. The cases alternate granted and refused, and ask
    for different ttls, so that results out of order or with one ttl for all
    show.
    """
    backend = harness.backend
    held = acquire(harness, f"{prefix}held", "alice")
    other = acquire(harness, f"{prefix}held-too", "alice")
    not_owner = acquire(harness, f"{prefix}not-owner", "alice")
    first = acquire(harness, f"{prefix}stale", "alice")
    backend.release(f"{prefix}stale", "alice", token=first.token)
    acquire(harness, f"{prefix}stale", "alice")
    released = acquire(harness, f"{prefix}released", "alice")
    backend.release(f"{prefix}released", "alice", token=released.token)
    taken = acquire(harness, f"{prefix}taken", "alice", ttl=SHORT_TTL)
    expired = acquire(harness, f"{prefix}expired", "alice", ttl=SHORT_TTL)
    return [
        _Case(RenewItem(key=held.key, owner="alice", token=held.token, ttl=LONG_TTL * 2), True),
        _Case(
            RenewItem(key=not_owner.key, owner="bob", token=not_owner.token, ttl=LONG_TTL), False
        ),
        _Case(RenewItem(key=other.key, owner="alice", token=other.token, ttl=LONG_TTL * 3), True),
        _Case(RenewItem(key=first.key, owner="alice", token=first.token, ttl=LONG_TTL), False),
        _Case(RenewItem(key=expired.key, owner="alice", token=expired.token, ttl=LONG_TTL), None),
        _Case(
            RenewItem(key=released.key, owner="alice", token=released.token, ttl=LONG_TTL), False
        ),
        _Case(RenewItem(key=taken.key, owner="alice", token=taken.token, ttl=LONG_TTL), False),
        _Case(
            RenewItem(key=f"{prefix}missing", owner="alice", token=held.token, ttl=LONG_TTL), False
        ),
    ]


def _expect_renewed(
    harness: BackendHarness,
    item: RenewItem,
    before: LeaseRecord | None,
    renewed: LeaseRecord,
    window: tuple[Any, Any],
) -> None:
    what = f"renew_many() of {item!r}"
    before = present(before, f"{what} returned {renewed!r} for a key without a record")
    expect(
        (renewed.owner, renewed.token, renewed.acquisition)
        == (before.owner, before.token, before.acquisition),
        f"{what} must keep owner, token and acquisition ({before!r}), got {renewed!r}",
    )
    expect(
        (renewed.host, renewed.pid, dict(renewed.metadata))
        == (before.host, before.pid, dict(before.metadata)),
        f"{what} must keep host, pid and metadata ({before!r}), got {renewed!r}",
    )
    ttl = timedelta(seconds=item.ttl)
    earliest, latest = window[0] + ttl, window[1] + ttl
    expires_at = present(renewed.expires_at, f"{what}: a renewed record needs expires_at")
    expect(
        stamped_between(harness, expires_at, earliest, latest),
        f"{what} must set expires_at to server now + the item's ttl (between {earliest} and "
        f"{latest}), got {expires_at}",
    )
    expect_same_record(harness.backend.get(item.key), renewed, f"get() after {what}")


def _renew_alone(harness: BackendHarness, item: RenewItem) -> LeaseRecord | None:
    """``item`` renewed the one-key way."""
    return harness.backend.renew(item.key, item.owner, item.token, item.ttl)


@check(Capability.RENEW_MANY)
def renew_many_renews_each_item_as_renew_would(harness: BackendHarness) -> None:
    """renew_many() grants and refuses each item as renew() would, results in item order."""
    backend = _renew_many_backend(harness)
    singles = _scene(harness, "single-")
    batch = _scene(harness, "batch-")
    harness.advance(SHORT_TTL)
    for prefix in ("single-", "batch-"):
        acquire(harness, f"{prefix}taken", "bob")
    one_by_one = [_renew_alone(harness, case.item) for case in singles]
    before = {case.item.key: harness.backend.get(case.item.key) for case in batch}
    started = harness.backend.server_time()
    results = backend.renew_many([case.item for case in batch])
    ended = harness.backend.server_time()
    expect(
        isinstance(results, list) and len(results) == len(batch),
        f"renew_many() of {len(batch)} items must return a list of {len(batch)} entries, "
        f"got {results!r}",
    )
    for case, result in zip(batch, results, strict=True):
        expect(
            result is None or result.key == case.item.key,
            f"renew_many(): results must be in the order of the items, got the record of "
            f"{getattr(result, 'key', None)!r} for {case.item!r}",
        )
    for case, single, result in zip(batch, one_by_one, results, strict=True):
        item = case.item
        granted = result is not None
        if case.granted is not None:
            expect(
                granted == case.granted,
                f"renew_many() must {'renew' if case.granted else 'refuse'} {item!r} "
                f"(as renew() does), got {result!r}",
            )
        expect(
            granted == (single is not None),
            f"renew_many() must treat {item!r} as renew() treats the same case "
            f"(renew() returned {single!r}), got {result!r}",
        )
        if result is None:
            after = harness.backend.get(item.key)
            expect(
                same_record(after, before[item.key]),
                f"a refused renewal in renew_many() ({item!r}) must change nothing, but the "
                f"record went from {before[item.key]!r} to {after!r}",
            )
        else:
            _expect_renewed(harness, item, before[item.key], result, (started, ended))


@check(Capability.RENEW_MANY)
def renew_many_of_no_items_returns_an_empty_list(harness: BackendHarness) -> None:
    """renew_many() of an empty list or tuple returns [] and changes nothing."""
    backend = _renew_many_backend(harness)
    holder = acquire(harness, "batch-empty", "alice")
    empties: tuple[Sequence[RenewItem], ...] = ([], ())
    for empty in empties:
        outcome = backend.renew_many(empty)
        expect(outcome == [], f"renew_many({empty!r}) must return [], got {outcome!r}")
    expect_same_record(harness.backend.get("batch-empty"), holder, "after empty renew_many()")


def _expect_batch_rejected(
    backend: RenewManyBackend, what: str, batch: Any, naming: str | None
) -> None:
    try:
        outcome = backend.renew_many(batch)
    except (TypeError, ValueError) as error:
        if naming is not None:
            expect(
                naming in str(error),
                f"renew_many() with {what} must raise an error naming {naming!r}, "
                f"got {type(error).__name__}({str(error)!r})",
            )
        return
    except Exception as error:
        raise ConformanceFailure(
            f"renew_many() with {what} must raise TypeError or ValueError, "
            f"raised {type(error).__name__}: {error}"
        ) from error
    raise ConformanceFailure(
        f"renew_many() with {what} must raise TypeError or ValueError, returned {outcome!r}"
    )


@check(Capability.RENEW_MANY)
def renew_many_rejects_bad_batches(harness: BackendHarness) -> None:
    """renew_many() rejects a bad item, a repeated key or a non-list, and then renews nothing."""
    backend = _renew_many_backend(harness)
    holder = acquire(harness, "k", "alice", ttl=SHORT_TTL)
    good = RenewItem(key="k", owner="alice", token=holder.token, ttl=LONG_TTL)
    bad_items: list[tuple[str, Any, str | None]] = [
        ("a dict for an item", {"key": "other"}, None),
        ("a tuple for an item", ("other", "alice", holder.token, LONG_TTL), None),
    ]

    def item(**fields: Any) -> RenewItem:
        values = {"key": "other", "owner": "alice", "token": holder.token, "ttl": LONG_TTL}
        return RenewItem(**{**values, **fields})

    bad_items += [(f"an item with key={v!r}", item(key=v), "key") for v in BAD_KEYS]
    bad_items += [(f"an item with owner={v!r}", item(owner=v), "owner") for v in BAD_OWNERS]
    bad_items += [(f"an item with token={v!r}", item(token=v), "token") for v in BAD_TOKENS]
    bad_items += [(f"an item with ttl={v!r}", item(ttl=v), "ttl") for v in BAD_TTLS]
    for what, bad, naming in bad_items:
        _expect_batch_rejected(backend, f"{what} after a good item", [good, bad], naming)
    repeated = RenewItem(key="k", owner="alice", token=holder.token, ttl=LONG_TTL * 2)
    _expect_batch_rejected(backend, "key 'k' twice", [good, repeated], "'k'")
    for what, batch in (("None", None), ("a bare str", "k"), ("a bare RenewItem", good)):
        _expect_batch_rejected(backend, f"{what} for the batch", batch, None)
    expect_same_record(
        harness.backend.get("k"), holder, "a rejected renew_many() renewed a good item"
    )


@check(Capability.GET_MANY)
def get_many_reads_each_key_as_get_would(harness: BackendHarness) -> None:
    """get_many() returns each distinct key's record as get() does, in first-given order."""
    backend = _get_many_backend(harness)
    acquire(harness, "read-held", "alice")
    released = acquire(harness, "read-released", "alice")
    harness.backend.release("read-released", "alice", token=released.token)
    acquire(harness, "read-expired", "alice", ttl=SHORT_TTL)
    harness.advance(SHORT_TTL)
    keys = ["read-missing", "read-held", "read-expired", "read-held", "read-released"]
    distinct = ["read-missing", "read-held", "read-expired", "read-released"]
    found = backend.get_many(keys)
    expect(
        isinstance(found, dict) and list(found) == distinct,
        f"get_many({keys!r}) must return a dict with one entry per distinct key, in the "
        f"order first given ({distinct!r}), got {found!r}",
    )
    for key in distinct:
        one = harness.backend.get(key)
        expect(
            same_record(found[key], one),
            f"get_many() must return get()'s record of {key!r} ({one!r}), got {found[key]!r}",
        )
    empty = backend.get_many([])
    expect(empty == {}, f"get_many([]) must return {{}}, got {empty!r}")


@check(Capability.GET_MANY)
def get_many_rejects_bad_keys(harness: BackendHarness) -> None:
    """get_many() rejects a bad key among good ones (naming the key), and a bare str for the
    list of keys."""
    backend = _get_many_backend(harness)
    acquire(harness, "k", "alice")
    for key in BAD_KEYS:
        expect_rejected(f"get_many() with key={key!r}", backend.get_many, ["k", key], naming="key")
    not_lists: tuple[tuple[str, Any], ...] = (("a bare str", "k"), ("None", None))
    for what, keys in not_lists:
        expect_rejected(f"get_many() with {what} for the keys", backend.get_many, keys)
