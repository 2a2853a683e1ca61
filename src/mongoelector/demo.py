"""The demo: three electors elect a leader, survive its crash, and hand over gracefully."""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO, TypeVar

from mongoelector._sync.elector import LeaderElector
from mongoelector.backends.protocol import (
    Capability,
    CasResult,
    LeaseRecord,
    LeaseRequest,
    StorageBackend,
)
from mongoelector.clock import Clock, SystemClock
from mongoelector.core.events import LeaderInfo
from mongoelector.errors import BackendError, BackendUnavailable
from mongoelector.picture.recorder import LiveRecorder

__all__ = ["DemoSettings", "Severable", "demo_recorder", "run_demo"]

T = TypeVar("T")


class Severable:
    """A link from one node to a backend that can be cut, as when a node crashes.

    While cut, every call raises :class:`BackendUnavailable` without reaching the store.
    Errors the store itself raises are appended to ``errors`` when given.
    """

    def __init__(self, backend: StorageBackend, errors: list[BackendError] | None = None) -> None:
        self._backend = backend
        self._cut = threading.Event()
        self._errors = errors

    def cut(self) -> None:
        self._cut.set()

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    def _through(self, call: Callable[[], T]) -> T:
        if self._cut.is_set():
            raise BackendUnavailable("link to the store is cut")
        try:
            return call()
        except BackendError as error:
            if self._errors is not None:
                self._errors.append(error)
            raise

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset()

    def server_time(self) -> datetime:
        return self._through(self._backend.server_time)

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        return self._through(lambda: self._backend.compare_and_set(request, force=force))

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        return self._through(lambda: self._backend.renew(key, owner, token, ttl))

    def release(
        self, key: str, owner: str | None, *, token: int | None = None, force: bool = False
    ) -> bool:
        return self._through(lambda: self._backend.release(key, owner, token=token, force=force))

    def get(self, key: str) -> LeaseRecord | None:
        return self._through(lambda: self._backend.get(key))


#: Real time the demo allows beyond a bound for threads that wake late.
_SCHEDULING_SLACK = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoSettings:
    """Timing of the demo, in seconds (short, so that it finishes quickly).

    ``hold`` is how long each new leader leads (renewing) before the demo
    crashes it, stops it, or ends.
    """

    ttl: float = 3.0
    renew_deadline: float = 2.0
    retry_period: float = 0.5
    nodes: int = 3
    hold: float = 1.0


@dataclass
class _Timeline:
    clock: Clock
    out: TextIO
    start: float = field(init=False)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.start = self.clock.monotonic()

    def say(self, who: str, what: str) -> None:
        with self.lock:
            elapsed = self.clock.monotonic() - self.start
            self.out.write(f"  t={elapsed:6.2f}s  {who:<8} {what}\n")
            self.out.flush()


def _crash(link: Severable, name: str, recorder: LiveRecorder | None) -> None:
    """Cut ``name`` off from the store, as a crash looks to everyone else."""
    link.cut()
    if recorder is not None:
        recorder.mark(name, "crash", "cut off from the store (a crash, to the others)")
        recorder.fault(name, "cut off", "cut off from the store")


def _stepped_down(timeline: _Timeline, name: str, link: Severable) -> Callable[[], None]:
    """``name``'s ``on_leader_loss``: says why it stepped down."""

    def say() -> None:
        if link.is_cut:
            timeline.say(name, "stepped down at its renew deadline (no renewal reached the store)")
        else:
            timeline.say(name, "stepped down (stopped)")

    return say


def _report_takeover(
    timeline: _Timeline,
    who: str,
    waited: float,
    bound: tuple[str, str, float],
    token: int | None,
    missed: list[str],
) -> None:
    """Print a takeover beside its bound (with the slack allowed for threads that wake late);
    remember the event, and say so, if it came later than that."""
    event, formula, seconds = bound
    allowed = seconds + _SCHEDULING_SLACK
    late = waited > allowed
    if late:
        missed.append(event)
    timeline.say(
        "demo",
        f"{who} {waited:.2f}s after the {event} (bound {formula} = {seconds:.2f}s, "
        f"{allowed:.2f}s with {_SCHEDULING_SLACK:.2f}s scheduling slack){' LATE' if late else ''}"
        f", token {token}",
    )


def _increasing(tokens: list[int | None]) -> bool:
    known = [token for token in tokens if token is not None]
    return len(known) == len(tokens) and all(a < b for a, b in itertools.pairwise(known))


def _wait_for(predicate: Callable[[], bool], clock: Clock, limit: float) -> bool:
    deadline = clock.monotonic() + limit
    while clock.monotonic() < deadline:
        if predicate():
            return True
        clock.sleep(0.02)
    return predicate()


def _make_electors(
    backend: StorageBackend,
    key: str,
    settings: DemoSettings,
    clock: Clock,
    timeline: _Timeline,
    names: dict[str, str],
    recorder: LiveRecorder | None,
    store_errors: list[BackendError] | None = None,
) -> tuple[list[Severable], list[LeaderElector]]:
    links: list[Severable] = []
    electors: list[LeaderElector] = []

    def name_of(info: LeaderInfo) -> str:
        return names.get(info.uuid, info.uuid[:8])

    def announcer(name: str) -> Callable[[LeaderInfo], None]:
        def announce(info: LeaderInfo) -> None:
            if names.get(info.uuid) != name:
                timeline.say(name, f"sees leader {name_of(info)} (token {info.token})")

        return announce

    for index in range(settings.nodes):
        name = f"node-{index + 1}"
        link = Severable(backend, store_errors)
        elector = LeaderElector(
            key,
            link,
            ttl=settings.ttl,
            renew_deadline=settings.renew_deadline,
            retry_period=settings.retry_period,
            clock=clock,
            on_leader=functools.partial(timeline.say, name, "became leader"),
            on_leader_loss=_stepped_down(timeline, name, link),
            on_new_leader=announcer(name),
            event_listeners=[recorder.listener(name)] if recorder is not None else (),
        )
        names[elector.uuid] = name
        links.append(link)
        electors.append(elector)
    return links, electors


def demo_recorder(settings: DemoSettings | None = None, clock: Clock | None = None) -> LiveRecorder:
    """A recorder for :func:`run_demo`'s picture: one lane per demo node."""
    settings = settings or DemoSettings()
    return LiveRecorder(
        clock or SystemClock(),
        [f"node-{index + 1}" for index in range(settings.nodes)],
        ttl=settings.ttl,
        renew_deadline=settings.renew_deadline,
    )


def run_demo(
    backend: StorageBackend,
    out: TextIO,
    *,
    settings: DemoSettings | None = None,
    clock: Clock | None = None,
    key: str = "demo-scheduler",
    recorder: LiveRecorder | None = None,
    store_errors: list[BackendError] | None = None,
) -> bool:
    """Run the demo scenario on ``backend``, printing a timeline to ``out``.

    Every error the store raises (not the simulated crash) is appended to
    ``store_errors`` if given, so that a caller can tell why a step failed.

    Returns ``True`` if every step happened: a leader was elected, replaced
    after its crash by another node with a greater token, and replaced again
    after its graceful stop. How long each takeover took is printed beside its
    bound (a crash: from the crash; a handover: from the moment ``stop()``
    returned, the lease freed) and the scheduling slack allowed on top; a
    takeover later than that is marked ``LATE`` in the timeline. It does not
    fail the demo: on a busy machine threads may wake late, and wall-clock
    lateness is not a failure of the library. With a ``recorder``
    (see :func:`demo_recorder`), terms, lease writes and faults are recorded
    for a picture too.
    """
    settings = settings or DemoSettings()
    clock = clock or SystemClock()
    timeline = _Timeline(clock, out)
    names: dict[str, str] = {}
    links, electors = _make_electors(
        backend, key, settings, clock, timeline, names, recorder, store_errors
    )

    def leader() -> LeaderElector | None:
        leaders = [e for e in electors if e.is_leader]
        return leaders[0] if len(leaders) == 1 else None

    out.write(
        f"mongoelector demo: {settings.nodes} electors on {type(backend).__name__}, "
        f"ttl={settings.ttl}s renew_deadline={settings.renew_deadline}s "
        f"retry_period={settings.retry_period}s\n"
    )
    missed: list[str] = []
    try:
        for elector in electors:
            elector.start()
        if not _wait_for(lambda: leader() is not None, clock, settings.ttl * 2):
            timeline.say("demo", "no leader was elected")
            return False
        clock.sleep(settings.hold)
        first = leader()
        assert first is not None
        first_name = names[first.uuid]
        tokens = [first.token]
        timeline.say(
            "demo",
            f"{first_name} leads with token {first.token}; now it is cut off from the store "
            "(to the others, a crash)",
        )
        crashed_at = clock.monotonic()
        _crash(links[electors.index(first)], first_name, recorder)
        if not _wait_for(
            lambda: (now := leader()) is not None and now is not first, clock, 3 * settings.ttl
        ):
            timeline.say("demo", "nobody replaced the crashed leader")
            return False
        second = leader()
        assert second is not None
        tokens.append(second.token)
        _report_takeover(
            timeline,
            f"{names[second.uuid]} took over",
            clock.monotonic() - crashed_at,
            ("cut-off", "ttl + retry_period", settings.ttl + settings.retry_period),
            second.token,
            missed,
        )
        first.stop()
        clock.sleep(settings.hold)
        timeline.say("demo", f"{names[second.uuid]} now hands over gracefully (stop)")
        if recorder is not None:
            recorder.mark(names[second.uuid], "stop", "stops gracefully")
        second.stop()
        # The handover bound counts from the moment the lease is free: stop() returns then.
        handed_at = clock.monotonic()
        if not _wait_for(lambda: leader() is not None, clock, 3 * settings.ttl):
            timeline.say("demo", "nobody took over after the graceful stop")
            return False
        third = leader()
        assert third is not None
        tokens.append(third.token)
        _report_takeover(
            timeline,
            f"{names[third.uuid]} took over",
            clock.monotonic() - handed_at,
            ("handover", "retry_period", settings.retry_period),
            third.token,
            missed,
        )
        clock.sleep(settings.hold)
        if not _increasing(tokens):
            timeline.say("demo", f"fencing tokens did not increase: {tokens}")
            return False
    finally:
        for elector in electors:
            elector.stop()
    late = f" (took longer than its bound: {', '.join(missed)})" if missed else ""
    timeline.say("demo", "all electors stopped" + late)
    return True
