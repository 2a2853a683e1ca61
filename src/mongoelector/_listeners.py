"""Event listeners and the process-wide registry (re-exported by :mod:`mongoelector.monitoring`).

Here, apart from the event classes, so that a lock or elector can take and
check listeners without building the event dataclasses at import: those are
loaded (with :mod:`mongoelector.monitoring`) when an event is first sent to a
listener. The names below are the same objects as ``mongoelector.monitoring``'s
and say that they live there.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mongoelector.monitoring import (
        JobSkippedEvent,
        LeaderChangedEvent,
        LeadershipGainedEvent,
        LeadershipLostEvent,
        RenewedEvent,
        SlowRoundTripsEvent,
        StoreErrorEvent,
    )

__all__ = [
    "ELECTOR",
    "LOCK",
    "EventListener",
    "check_listeners",
    "register",
    "registered",
    "unregister",
]

#: ``kind`` of events from a leader elector.
ELECTOR = "elector"
#: ``kind`` of events from a lock.
LOCK = "lock"


class EventListener:
    """Base class of event listeners: every method does nothing until overridden."""

    def leadership_gained(self, event: LeadershipGainedEvent) -> None:
        """The owner leads (holds) the key now."""

    def leadership_lost(self, event: LeadershipLostEvent) -> None:
        """The owner no longer leads (holds) the key."""

    def renewed(self, event: RenewedEvent) -> None:
        """A renewal succeeded (with its latency and the margin left)."""

    def store_error(self, event: StoreErrorEvent) -> None:
        """A store call failed."""

    def leader_changed(self, event: LeaderChangedEvent) -> None:
        """An elector saw a new leadership term."""

    def slow_round_trips(self, event: SlowRoundTripsEvent) -> None:
        """Store round trips started (or stopped) leaving the lease settings no margin."""

    def job_skipped(self, event: JobSkippedEvent) -> None:
        """An exclusive job's call was skipped because another holder had its lock."""


def check_listeners(listeners: Iterable[EventListener], *, name: str) -> tuple[EventListener, ...]:
    """``listeners`` as a tuple, if every one is an :class:`EventListener`; else ``TypeError``."""
    if isinstance(listeners, (str, bytes, EventListener)) or not isinstance(listeners, Iterable):
        raise TypeError(f"{name} must be an iterable of EventListener, got {listeners!r}")
    checked = tuple(listeners)
    for listener in checked:
        if not isinstance(listener, EventListener):
            raise TypeError(
                f"{name} must hold EventListener instances, got {type(listener).__name__} "
                f"{listener!r}"
            )
    return checked


_registry_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _registry_lock  # noqa: PLW0603 - a fresh lock for the child
    _registry_lock = threading.Lock()  # another thread of the parent may have held it


os.register_at_fork(after_in_child=_after_fork_in_child)
_registry: tuple[EventListener, ...] = ()


def register(listener: EventListener) -> None:
    """Send the events of every elector and lock in this process to ``listener`` too.

    Takes effect at once, for existing electors and locks as well. Registering
    the same listener twice has no further effect.
    """
    global _registry  # noqa: PLW0603 - the process-wide registry
    (checked,) = check_listeners([listener], name="listener")
    with _registry_lock:
        if not any(existing is checked for existing in _registry):
            _registry = (*_registry, checked)


def unregister(listener: EventListener) -> None:
    """Stop sending events to ``listener`` (registered with :func:`register`); no-op if absent."""
    global _registry  # noqa: PLW0603 - the process-wide registry
    with _registry_lock:
        _registry = tuple(existing for existing in _registry if existing is not listener)


def registered() -> tuple[EventListener, ...]:
    """The listeners registered for the whole process, in registration order."""
    return _registry


for _public in (EventListener, check_listeners, register, unregister, registered):
    _public.__module__ = "mongoelector.monitoring"
del _public
