"""Scenarios that both runners run the same way, whatever the version under test.

The version-specific parts come in as functions: how to make an elector or a
lock, how to make a process "crash". Like :mod:`_counting`, this module needs
only the standard library, pymongo and mongomock, since the 1.x runner
imports it from its own virtual environment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import mongomock
from _counting import CountingDatabase, Tally, per
from _runner_io import MINUTES, REALTIME_TTL, THROUGHPUT_KEYS, THROUGHPUT_PAIRS, Options

__all__ = ["Pair", "lock_counts", "pairs_per_second", "realtime_handovers", "role_figures"]

#: ``make_elector(db, on_leader)``: an elector of key "svc" with ttl ``REALTIME_TTL``.
MakeElector = Callable[[CountingDatabase, Callable[[], None]], Any]


def lock_counts(store: str, make_lock: Callable[[Tally], Any]) -> dict[str, Any]:
    """Operations of a lock's construction, first acquire, renew, release and next acquire."""
    tally = Tally()
    lock = make_lock(tally)
    out = {"construct": tally.take()}
    lock.acquire(blocking=False)
    out["acquire_first"] = tally.take()
    lock.touch()
    out["renew"] = tally.take()
    lock.release()
    out["release"] = tally.take()
    lock.acquire(blocking=False)
    out["acquire"] = tally.take()
    lock.release()
    return {f"{store}|count.{name}": count for name, count in out.items()}


def role_figures(counts: list[dict[str, Any]], polls: list[int], leader: int) -> dict[str, Any]:
    """Per-role operations of a group counted for ``MINUTES``: per minute and per poll."""
    followers = [i for i in range(len(counts)) if i != leader]
    return {
        "leader.minute": per([counts[leader]], MINUTES),
        "follower.minute": per([counts[i] for i in followers], MINUTES * len(followers)),
        "leader.poll": per([counts[leader]], polls[leader]),
        "follower.poll": per([counts[i] for i in followers], sum(polls[i] for i in followers)),
    }


class Pair:
    """Two started electors on one fresh mongomock database; 0 leads first."""

    def __init__(
        self, make_db: Callable[[Any], CountingDatabase], make_elector: MakeElector
    ) -> None:
        base = mongomock.MongoClient()["bench"]
        self.dbs = [make_db(base) for _ in range(2)]
        self.gained_at: list[float | None] = [None, None]
        self.gained = [threading.Event(), threading.Event()]
        self.electors = [
            make_elector(db, lambda i=i: self._gained(i)) for i, db in enumerate(self.dbs)
        ]
        self.electors[0].start()
        if not self.gained[0].wait(5 * REALTIME_TTL):
            raise RuntimeError("the first elector never became leader")
        self.electors[1].start()

    def _gained(self, i: int) -> None:
        self.gained_at[i] = time.perf_counter()
        self.gained[i].set()

    def wait_for_second(self, since: float) -> float | None:
        """Seconds from ``since`` until elector 1 led (``None``: not within 5 ttl)."""
        if not self.gained[1].wait(5 * REALTIME_TTL):
            return None
        gained_at = self.gained_at[1]
        assert gained_at is not None
        return gained_at - since


def realtime_handovers(
    options: Options,
    new_pair: Callable[[], Pair],
    crash: Callable[[Pair], None],
    clean_up_after_crash: Callable[[Pair], None],
) -> dict[str, list[float | None]]:
    """Failover after the leader's crash, handoff after its ``stop()``, and ``stop()``'s duration.

    Each trial waits a random part of a ttl before the leader goes, so the
    moment falls anywhere in its renew cycle.
    """
    rng = options.rng("realtime")
    failover: list[float | None] = []
    handoff: list[float | None] = []
    stop_latency: list[float | None] = []
    for _ in range(options.trials):
        pair = new_pair()
        time.sleep(rng.uniform(0, REALTIME_TTL))
        crash(pair)
        crashed_at = time.perf_counter()
        failover.append(pair.wait_for_second(crashed_at))
        clean_up_after_crash(pair)
    for _ in range(options.trials):
        pair = new_pair()
        time.sleep(rng.uniform(0, REALTIME_TTL))
        stopping_at = time.perf_counter()
        pair.electors[0].stop()
        stop_latency.append(time.perf_counter() - stopping_at)
        handoff.append(pair.wait_for_second(stopping_at))
        pair.electors[1].stop()
    return {
        "mongomock|failover.realtime": failover,
        "mongomock|handoff.realtime": handoff,
        "mongomock|stop.realtime": stop_latency,
    }


def pairs_per_second(make_lock: Callable[[str], Any]) -> tuple[float, float]:
    """Acquire+release pairs per second on one key, and over many keys (two rounds)."""
    lock = make_lock("one")
    began = time.perf_counter()
    for _ in range(THROUGHPUT_PAIRS):
        lock.acquire(blocking=False)
        lock.release()
    one_key = THROUGHPUT_PAIRS / (time.perf_counter() - began)
    locks = [make_lock(f"key-{i}") for i in range(THROUGHPUT_KEYS)]
    began = time.perf_counter()
    for _ in range(2):
        for each in locks:
            each.acquire(blocking=False)
            each.release()
    return one_key, 2 * THROUGHPUT_KEYS / (time.perf_counter() - began)
