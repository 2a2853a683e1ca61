"""Checks of acquisition identity: a holding keeps the id of the call that created it.

Every ``compare_and_set`` carries a fresh ``request.acquisition``. A record
that a call creates carries that id until the next acquisition replaces the
record; renewing it, or refusing another call, leaves the id alone. Callers
rely on this to tell their own attempt's write (say, after an ambiguous reply)
from an earlier holding of the same owner, which they must never continue.
The checks never send one id twice: what a backend does with a repeated id
is not part of the contract.
"""

from __future__ import annotations

from typing import Any

from mongoelector.backends.protocol import CasResult, LeaseRecord, LeaseRequest
from mongoelector.testing.conformance.checks.inputs import expect_rejected
from mongoelector.testing.conformance.harness import BackendHarness
from mongoelector.testing.conformance.registry import check, expect, present
from mongoelector.testing.conformance.support import (
    LONG_TTL,
    SHORT_TTL,
    expect_same_record,
    lease_request,
    stored,
)

#: Acquisition ids every backend must refuse: not a str, empty, or shaped like a query.
BAD_ACQUISITIONS: tuple[Any, ...] = ("", None, 42, b"id", {"$ne": ""})


def _granted(harness: BackendHarness, request: LeaseRequest, *, force: bool = False) -> LeaseRecord:
    """Send ``request``; fail unless granted with a record carrying its acquisition id."""
    how = "forced compare_and_set" if force else "compare_and_set"
    result = harness.backend.compare_and_set(request, force=force)
    expect(
        isinstance(result, CasResult) and result.acquired,
        f"{how} by {request.owner!r} on {request.key!r} was refused: {result!r}",
    )
    record = present(result.record, f"a granted {how} must return the new record: {result!r}")
    expect(
        record.acquisition == request.acquisition,
        f"a record granted by {how} must carry request.acquisition "
        f"({request.acquisition!r}), got {record.acquisition!r} in {record!r}",
    )
    found = stored(harness, request.key)
    expect(
        found.acquisition == request.acquisition,
        f"get() after a granted {how} must return request.acquisition "
        f"({request.acquisition!r}), got {found.acquisition!r} in {found!r}",
    )
    return record


def _refused(harness: BackendHarness, request: LeaseRequest, holder: LeaseRecord) -> None:
    """Send ``request``; fail unless refused, leaving ``holder``'s record and its id alone."""
    result = harness.backend.compare_and_set(request)
    expect(
        not result.acquired,
        f"compare_and_set by {request.owner!r} (acquisition {request.acquisition!r}) was "
        f"granted while {holder.owner!r} held the key: {result!r}",
    )
    if result.record is not None:
        expect(
            result.record.acquisition == holder.acquisition,
            f"a refused compare_and_set must return the holder's record with its acquisition "
            f"({holder.acquisition!r}), got {result.record.acquisition!r}",
        )
    found = stored(harness, request.key)
    expect(
        found.acquisition == holder.acquisition,
        f"a refused compare_and_set (acquisition {request.acquisition!r}) must leave the "
        f"holder's acquisition ({holder.acquisition!r}), found {found.acquisition!r}",
    )
    expect_same_record(found, holder, "after a refused compare_and_set")


@check()
def granted_records_carry_the_request_acquisition(harness: BackendHarness) -> None:
    """A granted compare_and_set stores request.acquisition: free, released and expired keys."""
    backend = harness.backend
    first = _granted(harness, lease_request("ids", "alice", acquisition="acq-free"))
    backend.release("ids", "alice", token=first.token)
    second = _granted(harness, lease_request("ids", "alice", ttl=SHORT_TTL, acquisition="acq-2"))
    harness.advance(SHORT_TTL)
    _granted(harness, lease_request("ids", "bob", acquisition="acq-after-expiry"))
    _granted(harness, lease_request("ids-forced", "alice", acquisition="acq-forced"), force=True)
    expect(
        second.token > first.token,
        f"the token must grow between acquisitions: {first.token} then {second.token}",
    )


@check()
def renew_keeps_the_acquisition(harness: BackendHarness) -> None:
    """renew() leaves the holding's acquisition id as the granting call wrote it."""
    backend = harness.backend
    holder = _granted(harness, lease_request("renew-id", "alice", acquisition="acq-first"))
    for _ in range(2):
        harness.advance(1)
        renewed = present(
            backend.renew("renew-id", "alice", holder.token, LONG_TTL),
            "renew() by the live holder with its token returned None",
        )
        expect(
            renewed.acquisition == "acq-first",
            f"renew() must keep the acquisition ('acq-first'), got {renewed.acquisition!r}",
        )
        found = stored(harness, "renew-id")
        expect(
            found.acquisition == "acq-first",
            f"get() after renew() must return the acquisition ('acq-first'), "
            f"got {found.acquisition!r}",
        )


@check()
def refused_cas_keeps_the_holders_acquisition(harness: BackendHarness) -> None:
    """A refused compare_and_set, also by the holder under a new id, keeps the old id."""
    holder = _granted(harness, lease_request("kept-id", "alice", acquisition="acq-holder"))
    _refused(harness, lease_request("kept-id", "bob", acquisition="acq-bob"), holder)
    harness.advance(1)
    _refused(harness, lease_request("kept-id", "alice", acquisition="acq-alice-again"), holder)


@check()
def forced_cas_stores_the_new_acquisition(harness: BackendHarness) -> None:
    """A forced compare_and_set stores its own acquisition id and a greater token."""
    victim = _granted(harness, lease_request("forced-id", "alice", acquisition="acq-alice"))
    taker = _granted(harness, lease_request("forced-id", "bob", acquisition="acq-bob"), force=True)
    expect(
        taker.token > victim.token,
        f"the token must grow on a forced takeover: {victim.token} then {taker.token}",
    )
    again = _granted(
        harness, lease_request("forced-id", "bob", acquisition="acq-bob-again"), force=True
    )
    expect(
        again.token > taker.token,
        f"the token must grow when the holder forces a new acquisition: "
        f"{taker.token} then {again.token}",
    )


@check()
def bad_acquisitions_are_rejected(harness: BackendHarness) -> None:
    """compare_and_set rejects an acquisition id that is not a non-empty str, naming it."""
    backend = harness.backend
    holder = _granted(harness, lease_request("k", "alice", ttl=SHORT_TTL, acquisition="acq-ok"))
    for bad in BAD_ACQUISITIONS:
        for key in ("k", "free"):
            request = _with_acquisition(lease_request(key, "mallory"), bad)
            for force in (False, True):
                expect_rejected(
                    f"{'forced ' if force else ''}compare_and_set with acquisition={bad!r} "
                    f"on {key!r}",
                    backend.compare_and_set,
                    request,
                    force=force,
                    naming="acquisition",
                )
    expect_same_record(backend.get("k"), holder, "after compare_and_set with bad acquisitions")
    expect(
        stored(harness, "k").acquisition == "acq-ok",
        "compare_and_set with a bad acquisition id must not change the holder's acquisition",
    )
    found = backend.get("free")
    expect(found is None, f"compare_and_set with a bad acquisition id wrote a record: {found!r}")


def _with_acquisition(request: LeaseRequest, acquisition: Any) -> LeaseRequest:
    """``request`` with any ``acquisition`` value, even one its type does not allow."""
    fields = {name: getattr(request, name) for name in request.__dataclass_fields__}
    fields["acquisition"] = acquisition
    return LeaseRequest(**fields)
