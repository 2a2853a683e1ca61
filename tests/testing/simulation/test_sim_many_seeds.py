"""The evidence: thousands of seeded schedules, every invariant checked, zero violations.

Each schedule draws 2-7 electors (and sometimes lock users on a second key),
clocks up to the drift bound, renew deadlines up to the edge of the safety
inequality, call latency, and up to six faults: process pauses up to three
leases (also inside a call, after the store applied it), partitions that fail
fast or hang, ambiguous store errors (applied or not), crashes with restarts,
graceful stops and resignations, most of them aimed at whoever leads. Callers
are not gentle: lock users forget failed releases or acquire again at once,
share one ``Lock`` between two callers and take the lock over by force;
electors' callbacks call ``release()`` and ``stop()``. Some lock users hold
several auto-renewed locks each (contending for the keys they share), renewed
by the process scheduler with the node's clock driven by hand, and some of
those also run started electors (leaders renewing in the node's batches,
followers reading together). A failure prints its seed, a timeline and the log; replay it with
``python -m mongoelector.testing.simulation SEED``.
"""

from __future__ import annotations

from mongoelector.testing.simulation import check_seeds, run_seed

SCHEDULES = 2000


def test_thousands_of_seeded_schedules_break_no_invariant() -> None:
    summary = check_seeds(range(SCHEDULES))

    assert summary.schedules == SCHEDULES
    assert summary.violations == 0
    # ...and they exercised what they claim to (a vacuous run would fail here):
    assert sorted(summary.electors) == [2, 3, 4, 5, 6, 7]
    assert min(summary.electors.values()) >= SCHEDULES // 10
    assert summary.longest_pause >= 2.9
    assert summary.ambiguous_applied >= SCHEDULES // 4
    assert summary.clocks_at_bound >= SCHEDULES
    assert summary.handovers >= SCHEDULES
    for kind in ("paused", "partitioned", "store errors", "crashed", "stops", "resigns"):
        assert summary.events[kind] >= SCHEDULES // 10, kind
    # ...including callers that are not gentle (see test_sim_callers.py):
    assert summary.events["takes over"] >= SCHEDULES // 10
    for habit in ("resend", "forget", "reacquire"):
        assert summary.callers[f"release: {habit}"] >= SCHEDULES // 20, habit
    assert summary.callers["shared lock object"] >= SCHEDULES // 20
    for callback in ("on_leader calls release()", "on_leader calls stop()"):
        assert summary.callers[callback] >= SCHEDULES // 20, callback
    assert summary.callers["on_leader_loss calls release()"] >= SCHEDULES // 20
    # ...and nodes holding several auto-renewed locks, renewed through the scheduler:
    assert summary.callers["auto-renewed locks"] >= SCHEDULES // 2
    assert summary.callers["held past one renew deadline (renewed)"] >= SCHEDULES // 2
    # ...and started electors beside them, leading through batched renewals:
    assert summary.callers["started electors"] >= SCHEDULES // 4
    assert summary.callers["led past one renew deadline (started elector)"] >= SCHEDULES // 10


def test_a_seed_replays_byte_for_byte() -> None:
    for seed in (0, 1, 364, 1999):
        assert run_seed(seed).history.text() == run_seed(seed).history.text()


def test_simulated_nodes_log_nothing_unless_asked() -> None:
    """Issue 15, item 6: the nodes' story is in the report, not on stderr, even with the
    root logger at DEBUG (as ``logging.basicConfig`` in a user's script sets it)."""
    import subprocess
    import sys

    script = (
        "import logging; logging.basicConfig(level=logging.DEBUG)\n"
        "from mongoelector.testing.simulation import check_seeds\n"
        "print(check_seeds(range(40)).violations)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "0"
    assert "mongoelector" not in done.stderr
