"""The leader elector as a pure state machine. Every role change happens here.

Roles and the outcomes that move between them are the table
:data:`TRANSITIONS`; an (role, outcome) pair missing from it is a driver bug
and raises :class:`InvalidTransition`. The driver asks :meth:`ElectorMachine.begin_poll`
what to do, performs that one backend call, feeds the result back through an
``on_*`` method, fires the notifications it gets, and sleeps until
:meth:`ElectorMachine.wake_at`. A driver that can act while a store call is
in flight calls :meth:`ElectorMachine.expire` at the renew deadline, so the
step-down does not wait for the reply.

Leadership is trusted only until the renew deadline measured from the start of
the last successful acquire or renew, so a leader that cannot reach the store
steps down before the store can hand the lease to anyone else.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime

from mongoelector.backends.protocol import CasResult, LeaseRecord
from mongoelector.core.batching import RenewTiming
from mongoelector.core.events import (
    Action,
    Inspect,
    LeaderChanged,
    LeaderInfo,
    LeadershipGained,
    LeadershipLost,
    LossReason,
    Notification,
    Observe,
    Release,
    Renew,
    TryAcquire,
)
from mongoelector.core.lease import Holding, LeaseKeeper
from mongoelector.timing import LeaseTiming

__all__ = ["TRANSITIONS", "ElectorMachine", "InvalidTransition", "Outcome", "Role", "Step"]


class Role(enum.Enum):
    FOLLOWER = "follower"
    #: An acquire may have taken effect; find out (and renew) before leading.
    CONFIRMING = "confirming"
    LEADER = "leader"
    STOPPED = "stopped"


class Outcome(enum.Enum):
    ACQUIRED = "acquired"
    REFUSED = "refused"
    FOUND_OURS = "found our own record"
    FOUND_OTHER = "found another holder's record"
    RENEWED = "renewed"
    RENEW_REFUSED = "renew refused"
    FAILED = "failed"
    AMBIGUOUS = "outcome unknown"
    DEADLINE = "renew deadline passed"
    RELEASE = "release requested"
    STOP = "stop requested"
    START = "start requested"


F, C, L, S = Role.FOLLOWER, Role.CONFIRMING, Role.LEADER, Role.STOPPED

#: role x outcome -> next role.
TRANSITIONS: Mapping[tuple[Role, Outcome], Role] = {
    (F, Outcome.ACQUIRED): L,
    (F, Outcome.REFUSED): F,
    (F, Outcome.FOUND_OURS): C,
    (F, Outcome.FAILED): F,
    (F, Outcome.AMBIGUOUS): C,
    (F, Outcome.RELEASE): F,
    (F, Outcome.STOP): S,
    (C, Outcome.FOUND_OURS): C,
    (C, Outcome.FOUND_OTHER): F,
    (C, Outcome.RENEWED): L,
    (C, Outcome.RENEW_REFUSED): F,
    (C, Outcome.FAILED): C,
    (C, Outcome.AMBIGUOUS): C,
    (C, Outcome.RELEASE): F,
    (C, Outcome.STOP): S,
    (L, Outcome.RENEWED): L,
    (L, Outcome.RENEW_REFUSED): F,
    (L, Outcome.FAILED): L,
    (L, Outcome.AMBIGUOUS): L,
    (L, Outcome.DEADLINE): F,
    (L, Outcome.RELEASE): F,
    (L, Outcome.STOP): S,
    (S, Outcome.START): F,
    (S, Outcome.STOP): S,
    (S, Outcome.RELEASE): S,
}


class InvalidTransition(RuntimeError):
    """The driver fed the machine an outcome its current role cannot have."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """What the driver must do now: fire ``notifications``, then perform ``action``."""

    notifications: tuple[Notification, ...] = ()
    action: Action | None = None


def _with(notes: list[Notification], step: Step) -> Step:
    """``step`` with ``notes`` reported first."""
    if not notes:
        return step
    return Step(notifications=(*notes, *step.notifications), action=step.action)


def _leader_info(record: LeaseRecord) -> LeaderInfo | None:
    if record.owner is None:
        return None
    return LeaderInfo(uuid=record.owner, host=record.host, pid=record.pid, token=record.token)


#: The empty sets every machine shares until it has something to keep in them.
_NO_IDS: frozenset[str] = frozenset()
_NO_TOKENS: frozenset[int] = frozenset()


class ElectorMachine:
    """One node's election state for one key. Times are the node's monotonic seconds.

    A follower that sees a live leader tries again after ``timing.follower_period``
    (``retry_period`` unless ``follower_poll`` is set); after a failure, after
    ``retry_period``. After a voluntary release the node waits twice the longer
    of the two before trying to acquire again, so that another node takes over.
    """

    __slots__ = (
        "_acquire_not_before",
        "_confirm_token",
        "_holder_seen_at",
        "_keeper",
        "_lapsed_token",
        "_new_acquisition",
        "_next_attempt",
        "_relinquished",
        "_sent",
        "_stale_token",
        "_status_at",
        "_status_leading",
        "_term_token",
        "leader",
        "owner",
        "role",
        "status_interval",
        "timing",
    )

    def __init__(
        self,
        *,
        owner: str,
        timing: LeaseTiming,
        new_acquisition: Callable[[], str],
        status_interval: float | None = None,
    ) -> None:
        self.owner = owner
        self._new_acquisition = new_acquisition
        self.timing = timing
        self.status_interval = status_interval if status_interval is not None else timing.ttl / 3
        self.role = Role.FOLLOWER
        self.leader: LeaderInfo | None = None
        self._keeper = LeaseKeeper(
            renew_deadline=timing.renew_deadline, renew_interval=timing.retry_period
        )
        self._term_token: int | None = None
        self._confirm_token: int | None = None
        # Ids of the tries sent since the last term began (or was given up): a record
        # carrying one is a write of this node that nobody has trusted yet.
        # (Both empty most of the time: the shared empty frozenset until something is added.)
        self._sent: AbstractSet[str] = _NO_IDS
        # Tokens this node gave up or released: a release of one may land late, so it
        # never leads with one of them again.
        self._relinquished: AbstractSet[int] = _NO_TOKENS
        # An earlier holding of this node, found live and not trusted: release it first.
        self._stale_token: int | None = None
        # The token of the term that ended at its renew deadline, while the store may still
        # hold that lease for this node (its ttl outlasts the deadline; a late renew may
        # have extended it): released by a stop or release unless a poll settled it first.
        self._lapsed_token: int | None = None
        self._next_attempt = -math.inf
        self._acquire_not_before = -math.inf
        self._holder_seen_at = -math.inf
        self._status_at: float | None = None
        self._status_leading: bool | None = None

    # --- queries ----------------------------------------------------------------

    def is_leader(self, now: float) -> bool:
        """True while this node leads and its renew deadline has not passed."""
        return self.role is Role.LEADER and self._keeper.is_valid(now)

    @property
    def holding(self) -> Holding | None:
        """The current term's holding while leading, else ``None``."""
        return self._keeper.holding if self.role is Role.LEADER else None

    def token(self, now: float) -> int | None:
        """The fencing token of the current term, ``None`` unless leading at ``now``."""
        holding = self.holding
        return holding.token if holding is not None and holding.is_valid(now) else None

    def leader_exists(self, now: float) -> bool:
        """True if this node leads, or saw a live holder less than ``ttl`` ago."""
        if self.is_leader(now):
            return True
        return self.role is not Role.LEADER and now < self._holder_seen_at + self.timing.ttl

    def renew_timing(self, now: float, *, key: str) -> RenewTiming | None:
        """When this leader's term must next be renewed, for choosing a batch of renewals
        (:func:`~mongoelector.core.batching.renew_together`); ``None`` unless leading and
        trusted at ``now``. The next poll of a leader is exactly that renewal, so a driver
        may send it in another holding's batch, ahead of its time (:meth:`begin_poll` then
        answers ``Renew``)."""
        holding = self.holding
        if holding is None or not holding.is_valid(now):
            return None
        return RenewTiming(
            key=key,
            renew_at=self._keeper.next_renew,
            valid_until=holding.valid_until,
            interval=self._keeper.renew_interval,
        )

    def read_timing(self, now: float, *, key: str) -> RenewTiming | None:
        """When this follower's next poll falls due, for choosing a batch of reads
        (:func:`~mongoelector.core.batching.renew_together`, with ``follower_period`` as
        the interval); ``None`` unless that poll would read first (:meth:`begin_poll`
        with ``read_first``: a follower with nothing of its own to release, allowed to
        try), so a driver may read its record with other keys' in one call, ahead of
        its time."""
        if self.role is not Role.FOLLOWER or self._stale_token is not None:
            return None
        return RenewTiming(
            key=key,
            renew_at=max(self.wake_at(), now),
            valid_until=math.inf,
            interval=self.timing.follower_period,
        )

    def wake_at(self) -> float:
        """The monotonic time at which the driver should poll next (``inf``: never)."""
        if self.role is Role.STOPPED:
            return math.inf
        if self.role is Role.LEADER:
            return self._keeper.wake_at()
        return max(self._next_attempt, self._acquire_not_before)

    # --- driving ----------------------------------------------------------------

    def expire(self, now: float) -> Step:
        """Step down if the renew deadline has passed; the step-down's notifications, if any.

        No backend call follows. :meth:`begin_poll` does this first; a driver
        may also call it at the deadline itself, so that the step-down is on
        time while a poll waits for its turn or its store call hangs. A reply
        that then comes back for a renew of the ended term is not trusted
        (:meth:`on_renew_result`, :meth:`on_failure`).
        """
        if self.role is not Role.LEADER or not self._keeper.deadline_passed(now):
            return Step()
        self._lapsed_token = self._term_token
        notes = self._move(Outcome.DEADLINE, LossReason.DEADLINE)
        self.leader = None
        self._next_attempt = now
        return Step(notifications=tuple(notes))

    def begin_poll(self, now: float, *, read_first: bool = False) -> Step:
        """Step down if the deadline passed, then say which backend call to make now.

        With ``read_first`` (a driver that reads the records of many followers in one
        call), a follower that would try to acquire reads the record first
        (:class:`~mongoelector.core.events.Observe`); :meth:`on_observe_result` then
        says whether to try.
        """
        notes: list[Notification] = list(self.expire(now).notifications)
        action: Action | None = None
        if self.role is Role.FOLLOWER and self._stale_token is not None:
            action = Release(token=self._stale_token)
            self._relinquish(self._stale_token)
            self._stale_token = None
            self._next_attempt = now
        elif self.role is Role.FOLLOWER and now >= self._acquire_not_before:
            action = Observe() if read_first else self._try()
        elif self.role is Role.LEADER:
            assert self._term_token is not None
            action = Renew(token=self._term_token)
        elif self.role is Role.CONFIRMING:
            action = Inspect() if self._confirm_token is None else Renew(token=self._confirm_token)
        return Step(notifications=tuple(notes), action=action)

    def _try(self) -> TryAcquire:
        """A new try to acquire (its id remembered: a record carrying it is ours)."""
        acquisition = self._new_acquisition()
        sent = self._sent
        if not isinstance(sent, set):
            sent = self._sent = set()
        sent.add(acquisition)
        return TryAcquire(acquisition=acquisition)

    def _relinquish(self, token: int) -> None:
        """Never lead with ``token`` again (its release may land late)."""
        tokens = self._relinquished
        if not isinstance(tokens, set):
            tokens = self._relinquished = set()
        tokens.add(token)

    def on_observe_result(
        self, now: float, record: LeaseRecord | None, server_now: datetime
    ) -> Step:
        """Feed back the record an ``Observe`` read, and the store's time of the read.

        The follower tries to acquire at once (the step's ``TryAcquire``, to perform
        in the same poll) when the record is absent, released or expired by
        ``server_now``, or its own (to adopt or to release, as a try's reply says);
        the store's ``compare_and_set`` decides, as ever. Otherwise a live holder
        leads: the follower takes note of it exactly as of a refused try (leader
        info, a ``LeaderChanged`` for a new term) and polls again after
        ``follower_period``. A read older than it looks can only put a try off
        by one poll; it never makes this node leader.
        """
        if self.role is not Role.FOLLOWER:
            return Step()  # nothing to try: stopped or released meanwhile
        if record is None or not record.is_held(server_now) or record.owner == self.owner:
            return Step(action=self._try())
        self._next_attempt = now + self.timing.follower_period
        self._saw(record)
        notes = self._move(Outcome.REFUSED)
        self._holder_seen_at = now
        notes += self._observe(_leader_info(record))
        return Step(notifications=tuple(notes))

    def on_acquire_result(self, started_at: float, now: float, result: CasResult) -> Step:
        """Feed back the result of a ``TryAcquire`` sent at ``started_at``."""
        slow = self._round_trip(started_at, now)
        record = result.record
        if result.acquired and record is not None:
            return _with(slow, self._take(record, started_at, now))
        self._next_attempt = now + self.timing.follower_period
        self._saw(record)
        if self._is_ours_to_adopt(record):
            assert record is not None
            # Our own earlier write took effect after all: renew it before trusting it.
            self._confirm_token = record.token
            self._next_attempt = now
            return Step(notifications=(*slow, *self._move(Outcome.FOUND_OURS)))
        if self._is_stale_and_ours(record):
            assert record is not None
            # An earlier term of ours, given up: release it by its token, then try anew.
            self._stale_token = record.token
            self._next_attempt = now
        notes = slow + self._move(Outcome.REFUSED)
        self._holder_seen_at = now
        if record is not None and record.owner != self.owner:
            notes += self._observe(_leader_info(record))
        return Step(notifications=tuple(notes))

    def on_renew_result(self, started_at: float, now: float, record: LeaseRecord | None) -> Step:
        """Feed back the result of a ``Renew`` sent at ``started_at``."""
        slow = self._round_trip(started_at, now)
        if self._term_ended_meanwhile():
            return Step(notifications=tuple(slow))
        if self.role is Role.CONFIRMING:
            if record is not None and record.owner == self.owner:
                return _with(slow, self._take(record, started_at, now))
            self._confirm_token = None
            self._next_attempt = now + self.timing.retry_period
            return Step(notifications=(*slow, *self._move(Outcome.RENEW_REFUSED)))
        if self._keeper.on_renewed(started_at, record):
            return Step(notifications=(*slow, *self._move(Outcome.RENEWED)))
        self._next_attempt = now
        self.leader = None
        notes = self._move(Outcome.RENEW_REFUSED, LossReason.TAKEN_OVER)
        return Step(notifications=(*slow, *notes))

    def on_inspect_result(self, now: float, record: LeaseRecord | None) -> Step:
        """Feed back the record read by an ``Inspect``."""
        self._saw(record)
        if self._is_ours_to_adopt(record):
            assert record is not None
            self._confirm_token = record.token
            self._next_attempt = now
            return Step(notifications=tuple(self._move(Outcome.FOUND_OURS)))
        self._next_attempt = now + self.timing.follower_period
        if self._is_stale_and_ours(record):
            assert record is not None
            self._stale_token = record.token
            self._next_attempt = now
        notes = self._move(Outcome.FOUND_OTHER)
        if record is not None and record.owner != self.owner:
            notes += self._observe(_leader_info(record))
        return Step(notifications=tuple(notes))

    def on_failure(self, action: Action, now: float, *, ambiguous: bool) -> Step:
        """Feed back that ``action`` raised; ``ambiguous`` if it may have taken effect."""
        if isinstance(action, Release):
            return Step()
        if isinstance(action, Renew) and self._term_ended_meanwhile():
            return Step()
        if isinstance(action, Observe):
            ambiguous = False  # a read changed nothing, whatever the error says
            if self.role is not Role.FOLLOWER:
                return Step()
        outcome = Outcome.AMBIGUOUS if ambiguous else Outcome.FAILED
        if self.role is Role.LEADER:
            self._keeper.on_renew_failed(now)
        elif isinstance(action, TryAcquire) and ambiguous:
            self._next_attempt = now
        else:
            self._next_attempt = now + self.timing.retry_period
        return Step(notifications=tuple(self._move(outcome)))

    def release(self, now: float) -> Step:
        """Give up leadership now; the driver must then perform the returned ``Release``.

        Not leading, the ``Release`` (if any) frees by its token a lease the
        store may still keep for this node: the term that ended at its renew
        deadline (the store keeps it until its ttl, longer if a late renew
        landed), or an earlier holding a poll found and has not released yet.
        """
        return self._let_go(Outcome.RELEASE, LossReason.RELEASED, now)

    def stop(self, now: float) -> Step:
        """Stop taking part; like :meth:`release`, and no further polls are due."""
        return self._let_go(Outcome.STOP, LossReason.STOPPED, now)

    def start(self) -> None:
        """Take part again after :meth:`stop` (a no-op unless stopped).

        The new run's first poll reports status whatever the last report said: that one
        says the node stopped, or, when the stop sent none (started again before it
        could), was made by the run before, of its term.
        """
        if self.role is Role.STOPPED:
            self._move(Outcome.START)
            self._next_attempt = -math.inf
            self._acquire_not_before = -math.inf
            self._status_at = None

    def status_due(self, now: float) -> bool:
        """True if this node's status report is missing, stale, or out of date."""
        return (
            self._status_at is None
            or self._status_leading != self.is_leader(now)
            or now >= self._status_at + self.status_interval
        )

    def status_timing(self, now: float, *, key: str) -> RenewTiming:
        """When this node's next status report falls due, for choosing a batch of reports
        (:func:`~mongoelector.core.batching.renew_together`, with ``status_interval`` as the
        interval and ``key`` naming the reporting node): ``now`` when one is due now
        (:meth:`status_due`). A report sent early only refreshes it, so any time is safe."""
        due = (
            now
            if self._status_at is None or self.status_due(now)
            else self._status_at + self.status_interval
        )
        return RenewTiming(
            key=key, renew_at=due, valid_until=math.inf, interval=self.status_interval
        )

    def status_reported(self, now: float, *, leading: bool) -> None:
        """Record that a status report saying ``leading`` was stored at ``now``."""
        self._status_at = now
        self._status_leading = leading

    # --- internals --------------------------------------------------------------

    def _term_ended_meanwhile(self) -> bool:
        """True when the reply to a renew comes after its term ended at the deadline.

        A renew is only sent while leading or confirming; the one change a
        driver may make while it is in flight is :meth:`expire`. The reply
        changes nothing then: the term is not trusted again (a record the
        renew extended is this node's earlier holding, which the next try
        finds and releases by its token).
        """
        return self.role is Role.FOLLOWER or self.role is Role.STOPPED

    def _round_trip(self, started_at: float, now: float) -> list[Notification]:
        """Teach the keeper a reply's round trip; a :class:`SlowRoundTrips` if that changed it."""
        slow = self._keeper.observe_round_trip(now - started_at)
        return [slow] if slow is not None else []

    def _saw(self, record: LeaseRecord | None) -> None:
        """The store's record is known: the lapsed term's lease is still there only if
        ``record`` is it (then it is released by its token as a stale holding)."""
        if record is None or record.owner != self.owner or record.token != self._lapsed_token:
            self._lapsed_token = None

    def _let_go(self, outcome: Outcome, reason: LossReason, now: float) -> Step:
        token = self._term_token if self.role is Role.LEADER else self._confirm_token
        holds_something = self.role in (Role.LEADER, Role.CONFIRMING)
        # An earlier holding of ours the store may still keep (found stale, or the term
        # that ended at its deadline): freed by its token too, unless already given up.
        leftover = self._stale_token if self._stale_token is not None else self._lapsed_token
        notes = self._move(outcome, reason)
        self._confirm_token = None
        self._stale_token = None
        self._lapsed_token = None
        self._sent = _NO_IDS
        self.leader = None
        if outcome is Outcome.RELEASE:
            self._acquire_not_before = now + 2 * max(
                self.timing.retry_period, self.timing.follower_period
            )
        if not holds_something or token is None:
            # Without a token a release could free a later holding of ours if it landed
            # late; an unconfirmed record is left to lapse instead.
            if leftover is not None and leftover not in self._relinquished:
                self._relinquish(leftover)
                return Step(notifications=tuple(notes), action=Release(token=leftover))
            return Step(notifications=tuple(notes))
        self._relinquish(token)
        return Step(notifications=tuple(notes), action=Release(token=token))

    def _is_ours_to_adopt(self, record: LeaseRecord | None) -> bool:
        """True if ``record`` was written by a try of this node that nobody trusted yet."""
        return (
            record is not None
            and record.owner == self.owner
            and record.acquisition is not None
            and record.acquisition in self._sent
            and record.token not in self._relinquished
        )

    def _is_stale_and_ours(self, record: LeaseRecord | None) -> bool:
        """True if ``record`` is an earlier holding of this node that it has not released."""
        return (
            record is not None
            and record.owner == self.owner
            and not self._is_ours_to_adopt(record)
            and record.token not in self._relinquished
        )

    def _take(self, record: LeaseRecord, started_at: float, now: float) -> Step:
        """Lead with ``record``, written by a request sent at ``started_at``.

        A reply handled at or after the renew deadline (the process stalled, or
        the store was slow) is not trusted: the node confirms the record with a
        renew first, as after an ambiguous acquire.
        """
        if now >= started_at + self.timing.renew_deadline:
            self._confirm_token = record.token
            self._next_attempt = now
            return Step(notifications=tuple(self._move(Outcome.FOUND_OURS)))
        self._confirm_token = None
        self._lapsed_token = None
        self._sent = _NO_IDS
        if self._relinquished:
            kept = {token for token in self._relinquished if token > record.token}
            self._relinquished = kept if kept else _NO_TOKENS
        self._keeper.hold(record, started_at)
        return Step(notifications=tuple(self._enter_leadership(record)))

    def _enter_leadership(self, record: LeaseRecord) -> list[Notification]:
        notes = self._move(Outcome.ACQUIRED if self.role is Role.FOLLOWER else Outcome.RENEWED)
        self._term_token = record.token
        notes.append(LeadershipGained(token=record.token))
        notes += self._observe(_leader_info(record))
        return notes

    def _observe(self, info: LeaderInfo | None) -> list[Notification]:
        if info is None:
            self.leader = None
            return []
        previous = self.leader
        self.leader = info
        if previous is not None and (previous.uuid, previous.token) == (info.uuid, info.token):
            return []
        return [LeaderChanged(leader=info)]

    def _move(
        self, outcome: Outcome, reason: LossReason = LossReason.TAKEN_OVER
    ) -> list[Notification]:
        try:
            new_role = TRANSITIONS[(self.role, outcome)]
        except KeyError:
            raise InvalidTransition(
                f"{outcome.value!r} cannot happen while {self.role.value}"
            ) from None
        notes: list[Notification] = []
        if self.role is Role.LEADER and new_role is not Role.LEADER:
            self._keeper.drop()
            assert self._term_token is not None
            notes.append(LeadershipLost(token=self._term_token, reason=reason))
        self.role = new_role
        return notes
