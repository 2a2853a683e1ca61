"""The suite fails backends that break the protocol, naming the promise they broke.

Each broken backend below is MemoryBackend with one promise broken; the
check that guards that promise must fail on it (and on MemoryBackend itself
it passes, see test_conformance_memory.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest

from mongoelector.backends.memory import MemoryBackend
from mongoelector.backends.protocol import (
    Capability,
    CasResult,
    LeaseRecord,
    LeaseRequest,
    MemberRecord,
    RenewItem,
)
from mongoelector.errors import BackendUnavailable
from mongoelector.testing import BackendHarness, FakeClock, Outcome, check_backend
from mongoelector.testing.conformance.checks.threads import THREADS


def harness_for(backend_type: Callable[[FakeClock], MemoryBackend]) -> Callable[[], BackendHarness]:
    def factory() -> BackendHarness:
        clock = FakeClock()
        backend = backend_type(clock)
        return BackendHarness(backend=backend, advance=clock.advance, delete_record=backend.delete)

    return factory


class ForgetsTokensOnDelete(MemoryBackend):
    def delete(self, key: str) -> bool:
        deleted = super().delete(key)
        self._deleted_tokens.pop(key, None)
        return deleted


class JudgesExpiryByHostClock(MemoryBackend):
    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        current = self._records.get(request.key)
        if current is not None and current.is_held(datetime.now(timezone.utc)) and not force:
            return CasResult(acquired=False, record=current)
        return super().compare_and_set(request, force=True)


class RegrantsToTheHolder(MemoryBackend):
    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        current = self._records.get(request.key)
        mine = current is not None and current.owner == request.owner
        return super().compare_and_set(request, force=force or mine)


class RenewsAnyToken(MemoryBackend):
    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        current = self._records.get(key)
        return super().renew(key, owner, current.token if current else token, ttl)


class ReleasesForAnyone(MemoryBackend):
    def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        return super().release(key, owner, token=token, force=True)


class TrustsKeys(MemoryBackend):
    def get(self, key: str) -> LeaseRecord | None:
        return self._records.get(key)


class FoldsCase(MemoryBackend):
    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        return super().compare_and_set(replace(request, key=request.key.lower()), force=force)

    def get(self, key: str) -> LeaseRecord | None:
        return super().get(key.lower())


class ChecksThenSets(MemoryBackend):
    """compare_and_set that is not atomic: every contender reads before anyone writes."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self._all_have_read = threading.Barrier(THREADS)

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        current = self._records.get(request.key)
        free = current is None or not current.is_held(self.clock.now())
        with suppress(threading.BrokenBarrierError):
            self._all_have_read.wait(timeout=5)
        if not free:
            return CasResult(acquired=False, record=current)
        return super().compare_and_set(request, force=True)


class ForgetsTheAcquisition(MemoryBackend):
    """Stores every granted record without its acquisition id."""

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        result = super().compare_and_set(request, force=force)
        if not result.acquired or result.record is None:
            return result
        record = replace(result.record, acquisition=None)
        self._records[request.key] = record
        return CasResult(acquired=True, record=record)


class RenewRewritesTheAcquisition(MemoryBackend):
    """Gives a renewed holding a new acquisition id, as if renew were a new acquisition."""

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        renewed = super().renew(key, owner, token, ttl)
        if renewed is None:
            return None
        record = replace(renewed, acquisition=f"renewed-{renewed.token}")
        self._records[key] = record
        return record


class RefusalRewritesTheAcquisition(MemoryBackend):
    """Refuses a live holding's key, but writes the refused request's id into the record."""

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        result = super().compare_and_set(request, force=force)
        if result.acquired or result.record is None:
            return result
        record = replace(result.record, acquisition=request.acquisition)
        self._records[request.key] = record
        return CasResult(acquired=False, record=record)


class ForceKeepsTheAcquisition(MemoryBackend):
    """A forced takeover of a held key keeps the old holding's acquisition id."""

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        current = self._records.get(request.key)
        if force and current is not None and current.acquisition is not None:
            request = replace(request, acquisition=current.acquisition)
        return super().compare_and_set(request, force=force)


class AcceptsAnyAcquisition(MemoryBackend):
    """Stores whatever acquisition a request carries, without checking it."""

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        acquisition: object = request.acquisition
        if not isinstance(acquisition, str) or not acquisition:
            request = replace(request, acquisition=f"unchecked {acquisition!r}")
        return super().compare_and_set(request, force=force)


class RejectsAcquisitionsWithoutNamingThem(MemoryBackend):
    """Rejects a bad acquisition id with an error that does not say what was wrong."""

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        acquisition: object = request.acquisition
        if not isinstance(acquisition, str) or not acquisition:
            raise ValueError("bad request")
        return super().compare_and_set(request, force=force)


class ListsMembersOldestFirst(MemoryBackend):
    def members(self, key: str) -> list[Any]:
        return list(reversed(super().members(key)))


class ClaimsMemberStatusWithoutIt:
    """Declares the capability but has none of its methods."""

    capabilities = frozenset({Capability.MEMBER_STATUS})

    def __init__(self, clock: FakeClock) -> None:
        self._inner = MemoryBackend(clock)
        self.server_time = self._inner.server_time
        self.compare_and_set = self._inner.compare_and_set
        self.renew = self._inner.renew
        self.release = self._inner.release
        self.get = self._inner.get
        self.delete = self._inner.delete


class RenewsManyWithAnyToken(MemoryBackend):
    """Renews the current holding of each item's owner, whatever the item's token."""

    def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        current = [self._records.get(item.key) for item in items]
        return super().renew_many(
            [
                replace(item, token=record.token) if record else item
                for item, record in zip(items, current, strict=True)
            ]
        )


class ReturnsRenewalsOutOfOrder(MemoryBackend):
    def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        return list(reversed(super().renew_many(items)))


class RenewsManyWithTheFirstTtl(MemoryBackend):
    def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        return super().renew_many([replace(item, ttl=items[0].ttl) for item in items])


class RenewsManyOneByOne(MemoryBackend):
    """Renews item after item, checking each only when it comes to it."""

    def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        return [self.renew(item.key, item.owner, item.token, item.ttl) for item in items]


class RenewsManyWithoutAsking(MemoryBackend):
    """Checks the batch, then renews every item, even one renew() would refuse."""

    def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        renewed = super().renew_many(items)
        return [
            record if record is not None else self._records.get(item.key)
            for item, record in zip(items, renewed, strict=True)
        ]


class GetsManyWithoutTheMissing(MemoryBackend):
    def get_many(self, keys: Sequence[str]) -> dict[str, LeaseRecord | None]:
        return {key: record for key, record in super().get_many(keys).items() if record}


class GetsManyFromAString(MemoryBackend):
    def get_many(self, keys: Sequence[str]) -> dict[str, LeaseRecord | None]:
        return {key: self.get(key) for key in keys}


class GetsManyWithoutNamingTheKey(MemoryBackend):
    """Rejects a bad key among the keys, with an error that does not say which input."""

    def get_many(self, keys: Sequence[str]) -> dict[str, LeaseRecord | None]:
        try:
            return super().get_many(keys)
        except (TypeError, ValueError):
            raise ValueError("bad input") from None


class GetsManyOfAnyKey(MemoryBackend):
    """Refuses only a batch that is not a list; reads any key in it."""

    def get_many(self, keys: Sequence[str]) -> dict[str, LeaseRecord | None]:
        if not isinstance(keys, list):
            raise TypeError("keys must be a list")
        with self._mutex:
            return {key: self._records.get(key) for key in keys if isinstance(key, str)}


class RenewsGoodItemsBeforeChecking(MemoryBackend):
    """Renews every good item of the batch, then refuses the batch for its bad ones."""

    def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        for item in items if isinstance(items, list) else []:
            with suppress(Exception):
                self.renew(item.key, item.owner, item.token, item.ttl)
        return super().renew_many(items)


class ClaimsRenewManyWithoutIt(ClaimsMemberStatusWithoutIt):
    capabilities = frozenset({Capability.RENEW_MANY})


class ClaimsReportManyWithoutIt(MemoryBackend):
    """Declares REPORT_MANY, but its report_members is not callable."""

    report_members = None  # type: ignore[assignment]


class ReportsMembersDroppingTheLast(MemoryBackend):
    def report_members(self, members: Sequence[MemberRecord]) -> None:
        super().report_members(list(members)[:-1])


class ReportsGoodMembersBeforeChecking(MemoryBackend):
    """Stores every good report of the batch, then refuses the batch for its bad ones."""

    def report_members(self, members: Sequence[MemberRecord]) -> None:
        for member in members if isinstance(members, list) else []:
            with suppress(Exception):
                self.report_member(member)
        super().report_members(members)


class ReportsMembersWithoutNamingTheItem(MemoryBackend):
    def report_members(self, members: Sequence[MemberRecord]) -> None:
        try:
            super().report_members(members)
        except (TypeError, ValueError):
            raise ValueError("bad input") from None


BROKEN = [
    pytest.param(ForgetsTokensOnDelete, "tokens_grow_after_the_record_is_deleted", id="tokens"),
    pytest.param(JudgesExpiryByHostClock, "expiry_is_judged_by_server_time_only", id="host-clock"),
    pytest.param(JudgesExpiryByHostClock, "cas_takes_an_expired_key", id="host-clock-expiry"),
    pytest.param(RegrantsToTheHolder, "cas_refuses_the_live_holder_itself", id="regrant"),
    pytest.param(RenewsAnyToken, "renew_is_refused_for_a_stale_token", id="stale-renew"),
    pytest.param(ReleasesForAnyone, "release_is_refused_for_a_non_owner", id="release"),
    pytest.param(TrustsKeys, "bad_keys_are_rejected", id="keys"),
    pytest.param(FoldsCase, "similar_keys_are_distinct", id="case"),
    pytest.param(ChecksThenSets, "one_winner_per_round_among_threads", id="race"),
    pytest.param(ListsMembersOldestFirst, "members_are_newest_first_one_per_uuid", id="order"),
    pytest.param(ClaimsMemberStatusWithoutIt, "backend_implements_the_protocol", id="claims"),
]

#: Backends that break a batch call, the check that must catch each, and what it must say.
BROKEN_BATCHES = [
    pytest.param(
        RenewsManyWithAnyToken,
        "renew_many_renews_each_item_as_renew_would",
        "renew_many() must refuse RenewItem(key='batch-stale'",
        id="any-token",
    ),
    pytest.param(
        ReturnsRenewalsOutOfOrder,
        "renew_many_renews_each_item_as_renew_would",
        "results must be in the order of the items",
        id="out-of-order",
    ),
    pytest.param(
        RenewsManyWithTheFirstTtl,
        "renew_many_renews_each_item_as_renew_would",
        "must set expires_at to server now + the item's ttl",
        id="one-ttl",
    ),
    pytest.param(
        RenewsManyWithoutAsking,
        "renew_many_renews_each_item_as_renew_would",
        "renew_many() must refuse RenewItem(key='batch-not-owner'",
        id="renews-refused",
    ),
    pytest.param(
        RenewsManyOneByOne,
        "renew_many_rejects_bad_batches",
        "with a dict for an item after a good item must raise TypeError or ValueError, "
        "raised AttributeError",
        id="unchecked-batch",
    ),
    pytest.param(
        RenewsGoodItemsBeforeChecking,
        "renew_many_rejects_bad_batches",
        "a rejected renew_many() renewed a good item",
        id="renews-before-checking",
    ),
    pytest.param(
        ClaimsRenewManyWithoutIt,
        "backend_implements_the_protocol",
        "declares Capability.RENEW_MANY but lacks renew_many()",
        id="claims-renew-many",
    ),
    pytest.param(
        ClaimsReportManyWithoutIt,
        "backend_implements_the_protocol",
        "declares Capability.REPORT_MANY but lacks report_members()",
        id="claims-report-many",
    ),
    pytest.param(
        ReportsMembersDroppingTheLast,
        "report_members_stores_each_report_as_report_member_would",
        "members() of another key must list that key's report of the batch only",
        id="report-many-drops",
    ),
    pytest.param(
        ReportsGoodMembersBeforeChecking,
        "report_members_rejects_bad_items",
        "a rejected report_members() must store nothing",
        id="report-many-stores-before-checking",
    ),
    pytest.param(
        ReportsMembersWithoutNamingTheItem,
        "report_members_rejects_bad_items",
        "must raise an error naming 'members[1]', got ValueError('bad input')",
        id="report-many-unnamed",
    ),
    pytest.param(
        GetsManyWithoutTheMissing,
        "get_many_reads_each_key_as_get_would",
        "one entry per distinct key",
        id="get-many-drops",
    ),
    pytest.param(
        GetsManyFromAString,
        "get_many_rejects_bad_keys",
        "get_many() with a bare str for the keys must raise",
        id="get-many-str",
    ),
    pytest.param(
        GetsManyOfAnyKey,
        "get_many_rejects_bad_keys",
        "get_many() with key=None must raise TypeError or ValueError",
        id="get-many-bad-key",
    ),
    pytest.param(
        GetsManyWithoutNamingTheKey,
        "get_many_rejects_bad_keys",
        "get_many() with key=None must raise an error naming 'key', got ValueError('bad input')",
        id="get-many-unnamed",
    ),
]


@pytest.mark.parametrize(("backend_type", "check_name", "complaint"), BROKEN_BATCHES)
def test_the_batch_checks_fail_backends_that_break_a_batch_call(
    backend_type: Callable[[FakeClock], Any], check_name: str, complaint: str
) -> None:
    [result] = check_backend(harness_for(backend_type), only=[check_name]).results

    assert result.outcome is Outcome.FAILED, result
    assert complaint in result.detail, result.detail


#: Backends that break acquisition identity, the check that must catch each, and what the
#: failure must say.
BROKEN_ACQUISITION = [
    pytest.param(
        ForgetsTheAcquisition,
        "granted_records_carry_the_request_acquisition",
        "must carry request.acquisition ('acq-free'), got None",
        id="not-stored",
    ),
    pytest.param(
        RenewRewritesTheAcquisition,
        "renew_keeps_the_acquisition",
        "renew() must keep the acquisition ('acq-first'), got 'renewed-",
        id="rewritten-on-renew",
    ),
    pytest.param(
        RefusalRewritesTheAcquisition,
        "refused_cas_keeps_the_holders_acquisition",
        "with its acquisition ('acq-holder'), got 'acq-bob'",
        id="rewritten-on-refusal",
    ),
    pytest.param(
        ForceKeepsTheAcquisition,
        "forced_cas_stores_the_new_acquisition",
        "forced compare_and_set must carry request.acquisition ('acq-bob'), got 'acq-alice'",
        id="kept-on-force",
    ),
    pytest.param(
        AcceptsAnyAcquisition,
        "bad_acquisitions_are_rejected",
        "compare_and_set with acquisition='' on 'k' must raise TypeError or ValueError",
        id="unchecked",
    ),
    pytest.param(
        RejectsAcquisitionsWithoutNamingThem,
        "bad_acquisitions_are_rejected",
        "must raise an error naming 'acquisition', got ValueError('bad request')",
        id="unnamed",
    ),
]


@pytest.mark.parametrize(("backend_type", "check_name", "complaint"), BROKEN_ACQUISITION)
def test_the_acquisition_checks_fail_backends_that_lose_or_rewrite_the_id(
    backend_type: Callable[[FakeClock], Any], check_name: str, complaint: str
) -> None:
    [result] = check_backend(harness_for(backend_type), only=[check_name]).results

    assert result.outcome is Outcome.FAILED, result
    assert complaint in result.detail


@pytest.mark.parametrize(("backend_type", "check_name"), BROKEN)
def test_the_check_guarding_a_promise_fails_the_backend_that_breaks_it(
    backend_type: Callable[[FakeClock], Any], check_name: str
) -> None:
    report = check_backend(harness_for(backend_type), only=[check_name])

    [result] = report.results
    assert result.outcome is Outcome.FAILED, result
    assert result.detail


class Flaky:
    """MemoryBackend behind a link that fails while ``down`` is set, in chosen ways."""

    capabilities: frozenset[Capability] = frozenset()

    def __init__(self, fail: Callable[[MemoryBackend, str, tuple[Any, ...], dict[str, Any]], Any]):
        self.inner = MemoryBackend(FakeClock())
        self.down = False
        self._fail = fail

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            return self._fail(self.inner, name, args, kwargs)
        return getattr(self.inner, name)(*args, **kwargs)

    def server_time(self) -> datetime:
        return self.inner.server_time()

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        return self._call("compare_and_set", request, force=force)  # type: ignore[no-any-return]

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        return self._call("renew", key, owner, token, ttl)  # type: ignore[no-any-return]

    def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        return self._call("release", key, owner, token=token, force=force)  # type: ignore[no-any-return]

    def get(self, key: str) -> LeaseRecord | None:
        return self._call("get", key)  # type: ignore[no-any-return]


def flaky_harness(fail: Callable[..., Any]) -> Callable[[], BackendHarness]:
    def factory() -> BackendHarness:
        backend = Flaky(fail)

        @contextmanager
        def outage() -> Iterator[None]:
            backend.down = True
            try:
                yield
            finally:
                backend.down = False

        clock = backend.inner.clock
        assert isinstance(clock, FakeClock)
        return BackendHarness(backend=backend, advance=clock.advance, outage=outage)

    return factory


def raise_connection_error(*_: Any) -> Any:
    raise ConnectionError("the store's own exception, unwrapped")


def apply_then_report_unavailable(inner: MemoryBackend, name: str, args: Any, kwargs: Any) -> Any:
    getattr(inner, name)(*args, **kwargs)
    raise BackendUnavailable("claims nothing happened, but it did")


def raise_unavailable(*_: Any) -> Any:
    raise BackendUnavailable("the store is down")


def carry_on(inner: MemoryBackend, name: str, args: Any, kwargs: Any) -> Any:
    return getattr(inner, name)(*args, **kwargs)


@pytest.mark.parametrize(
    ("fail", "check_name", "complaint"),
    [
        pytest.param(
            raise_connection_error,
            "store_failures_raise_typed_errors",
            "raised ConnectionError",
            id="untyped-error",
        ),
        pytest.param(
            carry_on, "store_failures_raise_typed_errors", "proves nothing", id="no-outage"
        ),
        pytest.param(
            apply_then_report_unavailable,
            "failed_writes_took_effect_as_reported",
            "BackendUnavailable, which promises that nothing happened",
            id="unavailable-but-applied",
        ),
    ],
)
def test_dishonest_failures_fail_the_failure_checks(
    fail: Callable[..., Any], check_name: str, complaint: str
) -> None:
    [result] = check_backend(flaky_harness(fail), only=[check_name]).results

    assert result.outcome is Outcome.FAILED
    assert complaint in result.detail


def test_honest_failures_pass_both_failure_checks() -> None:
    report = check_backend(
        flaky_harness(raise_unavailable),
        only=["store_failures_raise_typed_errors", "failed_writes_took_effect_as_reported"],
    )

    assert report.ok, str(report)
    assert len(report.passed) == 2
