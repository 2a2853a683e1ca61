"""No renewer survives the interpreter (an exiting process stops and unschedules them all),
and a forked child renews its own locks on a scheduler of its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import atexit

    def renewers():
        # Renewers share the scheduler's threads: count them, and their scheduled wake-ups.
        from mongoelector._sync import renewer, scheduler
        return sorted(r.name for r in renewer.running()), scheduler.scheduled()

    # Registered before mongoelector is imported, so it runs after mongoelector's own hook.
    atexit.register(lambda: print("at exit:", renewers(), flush=True))

    from mongoelector import Lock
    from mongoelector.backends.memory import MemoryBackend
    from mongoelector.testing import FakeClock

    clock = FakeClock()
    store = MemoryBackend(clock)
    locks = [Lock(key, store, ttl=15, clock=clock, auto_renew=True) for key in ("a", "b")]
    for lock in locks:
        lock.acquire()
    print("while held:", renewers(), flush=True)
    # Exit without releasing.
    """
)


def test_the_interpreter_exits_and_stops_every_renewer() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "while held: (['mongoelector-renew-a', 'mongoelector-renew-b'], 2)",
        "at exit: ([], 0)",
    ]


FORK_SCRIPT = textwrap.dedent(
    """
    import os
    import warnings

    from mongoelector import Lock
    from mongoelector.backends.memory import MemoryBackend
    from mongoelector.testing import FakeClock

    warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads running
    clock = FakeClock()
    store = MemoryBackend(clock)
    parent = Lock("parent", store, ttl=15, clock=clock, auto_renew=True)
    parent.acquire()
    clock.advance(2.0)
    assert parent.wait_idle(30)  # renewed: the scheduler's threads run in the parent
    pid = os.fork()
    if pid == 0:
        child_clock = FakeClock()
        child_store = MemoryBackend(child_clock)
        lock = Lock("child", child_store, ttl=15, clock=child_clock, auto_renew=True)
        lock.acquire()
        for _ in range(30):
            child_clock.advance(1.0)
            if not lock.wait_idle(30):
                os._exit(2)
        os._exit(0 if lock.ensure() == 1 else 1)
    _, status = os.waitpid(pid, 0)
    print("child:", os.waitstatus_to_exitcode(status), flush=True)
    parent.release()
    """
)


def test_a_forked_child_renews_its_own_locks() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["child: 0"]
