"""Several OS processes elect one leader through one SQLite file, and survive its SIGKILL.

Real processes and real time: the handover bound is asserted with a generous
margin. Each contender logs the instants at which it knew it led (see
sqlite_contender.py); the test checks that no two terms overlap and that
tokens grow from term to term.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TypeVar

import pytest

CONTENDER = Path(__file__).with_name("sqlite_contender.py")
PROCESSES = 3
TTL = 1.5
RENEW_DEADLINE = 1.0
RETRY_PERIOD = 0.2
#: Slack for process scheduling on a busy machine, on top of ttl + retry_period.
MARGIN = 1.5

T = TypeVar("T")


@dataclass(frozen=True)
class Term:
    """One leadership term as its leader logged it: first and last instant it knew it led."""

    token: int
    contender: int
    first: float
    last: float


def read_terms(logs: list[Path]) -> list[Term]:
    seen: dict[int, list[tuple[float, int]]] = {}
    for contender, log in enumerate(logs):
        if not log.exists():
            continue
        for line in log.read_text().splitlines():
            if line.startswith("leading "):
                _, at, token = line.split()
                seen.setdefault(int(token), []).append((float(at), contender))
    terms = []
    for token, observations in sorted(seen.items()):
        contenders = {contender for _, contender in observations}
        assert len(contenders) == 1, f"token {token} was held by contenders {contenders}"
        times = [at for at, _ in observations]
        terms.append(Term(token, contenders.pop(), min(times), max(times)))
    return terms


def wait_for(find: Callable[[], T | None], limit: float, what: str) -> T:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = find()
        if found is not None:
            return found
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what} after {limit} s")


@pytest.mark.slow
def test_one_leader_at_a_time_and_a_new_one_soon_after_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "leases.sqlite"
    logs = [tmp_path / f"contender-{index}.log" for index in range(PROCESSES)]
    timing = [str(TTL), str(RENEW_DEADLINE), str(RETRY_PERIOD)]
    processes = [
        subprocess.Popen([sys.executable, str(CONTENDER), str(db), str(log), *timing])
        for log in logs
    ]
    try:
        first = wait_for(
            lambda: next(
                (term for term in read_terms(logs) if term.last - term.first >= 3 * RETRY_PERIOD),
                None,
            ),
            limit=20,
            what="a leader that renewed a few times",
        )
        killed_at = time.monotonic()
        os.kill(processes[first.contender].pid, signal.SIGKILL)
        processes[first.contender].wait(10)

        second = wait_for(
            lambda: next((t for t in read_terms(logs) if t.token > first.token), None),
            limit=TTL + RETRY_PERIOD + 10,
            what="a new leader after the SIGKILL",
        )
        assert second.contender != first.contender
        handover = second.first - killed_at
        assert handover <= TTL + RETRY_PERIOD + MARGIN, f"handover took {handover:.2f} s"

        wait_for(
            lambda: next(
                (t for t in read_terms(logs) if t.token == second.token and t.last > t.first),
                None,
            ),
            limit=10,
            what="the new leader to renew",
        )
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            process.wait(10)

    terms = read_terms(logs)
    for earlier, later in pairwise(terms):
        assert earlier.last < later.first, f"{earlier} overlaps {later}"
    survivors = [index for index in range(PROCESSES) if index != first.contender]
    assert all(logs[index].read_text().endswith("stopped\n") for index in survivors)
