"""``python -m mongoelector.testing.simulation SEED...``: replay seeds (default config)."""

from __future__ import annotations

import argparse
import logging
import sys

from mongoelector.testing.simulation.runner import run_seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mongoelector.testing.simulation",
        description=(
            "Replay simulation seeds, drawn within the default SimulationConfig, and print "
            "their timelines (mongoelector simulate draws within its own bounds)."
        ),
    )
    parser.add_argument("seeds", nargs="+", type=int, help="seeds to replay")
    parser.add_argument("--renewals", action="store_true", help="also list every renewal")
    parser.add_argument("--width", type=int, default=96, help="timeline width in columns")
    args = parser.parse_args(argv)
    # The nodes log every injected failure; the report says it better.
    logger = logging.getLogger("mongoelector")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        failed = 0
        for seed in args.seeds:
            outcome = run_seed(seed)
            print(outcome.report(renewals=args.renewals, width=args.width))
            failed += not outcome.ok
    finally:
        logger.setLevel(level)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
