"""The command line and output shared by the two scenario runners.

A runner measures groups of scenarios and prints one JSON object on its last
line of output: ``{"side", "version", "results": {figure id: value}}``. A value
is a count (``{"reads", "writes", "other", "names"}``), a number, or a list of
samples (one per trial). ``compare.py`` pairs the figures of both sides by id.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GROUPS",
    "GROUP_SIZE",
    "MINUTES",
    "REALTIME_TTL",
    "THROUGHPUT_KEYS",
    "THROUGHPUT_PAIRS",
    "WARM_UP",
    "Options",
    "run_main",
]

#: Scenario groups, in the order they run.
GROUPS = ("counts", "percall", "times", "throughput", "simulation")
#: Electors in the group whose operations per elector-minute are counted.
GROUP_SIZE = 3
#: Virtual minutes counted, after a warm-up of ``WARM_UP`` virtual seconds.
MINUTES = 10
WARM_UP = 60.0
#: The lease of the real-time scenarios (failover, handoff, stop) on mongomock, seconds.
REALTIME_TTL = 1.0
#: Acquire+release pairs timed on one key; the many-keys scenario uses this many keys.
THROUGHPUT_PAIRS = 1000
THROUGHPUT_KEYS = 1000


@dataclass(frozen=True)
class Options:
    trials: int
    seed: int
    uri: str | None

    def rng(self, salt: str) -> random.Random:
        """A random source for one scenario, the same on both sides for the same seed."""
        return random.Random(f"{self.seed}:{salt}")


Group = Callable[[Options], Mapping[str, Any]]


def run_main(side: str, version: str, groups: Mapping[str, Group], argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=f"mongoelector {side} benchmark scenarios")
    parser.add_argument(
        "--only", default=",".join(GROUPS), help=f"comma-separated groups of {GROUPS}"
    )
    parser.add_argument("--trials", type=int, default=3, help="trials per timed scenario")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random phases")
    parser.add_argument("--uri", default=None, help="a MongoDB server to measure too (2.x)")
    args = parser.parse_args(argv)
    wanted = [name for name in args.only.split(",") if name]
    unknown = sorted(set(wanted) - set(GROUPS))
    if unknown:
        parser.error(f"unknown groups {unknown}; choose from {GROUPS}")
    options = Options(trials=args.trials, seed=args.seed, uri=args.uri)
    results: dict[str, Any] = {}
    # The scenarios make stores fail on purpose; those log lines are not results.
    quiet = logging.getLogger("mongoelector")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        for name in GROUPS:
            if name in wanted and name in groups:
                results.update(groups[name](options))
    finally:
        quiet.setLevel(level)
    print(json.dumps({"side": side, "version": version, "results": results}))
    sys.stdout.flush()
    return 0
