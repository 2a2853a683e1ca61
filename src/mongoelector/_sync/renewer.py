"""The background thread that keeps one lock holding alive (``Lock(auto_renew=True)``).

The thread runs the pure :class:`~mongoelector.core.renewal.Renewal` rules: it
renews when they say so, sleeps with ``clock.wait_until`` in between (so under
a :class:`~mongoelector.testing.FakeClock` it sleeps until a test advances the
clock), and ends when the holding is released, replaced or lost.

A renewer never outlives its holding: it returns on its own once the holding
is lost or ended, :meth:`Renewer.stop` ends it, and every renewer still running
when the interpreter exits is stopped by an ``atexit`` hook before the
interpreter finalizes. A stop waits for the renewer's own work (an in-flight
renew), never for a user callback the thread is running (an event listener,
``on_lost``): that callback may be waiting for the thread that stops it.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable

from mongoelector._common.renewing import RenewalRules, StopControl
from mongoelector._sync.calls import Failure
from mongoelector.backends.protocol import LeaseRecord
from mongoelector.clock import Clock
from mongoelector.core.events import Renew
from mongoelector.core.renewal import Ended, Lost, Renewal, SleepUntil

__all__ = ["Renewer"]

logger = logging.getLogger("mongoelector.lock")

RenewCall = Callable[[Renew], LeaseRecord | Failure | None]
ReportCall = Callable[[int, float, LeaseRecord | Failure | None], None]

_running: weakref.WeakSet[Renewer] = weakref.WeakSet()
_running_guard = threading.Lock()


@atexit.register
def _stop_all_at_exit() -> None:
    with _running_guard:
        renewers = list(_running)
    for renewer in renewers:
        renewer.stop()


class Renewer:
    """Renews one holding of lock ``key`` in a daemon thread until it is lost or ended.

    The thread is named ``mongoelector-renew-<key>``.

    ``mutex`` guards the keeper behind ``renewal`` (it is shared with the lock);
    it is never held during a backend call or a callback. ``renew`` performs a
    ``Renew`` action (the store call alone); ``report(token, started_at,
    outcome)`` then tells the lock's listeners about it, unless the renewer was
    stopped meanwhile. If the holding is lost, ``record_loss`` records it (no
    user code; ``False`` if it was no longer the lock's latest holding) and
    ``report_loss`` runs the user callbacks, once, in this thread.
    """

    def __init__(
        self,
        *,
        key: str,
        clock: Clock,
        mutex: threading.RLock,
        renewal: Renewal,
        renew: RenewCall,
        report: ReportCall,
        record_loss: Callable[[Lost], bool],
        report_loss: Callable[[Lost], None],
    ) -> None:
        self._key = key
        self._clock = clock
        self._rules = RenewalRules(key=key, clock=clock, mutex=mutex, renewal=renewal)
        self._renew = renew
        self._report = report
        self._record_loss = record_loss
        self._report_loss = report_loss
        self._wakeup = threading.Event()
        self._state = threading.Condition()
        self._control = StopControl()
        self._parked_until: float | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"mongoelector-renew-{key}", daemon=True
        )

    @property
    def name(self) -> str:
        return self._thread.name

    def start(self) -> None:
        with _running_guard:
            _running.add(self)
        self._thread.start()

    @property
    def ended(self) -> bool:
        """True once the thread has finished its last step (it may still be exiting)."""
        with self._state:
            return self._control.done

    def stop(self) -> None:
        """Stop renewing: no store call of this renewer is in flight or starts after it returns.

        Waits for an in-flight renew (its reply is then ignored) and for the
        recording of a loss the thread found, never for a user callback: if
        the thread runs one, it is left to finish it and then ends. Otherwise
        the thread has ended when this returns. Called from the thread itself
        (from a callback), it only asks.
        """
        with self._state:
            self._control.request_stop()
        self._wakeup.set()
        if self._thread is threading.current_thread() or self._thread.ident is None:
            return
        with self._state:
            self._state.wait_for(self._control.settled)
            done = self._control.done
        if done:
            self._join()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until the thread has caught up with the clock, or has ended.

        Caught up means asleep until a deadline the clock has not reached yet,
        with no wake-up pending. Returns ``False`` if ``timeout`` (real
        seconds) passed first. When the thread has ended, returns only after
        it has exited.
        """
        with self._state:
            idle = self._state.wait_for(self._is_idle, timeout)
            done = self._control.done
        if idle and done:
            self._join()
        return idle

    def _is_idle(self) -> bool:
        if self._control.done:
            return True
        return (
            self._parked_until is not None
            and self._parked_until > self._clock.monotonic()
            and not self._wakeup.is_set()
        )

    def _join(self) -> None:
        if self._thread is not threading.current_thread() and self._thread.ident is not None:
            self._thread.join()

    # --- the thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException:
            logger.exception("renewer of lock %r crashed; the holding will lapse", self._key)
            raise
        finally:
            with _running_guard:
                _running.discard(self)
            with self._state:
                self._control.finish()
                self._state.notify_all()

    def _loop(self) -> None:
        while self._may_go_on():
            step = self._rules.next_step()
            if isinstance(step, Ended):
                return
            if isinstance(step, Lost):
                self._lost(step)
                return
            if isinstance(step, SleepUntil):
                self._sleep_until(step.until)
                continue
            if not self._may_go_on():
                return
            started_at = self._clock.monotonic()
            outcome = self._renew(step)
            if not self._may_go_on():
                return  # stopped meanwhile: the reply is ignored
            if not self._in_callbacks(self._report, step.token, started_at, outcome):
                return
            lost = self._rules.renewed(step, started_at, outcome)
            if lost is not None:
                self._lost(lost)
                return

    def _may_go_on(self) -> bool:
        with self._state:
            return self._control.may_go_on()

    def _lost(self, lost: Lost) -> None:
        if self._record_loss(lost):
            self._in_callbacks(self._report_loss, lost)

    def _in_callbacks(self, callbacks: Callable[..., None], *args: object) -> bool:
        """Run user code (a stop does not wait for it); whether to go on afterwards."""
        with self._state:
            self._control.enter_callbacks()
            self._state.notify_all()
        try:
            callbacks(*args)
        finally:
            with self._state:
                go_on = self._control.leave_callbacks()
                self._state.notify_all()
        return go_on

    def _sleep_until(self, deadline: float) -> None:
        with self._state:
            self._parked_until = deadline
            self._state.notify_all()
        try:
            self._clock.wait_until(deadline, self._wakeup)
        finally:
            self._wakeup.clear()
            with self._state:
                self._parked_until = None
                self._state.notify_all()

    def __repr__(self) -> str:
        return (
            f"Renewer(key={self._key!r}, token={self._rules.renewal.token}, "
            f"done={self._control.done})"
        )
