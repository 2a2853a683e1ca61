"""mongoelector.metrics: real electors and locks, read back from Prometheus and OpenTelemetry."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import prometheus_client
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry

from mongoelector import LeaderElector, Lock, monitoring
from mongoelector.backends import MemoryBackend
from mongoelector.metrics import OpenTelemetryListener, PrometheusListener
from mongoelector.monitoring import LeadershipGainedEvent, LeadershipLostEvent, LossReason
from mongoelector.testing import FakeClock
from tests.electors import elector
from tests.fakes import FlakyBackend, wait_for

JOBS = {"key": "jobs", "kind": "elector"}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def listener(registry: CollectorRegistry) -> PrometheusListener:
    return PrometheusListener(registry)


def slow_renewals(flaky: FlakyBackend, clock: FakeClock, seconds: float) -> None:
    """Every renew call takes ``seconds`` by ``clock``."""

    def before(name: str) -> None:
        if name == "renew":
            clock.advance(seconds)

    flaky.before_call = before


class Sample:
    """``registry.get_sample_value`` with the namespace and the labels shortened."""

    def __init__(self, registry: CollectorRegistry, namespace: str = "mongoelector") -> None:
        self.registry = registry
        self.namespace = namespace

    def __call__(self, name: str, labels: dict[str, str] = JOBS, **more: str) -> float | None:
        return self.registry.get_sample_value(f"{self.namespace}_{name}", {**labels, **more})


# --- Prometheus -------------------------------------------------------------------------------


def test_an_elector_term_with_slow_and_failed_renewals(
    flaky: FlakyBackend, clock: FakeClock, registry: CollectorRegistry, listener: PrometheusListener
) -> None:
    sample = Sample(registry)
    node = elector(flaky, clock, listener)
    node.poll()
    assert sample("is_leader") == 1
    assert sample("leadership_gained_total") == 1
    assert sample("fencing_token") == 1

    slow_renewals(flaky, clock, 0.03)
    clock.advance(2)
    node.poll()  # renewed, 0.03 s
    flaky.mode = "down"
    for _ in range(3):
        clock.advance(2)
        node.poll()  # three failed renewals
    flaky.mode = "ok"
    clock.advance(2)
    node.poll()  # renewed late, 0.03 s

    assert sample("renewals_total") == 2
    assert sample("late_renewals_total") == 1
    assert sample("store_errors_total", operation="renew") == 3
    assert sample("store_errors_total", operation="acquire") is None
    assert sample("renew_latency_seconds_count") == 2
    assert sample("renew_latency_seconds_sum") == pytest.approx(0.06)
    assert sample("renew_latency_seconds_bucket", le="0.025") == 0
    assert sample("renew_latency_seconds_bucket", le="0.05") == 2
    assert sample("renew_latency_seconds_bucket", le="+Inf") == 2
    assert sample("leader_changes_total") == 1
    assert sample("is_leader") == 1

    node.release()

    assert sample("is_leader") == 0
    assert sample("leadership_lost_total", reason="released") == 1
    assert sample("fencing_token") == 1  # the latest term's, still


def test_every_loss_reason_is_counted_and_resets_the_gauge(
    flaky: FlakyBackend, clock: FakeClock, registry: CollectorRegistry, listener: PrometheusListener
) -> None:
    sample = Sample(registry)
    node = elector(flaky, clock, listener)

    node.poll()
    flaky.mode = "down"
    clock.advance(10)
    node.poll()  # cut off from the store until its renew deadline: steps down
    assert (sample("is_leader"), sample("leadership_lost_total", reason="deadline")) == (0, 1)

    flaky.mode = "ok"
    clock.advance(15)
    node.poll()
    assert sample("is_leader") == 1
    Lock("jobs", flaky, clock=clock).acquire(force=True)
    clock.advance(2)
    node.poll()  # the record is someone else's now
    assert (sample("is_leader"), sample("leadership_lost_total", reason="taken_over")) == (0, 1)

    node.start()  # the loop's first poll wins once the forced lock is gone
    flaky.inner.release("jobs", None, force=True)
    clock.advance(2)
    assert wait_for(lambda: node.is_leader)
    assert node.wait_idle(10)  # the gauge moves in the event report, on the callback thread
    assert sample("is_leader") == 1
    node.stop()
    assert node.wait_idle(10)
    assert (sample("is_leader"), sample("leadership_lost_total", reason="stopped")) == (0, 1)

    assert sample("leadership_gained_total") == 3
    assert sample("leadership_lost_total", reason="released") is None


def test_several_keys_and_kinds_each_have_their_gauge(
    backend: MemoryBackend, clock: FakeClock, registry: CollectorRegistry
) -> None:
    sample = Sample(registry)
    monitoring.register(PrometheusListener(registry))
    try:
        scheduler = LeaderElector("scheduler", backend, clock=clock, report_status=False)
        report = Lock("report", backend, clock=clock)
        backup = Lock("backup", backend, clock=clock)
        scheduler.poll()
        report.acquire()
        backup.acquire()
        report.release()
    finally:
        monitoring.unregister(monitoring.registered()[-1])

    assert sample("is_leader", {"key": "scheduler", "kind": "elector"}) == 1
    assert sample("is_leader", {"key": "report", "kind": "lock"}) == 0
    assert sample("is_leader", {"key": "backup", "kind": "lock"}) == 1
    assert sample("is_leader", {"key": "scheduler", "kind": "lock"}) is None
    assert (
        sample("leadership_lost_total", {"key": "report", "kind": "lock"}, reason="released") == 1
    )


def test_a_key_led_by_another_holder_of_this_process_stays_led(
    backend: MemoryBackend,
    clock: FakeClock,
    registry: CollectorRegistry,
    listener: PrometheusListener,
) -> None:
    sample = Sample(registry)
    labels = {"key": "job", "kind": "lock"}
    first = Lock("job", backend, ttl=15, clock=clock, event_listeners=[listener])
    second = Lock("job", backend, ttl=15, clock=clock, event_listeners=[listener])
    first.acquire()
    second.acquire(force=True)  # gained by the second before the first hears it lost
    clock.advance(2)
    assert first.touch() is None  # the first finds out it lost the lock

    assert sample("leadership_lost_total", labels, reason="taken_over") == 1
    assert sample("is_leader", labels) == 1
    assert sample("fencing_token", labels) == 2

    second.release()
    assert sample("is_leader", labels) == 0


def test_a_follower_shows_the_key_as_not_led(
    backend: MemoryBackend,
    clock: FakeClock,
    registry: CollectorRegistry,
    listener: PrometheusListener,
) -> None:
    sample = Sample(registry)
    elector(backend, clock).poll()  # another process's leader, as far as the listener knows
    follower = elector(backend, clock, listener)
    follower.poll()

    assert sample("is_leader") == 0
    assert sample("leader_changes_total") == 1
    assert sample("leadership_gained_total") is None


def test_a_lock_renewer_thread_reports_through_the_listener(
    flaky: FlakyBackend, clock: FakeClock, registry: CollectorRegistry, listener: PrometheusListener
) -> None:
    sample = Sample(registry)
    labels = {"key": "job", "kind": "lock"}
    lock = Lock("job", flaky, ttl=15, clock=clock, auto_renew=True, event_listeners=[listener])
    lock.acquire()
    clock.advance(2)
    assert lock.wait_idle(5)
    assert sample("renewals_total", labels) == 1
    flaky.mode = "down"
    for _ in range(5):
        clock.advance(2)
        assert lock.wait_idle(5)

    assert sample("store_errors_total", labels, operation="renew") is not None
    assert sample("leadership_lost_total", labels, reason="deadline") == 1
    assert sample("is_leader", labels) == 0


def test_threads_racing_on_one_key_leave_exact_counts_and_the_right_gauge(
    registry: CollectorRegistry, listener: PrometheusListener
) -> None:
    sample = Sample(registry)
    threads, terms = 8, 500
    start = threading.Barrier(threads)

    def holder(index: int) -> None:
        owner = f"owner-{index}"
        start.wait()
        for token in range(terms):
            listener.leadership_gained(
                LeadershipGainedEvent(key="k", owner=owner, kind="lock", token=token, latency=0)
            )
            if index == 0 and token == terms - 1:
                break  # the first thread keeps its last term
            listener.leadership_lost(
                LeadershipLostEvent(
                    key="k",
                    owner=owner,
                    kind="lock",
                    token=token,
                    reason=LossReason.RELEASED,
                    held_for=0,
                )
            )

    workers = [threading.Thread(target=holder, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    labels = {"key": "k", "kind": "lock"}
    assert sample("leadership_gained_total", labels) == threads * terms
    assert sample("leadership_lost_total", labels, reason="released") == threads * terms - 1
    assert sample("is_leader", labels) == 1  # whichever thread reported last


def test_namespace_and_one_listener_per_registry(registry: CollectorRegistry) -> None:
    PrometheusListener(registry, namespace="app").leadership_gained(
        LeadershipGainedEvent(key="k", owner="o", kind="lock", token=7, latency=0)
    )
    labels = {"key": "k", "kind": "lock"}
    assert Sample(registry, "app")("is_leader", labels) == 1
    assert Sample(registry)("is_leader", labels) is None

    with pytest.raises(ValueError, match="one listener per process"):
        PrometheusListener(registry, namespace="app")
    PrometheusListener(registry)  # another namespace is another set of metrics


def test_no_registry_means_prometheus_clients_default(monkeypatch: pytest.MonkeyPatch) -> None:
    default = CollectorRegistry()
    monkeypatch.setattr(prometheus_client, "REGISTRY", default)
    PrometheusListener().leadership_gained(
        LeadershipGainedEvent(key="k", owner="o", kind="lock", token=1, latency=0)
    )
    assert default.get_sample_value("mongoelector_is_leader", {"key": "k", "kind": "lock"}) == 1


def test_custom_buckets(registry: CollectorRegistry, flaky: FlakyBackend, clock: FakeClock) -> None:
    listener = PrometheusListener(registry, buckets=(0.5, 1.5))
    node = elector(flaky, clock, listener)
    node.poll()
    slow_renewals(flaky, clock, 1.0)
    clock.advance(2)
    node.poll()

    sample = Sample(registry)
    assert sample("renew_latency_seconds_bucket", le="0.5") == 0
    assert sample("renew_latency_seconds_bucket", le="1.5") == 1


# --- without the optional libraries ----------------------------------------------------------


def test_the_module_imports_without_either_library_and_says_what_to_install() -> None:
    script = """
import sys
sys.modules["prometheus_client"] = None  # as if not installed
sys.modules["opentelemetry"] = None
import mongoelector.metrics as metrics
for make, extra in ((metrics.PrometheusListener, "prometheus"),
                    (metrics.OpenTelemetryListener, "otel")):
    try:
        make()
    except ImportError as error:
        print(type(error).__name__, error)
    else:
        raise SystemExit(f"{make.__name__} made without its library")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first.startswith("ImportError PrometheusListener needs the prometheus-client package")
    assert "pip install 'mongoelector[prometheus]'" in first
    assert second.startswith("ImportError OpenTelemetryListener needs the opentelemetry-api")
    assert "pip install 'mongoelector[otel]'" in second


def test_importing_the_module_loads_neither_library() -> None:
    script = (
        "import sys, mongoelector.metrics; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('prometheus_client', 'opentelemetry')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


# --- OpenTelemetry ----------------------------------------------------------------------------


class Readings:
    """What an InMemoryMetricReader collected: points by instrument name and attributes."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        self.points: dict[str, dict[frozenset[tuple[str, Any]], Any]] = {}
        self.metrics: dict[str, Any] = {}
        data = reader.get_metrics_data()
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                assert scope.scope.name == "mongoelector"
                for metric in scope.metrics:
                    self.metrics[metric.name] = metric
                    self.points[metric.name] = {
                        frozenset((point.attributes or {}).items()): point
                        for point in metric.data.data_points
                    }

    def point(self, name: str, labels: dict[str, str] = JOBS, **more: str) -> Any:
        return self.points.get(name, {}).get(frozenset({**labels, **more}.items()))

    def value(self, name: str, labels: dict[str, str] = JOBS, **more: str) -> Any:
        point = self.point(name, labels, **more)
        return None if point is None else point.value


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[reader])
    yield provider
    provider.shutdown()


def test_opentelemetry_sees_the_same_term(
    flaky: FlakyBackend, clock: FakeClock, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    listener = OpenTelemetryListener(provider)
    node = elector(flaky, clock, listener)
    lock = Lock("report", flaky, clock=clock, event_listeners=[listener])
    node.poll()
    lock.acquire()

    readings = Readings(reader)
    assert readings.value("mongoelector.is_leader") == 1
    assert readings.value("mongoelector.is_leader", {"key": "report", "kind": "lock"}) == 1
    assert readings.value("mongoelector.leadership.gained") == 1

    slow_renewals(flaky, clock, 0.03)
    clock.advance(2)
    node.poll()
    flaky.mode = "down"
    clock.advance(2)
    node.poll()
    flaky.mode = "ok"
    node.release()

    readings = Readings(reader)
    assert readings.value("mongoelector.is_leader") == 0
    assert readings.value("mongoelector.is_leader", {"key": "report", "kind": "lock"}) == 1
    assert readings.value("mongoelector.fencing_token") == 1
    assert readings.value("mongoelector.leadership.lost", reason="released") == 1
    assert readings.value("mongoelector.renewals") == 1
    assert readings.value("mongoelector.store.errors", operation="renew") == 1
    assert readings.value("mongoelector.leader.changes") == 1
    duration = readings.point("mongoelector.renew.duration")
    assert (duration.count, duration.sum) == (1, pytest.approx(0.03))
    assert readings.metrics["mongoelector.renew.duration"].unit == "s"
    assert 0.025 in duration.explicit_bounds and 0.05 in duration.explicit_bounds
    assert duration.bucket_counts[list(duration.explicit_bounds).index(0.05)] == 1
