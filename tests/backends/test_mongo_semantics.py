"""The storage contract, checked on MongoBackend (classic and pipeline paths) and MemoryBackend.

Every test runs on every store in ``STORE_KINDS``; the in-memory backend is
the reference, so a difference in behaviour shows up as one failing variant.
Server time is the store's fake clock throughout.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from mongoelector.backends import Capability, LeaseRequest, MemberRecord, MemberStatusBackend
from tests.backends.mongo_support import STORE_KINDS, Store, make_store

TTL = 10.0


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Store:
    return make_store(request.param, monkeypatch)


def ask(owner: str, key: str = "job", ttl: float = TTL, **extra: object) -> LeaseRequest:
    return LeaseRequest(key=key, owner=owner, ttl=ttl, **extra)  # type: ignore[arg-type]


def test_a_free_key_is_acquired_with_server_times(store: Store) -> None:
    now = store.clock.now()
    result = store.backend.compare_and_set(ask("a", host="h1", pid=7, metadata={"role": "x"}))
    assert result.acquired
    record = result.record
    assert record.owner == "a"
    assert record.token >= 1
    assert record.acquired_at == now
    assert record.expires_at == now + timedelta(seconds=TTL)
    assert (record.host, record.pid, dict(record.metadata)) == ("h1", 7, {"role": "x"})
    assert store.backend.get("job") == record


def test_a_held_key_is_refused_and_left_unchanged(store: Store) -> None:
    held = store.backend.compare_and_set(ask("a")).record
    store.clock.advance(TTL - 0.001)
    refused = store.backend.compare_and_set(ask("b"))
    assert not refused.acquired
    assert refused.record == held
    assert store.backend.get("job") == held


def test_the_holder_asking_again_is_refused_but_sees_itself(store: Store) -> None:
    held = store.backend.compare_and_set(ask("a")).record
    again = store.backend.compare_and_set(ask("a"))
    assert not again.acquired
    assert again.record == held


def test_an_expired_lease_is_taken_over_with_a_greater_token(store: Store) -> None:
    first = store.backend.compare_and_set(ask("a")).record
    store.clock.advance(TTL)
    second = store.backend.compare_and_set(ask("b"))
    assert second.acquired
    assert second.record.owner == "b"
    assert second.record.token > first.token
    assert store.backend.renew("job", "a", first.token, TTL) is None


def test_a_released_lease_keeps_its_token_and_can_be_taken(store: Store) -> None:
    first = store.backend.compare_and_set(ask("a")).record
    assert store.backend.release("job", "a", token=first.token) is True
    released = store.backend.get("job")
    assert released.owner is None
    assert released.token == first.token
    second = store.backend.compare_and_set(ask("b"))
    assert second.acquired
    assert second.record.token > first.token


def test_force_takes_a_live_lease(store: Store) -> None:
    first = store.backend.compare_and_set(ask("a")).record
    forced = store.backend.compare_and_set(ask("b"), force=True)
    assert forced.acquired
    assert forced.record.token > first.token
    assert store.backend.renew("job", "a", first.token, TTL) is None
    assert store.backend.release("job", "a", token=first.token) is False
    assert store.backend.get("job").owner == "b"


def test_renew_moves_the_expiry_from_now(store: Store) -> None:
    record = store.backend.compare_and_set(ask("a")).record
    store.clock.advance(4)
    renewed = store.backend.renew("job", "a", record.token, 20)
    assert renewed.expires_at == store.clock.now() + timedelta(seconds=20)
    assert renewed.token == record.token
    assert renewed.acquired_at == record.acquired_at


def test_renew_is_refused_to_another_owner_or_token(store: Store) -> None:
    record = store.backend.compare_and_set(ask("a")).record
    assert store.backend.renew("job", "b", record.token, TTL) is None
    assert store.backend.renew("job", "a", record.token + 1, TTL) is None
    assert store.backend.renew("other", "a", record.token, TTL) is None
    assert store.backend.get("job") == record


def test_release_is_refused_to_another_owner_unless_forced(store: Store) -> None:
    record = store.backend.compare_and_set(ask("a")).record
    assert store.backend.release("job", "b") is False
    assert store.backend.get("job") == record
    assert store.backend.release("job", None, force=True) is True
    assert store.backend.get("job").owner is None


def test_releasing_an_expired_lease_reports_no_live_holding(store: Store) -> None:
    record = store.backend.compare_and_set(ask("a")).record
    store.clock.advance(TTL + 1)
    assert store.backend.release("job", "a", token=record.token) is False
    assert store.backend.get("job").owner is None


def test_tokens_keep_growing_when_the_record_is_deleted(store: Store) -> None:
    tokens = []
    for round_number in range(4):
        result = store.backend.compare_and_set(ask(f"owner-{round_number}"))
        assert result.acquired
        tokens.append(result.record.token)
        store.delete("job")
        if round_number % 2:
            store.clock.advance(0.5)
    assert tokens == sorted(set(tokens))


def test_tokens_keep_growing_across_processes_when_the_record_is_deleted(store: Store) -> None:
    assert store.peer is not None
    first = store.backend.compare_and_set(ask("a")).record
    store.delete("job")
    store.clock.advance(0.001)
    second = store.peer().compare_and_set(ask("b"))
    assert second.acquired
    assert second.record.token > first.token


def test_unknown_keys_read_as_none(store: Store) -> None:
    assert store.backend.get("nothing") is None


def test_keys_are_independent(store: Store) -> None:
    assert store.backend.compare_and_set(ask("a", key="one")).acquired
    assert store.backend.compare_and_set(ask("b", key="two")).acquired
    assert store.backend.get("one").owner == "a"


@pytest.mark.parametrize("key", [{"$gt": ""}, "", None, 5])
def test_bad_keys_are_rejected_before_anything_is_written(store: Store, key: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        store.backend.get(key)  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError)):
        store.backend.renew(key, "a", 1, TTL)  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError)):
        store.backend.release(key, "a")  # type: ignore[arg-type]
    if store.collection is not None:
        assert store.collection.count_documents({}) == 0


def test_members_report_and_lapse(store: Store) -> None:
    assert Capability.MEMBER_STATUS in store.backend.capabilities
    assert isinstance(store.backend, MemberStatusBackend)

    def member(uuid: str, leading: bool) -> MemberRecord:
        return MemberRecord(
            key="svc",
            uuid=uuid,
            host="h",
            pid=1,
            is_leader=leading,
            elector_running=True,
            ttl=5,
            token=9 if leading else None,
            app_version="2.0",
        )

    store.backend.report_member(member("m1", True))
    store.clock.advance(1)
    store.backend.report_member(member("m2", False))
    listed = store.backend.members("svc")
    assert [m.uuid for m in listed] == ["m2", "m1"]
    assert listed[1].token == 9
    assert listed[1].timestamp == store.clock.now() - timedelta(seconds=1)
    assert listed[0].app_version == "2.0"
    assert store.backend.members("other") == []
    store.clock.advance(4.5)
    assert [m.uuid for m in store.backend.members("svc")] == ["m2"]
