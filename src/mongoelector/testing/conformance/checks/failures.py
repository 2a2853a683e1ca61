"""Checks of store failures: typed errors only, and effects that match what the error says.

They need the harness's ``outage()`` hook: while it is active the store
fails, and each operation must either succeed or raise
:class:`~mongoelector.errors.BackendUnavailable` (nothing happened) or
:class:`~mongoelector.errors.AmbiguousOutcome` (it may have happened).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mongoelector.backends.protocol import (
    Capability,
    CasResult,
    GetManyBackend,
    LeaseRecord,
    MemberRecord,
    MemberStatusBackend,
    RenewItem,
    RenewManyBackend,
    ReportManyBackend,
)
from mongoelector.errors import AmbiguousOutcome, BackendUnavailable
from mongoelector.testing.conformance.harness import BackendHarness, HarnessFeature
from mongoelector.testing.conformance.registry import check, expect, present
from mongoelector.testing.conformance.support import (
    LONG_TTL,
    acquire,
    lease_request,
    same_record,
)


@dataclass(frozen=True)
class _Attempt:
    """One call made during the outage: what it returned or raised."""

    operation: str
    key: str | None
    result: object = None
    error: Exception | None = None


def _applied(operation: str, before: LeaseRecord | None, after: LeaseRecord | None) -> bool:
    """True if ``after`` shows the full effect of the write ``operation`` on ``before``."""
    if operation in ("compare_and_set", "forced compare_and_set"):
        grown = before is None or (after is not None and after.token > before.token)
        return after is not None and after.owner == "bob" and grown
    if operation in ("renew", "renew_many"):
        return (
            before is not None
            and after is not None
            and (after.owner, after.token) == (before.owner, before.token)
            and after.expires_at is not None
            and before.expires_at is not None
            and after.expires_at > before.expires_at
        )
    return after is None or after.owner is None  # release


def _succeeded(result: object) -> bool:
    """True if a write's return value says it took effect."""
    if isinstance(result, CasResult):
        return result.acquired
    return result is True or isinstance(result, LeaseRecord)


_WRITES = ("compare_and_set", "forced compare_and_set", "renew", "release", "renew_many")
#: The keys a batch renews during the outage (when the backend declares RENEW_MANY).
_BATCH_KEYS = ("outage-batch-1", "outage-batch-2")


@dataclass
class _OutageRun:
    """Holds leases, makes every kind of call during an outage, and keeps the outcomes."""

    harness: BackendHarness

    def __post_init__(self) -> None:
        backend = self.harness.backend
        held = ["outage-force", "outage-renew", "outage-release"]
        if Capability.RENEW_MANY in backend.capabilities:
            held += _BATCH_KEYS
        self.holdings = {key: acquire(self.harness, key, "alice") for key in held}
        self.before: dict[str, LeaseRecord | None] = {
            key: backend.get(key) for key in ("outage-free", *self.holdings)
        }
        self.attempts: list[_Attempt] = []
        outage = present(self.harness.outage, "the harness has no outage hook")
        with outage():
            self._attempt_everything()

    def _attempt(
        self, operation: str, key: str | None, call: Callable[..., object], *args: Any, **kw: Any
    ) -> None:
        try:
            result = call(*args, **kw)
        except Exception as error:
            self.attempts.append(_Attempt(operation, key, error=error))
        else:
            self.attempts.append(_Attempt(operation, key, result=result))

    def _attempt_everything(self) -> None:
        backend = self.harness.backend
        cas = backend.compare_and_set
        self._attempt("compare_and_set", "outage-free", cas, lease_request("outage-free", "bob"))
        self._attempt(
            "forced compare_and_set",
            "outage-force",
            cas,
            lease_request("outage-force", "bob"),
            force=True,
        )
        token = self.holdings["outage-renew"].token
        self._attempt(
            "renew", "outage-renew", backend.renew, "outage-renew", "alice", token, LONG_TTL * 2
        )
        token = self.holdings["outage-release"].token
        self._attempt(
            "release", "outage-release", backend.release, "outage-release", "alice", token=token
        )
        self._attempt("get", None, backend.get, "outage-force")
        self._attempt("server_time", None, backend.server_time)
        if Capability.MEMBER_STATUS in backend.capabilities and isinstance(
            backend, MemberStatusBackend
        ):
            member = MemberRecord(
                key="outage-members",
                uuid="alice",
                host="host-of-alice",
                pid=4242,
                is_leader=False,
                elector_running=True,
                ttl=LONG_TTL,
            )
            self._attempt("report_member", None, backend.report_member, member)
            if Capability.REPORT_MANY in backend.capabilities and isinstance(
                backend, ReportManyBackend
            ):
                self._attempt("report_members", None, backend.report_members, [member])
            self._attempt("members", None, backend.members, "outage-members")
        if Capability.RENEW_MANY in backend.capabilities and isinstance(backend, RenewManyBackend):
            self._attempt_batch(backend)
        if Capability.GET_MANY in backend.capabilities and isinstance(backend, GetManyBackend):
            self._attempt("get_many", None, backend.get_many, ["outage-force", "outage-free"])

    def _attempt_batch(self, backend: RenewManyBackend) -> None:
        """One renew_many of two holdings, recorded as one attempt per key."""
        items = [
            RenewItem(key=key, owner="alice", token=self.holdings[key].token, ttl=LONG_TTL * 2)
            for key in _BATCH_KEYS
        ]
        try:
            results = backend.renew_many(items)
        except Exception as error:
            self.attempts += [_Attempt("renew_many", key, error=error) for key in _BATCH_KEYS]
        else:
            self.attempts += [
                _Attempt("renew_many", key, result=result)
                for key, result in zip(_BATCH_KEYS, results, strict=False)
            ]


@check(HarnessFeature.OUTAGE)
def store_failures_raise_typed_errors(harness: BackendHarness) -> None:
    """During an outage calls raise only BackendUnavailable or AmbiguousOutcome; then work again."""
    run = _OutageRun(harness)
    failed = [attempt for attempt in run.attempts if attempt.error is not None]
    for attempt in failed:
        expect(
            isinstance(attempt.error, (BackendUnavailable, AmbiguousOutcome)),
            f"{attempt.operation} raised {type(attempt.error).__name__}: {attempt.error!r} "
            f"during an outage; store failures must be raised as BackendUnavailable "
            f"(nothing happened) or AmbiguousOutcome (it may have happened)",
        )
    expect(
        bool(failed),
        "no call failed during the harness's outage(), so this check proves nothing: "
        "make outage() break the store",
    )
    acquire(harness, "outage-after", "carol")


@check(HarnessFeature.OUTAGE)
def failed_writes_took_effect_as_reported(harness: BackendHarness) -> None:
    """A write that raised BackendUnavailable changed nothing; AmbiguousOutcome, all or nothing."""
    run = _OutageRun(harness)
    for attempt in run.attempts:
        if attempt.operation not in _WRITES:
            continue
        key = present(attempt.key, "a write attempt without a key")
        before = run.before[key]
        after = harness.backend.get(key)
        applied = _applied(attempt.operation, before, after)
        unchanged = same_record(before, after)
        change = f"the record went from {before!r} to {after!r}"
        if isinstance(attempt.error, BackendUnavailable):
            expect(
                unchanged,
                f"{attempt.operation} raised BackendUnavailable, which promises that nothing "
                f"happened, but {change}",
            )
        elif isinstance(attempt.error, AmbiguousOutcome):
            expect(
                applied or unchanged,
                f"{attempt.operation} raised AmbiguousOutcome, but only part of it "
                f"happened: {change}",
            )
        elif attempt.error is None:
            expected = applied if _succeeded(attempt.result) else unchanged
            expect(
                expected,
                f"{attempt.operation} returned {attempt.result!r} during the outage, but {change}",
            )
