"""A 1.x node and a 2.x node on the same collection and key never both hold the lock.

The 1.x node is :class:`mongo_support.LegacyNode`: it writes the documents and
runs the queries 1.x runs (insert to acquire, delete to release, a TTL sweep
of expired documents). Both 2.x write paths are checked.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from mongoelector.backends import LeaseRecord, LeaseRequest
from tests.backends.mongo_support import MONGO_KINDS, LegacyNode, Store, make_store

TTL = 10.0


@pytest.fixture(params=MONGO_KINDS)
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Store:
    return make_store(request.param, monkeypatch)


@pytest.fixture
def legacy(store: Store) -> LegacyNode:
    return LegacyNode(store.collection, "job", store.clock, ttl=TTL)


def ask(owner: str) -> LeaseRequest:
    return LeaseRequest(key="job", owner=owner, ttl=TTL)


def test_a_live_1x_lock_refuses_2x(store: Store, legacy: LegacyNode) -> None:
    assert legacy.acquire()
    before = store.collection.find_one({"_id": "job"})
    store.clock.advance(TTL - 0.01)
    refused = store.backend.compare_and_set(ask("new"))
    assert not refused.acquired
    assert refused.record.owner == legacy.uuid
    assert refused.record.token == 0
    assert refused.record.host == legacy.host
    assert store.collection.find_one({"_id": "job"}) == before
    assert legacy.owned()


def test_a_1x_lock_has_no_acquisition_id(store: Store, legacy: LegacyNode) -> None:
    """1.x writes no acquisition id: 2.x reads its holding as one no 2.x attempt wrote."""
    assert legacy.acquire()
    record = store.backend.get("job")
    assert record is not None and record.owner == legacy.uuid
    assert record.acquisition is None
    refused = store.backend.compare_and_set(ask("new"))
    assert refused.record is not None and refused.record.acquisition is None


def test_2x_takes_an_expired_1x_lock_without_waiting_for_the_ttl_monitor(
    store: Store, legacy: LegacyNode
) -> None:
    assert legacy.acquire()
    store.clock.advance(TTL)
    taken = store.backend.compare_and_set(ask("new"))
    assert taken.acquired
    assert taken.record.token > 0
    assert not legacy.owned()
    assert legacy.touch() is None
    assert legacy.locked()


def test_a_1x_node_cannot_acquire_while_2x_holds(store: Store, legacy: LegacyNode) -> None:
    assert store.backend.compare_and_set(ask("new")).acquired
    assert not legacy.acquire()
    assert legacy.locked()
    assert not legacy.owned()
    store.clock.advance(TTL - 0.01)
    legacy.sweep_expired()
    assert not legacy.acquire()


def test_after_a_2x_release_1x_gets_the_lock_once_the_document_is_swept(
    store: Store, legacy: LegacyNode
) -> None:
    record = store.backend.compare_and_set(ask("new")).record
    assert store.backend.release("job", "new", token=record.token)
    assert not legacy.locked()
    store.clock.advance(0.01)
    legacy.sweep_expired()
    assert legacy.acquire()
    assert not store.backend.compare_and_set(ask("new")).acquired


def test_a_1x_forced_acquire_ends_the_2x_holding_and_tokens_still_grow(
    store: Store, legacy: LegacyNode
) -> None:
    record = store.backend.compare_and_set(ask("new")).record
    assert legacy.acquire(force=True)
    assert store.backend.renew("job", "new", record.token, TTL) is None
    assert store.backend.get("job").owner == legacy.uuid
    store.clock.advance(TTL)
    again = store.peer().compare_and_set(ask("newer"))
    assert again.acquired
    assert again.record.token > record.token


def test_a_1x_forced_release_ends_the_2x_holding(store: Store, legacy: LegacyNode) -> None:
    record = store.backend.compare_and_set(ask("new")).record
    legacy.release(force=True)
    assert store.backend.renew("job", "new", record.token, TTL) is None
    store.clock.advance(0.001)
    again = store.peer().compare_and_set(ask("newer"))
    assert again.acquired
    assert again.record.token > record.token


def test_documents_written_by_1x_read_as_records(store: Store, legacy: LegacyNode) -> None:
    assert legacy.acquire()
    record = store.backend.get("job")
    assert record.owner == legacy.uuid
    assert record.token == 0
    assert record.pid == legacy.pid
    assert record.acquired_at == store.clock.now()
    assert record.expires_at == store.clock.now() + timedelta(seconds=TTL)
    assert record.acquired_at.tzinfo is not None


class Believer:
    """A 2.x node at the storage level: it believes it holds until its lease's expiry."""

    def __init__(self, name: str, backend: object) -> None:
        self.name = name
        self.backend = backend
        self.record: LeaseRecord | None = None

    def believes(self, now: object) -> bool:
        return self.record is not None and self.record.expires_at > now


@pytest.mark.parametrize("seed", range(6))
def test_mixed_1x_and_2x_nodes_never_both_hold(store: Store, seed: int) -> None:
    rng = random.Random(seed)
    olds = [LegacyNode(store.collection, "job", store.clock, ttl=TTL) for _ in range(2)]
    news = [Believer("n0", store.backend), Believer("n1", store.peer())]
    tokens: list[int] = []
    for _ in range(400):
        node = rng.choice([*olds, *news])
        action = rng.random()
        if isinstance(node, LegacyNode):
            if action < 0.4:
                node.acquire()
            elif action < 0.7:
                node.touch()
            elif action < 0.85:
                node.release()
            else:
                node.sweep_expired()
        elif action < 0.5:
            result = node.backend.compare_and_set(ask(node.name))
            if result.acquired:
                assert all(result.record.token > token for token in tokens)
                tokens.append(result.record.token)
                node.record = result.record
        elif action < 0.8:
            if node.record is not None:
                node.record = node.backend.renew("job", node.name, node.record.token, TTL)
        elif node.record is not None:
            node.backend.release("job", node.name, token=node.record.token)
            node.record = None
        store.clock.advance(rng.choice([0, 0.001, 0.4, 1, 2.7, TTL / 3, TTL]))
        now = store.clock.now()
        holders = [old.uuid for old in olds if old.owned()]
        holders += [new.name for new in news if new.believes(now)]
        assert len(holders) <= 1, holders
    assert len(tokens) > 3
