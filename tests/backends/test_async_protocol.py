"""as_async_backend: async stores pass through; sync ones are called inline; others refused."""

from __future__ import annotations

import asyncio

import pytest

from mongoelector.backends import (
    Capability,
    LeaseRequest,
    MemberRecord,
    MemoryBackend,
    RenewItem,
)
from mongoelector.backends.async_protocol import (
    AsyncMemberStatusBackend,
    AsyncStorageBackend,
    InlineBackend,
    as_async_backend,
)
from mongoelector.testing import FakeClock
from tests.aio.doubles import GatedBackend
from tests.fakes import FlakyBackend


def test_a_sync_backend_is_wrapped_and_an_async_one_returned_as_is() -> None:
    memory = MemoryBackend(FakeClock())
    wrapped = as_async_backend(memory)
    assert isinstance(wrapped, InlineBackend) and wrapped.wrapped is memory
    assert isinstance(wrapped, AsyncStorageBackend)
    gated = GatedBackend(memory)
    assert as_async_backend(gated) is gated
    assert as_async_backend(wrapped) is wrapped


def test_the_inline_adapter_calls_the_store_without_suspending() -> None:
    clock = FakeClock()
    memory = MemoryBackend(clock)
    adapter = InlineBackend(memory)
    request = LeaseRequest(key="k", owner="me", ttl=10)

    async def scenario() -> None:
        result = await adapter.compare_and_set(request)
        assert result.acquired and result.record is not None
        renewed = await adapter.renew("k", "me", result.record.token, 20)
        assert renewed is not None and await adapter.get("k") == renewed
        assert await adapter.server_time() == clock.now()
        assert await adapter.release("k", "me", token=renewed.token) is True
        member = MemberRecord(
            key="k", uuid="me", host="h", pid=1, is_leader=False, elector_running=True, ttl=5
        )
        await adapter.report_member(member)
        assert [m.uuid for m in await adapter.members("k")] == ["me"]

    asyncio.run(scenario())
    assert isinstance(adapter, AsyncMemberStatusBackend)
    assert Capability.MEMBER_STATUS in adapter.capabilities


def test_member_status_is_not_claimed_for_a_store_without_it() -> None:
    class LeasesOnly:
        # Claims them, but has none of their methods.
        capabilities = frozenset(
            {Capability.MEMBER_STATUS, Capability.RENEW_MANY, Capability.GET_MANY}
        )

        def __init__(self) -> None:
            self.inner = MemoryBackend(FakeClock())

        def server_time(self):  # type: ignore[no-untyped-def]
            return self.inner.server_time()

        def compare_and_set(self, request, *, force=False):  # type: ignore[no-untyped-def]
            return self.inner.compare_and_set(request, force=force)

        def renew(self, key, owner, token, ttl):  # type: ignore[no-untyped-def]
            return self.inner.renew(key, owner, token, ttl)

        def release(self, key, owner, *, token=None, force=False):  # type: ignore[no-untyped-def]
            return self.inner.release(key, owner, token=token, force=force)

        def get(self, key):  # type: ignore[no-untyped-def]
            return self.inner.get(key)

    adapter = InlineBackend(LeasesOnly())  # type: ignore[arg-type]
    assert Capability.MEMBER_STATUS not in adapter.capabilities
    with pytest.raises(TypeError, match="member status"):
        asyncio.run(adapter.members("k"))
    assert not {Capability.RENEW_MANY, Capability.GET_MANY} & adapter.capabilities
    with pytest.raises(TypeError, match="batches"):
        asyncio.run(adapter.renew_many([]))
    with pytest.raises(TypeError, match="batches"):
        asyncio.run(adapter.get_many([]))


def test_the_inline_adapter_passes_batches_through() -> None:
    memory = MemoryBackend(FakeClock())
    adapter = InlineBackend(memory)
    record = memory.compare_and_set(LeaseRequest(key="k", owner="me", ttl=5)).record
    assert record is not None

    renewed = asyncio.run(adapter.renew_many([RenewItem(key="k", owner="me", token=1, ttl=9)]))

    assert {Capability.RENEW_MANY, Capability.GET_MANY} <= adapter.capabilities
    assert renewed == [memory.get("k")]
    assert asyncio.run(adapter.get_many(["k", "none"])) == {"k": memory.get("k"), "none": None}


def test_objects_that_are_not_backends_are_refused_naming_what_is_missing() -> None:
    with pytest.raises(TypeError, match="compare_and_set"):
        as_async_backend(object())
    with pytest.raises(TypeError, match="compare_and_set"):
        InlineBackend(object())  # type: ignore[arg-type]


def test_a_backend_mixing_coroutines_and_plain_methods_is_refused() -> None:
    class Mixed(FlakyBackend):
        async def get(self, key: str) -> None:  # type: ignore[override]
            return None

    with pytest.raises(TypeError, match=r"mixes coroutine and plain operations.*get"):
        as_async_backend(Mixed(MemoryBackend(FakeClock())))
