"""What a renewer (thread or task) asks and tells one holding's renew rules.

Both drivers' renewers loop the same way around the pure
:class:`~mongoelector.core.renewal.Renewal`: ask for the next step, renew when
told to, feed the answer back. :class:`RenewalRules` is that conversation,
made under the lock's mutex with the time read from the lock's clock, so the
renewers themselves only wait and call the store. :class:`StopControl` is the
other shared rule: what a ``stop()`` of a renewer waits for (its own work,
never a user callback), and when a stopped renewer must not go on.
"""

from __future__ import annotations

import threading

from mongoelector._common.outcomes import Failure
from mongoelector.backends.protocol import LeaseRecord
from mongoelector.clock import Clock
from mongoelector.core.batching import RenewTiming
from mongoelector.core.events import Renew
from mongoelector.core.renewal import Ended, Lost, Renewal, RenewalStep

__all__ = ["RenewalRules", "StopControl"]


class RenewalRules:
    """``renewal`` (of lock ``key``), consulted under ``mutex`` at ``clock``'s time.

    ``mutex`` guards the keeper behind ``renewal`` (it is the lock's); it is
    held only while the rules decide, never during a store call.
    """

    __slots__ = ("_clock", "_mutex", "key", "renewal")  # one per auto-renewed holding

    def __init__(self, *, key: str, clock: Clock, mutex: threading.RLock, renewal: Renewal) -> None:
        self.key = key
        self.renewal = renewal
        self._clock = clock
        self._mutex = mutex

    def next_step(self) -> RenewalStep:
        """What to do now: renew, sleep until a time, or stop (lost or ended)."""
        with self._mutex:
            return self.renewal.next_step(self._clock.monotonic())

    def renew_now(self) -> Renew | Lost | Ended:
        """Renew now, ahead of time if need be (a batch), unless lost or ended: then that."""
        with self._mutex:
            return self.renewal.renew_now(self._clock.monotonic())

    def timing(self, now: float | None = None) -> RenewTiming | None:
        """When the holding must next be renewed (for a batch); ``None`` unless trusted."""
        with self._mutex:
            return self.renewal.timing(
                self._clock.monotonic() if now is None else now, key=self.key
            )

    def current(self) -> Lost | Ended | None:
        """Whether the holding is still kept and trusted now: ``None`` if so; :class:`Lost`
        (once: the holding is dropped) at the renew deadline; :class:`Ended` afterwards."""
        with self._mutex:
            return self.renewal.current(self._clock.monotonic())

    def deadline(self) -> float:
        """When the holding stops being trusted, by the lock's clock (``inf`` if not kept)."""
        with self._mutex:
            return self.renewal.deadline()

    def renewed(
        self, action: Renew, started_at: float, outcome: LeaseRecord | Failure | None
    ) -> Lost | None:
        """Feed back what ``action``, sent at ``started_at``, came back with; a loss, if any.

        A failure (which the lock has reported to its listeners) is retried
        after the keeper's interval.
        """
        now = self._clock.monotonic()
        with self._mutex:
            if isinstance(outcome, Failure):
                self.renewal.on_failed(now)
                return None
            return self.renewal.on_renewed(started_at, now, outcome)


class StopControl:
    """When a renewer may go on, and when a ``stop()`` waiting for it may return (no I/O).

    A renewer alternates between its own work (deciding, a renew call to the
    store, recording a loss) and user callbacks (event listeners, ``on_lost``).
    A stop waits for the former, which is bounded, and never for the latter,
    which may wait for the very caller of ``stop()``. Promises, with every
    call serialized by the driver:

    - once :meth:`request_stop` has been called, :meth:`may_go_on` is
      ``False``: a renewer that asks before each store call and after each
      callback starts no store call and decides nothing more;
    - :meth:`settled` is ``True`` only when the renewer has ended or is inside
      callbacks, so a stop that waits for it has no store call of the renewer
      in flight and every loss it found recorded.
    """

    __slots__ = ("_done", "_in_callbacks", "_stopping")

    def __init__(self) -> None:
        self._stopping = False
        self._in_callbacks = False
        self._done = False

    @property
    def done(self) -> bool:
        """True once the renewer has ended."""
        return self._done

    def request_stop(self) -> None:
        """Stop: the renewer goes on with nothing but a store call already in flight."""
        self._stopping = True

    def may_go_on(self) -> bool:
        """Asked before each store call and after callbacks: ``False`` once stopped."""
        return not self._stopping

    def enter_callbacks(self) -> None:
        """The renewer is about to run user code: a stop need not wait any longer."""
        self._in_callbacks = True

    def leave_callbacks(self) -> bool:
        """The user code returned; whether the renewer may go on (not stopped)."""
        self._in_callbacks = False
        return not self._stopping

    def finish(self) -> None:
        """The renewer has ended."""
        self._done = True
        self._in_callbacks = False

    def settled(self) -> bool:
        """True when a stop may return: the renewer has ended or is running callbacks."""
        return self._done or self._in_callbacks
