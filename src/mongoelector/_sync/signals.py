"""``stop_on_signals``: on SIGTERM, step down, free every lease, and exit (sync code).

Containers, systemd and most process managers stop a service with SIGTERM and
kill it a grace period later. Python's default for SIGTERM ends the process at
once, without running ``finally`` blocks, so a leader killed that way keeps its
lease until the lease runs out, and nobody can take over before then.
:func:`stop_on_signals` turns the signal into a normal way out of a ``with``
block, and leaving the block stops the electors and releases the locks it was
given.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import Any

from mongoelector._sync.elector import LeaderElector
from mongoelector._sync.lock import Lock
from mongoelector.errors import BackendError

__all__ = ["stop_on_signals"]

_log = logging.getLogger("mongoelector")


def _check(participants: tuple[object, ...]) -> tuple[LeaderElector | Lock, ...]:
    chosen: list[LeaderElector | Lock] = []
    for participant in participants:
        if not isinstance(participant, (LeaderElector, Lock)):
            raise TypeError(
                "stop_on_signals() takes LeaderElector and Lock objects (MongoLeaderElector "
                f"and MongoLocker too), got {type(participant).__name__}; with asyncio, use "
                "loop.add_signal_handler (see docs/asyncio.md)"
            )
        chosen.append(participant)
    return tuple(chosen)


def _signal_numbers(signals: Iterable[int]) -> tuple[signal.Signals, ...]:
    numbers = tuple(signal.Signals(number) for number in signals)
    if not numbers:
        raise ValueError("stop_on_signals() needs at least one signal")
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"signals listed twice: {[number.name for number in numbers]}")
    return numbers


def _stop_all(participants: tuple[LeaderElector | Lock, ...]) -> list[BackendError]:
    """Stop every elector and release every lock; return the store errors, logged."""
    errors: list[BackendError] = []
    for participant in participants:
        try:
            if isinstance(participant, LeaderElector):
                participant.stop()
            else:
                participant.release()
        except BackendError as error:
            kind = "elector" if isinstance(participant, LeaderElector) else "lock"
            _log.warning(
                "stop_on_signals: could not free %s %r (its lease lapses after its ttl): %s",
                kind,
                participant.key,
                error,
            )
            errors.append(error)
    return errors


@contextlib.contextmanager
def stop_on_signals(
    *participants: LeaderElector | Lock,
    signals: Iterable[int] = (signal.SIGTERM,),
    exit_code: int = 0,
) -> Iterator[None]:
    """Make ``signals`` (SIGTERM by default) end the block; stop and release on the way out.

    Inside the block, the first of ``signals`` to arrive raises
    ``SystemExit(exit_code)`` in the main thread, wherever it is (a sleep, a
    wait, your own code), as Ctrl-C raises ``KeyboardInterrupt``: ``finally``
    blocks and ``with`` statements run as the exception passes. If another
    Python handler was installed for that signal before, it is called first;
    an exception it raises leaves the block instead (the default SIGINT
    handler raises ``KeyboardInterrupt``).

    Leaving the block, for whatever reason (its end, an exception, a signal),
    stops every given elector (``stop()``: it steps down, fires
    ``on_leader_loss`` if it led, and frees the lease) and releases every
    given lock (``release()``: a no-op for a lock that holds nothing), in the
    order given. So another process takes over within its retry period
    instead of waiting out the lease. A store error while freeing one is
    logged to the ``mongoelector`` logger (that lease lapses after its ttl)
    and the rest are still freed; it is raised afterwards only when the block
    ended without an exception. The previous handlers are back once the block
    is left. A signal that arrives while the participants are being freed
    does not interrupt that; if the block had ended normally, it then raises
    ``SystemExit(exit_code)``.

    Enter it in the main thread (Python runs signal handlers only there;
    anywhere else it raises ``ValueError``). The electors' and renewers'
    threads are daemon threads and end with the process; your own non-daemon
    threads must end for the process to exit. It is for sync code: with
    asyncio, use ``loop.add_signal_handler`` (see ``docs/asyncio.md``). SIGKILL
    cannot be caught: a process killed by it keeps its leases until they
    expire.
    """
    chosen = _check(participants)
    numbers = _signal_numbers(signals)
    if isinstance(exit_code, bool) or not isinstance(exit_code, int):
        raise TypeError(f"exit_code must be an int, got {exit_code!r}")
    if threading.current_thread() is not threading.main_thread():
        raise ValueError(
            "stop_on_signals() must be entered in the main thread: Python runs signal "
            "handlers only there"
        )
    state = {"leaving": False, "signalled": False}
    previous: dict[signal.Signals, Any] = {}

    def handle(number: int, frame: FrameType | None) -> None:
        if state["signalled"]:
            return  # one way out is enough
        state["signalled"] = True
        if state["leaving"]:
            return  # freeing the participants already; raised afterwards if need be
        before = previous.get(signal.Signals(number))
        if callable(before):
            before(number, frame)
        raise SystemExit(exit_code)

    try:
        for number in numbers:
            previous[number] = signal.signal(number, handle)
        failed = True
        try:
            yield
            failed = False
        finally:
            state["leaving"] = True
            errors = _stop_all(chosen)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
    if not failed:
        if errors:
            raise errors[0]
        if state["signalled"]:
            raise SystemExit(exit_code)
