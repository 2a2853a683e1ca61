"""The fault-injecting backend hands every call to its router, and is a StorageBackend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mongoelector._common.batches import reads_in_batches, renews_in_batches
from mongoelector.backends import (
    Capability,
    LeaseRequest,
    MemoryBackend,
    RenewItem,
    require_backend,
)
from mongoelector.errors import BackendUnavailable
from mongoelector.testing import FakeClock
from mongoelector.testing.simulation import FaultInjectingBackend


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str, bool]] = []
        self.fail = fail

    def call(self, node: str, operation: str, write: bool, apply: Callable[[], Any]) -> Any:
        self.calls.append((node, operation, write))
        if self.fail:
            raise BackendUnavailable(f"{operation} cut off")
        return apply()


def test_every_operation_goes_through_the_router_saying_whether_it_writes() -> None:
    router = Recorder()
    backend = FaultInjectingBackend(MemoryBackend(clock=FakeClock()), node="n1", router=router)
    request = LeaseRequest(key="k", owner="me", ttl=10)

    backend.server_time()
    acquired = backend.compare_and_set(request)
    backend.renew("k", "me", 1, 10)
    backend.get("k")
    released = backend.release("k", "me", token=1)

    assert acquired.acquired and released
    assert router.calls == [
        ("n1", "server_time", False),
        ("n1", "compare_and_set", True),
        ("n1", "renew", True),
        ("n1", "get", False),
        ("n1", "release", True),
    ]


def test_a_failing_router_leaves_the_store_untouched() -> None:
    store = MemoryBackend(clock=FakeClock())
    backend = FaultInjectingBackend(store, node="n1", router=Recorder(fail=True))

    with pytest.raises(BackendUnavailable, match="compare_and_set cut off"):
        backend.compare_and_set(LeaseRequest(key="k", owner="me", ttl=10))
    assert store.get("k") is None


def test_it_is_a_storage_backend_that_renews_and_reads_in_batches_and_nothing_more() -> None:
    backend = FaultInjectingBackend(MemoryBackend(), node="n1", router=Recorder())

    assert require_backend(backend) is backend
    assert backend.capabilities == frozenset({Capability.RENEW_MANY, Capability.GET_MANY})
    assert renews_in_batches(backend) and reads_in_batches(backend)
    assert backend.node == "n1"


def test_a_batch_of_renewals_is_one_call_whose_fault_is_the_whole_batchs() -> None:
    store = MemoryBackend(clock=FakeClock())
    router = Recorder()
    backend = FaultInjectingBackend(store, node="n1", router=router)
    tokens = [
        store.compare_and_set(LeaseRequest(key=k, owner="me", ttl=10)).record.token
        for k in ("a", "b")
    ]
    items = [
        RenewItem(key=k, owner="me", token=t, ttl=10) for k, t in zip("ab", tokens, strict=True)
    ]

    renewed = backend.renew_many(items)
    router.fail = True
    with pytest.raises(BackendUnavailable, match="renew_many cut off"):
        backend.renew_many(items)

    assert [record is not None for record in renewed] == [True, True]
    assert router.calls == [("n1", "renew_many", True), ("n1", "renew_many", True)]


def test_a_read_of_many_keys_is_one_call_whose_fault_is_the_whole_reads() -> None:
    store = MemoryBackend(clock=FakeClock())
    router = Recorder()
    backend = FaultInjectingBackend(store, node="n1", router=router)
    token = store.compare_and_set(LeaseRequest(key="a", owner="me", ttl=10)).record.token

    read = backend.get_many(["a", "b"])
    router.fail = True
    with pytest.raises(BackendUnavailable, match="get_many cut off"):
        backend.get_many(["a", "b"])

    assert read["b"] is None
    assert read["a"] is not None and read["a"].token == token
    assert router.calls == [("n1", "get_many", False), ("n1", "get_many", False)]
