"""Checks of the protocol's surface: the methods exist and server time behaves."""

from __future__ import annotations

from datetime import timedelta

from mongoelector.backends.protocol import (
    Capability,
    GetManyBackend,
    MemberStatusBackend,
    RenewManyBackend,
    ReportManyBackend,
    missing_protocol_methods,
)
from mongoelector.testing.conformance.harness import BackendHarness, HarnessFeature
from mongoelector.testing.conformance.registry import check, expect
from mongoelector.testing.conformance.support import close_in_time


@check()
def backend_implements_the_protocol(harness: BackendHarness) -> None:
    """The backend has every StorageBackend method and a frozenset of Capability flags."""
    backend = harness.backend
    missing = missing_protocol_methods(backend)
    expect(not missing, f"the backend lacks StorageBackend members: {', '.join(missing)}")
    capabilities = backend.capabilities
    expect(
        isinstance(capabilities, frozenset)
        and all(isinstance(flag, Capability) for flag in capabilities),
        f"capabilities must be a frozenset of Capability members, got {capabilities!r}",
    )
    if Capability.MEMBER_STATUS in capabilities:
        expect(
            isinstance(backend, MemberStatusBackend),
            "the backend declares Capability.MEMBER_STATUS but lacks report_member() or members()",
        )
    if Capability.RENEW_MANY in capabilities:
        expect(
            isinstance(backend, RenewManyBackend),
            "the backend declares Capability.RENEW_MANY but lacks renew_many()",
        )
    if Capability.GET_MANY in capabilities:
        expect(
            isinstance(backend, GetManyBackend),
            "the backend declares Capability.GET_MANY but lacks get_many()",
        )
    if Capability.REPORT_MANY in capabilities:
        expect(
            isinstance(backend, ReportManyBackend),
            "the backend declares Capability.REPORT_MANY but lacks report_members()",
        )
        expect(
            Capability.MEMBER_STATUS in capabilities,
            "the backend declares Capability.REPORT_MANY without Capability.MEMBER_STATUS",
        )


@check()
def server_time_is_utc_and_moves_forward(harness: BackendHarness) -> None:
    """server_time() is timezone-aware UTC and advances at least as far as the harness moves it."""
    before = harness.backend.server_time()
    expect(
        before.tzinfo is not None and before.utcoffset() == timedelta(0),
        f"server_time() must be timezone-aware UTC, got {before!r}",
    )
    harness.advance(10)
    after = harness.backend.server_time()
    expect(
        after - before >= timedelta(seconds=10) - harness.tolerance,
        f"advance(10) moved server time only from {before} to {after}",
    )


@check(HarnessFeature.EXACT_TIME)
def server_time_is_the_harness_time(harness: BackendHarness) -> None:
    """server_time() stands still between advances and moves by exactly what was advanced."""
    first = harness.backend.server_time()
    second = harness.backend.server_time()
    expect(
        close_in_time(first, second),
        f"server time moved by itself from {first} to {second} (the harness controls it)",
    )
    harness.advance(2.5)
    third = harness.backend.server_time()
    expect(
        close_in_time(third, first + timedelta(seconds=2.5)),
        f"advance(2.5) moved server time from {first} to {third}",
    )


@check()
def an_unknown_key_has_no_record(harness: BackendHarness) -> None:
    """get() of a key that was never used returns None."""
    record = harness.backend.get("conformance-never-used")
    expect(record is None, f"get() of a key never used returned {record!r}")
