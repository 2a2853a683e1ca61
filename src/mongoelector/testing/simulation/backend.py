"""A node's link to the shared store, through which faults are injected.

Every call a node makes goes through a :class:`CallRouter`, which decides the
call's fate: how much true time passes before and after it reaches the store,
whether it reaches it at all, and what the node gets back (the result, or a
:class:`~mongoelector.errors.BackendUnavailable` or
:class:`~mongoelector.errors.AmbiguousOutcome`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol, TypeVar

from mongoelector.backends.protocol import (
    Capability,
    CasResult,
    GetManyBackend,
    LeaseRecord,
    LeaseRequest,
    RenewItem,
    RenewManyBackend,
    StorageBackend,
)

__all__ = ["CallRouter", "FaultInjectingBackend"]

_T = TypeVar("_T")


class CallRouter(Protocol):
    """Carries one call from ``node`` to the store, or fails it."""

    def call(self, node: str, operation: str, write: bool, apply: Callable[[], _T]) -> _T:
        """Return ``apply()`` as run against the store, or raise a ``BackendError``.

        ``write`` says whether the call may change the store (only writes can
        have ambiguous outcomes). ``apply`` runs at most once.
        """
        ...


class FaultInjectingBackend:
    """``store`` as seen by ``node``: a :class:`StorageBackend` whose calls ``router`` carries.

    Declares ``RENEW_MANY`` (the store's ``renew_many``, carried as one call:
    its faults are the whole batch's), so a node's auto-renewed locks and
    leading started electors renew together as in production, and
    ``GET_MANY`` (``get_many``, one read call, faults likewise), so its
    following started electors read their records together; no other optional
    capability (status reports are not part of what a simulation checks).
    """

    capabilities: frozenset[Capability] = frozenset({Capability.RENEW_MANY, Capability.GET_MANY})

    def __init__(self, store: StorageBackend, *, node: str, router: CallRouter) -> None:
        self._store = store
        self._node = node
        self._router = router

    @property
    def node(self) -> str:
        return self._node

    def server_time(self) -> datetime:
        return self._router.call(self._node, "server_time", False, self._store.server_time)

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        store = self._store
        return self._router.call(
            self._node,
            "forced compare_and_set" if force else "compare_and_set",
            True,
            lambda: store.compare_and_set(request, force=force),
        )

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        store = self._store
        return self._router.call(
            self._node, "renew", True, lambda: store.renew(key, owner, token, ttl)
        )

    def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        store = self._store
        return self._router.call(
            self._node,
            "release",
            True,
            lambda: store.release(key, owner, token=token, force=force),
        )

    def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        store = self._store
        assert isinstance(store, RenewManyBackend)
        return self._router.call(self._node, "renew_many", True, lambda: store.renew_many(items))

    def get_many(self, keys: Sequence[str]) -> dict[str, LeaseRecord | None]:
        store = self._store
        assert isinstance(store, GetManyBackend)
        return self._router.call(self._node, "get_many", False, lambda: store.get_many(keys))

    def get(self, key: str) -> LeaseRecord | None:
        store = self._store
        return self._router.call(self._node, "get", False, lambda: store.get(key))

    def __repr__(self) -> str:
        return f"FaultInjectingBackend(node={self._node!r}, store={self._store!r})"
