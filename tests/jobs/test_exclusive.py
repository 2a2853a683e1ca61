"""``mongoelector.jobs.exclusive``: one run at a time, on an in-memory store under a FakeClock."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from mongoelector import Lock, jobs, monitoring
from mongoelector.aio import InlineBackend
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock


class Skips(monitoring.EventListener):
    def __init__(self) -> None:
        self.events: list[monitoring.JobSkippedEvent] = []

    def job_skipped(self, event: monitoring.JobSkippedEvent) -> None:
        self.events.append(event)


def holder(backend: MemoryBackend, clock: FakeClock, ttl: float = 60) -> Lock:
    lock = Lock("job", backend, ttl=ttl, clock=clock)
    lock.acquire(blocking=False)
    return lock


def test_runs_when_free_with_its_token_and_frees_the_lock(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    seen: list[int | None] = []

    @jobs.exclusive("job", backend, clock=clock)
    def work(x: int) -> int:
        seen.append(jobs.current_token())
        return x * 2

    assert work(21) == 42
    assert seen == [1]
    assert jobs.current_token() is None
    record = backend.get("job")
    assert record is None or not record.is_held(clock.now())
    assert work.__name__ == "work"


def test_the_lease_lasts_at_most_while_running(backend: MemoryBackend, clock: FakeClock) -> None:
    expiries = []

    @jobs.exclusive("job", backend, at_most=30, clock=clock)
    def work() -> None:
        record = backend.get("job")
        assert record is not None
        expiries.append(record.expires_at - clock.now())

    work()
    assert expiries == [timedelta(seconds=30)]


def test_a_held_lock_skips_the_call_logs_it_and_tells_listeners(
    backend: MemoryBackend, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    other = holder(backend, clock)
    skips = Skips()
    ran = []

    @jobs.exclusive("job", backend, clock=clock, event_listeners=[skips])
    def work() -> str:
        ran.append(1)
        return "ran"

    with caplog.at_level(logging.INFO, logger="mongoelector.jobs"):
        assert work() is None
    assert ran == []
    assert any(
        r.name == "mongoelector.jobs" and r.levelno == logging.INFO and "skipped" in r.message
        for r in caplog.records
    )
    [event] = skips.events
    assert event.key == "job" and event.kind == monitoring.LOCK
    assert event.job.endswith("work") and other.uuid in event.reason and event.waited == 0
    other.release()
    assert work() == "ran"


def test_wait_seconds_waits_for_the_holder_then_runs_or_gives_up(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    holder(backend, clock, ttl=2)  # never released: its lease lapses after 2 s

    @jobs.exclusive("job", backend, clock=clock, wait=1)
    def impatient() -> str:
        return "ran"

    @jobs.exclusive("job", backend, clock=clock, wait=5)
    def patient() -> str:
        return "ran"

    skips = Skips()
    monitoring.register(skips)
    try:
        assert impatient() is None  # FakeClock.sleep advances the clock: ~1 s waited
    finally:
        monitoring.unregister(skips)
    [event] = skips.events
    assert event.waited >= 1
    assert patient() == "ran"
    assert clock.monotonic() >= 2


def test_wait_true_waits_as_long_as_it_takes(backend: MemoryBackend, clock: FakeClock) -> None:
    holder(backend, clock, ttl=50)

    @jobs.exclusive("job", backend, clock=clock, wait=True)
    def work() -> int | None:
        return jobs.current_token()

    assert work() == 2
    assert clock.monotonic() >= 50


def test_at_least_keeps_the_lease_after_return(backend: MemoryBackend, clock: FakeClock) -> None:
    runs: list[int | None] = []

    @jobs.exclusive("job", backend, at_most=60, at_least=30, clock=clock)
    def work() -> str:
        runs.append(jobs.current_token())
        clock.advance(5)  # the run takes 5 s
        return "ran"

    assert work() == "ran"
    record = backend.get("job")
    assert record is not None and record.is_held(clock.now())
    assert record.expires_at == clock.now() + timedelta(seconds=25)  # start + at_least
    clock.advance(24)  # a late node's tick, 29 s after the start
    assert work() is None
    clock.advance(1)
    assert work() == "ran"
    assert runs == [1, 2]


def test_a_run_longer_than_at_least_releases_at_once(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    @jobs.exclusive("job", backend, at_most=60, at_least=3, clock=clock)
    def work() -> None:
        clock.advance(5)

    work()
    record = backend.get("job")
    assert record is None or not record.is_held(clock.now())


def test_a_crashed_holder_blocks_for_at_most_its_ttl(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    # A crashed run leaves a lease that nobody renews; here: a lock of ttl at_most, abandoned.
    Lock("job", backend, ttl=20, clock=clock).acquire(blocking=False)

    @jobs.exclusive("job", backend, at_most=20, clock=clock)
    def work() -> int | None:
        return jobs.current_token()

    clock.advance(19)
    assert work() is None
    clock.advance(1)
    assert work() == 2


def test_tokens_grow_from_run_to_run(backend: MemoryBackend, clock: FakeClock) -> None:
    @jobs.exclusive("job", backend, clock=clock)
    def work() -> int | None:
        return jobs.current_token()

    tokens = [work() for _ in range(3)]
    assert tokens == sorted(tokens) and len(set(tokens)) == 3


def test_an_exception_propagates_and_frees_the_lock(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    @jobs.exclusive("job", backend, clock=clock)
    def work() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        work()
    assert jobs.current_token() is None
    record = backend.get("job")
    assert record is None or not record.is_held(clock.now())


def test_calls_in_one_process_contend_like_separate_processes(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    inner: list[object] = []

    @jobs.exclusive("job", backend, clock=clock)
    def work(depth: int) -> str:
        if depth == 0:
            inner.append(work(1))
        return "ran"

    assert work(0) == "ran"
    assert inner == [None]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"at_most": 0}, ValueError, "at_most"),
        ({"at_most": 0.01}, ValueError, "at_most"),
        ({"at_least": -1}, ValueError, "at_least"),
        ({"at_most": 10, "at_least": 11}, ValueError, "at_least .* at_most"),
        ({"at_least": 601}, ValueError, "at_most"),
        ({"wait": "yes"}, TypeError, "wait"),
        ({"wait": -1}, ValueError, "wait"),
    ],
)
def test_bad_arguments_are_refused_when_decorating(
    backend: MemoryBackend, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        jobs.exclusive("job", backend, **kwargs)  # type: ignore[arg-type]


def test_a_backend_of_the_wrong_kind_is_refused_when_decorating() -> None:
    with pytest.raises(TypeError):
        jobs.exclusive("job", object())(lambda: None)


# --- async ------------------------------------------------------------------------------


async def test_async_runs_skips_and_reads_its_token(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    skips = Skips()
    store = InlineBackend(backend)

    @jobs.exclusive("job", store, clock=clock, event_listeners=[skips])
    async def work() -> int | None:
        return jobs.current_token()

    assert await work() == 1
    other = holder(backend, clock)
    assert await work() is None
    assert [e.job.endswith("work") for e in skips.events] == [True]
    other.release()
    assert await work() == 3


async def test_async_at_least_and_exceptions(backend: MemoryBackend, clock: FakeClock) -> None:
    store = InlineBackend(backend)

    @jobs.exclusive("job", store, at_least=10, clock=clock)
    async def work(fail: bool) -> str:
        if fail:
            raise RuntimeError("boom")
        return "ran"

    assert await work(False) == "ran"
    clock.advance(9)
    assert await work(False) is None
    clock.advance(1)
    with pytest.raises(RuntimeError, match="boom"):
        await work(True)
    record = backend.get("job")
    assert record is not None and record.is_held(clock.now())  # kept until at_least even so
    clock.advance(10)
    assert await work(False) == "ran"
