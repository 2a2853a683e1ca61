"""mongoelector 2.x side by side with 1.0.2: the same scenarios, in the same run.

    make bench                                   # = .venv/bin/python benchmarks/compare.py
    python benchmarks/compare.py --repeats 5     # more runs
    python benchmarks/compare.py --quick         # store operations and one call's cost, one run
    python benchmarks/compare.py --update-docs   # also rewrite the results in docs/benchmarks.md

Both versions are called ``mongoelector``, so each runs in its own process:
1.x from ``benchmarks/.venv-1x`` (created here with ``mongoelector==1.0.2``
from the package index, and the same mongomock and pymongo versions as this
environment), 2.x from this environment. The two runners alternate (1.x
first in odd runs, 2.x first in even ones); counts must agree across runs,
throughputs are medians over runs, and timed samples (failover, handoff,
``stop()``) are pooled over runs and shown as median and maximum. A real
server is measured too (2.x) when ``MONGOELECTOR_TEST_URI`` is set.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from _report import render
from many_locks import MEMORY_SIZES, MIXED, MONGOMOCK_SIZES
from many_locks import table as many_locks_table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV_1X = HERE / ".venv-1x"
VERSION_1X = "1.0.2"
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- results: begin -->", "<!-- results: end -->"


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def env_1x() -> dict[str, str]:
    """This environment without ``PYTHONPATH``, which may point at 2.x's sources."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}


def ensure_1x_venv() -> Path:
    """``benchmarks/.venv-1x`` with mongoelector 1.0.2 (made or remade when the pins change)."""
    pins = [
        f"mongoelector=={VERSION_1X}",
        f"mongomock=={metadata.version('mongomock')}",
        f"pymongo=={metadata.version('pymongo')}",
    ]
    python = venv_python(VENV_1X)
    marker = VENV_1X / "pins.txt"
    if marker.exists() and marker.read_text() == "\n".join(pins):
        return python
    print(f"creating {VENV_1X.relative_to(ROOT)} with {' '.join(pins)}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV_1X)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *pins], check=True)
    found = subprocess.run(
        [str(python), "-c", "import mongoelector; print(mongoelector.__version__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=HERE,
        env=env_1x(),
    ).stdout.strip()
    if found != VERSION_1X:
        raise SystemExit(f"{VENV_1X} has mongoelector {found}, not {VERSION_1X}")
    marker.write_text("\n".join(pins))
    return python


def run_side(python: Path, runner: str, arguments: list[str]) -> dict[str, Any]:
    command = [str(python), str(HERE / runner), *arguments]
    env = env_1x() if runner == "runner_1x.py" else None
    done = subprocess.run(command, capture_output=True, text=True, cwd=HERE, check=False, env=env)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{runner} failed ({done.returncode}): {' '.join(command)}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def many_locks(quick: bool) -> list[str]:
    """The section on N auto-renewed locks in one process (2.x only; ``many_locks.py``)."""
    memory = [10, 100, 1_000] if quick else MEMORY_SIZES
    mongomock = [10, 100] if quick else MONGOMOCK_SIZES
    mixed = (1_000, 100) if quick else MIXED
    command = [
        sys.executable,
        str(HERE / "many_locks.py"),
        "--json",
        "--memory",
        *map(str, memory),
        "--mongomock",
        *map(str, mongomock),
        "--mixed",
        *map(str, mixed),
        "--status-mixed",
        *map(str, mixed),
    ]
    print("many locks: 2.x", file=sys.stderr)
    done = subprocess.run(command, capture_output=True, text=True, cwd=HERE, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"many_locks.py failed ({done.returncode}): {' '.join(command)}")
    rows = json.loads(done.stdout.strip().splitlines()[-1])["rows"]
    return [
        "### Many auto-renewed locks in one process (2.x; `benchmarks/many_locks.py`)",
        "",
        "ttl 15 s (renewals every 2 s); locks acquired in four groups 0.4 s apart; store "
        "calls counted while the holders sit idle, after one renew interval to line up. "
        "*Key by key* is what one `renew` per holding per interval costs (2.x before "
        "batched renewals, and any backend without `RENEW_MANY`). The last two rows add "
        "started electors beside the locks, all leading, renewing in the locks' "
        "`renew_many` calls; in the last one they also report their status "
        "(`report_status=True`), the reports due together in one `report_members` call.",
        "",
        *many_locks_table(rows),
    ]


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One value per figure: counts (which must agree) and numbers as medians, samples pooled."""
    merged: dict[str, Any] = {}
    for key in runs[0]:
        values = [run[key] for run in runs if key in run]
        first = values[0]
        if isinstance(first, list):
            merged[key] = [sample for value in values for sample in value]
        elif isinstance(first, dict):
            kinds = ("reads", "writes", "other")
            if any({k: v[k] for k in kinds} != {k: first[k] for k in kinds} for v in values):
                print(f"warning: counts of {key} differ between runs", file=sys.stderr)
            merged[key] = {k: statistics.median(v[k] for v in values) for k in kinds}
        else:
            merged[key] = statistics.median(values)
    return merged


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header(args: argparse.Namespace, elapsed: float) -> list[str]:
    extra = " ".join(args.argv)
    command = f"make bench BENCH_ARGS='{extra}'" if extra else "make bench"
    uri = " with `MONGOELECTOR_TEST_URI` set" if args.uri else ""
    return [
        f"Measured on {datetime.now(timezone.utc):%Y-%m-%d} by `{command}` (that is, "
        f"`{' '.join(['.venv/bin/python benchmarks/compare.py', *args.argv])}`){uri}: "
        f"{args.repeats} run(s) "
        f"per side, {args.trials} timed trial(s) per run, {elapsed:.0f} s in all.",
        "",
        f"Machine: {os.cpu_count()} cores, {cpu_model()}, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}; pymongo "
        f"{metadata.version('pymongo')}, mongomock {metadata.version('mongomock')}; "
        f"mongoelector {VERSION_1X} against {metadata.version('mongoelector')}.",
        "",
        "Counts are `total (r reads, w writes, o other)`; times are `median (max, n = samples)`.",
    ]


def update_docs(text: str) -> None:
    page = DOCS.read_text()
    if BEGIN not in page or END not in page:
        raise SystemExit(f"{DOCS} lacks the markers {BEGIN} ... {END}")
    before, rest = page.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    DOCS.write_text(f"{before}{BEGIN}\n{text}\n{END}{after}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per side (default 3)")
    parser.add_argument("--trials", type=int, default=3, help="timed trials per run (default 3)")
    parser.add_argument(
        "--quick", action="store_true", help="store operations and the cost of one call, one run"
    )
    parser.add_argument("--update-docs", action="store_true", help=f"rewrite results in {DOCS}")
    parser.add_argument("--uri", default=os.environ.get("MONGOELECTOR_TEST_URI"))
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if args.quick:
        args.repeats = 1
    groups = "counts,percall" if args.quick else "counts,percall,times,throughput,simulation"
    python_1x = ensure_1x_venv()
    sides: dict[str, tuple[Path, str]] = {
        "1.x": (python_1x, "runner_1x.py"),
        "2.x": (Path(sys.executable), "runner_2x.py"),
    }
    runs: dict[str, list[dict[str, Any]]] = {"1.x": [], "2.x": []}
    began = time.perf_counter()
    for run in range(args.repeats):
        order = ["1.x", "2.x"] if run % 2 == 0 else ["2.x", "1.x"]
        for side in order:
            python, runner = sides[side]
            arguments = ["--only", groups, "--trials", str(args.trials), "--seed", str(run)]
            if side == "2.x" and args.uri:
                arguments += ["--uri", args.uri]
            print(f"run {run + 1}/{args.repeats}: {side}", file=sys.stderr)
            runs[side].append(run_side(python, runner, arguments)["results"])
    figures = {side: aggregate(found) for side, found in runs.items()}
    scaling = many_locks(args.quick)
    text = render(figures, header=header(args, time.perf_counter() - began))
    text = "\n".join([text.rstrip("\n"), "", *scaling])
    print(text)
    if args.update_docs:
        update_docs(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
