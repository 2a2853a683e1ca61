"""The hot paths do only what someone asked for (counts, never times: speed is benchmarked)."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mongoelector import Lock, _validation, monitoring
from mongoelector._common import monitor as monitor_module
from mongoelector._common.outcomes import with_acquisition
from mongoelector._validation import check_key
from mongoelector.backends import MemoryBackend
from mongoelector.backends._mongo import plans
from mongoelector.backends._mongo_sync import drive
from mongoelector.backends.protocol import CasResult, LeaseRecord, LeaseRequest
from mongoelector.testing import FakeClock

EVENT_NAMES = [
    "LeadershipGainedEvent",
    "LeadershipLostEvent",
    "RenewedEvent",
    "StoreErrorEvent",
    "LeaderChangedEvent",
    "SlowRoundTripsEvent",
]


class Built:
    """Counts events and log texts the monitor builds."""

    def __init__(self) -> None:
        self.events = 0
        self.texts = 0


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Iterator[Built]:
    counts = Built()
    for name in EVENT_NAMES:
        # The monitor takes the event classes from mongoelector.monitoring when it builds one.
        event_type = getattr(monitoring, name)

        def make(*args: Any, _type: Any = event_type, **kwargs: Any) -> Any:
            counts.events += 1
            return _type(*args, **kwargs)

        monkeypatch.setattr(monitoring, name, make)
    what = monitor_module.Monitor._what

    def counted_what(self: monitor_module.Monitor) -> str:
        counts.texts += 1
        return what(self)

    monkeypatch.setattr(monitor_module.Monitor, "_what", counted_what)
    yield counts


def pairs(lock: Lock, n: int) -> None:
    for _ in range(n):
        assert lock.acquire(blocking=False)
        assert lock.release()


def test_with_info_off_and_no_listener_a_lock_builds_no_event_and_no_log_text(
    built: Built, caplog: pytest.LogCaptureFixture
) -> None:
    assert monitoring.registered() == ()
    with caplog.at_level(logging.WARNING, logger="mongoelector"):
        pairs(Lock("lean", MemoryBackend(FakeClock())), 3)
    assert (built.events, built.texts) == (0, 0)
    # Only the package's records: an earlier test's leftovers (asyncio's "Task was
    # destroyed" when a task is collected now) are not this lock's.
    assert [r for r in caplog.records if r.name.startswith("mongoelector")] == []


def test_a_listener_still_gets_every_event_and_info_still_logs(
    built: Built, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[object] = []

    class Listener(monitoring.EventListener):
        def leadership_gained(self, event: monitoring.LeadershipGainedEvent) -> None:
            seen.append(event)

        def leadership_lost(self, event: monitoring.LeadershipLostEvent) -> None:
            seen.append(event)

    lock = Lock("lean", MemoryBackend(FakeClock()), event_listeners=[Listener()])
    with caplog.at_level(logging.INFO, logger="mongoelector.lock"):
        pairs(lock, 2)
    assert built.events == 4 and len(seen) == 4
    assert [type(event).__name__ for event in seen] == [
        "LeadershipGainedEvent",
        "LeadershipLostEvent",
    ] * 2
    # Only the lock's lines: a record left by an earlier test (asyncio's "Task was
    # destroyed" when a task is collected now) is not this lock's.
    lines = [r for r in caplog.records if r.name.startswith("mongoelector.lock")]
    assert len(lines) == 4 and built.texts == 4


def test_a_process_wide_listener_alone_is_enough_to_build_events(built: Built) -> None:
    class Listener(monitoring.EventListener):
        pass

    listener = Listener()
    monitoring.register(listener)
    try:
        pairs(Lock("lean", MemoryBackend(FakeClock())), 1)
    finally:
        monitoring.unregister(listener)
    assert built.events == 2


def test_with_acquisition_carries_every_field_of_the_request() -> None:
    request = LeaseRequest(
        key="k", owner="o", ttl=5.0, host="h", pid=7, metadata={"a": "b"}, acquisition="first"
    )
    changed = with_acquisition(request, "second")
    assert changed == dataclasses.replace(request, acquisition="second")
    assert with_acquisition(request, "first") is request


def test_drive_raises_a_step_error_inside_the_plan_and_closes_it() -> None:
    closed: list[bool] = []

    def plan() -> plans.Plan[str]:
        try:
            try:
                yield plans.Sleep(1.0)
            except ValueError as error:
                got = yield plans.Sleep(float(str(error)))
                return f"recovered {got}"
            return "not raised"
        finally:
            closed.append(True)

    def perform(step: plans.Step) -> object:
        assert isinstance(step, plans.Sleep)
        if step.seconds == 1.0:
            raise ValueError("2.0")
        return step.seconds

    assert drive(plan(), perform) == "recovered 2.0"
    assert closed == [True]

    def interrupted(step: plans.Step) -> object:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        drive(plan(), interrupted)
    assert closed == [True, True]


def test_bounded_bounds_io_steps_and_hands_errors_to_the_plan() -> None:
    def plan() -> plans.Plan[object]:
        try:
            yield plans.Hello()
        except ValueError:
            yield plans.Sleep(0.25)
        yield plans.Sleep(0.5)
        return (yield plans.Hello())

    run = plans.bounded(plan(), lambda: 3.0)
    first = next(run)
    assert first == plans.Bounded(plans.Hello(), 3.0)
    assert run.throw(ValueError("no")) == plans.Sleep(0.25)
    assert run.send(None) == plans.Sleep(0.5)
    assert run.send(None) == plans.Bounded(plans.Hello(), 3.0)
    with pytest.raises(StopIteration) as finished:
        run.send("reply")
    assert finished.value.value == "reply"


def test_import_mongoelector_leaves_the_tools_and_the_backends_unimported() -> None:
    probe = (
        "import sys, mongoelector\n"
        "from mongoelector import Lock, LeaderElector, MongoLocker, MongoLeaderElector\n"
        "import mongoelector.locker, mongoelector.elector\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('mongoelector'))))\n"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    for module in (
        "mongoelector.cli",
        "mongoelector.picture",
        "mongoelector.testing",
        "mongoelector.aio",
        "mongoelector.demo",
        "mongoelector.backends.memory",
        "mongoelector.backends.mongo",
        "mongoelector.backends.async_mongo",
        "mongoelector.backends.sqlite",
        "mongoelector.backends._mongo.plans",
    ):
        assert module not in loaded, module


def test_the_backends_are_still_importable_by_name() -> None:
    from mongoelector import backends

    for name in backends.__all__:
        assert getattr(backends, name) is not None
        assert name in dir(backends)
    with pytest.raises(AttributeError):
        backends.NoSuchBackend  # noqa: B018


# --- counts per acquire+release pair ------------------------------------------------------


class CountingBackend(MemoryBackend):
    """A MemoryBackend that counts the protocol calls made of it."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.calls: list[str] = []

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> Any:
        self.calls.append("compare_and_set")
        return super().compare_and_set(request, force=force)

    def renew(self, key: str, owner: str, token: int, ttl: float) -> Any:
        self.calls.append("renew")
        return super().renew(key, owner, token, ttl)

    def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        self.calls.append("release")
        return super().release(key, owner, token=token, force=force)

    def get(self, key: str) -> Any:
        self.calls.append("get")
        return super().get(key)

    def server_time(self) -> Any:
        self.calls.append("server_time")
        return super().server_time()


def calls_during(action: Callable[[], object], **functions: Callable[..., Any]) -> dict[str, int]:
    """How many times each of ``functions`` (by its code) ran while ``action()`` ran."""
    codes = {function.__code__: name for name, function in functions.items()}
    counts = dict.fromkeys(functions, 0)

    def profile(frame: Any, event: str, arg: object) -> None:
        if event == "call":
            name = codes.get(frame.f_code)
            if name is not None:
                counts[name] += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(previous)
    return counts


def one_pair(lock: Lock) -> Callable[[], None]:
    def pair() -> None:
        assert lock.acquire(blocking=False)
        assert lock.release()

    return pair


def test_a_lock_pair_makes_one_store_call_each_way_and_reads_the_clock_three_times() -> None:
    clock = FakeClock()
    backend = CountingBackend(clock)
    lock = Lock("lean", backend, clock=clock)
    one_pair(lock)()  # the first pair may set things up
    backend.calls.clear()
    counts = calls_during(
        one_pair(lock),
        check_key=check_key,
        check_unique_key=_validation.check_unique_key,
        monotonic=FakeClock.monotonic,
        now=FakeClock.now,
    )
    assert backend.calls == ["compare_and_set", "release"]
    # The start of the acquire, the send, the reply; the release reads it only for a
    # listener or the INFO log (the term's length).
    assert counts["monotonic"] == 3
    # Server time only inside the backend: one for the grant, one for the release.
    assert counts["now"] == 2
    # The key is checked when the lock is made; per pair only the backend's own checks
    # run (the request's key, owner and acquisition id; the release's key and owner).
    assert counts["check_key"] + counts["check_unique_key"] == 5
    assert counts["check_unique_key"] == 1  # the fresh acquisition id


def test_the_counts_see_a_check_added_to_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutation: a lock that checked its key again on each acquire is caught."""
    clock = FakeClock()
    lock = Lock("lean", CountingBackend(clock), clock=clock)
    acquire = Lock.acquire

    def checking(self: Lock, *args: Any, **kwargs: Any) -> bool:
        check_key(self.key)
        self._clock.monotonic()
        return acquire(self, *args, **kwargs)

    monkeypatch.setattr(Lock, "acquire", checking)
    counts = calls_during(one_pair(lock), check_key=check_key, monotonic=FakeClock.monotonic)
    assert counts == {"check_key": 5, "monotonic": 4}


def test_a_lock_makes_no_store_call_and_no_check_without_a_backend_check() -> None:
    """The lock's own share of a pair: no key check, no server time (a backend that checks
    nothing)."""
    clock = FakeClock()

    class Unchecked(CountingBackend):
        def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> Any:
            self.calls.append("compare_and_set")
            record = LeaseRecord(
                key=request.key,
                owner=request.owner,
                token=1,
                acquired_at=None,
                expires_at=None,
                acquisition=request.acquisition,
            )
            return CasResult(acquired=True, record=record)

        def release(
            self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
        ) -> bool:
            self.calls.append("release")
            return True

    backend = Unchecked(clock)
    lock = Lock("lean", backend, clock=clock)
    counts = calls_during(one_pair(lock), check_key=check_key, now=FakeClock.now)
    assert counts == {"check_key": 0, "now": 0}
    assert backend.calls == ["compare_and_set", "release"]


def test_store_errors_and_slow_round_trips_build_no_event_without_a_listener(
    built: Built,
) -> None:
    from mongoelector._common.monitor import Monitor
    from mongoelector.core.events import SlowRoundTrips
    from mongoelector.errors import BackendUnavailable

    monitor = Monitor(kind="lock", key="k", owner="o", renew_deadline=1.0, listeners=())
    monitor.store_error("acquire", BackendUnavailable("down"))
    monitor.slow_round_trips(
        SlowRoundTrips(round_trip=1.0, renew_deadline=1.0, retry_period=0.5, cleared=False)
    )
    assert built.events == 0


def loaded_modules(statement: str) -> set[str]:
    """The modules loaded in a fresh interpreter after ``statement``."""
    probe = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))\n"
    return set(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.split()
    )


#: What a lock loads only when it is used for it.
ON_USE = (
    "mongoelector.monitoring",  # the event classes: when a listener gets its first event
    "mongoelector._sync.renewer",  # the renewer and the scheduler's threads: auto_renew
    "mongoelector._sync.scheduler",
    "pymongo",  # MongoDB: a MongoDB backend
    "bson",
)


def test_a_lock_on_memory_loads_no_pymongo_no_events_and_no_renewer() -> None:
    loaded = loaded_modules(
        "from mongoelector import Lock\n"
        "from mongoelector.backends import MemoryBackend\n"
        "lock = Lock('k', MemoryBackend())\n"
        "lock.acquire(blocking=False)\n"
        "lock.release()\n"
    )
    assert "mongoelector._sync.lock" in loaded
    assert not [module for module in ON_USE if module in loaded]


def test_what_a_lock_loads_on_use_is_loaded_when_used() -> None:
    """The negative control of the test above: each module does load once it is needed."""
    loaded = loaded_modules(
        "from mongoelector import Lock, monitoring\n"
        "from mongoelector.backends import MemoryBackend\n"
        "class Listener(monitoring.EventListener):\n"
        "    pass\n"
        "lock = Lock('k', MemoryBackend(), auto_renew=True, event_listeners=[Listener()])\n"
        "lock.acquire(blocking=False)\n"
        "lock.release()\n"
        "import mongomock\n"
        "from mongoelector import MongoLocker\n"
        "MongoLocker('k', mongomock.MongoClient()['db']).acquire(blocking=False)\n"
    )
    assert [module for module in ON_USE if module not in loaded] == []


def test_the_listener_names_are_monitoring_s() -> None:
    from mongoelector import _listeners

    for name in ("ELECTOR", "LOCK", "EventListener", "register", "unregister", "registered"):
        assert getattr(monitoring, name) is getattr(_listeners, name)
    assert monitoring.EventListener.__module__ == "mongoelector.monitoring"


# --- round 3: memoized key checks, the release's clock, no renewer bookkeeping ----------------


def test_a_pair_checks_each_key_in_full_only_the_first_time() -> None:
    """The backend's five key checks per pair stay; after the first pair each is one lookup,
    but for the fresh acquisition id (checked in full, and not remembered)."""
    clock = FakeClock()
    lock = Lock("lean-memo", CountingBackend(clock), clock=clock)
    one_pair(lock)()
    remembered = len(_validation._GOOD_KEYS)
    counts = calls_during(one_pair(lock), check_key=check_key, full=_validation._check_new_key)
    assert counts == {"check_key": 4, "full": 1}
    assert len(_validation._GOOD_KEYS) == remembered


def test_the_counts_see_the_key_memo_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutation: with the memo never filled, every check is a full one again."""
    clock = FakeClock()
    lock = Lock("lean-memo-off", CountingBackend(clock), clock=clock)
    monkeypatch.setattr(_validation, "_GOOD_KEYS", _NeverRemembers())
    one_pair(lock)()
    counts = calls_during(one_pair(lock), check_key=check_key, full=_validation._check_new_key)
    assert counts == {"check_key": 4, "full": 5}


class _NeverRemembers(dict):  # type: ignore[type-arg]
    def __setitem__(self, key: object, value: object) -> None:
        pass


BAD_KEYS: list[object] = ["", "a\x00b", "k" * 1025, None, 1, b"key", {"$gt": ""}]


def memo_is_sound() -> bool:
    """Every key the memo holds is an exact ``str`` that the full check accepts."""
    for key in list(_validation._GOOD_KEYS):
        if type(key) is not str:
            return False
        try:
            _validation._check_new_key(key, "key")
        except (TypeError, ValueError):
            return False
    return True


@pytest.mark.parametrize("bad", BAD_KEYS, ids=repr)
def test_a_bad_key_is_refused_every_time_with_the_same_message(bad: object) -> None:
    check_key("good-key")  # the memo is in use
    messages = []
    for _ in range(3):
        with pytest.raises((TypeError, ValueError)) as raised:
            check_key(bad, name="lock key")
        messages.append(str(raised.value))
    assert len(set(messages)) == 1 and "lock key" in messages[0]
    assert memo_is_sound()


def test_a_str_subclass_is_checked_in_full_every_time_and_never_remembered() -> None:
    class Sneaky(str):
        pass

    key = Sneaky("sneaky-key")
    counts = calls_during(
        lambda: [check_key(key) for _ in range(3)], full=_validation._check_new_key
    )
    assert counts == {"full": 3}
    assert all(type(k) is str for k in _validation._GOOD_KEYS)


def test_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_validation, "_GOOD_KEYS", {})
    for i in range(_validation._GOOD_KEYS_MAX * 2 + 7):
        check_key(f"key-{i}")
    assert 0 < len(_validation._GOOD_KEYS) <= _validation._GOOD_KEYS_MAX
    assert memo_is_sound()


def test_the_soundness_check_sees_a_bad_key_in_the_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutation: a memo that had taken a bad key would let it through, and is caught."""
    monkeypatch.setitem(_validation._GOOD_KEYS, "a\x00b", None)
    assert check_key("a\x00b") == "a\x00b"  # what the broken memo would do
    assert not memo_is_sound()


SECONDS_VALUES: list[object] = [
    0.5, 1.0, 0.0, -0.0, -1.0, 1e-9, 0.001, 0.0009, 365 * 24 * 3600.0, 365 * 24 * 3600.0 + 1,
    float("nan"), float("inf"), float("-inf"), 3, 0, True, "1", None,
]  # fmt: skip


def _outcome(check: Callable[[], float]) -> object:
    try:
        value = check()
    except (TypeError, ValueError) as error:
        return (type(error), str(error))
    return (type(value), value)


@pytest.mark.parametrize("value", SECONDS_VALUES, ids=repr)
@pytest.mark.parametrize(
    "bounds",
    [{}, {"least": 0.001}, {"most": None}, {"least": 0.001, "most": 10.0}],
    ids=repr,
)
def test_check_seconds_shortcut_answers_as_the_full_check(
    value: object, bounds: dict[str, Any]
) -> None:
    """The shortcut for a float in range returns what the full check returns, and every
    other value (NaN, inf, out of range, not a float) still gets the full check's error."""
    fast = _outcome(lambda: _validation.check_seconds(value, name="ttl", **bounds))
    full = _outcome(lambda: _full_check_seconds(value, name="ttl", **bounds))
    assert fast == full


def _full_check_seconds(
    value: Any,
    *,
    name: str,
    least: float | None = None,
    most: float | None = _validation.MAX_SECONDS,
) -> float:
    seconds = _validation._check_number(value, name)
    if seconds <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return _validation._check_range(seconds, value, name, least, most)


def test_a_release_reads_the_clock_for_a_listener_and_reports_how_long_it_held() -> None:
    clock = FakeClock()
    seen: list[Any] = []

    class Listener(monitoring.EventListener):
        def leadership_lost(self, event: Any) -> None:
            seen.append(event)

    lock = Lock("lean-listened", CountingBackend(clock), clock=clock, event_listeners=[Listener()])
    assert lock.acquire(blocking=False)
    clock.advance(2.0)
    counts = calls_during(lock.release, monotonic=FakeClock.monotonic)
    assert counts == {"monotonic": 1}
    assert [event.held_for for event in seen] == [2.0]


def test_a_release_without_listener_still_ends_the_term(monkeypatch: pytest.MonkeyPatch) -> None:
    """The term ends at release even when nobody is told: a later loss of the same token is
    not reported with a stale length."""
    clock = FakeClock()
    lock = Lock("lean-term", CountingBackend(clock), clock=clock)
    assert lock.acquire(blocking=False)
    assert lock._monitor._term is not None
    assert lock.release()
    assert lock._monitor._term is None


def test_a_lock_without_auto_renew_never_touches_a_renewer() -> None:
    clock = FakeClock()
    lock = Lock("lean-no-renewer", CountingBackend(clock), clock=clock)
    counts = calls_during(one_pair(lock), retire=Lock._retire)
    assert counts == {"retire": 0}


def test_the_counts_see_a_renewer_stopped_on_each_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutation: a release that stopped the (absent) renewer anyway is counted."""
    clock = FakeClock()
    lock = Lock("lean-no-renewer", CountingBackend(clock), clock=clock)
    monkeypatch.setattr(lock, "_auto_renew", True)
    monkeypatch.setattr(
        Lock, "_took", lambda self, holding, run=None: super(Lock, self)._took(holding, run)
    )
    counts = calls_during(one_pair(lock), retire=Lock._retire)
    assert counts == {"retire": 1}


# --- records built through their slots -------------------------------------------------------


def test_builders_make_the_same_records_as_the_dataclass_init() -> None:
    import pickle

    from mongoelector._value import frozen_builder, frozen_replacer
    from mongoelector.core.lease import Holding, new_holding

    values = {
        "key": "k",
        "owner": "o",
        "token": 3,
        "acquired_at": None,
        "expires_at": None,
        "host": "h",
        "pid": 9,
        "metadata": {"a": "b"},
        "acquisition": "x",
    }
    names = [field.name for field in dataclasses.fields(LeaseRecord)]
    built = frozen_builder(LeaseRecord)(*(values[name] for name in names))
    made = LeaseRecord(**values)
    assert built == made and repr(built) == repr(made) and type(built) is LeaseRecord
    assert pickle.loads(pickle.dumps(built)) == made
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.token = 4  # type: ignore[misc]
    with pytest.raises(TypeError, match="takes 9 values, got 8"):
        frozen_builder(LeaseRecord)(*list(values.values())[:8])
    assert new_holding(made, 1.0, 2.0) == Holding(record=made, started_at=1.0, valid_until=2.0)
    replace_owner = frozen_replacer(LeaseRecord, "owner")
    assert replace_owner(made, None) == dataclasses.replace(made, owner=None)


def test_builders_refuse_classes_they_would_build_wrongly() -> None:
    from mongoelector._value import frozen_builder

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            raise ValueError("checked")

    for cls in (NoSlots, Checked, int):
        with pytest.raises(TypeError):
            frozen_builder(cls)


def test_the_record_check_sees_a_builder_that_drops_a_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Mutation: a replacer that forgot a field (here ``metadata``) is caught by the
    comparison with ``dataclasses.replace`` that the tests above make."""
    from mongoelector._common import outcomes

    request = LeaseRequest(key="k", owner="o", ttl=5.0, host="h", pid=7, metadata={"a": "b"})
    good = outcomes.with_acquisition(request, "second")
    assert good == dataclasses.replace(request, acquisition="second")

    def forgetful(instance: LeaseRequest, value: str) -> LeaseRequest:
        return LeaseRequest(
            key=instance.key, owner=instance.owner, ttl=instance.ttl, host=instance.host,
            pid=instance.pid, acquisition=value,
        )  # fmt: skip

    monkeypatch.setattr(outcomes, "_with_acquisition", forgetful)
    assert outcomes.with_acquisition(request, "second") != dataclasses.replace(
        request, acquisition="second"
    )


# --- the acquire pipeline from its constant parts -------------------------------------------


def _holder_fields(request: LeaseRequest, acquire_id: str) -> dict[str, object]:
    """The holder's fields an acquire writes, in the order of the stored document."""
    from mongoelector.backends._mongo import commands as c

    return {
        c.LOCKED: True,
        c.OWNER: request.owner,
        c.HOST: request.host,
        c.PID: request.pid,
        c.ACQUIRE_ID: acquire_id,
        c.METADATA: dict(request.metadata),
    }


def _reference_acquire_pipeline(
    request: LeaseRequest, *, acquire_id: str, force: bool, least_token: int
) -> Any:
    """The acquire pipeline as it was built before the constant parts were shared."""
    from mongoelector.backends._mongo import commands as c

    free: object = True
    if not force:
        free = {"$or": [{"$ne": ["$" + c.LOCKED, True]}, {"$lte": ["$" + c.EXPIRES, c.NOW]}]}
    token = {
        "$max": [
            {"$add": [{"$ifNull": ["$" + c.TOKEN, 0]}, 1]},
            {"$multiply": [{"$toLong": c.NOW}, 1000]},
            c.literal(least_token),
        ]
    }
    taken: dict[str, object] = {
        c.ID: "$" + c.ID,
        **{k: c.literal(v) for k, v in _holder_fields(request, acquire_id).items()},
        c.CREATED: c.NOW,
        c.EXPIRES: {"$add": [c.NOW, c.ttl_millis(request.ttl)]},
        c.TOKEN: token,
    }
    stage = {"$replaceWith": {"$cond": {"if": free, "then": taken, "else": "$$ROOT"}}}
    return c.FindAndModify(filter={c.ID: request.key}, update=[stage], upsert=True)


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("metadata", [{}, {"job": "nightly"}])
def test_the_acquire_pipeline_is_the_same_command_in_the_same_order(
    force: bool, metadata: dict[str, str]
) -> None:
    import pickle

    from mongoelector.backends._mongo import commands

    request = LeaseRequest(key="k", owner="o", ttl=2.5, host="h", pid=7, metadata=metadata)
    expected = _reference_acquire_pipeline(request, acquire_id="a1", force=force, least_token=9)
    before = pickle.dumps((commands._FREE, commands._NEXT_TOKEN, commands._TIME_TOKEN))
    for _ in range(2):
        made = commands.acquire_pipeline(request, acquire_id="a1", force=force, least_token=9)
        assert made == expected
        # Field order is part of the document written: compare it too.
        assert repr(made) == repr(expected)
        assert made.update[0]["$replaceWith"]["$cond"]["then"][commands.METADATA] is not (
            request.metadata
        )
    assert pickle.dumps((commands._FREE, commands._NEXT_TOKEN, commands._TIME_TOKEN)) == before


@pytest.mark.parametrize("metadata", [{}, {"job": "nightly"}])
def test_a_classic_acquire_writes_the_same_fields_in_the_same_order(
    metadata: dict[str, str],
) -> None:
    from datetime import datetime, timezone

    from mongoelector.backends._mongo import commands as c

    request = LeaseRequest(key="k", owner="o", ttl=2.5, host="h", pid=7, metadata=metadata)
    now = datetime(2026, 12, 5, 3, 0, 0, 123456, tzinfo=timezone.utc)
    call = c.ClassicAcquire(
        request=request, acquire_id="a1", force=False, now=now, uncertainty=0.01, least_token=9
    )
    expected = {
        **_holder_fields(request, "a1"),
        c.CREATED: c.bson_time(now),
        c.EXPIRES: c._expiry(now, 2.51),
        c.TOKEN: 42,
    }
    made = call.fields(42)
    assert list(made.items()) == list(expected.items())
    assert made[c.METADATA] is not request.metadata  # a copy: the command owns it


def test_the_classic_fields_check_sees_a_dropped_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutation: fields that lose the host are caught by the comparison above."""
    from datetime import datetime, timezone

    from mongoelector.backends._mongo import commands as c

    fields = c.ClassicAcquire.fields

    def without_host(self: Any, token: int) -> dict[str, Any]:
        made = fields(self, token)
        del made[c.HOST]
        return made

    monkeypatch.setattr(c.ClassicAcquire, "fields", without_host)
    request = LeaseRequest(key="k", owner="o", ttl=2.5, host="h", pid=7)
    now = datetime(2026, 12, 5, 3, 0, 0, tzinfo=timezone.utc)
    call = c.ClassicAcquire(
        request=request, acquire_id="a1", force=False, now=now, uncertainty=0.0, least_token=9
    )
    expected = {**_holder_fields(request, "a1"), c.CREATED: now, c.EXPIRES: now, c.TOKEN: 1}
    assert list(call.fields(1)) != list(expected)


def test_the_pipeline_check_sees_a_changed_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutation: a template whose token no longer starts from server time is caught."""
    from mongoelector.backends._mongo import commands

    monkeypatch.setattr(commands, "_TIME_TOKEN", {"$literal": 0})
    request = LeaseRequest(key="k", owner="o", ttl=2.5, host="h", pid=7)
    made = commands.acquire_pipeline(request, acquire_id="a1", force=False, least_token=9)
    expected = _reference_acquire_pipeline(request, acquire_id="a1", force=False, least_token=9)
    assert made != expected


def requests_built_per_pair(monkeypatch: pytest.MonkeyPatch) -> int:
    """``LeaseRequest``s a ``Lock`` acquire+release pair builds (none is kept per lock)."""
    from mongoelector._common import outcomes

    built = [0]
    build, replace = outcomes._build_request, outcomes._with_acquisition

    def counted_build(*values: Any) -> LeaseRequest:
        built[0] += 1
        return build(*values)

    def counted_replace(request: LeaseRequest, acquisition: str) -> LeaseRequest:
        built[0] += 1
        return replace(request, acquisition)

    monkeypatch.setattr(outcomes, "_build_request", counted_build)
    monkeypatch.setattr(outcomes, "_with_acquisition", counted_replace)
    lock = Lock("k", MemoryBackend(clock=FakeClock()))
    lock.acquire(blocking=False)
    lock.release()
    return built[0]


def test_a_lock_pair_builds_one_request_carrying_the_try_s_acquisition_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert requests_built_per_pair(monkeypatch) == 1


def test_the_count_sees_a_request_built_then_copied_for_the_try(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mongoelector._common.lock_base import LockBase
    from mongoelector._common.outcomes import request_for

    monkeypatch.setattr(
        LockBase,
        "_request",
        lambda self, action=None: request_for(
            self._key, self._uuid, self._ttl, self._host, self._pid
        ),
    )
    assert requests_built_per_pair(monkeypatch) == 2
