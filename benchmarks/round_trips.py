"""Counts store operations per lock operation and per elector poll (machine-independent).

Run: ``.venv/bin/python benchmarks/round_trips.py``. Uses the in-memory backend
behind a counting proxy, so the figures are exact counts, not timings.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from mongoelector import LeaderElector, Lock
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock


class CountingProxy:
    """Forwards every attribute to ``inner``; counts calls of its methods by name."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value) or name == "capabilities":
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return value(*args, **kwargs)

        return counted

    def take(self) -> dict[str, int]:
        taken = dict(self.calls)
        self.calls.clear()
        return taken


def main() -> int:
    clock = FakeClock()
    store = CountingProxy(MemoryBackend(clock))
    rows: list[tuple[str, dict[str, int]]] = []

    lock = Lock("bench", store, ttl=30, clock=clock)  # type: ignore[arg-type]
    lock.acquire()
    rows.append(("Lock.acquire (uncontended)", store.take()))
    lock.touch()
    rows.append(("Lock.touch (renew)", store.take()))
    lock.release()
    rows.append(("Lock.release", store.take()))

    leader = LeaderElector("svc", store, clock=clock, report_status=False)  # type: ignore[arg-type]
    follower = LeaderElector("svc", store, clock=clock, report_status=False)  # type: ignore[arg-type]
    leader.poll()
    follower.poll()
    store.take()
    clock.advance(2)
    leader.poll()
    rows.append(("leader poll (status off)", store.take()))
    follower.poll()
    rows.append(("follower poll (status off)", store.take()))
    _ = leader.is_leader, leader.leader_exists, leader.token
    rows.append(("is_leader + leader_exists + token", store.take()))

    width = max(len(name) for name, _ in rows)
    print(f"{'operation':<{width}}  store calls")
    for name, calls in rows:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(calls.items())) or "-"
        print(f"{name:<{width}}  {sum(calls.values())}  ({detail})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
