"""Checks of member status reports (for backends that declare Capability.MEMBER_STATUS)."""

from __future__ import annotations

from dataclasses import replace

from mongoelector.backends.protocol import (
    Capability,
    MemberRecord,
    MemberStatusBackend,
    ReportManyBackend,
)
from mongoelector.testing.conformance.checks.inputs import BAD_KEYS, expect_rejected
from mongoelector.testing.conformance.harness import BackendHarness
from mongoelector.testing.conformance.registry import ConformanceFailure, check, expect
from mongoelector.testing.conformance.support import LONG_TTL, SHORT_TTL, stamped_between


def _members_backend(harness: BackendHarness) -> MemberStatusBackend:
    backend = harness.backend
    if not isinstance(backend, MemberStatusBackend):
        raise ConformanceFailure(
            "the backend declares Capability.MEMBER_STATUS but lacks report_member() or members()"
        )
    return backend


def _report_many_backend(harness: BackendHarness) -> ReportManyBackend:
    backend = harness.backend
    if not isinstance(backend, ReportManyBackend) or not isinstance(backend, MemberStatusBackend):
        raise ConformanceFailure(
            "the backend declares Capability.REPORT_MANY but lacks report_members(), "
            "report_member() or members()"
        )
    return backend


def _member(uuid: str, *, key: str = "election", ttl: float = LONG_TTL) -> MemberRecord:
    return MemberRecord(
        key=key,
        uuid=uuid,
        host=f"host-of-{uuid}",
        pid=4242,
        is_leader=False,
        elector_running=True,
        ttl=ttl,
        token=None,
        app_version="1.2.3",
    )


def _uuids(members: list[MemberRecord]) -> list[str]:
    return [member.uuid for member in members]


@check(Capability.MEMBER_STATUS)
def member_reports_are_stamped_and_listed(harness: BackendHarness) -> None:
    """A report is listed for its key only, as sent, stamped with server time."""
    backend = _members_backend(harness)
    sent = replace(_member("alice"), is_leader=True, token=7)
    before = harness.backend.server_time()
    backend.report_member(sent)
    after = harness.backend.server_time()
    listed = backend.members("election")
    expect(len(listed) == 1, f"members() must list the one report made, got {listed!r}")
    got = listed[0]
    expect(
        replace(got, timestamp=None) == sent,
        f"members() must return the report as sent ({sent!r}), got {got!r}",
    )
    expect(
        got.timestamp is not None and stamped_between(harness, got.timestamp, before, after),
        f"a report must be stamped with the server time of the write (between {before} "
        f"and {after}), got {got.timestamp!r}",
    )
    others = backend.members("another-election")
    expect(others == [], f"members() of another key must not list this report: {others!r}")


@check(Capability.MEMBER_STATUS)
def members_are_newest_first_one_per_uuid(harness: BackendHarness) -> None:
    """members() lists each uuid's latest report once, the most recent report first."""
    backend = _members_backend(harness)
    backend.report_member(_member("alice"))
    harness.advance(1)
    backend.report_member(_member("bob"))
    harness.advance(1)
    backend.report_member(replace(_member("alice"), is_leader=True, token=3))
    listed = backend.members("election")
    expect(
        _uuids(listed) == ["alice", "bob"],
        f"members() must list alice's newer report first, then bob's, once each; "
        f"got {_uuids(listed)}",
    )
    expect(
        listed[0].is_leader and listed[0].token == 3,
        f"members() must show a uuid's latest report, got {listed[0]!r}",
    )


@check(Capability.MEMBER_STATUS)
def member_reports_lapse_after_their_ttl(harness: BackendHarness) -> None:
    """A report is no longer listed once server time passes its timestamp + ttl."""
    backend = _members_backend(harness)
    backend.report_member(_member("alice", ttl=SHORT_TTL))
    backend.report_member(_member("bob", ttl=LONG_TTL))
    harness.advance(SHORT_TTL)
    listed = _uuids(backend.members("election"))
    expect(listed == ["bob"], f"only bob's report is still live, got {listed}")


@check(Capability.MEMBER_STATUS)
def member_status_rejects_bad_input(harness: BackendHarness) -> None:
    """report_member() and members() reject bad keys and ttls, and non-MemberRecord reports."""
    backend = _members_backend(harness)
    for key in BAD_KEYS:
        expect_rejected(f"members with key={key!r}", backend.members, key)
        bad = replace(_member("alice"), key=key)
        expect_rejected(f"report_member with key={key!r}", backend.report_member, bad)
    for ttl in (0, -1, float("nan")):
        bad = replace(_member("alice"), ttl=ttl)
        expect_rejected(f"report_member with ttl={ttl!r}", backend.report_member, bad)
    expect_rejected("report_member with a dict", backend.report_member, {"uuid": "alice"})
    listed = backend.members("election")
    expect(listed == [], f"rejected reports must not be stored, got {listed!r}")


def _listed(backend: MemberStatusBackend, key: str) -> dict[str, MemberRecord]:
    """The live reports of ``key`` by uuid, without their timestamps."""
    return {member.uuid: replace(member, timestamp=None) for member in backend.members(key)}


@check(Capability.REPORT_MANY)
def report_members_stores_each_report_as_report_member_would(harness: BackendHarness) -> None:
    """report_members() stores every report as report_member() would (listed by members(),
    as sent, stamped with server time, a uuid's latest report replacing an earlier one);
    an empty sequence stores nothing."""
    backend = _report_many_backend(harness)
    members_backend = _members_backend(harness)
    backend.report_members([])
    expect(
        members_backend.members("election") == [],
        f"report_members([]) must store nothing, got {members_backend.members('election')!r}",
    )
    members_backend.report_member(_member("carol"))
    harness.advance(1)
    sent = [
        replace(_member("alice"), is_leader=True, token=7),
        _member("bob", ttl=SHORT_TTL),
        replace(_member("carol"), elector_running=False),
        _member("dave", key="another-election"),
    ]
    before = harness.backend.server_time()
    backend.report_members(sent)
    after = harness.backend.server_time()
    listed = _listed(members_backend, "election")
    expected = {member.uuid: member for member in sent if member.key == "election"}
    expect(
        listed == expected,
        f"members() must list each report of the batch as sent ({expected!r}), got {listed!r}",
    )
    others = _listed(members_backend, "another-election")
    expect(
        others == {"dave": sent[3]},
        f"members() of another key must list that key's report of the batch only: {others!r}",
    )
    for member in members_backend.members("election"):
        expect(
            member.timestamp is not None
            and stamped_between(harness, member.timestamp, before, after),
            f"a report of the batch must be stamped with the server time of the write "
            f"(between {before} and {after}), got {member!r}",
        )
    harness.advance(SHORT_TTL)
    lapsed = sorted(_listed(members_backend, "election"))
    expect(lapsed == ["alice", "carol"], f"bob's report lapses after its ttl, got {lapsed}")


@check(Capability.REPORT_MANY)
def report_members_rejects_bad_items(harness: BackendHarness) -> None:
    """report_members() rejects a bad item among good ones (naming it), and anything but a
    sequence of reports, storing nothing."""
    backend = _report_many_backend(harness)
    members_backend = _members_backend(harness)
    good = _member("alice")
    for key in BAD_KEYS:
        bad = replace(_member("bob"), key=key)
        expect_rejected(
            f"report_members() with key={key!r} in members[1]",
            backend.report_members,
            [good, bad],
            naming="members[1]",
        )
    for ttl in (0, -1, float("nan")):
        bad = replace(_member("bob"), ttl=ttl)
        expect_rejected(
            f"report_members() with ttl={ttl!r} in members[1]",
            backend.report_members,
            [good, bad],
            naming="members[1]",
        )
    expect_rejected(
        "report_members() with a dict in members[1]",
        backend.report_members,
        [good, {"uuid": "bob"}],
        naming="members[1]",
    )
    expect_rejected("report_members() with a single report", backend.report_members, good)
    listed = members_backend.members("election")
    expect(listed == [], f"a rejected report_members() must store nothing, got {listed!r}")
