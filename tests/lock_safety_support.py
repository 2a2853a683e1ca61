"""Thin wrapping backends for the Lock-safety scenarios: replies that come late or never.

Each wrapper forwards to a real backend and can hold one kind of call back,
the way a slow network or a lost reply would, so a scenario can run every
interleaving it needs without a store fault.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime
from typing import Any

from mongoelector.backends import CasResult, LeaseRecord, LeaseRequest, StorageBackend
from mongoelector.errors import AmbiguousOutcome

#: Real seconds a scenario waits for another thread before it calls the run hung.
HANG_GUARD = 10.0


class Wrapped:
    """A backend wrapper that counts calls and can hold back or lose them.

    - ``lose_release``: the next ``release`` raises ``AmbiguousOutcome`` without
      being applied; :meth:`land_lost_releases` applies it later, as a delayed
      write would land.
    - ``hold_release``: the next ``release`` waits until :meth:`let_go` before
      it is applied and answered (a slow reply).
    - ``hold_cas``: the next ``compare_and_set`` waits until :meth:`let_go`.
    - ``ambiguous``: set of operation names that apply, then raise
      ``AmbiguousOutcome`` (the reply was lost).
    """

    def __init__(self, inner: StorageBackend) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.lose_release = False
        self.hold_release = False
        self.hold_cas = False
        self.ambiguous: set[str] = set()
        self.lost: list[tuple[str, str | None, int | None]] = []
        self.held = threading.Event()  # set while a call is being held back
        self._go = threading.Event()
        self._mutex = threading.Lock()

    @property
    def capabilities(self) -> Any:
        return self.inner.capabilities

    def let_go(self) -> None:
        self._go.set()

    def land_lost_releases(self) -> None:
        for key, owner, token in self.lost:
            self.inner.release(key, owner, token=token)
        self.lost.clear()

    def _count(self, name: str) -> None:
        with self._mutex:
            self.calls[name] += 1

    def _wait(self) -> None:
        self.held.set()
        if not self._go.wait(HANG_GUARD):
            raise AssertionError("a held call was never let go")

    def server_time(self) -> datetime:
        return self.inner.server_time()

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        self._count("compare_and_set")
        if self.hold_cas:
            self.hold_cas = False
            self._wait()
        result = self.inner.compare_and_set(request, force=force)
        if "compare_and_set" in self.ambiguous:
            raise AmbiguousOutcome("compare_and_set: the reply was lost")
        return result

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        self._count("renew")
        result = self.inner.renew(key, owner, token, ttl)
        if "renew" in self.ambiguous:
            raise AmbiguousOutcome("renew: the reply was lost")
        return result

    def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        self._count("release")
        if self.lose_release:
            self.lose_release = False
            self.lost.append((key, owner, token))
            raise AmbiguousOutcome("release: sent, and the reply was lost")
        if self.hold_release:
            self.hold_release = False
            self._wait()
        return self.inner.release(key, owner, token=token, force=force)

    def get(self, key: str) -> LeaseRecord | None:
        self._count("get")
        return self.inner.get(key)
