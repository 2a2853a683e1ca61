"""Run many seeded simulation schedules and report throughput and violations.

    python benchmarks/simulate.py                      # 100,000 schedules, all cores
    python benchmarks/simulate.py --schedules 5000 --jobs 1
    python benchmarks/simulate.py --late-writes 0.5     # also writes that land late

Each schedule is drawn from its seed with the default SimulationConfig (2-7
electors, sometimes lock users, clocks up to the drift bound, pauses up to
three leases, partitions, ambiguous store errors, crashes, stops) and checked
for safety and liveness. Exits non-zero if any schedule broke an invariant,
listing the seeds; replay one with ``python -m mongoelector.testing.simulation SEED``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

CHUNK = 500


def _quiet() -> None:
    logging.getLogger("mongoelector").setLevel(logging.CRITICAL)


def _run_chunk(
    job: tuple[range, float],
) -> tuple[int, list[tuple[int, list[str]]], dict[str, int], int]:
    from mongoelector.testing.simulation import SimulationConfig, check_seeds

    seeds, late_writes = job
    summary = check_seeds(seeds, SimulationConfig(late_writes=late_writes), fail_fast=False)
    failures = [
        (outcome.scenario.seed, [v.render() for v in outcome.violations])
        for outcome in summary.failures
    ]
    return summary.schedules, failures, dict(summary.events), summary.handovers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=100_000)
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--late-writes",
        type=float,
        default=0.0,
        help="share of failed writes that reach the store after the error",
    )
    args = parser.parse_args(argv)

    chunks = [
        (range(first, min(first + CHUNK, args.start + args.schedules)), args.late_writes)
        for first in range(args.start, args.start + args.schedules, CHUNK)
    ]
    schedules = 0
    handovers = 0
    failures: list[tuple[int, list[str]]] = []
    events: dict[str, int] = {}
    began = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs, initializer=_quiet) as pool:
        for done, failed, counted, handed in pool.map(_run_chunk, chunks):
            schedules += done
            handovers += handed
            failures += failed
            for kind, count in counted.items():
                events[kind] = events.get(kind, 0) + count
    elapsed = time.perf_counter() - began

    violations = sum(len(found) for _, found in failures)
    print(f"schedules:     {schedules} (seeds {args.start}..{args.start + args.schedules - 1})")
    print(f"processes:     {args.jobs}")
    print(f"elapsed:       {elapsed:.1f} s")
    print(
        f"throughput:    {schedules / elapsed:.0f} schedules/s "
        f"({schedules / elapsed / args.jobs:.0f} per process)"
    )
    print(f"handovers:     {handovers}")
    print("events:        " + ", ".join(f"{k}: {v}" for k, v in sorted(events.items())))
    print(f"violations:    {violations} in {len(failures)} schedule(s)")
    for seed, found in sorted(failures)[:20]:
        print(f"  seed {seed}: " + "; ".join(found[:3]))
    if failures:
        config = f", SimulationConfig(late_writes={args.late_writes!r})" if args.late_writes else ""
        print(f"replay one: mongoelector.testing.replay(SEED{config})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
