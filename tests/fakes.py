"""Test doubles: a backend wrapper that counts calls and fails on demand."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from mongoelector.backends import (
    Capability,
    CasResult,
    LeaseRecord,
    LeaseRequest,
    MemberRecord,
    MemoryBackend,
)
from mongoelector.errors import AmbiguousOutcome, BackendUnavailable


class FlakyBackend:
    """Wraps a MemoryBackend; counts calls; can fail definitely or ambiguously.

    ``mode`` is ``"ok"``, ``"down"`` (raise BackendUnavailable, nothing applied),
    ``"lost-reply"`` (apply, then raise AmbiguousOutcome) or ``"no-apply"``
    (raise AmbiguousOutcome without applying).
    """

    def __init__(self, inner: MemoryBackend) -> None:
        self.inner = inner
        self.mode = "ok"
        self.calls: Counter[str] = Counter()
        self.before_call: Callable[[str], None] | None = None
        self._lock = threading.Lock()

    @property
    def capabilities(self) -> frozenset[Capability]:
        # No batch calls here (each call is counted and failed by name): a lock renews key by key.
        return self.inner.capabilities - {Capability.RENEW_MANY, Capability.GET_MANY}

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def _enter(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1
        if self.before_call is not None:
            self.before_call(name)
        if self.mode == "down":
            raise BackendUnavailable(f"{name}: store unreachable")
        if self.mode == "no-apply":
            raise AmbiguousOutcome(f"{name}: connection dropped before the write")

    def _leave(self, name: str) -> None:
        if self.mode == "lost-reply":
            raise AmbiguousOutcome(f"{name}: connection dropped after the write")

    def server_time(self) -> datetime:
        self._enter("server_time")
        return self.inner.server_time()

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        self._enter("compare_and_set")
        result = self.inner.compare_and_set(request, force=force)
        self._leave("compare_and_set")
        return result

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        self._enter("renew")
        result = self.inner.renew(key, owner, token, ttl)
        self._leave("renew")
        return result

    def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        self._enter("release")
        result = self.inner.release(key, owner, token=token, force=force)
        self._leave("release")
        return result

    def get(self, key: str) -> LeaseRecord | None:
        if self.mode == "lost-reply":
            return self.inner.get(key)  # reads have nothing to lose
        self._enter("get")
        return self.inner.get(key)

    def report_member(self, member: MemberRecord) -> None:
        self._enter("report_member")
        self.inner.report_member(member)

    def members(self, key: str) -> list[MemberRecord]:
        self._enter("members")
        return self.inner.members(key)


def wait_for(predicate: Callable[[], bool], *, limit: float = 10.0) -> bool:
    """Wait in real time (a hang guard, not a timing assertion) until ``predicate()``."""
    done = threading.Event()
    for _ in range(int(limit / 0.005)):
        if predicate():
            return True
        done.wait(0.005)
    return predicate()
