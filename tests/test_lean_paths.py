"""The hot paths do only what someone asked for (counts, never times: speed is benchmarked)."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from mongoelector import Lock, monitoring
from mongoelector._common import monitor as monitor_module
from mongoelector._common.outcomes import with_acquisition
from mongoelector.backends import MemoryBackend
from mongoelector.backends._mongo import plans
from mongoelector.backends._mongo_sync import drive
from mongoelector.backends.protocol import LeaseRequest
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
        event_type = getattr(monitor_module, name)

        def make(*args: Any, _type: Any = event_type, **kwargs: Any) -> Any:
            counts.events += 1
            return _type(*args, **kwargs)

        monkeypatch.setattr(monitor_module, name, make)
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
    assert caplog.records == []


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
    assert len(caplog.records) == 4 and built.texts == 4


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
