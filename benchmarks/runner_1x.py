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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import mongomock
from _counting import CountingDatabase, Tally
from _percall import TimingDatabase, import_seconds, side_by_side
from _runner_io import GROUP_SIZE, MINUTES, REALTIME_TTL, WARM_UP, Options, run_main
from _scenarios import Pair, lock_counts, pairs_per_second, realtime_handovers, role_figures

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
    return role_figures(counts, polls, leader)


def counts(options: Options) -> dict[str, Any]:
    base = mongomock.MongoClient()["bench"]
    results = lock_counts(STORE, lambda tally: MongoLocker("bench-key", counting_db(base, tally)))
    for status in (True, False):
        figures = group_counts(status=status)
        state = "on" if status else "off"
        for name, count in figures.items():
            # 1.x has one cadence: its defaults are its own cadence.
            for cadence in ("defaults", "cadence_1x"):
                results[f"{STORE}|{cadence}.status_{state}.{name}"] = count
    return results


# --- real time ---------------------------------------------------------------------------------


def new_pair() -> Pair:
    return Pair(
        lambda base: counting_db(base, Tally()),
        lambda db, on_leader: MongoLeaderElector("svc", db, ttl=REALTIME_TTL, on_leader=on_leader),
    )


def crash(pair: Pair) -> None:
    """The leader's process is gone: its store calls fail, its loop polls no more."""
    pair.dbs[0].dead = True
    pair.electors[0]._shutdown = True


def clean_up_after_crash(pair: Pair) -> None:
    pair.electors[1].stop()
    pair.electors[0]._elector_thread.join()  # ends after its sleep; nothing to release


def times(options: Options) -> dict[str, Any]:
    return realtime_handovers(options, new_pair, crash, clean_up_after_crash)


# --- throughput -----------------------------------------------------------------------------------


def throughput(options: Options) -> dict[str, Any]:
    saved = MongoLocker._verifytime
    MongoLocker._verifytime = lambda self: True  # what 1.x users on mongomock do
    try:
        db = mongomock.MongoClient()["bench"]
        one_key, many_keys = pairs_per_second(lambda key: MongoLocker(key, db))
    finally:
        MongoLocker._verifytime = saved
    return {f"{STORE}|pairs.one_key": one_key, f"{STORE}|pairs.many_keys": many_keys}


# --- the cost of one call -------------------------------------------------------------------------


def percall(options: Options) -> dict[str, Any]:
    """1.x's own code per acquire+release pair on mongomock (store time taken out), and import."""
    saved = MongoLocker._verifytime
    MongoLocker._verifytime = lambda self: True  # what 1.x users on mongomock do
    try:
        db = TimingDatabase(mongomock.MongoClient()["bench"])
        lock = MongoLocker("bench-own", db)

        def pair() -> None:
            lock.acquire(blocking=False)
            lock.release()

        found = side_by_side({"own": pair}, n=400, inside={"own": lambda: db.inside})
    finally:
        MongoLocker._verifytime = saved
    return {f"{STORE}|percall.own_pair": found["own"], "import|percall.import": import_seconds()}


def main(argv: list[str] | None = None) -> int:
    version = mongoelector.__version__
    if not version.startswith("1."):
        raise SystemExit(f"runner_1x.py needs mongoelector 1.x, found {version}")
    groups = {"counts": counts, "percall": percall, "times": times, "throughput": throughput}
    return run_main("1.x", version, groups, argv)


if __name__ == "__main__":
    sys.exit(main())
