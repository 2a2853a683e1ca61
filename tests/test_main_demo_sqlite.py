"""``python -m mongoelector demo --sqlite FILE`` runs the demo through that SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mongoelector.cli.demo as demo_command
from mongoelector.backends.memory import MemoryBackend
from mongoelector.backends.protocol import LeaseRequest
from mongoelector.backends.sqlite import SQLiteBackend
from mongoelector.cli import main


class DemoRecorder:
    """Stands in for run_demo: takes a lease through the backend it is given."""

    def __init__(self) -> None:
        self.backends: list[Any] = []

    def __call__(self, backend: Any, out: Any, **options: Any) -> bool:
        self.backends.append(backend)
        return bool(backend.compare_and_set(LeaseRequest(key="k", owner="o", ttl=5)).acquired)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> DemoRecorder:
    recorder = DemoRecorder()
    monkeypatch.setattr(demo_command, "run_demo", recorder)
    return recorder


def test_demo_with_sqlite_runs_through_that_file(recorder: DemoRecorder, tmp_path: Path) -> None:
    path = tmp_path / "demo.sqlite"

    assert main(["demo", "--sqlite", str(path)]) == 0

    [backend] = recorder.backends
    assert isinstance(backend, SQLiteBackend)
    assert backend.path == str(path)
    with SQLiteBackend(path) as reader:
        assert reader.get("k") is not None


def test_demo_without_sqlite_stays_in_memory(recorder: DemoRecorder) -> None:
    assert main(["demo"]) == 0

    assert [type(backend) for backend in recorder.backends] == [MemoryBackend]
