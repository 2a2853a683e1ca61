"""Where an elector's or lock's events go: the log, then every listener (both drivers).

:class:`Monitor` is the one place that turns what happened to a holding into a
:mod:`mongoelector.monitoring` event, writes its log line, and calls the
listeners (the object's own, then those registered for the process), so that
a listener that raises never reaches the elector or lock.

Log lines (logger ``mongoelector.elector`` or ``mongoelector.lock``): INFO
when leadership is gained, released or another leader is seen; WARNING when a
renewal comes late, a store call fails, the holder steps down at its renew
deadline, its lease is taken over, or store round trips start leaving the
lease settings no margin (INFO when they stop); DEBUG for a routine renewal. Nothing is
logged at INFO for a routine poll or renewal.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING

from mongoelector import _listeners
from mongoelector._listeners import ELECTOR, EventListener
from mongoelector.core.events import (
    Action,
    Inspect,
    LeaderInfo,
    LossReason,
    Observe,
    Release,
    Renew,
    SlowRoundTrips,
)
from mongoelector.errors import AmbiguousOutcome, BackendError

if TYPE_CHECKING:
    from mongoelector.clock import Clock
    from mongoelector.monitoring import MonitoringEvent

__all__ = ["Monitor", "operation_of"]

listener_log = logging.getLogger("mongoelector.monitoring")


def _relative_to_deadline(margin: float) -> str:
    """``margin`` seconds before the renew deadline, said without a negative time."""
    if margin >= 0.005:
        return f"{margin:.2f} s before its renew deadline"
    if margin > -0.005:
        return "at its renew deadline"
    return f"{-margin:.2f} s after its renew deadline"


def _left_before_deadline(margin: float) -> str:
    """How long is left before the renew deadline, or how long ago it passed (never negative)."""
    if margin >= 0.005:
        return f"{margin:.2f} s left before the renew deadline"
    if margin > -0.005:
        return "at the renew deadline"
    return f"the renew deadline passed {-margin:.2f} s ago"


#: Guards the term of every monitor (held for an assignment or two): one lock for the
#: process, not one for each of its thousands of locks and electors.
_TERMS = threading.Lock()


def _after_fork_in_child() -> None:
    global _TERMS  # noqa: PLW0603 - a fresh lock for the child
    _TERMS = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


#: Event type name -> the listener method that receives it.
_METHODS: dict[str, str] = {
    "LeadershipGainedEvent": "leadership_gained",
    "LeadershipLostEvent": "leadership_lost",
    "RenewedEvent": "renewed",
    "StoreErrorEvent": "store_error",
    "LeaderChangedEvent": "leader_changed",
    "SlowRoundTripsEvent": "slow_round_trips",
    "JobSkippedEvent": "job_skipped",
}


def _events() -> ModuleType:
    """:mod:`mongoelector.monitoring`, whose event classes are built when first needed:
    when an event is sent to a listener."""
    from mongoelector import monitoring  # noqa: PLC0415 - only once someone listens

    return monitoring


def operation_of(action: Action) -> str:
    """What a store call for ``action`` is called in events and logs."""
    if isinstance(action, Renew):
        return "renew"
    if isinstance(action, Release):
        return "release"
    if isinstance(action, (Inspect, Observe)):
        return "read"
    return "acquire"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


class Monitor:
    """The events of one elector or lock (``kind``) on ``key``, owned by ``owner``.

    ``renew_deadline`` (seconds) is what a renewal's margin is judged against.
    Safe to call from any thread.
    """

    __slots__ = (  # one per lock and elector
        "_key",
        "_kind",
        "_listeners",
        "_log",
        "_owner",
        "_renew_deadline",
        "_since",
        "_term",
    )

    def __init__(
        self,
        *,
        kind: str,
        key: str,
        owner: str,
        renew_deadline: float,
        listeners: Iterable[EventListener],
    ) -> None:
        self._kind = kind
        self._key = key
        self._owner = owner
        self._renew_deadline = renew_deadline
        self._listeners = _listeners.check_listeners(listeners, name="event_listeners")
        self._log = logging.getLogger(f"mongoelector.{kind}")
        # The token of the term (holding) in progress, and the monotonic time it began;
        # both under _TERMS.
        self._term: int | None = None
        self._since = 0.0

    @property
    def listeners(self) -> tuple[EventListener, ...]:
        return self._listeners

    def for_owner(self, owner: str) -> Monitor:
        """A new monitor like this one for ``owner`` (no term): for a forked child's copy."""
        return Monitor(
            kind=self._kind,
            key=self._key,
            owner=owner,
            renew_deadline=self._renew_deadline,
            listeners=self._listeners,
        )

    def has_listeners(self) -> bool:
        """True if events reach user code (this object's listeners or the process's)."""
        return bool(self._listeners or _listeners.registered())

    def _what(self) -> str:
        return f"{self._kind} {self._key!r} ({self._owner})"

    # --- what happened ---------------------------------------------------------------

    def gained(self, token: int, *, latency: float, now: float) -> None:
        """Leadership (or the lock) was gained with ``token`` at monotonic ``now``."""
        with _TERMS:
            self._term, self._since = token, now
        if self._log.isEnabledFor(logging.INFO):
            verb = "leads" if self._kind == ELECTOR else "holds the lock"
            self._log.info(
                "%s %s with token %d (the winning call took %s)",
                self._what(),
                verb,
                token,
                _ms(latency),
            )
        if self._listeners or _listeners.registered():
            self._emit(
                _events().LeadershipGainedEvent(
                    key=self._key, owner=self._owner, kind=self._kind, token=token, latency=latency
                ),
            )

    def released(self, token: int, clock: Clock) -> None:
        """:meth:`lost` for ``RELEASED`` at the ``clock``'s monotonic time, read only if the
        log or a listener is told (the term ends either way)."""
        if self._listeners or _listeners.registered() or self._log.isEnabledFor(logging.INFO):
            self.lost(token, LossReason.RELEASED, now=clock.monotonic())
            return
        with _TERMS:
            self._term = None

    def lost(self, token: int, reason: LossReason, *, now: float) -> None:
        """The holding with ``token`` ended at monotonic ``now`` for ``reason``."""
        with _TERMS:
            term, since, self._term = self._term, self._since, None
        held_for = now - since if term is not None and term == token else None
        if reason is LossReason.DEADLINE or reason is LossReason.TAKEN_OVER:
            self._log_loss(token, reason, held_for)
        elif self._log.isEnabledFor(logging.INFO):
            held = f"; held {held_for:.1f} s" if held_for is not None else ""
            how = "released" if reason is LossReason.RELEASED else "stopped: gave up"
            self._log.info("%s %s token %d%s", self._what(), how, token, held)
        if self._listening():
            self._emit(
                _events().LeadershipLostEvent(
                    key=self._key,
                    owner=self._owner,
                    kind=self._kind,
                    token=token,
                    reason=reason,
                    held_for=held_for,
                )
            )

    def _log_loss(self, token: int, reason: LossReason, held_for: float | None) -> None:
        """The WARNING line of a holding that ended without a release."""
        if not self._log.isEnabledFor(logging.WARNING):
            return
        held = f"; held {held_for:.1f} s" if held_for is not None else ""
        if reason is LossReason.DEADLINE:
            self._log.warning(
                "%s stepped down from token %d: no successful renewal within the renew deadline "
                "(%g s)%s",
                self._what(),
                token,
                self._renew_deadline,
                held,
            )
        else:
            self._log.warning(
                "%s lost token %d: the lease was taken over (the store has another record)%s",
                self._what(),
                token,
                held,
            )

    def renewed(self, token: int, *, latency: float, margin: float) -> None:
        """A renewal of ``token`` took ``latency`` s, with ``margin`` s left before the deadline."""
        late = margin < self._renew_deadline / 2
        if late:
            if self._log.isEnabledFor(logging.WARNING):
                self._log.warning(
                    "%s renewed token %d late: %s (the call took %s)",
                    self._what(),
                    token,
                    _relative_to_deadline(margin),
                    _ms(latency),
                )
        elif self._log.isEnabledFor(logging.DEBUG):
            self._log.debug(
                "%s renewed token %d in %s, %s",
                self._what(),
                token,
                _ms(latency),
                _relative_to_deadline(margin),
            )
        if self._listening():
            self._emit(
                _events().RenewedEvent(
                    key=self._key,
                    owner=self._owner,
                    kind=self._kind,
                    token=token,
                    latency=latency,
                    margin=margin,
                    late=late,
                )
            )

    def store_error(
        self,
        operation: str,
        error: BackendError,
        *,
        token: int | None = None,
        margin: float | None = None,
    ) -> None:
        """A store call for ``operation`` failed (``margin``: seconds left before the deadline)."""
        ambiguous = isinstance(error, AmbiguousOutcome)
        of = f" of token {token}" if token is not None else ""
        unknown = " (outcome unknown)" if ambiguous else ""
        left = f"; {_left_before_deadline(margin)}" if margin is not None else ""
        self._log.warning(
            "%s: %s%s failed%s: %s%s", self._what(), operation, of, unknown, error, left
        )
        if not self._listening():
            return
        self._emit(
            _events().StoreErrorEvent(
                key=self._key,
                owner=self._owner,
                kind=self._kind,
                operation=operation,
                error=error,
                ambiguous=ambiguous,
                token=token,
            )
        )

    def leader_changed(self, leader: LeaderInfo) -> None:
        """A new leadership term was seen (this node's own included)."""
        if leader.uuid != self._owner and self._log.isEnabledFor(logging.INFO):
            self._log.info(
                "%s sees a new leader: %s (pid %s on %s) with token %d",
                self._what(),
                leader.uuid,
                leader.pid,
                leader.host,
                leader.token,
            )
        if self._listening():
            self._emit(
                _events().LeaderChangedEvent(
                    key=self._key, owner=self._owner, kind=self._kind, leader=leader
                )
            )

    def slow_round_trips(self, notice: SlowRoundTrips) -> None:
        """Store round trips started (or, ``cleared``, stopped) leaving the settings no margin."""
        if notice.cleared:
            self._log.info(
                "%s: store round trips (longest recent %s) leave a margin again: renewing every "
                "retry_period (%g s)",
                self._what(),
                _ms(notice.round_trip),
                notice.retry_period,
            )
        else:
            self._log.warning(
                "%s: store round trips up to %s leave no margin with renew_deadline=%g s and "
                "retry_period=%g s (1.5 x round trip > renew_deadline - retry_period); renewing "
                "early so that replies arrive before the deadline",
                self._what(),
                _ms(notice.round_trip),
                notice.renew_deadline,
                notice.retry_period,
            )
        if not self._listening():
            return
        self._emit(
            _events().SlowRoundTripsEvent(
                key=self._key,
                owner=self._owner,
                kind=self._kind,
                round_trip=notice.round_trip,
                renew_deadline=notice.renew_deadline,
                retry_period=notice.retry_period,
                cleared=notice.cleared,
            )
        )

    def job_skipped(self, job: str, reason: str, *, waited: float) -> None:
        """A ``mongoelector.jobs`` call of ``job`` was skipped (logged by the caller)."""
        if self._listening():
            self._emit(
                _events().JobSkippedEvent(
                    key=self._key,
                    owner=self._owner,
                    kind=self._kind,
                    job=job,
                    reason=reason,
                    waited=waited,
                )
            )

    # --- delivery ---------------------------------------------------------------------

    def _listening(self) -> bool:
        """True if anyone receives events: this object's listeners or the process's."""
        return bool(self._listeners) or bool(_listeners.registered())

    def _emit(self, event: MonitoringEvent) -> None:
        method = _METHODS[type(event).__name__]
        for listener in (*self._listeners, *_listeners.registered()):
            try:
                getattr(listener, method)(event)
            except Exception:
                listener_log.exception(
                    "event listener %r raised in %s(); %s %r goes on",
                    listener,
                    method,
                    self._kind,
                    self._key,
                )
