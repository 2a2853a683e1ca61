"""The inputs and outputs of the state machines: actions to perform, notifications to fire."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mongoelector._value import Value

__all__ = [
    "Action",
    "Inspect",
    "LeaderChanged",
    "LeaderInfo",
    "LeadershipGained",
    "LeadershipLost",
    "LossReason",
    "Notification",
    "Observe",
    "Release",
    "Renew",
    "SlowRoundTrips",
    "TryAcquire",
]


# --- actions: one backend call the driver must make ---------------------------------


# Plain value classes, not dataclasses: one or more are made per store call (see
# mongoelector._value).


class TryAcquire(Value):
    """Call ``compare_and_set`` for this node (``force`` to take it regardless).

    ``acquisition`` is the request's :attr:`~mongoelector.backends.LeaseRequest.acquisition`:
    a new id for every try, so a record carrying it is this try's write.
    """

    __slots__ = ("acquisition", "force")
    __match_args__ = ("acquisition", "force")

    def __init__(self, *, acquisition: str, force: bool = False) -> None:
        self.acquisition = acquisition
        self.force = force


class Renew(Value):
    """Call ``renew`` for this node's holding ``token``."""

    __slots__ = ("token",)
    __match_args__ = ("token",)

    def __init__(self, *, token: int) -> None:
        self.token = token


class Inspect(Value):
    """Call ``get`` to learn whether an ambiguous acquire took effect."""

    __slots__ = ()
    __match_args__ = ()


class Observe(Value):
    """Call ``get`` (or ``get_many`` with other keys of the store) to read the record before
    trying to acquire it: a follower's poll on a store that reads many keys in one call.

    The reply goes back with the store's time of the read
    (:meth:`~mongoelector.core.elector_machine.ElectorMachine.on_observe_result`),
    which decides whether to try (``compare_and_set``) at once.
    """

    __slots__ = ()
    __match_args__ = ()


class Release(Value):
    """Call ``release`` for this node's holding ``token`` (any of its holdings if ``None``)."""

    __slots__ = ("token",)
    __match_args__ = ("token",)

    def __init__(self, *, token: int | None) -> None:
        self.token = token


Action = TryAcquire | Renew | Inspect | Observe | Release


# --- notifications: what the driver reports to user callbacks ----------------------


class LossReason(enum.Enum):
    """Why a holding ended."""

    DEADLINE = "renew deadline passed"
    TAKEN_OVER = "the record is no longer ours"
    RELEASED = "released"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaderInfo:
    """Who holds (or held, as last seen) an election's lease."""

    uuid: str
    host: str | None
    pid: int | None
    token: int


class LeadershipGained(Value):
    """This node became leader with fencing token ``token``."""

    __slots__ = ("token",)
    __match_args__ = ("token",)

    def __init__(self, *, token: int) -> None:
        self.token = token


class LeadershipLost(Value):
    """This node stopped being leader (holding ``token``) for ``reason``."""

    __slots__ = ("reason", "token")
    __match_args__ = ("token", "reason")

    def __init__(self, *, token: int, reason: LossReason) -> None:
        self.token = token
        self.reason = reason


class LeaderChanged(Value):
    """A different leader (or a new term of the same one) was observed."""

    __slots__ = ("leader",)
    __match_args__ = ("leader",)

    def __init__(self, *, leader: LeaderInfo) -> None:
        self.leader = leader


class SlowRoundTrips(Value):
    """Observed store round trips leave the lease settings no margin (or, ``cleared``, again do).

    ``round_trip`` is the longest recent round trip (seconds) the holder plans
    for. No margin means that a renewal sent ``retry_period`` after the last
    one, answered that slowly (plus half again), would come back after the
    ``renew_deadline``: renewals go out sooner, and a failed one gets less than
    a ``retry_period`` to be retried.
    """

    __slots__ = ("cleared", "renew_deadline", "retry_period", "round_trip")
    __match_args__ = ("round_trip", "renew_deadline", "retry_period", "cleared")

    def __init__(
        self,
        *,
        round_trip: float,
        renew_deadline: float,
        retry_period: float,
        cleared: bool = False,
    ) -> None:
        self.round_trip = round_trip
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.cleared = cleared


Notification = LeadershipGained | LeadershipLost | LeaderChanged | SlowRoundTrips
