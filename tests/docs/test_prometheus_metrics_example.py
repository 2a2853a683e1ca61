"""docs/examples/prometheus_metrics.py, run as a real process: serves /metrics until a signal."""

from __future__ import annotations

import re
import selectors
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLE = DOCS / "examples" / "prometheus_metrics.py"
#: Real seconds the example may take to start, to lead, or to stop (hang guards, not timings).
LIMIT = 30


def test_the_operations_page_shows_the_example_as_it_is() -> None:
    page = (DOCS / "operations.md").read_text()
    assert EXAMPLE.read_text() in page


def first_line(process: subprocess.Popen[str]) -> str:
    """The first line ``process`` prints, waiting at most LIMIT seconds for it."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(LIMIT):
            raise AssertionError(f"the example printed nothing in {LIMIT} s")
    return process.stdout.readline()


def scrape_until(url: str, wanted: str) -> str:
    """GET ``url`` until the body has the line ``wanted`` (or LIMIT seconds passed)."""
    body = ""
    deadline = time.monotonic() + LIMIT
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url, timeout=5) as reply:
            assert reply.status == 200
            data: bytes = reply.read()
        body = data.decode()
        if wanted in body.splitlines():
            return body
        time.sleep(0.05)
    raise AssertionError(f"{wanted!r} never appeared in:\n{body}")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_example_serves_metrics_until_interrupted(signum: int, tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", "0", "--addr", "127.0.0.1", "--key", "nightly"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = first_line(process)
        found = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", banner)
        assert found, banner
        url = f"http://127.0.0.1:{found[1]}/metrics"

        body = scrape_until(url, 'mongoelector_is_leader{key="nightly",kind="elector"} 1.0')

        assert 'mongoelector_leadership_gained_total{key="nightly",kind="elector"} 1.0' in body
        assert "# TYPE mongoelector_renew_latency_seconds histogram" in body
        process.send_signal(signum)
        out, err = process.communicate(timeout=LIMIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, err
    assert err == ""
    assert out == "stopped; 'nightly' released\n"
    with pytest.raises(urllib.error.URLError):  # the server went with the process
        urllib.request.urlopen(url, timeout=5)
