"""The inputs and outputs of the state machines: actions to perform, notifications to fire."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "Action",
    "Inspect",
    "LeaderChanged",
    "LeaderInfo",
    "LeadershipGained",
    "LeadershipLost",
    "LossReason",
    "Notification",
    "Release",
    "Renew",
    "SlowRoundTrips",
    "TryAcquire",
]


# --- actions: one backend call the driver must make ---------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TryAcquire:
    """Call ``compare_and_set`` for this node (``force`` to take it regardless).

    ``acquisition`` is the request's :attr:`~mongoelector.backends.LeaseRequest.acquisition`:
    a new id for every try, so a record carrying it is this try's write.
    """

    acquisition: str
    force: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Renew:
    """Call ``renew`` for this node's holding ``token``."""

    token: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Inspect:
    """Call ``get`` to learn whether an ambiguous acquire took effect."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """Call ``release`` for this node's holding ``token`` (any of its holdings if ``None``)."""

    token: int | None


Action = TryAcquire | Renew | Inspect | Release


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


@dataclass(frozen=True, slots=True, kw_only=True)
class LeadershipGained:
    """This node became leader with fencing token ``token``."""

    token: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LeadershipLost:
    """This node stopped being leader (holding ``token``) for ``reason``."""

    token: int
    reason: LossReason


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaderChanged:
    """A different leader (or a new term of the same one) was observed."""

    leader: LeaderInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class SlowRoundTrips:
    """Observed store round trips leave the lease settings no margin (or, ``cleared``, again do).

    ``round_trip`` is the longest recent round trip (seconds) the holder plans
    for. No margin means that a renewal sent ``retry_period`` after the last
    one, answered that slowly (plus half again), would come back after the
    ``renew_deadline``: renewals go out sooner, and a failed one gets less than
    a ``retry_period`` to be retried.
    """

    round_trip: float
    renew_deadline: float
    retry_period: float
    cleared: bool = False


Notification = LeadershipGained | LeadershipLost | LeaderChanged | SlowRoundTrips
