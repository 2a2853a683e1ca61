"""No renewer thread survives the interpreter: an exiting process stops them all."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import atexit
    import threading

    def renewers():
        return [t.name for t in threading.enumerate() if t.name.startswith("mongoelector-renew-")]

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
        "while held: ['mongoelector-renew-a', 'mongoelector-renew-b']",
        "at exit: []",
    ]
