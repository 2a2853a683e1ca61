"""The command line as operators run it: separate processes, exit codes, stdout vs stderr.

Commands that need a filled database run through ``python -m
tests.cli.mongomock_driver FIXTURE ...``, which fills an in-process mongomock
store and then runs the real command line on it (``mongomock://ops/app``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.picture.svg_reading import read_svg

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run("-m", "mongoelector", *args)


def on_store(fixture: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run("-m", "tests.cli.mongomock_driver", fixture, *args)


@pytest.mark.parametrize(
    ("command", "mentions"),
    [
        ((), ["demo", "status", "release", "simulate", "Exit codes"]),
        (("demo",), ["--sqlite", "--uri", "--svg"]),
        (("status",), ["--uri", "--db", "--key", "--json", "--collection"]),
        (("release",), ["KEY", "--force", "--collection"]),
        (("run",), ["KEY", "--sqlite", "--ttl", "--wait", "--at-least", "--grace", "COMMAND"]),
        (("elect",), ["KEY", "--sqlite", "--uri", "--grace", "COMMAND"]),
        (("simulate",), ["--nodes", "--seconds", "--seed", "--faults", "--svg", "pause:NODE:AT"]),
    ],
)
def test_every_command_explains_itself(command: tuple[str, ...], mentions: list[str]) -> None:
    result = cli(*command, "--help")

    assert result.returncode == 0, result.stderr
    for word in mentions:
        assert word in result.stdout


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("mongoelector")
    assert script.exists(), "pip install -e . installs the mongoelector script"

    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "simulate" in result.stdout


def test_an_unknown_command_is_a_usage_error() -> None:
    result = cli("frobnicate")

    assert result.returncode == 2 and "invalid choice: 'frobnicate'" in result.stderr


def test_an_unreachable_server_fails_fast_with_exit_3_and_a_masked_uri() -> None:
    result = cli("status", "--uri", "mongodb://ops:hunter2@127.0.0.1:1/app", "--timeout", "0.3")

    assert result.returncode == 3
    assert result.stdout == ""
    assert "cannot reach a MongoDB server at mongodb://ops:***@127.0.0.1:1/app" in result.stderr
    assert "hunter2" not in result.stderr


def test_a_password_given_where_an_argument_was_expected_is_masked_too() -> None:
    result = cli("status", "--uri", "mongodb://db1/app", "mongodb://ops:hunter2@db1/app")

    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr
    assert "mongodb://ops:***@db1/app" in result.stderr and "hunter2" not in result.stderr


def test_status_prints_the_table_on_stdout_and_nothing_on_stderr() -> None:
    result = on_store("ops", "status", "--uri", "mongomock://ops/app")

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "nightly-report" in result.stdout and "scheduler" in result.stdout
    assert "members:" in result.stdout


def test_status_json_is_json() -> None:
    result = on_store("ops", "status", "--uri", "mongomock://ops/app", "--json")

    assert result.returncode == 0
    keys = [entry["key"] for entry in json.loads(result.stdout)["keys"]]
    assert keys == ["nightly-report", "scheduler"]


def test_status_of_an_unknown_key_exits_4() -> None:
    result = on_store("empty", "status", "--uri", "mongomock://ops/app", "--key", "nope")

    assert result.returncode == 4 and "no lock or election named 'nope'" in result.stderr


def test_release_refuses_without_force_and_releases_with_it() -> None:
    refused = on_store("ops", "release", "scheduler", "--uri", "mongomock://ops/app")
    assert refused.returncode == 2 and "without --force" in refused.stderr

    released = on_store("ops", "release", "scheduler", "--force", "--uri", "mongomock://ops/app")
    assert released.returncode == 0, released.stderr
    assert released.stdout.startswith("released 'scheduler' in elector.locks")


def test_simulate_prints_a_verdict_and_draws_the_run(tmp_path: Path) -> None:
    svg = tmp_path / "sim.svg"

    result = cli(
        "simulate", "--nodes", "4", "--seconds", "60", "--seed", "9",
        "--faults", "crash:leader:20:5", "partition:n2:30:20", "--svg", str(svg),
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "verdict:  PASS" in result.stdout
    picture = read_svg(svg.read_text())
    assert len(picture.terms()) >= 2 and "cut off" in picture.faults()


def test_demo_runs_against_mongodb_and_draws_itself(tmp_path: Path) -> None:
    svg = tmp_path / "demo.svg"

    result = cli("demo", "--uri", "mongomock://demo/demo", "--svg", str(svg))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 electors on MongoBackend" in result.stdout
    assert "all electors stopped" in result.stdout
    terms = read_svg(svg.read_text()).terms()
    assert sorted(lane for lane, _ in terms) == ["node-1", "node-2", "node-3"]
    tokens = [token for _, token in terms]
    assert tokens == sorted(tokens) and len(set(tokens)) == 3
