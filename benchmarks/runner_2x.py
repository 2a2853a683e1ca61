"""The benchmark scenarios on mongoelector 2.x (this checkout), on several stores.

Run by ``compare.py`` with the project's Python (``.venv``)::

    .venv/bin/python benchmarks/runner_2x.py --only counts
    .venv/bin/python benchmarks/runner_2x.py --only counts --uri mongodb://localhost:27017

Stores, named in the figure ids:

* ``mongomock``: the 1.x-compatible facades (``MongoLocker``,
  ``MongoLeaderElector``) on mongomock, which takes the *classic* write path.
* ``wire``: the same facades on a real ``pymongo.MongoClient`` talking to a
  MongoDB 7 lookalike (:mod:`_wire_bridge`), so the *pipeline* path, with its
  commands counted by pymongo's command monitoring.
* ``memory``: ``Lock`` and ``LeaderElector`` on ``MemoryBackend``; each
  backend call counts as one operation.
* ``server``: the facades on the server at ``--uri`` (command monitoring).

Per poll and per minute figures come from a group of electors polled in
virtual time (``FakeClock`` and ``ElectorGroup``), which is exactly the
schedule the elector's own loop keeps.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar

import mongomock
import pymongo
from _counting import OTHER, READ, WRITE, CommandCounter, CountingDatabase, Tally
from _percall import TimingDatabase, import_seconds, side_by_side
from _runner_io import GROUP_SIZE, MINUTES, REALTIME_TTL, WARM_UP, Options, run_main
from _scenarios import Pair, lock_counts, pairs_per_second, realtime_handovers, role_figures

import mongoelector
from mongoelector import LeaderElector, Lock, MongoLeaderElector, MongoLocker
from mongoelector.backends import MemoryBackend
from mongoelector.clock import Clock, SystemClock
from mongoelector.testing import ElectorGroup, FakeClock

DEFAULT_TTL = 15.0
#: 1.x's cadence for 2.x: the leader renews every ttl/2, a follower polls every ttl.
CADENCE_1X: dict[str, float] = {"retry_period": DEFAULT_TTL / 2, "follower_poll": DEFAULT_TTL}
#: 2.x defaults: no elector options.
DEFAULTS: dict[str, float] = {}
#: Failover and handoff phases tried in virtual time (follower poll phase, 0..1 of a period).
PHASES = 10
#: Simulated schedules per trial.
SCHEDULES = 300


class CountingBackend:
    """Forwards to a 2.x backend and counts each protocol call as one operation."""

    _KINDS: ClassVar[dict[str, str]] = {
        "get": READ,
        "members": READ,
        "compare_and_set": WRITE,
        "renew": WRITE,
        "release": WRITE,
        "report_member": WRITE,
        "server_time": OTHER,
    }

    def __init__(self, inner: Any, tally: Tally) -> None:
        self._inner = inner
        self._tally = tally

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        kind = self._KINDS.get(name)
        if kind is None:
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._tally.add(kind, name)
            return value(*args, **kwargs)

        return counted


# --- the stores ---------------------------------------------------------------------------------


class Store:
    """Makes counted locks and electors on one fresh data set, all on ``clock``."""

    name = ""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def lock(self, tally: Tally) -> Lock:
        raise NotImplementedError

    def elector(self, tally: Tally, **options: Any) -> LeaderElector:
        raise NotImplementedError


class MemoryStore(Store):
    name = "memory"

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.backend = MemoryBackend(clock)

    def lock(self, tally: Tally) -> Lock:
        return Lock("bench-key", CountingBackend(self.backend, tally), clock=self.clock)

    def elector(self, tally: Tally, **options: Any) -> LeaderElector:
        backend = CountingBackend(self.backend, tally)
        return LeaderElector("svc", backend, clock=self.clock, **options)


class FacadeStore(Store):
    """The 1.x facades on a database that ``database(tally)`` counts into ``tally``."""

    def database(self, tally: Tally) -> Any:
        raise NotImplementedError

    def lock(self, tally: Tally) -> Lock:
        return MongoLocker("bench-key", self.database(tally), clock=self.clock)

    def elector(self, tally: Tally, **options: Any) -> LeaderElector:
        return MongoLeaderElector("svc", self.database(tally), clock=self.clock, **options)


class MongomockStore(FacadeStore):
    name = "mongomock"

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.base = mongomock.MongoClient()["bench"]

    def database(self, tally: Tally) -> Any:
        return CountingDatabase(self.base, tally)


class ClientStore(FacadeStore):
    """A fresh database on a MongoDB server (or lookalike); one client per counted user."""

    def __init__(self, clock: Clock, connect: Callable[[CommandCounter], Any]) -> None:
        super().__init__(clock)
        self.name_in_server = f"mongoelector_bench_{uuid.uuid4().hex[:12]}"
        self._connect = connect

    def database(self, tally: Tally) -> Any:
        return self._connect(CommandCounter(tally))[self.name_in_server]


# --- counts -------------------------------------------------------------------------------------


def group_counts(
    make_store: Callable[[FakeClock], Store], *, status: bool, cadence: Mapping[str, float]
) -> dict[str, dict[str, Any]]:
    """Operations of a group of electors (ttl 15 s), per role, per minute and per poll."""
    clock = FakeClock()
    store = make_store(clock)
    tallies = [Tally() for _ in range(GROUP_SIZE)]
    polls = [0] * GROUP_SIZE

    def polled(i: int) -> None:
        polls[i] += 1

    electors = [
        store.elector(tally, report_status=status, on_loop=lambda i=i: polled(i), **cadence)
        for i, tally in enumerate(tallies)
    ]
    group = ElectorGroup(clock)
    for i, elector in enumerate(electors):  # staggered starts, as on the 1.x side
        group.add(elector)
        if i < GROUP_SIZE - 1:
            group.run_for(DEFAULT_TTL / GROUP_SIZE)
    group.run_for(WARM_UP - clock.monotonic())
    for tally in tallies:
        tally.take()
    polls[:] = [0] * GROUP_SIZE
    group.run_for(MINUTES * 60)
    counts = [tally.take() for tally in tallies]
    leader = electors.index(group.leader) if group.leader is not None else 0
    return role_figures(counts, polls, leader)


def store_counts(name: str, make_store: Callable[[FakeClock], Store]) -> dict[str, Any]:
    results = lock_counts(name, make_store(FakeClock()).lock)
    for cadence, cadence_options in (("defaults", DEFAULTS), ("cadence_1x", CADENCE_1X)):
        for status in (True, False):
            figures = group_counts(make_store, status=status, cadence=cadence_options)
            state = "on" if status else "off"
            for figure, count in figures.items():
                results[f"{name}|{cadence}.status_{state}.{figure}"] = count
    return results


@contextmanager
def wire_stores() -> Iterator[Callable[[FakeClock], Store]]:
    """Stores on the MongoDB 7 lookalike; each new store's clock is the server's clock."""
    from _wire_bridge import WireBridge

    current: list[FakeClock] = [FakeClock()]

    def now() -> datetime:
        return current[0].now()

    with WireBridge.running(now) as bridge:

        def make(clock: FakeClock) -> Store:
            current[0] = clock
            store = ClientStore(clock, bridge.client)
            store.name = "wire"
            return store

        yield make


def server_counts(uri: str) -> dict[str, Any]:
    """On a real server: lock operations, and single polls (real time, status off)."""
    clients: list[pymongo.MongoClient[Any]] = []

    def connect(counter: CommandCounter) -> Any:
        client: pymongo.MongoClient[Any] = pymongo.MongoClient(
            uri, event_listeners=[counter], serverSelectionTimeoutMS=5000
        )
        clients.append(client)
        return client

    from mongoelector.clock import SystemClock

    store = ClientStore(SystemClock(), connect)
    store.name = "server"
    try:
        results = lock_counts(store.name, store.lock)
        tallies = [Tally(), Tally()]
        leader, follower = (store.elector(t, report_status=False) for t in tallies)
        leader.poll()
        follower.poll()
        follower.poll()  # the first attempt met a holder it had not seen yet
        for tally in tallies:
            tally.take()
        leader.poll()
        results["server|defaults.status_off.leader.poll"] = tallies[0].take()
        follower.poll()
        results["server|defaults.status_off.follower.poll"] = tallies[1].take()
        leader.release()
    finally:
        if clients:
            clients[0].drop_database(store.name_in_server)
        for client in clients:
            client.close()
    return results


def counts(options: Options) -> dict[str, Any]:
    results = store_counts("memory", MemoryStore)
    results.update(store_counts("mongomock", MongomockStore))
    with wire_stores() as make_wire:
        results.update(store_counts("wire", make_wire))
    if options.uri:
        results.update(server_counts(options.uri))
    return results


# --- time ---------------------------------------------------------------------------------------


#: How the leader goes in a virtual handover, and the figure that measures it.
HANDOVERS = {"crash": "failover", "stop": "handoff", "release": "handoff_release"}


def virtual_handover(
    make_store: Callable[[FakeClock], Store], *, how: str, cadence: Mapping[str, float]
) -> list[float | None]:
    """Seconds (virtual) from the leader going (``how``) to a new leader, over follower phases."""
    return [
        handover_once(make_store, how=how, cadence=cadence, phase=phase) for phase in range(PHASES)
    ]


def handover_once(
    make_store: Callable[[FakeClock], Store],
    *,
    how: str,
    cadence: Mapping[str, float],
    phase: int,
) -> float | None:
    """One handover: followers join ``phase / PHASES`` of a poll period after the leader.

    The leader goes right after a renew: for a crash the worst moment, as its
    lease then lives longest. After ``release()`` it keeps polling (and may
    lead again later); after a crash or ``stop()`` it is polled no more.
    """
    clock = FakeClock()
    store = make_store(clock)
    electors = [store.elector(Tally(), report_status=False, **cadence) for _ in range(GROUP_SIZE)]
    first = electors[0]
    group = ElectorGroup(clock, [first])
    group.run_until(lambda: first.is_leader, timeout=60)
    group.run_for(first.timing.follower_period * phase / PHASES)
    for elector in electors[1:]:
        group.add(elector)
    group.run_for(60)
    while first not in group.step():
        pass
    went_at = clock.monotonic()
    if how == "release":
        first.release()
    else:
        if how == "stop":
            first.stop()
        group.remove(first)
    found = group.run_until(lambda: group.leader not in (None, first), timeout=10 * DEFAULT_TTL)
    return clock.monotonic() - went_at if found else None


def realtime(options: Options) -> dict[str, Any]:
    def new_pair() -> Pair:
        return Pair(
            lambda base: CountingDatabase(base, Tally()),
            lambda db, on_leader: MongoLeaderElector(
                "svc", db, ttl=REALTIME_TTL, on_leader=on_leader
            ),
        )

    def crash(pair: Pair) -> None:
        pair.dbs[0].dead = True  # the leader's process is gone: no release, no more calls

    def clean_up_after_crash(pair: Pair) -> None:
        for elector in pair.electors:
            elector.stop()

    return realtime_handovers(options, new_pair, crash, clean_up_after_crash)


def memory_stop_latency(options: Options) -> list[float | None]:
    """``stop()`` of a leading elector at default settings, in the in-memory backend."""
    rng = options.rng("stop")
    samples: list[float | None] = []
    for _ in range(max(5, options.trials)):
        gained = threading.Event()
        elector = LeaderElector("svc", MemoryBackend(), on_leader=gained.set)
        elector.start()
        if not gained.wait(5):
            raise RuntimeError("the elector never became leader")
        time.sleep(rng.uniform(0, 0.5))
        began = time.perf_counter()
        elector.stop()
        samples.append(time.perf_counter() - began)
    return samples


def times(options: Options) -> dict[str, Any]:
    results = realtime(options)
    results["memory|stop.defaults"] = memory_stop_latency(options)
    for name, make_store in (("memory", MemoryStore), ("mongomock", MongomockStore)):
        for cadence, cadence_options in (("defaults", DEFAULTS), ("cadence_1x", CADENCE_1X)):
            for how, what in HANDOVERS.items():
                key = f"{name}|{what}.virtual.{cadence}"
                results[key] = virtual_handover(make_store, how=how, cadence=cadence_options)
    return results


# --- throughput ----------------------------------------------------------------------------------


def throughput(options: Options) -> dict[str, Any]:
    results: dict[str, Any] = {}
    db = mongomock.MongoClient()["bench"]
    memory = MemoryBackend()
    stores: list[tuple[str, Callable[[str], Lock]]] = [
        ("mongomock", lambda key: MongoLocker(key, db)),
        ("memory", lambda key: Lock(key, memory)),
    ]
    client: pymongo.MongoClient[Any] | None = None
    name = f"mongoelector_bench_{uuid.uuid4().hex[:12]}"
    if options.uri:
        client = pymongo.MongoClient(options.uri, serverSelectionTimeoutMS=5000)
        server_db = client[name]
        stores.append(("server", lambda key: MongoLocker(key, server_db)))
    try:
        for store, make_lock in stores:
            one_key, many_keys = pairs_per_second(make_lock)
            results[f"{store}|pairs.one_key"] = one_key
            results[f"{store}|pairs.many_keys"] = many_keys
    finally:
        if client is not None:
            client.drop_database(name)
            client.close()
    return results


# --- the cost of one call -------------------------------------------------------------------------

#: Acquire+release pairs per timed batch (``_percall.side_by_side``).
PERCALL_PAIRS = 400


def memory_pair_costs() -> dict[str, Any]:
    """A ``Lock`` pair on ``MemoryBackend`` next to the raw backend calls it makes.

    The raw pair is what a caller of the storage protocol writes by hand: a
    ``compare_and_set`` with a fresh ``LeaseRequest`` (so a fresh acquisition
    id, as the protocol asks), then a ``release`` of the token it got.
    """
    from mongoelector.backends.protocol import LeaseRequest

    backend = MemoryBackend()
    lock = Lock("bench-lock", backend)

    def lock_pair() -> None:
        lock.acquire(blocking=False)
        lock.release()

    def raw_pair() -> None:
        request = LeaseRequest(key="bench-raw", owner="raw-owner", ttl=600.0, host="h", pid=1)
        record = backend.compare_and_set(request).record
        assert record is not None
        backend.release("bench-raw", "raw-owner", token=record.token)

    found = side_by_side({"lock": lock_pair, "raw": raw_pair}, n=PERCALL_PAIRS * 5)
    return {"memory|percall.lock_pair": found["lock"], "memory|percall.raw_pair": found["raw"]}


def mongomock_own_code() -> dict[str, Any]:
    """Seconds of the facade's own code per pair on mongomock (store time taken out)."""
    db = TimingDatabase(mongomock.MongoClient()["bench"])
    lock = MongoLocker("bench-own", db)

    def pair() -> None:
        lock.acquire(blocking=False)
        lock.release()

    found = side_by_side({"own": pair}, n=PERCALL_PAIRS, inside={"own": lambda: db.inside})
    return {"mongomock|percall.own_pair": found["own"]}


def noio_own_code() -> dict[str, Any]:
    """Seconds of the facade's own code per pair against a store that does no I/O.

    The lock's pair on :class:`_noio.NoIODatabase` (classic, as on mongomock,
    and pipeline, as on a production server) next to the same two
    ``find_one_and_update`` calls (captured from one of its pairs) made
    directly on the same collection: the difference is the lock's own code,
    the store's (small) work being the same on both sides.
    """
    from _noio import NoIODatabase

    results: dict[str, Any] = {}
    for path, pipeline in (("classic", False), ("pipeline", True)):
        db = NoIODatabase(mongomock.MongoClient()["bench"], "mongolocker", pipeline=pipeline)
        lock = MongoLocker("bench-noio", db)
        leases = db.leases

        def lock_pair(lock: MongoLocker = lock) -> None:
            lock.acquire(blocking=False)
            lock.release()

        lock_pair()
        leases.calls = []
        lock_pair()
        sent, leases.calls = leases.calls, None
        if len(sent) != 2 or isinstance(sent[0][1], list) != pipeline:
            raise RuntimeError(f"expected the 2 {path} commands of a pair, saw {sent!r}")

        def raw_pair(leases: Any = leases, sent: Any = sent) -> None:
            for query, update, options in sent:
                leases.find_one_and_update(query, update, **options)

        found = side_by_side({"lock": lock_pair, "raw": raw_pair}, n=PERCALL_PAIRS * 5)
        results[f"noio|percall.{path}.lock_pair"] = found["lock"]
        results[f"noio|percall.{path}.raw_pair"] = found["raw"]
        results[f"noio|percall.{path}.own_pair"] = found["lock"] - found["raw"]
    return results


def wire_pair_costs() -> dict[str, Any]:
    """Client CPU per pair on the wire path, next to raw pymongo sending the same commands.

    The two ``findAndModify`` commands of one of the lock's pairs are captured
    and sent again with ``find_one_and_update`` (same filter, update, options,
    write concern and ``maxTimeMS``). CPU is the calling thread's, so the
    in-process server's threads are not counted. The lock's own code is the
    pair's CPU minus the CPU spent inside pymongo's collection methods (measured on a
    second lock, whose database is wrapped to time those methods: the ratio's lock has
    the plain database, as raw pymongo has).
    """
    from _wire_bridge import WireBridge
    from pymongo import ReturnDocument, WriteConcern

    sent: list[Mapping[str, Any]] = []

    class Capture(pymongo.monitoring.CommandListener):
        capturing = False

        def started(self, event: pymongo.monitoring.CommandStartedEvent) -> None:
            if self.capturing and event.command_name == "findAndModify":
                sent.append(event.command)

        def succeeded(self, event: pymongo.monitoring.CommandSucceededEvent) -> None:
            pass

        def failed(self, event: pymongo.monitoring.CommandFailedEvent) -> None:
            pass

    capture = Capture()
    with WireBridge.running(lambda: SystemClock().now()) as bridge:
        db = TimingDatabase(bridge.client(capture)["bench"], timer=time.thread_time)
        lock = MongoLocker("bench-wire", db)
        lock.acquire(blocking=False)
        lock.release()
        capture.capturing = True
        lock.acquire(blocking=False)
        lock.release()
        capture.capturing = False
        if len(sent) != 2:
            raise RuntimeError(f"expected 2 findAndModify commands per pair, saw {len(sent)}")
        raw_db = bridge.client()["bench"]
        calls = []
        for command in sent:
            concern = command.get("writeConcern")
            collection = raw_db.get_collection(
                command["findAndModify"],
                write_concern=WriteConcern(**concern) if concern else None,
            )
            extra = {"maxTimeMS": command["maxTimeMS"]} if "maxTimeMS" in command else {}
            calls.append(
                (
                    collection,
                    command["query"],
                    command["update"],
                    {
                        "projection": command.get("fields"),
                        "upsert": command.get("upsert", False),
                        "return_document": ReturnDocument.AFTER
                        if command.get("new")
                        else ReturnDocument.BEFORE,
                        **extra,
                    },
                )
            )

        def lock_pair() -> None:
            lock.acquire(blocking=False)
            lock.release()

        # The ratio compares a lock on the plain database with raw pymongo: the timing
        # wrapper (two thread-CPU clock reads and a closure per collection call, about
        # 35 us per pair on the wire) is the measurement's cost, not the lock's.
        plain_lock = MongoLocker("bench-wire-plain", bridge.client()["bench"])

        def plain_lock_pair() -> None:
            plain_lock.acquire(blocking=False)
            plain_lock.release()

        def raw_pair() -> None:
            for collection, query, update, kwargs in calls:
                collection.find_one_and_update(query, update, **kwargs)

        # The same, each call bounded on the client as the lock bounds its calls
        # (pymongo.timeout with the lock's budget, which also puts maxTimeMS on the wire):
        # what the bound itself costs in pymongo.
        bound = (sent[0]["maxTimeMS"] + 1) / 1000  # the lock's budget, as its maxTimeMS shows
        bounded_calls = [
            (collection, query, update, {k: v for k, v in kwargs.items() if k != "maxTimeMS"})
            for collection, query, update, kwargs in calls
        ]

        def raw_bounded_pair() -> None:
            for collection, query, update, kwargs in bounded_calls:
                with pymongo.timeout(bound):
                    collection.find_one_and_update(query, update, **kwargs)

        # The bounded raw pair, each reply followed by the lock's own step on a store
        # that does no I/O (acquire after the first, release after the second): the
        # lock's code run where it runs on the wire, right after a blocking receive.
        # Against the lock's pair, it tells whether the wire adds work of its own to the
        # lock, or only makes the same code dearer than it is with no I/O at all.
        from _noio import NoIODatabase

        noio_lock = MongoLocker(
            "bench-wire-noio",
            NoIODatabase(mongomock.MongoClient()["bench"], "mongolocker", pipeline=True),
        )

        (acquire_in, *acquire), (release_in, *release) = bounded_calls

        def raw_bounded_then_noio_pair() -> None:
            with pymongo.timeout(bound):
                acquire_in.find_one_and_update(*acquire[:2], **acquire[2])
            noio_lock.acquire(blocking=False)
            with pymongo.timeout(bound):
                release_in.find_one_and_update(*release[:2], **release[2])
            noio_lock.release()

        found = side_by_side(
            {
                "lock": plain_lock_pair,
                "raw": raw_pair,
                "raw_bounded": raw_bounded_pair,
                "raw_bounded_then_noio": raw_bounded_then_noio_pair,
            },
            n=PERCALL_PAIRS // 4,
            timer=time.thread_time,
        )
        own = side_by_side(
            {"own": lock_pair},
            n=PERCALL_PAIRS // 4,
            timer=time.thread_time,
            inside={"own": lambda: db.inside},
        )
    return {
        "wire|percall.lock_pair_cpu": found["lock"],
        "wire|percall.raw_pair_cpu": found["raw"],
        "wire|percall.raw_bounded_pair_cpu": found["raw_bounded"],
        "wire|percall.raw_bounded_then_noio_pair_cpu": found["raw_bounded_then_noio"],
        "wire|percall.own_pair": own["own"],
    }


def percall(options: Options) -> dict[str, Any]:
    results: dict[str, Any] = {}
    results.update(memory_pair_costs())
    results.update(mongomock_own_code())
    results.update(noio_own_code())
    results.update(wire_pair_costs())
    results["import|percall.import"] = import_seconds()
    return results


def simulation(options: Options) -> dict[str, Any]:
    from mongoelector.testing.simulation import SimulationConfig, check_seeds

    first = options.seed * SCHEDULES
    began = time.perf_counter()
    summary = check_seeds(range(first, first + SCHEDULES), SimulationConfig(), fail_fast=False)
    elapsed = time.perf_counter() - began
    if summary.failures:
        raise SystemExit(f"simulation found violations: {summary.failures[:3]!r}")
    return {"memory|simulation.schedules": summary.schedules / elapsed}


def main(argv: list[str] | None = None) -> int:
    groups = {
        "counts": counts,
        "percall": percall,
        "times": times,
        "throughput": throughput,
        "simulation": simulation,
    }
    return run_main("2.x", mongoelector.__version__, groups, argv)


if __name__ == "__main__":
    sys.exit(main())
