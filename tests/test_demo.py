"""The README's first command: the demo elects, survives a crash, and hands over."""

from __future__ import annotations

import io
import re
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


def test_the_demo_says_the_leader_is_cut_off_then_steps_down_at_its_deadline() -> None:
    out = io.StringIO()
    settings = DemoSettings(ttl=1.5, renew_deadline=1.0, retry_period=0.25, hold=0.3)
    assert run_demo(MemoryBackend(), out, settings=settings)
    text = out.getvalue()
    cut = re.search(r"demo +(node-\d) leads with token 1; now it is cut off from the store", text)
    assert cut is not None, text
    first = cut.group(1)
    assert f"{first}   stepped down at its renew deadline (no renewal reached the store)" in text
    assert "after the cut-off (bound ttl + retry_period" in text
    assert "crashes" not in text and "stepped down (stopped)" in text


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


def test_a_late_takeover_is_reported_beside_its_bound_without_failing() -> None:
    from mongoelector.demo import _increasing, _report_takeover, _Timeline
    from mongoelector.testing import FakeClock

    out = io.StringIO()
    missed: list[str] = []
    timeline = _Timeline(FakeClock(), out)
    _report_takeover(timeline, "node-2 took over", 9.0, ("crash", "ttl", 3.0), 2, missed)
    _report_takeover(timeline, "node-3 took over", 0.4, ("handover", "retry", 0.5), 3, missed)
    assert missed == ["crash"]
    assert (
        "9.00s after the crash (bound ttl = 3.00s, 3.50s with 0.50s scheduling slack) LATE, token 2"
        in out.getvalue()
    )
    assert (
        "0.40s after the handover (bound retry = 0.50s, 1.00s with 0.50s scheduling slack), token 3"
        in out.getvalue()
    )
    assert _increasing([1, 2, 3])
    assert not _increasing([1, 3, 2]) and not _increasing([1, None, 3])
