"""docs/examples/prometheus_counters.py counts real events and renders valid exposition text."""

from __future__ import annotations

import importlib.util
import re
import urllib.request
from pathlib import Path
from types import ModuleType

import pytest

from mongoelector import LeaderElector, LeaderInfo, Lock, monitoring
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock
from tests.fakes import FlakyBackend

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLE = DOCS / "examples" / "prometheus_counters.py"
SAMPLE = re.compile(r'^[a-z_]+\{([a-z_]+="[^"\\]*(?:\\.[^"\\]*)*",?)*\} -?[0-9.e+]+$')


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("prometheus_counters", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_operations_page_shows_the_example_as_it_is() -> None:
    page = (DOCS / "operations.md").read_text()
    assert EXAMPLE.read_text() in page


def test_counters_follow_an_elector_and_a_lock(example: ModuleType, clock: FakeClock) -> None:
    metrics = example.PrometheusCounters()
    flaky = FlakyBackend(MemoryBackend(clock))
    elector = LeaderElector(
        'jobs "nightly"', flaky, ttl=15, clock=clock, report_status=False, event_listeners=[metrics]
    )
    elector.poll()
    for mode in ("down", "ok", "ok"):
        flaky.mode = mode
        clock.advance(2)
        elector.poll()
    elector.release()
    monitoring.register(metrics)
    try:
        Lock("report", flaky, clock=clock).acquire()
    finally:
        monitoring.unregister(metrics)

    text = metrics.exposition()

    key = 'key="jobs \\"nightly\\""'
    assert f'mongoelector_leadership_gained_total{{{key},kind="elector"}} 1' in text
    assert f'mongoelector_leadership_lost_total{{{key},kind="elector",reason="released"}} 1' in text
    assert f'mongoelector_renewals_total{{{key},kind="elector"}} 2' in text
    assert f'mongoelector_store_errors_total{{{key},kind="elector",operation="renew"}} 1' in text
    assert f'mongoelector_is_leader{{{key},kind="elector"}} 0' in text
    assert 'mongoelector_is_leader{key="report",kind="lock"} 1' in text
    for line in text.splitlines():
        assert line.startswith("# ") or SAMPLE.match(line), line


def test_serve_answers_metrics_requests(example: ModuleType) -> None:
    metrics = example.PrometheusCounters()
    leader = LeaderInfo(uuid="u", host="h", pid=1, token=3)
    metrics.leader_changed(
        monitoring.LeaderChangedEvent(key="k", owner="o", kind="elector", leader=leader)
    )
    server = example.serve(metrics, port=0)
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            body = reply.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert 'mongoelector_leader_changes_total{key="k",kind="elector"} 1' in body


def test_mongodb_sized_tokens_are_shown_in_full(example: ModuleType) -> None:
    metrics = example.PrometheusCounters()
    metrics.leadership_gained(
        monitoring.LeadershipGainedEvent(
            key="k", owner="o", kind="lock", token=1795692704409494, latency=0.0015
        )
    )
    metrics.renewed(
        monitoring.RenewedEvent(
            key="k", owner="o", kind="lock", token=1, latency=0.0025, margin=9.0, late=False
        )
    )

    text = metrics.exposition()

    assert 'mongoelector_fencing_token{key="k",kind="lock"} 1795692704409494' in text
    assert 'mongoelector_renew_seconds_total{key="k",kind="lock"} 0.0025' in text
