"""Threads, memory, acquire time and idle store calls of N auto-renewed locks in one process.

    python benchmarks/many_locks.py                          # both stores, default sizes
    python benchmarks/many_locks.py --memory 1000 5000 --mongomock 100
    python benchmarks/many_locks.py --json                   # rows as JSON (for compare.py)
    python benchmarks/many_locks.py --memory --mongomock --no-mixed   # the status-on row only

For each store and N, on a FakeClock (ttl 15 s: renewals every 2 s, the
renew interval): the threads the process gained while the N locks were held,
its RSS growth, the time to acquire the N locks against N plain
acquire+release pairs on the same store, and, while the N holders sit idle,
the store calls (MemoryBackend: ``renew`` and ``renew_many`` calls) or the
commands (mongomock, through ``MongoBackend``: every collection method and
database command, a bulk operation counting as one ``update``) they make per
renew interval and per minute, counted over :data:`IDLE_INTERVALS` intervals
after the one in which the holdings line up. Every lock shares the scheduler
of ``mongoelector._sync.scheduler``, and the renewals of one store go out
together (``renew_many``).

The mixed row's electors keep ``report_status=False`` (lease work only); the
status-on row runs the same mix with ``report_status=True`` (the default), its
idle calls counting the status reports too (``report_member`` and
``report_members``: the reports due together go out in one call).

The locks are acquired in four groups, 0.4 s apart, so their renewals start
spread over the interval, as acquisitions at different times would. mongomock
scans its collection for every ``_id`` it looks up, so its times grow as N²;
its default sizes stop at 1,000 (10,000 takes tens of minutes).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _counting import CountingDatabase, Tally

from mongoelector import LeaderElector, Lock
from mongoelector.backends import (
    LeaseRecord,
    MemberRecord,
    MemoryBackend,
    MongoBackend,
    RenewItem,
)
from mongoelector.testing import FakeClock

TTL = 15.0  # renewals every 2 s
INTERVAL = TTL * 2 / 15
#: Renew intervals counted while the holders sit idle (after one to line up).
IDLE_INTERVALS = 5
MEMORY_SIZES = [10, 100, 1_000, 10_000]
MONGOMOCK_SIZES = [10, 100, 1_000]
#: The issue's mix: 10,000 auto-renewed locks and 1,000 started electors in one process.
MIXED = (10_000, 1_000)


def rss_mib() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class CountingMemory(MemoryBackend):
    """A MemoryBackend that counts its renew and status calls (one store call each)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.calls = 0
        self.status_calls = 0
        self._count = threading.Lock()

    def report_member(self, member: MemberRecord) -> None:
        with self._count:
            self.calls += 1
            self.status_calls += 1
        super().report_member(member)

    def report_members(self, members: Sequence[MemberRecord]) -> None:
        with self._count:
            self.calls += 1
            self.status_calls += 1
        super().report_members(members)

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        with self._count:
            self.calls += 1
        return super().renew(key, owner, token, ttl)

    def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        with self._count:
            self.calls += 1
        return super().renew_many(items)


def advance(clock: FakeClock, seconds: float, holders: list[Lock | LeaderElector]) -> None:
    """Move the clock a second at a time; after each, wait until every holder caught up."""
    for _ in range(round(seconds)):
        clock.advance(1.0)
        for holder in holders:
            assert holder.wait_idle(600), f"{holder!r} did not catch up"


def start_electors(
    count: int, backend: Any, clock: FakeClock, *, status: bool = False
) -> list[LeaderElector]:
    """``count`` started electors, one per key (each leads its own); with ``status``, each
    reports its status (``report_status=True``, the default)."""
    electors = [
        LeaderElector(f"tenant-{i}", backend, ttl=TTL, clock=clock, report_status=status)
        for i in range(count)
    ]
    for elector in electors:
        elector.start()
    return electors


def idle_calls(
    clock: FakeClock, holders: list[Lock | LeaderElector], count: Callable[[], int]
) -> tuple[list[int], int]:
    """The store calls of each idle renew interval, and the most threads seen meanwhile."""
    most = threading.active_count()
    advance(clock, INTERVAL, holders)  # the holdings line up
    per_interval = []
    for _ in range(IDLE_INTERVALS):
        before = count()
        advance(clock, INTERVAL, holders)
        per_interval.append(count() - before)
        most = max(most, threading.active_count())
    return per_interval, most


def measure(n: int, store: str, electors: int = 0, status: bool = False) -> dict[str, Any]:
    """One row: ``store`` is ``"memory"`` or ``"mongomock"``; ``electors`` started beside
    (reporting their status if ``status``)."""
    clock = FakeClock()
    count: Callable[[], int]
    drop: Callable[[], None] = lambda: None  # noqa: E731
    if store == "memory":
        memory = CountingMemory(clock)
        backend: Any = memory

        def count() -> int:
            return memory.calls
    else:
        import mongomock

        tally = Tally()
        database = mongomock.MongoClient()["bench"]
        backend = MongoBackend(CountingDatabase(database, tally), clock=clock)
        backend.get("warm-up")  # the first call's set-up (indexes) is not idle work
        counted = [0]

        def count() -> int:
            taken = tally.take()
            counted[0] += taken["reads"] + taken["writes"] + taken["other"]
            return counted[0]

        def drop() -> None:  # mongomock scans for every _id: release on an empty collection
            database.drop_collection("mongolocker")

    threads = threading.active_count()  # before the scheduler's threads start
    for i in range(20):  # warm up: the first calls of a process pay for imports and caches
        warm = Lock(f"warm-{i}", backend, ttl=TTL, clock=clock, auto_renew=i % 2 == 0)
        warm.acquire()  # (the first auto-renewed one loads the renewer, starts the scheduler)
        warm.release()
    gc.collect()
    started = time.perf_counter()
    for i in range(n):
        plain = Lock(f"plain-{i}", backend, ttl=TTL, clock=clock)
        plain.acquire()
        plain.release()
    pairs = time.perf_counter() - started
    rss = rss_mib()
    locks = [Lock(f"job-{i}", backend, ttl=TTL, clock=clock, auto_renew=True) for i in range(n)]
    started = time.perf_counter()
    for index, lock in enumerate(locks):
        lock.acquire()
        if index % max(1, n // 4) == 0:
            clock.advance(0.4)  # four groups, 0.4 s apart
    acquire = time.perf_counter() - started
    started_electors = start_electors(electors, backend, clock, status=status)
    status_before = getattr(backend, "status_calls", 0)
    holders: list[Lock | LeaderElector] = [*locks, *started_electors]
    per_interval, most = idle_calls(clock, holders, count)
    status_calls = getattr(backend, "status_calls", 0) - status_before
    assert all(lock.token is not None for lock in locks)
    assert all(elector.is_leader for elector in started_electors)
    grown = rss_mib() - rss
    for elector in started_electors:
        elector.stop()
    drop()
    for lock in locks:
        lock.release()
    per_minute = sum(per_interval) / (IDLE_INTERVALS * INTERVAL) * 60
    return {
        "store": store,
        "n": n,
        "electors": electors,
        "status": status,
        "threads": most - threads,
        "rss_mib": round(grown, 1),
        "acquire_s": round(acquire, 3),
        "pairs_s": round(pairs, 3),
        "ratio": round(acquire / pairs, 2) if pairs else None,
        "calls_per_interval": max(per_interval),
        "calls_per_minute": round(per_minute),
        "key_by_key_per_minute": round(n / INTERVAL * 60),
        # the status calls of the whole run after the electors started (lining up included)
        "status_calls": status_calls,
    }


def table(rows: list[dict[str, Any]]) -> list[str]:
    """The rows as a markdown table (the lines)."""
    lines = [
        "| store | N | extra threads | RSS growth | acquire N | N plain pairs | ratio "
        "| store calls per renew interval, idle | per minute | key by key (before) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        store = "MemoryBackend" if row["store"] == "memory" else "mongomock (commands)"
        if row.get("electors"):
            store += f" + {row['electors']:,} electors"
            if row.get("status"):
                store += " (status on)"
        ratio = f"{row['ratio']}x" if row["ratio"] is not None else "n/a"
        lines.append(
            f"| {store} | {row['n']:,} | {row['threads']} | {row['rss_mib']} MiB "
            f"| {row['acquire_s']} s | {row['pairs_s']} s | {ratio} "
            f"| {row['calls_per_interval']:,} | {row['calls_per_minute']:,} "
            f"| {row['key_by_key_per_minute']:,} |"
        )
    return lines


def run(
    memory: list[int],
    mongomock: list[int],
    mixed: tuple[int, int] | None = MIXED,
    status_mixed: tuple[int, int] | None = MIXED,
) -> list[dict[str, Any]]:
    """Every row, each measured in a fresh interpreter (its threads and memory its own)."""
    rows = []
    wanted = [("memory", n, 0, False) for n in memory]
    wanted += [("mongomock", n, 0, False) for n in mongomock]
    if mixed is not None:
        wanted.append(("memory", *mixed, False))
    if status_mixed is not None:
        wanted.append(("memory", *status_mixed, True))
    for store, n, electors, status in wanted:
        done = subprocess.run(
            [sys.executable, __file__, "--row", store, str(n), str(electors), str(int(status))],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memory", type=int, nargs="*", default=MEMORY_SIZES, metavar="N")
    parser.add_argument("--mongomock", type=int, nargs="*", default=MONGOMOCK_SIZES, metavar="N")
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON line")
    parser.add_argument(
        "--mixed",
        type=int,
        nargs=2,
        default=MIXED,
        metavar=("LOCKS", "ELECTORS"),
        help="also LOCKS auto-renewed locks with ELECTORS started electors (MemoryBackend)",
    )
    parser.add_argument("--no-mixed", action="store_true", help="leave the mixed row out")
    parser.add_argument(
        "--status-mixed",
        type=int,
        nargs=2,
        default=MIXED,
        metavar=("LOCKS", "ELECTORS"),
        help="also the mix with the electors reporting their status (report_status=True)",
    )
    parser.add_argument(
        "--no-status", action="store_true", help="leave the status-on mixed row out"
    )
    parser.add_argument("--row", nargs=4, metavar=("STORE", "N", "E", "S"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.row:  # one row, in this interpreter (what run() starts)
        store, n, electors, status = args.row
        print(json.dumps(measure(int(n), store, int(electors), status == "1")))
        return 0
    rows = run(
        args.memory,
        args.mongomock,
        None if args.no_mixed else tuple(args.mixed),
        None if args.no_status else tuple(args.status_mixed),
    )
    if args.json:
        print(json.dumps({"rows": rows}))
    else:
        print("\n".join(table(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
