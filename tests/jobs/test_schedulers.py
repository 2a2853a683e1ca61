"""``jobs.exclusive`` under real schedulers: APScheduler and Celery (optional test dependencies).

The lock runs on a FakeClock with ``at_least`` longer than the run, so which of
the two schedulers' calls wins does not matter: exactly one runs per tick. The
only real waiting is a bounded hang guard for the schedulers' threads.
"""

from __future__ import annotations

import threading

import pytest

from mongoelector import jobs
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock

GUARD = 30.0  # real seconds; a hang guard, not a timing assertion


def test_two_apscheduler_schedulers_run_the_job_once_per_tick(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    background = pytest.importorskip("apscheduler.schedulers.background")
    events = pytest.importorskip("apscheduler.events")
    runs: list[int | None] = []

    @jobs.exclusive("report", backend, at_most=60, at_least=30, clock=clock)
    def report() -> None:
        runs.append(jobs.current_token())

    finished = threading.Semaphore(0)
    schedulers = [background.BackgroundScheduler() for _ in range(2)]
    for scheduler in schedulers:
        scheduler.add_listener(lambda _event: finished.release(), events.EVENT_JOB_EXECUTED)
        scheduler.start(paused=True)
    try:
        for tick in range(3):
            for scheduler in schedulers:
                scheduler.add_job(report)  # a date trigger of "now": this tick on this node
            for scheduler in schedulers:
                scheduler.resume()
            for _ in schedulers:
                assert finished.acquire(timeout=GUARD)
            for scheduler in schedulers:
                scheduler.pause()
            assert len(runs) == tick + 1  # one node ran it, the other skipped
            clock.advance(60)
    finally:
        for scheduler in schedulers:
            scheduler.shutdown(wait=True)
    assert runs == [1, 2, 3]


def test_a_celery_task_runs_once_when_two_workers_take_the_same_beat(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    celery = pytest.importorskip("celery")
    app = celery.Celery("jobs-test", broker="memory://", backend="cache+memory://")

    @app.task(name="report")
    @jobs.exclusive("report", backend, at_most=60, at_least=30, clock=clock)
    def report() -> int | None:
        return jobs.current_token()

    # Two workers receiving the same beat message each run the task body.
    first, second = report.apply(), report.apply()
    assert (first.get(), second.get()) == (1, None)
    clock.advance(60)  # the next beat
    assert report.apply().get() == 2
