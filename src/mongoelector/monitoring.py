"""Events from electors and locks, for metrics and alerts, in the spirit of pymongo's monitoring.

Subclass :class:`EventListener`, override the methods for the events you care
about, and hand instances to an elector or lock
(``LeaderElector(..., event_listeners=[listener])``; ``Lock``,
``AsyncLeaderElector``, ``AsyncLock`` and the 1.x facades take the same
argument), or :func:`register` them for every elector and lock in the process::

    from mongoelector import monitoring

    class Alerts(monitoring.EventListener):
        def leadership_lost(self, event):
            if event.reason is monitoring.LossReason.DEADLINE:
                page_someone(f"{event.key} lost its leader: the store was unreachable")

    monitoring.register(Alerts())

Listeners are called synchronously, in the thread (or event loop) that drives
the elector or lock, right after the change happened: keep them quick and
never block in them. A listener that raises is logged (logger
``mongoelector.monitoring``) and the elector or lock goes on as if nothing
happened. :mod:`mongoelector.metrics` has ready-made listeners for Prometheus
and OpenTelemetry.

Every event says which ``key`` it is about, the ``owner`` id (uuid) of the
elector or lock that saw it, and its ``kind``: ``"elector"`` or ``"lock"``.
For a lock, "leadership" means holding the lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from mongoelector._listeners import (
    ELECTOR,
    LOCK,
    EventListener,
    check_listeners,
    register,
    registered,
    unregister,
)
from mongoelector.core.events import LeaderInfo, LossReason
from mongoelector.errors import BackendError

__all__ = [
    "ELECTOR",
    "LOCK",
    "EventListener",
    "JobSkippedEvent",
    "LeaderChangedEvent",
    "LeadershipGainedEvent",
    "LeadershipLostEvent",
    "LossReason",
    "MonitoringEvent",
    "RenewedEvent",
    "SlowRoundTripsEvent",
    "StoreErrorEvent",
    "check_listeners",
    "register",
    "registered",
    "unregister",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitoringEvent:
    """What every event has: the ``key``, the ``owner`` id that saw it, and ``kind``."""

    key: str
    owner: str
    kind: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LeadershipGainedEvent(MonitoringEvent):
    """The owner became leader (an elector) or took the lock, with fencing ``token``.

    ``latency`` is how long the store call that won took, in seconds.
    """

    token: int
    latency: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LeadershipLostEvent(MonitoringEvent):
    """The owner stopped leading (or holding) with ``token``, for ``reason``.

    ``reason`` is :attr:`LossReason.DEADLINE` when it could not renew in time
    (it stepped down), :attr:`LossReason.TAKEN_OVER` when the store no longer
    had its record, :attr:`LossReason.RELEASED` or :attr:`LossReason.STOPPED`
    when it let go itself. ``held_for`` is how long the term lasted (seconds,
    by the owner's clock), ``None`` if its start was not seen.
    """

    token: int
    reason: LossReason
    held_for: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RenewedEvent(MonitoringEvent):
    """A renewal of ``token`` succeeded.

    ``latency`` is how long the store call took; ``margin`` how many seconds
    were left before the renew deadline when the reply came (the owner would
    have stepped down at 0). ``late`` is true when less than half of the
    renew deadline was left: renewals are failing or slow.
    """

    token: int
    latency: float
    margin: float
    late: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreErrorEvent(MonitoringEvent):
    """A store call failed with ``error``.

    ``operation`` is ``"acquire"``, ``"renew"``, ``"read"``, ``"release"`` or
    ``"status report"``; ``token`` the holding it was for, if any.
    ``ambiguous`` is true when the call may have taken effect anyway.
    """

    operation: str
    error: BackendError
    ambiguous: bool
    token: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaderChangedEvent(MonitoringEvent):
    """An elector saw a new leadership term (another node's or its own): ``leader``."""

    leader: LeaderInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class SlowRoundTripsEvent(MonitoringEvent):
    """Store round trips leave the owner's lease settings no margin, or (``cleared``) again do.

    ``round_trip`` is the longest of the owner's recent store round trips
    (seconds; replies only, failed calls do not count). No margin means
    ``1.5 * round_trip > renew_deadline - retry_period``: the owner then
    renews sooner than every ``retry_period`` so that a reply that slow still
    arrives before the renew deadline, and a failed renewal has less than a
    ``retry_period`` left to be retried. Sent once when that starts, and once
    (with ``cleared``) when the recent round trips are short enough again;
    not again in between. Lengthen ``renew_deadline`` (and ``ttl``) or
    shorten ``retry_period`` to restore the margin.
    """

    round_trip: float
    renew_deadline: float
    retry_period: float
    cleared: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSkippedEvent(MonitoringEvent):
    """A :func:`mongoelector.jobs.exclusive` function was not run: the lock was held.

    ``job`` is the function's qualified name, ``reason`` says who held the
    lock (the message of the ``LockExists`` or ``AcquireTimeout``), and
    ``waited`` how many seconds the call waited for it (0 without ``wait``).
    ``owner`` is the id of the call's lock, ``kind`` is ``"lock"``.
    """

    job: str
    reason: str
    waited: float
