"""Which backends renew in batches, and what one ``renew_many`` reply means for each holding."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest

from mongoelector._common import batches
from mongoelector._common.batches import (
    failed_batch,
    outcomes_of,
    overrides_renew_alone,
    renews_in_batches,
    store_of,
)
from mongoelector._common.outcomes import Failure
from mongoelector.backends import Capability, LeaseRecord, MemoryBackend, RenewItem
from mongoelector.backends.async_protocol import InlineBackend, as_async_backend
from mongoelector.errors import AmbiguousOutcome, BackendUnavailable
from mongoelector.testing import FakeClock
from mongoelector.testing.aio import BlockingBackend, EventLoopThread
from tests.fakes import FlakyBackend

RECORD = LeaseRecord(key="k", owner="me", token=1, acquired_at=None, expires_at=None)


class CountsRenewals(MemoryBackend):
    """Overrides ``renew`` alone: its inherited ``renew_many`` would bypass the count."""

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        return super().renew(key, owner, token, ttl)


class CountsBoth(CountsRenewals):
    def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        return super().renew_many(items)


class TestWhoRenewsInBatches:
    def test_a_backend_that_declares_and_has_renew_many(self) -> None:
        assert renews_in_batches(MemoryBackend(FakeClock()))

    def test_one_that_does_not_declare_it(self) -> None:
        class Undeclared(MemoryBackend):
            capabilities = MemoryBackend.capabilities - {Capability.RENEW_MANY}

        assert not renews_in_batches(Undeclared(FakeClock()))

    def test_one_that_declares_it_without_the_method(self) -> None:
        class Declares:
            capabilities = frozenset({Capability.RENEW_MANY})

        assert not renews_in_batches(Declares())

    def test_one_whose_capabilities_cannot_be_read(self) -> None:
        class Broken(MemoryBackend):
            @property
            def capabilities(self) -> Any:  # type: ignore[override]
                raise RuntimeError("broken")

        assert not renews_in_batches(Broken(FakeClock()))

    def test_a_subclass_that_overrides_renew_alone(self) -> None:
        assert overrides_renew_alone(CountsRenewals(FakeClock()))
        assert not renews_in_batches(CountsRenewals(FakeClock()))
        assert not renews_in_batches(as_async_backend(CountsRenewals(FakeClock())))

    def test_a_subclass_that_overrides_both(self) -> None:
        assert not overrides_renew_alone(CountsBoth(FakeClock()))
        assert renews_in_batches(CountsBoth(FakeClock()))

    def test_an_instance_whose_renew_was_replaced(self) -> None:
        store = MemoryBackend(FakeClock())
        store.renew = lambda *args: None  # type: ignore[method-assign]
        assert not renews_in_batches(store)
        store.renew_many = lambda items: []  # type: ignore[method-assign]
        assert renews_in_batches(store)

    def test_a_blocking_view_is_looked_through_to_the_stores_it_wraps(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """BlockingBackend's renew_many calls its async store's, which calls the sync store's
        (InlineBackend): a renew replaced at any layer is renewed key by key."""
        with EventLoopThread() as loop:
            below_inline = BlockingBackend(as_async_backend(CountsRenewals(FakeClock())), loop)
            assert Capability.RENEW_MANY in below_inline.capabilities
            assert not renews_in_batches(below_inline)

            class CountsInline(InlineBackend):
                async def renew(self, key: str, owner: str, token: int, ttl: float) -> Any:
                    return await super().renew(key, owner, token, ttl)

            async_layer = BlockingBackend(CountsInline(MemoryBackend(FakeClock())), loop)
            assert not renews_in_batches(async_layer)
            assert renews_in_batches(
                BlockingBackend(as_async_backend(CountsBoth(FakeClock())), loop)
            )
            # mutation: look at the view alone (and an InlineBackend's store), as before
            monkeypatch.setattr(batches, "_layers", lambda backend: [backend, store_of(backend)])
            assert renews_in_batches(below_inline) and renews_in_batches(async_layer)

    def test_the_flaky_test_double_does_not_declare_it(self) -> None:
        assert not renews_in_batches(FlakyBackend(MemoryBackend(FakeClock())))

    def test_the_store_of_an_inline_adapter_is_what_it_wraps(self) -> None:
        store = MemoryBackend(FakeClock())
        assert store_of(as_async_backend(store)) is store
        assert store_of(store) is store

        class Own(InlineBackend):
            """A user's adapter (say one that injects faults): a store of its own."""

        own = Own(store)
        assert store_of(own) is own


class TestOutcomes:
    def test_a_reply_of_one_record_or_none_per_item_is_each_items(self) -> None:
        assert outcomes_of(object(), 2, [RECORD, None]) == [RECORD, None]

    @pytest.mark.parametrize(
        "reply", [[RECORD], [RECORD, None, None], (RECORD, None), None, [1, 2]]
    )
    def test_any_other_reply_is_an_ambiguous_failure_of_each(
        self, reply: object, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.ERROR, logger="mongoelector.backend"):
            outcomes = outcomes_of(object(), 2, reply)
        assert len(outcomes) == 2
        assert all(isinstance(o, Failure) and o.ambiguous for o in outcomes)
        assert "treating it as ambiguous" in caplog.text

    @pytest.mark.parametrize(
        ("error", "ambiguous"),
        [(BackendUnavailable("down"), False), (AmbiguousOutcome("lost"), True)],
    )
    def test_a_failed_call_is_each_items_failure_as_raised(
        self, error: Exception, ambiguous: bool
    ) -> None:
        outcomes = failed_batch(object(), 3, error)
        assert len(outcomes) == 3
        for outcome in outcomes:
            assert isinstance(outcome, Failure)
            assert outcome.error is error and outcome.ambiguous is ambiguous

    def test_a_non_backend_error_is_ambiguous(self) -> None:
        outcomes = failed_batch(object(), 1, ValueError("a bug"))
        assert isinstance(outcomes[0], Failure) and outcomes[0].ambiguous
