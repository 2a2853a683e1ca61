"""The benchmark scenarios on mongoelector 1.x, on mongomock.

Run by ``compare.py`` with the Python of ``benchmarks/.venv-1x`` (where
``mongoelector==1.0.2`` is installed), so ``import mongoelector`` is 1.x here::

    benchmarks/.venv-1x/bin/python benchmarks/runner_1x.py --only counts

mongomock has no ``serverStatus``, which 1.x's clock check needs. As 1.x users
on mongomock do, the check is patched: when counting, ``serverStatus`` is
answered by a stub that still counts as the round trip it would be; when
timing, ``MongoLocker._verifytime`` is replaced by ``lambda self: True``.

Operations per poll and per minute are counted in virtual time: 1.x's own
``poll()`` runs at the moments its loop would run it (``poll(); sleep(poll_wait)``)
with its clock (``_utcnow``) pointed at a virtual one. Failover, handoff and
``stop()`` run in real time with 1.x's own threads and a short ttl.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import mongomock
from _counting import CountingDatabase, Tally, per
from _runner_io import (
    GROUP_SIZE,
    MINUTES,
    REALTIME_TTL,
    THROUGHPUT_KEYS,
    THROUGHPUT_PAIRS,
    WARM_UP,
    Options,
    run_main,
)

import mongoelector
import mongoelector.elector as elector_module
import mongoelector.locker as locker_module
from mongoelector import MongoLeaderElector, MongoLocker

STORE = "mongomock"
DEFAULT_TTL = 15.0


def counting_db(base: Any, tally: Tally) -> CountingDatabase:
    """``base`` counted into ``tally``, with a counted ``serverStatus`` stub for the clock check."""
    return CountingDatabase(
        base, tally, commands={"serverStatus": lambda: {"localTime": locker_module._utcnow()}}
    )


# --- counts ----------------------------------------------------------------------------------


def lock_counts() -> dict[str, Any]:
    tally = Tally()
    lock = MongoLocker("bench-key", counting_db(mongomock.MongoClient()["bench"], tally))
    out = {"construct": tally.take()}
    lock.acquire(blocking=False)
    out["acquire_first"] = tally.take()
    lock.touch()
    out["renew"] = tally.take()
    lock.release()
    out["release"] = tally.take()
    lock.acquire(blocking=False)
    out["acquire"] = tally.take()
    return {f"{STORE}|count.{name}": count for name, count in out.items()}


@contextmanager
def virtual_time() -> Iterator[list[datetime]]:
    """Points 1.x's clock at ``moment[0]``, which the caller moves."""
    moment = [datetime(2030, 1, 1, tzinfo=timezone.utc)]
    saved = locker_module._utcnow, elector_module._utcnow
    locker_module._utcnow = elector_module._utcnow = lambda: moment[0]
    try:
        yield moment
    finally:
        locker_module._utcnow, elector_module._utcnow = saved


def group_counts(*, status: bool) -> dict[str, dict[str, Any]]:
    """Operations of a group of 1.x electors (default ttl), per role, per minute and per poll."""
    base = mongomock.MongoClient()["bench"]
    tallies = [Tally() for _ in range(GROUP_SIZE)]
    with virtual_time() as moment:
        start = moment[0]
        electors = [
            MongoLeaderElector("svc", counting_db(base, tally), report_status=status)
            for tally in tallies
        ]
        next_at = [i * DEFAULT_TTL / GROUP_SIZE for i in range(GROUP_SIZE)]
        polls = [0] * GROUP_SIZE
        counting = False
        while True:
            i = min(range(GROUP_SIZE), key=next_at.__getitem__)
            at = next_at[i]
            if at >= WARM_UP + MINUTES * 60:
                break
            if not counting and at >= WARM_UP:
                for tally in tallies:
                    tally.take()
                polls = [0] * GROUP_SIZE
                counting = True
            moment[0] = start + timedelta(seconds=at)
            electors[i].poll()
            polls[i] += 1
            next_at[i] = at + electors[i].poll_wait  # what 1.x's loop thread does
        holder = base["elector.locks"].find_one({"_id": "svc"})["uuid"]
    counts = [tally.take() for tally in tallies]
    leader = next(i for i, e in enumerate(electors) if e.mlock.uuid == holder)
    followers = [i for i in range(GROUP_SIZE) if i != leader]
    return {
        "leader.minute": per([counts[leader]], MINUTES),
        "follower.minute": per([counts[i] for i in followers], MINUTES * len(followers)),
        "leader.poll": per([counts[leader]], polls[leader]),
        "follower.poll": per([counts[i] for i in followers], sum(polls[i] for i in followers)),
    }


def counts(options: Options) -> dict[str, Any]:
    results = lock_counts()
    for status in (True, False):
        figures = group_counts(status=status)
        state = "on" if status else "off"
        for name, count in figures.items():
            # 1.x has one cadence: its defaults are its own cadence.
            for cadence in ("defaults", "cadence_1x"):
                results[f"{STORE}|{cadence}.status_{state}.{name}"] = count
    return results


# --- real time ---------------------------------------------------------------------------------


class Pair:
    """Two 1.x electors on one fresh mongomock database; elector 0 leads first."""

    def __init__(self) -> None:
        base = mongomock.MongoClient()["bench"]
        self.dbs = [counting_db(base, Tally()) for _ in range(2)]
        self.gained_at: list[float | None] = [None, None]
        self.gained = [threading.Event(), threading.Event()]
        self.electors = [
            MongoLeaderElector("svc", db, ttl=REALTIME_TTL, on_leader=lambda i=i: self._gained(i))
            for i, db in enumerate(self.dbs)
        ]
        self.electors[0].start()
        if not self.gained[0].wait(5 * REALTIME_TTL):
            raise RuntimeError("the first 1.x elector never became leader")
        self.electors[1].start()

    def _gained(self, i: int) -> None:
        self.gained_at[i] = time.perf_counter()
        self.gained[i].set()

    def wait_for_second(self, since: float) -> float | None:
        if not self.gained[1].wait(5 * REALTIME_TTL):
            return None
        gained_at = self.gained_at[1]
        assert gained_at is not None
        return gained_at - since


def times(options: Options) -> dict[str, Any]:
    rng = options.rng("realtime")
    failover: list[float | None] = []
    handoff: list[float | None] = []
    stop_latency: list[float | None] = []
    for _ in range(options.trials):
        pair = Pair()
        time.sleep(rng.uniform(0, REALTIME_TTL))
        pair.dbs[0].dead = True  # the leader's process is gone: no release, no more polls
        pair.electors[0]._shutdown = True
        crashed_at = time.perf_counter()
        failover.append(pair.wait_for_second(crashed_at))
        pair.electors[1].stop()
        pair.electors[0]._elector_thread.join()  # ends after its sleep; nothing to release
    for _ in range(options.trials):
        pair = Pair()
        time.sleep(rng.uniform(0, REALTIME_TTL))
        stopping_at = time.perf_counter()
        pair.electors[0].stop()
        stop_latency.append(time.perf_counter() - stopping_at)
        handoff.append(pair.wait_for_second(stopping_at))
        pair.electors[1].stop()
    return {
        f"{STORE}|failover.realtime": failover,
        f"{STORE}|handoff.realtime": handoff,
        f"{STORE}|stop.realtime": stop_latency,
    }


# --- throughput -----------------------------------------------------------------------------------


def throughput(options: Options) -> dict[str, Any]:
    saved = MongoLocker._verifytime
    MongoLocker._verifytime = lambda self: True  # what 1.x users on mongomock do
    try:
        db = mongomock.MongoClient()["bench"]
        lock = MongoLocker("one", db)
        began = time.perf_counter()
        for _ in range(THROUGHPUT_PAIRS):
            lock.acquire(blocking=False)
            lock.release()
        one_key = THROUGHPUT_PAIRS / (time.perf_counter() - began)
        locks = [MongoLocker(f"key-{i}", db) for i in range(THROUGHPUT_KEYS)]
        began = time.perf_counter()
        for _ in range(2):
            for each in locks:
                each.acquire(blocking=False)
                each.release()
        many_keys = 2 * THROUGHPUT_KEYS / (time.perf_counter() - began)
    finally:
        MongoLocker._verifytime = saved
    return {f"{STORE}|pairs.one_key": one_key, f"{STORE}|pairs.many_keys": many_keys}


def main(argv: list[str] | None = None) -> int:
    version = mongoelector.__version__
    if not version.startswith("1."):
        raise SystemExit(f"runner_1x.py needs mongoelector 1.x, found {version}")
    groups = {"counts": counts, "times": times, "throughput": throughput}
    return run_main("1.x", version, groups, argv)


if __name__ == "__main__":
    sys.exit(main())
