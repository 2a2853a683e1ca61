"""Scripted scenarios with callers that are not gentle, shared by the caller and mutation tests.

Each is built so that the bug it names, if it came back, would show in the
run: the fixed code passes all of them (test_sim_callers.py), and each
re-introduced bug fails its own (test_sim_mutations.py).
"""

from __future__ import annotations

from mongoelector.testing.simulation import (
    LockBehaviour,
    NodeKind,
    NodeSpec,
    Pause,
    ReleaseHabit,
    Scenario,
    StoreErrors,
    Takeover,
)
from mongoelector.timing import LeaseTiming

TIMING = LeaseTiming(ttl=15.0, renew_deadline=10.0, retry_period=2.0)


def lock_user(name: str, behaviour: LockBehaviour) -> NodeSpec:
    return NodeSpec(name=name, kind=NodeKind.LOCK, lock=behaviour)


def late_release(seed: int) -> Scenario:
    """Bug 1. n1's release fails, and lands later (up to a lease); n1 never re-sends it
    and acquires again half a second later, while its old record is still live; n2
    keeps trying. With seed 8 the late release lands while n1 holds again."""
    return Scenario(
        seed=seed,
        timing=TIMING,
        nodes=(
            lock_user(
                "n1",
                LockBehaviour(
                    hold=5.0,
                    touch_every=2.0,
                    retry_every=0.5,
                    after_failed_release=ReleaseHabit.FORGET,
                ),
            ),
            lock_user("n2", LockBehaviour(hold=5.0, touch_every=2.0, retry_every=1.0)),
        ),
        faults=(StoreErrors(node="n1", at=4.9, duration=0.3, probability=1.0, late=1.0),),
        duration=60.0,
    )


def shared_object(seed: int) -> Scenario:
    """Bugs 2 and 3. Two callers share n1's Lock; each acquires while the other may be
    waiting for the store (acquiring, or releasing slowly)."""
    behaviour = LockBehaviour(hold=5.0, touch_every=2.0, retry_every=1.0, threads=2)
    return Scenario(
        seed=seed, timing=TIMING, nodes=(lock_user("n1", behaviour),), duration=40.0, latency=0.05
    )


def lapse(seed: int) -> Scenario:
    """Bug 4. n1 pauses past its renew deadline (the lease is still live) and
    acquires again before the lease expires."""
    return Scenario(
        seed=seed,
        timing=TIMING,
        nodes=(lock_user("n1", LockBehaviour(hold=100.0, touch_every=11.5, retry_every=1.0)),),
        faults=(Pause(node="n1", at=1.0, duration=10.0),),
        duration=60.0,
    )


def ambiguous_acquire(seed: int) -> Scenario:
    """Bug 5. For three seconds every write of n1 fails ambiguously (half applied)."""
    return Scenario(
        seed=seed,
        timing=TIMING,
        nodes=(lock_user("n1", LockBehaviour(hold=5.0, touch_every=2.0, retry_every=1.0)),),
        faults=(StoreErrors(node="n1", at=0.0, duration=3.0, probability=1.0),),
        duration=30.0,
        latency=0.05,
    )


def takeover(seed: int) -> Scenario:
    """n2 takes the lock from n1 by force while n1 works, and n1 takes it back."""
    behaviour = LockBehaviour(hold=20.0, touch_every=2.0, retry_every=1.0)
    return Scenario(
        seed=seed,
        timing=TIMING,
        nodes=(lock_user("n1", behaviour), lock_user("n2", behaviour)),
        faults=(Takeover(node="n2", at=3.0), Takeover(node="n1", at=9.0)),
        duration=60.0,
        latency=0.05,
    )
