"""The README's first command: the demo elects, survives a crash, and hands over."""

from __future__ import annotations

import io
import subprocess
import sys

from mongoelector.backends import MemoryBackend
from mongoelector.demo import DemoSettings, run_demo


def test_demo_passes_every_step_and_prints_a_timeline_with_tokens() -> None:
    out = io.StringIO()
    settings = DemoSettings(ttl=1.5, renew_deadline=1.0, retry_period=0.25, hold=0.3)
    assert run_demo(MemoryBackend(), out, settings=settings)
    text = out.getvalue()
    assert text.count("became leader") == 3
    for token in (1, 2, 3):
        assert f"token {token}" in text
    assert "took over" in text and "all electors stopped" in text


def test_python_dash_m_mongoelector_demo_exits_zero() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mongoelector", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "node-" in result.stdout and "all electors stopped" in result.stdout
