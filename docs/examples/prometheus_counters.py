"""Prometheus-style metrics from mongoelector's events, without any metrics library.

Register one listener for the whole process, and serve ``exposition()`` at
``/metrics`` with whatever HTTP server the service already has (or with
``serve()`` below, from the standard library).
"""

from __future__ import annotations

import http.server
import threading

from mongoelector import monitoring

Labels = tuple[tuple[str, str], ...]

HELP = {
    "mongoelector_leadership_gained_total": ("counter", "Terms this process started leading."),
    "mongoelector_leadership_lost_total": ("counter", "Terms that ended, by reason."),
    "mongoelector_renewals_total": ("counter", "Successful renewals."),
    "mongoelector_late_renewals_total": ("counter", "Renewals with under half the deadline left."),
    "mongoelector_renew_seconds_total": ("counter", "Time spent in successful renewals."),
    "mongoelector_store_errors_total": ("counter", "Failed store calls, by operation."),
    "mongoelector_leader_changes_total": ("counter", "New leadership terms seen."),
    "mongoelector_is_leader": ("gauge", "1 while this process leads (holds) the key."),
    "mongoelector_fencing_token": ("gauge", "Fencing token of the current term."),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    """Whole numbers in full (fencing tokens have 16 digits), others as Python prints them."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class PrometheusCounters(monitoring.EventListener):
    """Counts events per key (and reason, operation) and renders them as Prometheus text."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._counters: dict[tuple[str, Labels], float] = {}
        self._gauges: dict[tuple[str, Labels], float] = {}

    def _add(self, name: str, amount: float = 1, **labels: str) -> None:
        series = (name, tuple(sorted(labels.items())))
        with self._mutex:
            self._counters[series] = self._counters.get(series, 0) + amount

    def _set(self, name: str, value: float, **labels: str) -> None:
        with self._mutex:
            self._gauges[name, tuple(sorted(labels.items()))] = value

    def leadership_gained(self, event: monitoring.LeadershipGainedEvent) -> None:
        self._add("mongoelector_leadership_gained_total", kind=event.kind, key=event.key)
        self._set("mongoelector_is_leader", 1, kind=event.kind, key=event.key)
        self._set("mongoelector_fencing_token", event.token, kind=event.kind, key=event.key)

    def leadership_lost(self, event: monitoring.LeadershipLostEvent) -> None:
        reason = event.reason.name.lower()
        self._add(
            "mongoelector_leadership_lost_total", kind=event.kind, key=event.key, reason=reason
        )
        self._set("mongoelector_is_leader", 0, kind=event.kind, key=event.key)

    def renewed(self, event: monitoring.RenewedEvent) -> None:
        self._add("mongoelector_renewals_total", kind=event.kind, key=event.key)
        self._add("mongoelector_renew_seconds_total", event.latency, kind=event.kind, key=event.key)
        if event.late:
            self._add("mongoelector_late_renewals_total", kind=event.kind, key=event.key)

    def store_error(self, event: monitoring.StoreErrorEvent) -> None:
        self._add(
            "mongoelector_store_errors_total",
            kind=event.kind,
            key=event.key,
            operation=event.operation,
        )

    def leader_changed(self, event: monitoring.LeaderChangedEvent) -> None:
        self._add("mongoelector_leader_changes_total", kind=event.kind, key=event.key)

    def exposition(self) -> str:
        """Every metric in the Prometheus text format (version 0.0.4)."""
        with self._mutex:
            samples = [*self._counters.items(), *self._gauges.items()]
        lines = []
        for name, (kind, text) in HELP.items():
            mine = sorted((labels, value) for (metric, labels), value in samples if metric == name)
            if not mine:
                continue
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            for labels, value in mine:
                shown = ",".join(f'{label}="{_escape(text)}"' for label, text in labels)
                lines.append(f"{name}{{{shown}}} {_number(value)}")
        return "\n".join(lines) + "\n"


def serve(metrics: PrometheusCounters, port: int = 9464) -> http.server.ThreadingHTTPServer:
    """Serve ``metrics`` at ``http://0.0.0.0:port/metrics`` from a daemon thread."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = metrics.exposition().encode()
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body if self.path == "/metrics" else b"")

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every few seconds are not news

    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":
    metrics = PrometheusCounters()
    monitoring.register(metrics)  # every elector and lock in this process reports to it
    serve(metrics)
