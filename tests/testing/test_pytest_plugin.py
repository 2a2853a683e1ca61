"""The pytest plugin: registered through the pytest11 entry point, with its fixtures."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from mongoelector.backends import MemoryBackend
from mongoelector.testing import ElectorGroup, FakeClock

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "test_on_leader.py"


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}

    assert plugins.get("mongoelector") == "mongoelector.testing.pytest_plugin"


def test_the_fixtures_share_one_fake_clock(
    fake_clock: FakeClock, memory_backend: MemoryBackend, elector_group: ElectorGroup
) -> None:
    assert isinstance(fake_clock, FakeClock)
    assert memory_backend.clock is fake_clock
    assert elector_group.clock is fake_clock
    assert elector_group.electors == ()


def test_the_documented_example_passes_in_a_project_of_its_own(tmp_path: Path) -> None:
    # A fresh directory with no conftest: the fixtures can only come from the plugin.
    shutil.copy(EXAMPLE, tmp_path / EXAMPLE.name)

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", EXAMPLE.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout
