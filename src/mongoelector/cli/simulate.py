"""``mongoelector simulate``: run electors through faults on a virtual clock; print the verdict."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TextIO

from mongoelector.cli.errors import CliError, ExitCode
from mongoelector.cli.faults import NONE, RANDOM, describe, fault_spec
from mongoelector.cli.logs import quieted
from mongoelector.cli.options import positive_int, positive_seconds
from mongoelector.cli.picture import write_svg
from mongoelector.cli.text import format_duration
from mongoelector.testing.simulation import (
    LEADER,
    Fault,
    Scenario,
    SimulationConfig,
    SimulationOutcome,
    draw_scenario,
    liveness_bound,
    render_log,
    render_timeline,
    run_scenario,
    timeline_picture,
)

__all__ = ["DESCRIPTION", "HELP", "NAME", "add_arguments", "build_scenario", "run"]

NAME = "simulate"
HELP = "run electors through faults on a virtual clock and check the invariants"
DESCRIPTION = """\
Run N electors (real LeaderElector code) on one virtual timeline for at least
S seconds, inject faults, and check safety (never two leaders at once, fencing
tokens always increase, every leader's lease is live in the store) and
liveness (a leader again soon after the faults stop). Same seed and the
same --nodes, --seconds and --ttl: the same run (the seed is drawn within
these bounds, so seed K here is not seed K of python -m
mongoelector.testing.simulation). Exits 1 if an invariant was broken.

faults (--faults SPEC [SPEC ...]):
  pause:NODE:AT:SECONDS      the process stops for SECONDS from AT
  partition:NODE:AT:SECONDS  cut off from the store for SECONDS
  errors:NODE:AT:SECONDS     half its writes fail ambiguously for SECONDS
  crash:NODE:AT[:SECONDS]    dies; a new process starts SECONDS later (or never)
  stop:NODE:AT[:SECONDS]     shuts down gracefully; restarts SECONDS later (or never)
  resign:NODE:AT             steps down and keeps taking part
  random | none              faults drawn from the seed (the default) | no faults
NODE is n1..nN, or 'leader' for whoever leads when the fault starts; AT is
seconds from the start. Example: --faults pause:leader:20:30 crash:n2:40:10
"""

SAFETY = ("exclusion", "tokens", "lease", "notification")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=positive_int, default=3, metavar="N", help="electors (3)")
    parser.add_argument(
        "--seconds", type=positive_seconds, default=60.0, metavar="S", help="run length (60)"
    )
    parser.add_argument("--seed", type=int, default=1, metavar="K", help="random seed (1)")
    parser.add_argument(
        "--ttl", type=positive_seconds, default=15.0, metavar="SECONDS", help="lease ttl (15)"
    )
    parser.add_argument(
        "--faults",
        nargs="+",
        action="extend",
        type=fault_spec,
        metavar="SPEC",
        help="faults to inject (default: random, drawn from the seed)",
    )
    parser.add_argument("--svg", metavar="FILE", help="also draw the run as an SVG timeline")
    parser.add_argument("--log", action="store_true", help="also print every recorded event")
    parser.add_argument(
        "--width", type=positive_int, default=96, metavar="COLUMNS", help="text timeline width"
    )


def build_scenario(
    *, nodes: int, seconds: float, seed: int, ttl: float, faults: list[Fault | str] | None
) -> Scenario:
    """The scenario to run: clocks and timing drawn from ``seed``, and the given faults.

    ``faults`` ``None`` or ``["random"]`` draws them from the seed too; ``["none"]``: no faults.
    """
    config = SimulationConfig(
        min_nodes=nodes, max_nodes=nodes, ttl=ttl, lock_users=0.0, fault_window=seconds / ttl
    )
    scenario = draw_scenario(seed, config)
    words = [item for item in faults or [] if isinstance(item, str)]
    chosen = [item for item in faults or [] if not isinstance(item, str)]
    if words and (chosen or len(words) > 1):
        raise CliError(f"--faults {words[0]} cannot be combined with other faults", ExitCode.USAGE)
    if faults is None or words == [RANDOM]:
        return scenario
    picked = () if words == [NONE] else tuple(sorted(chosen, key=lambda fault: fault.at))
    names = [node.name for node in scenario.nodes]
    for fault in picked:
        if fault.node != LEADER and fault.node not in names:
            raise CliError(
                f"bad --faults: {describe(fault)}: there is no node {fault.node} "
                f"(the nodes are {names[0]}..{names[-1]}, or 'leader')",
                ExitCode.USAGE,
            )
    try:
        return dataclasses.replace(scenario, faults=picked)
    except (TypeError, ValueError) as error:
        raise CliError(f"bad --faults: {error}", ExitCode.USAGE) from error


def _electors(count: int) -> str:
    """``1 elector``, ``3 electors``."""
    return f"{count} elector" + ("" if count == 1 else "s")


def _bounds(args: argparse.Namespace) -> str:
    """The options the scenario was drawn with: a seed is one scenario only with these."""
    return f"--nodes {args.nodes} --seconds {args.seconds:g} --ttl {args.ttl:g}"


def _verdict(outcome: SimulationOutcome) -> list[str]:
    scenario = outcome.scenario
    safety = [v for v in outcome.violations if v.kind in SAFETY]
    liveness = [v for v in outcome.violations if v.kind not in SAFETY]
    bound = format_duration(liveness_bound(scenario))
    since = "the last fault" if scenario.faults else "the start"
    lines = [
        "safety:   "
        + (
            "ok (never two holders at once; tokens always increase; every holder's lease was "
            "live in the store)"
            if not safety
            else f"{len(safety)} violation(s)"
        ),
        "liveness: "
        + (
            f"ok (a leader within {bound} of {since}, and from then on)"
            if not liveness
            else f"{len(liveness)} violation(s) (bound {bound})"
        ),
        *(f"  {violation.render()}" for violation in outcome.violations),
        "verdict:  " + ("PASS" if outcome.ok else "FAIL"),
    ]
    return lines


def run(args: argparse.Namespace, out: TextIO) -> ExitCode:
    scenario = build_scenario(
        nodes=args.nodes, seconds=args.seconds, seed=args.seed, ttl=args.ttl, faults=args.faults
    )
    # The nodes log every injected failure, stamped with real time; the report says it better.
    with quieted():
        outcome = run_scenario(scenario)
    history = outcome.history
    timing = scenario.timing
    title = f"simulation seed {scenario.seed} (bounds: {_bounds(args)})"
    out.write(
        f"{title}: {_electors(args.nodes)} for {args.seconds:g}s "
        f"(ran {history.end / 1e6:.1f}s to judge liveness), ttl {timing.ttl:g}s, "
        f"renew deadline {timing.renew_deadline:.2f}s, retry period {timing.retry_period:.2f}s\n"
    )
    faults = [describe(fault) for fault in scenario.faults] or ["none"]
    out.write("faults: " + "; ".join(faults) + "\n\n")
    out.write(render_timeline(history, outcome.violations, width=args.width) + "\n\n")
    if args.log:
        out.write(render_log(history, outcome.violations) + "\n\n")
    out.write("\n".join(_verdict(outcome)) + "\n")
    if args.svg is not None:
        verdict = "no violations" if outcome.ok else f"{len(outcome.violations)} violation(s)"
        picture = timeline_picture(history, outcome.violations, title=f"{title}: {verdict}")
        write_svg(Path(args.svg), picture, out)
    return ExitCode.OK if outcome.ok else ExitCode.FAILED
