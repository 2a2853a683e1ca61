"""``mongoelector demo`` picks its store from --sqlite / --uri, and draws the run with --svg."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import mongoelector.cli.demo as demo_command
from mongoelector.backends import MemoryBackend, MongoBackend
from mongoelector.backends.sqlite import SQLiteBackend
from mongoelector.cli import main
from mongoelector.cli.picture import check_writable
from mongoelector.demo import DemoSettings, Severable, demo_recorder, run_demo
from mongoelector.errors import BackendError, BackendUnavailable
from mongoelector.picture import render_svg
from tests.cli.stores import fresh_uri
from tests.picture.svg_reading import read_svg


class DemoStandIn:
    """Takes run_demo's place: remembers what it was given, and passes."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []

    def __call__(self, backend: Any, out: Any, **options: Any) -> bool:
        self.calls.append((backend, options))
        return True


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> DemoStandIn:
    stand_in = DemoStandIn()
    monkeypatch.setattr(demo_command, "run_demo", stand_in)
    return stand_in


def test_with_a_uri_the_demo_runs_on_mongodb_in_the_elector_collection(
    stand_in: DemoStandIn,
) -> None:
    assert main(["demo", "--uri", fresh_uri()]) == 0

    [(backend, options)] = stand_in.calls
    assert isinstance(backend, MongoBackend)
    assert backend.collection.name == "elector.locks" and backend.database.name == "app"
    assert options["recorder"] is None


def test_db_without_uri_is_a_usage_error(
    stand_in: DemoStandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--db", "app"]) == 2
    assert "--db needs --uri" in capsys.readouterr().err
    assert stand_in.calls == []


def test_sqlite_and_uri_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--sqlite", "x.db", "--uri", "mongodb://h/db"])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_svg_hands_the_demo_a_recorder_and_writes_its_picture(
    stand_in: DemoStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    svg = tmp_path / "demo.svg"

    assert main(["demo", "--svg", str(svg)]) == 0

    [(backend, options)] = stand_in.calls
    assert isinstance(backend, MemoryBackend) and options["recorder"] is not None
    assert read_svg(svg.read_text()).terms() == []  # the stand-in led nobody
    assert f"written to {svg}" in capsys.readouterr().out


def test_an_unwritable_svg_path_is_reported(
    stand_in: DemoStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--svg", str(tmp_path / "missing" / "demo.svg")]) == 2
    assert "cannot write the picture to" in capsys.readouterr().err


def test_the_recorded_demo_draws_three_terms_and_the_crash() -> None:
    settings = DemoSettings(ttl=1.5, renew_deadline=1.0, retry_period=0.25, hold=0.3)
    recorder = demo_recorder(settings)

    assert run_demo(MemoryBackend(), io.StringIO(), settings=settings, recorder=recorder)

    timeline = recorder.timeline("demo")
    assert [t.token for t in timeline.terms] == [1, 2, 3]
    assert sorted(t.lane for t in timeline.terms) == ["node-1", "node-2", "node-3"]
    crashed = timeline.terms[0]
    assert crashed.renew_deadline is not None, "the cut-off leader steps down at its deadline"
    assert crashed.lease_end is not None and crashed.lease_end > crashed.end
    # nobody takes over before expiry (the recorder times the write a little late)
    assert timeline.terms[1].start >= crashed.lease_end - 0.05
    assert [s.lane for s in timeline.spans] == [crashed.lane]
    drawn = read_svg(render_svg(timeline)).terms()
    assert sorted(drawn) == sorted((t.lane, t.token) for t in timeline.terms)


class FailingDemo:
    """Takes run_demo's place: the store fails every call, so no leader is elected."""

    def __init__(self) -> None:
        self.ran = False

    def __call__(self, backend: Any, out: Any, **options: Any) -> bool:
        self.ran = True
        options["store_errors"].append(BackendUnavailable("disk I/O error on demo.sqlite"))
        out.write("  t=  6.00s  demo     no leader was elected\n")
        return False


def test_a_store_error_that_stops_the_demo_is_reported_with_its_cause_without_v(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failing = FailingDemo()
    monkeypatch.setattr(demo_command, "run_demo", failing)

    assert main(["demo"]) == 1

    captured = capsys.readouterr()
    assert failing.ran and "no leader was elected" in captured.out
    assert "mongoelector demo: error: the demo did not complete" in captured.err
    assert "disk I/O error on demo.sqlite" in captured.err


def test_a_sqlite_path_that_cannot_be_opened_fails_before_the_demo(
    stand_in: DemoStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "missing" / "x.sqlite"

    assert main(["demo", "--sqlite", str(path)]) == 3

    assert stand_in.calls == []
    assert f"cannot open SQLite file {str(path)!r}: no such directory" in capsys.readouterr().err


def test_a_sqlite_file_that_is_not_a_database_fails_before_the_demo(
    stand_in: DemoStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just words " * 200)

    assert main(["demo", "--sqlite", str(path)]) == 3

    assert stand_in.calls == []
    assert "file is not a database" in capsys.readouterr().err


def test_an_unwritable_svg_path_fails_before_the_demo_runs(
    stand_in: DemoStandIn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--svg", str(tmp_path / "missing" / "demo.svg")]) == 2

    assert stand_in.calls == []
    assert "cannot write the picture to" in capsys.readouterr().err


def test_checking_the_svg_path_leaves_no_file_behind(tmp_path: Path) -> None:
    path = tmp_path / "demo.svg"
    check_writable(path)
    assert not path.exists()
    path.write_text("kept")
    check_writable(path)
    assert path.read_text() == "kept"


def test_the_demo_link_collects_the_stores_errors_but_not_its_own_cut() -> None:
    class Down(MemoryBackend):
        def get(self, key: str) -> Any:
            raise BackendUnavailable("disk I/O error")

    errors: list[BackendError] = []
    link = Severable(Down(), errors)
    with pytest.raises(BackendUnavailable):
        link.get("k")
    link.cut()
    with pytest.raises(BackendUnavailable, match="cut"):
        link.get("k")
    assert [str(error) for error in errors] == ["disk I/O error"]


def test_sigterm_stops_the_demo_s_electors_and_frees_the_lease(tmp_path: Path) -> None:
    """A real ``mongoelector demo --sqlite FILE`` process, stopped as a container stops it."""
    path = tmp_path / "demo.sqlite"
    demo = subprocess.Popen(
        [sys.executable, "-m", "mongoelector", "demo", "--sqlite", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(demo_command.__file__).parents[2])},
    )
    try:
        assert demo.stdout is not None
        seen = [demo.stdout.readline()]
        while "became leader" not in seen[-1] and seen[-1] and len(seen) < 5:
            seen.append(demo.stdout.readline())  # the heading, perhaps "sees leader" lines
        assert "became leader" in seen[-1], seen
        demo.send_signal(signal.SIGTERM)
        out, err = demo.communicate(timeout=60)
    finally:
        demo.kill()

    assert demo.returncode == 143, err
    assert "mongoelector demo: terminated (SIGTERM); every elector stopped" in err
    assert "Traceback" not in err and "all electors stopped" not in out
    with SQLiteBackend(path) as backend:
        record = backend.get("demo-scheduler")
        assert record is not None
        if "now it is cut off" not in out:
            # The leader still reached the store when the signal came: it released the lease.
            assert record.owner is None, (record, out)
