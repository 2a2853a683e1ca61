"""Metrics from mongoelector's events, for Prometheus or OpenTelemetry.

Two :class:`~mongoelector.monitoring.EventListener` subclasses turn the
events of electors and locks into metrics: :class:`PrometheusListener`
(needs ``prometheus_client``: ``pip install 'mongoelector[prometheus]'``) and
:class:`OpenTelemetryListener` (needs ``opentelemetry-api``:
``pip install 'mongoelector[otel]'``). Make one per process and register it
for every elector and lock::

    from mongoelector import monitoring
    from mongoelector.metrics import PrometheusListener

    monitoring.register(PrometheusListener())

Both report the same things, labelled with the ``key`` and the ``kind``
(``"elector"`` or ``"lock"``): leadership terms gained, and lost by
``reason``; renewals, late renewals and the renew latency (a histogram, in
seconds); failed store calls by ``operation``; new leaders seen; whether this
process leads the key now (1 or 0) and the fencing token of its latest term.
``docs/operations.md`` lists the names.

Importing this module needs neither library; each listener imports its own
when it is made, and raises :class:`ImportError` naming the extra to install
if it is missing. Listeners are called from the threads (or event loops) that
drive electors and locks; both listeners are safe to share between them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from mongoelector import monitoring

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from prometheus_client import CollectorRegistry

__all__ = ["RENEW_LATENCY_BUCKETS", "OpenTelemetryListener", "PrometheusListener"]

#: Upper bounds (seconds) of the renew latency histogram's buckets, by default.
RENEW_LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

Series = tuple[str, str]  # (key, kind)


def _reason(event: monitoring.LeadershipLostEvent) -> str:
    return event.reason.name.lower()


class _Leading:
    """Which holdings of this process lead which (key, kind): the ``is_leader`` state.

    A holding is an (owner, token) pair, so the gauge stays right with several
    electors or locks of one key in the process (a term that ends after the
    next one began, as when a lock is taken over from another object, does not
    reset it), and with several keys. ``publish(series, leading, token)`` runs
    under the table's lock after every change, so updates reach the metric in
    the order the table saw them.
    """

    def __init__(self, publish: Callable[[Series, bool, int | None], None]) -> None:
        self._lock = threading.Lock()
        self._holdings: dict[Series, set[tuple[str, int]]] = {}
        self._tokens: dict[Series, int] = {}
        self._publish = publish

    def gained(self, event: monitoring.LeadershipGainedEvent) -> None:
        series = (event.key, event.kind)
        with self._lock:
            self._holdings.setdefault(series, set()).add((event.owner, event.token))
            self._tokens[series] = event.token
            self._publish(series, True, event.token)

    def lost(self, event: monitoring.LeadershipLostEvent) -> None:
        series = (event.key, event.kind)
        with self._lock:
            holdings = self._holdings.setdefault(series, set())
            holdings.discard((event.owner, event.token))
            self._publish(series, bool(holdings), self._tokens.get(series))

    def seen(self, event: monitoring.MonitoringEvent) -> None:
        """Show the key (as not led, if no holding leads it) from its first event on."""
        series = (event.key, event.kind)
        with self._lock:
            if series not in self._holdings:
                self._holdings[series] = set()
                self._publish(series, False, None)

    def snapshot(self) -> list[tuple[Series, bool, int | None]]:
        """Every key seen: whether a holding here leads it, and its latest token here."""
        with self._lock:
            return [
                (series, bool(holdings), self._tokens.get(series))
                for series, holdings in self._holdings.items()
            ]


def _missing(what: str, package: str, module: str, extra: str) -> ImportError:
    return ImportError(
        f"{what} needs the {package} package, which is not installed: "
        f"pip install 'mongoelector[{extra}]'",
        name=module,
    )


class PrometheusListener(monitoring.EventListener):
    """Keeps Prometheus metrics of the events it hears, in ``registry``.

    ``registry`` is a ``prometheus_client.CollectorRegistry``; ``None`` means
    ``prometheus_client.REGISTRY``, the one ``start_http_server()`` serves.
    Metric names start with ``namespace + "_"``; ``buckets`` are the upper
    bounds of the renew latency histogram (seconds). A registry holds one
    listener per namespace: making a second raises ``ValueError``, so make one
    per process and register it (:func:`mongoelector.monitoring.register`) or
    hand it to every elector and lock.

    Metrics (all labelled ``key`` and ``kind``): counters
    ``<namespace>_leadership_gained_total``,
    ``<namespace>_leadership_lost_total`` (and ``reason``: ``deadline``,
    ``taken_over``, ``released``, ``stopped``), ``<namespace>_renewals_total``,
    ``<namespace>_late_renewals_total``,
    ``<namespace>_store_errors_total`` (and ``operation``) and
    ``<namespace>_leader_changes_total``; the histogram
    ``<namespace>_renew_latency_seconds``; the gauges
    ``<namespace>_is_leader`` (1 while an elector or lock of this process
    leads or holds the key, else 0) and ``<namespace>_fencing_token`` (the
    token of the latest term that began here).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        namespace: str = "mongoelector",
        *,
        buckets: Sequence[float] = RENEW_LATENCY_BUCKETS,
    ) -> None:
        try:
            import prometheus_client  # noqa: PLC0415 - an optional dependency
        except ImportError as error:
            raise _missing(
                "PrometheusListener", "prometheus-client", "prometheus_client", "prometheus"
            ) from error
        if registry is None:
            registry = prometheus_client.REGISTRY
        labels = ("key", "kind")

        def counter(name: str, text: str, *more: str) -> prometheus_client.Counter:
            return prometheus_client.Counter(
                name, text, (*labels, *more), namespace=namespace, registry=registry
            )

        def gauge(name: str, text: str) -> prometheus_client.Gauge:
            return prometheus_client.Gauge(
                name, text, labels, namespace=namespace, registry=registry
            )

        try:
            self._gained = counter("leadership_gained", "Leadership terms (holdings) begun here.")
        except ValueError as error:
            raise ValueError(
                f"the registry already has {namespace}_* metrics (another "
                f"PrometheusListener?): make one listener per process and share it, or "
                f"give this one another namespace or registry ({error})"
            ) from error
        self._lost = counter("leadership_lost", "Leadership terms that ended here.", "reason")
        self._renewals = counter("renewals", "Successful renewals.")
        self._late = counter("late_renewals", "Renewals with under half the deadline left.")
        self._errors = counter("store_errors", "Failed store calls.", "operation")
        self._changes = counter("leader_changes", "New leadership terms seen by electors.")
        self._latency = prometheus_client.Histogram(
            "renew_latency_seconds",
            "How long successful renewals took.",
            labels,
            namespace=namespace,
            registry=registry,
            buckets=tuple(buckets),
        )
        self._is_leader = gauge("is_leader", "1 while this process leads (holds) the key.")
        self._token = gauge("fencing_token", "Fencing token of the latest term begun here.")
        self._leading = _Leading(self._publish)

    def _publish(self, series: Series, leading: bool, token: int | None) -> None:
        self._is_leader.labels(*series).set(1 if leading else 0)
        if token is not None:
            self._token.labels(*series).set(token)

    def leadership_gained(self, event: monitoring.LeadershipGainedEvent) -> None:
        self._gained.labels(event.key, event.kind).inc()
        self._leading.gained(event)

    def leadership_lost(self, event: monitoring.LeadershipLostEvent) -> None:
        self._lost.labels(event.key, event.kind, _reason(event)).inc()
        self._leading.lost(event)

    def renewed(self, event: monitoring.RenewedEvent) -> None:
        self._renewals.labels(event.key, event.kind).inc()
        self._latency.labels(event.key, event.kind).observe(event.latency)
        if event.late:
            self._late.labels(event.key, event.kind).inc()
        self._leading.seen(event)

    def store_error(self, event: monitoring.StoreErrorEvent) -> None:
        self._errors.labels(event.key, event.kind, event.operation).inc()
        self._leading.seen(event)

    def leader_changed(self, event: monitoring.LeaderChangedEvent) -> None:
        self._changes.labels(event.key, event.kind).inc()
        self._leading.seen(event)


class OpenTelemetryListener(monitoring.EventListener):
    """Records the events it hears as OpenTelemetry metrics.

    Instruments come from a meter named ``"mongoelector"`` of
    ``meter_provider`` (``None``: the global one, set with
    ``opentelemetry.metrics.set_meter_provider``); their names start with
    ``namespace + "."``. Attributes: ``key``, ``kind``, and ``reason`` or
    ``operation`` where said.

    Counters ``<namespace>.leadership.gained``, ``<namespace>.leadership.lost``
    (``reason``), ``<namespace>.renewals``, ``<namespace>.late_renewals``,
    ``<namespace>.store.errors`` (``operation``) and
    ``<namespace>.leader.changes``; the histogram ``<namespace>.renew.duration``
    (unit ``s``, with ``buckets`` as its advised bucket boundaries); the
    observable gauges ``<namespace>.is_leader`` (1 or 0) and
    ``<namespace>.fencing_token``.
    """

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        namespace: str = "mongoelector",
        *,
        buckets: Sequence[float] = RENEW_LATENCY_BUCKETS,
    ) -> None:
        try:
            from opentelemetry import metrics  # noqa: PLC0415 - an optional dependency
        except ImportError as error:
            raise _missing(
                "OpenTelemetryListener", "opentelemetry-api", "opentelemetry", "otel"
            ) from error
        from mongoelector import __version__  # noqa: PLC0415 - the package imports lazily

        meter = metrics.get_meter("mongoelector", __version__, meter_provider=meter_provider)
        self._observation: type[Observation] = metrics.Observation
        self._gained = meter.create_counter(
            f"{namespace}.leadership.gained", "{term}", "Leadership terms (holdings) begun here."
        )
        self._lost = meter.create_counter(
            f"{namespace}.leadership.lost", "{term}", "Leadership terms that ended here."
        )
        self._renewals = meter.create_counter(
            f"{namespace}.renewals", "{renewal}", "Successful renewals."
        )
        self._late = meter.create_counter(
            f"{namespace}.late_renewals", "{renewal}", "Renewals with under half the deadline left."
        )
        self._errors = meter.create_counter(
            f"{namespace}.store.errors", "{error}", "Failed store calls."
        )
        self._changes = meter.create_counter(
            f"{namespace}.leader.changes", "{term}", "New leadership terms seen by electors."
        )
        self._latency = meter.create_histogram(
            f"{namespace}.renew.duration",
            "s",
            "How long successful renewals took.",
            explicit_bucket_boundaries_advisory=list(buckets),
        )
        self._leading = _Leading(lambda series, leading, token: None)
        meter.create_observable_gauge(
            f"{namespace}.is_leader",
            [self._observe_is_leader],
            "1",
            "1 while this process leads (holds) the key.",
        )
        meter.create_observable_gauge(
            f"{namespace}.fencing_token",
            [self._observe_tokens],
            "1",
            "Fencing token of the latest term begun here.",
        )

    @staticmethod
    def _attributes(event: monitoring.MonitoringEvent, **more: str) -> dict[str, str]:
        return {"key": event.key, "kind": event.kind, **more}

    def _observe_is_leader(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            self._observation(1 if leading else 0, {"key": key, "kind": kind})
            for (key, kind), leading, _ in self._leading.snapshot()
        ]

    def _observe_tokens(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            self._observation(token, {"key": key, "kind": kind})
            for (key, kind), _, token in self._leading.snapshot()
            if token is not None
        ]

    def leadership_gained(self, event: monitoring.LeadershipGainedEvent) -> None:
        self._gained.add(1, self._attributes(event))
        self._leading.gained(event)

    def leadership_lost(self, event: monitoring.LeadershipLostEvent) -> None:
        self._lost.add(1, self._attributes(event, reason=_reason(event)))
        self._leading.lost(event)

    def renewed(self, event: monitoring.RenewedEvent) -> None:
        attributes = self._attributes(event)
        self._renewals.add(1, attributes)
        self._latency.record(event.latency, attributes)
        if event.late:
            self._late.add(1, attributes)
        self._leading.seen(event)

    def store_error(self, event: monitoring.StoreErrorEvent) -> None:
        self._errors.add(1, self._attributes(event, operation=event.operation))
        self._leading.seen(event)

    def leader_changed(self, event: monitoring.LeaderChangedEvent) -> None:
        self._changes.add(1, self._attributes(event))
        self._leading.seen(event)
