"""No elector's loop survives the interpreter (an exiting process halts and unschedules them
all), and a forked child runs none of its parent's loops, only its own."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import atexit

    def loops():
        from mongoelector._sync import elector, scheduler
        return sorted(e.key for e in elector.running()), scheduler.scheduled()

    # Registered before mongoelector is imported, so it runs after mongoelector's own hook.
    atexit.register(lambda: print("at exit:", loops(), flush=True))

    from mongoelector import LeaderElector
    from mongoelector.backends.memory import MemoryBackend
    from mongoelector.testing import FakeClock

    clock = FakeClock()
    store = MemoryBackend(clock)
    electors = [LeaderElector(key, store, clock=clock) for key in ("a", "b")]
    for elector in electors:
        elector.start()
    for elector in electors:
        assert elector.wait_idle(30)
    print("while running:", loops(), flush=True)
    # Exit without stopping.
    """
)


def test_the_interpreter_exits_and_halts_every_loop() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "while running: (['a', 'b'], 2)",
        "at exit: ([], 0)",
    ]


FORK_SCRIPT = textwrap.dedent(
    """
    import os
    import warnings

    from mongoelector import LeaderElector
    from mongoelector._sync import elector as elector_module
    from mongoelector._sync import scheduler
    from mongoelector.backends.memory import MemoryBackend
    from mongoelector.testing import FakeClock

    warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads running
    clock = FakeClock()
    store = MemoryBackend(clock)
    parent = LeaderElector("parent", store, clock=clock)
    parent.start()
    clock.advance(2.0)
    assert parent.wait_idle(30) and parent.is_leader  # polled on the scheduler's threads
    pid = os.fork()
    if pid == 0:
        if elector_module.running() or scheduler.scheduled():
            os._exit(3)  # the parent's loop came along
        child_clock = FakeClock()
        child = LeaderElector("child", MemoryBackend(child_clock), clock=child_clock)
        child.start()
        for _ in range(15):
            child_clock.advance(2.0)
            if not child.wait_idle(30):
                os._exit(2)
        ok = child.token == 1 and elector_module.running() == [child]
        child.stop()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    print("child:", os.waitstatus_to_exitcode(status), flush=True)
    parent.stop()
    """
)


def test_a_forked_child_runs_its_own_electors() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["child: 0"]
