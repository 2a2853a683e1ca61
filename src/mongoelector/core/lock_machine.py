"""One ``acquire()`` call of a lock as a pure state machine.

The driver asks :meth:`AcquireAttempt.first` for the first backend call, makes
it, and feeds the result to :meth:`AcquireAttempt.on_result` (or the failure to
:meth:`AcquireAttempt.on_failure`). Each answer is a :data:`Decision`: make
another call now, wait until a time and then make one, or finish.

What it promises:

- **Only this attempt's writes are adopted.** Every ``TryAcquire`` carries a
  fresh acquisition id. A record is continued (confirmed by a renew) only if
  it carries one of the ids this attempt sent. A record of the same owner
  with any other id is an earlier acquisition, which its lock no longer
  trusts: it is released by its token and the lease is acquired anew, so the
  new holding gets a greater fencing token.
- **Trust is measured from a known send.** After an ambiguous failure the
  attempt reads the record; a write of its own is renewed before success is
  reported, so validity is never measured from a write whose time is
  unknown. Likewise a grant whose reply is handled after the renew deadline
  is renewed before it is reported.
- **Bounded.** A non-blocking attempt makes at most
  :data:`NON_BLOCKING_CALL_LIMIT` store calls; a blocking one gives up at its
  deadline whatever the store answers, and waits ``step`` between retries
  after repeated failures. Giving up while a write of its own may have
  landed ends with ``Fail(maybe_held=True)``, so the caller can release it.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable

from mongoelector._validation import (
    MAX_SECONDS,
    MIN_PERIOD,
    check_non_negative_seconds,
    check_seconds,
)
from mongoelector._value import Value
from mongoelector.backends.protocol import CasResult, LeaseRecord
from mongoelector.core.events import Action, Inspect, Release, Renew, TryAcquire
from mongoelector.core.lease import Holding, new_holding

__all__ = [
    "NON_BLOCKING_CALL_LIMIT",
    "AcquireAttempt",
    "Call",
    "Decision",
    "Fail",
    "GiveUp",
    "GiveUpReason",
    "Succeed",
    "WaitThenCall",
]


#: The most store calls one non-blocking acquire makes (a try, a release of an earlier
#: holding of the same lock, a read and a confirming renew after an ambiguous reply, ...).
NON_BLOCKING_CALL_LIMIT = 6


class GiveUpReason(enum.Enum):
    HELD = "held by another owner"
    BUSY = "held or being acquired by another caller of the same lock object"
    TIMEOUT = "timed out"


# Plain value classes, not dataclasses: one or more are made per store call (see
# mongoelector._value).


class Call(Value):
    """Make ``action`` now."""

    __slots__ = ("action",)
    __match_args__ = ("action",)

    def __init__(self, *, action: Action) -> None:
        self.action = action


class WaitThenCall(Value):
    """Wait until monotonic ``until``, then make ``action``."""

    __slots__ = ("action", "until")
    __match_args__ = ("until", "action")

    def __init__(self, *, until: float, action: Action) -> None:
        self.until = until
        self.action = action


class Succeed(Value):
    """The lock is held: ``holding``."""

    __slots__ = ("holding",)
    __match_args__ = ("holding",)

    def __init__(self, *, holding: Holding) -> None:
        self.holding = holding


class GiveUp(Value):
    """Stop trying for ``reason``; ``holder`` is the record that was in the way, if known."""

    __slots__ = ("holder", "reason")
    __match_args__ = ("reason", "holder")

    def __init__(self, *, reason: GiveUpReason, holder: LeaseRecord | None) -> None:
        self.reason = reason
        self.holder = holder


class Fail(Value):
    """Stop and re-raise the backend's error; ``maybe_held`` if a write may have applied."""

    __slots__ = ("maybe_held",)
    __match_args__ = ("maybe_held",)

    def __init__(self, *, maybe_held: bool) -> None:
        self.maybe_held = maybe_held


Decision = Call | WaitThenCall | Succeed | GiveUp | Fail


class AcquireAttempt:
    """The plan of one ``acquire(blocking, timeout, step, force)`` call started at ``now``.

    Non-blocking: one try (plus the calls that settle an ambiguous reply or
    an earlier holding of the same owner, at most
    :data:`NON_BLOCKING_CALL_LIMIT` calls in all). Blocking: a try every
    ``step`` seconds until success or ``timeout`` (forever when ``None``). A
    definite backend failure ends the attempt with :class:`Fail`.
    ``new_acquisition`` makes the id of each try (a fresh random id).
    """

    def __init__(
        self,
        *,
        owner: str,
        renew_deadline: float,
        now: float,
        new_acquisition: Callable[[], str],
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
            timeout = check_non_negative_seconds(timeout, name="timeout", most=MAX_SECONDS)
            if not blocking:
                raise ValueError(f"timeout={timeout!r} cannot be combined with blocking=False")
        self.owner = owner
        self.renew_deadline = renew_deadline
        self.blocking = blocking
        if type(step) is float and MIN_PERIOD <= step <= MAX_SECONDS:
            self.step = step  # what check_seconds returns for it, without the calls
        else:
            self.step = check_seconds(step, name="step", least=MIN_PERIOD, most=MAX_SECONDS)
        self.force = force
        self.deadline = math.inf if timeout is None else now + timeout
        self._new_acquisition = new_acquisition
        # Ids of every try this attempt sent: a record carrying one is this attempt's write.
        self._sent: set[str] = set()
        # Tokens of earlier holdings of this owner that this attempt released.
        self._released: set[int] = set()
        self._maybe_held = False
        # Ids of tries that failed ambiguously and were never seen since: such a write
        # may still land, even after this attempt succeeded with another try.
        self._unsettled: set[str] = set()
        self._calls = 0
        self._failures_in_row = 0

    @property
    def maybe_held(self) -> bool:
        """True while a write of this attempt may be in the store (or still land), unconfirmed.

        After success it is ``True`` only if another try of the attempt failed
        ambiguously and was never seen: a ``release()`` must settle it.
        """
        return self._maybe_held or bool(self._unsettled)

    def first(self) -> Call:
        """The first call to make."""
        return self._call(self._try())

    def is_mine(self, record: LeaseRecord | None) -> bool:
        """True if ``record`` is a holding written by one of this attempt's tries."""
        return (
            record is not None
            and record.owner == self.owner
            and record.acquisition is not None
            and record.acquisition in self._sent
        )

    def on_busy(self, now: float) -> Decision:
        """Another caller of the same lock object holds it or is acquiring it (no store call)."""
        return self._refused(now, None, reason=GiveUpReason.BUSY)

    def on_result(
        self,
        action: Action,
        started_at: float,
        now: float,
        result: CasResult | LeaseRecord | bool | None,
    ) -> Decision:
        """Feed back what ``action`` (sent at ``started_at``) returned."""
        if not isinstance(action, Inspect):
            self._failures_in_row = 0  # a write answered: the store is not stuck
        if isinstance(action, TryAcquire):
            assert isinstance(result, CasResult)
            if result.acquired and result.record is not None:
                return self._succeed(result.record, started_at, now)
            return self._found(now, result.record)
        if isinstance(action, Release):
            # An earlier holding of ours is over (or was already): try again at once.
            return self._next(now, self._try())
        assert result is None or isinstance(result, LeaseRecord)
        if isinstance(action, Inspect):
            return self._found(now, result)
        # A Renew that confirms a holding an ambiguous or late try created.
        assert isinstance(action, Renew)  # (a lock never reads first: no Observe)
        if result is not None and result.owner == self.owner and result.token == action.token:
            return self._succeed(result, started_at, now)
        self._maybe_held = False
        return self._refused(now, None)

    def on_failure(self, action: Action, now: float, *, ambiguous: bool) -> Decision:
        """Feed back that ``action`` raised; ``ambiguous`` if it may have taken effect."""
        self._failures_in_row += 1
        if ambiguous and isinstance(action, (TryAcquire, Renew)):
            self._maybe_held = True
            if isinstance(action, TryAcquire):
                self._unsettled.add(action.acquisition)
            return self._next(now, Inspect(), pause=self._failures_in_row > 1)
        return Fail(maybe_held=self.maybe_held)

    # --- internals --------------------------------------------------------------

    def _try(self) -> TryAcquire:
        acquisition = self._new_acquisition()
        self._sent.add(acquisition)
        return TryAcquire(acquisition=acquisition, force=self.force)

    def _found(self, now: float, record: LeaseRecord | None) -> Decision:
        """React to ``record``, the key's record after a refused try or as read."""
        if self.is_mine(record):
            assert record is not None
            # A write of this attempt took effect after all: renew it to trust it.
            self._unsettled.discard(record.acquisition or "")
            return self._next(now, Renew(token=record.token))
        if record is not None and record.owner == self.owner:
            if record.token in self._released:
                return self._refused(now, record)  # released already: wait it out
            # An earlier acquisition of this lock, no longer trusted: end it by its
            # token, then acquire anew (with a greater token). Never continue it.
            self._released.add(record.token)
            return self._next(now, Release(token=record.token))
        if record is not None and record.owner is not None:
            # Someone else holds it: a try of ours still in flight can only land after
            # that holding ends, and a release() settles it then.
            self._maybe_held = False
            self._unsettled.clear()
            return self._refused(now, record)
        # Free (or unknown): a try of ours may still be in flight; try again.
        if self._maybe_held and not self.blocking:
            return self._next(now, self._try())
        return self._refused(now, None)

    def _succeed(self, record: LeaseRecord, started_at: float, now: float) -> Decision:
        holding = new_holding(record, started_at, started_at + self.renew_deadline)
        if not holding.is_valid(now):
            # The reply came after the renew deadline: renew to confirm before trusting it.
            self._maybe_held = True
            return self._next(now, Renew(token=record.token))
        self._maybe_held = False
        self._unsettled.discard(record.acquisition or "")
        return Succeed(holding=holding)

    def _next(self, now: float, action: Action, *, pause: bool = False) -> Decision:
        """Make ``action`` (after ``step`` if ``pause``) unless the attempt's bounds are spent."""
        if not self.blocking:
            if self._calls >= NON_BLOCKING_CALL_LIMIT:
                return self._give_up(GiveUpReason.HELD, None)
            return self._call(action)
        if now >= self.deadline:
            return self._give_up(GiveUpReason.TIMEOUT, None)
        if pause:
            return WaitThenCall(until=min(now + self.step, self.deadline), action=action)
        return self._call(action)

    def _call(self, action: Action) -> Call:
        self._calls += 1
        return Call(action=action)

    def _refused(
        self, now: float, holder: LeaseRecord | None, *, reason: GiveUpReason = GiveUpReason.HELD
    ) -> Decision:
        if not self.blocking:
            return self._give_up(reason, holder)
        if now >= self.deadline:
            return self._give_up(GiveUpReason.TIMEOUT, holder)
        return WaitThenCall(until=min(now + self.step, self.deadline), action=self._try())

    def _give_up(self, reason: GiveUpReason, holder: LeaseRecord | None) -> GiveUp | Fail:
        if self.maybe_held:
            return Fail(maybe_held=True)
        return GiveUp(reason=reason, holder=holder)
