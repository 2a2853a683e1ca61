"""One ``acquire()`` call of a lock as a pure state machine.

The driver asks :meth:`AcquireAttempt.first` for the first backend call, makes
it, and feeds the result to :meth:`AcquireAttempt.on_result` (or the failure to
:meth:`AcquireAttempt.on_failure`). Each answer is a :data:`Decision`: make
another call now, wait until a time and then make one, or finish.

After an ambiguous failure the attempt reads the record; if the earlier write
took effect, it renews that holding before reporting success, so validity is
never measured from a write whose time is unknown. Likewise a grant whose reply
is handled after the renew deadline is renewed before it is reported, so
success always comes with a holding that is trusted at that moment.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from mongoelector._validation import check_non_negative_seconds, check_seconds
from mongoelector.backends.protocol import CasResult, LeaseRecord
from mongoelector.core.events import Action, Inspect, Renew, TryAcquire
from mongoelector.core.lease import Holding

__all__ = [
    "AcquireAttempt",
    "Call",
    "Decision",
    "Fail",
    "GiveUp",
    "GiveUpReason",
    "Succeed",
    "WaitThenCall",
]


class GiveUpReason(enum.Enum):
    HELD = "held by another owner"
    TIMEOUT = "timed out"


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """Make ``action`` now."""

    action: Action


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitThenCall:
    """Wait until monotonic ``until``, then make ``action``."""

    until: float
    action: Action


@dataclass(frozen=True, slots=True, kw_only=True)
class Succeed:
    """The lock is held: ``holding``."""

    holding: Holding


@dataclass(frozen=True, slots=True, kw_only=True)
class GiveUp:
    """Stop trying for ``reason``; ``holder`` is the record that was in the way, if known."""

    reason: GiveUpReason
    holder: LeaseRecord | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Fail:
    """Stop and re-raise the backend's error; ``maybe_held`` if a write may have applied."""

    maybe_held: bool


Decision = Call | WaitThenCall | Succeed | GiveUp | Fail


class AcquireAttempt:
    """The plan of one ``acquire(blocking, timeout, step, force)`` call started at ``now``.

    Non-blocking: one try. Blocking: a try every ``step`` seconds until success
    or ``timeout`` (forever when ``None``). A definite backend failure ends the
    attempt with :class:`Fail`.
    """

    def __init__(
        self,
        *,
        owner: str,
        renew_deadline: float,
        now: float,
        blocking: bool = True,
        timeout: float | None = None,
        step: float = 0.25,
        force: bool = False,
    ) -> None:
        if not isinstance(blocking, bool):
            raise TypeError(f"blocking must be a bool, got {blocking!r}")
        if not isinstance(force, bool):
            raise TypeError(f"force must be a bool, got {force!r}")
        if timeout is not None:
            timeout = check_non_negative_seconds(timeout, name="timeout")
            if not blocking:
                raise ValueError(f"timeout={timeout!r} cannot be combined with blocking=False")
        self.owner = owner
        self.renew_deadline = renew_deadline
        self.blocking = blocking
        self.step = check_seconds(step, name="step")
        self.force = force
        self.deadline = math.inf if timeout is None else now + timeout
        self._maybe_held = False

    def first(self) -> Call:
        """The first call to make."""
        return Call(action=TryAcquire(force=self.force))

    def on_result(
        self, action: Action, started_at: float, now: float, result: CasResult | LeaseRecord | None
    ) -> Decision:
        """Feed back what ``action`` (sent at ``started_at``) returned."""
        if isinstance(action, TryAcquire):
            assert isinstance(result, CasResult)
            if result.acquired and result.record is not None:
                return self._succeed(result.record, started_at, now)
            if result.record is not None and result.record.owner == self.owner:
                # An earlier write of ours took effect after all: renew it to trust it.
                return Call(action=Renew(token=result.record.token))
            return self._refused(now, result.record)
        assert result is None or isinstance(result, LeaseRecord)
        if isinstance(action, Inspect):
            if result is not None and result.owner == self.owner:
                return Call(action=Renew(token=result.token))
            self._maybe_held = False
            return self._refused(now, result if result is not None and result.owner else None)
        # A Renew that confirms a holding an ambiguous acquire created.
        self._maybe_held = False
        if result is not None and result.owner == self.owner:
            return self._succeed(result, started_at, now)
        return self._refused(now, None)

    def on_failure(self, action: Action, now: float, *, ambiguous: bool) -> Decision:
        """Feed back that ``action`` raised; ``ambiguous`` if it may have taken effect."""
        if ambiguous and isinstance(action, (TryAcquire, Renew)):
            self._maybe_held = True
            return Call(action=Inspect())
        return Fail(maybe_held=self._maybe_held)

    def _succeed(self, record: LeaseRecord, started_at: float, now: float) -> Call | Succeed:
        holding = Holding(
            record=record, started_at=started_at, valid_until=started_at + self.renew_deadline
        )
        if not holding.is_valid(now):
            # The reply came after the renew deadline: renew to confirm before trusting it.
            self._maybe_held = True
            return Call(action=Renew(token=record.token))
        return Succeed(holding=holding)

    def _refused(self, now: float, holder: LeaseRecord | None) -> Decision:
        if not self.blocking:
            return GiveUp(reason=GiveUpReason.HELD, holder=holder)
        if now >= self.deadline:
            return GiveUp(reason=GiveUpReason.TIMEOUT, holder=holder)
        return WaitThenCall(
            until=min(now + self.step, self.deadline), action=TryAcquire(force=self.force)
        )
