"""The background thread that keeps one lock holding alive (``Lock(auto_renew=True)``).

The thread runs the pure :class:`~mongoelector.core.renewal.Renewal` rules: it
renews when they say so, sleeps with ``clock.wait_until`` in between (so under
a :class:`~mongoelector.testing.FakeClock` it sleeps until a test advances the
clock), and ends when the holding is released, replaced or lost.

A renewer never outlives its holding: it returns on its own once the holding
is lost or ended, :meth:`Renewer.stop` ends it (and waits for it), and every
renewer still running when the interpreter exits is stopped by an ``atexit``
hook before the interpreter finalizes.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable

from mongoelector._common.renewing import RenewalRules
from mongoelector._sync.calls import Failure
from mongoelector.backends.protocol import LeaseRecord
from mongoelector.clock import Clock
from mongoelector.core.events import Renew
from mongoelector.core.renewal import Ended, Lost, Renewal, SleepUntil

__all__ = ["Renewer"]

logger = logging.getLogger("mongoelector.lock")

RenewCall = Callable[[Renew], LeaseRecord | Failure | None]

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
    ``Renew`` action (and reports its outcome to the lock's listeners);
    ``on_lost`` is called once, in this thread, if the holding is lost.
    """

    def __init__(
        self,
        *,
        key: str,
        clock: Clock,
        mutex: threading.RLock,
        renewal: Renewal,
        renew: RenewCall,
        on_lost: Callable[[Lost], None],
    ) -> None:
        self._key = key
        self._clock = clock
        self._rules = RenewalRules(key=key, clock=clock, mutex=mutex, renewal=renewal)
        self._renew = renew
        self._on_lost = on_lost
        self._wakeup = threading.Event()
        self._state = threading.Condition()
        self._stopping = False
        self._parked_until: float | None = None
        self._done = False
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

    def stop(self) -> None:
        """End the thread and wait for it (unless called from the thread itself).

        An in-flight backend call is allowed to finish first; its reply is
        ignored if the holding has ended meanwhile.
        """
        with self._state:
            self._stopping = True
        self._wakeup.set()
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
            done = self._done
        if idle and done:
            self._join()
        return idle

    def _is_idle(self) -> bool:
        if self._done:
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
                self._done = True
                self._state.notify_all()

    def _loop(self) -> None:
        while True:
            with self._state:
                if self._stopping:
                    return
            step = self._rules.next_step()
            if isinstance(step, Ended):
                return
            if isinstance(step, Lost):
                self._on_lost(step)
                return
            if isinstance(step, SleepUntil):
                self._sleep_until(step.until)
                continue
            lost = self._renew_once(step)
            if lost is not None:
                self._on_lost(lost)
                return

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

    def _renew_once(self, action: Renew) -> Lost | None:
        started_at = self._clock.monotonic()
        return self._rules.renewed(action, started_at, self._renew(action))

    def __repr__(self) -> str:
        return f"Renewer(key={self._key!r}, token={self._rules.renewal.token}, done={self._done})"
