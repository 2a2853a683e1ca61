"""Threads, memory, acquire time and renewals of N auto-renewed locks in one process.

    python benchmarks/many_locks.py                 # N = 10, 100, 1,000, 10,000
    python benchmarks/many_locks.py 1000 5000

On the in-memory store and a FakeClock, for each N: the threads the process
gained, its RSS growth, the time to acquire the N locks against N plain
acquire+release pairs, and the renew calls in one virtual minute (all of
them: the store calls an idle holder makes). Every lock shares the scheduler
of ``mongoelector._sync.scheduler``.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from mongoelector import Lock
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock

TTL = 15.0  # renewals every 2 s


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(n: int) -> dict[str, Any]:
    clock = FakeClock()
    store = MemoryBackend(clock)
    started = time.perf_counter()
    for i in range(n):
        plain = Lock(f"plain-{i}", store, ttl=TTL, clock=clock)
        plain.acquire()
        plain.release()
    pairs = time.perf_counter() - started
    threads, rss = threading.active_count(), rss_mib()
    locks = [Lock(f"job-{i}", store, ttl=TTL, clock=clock, auto_renew=True) for i in range(n)]
    started = time.perf_counter()
    for lock in locks:
        lock.acquire()
    acquire = time.perf_counter() - started
    renews = 0
    renew = store.renew

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal renews
        renews += 1
        return renew(*args, **kwargs)

    store.renew = counting  # type: ignore[method-assign]
    most = threading.active_count()
    for _ in range(30):  # one virtual minute
        clock.advance(2.0)
        for lock in locks:
            assert lock.wait_idle(60)
        most = max(most, threading.active_count())
    assert all(lock.token is not None for lock in locks)
    grown = rss_mib() - rss
    for lock in locks:
        lock.release()
    return {
        "n": n,
        "threads": most - threads,
        "rss_mib": round(grown, 1),
        "acquire_s": round(acquire, 3),
        "pairs_s": round(pairs, 3),
        "ratio": round(acquire / pairs, 2),
        "renews_per_minute": renews,
    }


def main(argv: list[str]) -> int:
    sizes = [int(arg) for arg in argv] or [10, 100, 1_000, 10_000]
    print("| N | extra threads | RSS growth | acquire N | N plain pairs | ratio | renews/min |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n in sizes:
        row = measure(n)
        print(
            f"| {row['n']:,} | {row['threads']} | {row['rss_mib']} MiB | {row['acquire_s']} s "
            f"| {row['pairs_s']} s | {row['ratio']}x | {row['renews_per_minute']:,} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
