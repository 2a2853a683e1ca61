"""Keeping one lock holding alive: what a renewer does next, and when the holding is lost.

A :class:`Renewal` follows one holding (one fencing token) of a
:class:`~mongoelector.core.lease.LeaseKeeper`. A driver asks
:meth:`Renewal.next_step` what to do, performs the ``Renew`` call it may get,
and feeds the answer back. The timing rules themselves (when a renew is due,
how long each successful renew is trusted) are the keeper's; this module adds
only what an auto-renewing lock needs on top: telling a *loss* (the holding
ended without a release) apart from an *end* (released, or replaced by a newer
holding of the same lock), and reporting each loss exactly once.

Both the sync and the asyncio lock drivers loop around this class, so these
rules exist once.
"""

from __future__ import annotations

import math

from mongoelector._value import Value
from mongoelector.backends.protocol import LeaseRecord
from mongoelector.core.batching import RenewTiming
from mongoelector.core.events import LossReason, Renew
from mongoelector.core.lease import LeaseKeeper

__all__ = ["Ended", "Lost", "Renewal", "RenewalStep", "SleepUntil"]


class SleepUntil(Value):
    """Nothing to do before monotonic time ``until``."""

    __slots__ = ("until",)
    __match_args__ = ("until",)

    def __init__(self, *, until: float) -> None:
        self.until = until


class Lost(Value):
    """The holding with fencing token ``token`` ended without a release, for ``reason``."""

    __slots__ = ("reason", "token")
    __match_args__ = ("token", "reason")

    def __init__(self, *, token: int, reason: LossReason) -> None:
        self.token = token
        self.reason = reason


class Ended(Value):
    """The holding is no longer kept (released, replaced, or its loss already reported)."""

    __slots__ = ("token",)
    __match_args__ = ("token",)

    def __init__(self, *, token: int) -> None:
        self.token = token


RenewalStep = Renew | SleepUntil | Lost | Ended


class Renewal:
    """The renew rules for the holding with fencing token ``token`` kept by ``keeper``.

    Promises: a :class:`Lost` is returned at most once per holding, and once a
    holding is lost or ended it is never trusted again, whatever replies arrive
    later. The keeper may be shared with other code (a manual ``touch``, a
    ``release``) as long as calls are serialized by the caller.
    """

    __slots__ = ("_keeper", "token")  # one per holding

    def __init__(self, keeper: LeaseKeeper, token: int) -> None:
        self._keeper = keeper
        self.token = token

    @property
    def renew_interval(self) -> float:
        """The pause between this holding's renewals (the keeper's ``renew_interval``)."""
        return self._keeper.renew_interval

    def kept(self) -> bool:
        """True while the keeper still keeps this holding (trusted or not)."""
        holding = self._keeper.holding
        return holding is not None and holding.token == self.token

    def deadline(self) -> float:
        """When the holding stops being trusted (``inf`` once it is no longer kept)."""
        holding = self._keeper.holding
        if holding is None or holding.token != self.token:
            return math.inf
        return holding.valid_until

    def current(self, now: float) -> Lost | Ended | None:
        """``None`` while the holding is kept and trusted at ``now``.

        At the renew deadline the holding is dropped and :class:`Lost` is
        returned (once); afterwards, and after a release or replacement,
        :class:`Ended`.
        """
        if not self.kept():
            return Ended(token=self.token)
        if self._keeper.deadline_passed(now):
            self._keeper.drop()
            return Lost(token=self.token, reason=LossReason.DEADLINE)
        return None

    def next_step(self, now: float) -> RenewalStep:
        """What to do at ``now``: renew, sleep until a time, or stop (lost or ended)."""
        verdict = self.current(now)
        if verdict is not None:
            return verdict
        if self._keeper.renew_due(now):
            return Renew(token=self.token)
        return SleepUntil(until=self._keeper.wake_at())

    def timing(self, now: float, *, key: str) -> RenewTiming | None:
        """When this holding (of lock ``key``) must next be renewed, for choosing a batch
        (:func:`~mongoelector.core.batching.renew_together`); ``None`` unless it is kept
        and still trusted at ``now`` (nothing is reported or dropped here)."""
        holding = self._keeper.holding
        if holding is None or holding.token != self.token or not holding.is_valid(now):
            return None
        return RenewTiming(
            key=key,
            renew_at=self._keeper.next_renew,
            valid_until=holding.valid_until,
            interval=self._keeper.renew_interval,
        )

    def renew_now(self, now: float) -> Renew | Lost | Ended:
        """Renew at ``now``, ahead of time if need be (the holding joins a batch), unless
        the holding is lost or ended: then that verdict, as :meth:`current` gives it."""
        verdict = self.current(now)
        return verdict if verdict is not None else Renew(token=self.token)

    def on_renewed(self, started_at: float, now: float, record: LeaseRecord | None) -> Lost | None:
        """Feed back a renew sent at ``started_at`` that answered ``record`` at ``now``.

        ``record is None`` means the store no longer has this holding (taken
        over or force-released): :class:`Lost`. A reply that arrives after the
        deadline, or for a holding no longer kept, changes nothing.
        """
        verdict = self.current(now)
        if verdict is not None:
            return verdict if isinstance(verdict, Lost) else None
        if self._keeper.on_renewed(started_at, record):
            return None
        return Lost(token=self.token, reason=LossReason.TAKEN_OVER)

    def on_failed(self, now: float) -> None:
        """A renew raised without a verdict: retry after the keeper's interval."""
        if self.kept():
            self._keeper.on_renew_failed(now)
