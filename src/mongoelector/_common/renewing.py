"""What a renewer (thread or task) asks and tells one holding's renew rules.

Both drivers' renewers loop the same way around the pure
:class:`~mongoelector.core.renewal.Renewal`: ask for the next step, renew when
told to, feed the answer back. :class:`RenewalRules` is that conversation,
made under the lock's mutex with the time read from the lock's clock, so the
renewers themselves only wait and call the store.
"""

from __future__ import annotations

import threading

from mongoelector._common.outcomes import Failure
from mongoelector.backends.protocol import LeaseRecord
from mongoelector.clock import Clock
from mongoelector.core.events import Renew
from mongoelector.core.renewal import Lost, Renewal, RenewalStep

__all__ = ["RenewalRules"]


class RenewalRules:
    """``renewal`` (of lock ``key``), consulted under ``mutex`` at ``clock``'s time.

    ``mutex`` guards the keeper behind ``renewal`` (it is the lock's); it is
    held only while the rules decide, never during a store call.
    """

    def __init__(self, *, key: str, clock: Clock, mutex: threading.RLock, renewal: Renewal) -> None:
        self.key = key
        self.renewal = renewal
        self._clock = clock
        self._mutex = mutex

    def next_step(self) -> RenewalStep:
        """What to do now: renew, sleep until a time, or stop (lost or ended)."""
        with self._mutex:
            return self.renewal.next_step(self._clock.monotonic())

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
