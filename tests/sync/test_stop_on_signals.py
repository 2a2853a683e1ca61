"""``stop_on_signals``: SIGTERM steps a service down and frees its leases before it exits.

The first tests run a real worker process holding a ``Lock`` and leading with
a ``LeaderElector`` on a SQLite file, send it SIGTERM, and look at the file
from this process: with ``stop_on_signals`` both leases are free the moment
the worker has exited (a new ``Lock`` gets each without waiting, the records
say released, not expired: their ttl is an hour); without it, the worker dies
holding both. The others check the rules in this process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from mongoelector import LeaderElector, Lock, LockExists, stop_on_signals
from mongoelector.aio import AsyncLock
from mongoelector.backends import MemoryBackend
from mongoelector.backends.sqlite import SQLiteBackend
from mongoelector.testing import FakeClock

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="POSIX signals")

SRC = str(Path(__file__).resolve().parents[2] / "src")
#: Longer than any test run: a lease found free was released, not expired.
TTL = 3600.0

WORKER = """
import signal, sys, threading
from mongoelector import LeaderElector, Lock, stop_on_signals
from mongoelector.backends.sqlite import SQLiteBackend

path, mode = sys.argv[1], sys.argv[2]
backend = SQLiteBackend(path)
lock = Lock("job", backend, ttl={ttl})
elector = LeaderElector(
    "scheduler", backend, ttl={ttl}, retry_period=1.0,
    on_leader_loss=lambda: print("stepped down", flush=True),
)

def before(number, frame):
    print("the handler installed before ran", flush=True)

if mode == "chained":
    signal.signal(signal.SIGTERM, before)
lock.acquire()
elector.poll()
assert elector.is_leader and lock.owned()
if mode == "bare":
    print("ready", flush=True)
    threading.Event().wait()
with stop_on_signals(elector, lock):
    elector.start()
    print("ready", flush=True)
    threading.Event().wait()  # until SIGTERM
print("never printed", flush=True)
"""


def start_worker(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], Path]:
    path = tmp_path / "leases.sqlite"
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER.format(ttl=TTL)))
    worker = subprocess.Popen(
        [sys.executable, str(script), str(path), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert worker.stdout is not None
    line = worker.stdout.readline()
    if line != "ready\n":
        worker.kill()
        pytest.fail(f"worker did not start: {line!r} {worker.communicate()}")
    return worker, path


def terminate(worker: subprocess.Popen[str]) -> tuple[str, str]:
    worker.send_signal(signal.SIGTERM)
    try:
        return worker.communicate(timeout=60)
    finally:
        worker.kill()


@pytest.mark.parametrize("mode", ["plain", "chained"])
def test_sigterm_frees_the_lock_and_the_leadership_before_the_worker_exits_0(
    tmp_path: Path, mode: str
) -> None:
    worker, path = start_worker(tmp_path, mode)

    out, err = terminate(worker)

    assert worker.returncode == 0, err
    assert "stepped down" in out and "never printed" not in out
    assert ("the handler installed before ran" in out) == (mode == "chained")
    with SQLiteBackend(path) as backend:
        for key in ("job", "scheduler"):
            record = backend.get(key)
            assert record is not None and record.owner is None, record  # released
            assert Lock(key, backend, ttl=TTL).acquire(blocking=False)


def test_without_it_a_worker_killed_by_sigterm_keeps_its_leases(tmp_path: Path) -> None:
    worker, path = start_worker(tmp_path, "bare")

    terminate(worker)

    assert worker.returncode == -signal.SIGTERM
    with SQLiteBackend(path) as backend:
        for key in ("job", "scheduler"):
            with pytest.raises(LockExists):
                Lock(key, backend, ttl=TTL).acquire(blocking=False)


def test_a_signal_in_the_block_raises_system_exit_and_frees_everything() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock)
    lock = Lock("job", backend, ttl=TTL, clock=clock)
    elector = LeaderElector("scheduler", backend, ttl=TTL, clock=clock)
    before = signal.getsignal(signal.SIGTERM)
    lock.acquire()
    elector.poll()
    assert elector.is_leader

    with pytest.raises(SystemExit) as exited, stop_on_signals(elector, lock, exit_code=3):
        assert signal.getsignal(signal.SIGTERM) is not before
        signal.raise_signal(signal.SIGTERM)
        pytest.fail("the signal did not end the block")

    assert exited.value.code == 3
    assert not lock.owned() and not elector.is_leader
    assert backend.get("job").owner is None  # type: ignore[union-attr]
    assert backend.get("scheduler").owner is None  # type: ignore[union-attr]
    assert signal.getsignal(signal.SIGTERM) is before


def test_leaving_the_block_normally_frees_everything_too() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock)
    lock = Lock("job", backend, ttl=TTL, clock=clock)

    with stop_on_signals(lock):
        lock.acquire()

    assert not lock.owned() and backend.get("job").owner is None  # type: ignore[union-attr]


def test_only_sync_electors_and_locks_in_the_main_thread() -> None:
    clock = FakeClock()
    with pytest.raises(TypeError, match=r"AsyncLock.*loop\.add_signal_handler"):
        stop_on_signals(AsyncLock("job", MemoryBackend(clock), clock=clock)).__enter__()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one signal"):
        stop_on_signals(signals=()).__enter__()

    errors: list[BaseException] = []

    def enter() -> None:
        try:
            with stop_on_signals():
                pass
        except ValueError as error:
            errors.append(error)

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "main thread" in str(errors[0])
