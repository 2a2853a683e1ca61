"""MemoryBackend keeps the storage contract, with server time from its clock."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from mongoelector.backends import (
    Capability,
    LeaseRequest,
    MemberRecord,
    MemoryBackend,
    RenewItem,
    StorageBackend,
    require_backend,
)
from mongoelector.backends import memory as memory_module
from mongoelector.testing import FakeClock


def req(owner: str, ttl: float = 10, key: str = "k") -> LeaseRequest:
    return LeaseRequest(key=key, owner=owner, ttl=ttl, host="h", pid=1)


def test_it_implements_the_protocol(backend: MemoryBackend) -> None:
    assert isinstance(backend, StorageBackend)
    assert require_backend(backend) is backend
    assert Capability.MEMBER_STATUS in backend.capabilities


def test_server_time_is_the_clock(backend: MemoryBackend, clock: FakeClock) -> None:
    assert backend.server_time() == clock.now()


def test_first_acquire_wins_with_token_one(backend: MemoryBackend, clock: FakeClock) -> None:
    result = backend.compare_and_set(req("a"))
    assert result.acquired
    assert result.record is not None
    assert (result.record.owner, result.record.token) == ("a", 1)
    assert result.record.expires_at == clock.now() + timedelta(seconds=10)


def test_held_lease_is_refused_with_the_holder(backend: MemoryBackend) -> None:
    backend.compare_and_set(req("a"))
    result = backend.compare_and_set(req("b"))
    assert not result.acquired
    assert result.record is not None and result.record.owner == "a"


def test_the_holder_itself_is_refused_too(backend: MemoryBackend) -> None:
    backend.compare_and_set(req("a"))
    assert not backend.compare_and_set(req("a")).acquired


def test_expired_lease_is_taken_over_in_one_call(backend: MemoryBackend, clock: FakeClock) -> None:
    backend.compare_and_set(req("a"))
    clock.advance(9.999)
    assert not backend.compare_and_set(req("b")).acquired
    clock.advance(0.001)
    result = backend.compare_and_set(req("b"))
    assert result.acquired and result.record is not None and result.record.token == 2


def test_tokens_increase_across_release_expiry_force_and_deletion(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    tokens = []

    def take(owner: str, force: bool = False) -> None:
        result = backend.compare_and_set(req(owner), force=force)
        assert result.acquired and result.record is not None
        tokens.append(result.record.token)

    take("a")
    backend.release("k", "a")
    take("b")
    clock.advance(11)
    take("c")
    take("d", force=True)
    backend.delete("k")
    take("e")
    assert tokens == sorted(set(tokens)) and len(tokens) == 5


def test_renew_extends_only_the_owners_current_holding(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    backend.compare_and_set(req("a"))
    clock.advance(5)
    renewed = backend.renew("k", "a", 1, 10)
    assert renewed is not None and renewed.expires_at == clock.now() + timedelta(seconds=10)
    assert backend.renew("k", "b", 1, 10) is None
    assert backend.renew("k", "a", 2, 10) is None


def test_release_needs_owner_and_matching_token_unless_forced(backend: MemoryBackend) -> None:
    backend.compare_and_set(req("a"))
    assert not backend.release("k", "b")
    assert not backend.release("k", "a", token=9)
    assert backend.release("k", "a", token=1)
    assert not backend.release("k", "a")
    backend.compare_and_set(req("b"))
    assert backend.release("k", None, force=True)
    record = backend.get("k")
    assert record is not None and record.owner is None and record.token == 2


def test_keys_are_independent(backend: MemoryBackend) -> None:
    assert backend.compare_and_set(req("a", key="x")).acquired
    assert backend.compare_and_set(req("b", key="y")).acquired


@pytest.mark.parametrize(
    ("key", "error"), [("", ValueError), ({"$gt": ""}, TypeError), (None, TypeError)]
)
def test_bad_keys_are_refused_before_anything_changes(
    backend: MemoryBackend, key: object, error: type
) -> None:
    with pytest.raises(error, match="key"):
        backend.get(key)  # type: ignore[arg-type]
    with pytest.raises(error, match="key"):
        backend.compare_and_set(req("a", key=key))  # type: ignore[arg-type]


def test_bad_ttl_is_refused(backend: MemoryBackend) -> None:
    with pytest.raises(ValueError, match="ttl"):
        backend.compare_and_set(req("a", ttl=0))


def test_member_reports_lapse_after_their_ttl(backend: MemoryBackend, clock: FakeClock) -> None:
    def member(uuid: str) -> MemberRecord:
        return MemberRecord(
            key="k", uuid=uuid, host="h", pid=1, is_leader=False, elector_running=True, ttl=5
        )

    backend.report_member(member("old"))
    clock.advance(3)
    backend.report_member(member("new"))
    assert [m.uuid for m in backend.members("k")] == ["new", "old"]
    clock.advance(2)
    assert [m.uuid for m in backend.members("k")] == ["new"]
    assert backend.members("other") == []


def test_require_backend_names_missing_methods() -> None:
    with pytest.raises(TypeError, match="renew"):
        require_backend(object())


def test_renew_many_stamps_every_item_at_one_instant_of_its_clock() -> None:
    """renew_many() reads the clock once: items of one ttl get one expiry while the clock runs."""

    class TickingClock(FakeClock):
        def now(self) -> datetime:
            self.advance(1)
            return super().now()

    clock = TickingClock()
    backend = MemoryBackend(clock=clock)
    held = [backend.compare_and_set(req("a", key=key)).record for key in ("k1", "k2", "k3")]
    items = [RenewItem(key=r.key, owner="a", token=r.token, ttl=10) for r in held if r]
    renewed = backend.renew_many(items)
    assert len(items) == 3
    assert len({record.expires_at for record in renewed if record}) == 1


# --- what a record keeps: issue 14 holds thousands of them in one process ----------------


class TestRecordsKeepLittle:
    def test_records_without_metadata_share_one_read_only_mapping(
        self, backend: MemoryBackend
    ) -> None:
        for key in ("a", "b"):
            assert backend.compare_and_set(req("alice", key=key)).acquired
        first, second = backend.get("a"), backend.get("b")
        assert first is not None and second is not None
        assert first.metadata is second.metadata and dict(first.metadata) == {}
        with pytest.raises(TypeError):
            first.metadata["x"] = "y"  # type: ignore[index]

    def test_the_check_catches_a_shared_mapping_that_can_be_changed(
        self, backend: MemoryBackend, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The mutation: the shared empty metadata is a plain dict (one change shows in all).
        monkeypatch.setattr(memory_module, "EMPTY_METADATA", {})
        assert backend.compare_and_set(req("alice")).acquired
        record = backend.get("k")
        assert record is not None
        record.metadata["x"] = "y"  # type: ignore[index]
        assert backend.compare_and_set(req("bob", key="other")).acquired
        other = backend.get("other")
        assert other is not None and dict(other.metadata) == {"x": "y"}

    def test_a_request_s_metadata_is_copied(self, backend: MemoryBackend) -> None:
        metadata = {"job": "nightly"}
        request = LeaseRequest(key="k", owner="alice", ttl=10, metadata=metadata)
        assert backend.compare_and_set(request).acquired
        metadata["job"] = "changed"
        record = backend.get("k")
        assert record is not None and dict(record.metadata) == {"job": "nightly"}

    def test_tokens_grow_across_release_delete_and_forced_takeover(
        self, backend: MemoryBackend
    ) -> None:
        tokens = []
        for owner, force in (("alice", False), ("bob", True)):
            result = backend.compare_and_set(req(owner), force=force)
            assert result.acquired and result.record is not None
            tokens.append(result.record.token)
        assert backend.release("k", "bob", token=tokens[-1])
        tokens.append(backend.compare_and_set(req("carol")).record.token)  # type: ignore[union-attr]
        assert backend.delete("k") and not backend.delete("k")
        tokens.append(backend.compare_and_set(req("dave")).record.token)  # type: ignore[union-attr]
        assert backend.delete("k")
        tokens.append(backend.compare_and_set(req("erin")).record.token)  # type: ignore[union-attr]
        assert tokens == [1, 2, 3, 4, 5]
