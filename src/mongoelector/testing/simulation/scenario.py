"""What a simulation runs: the nodes, their clocks, the lease timing and the faults.

A :class:`Scenario` is plain data. Write one by hand to script a schedule
("pause the leader at 20 s for three leases"), or draw one from a seed with
:func:`~mongoelector.testing.simulation.schedules.draw_scenario`. All times are
true seconds from the start of the simulation.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from mongoelector._validation import check_non_negative_seconds, check_seconds
from mongoelector.testing.simulation.clocks import rate_bounds
from mongoelector.timing import LeaseTiming

__all__ = [
    "ELECTION_KEY",
    "LEADER",
    "LOCK_KEY",
    "MAX_ELECTORS",
    "MAX_HOLDINGS",
    "Callback",
    "Crash",
    "Fault",
    "LockBehaviour",
    "NodeKind",
    "NodeSpec",
    "Partition",
    "Pause",
    "ReleaseHabit",
    "Resign",
    "Scenario",
    "Stop",
    "StoreErrors",
    "Takeover",
]

#: A fault target meaning "whichever elector believes it leads when the fault starts"
#: (the node of a started elector leading too, one of them picked at random).
LEADER = "@leader"
#: The key every elector of a simulation runs for.
ELECTION_KEY = "election"
#: The key every lock user of a simulation contends for.
LOCK_KEY = "job-lock"
#: The most keys one user of auto-renewed locks holds (:attr:`LockBehaviour.holdings`).
MAX_HOLDINGS = 8
#: The most started electors one user of auto-renewed locks runs (:attr:`LockBehaviour.electors`).
MAX_ELECTORS = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class _Timed:
    """Something that happens to ``node`` at true time ``at``."""

    node: str
    at: float

    def __post_init__(self) -> None:
        if not isinstance(self.node, str) or not self.node:
            raise TypeError(f"node must be a non-empty str, got {self.node!r}")
        check_non_negative_seconds(self.at, name="at")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Window(_Timed):
    """A fault that lasts ``duration`` seconds from ``at``."""

    duration: float

    def __post_init__(self) -> None:
        _Timed.__post_init__(self)
        check_seconds(self.duration, name="duration")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Ending(_Timed):
    """The end of ``node``'s process; a fresh one starts ``restart_after`` seconds
    later (never, when ``None``)."""

    restart_after: float | None = None

    def __post_init__(self) -> None:
        _Timed.__post_init__(self)
        if self.restart_after is not None:
            check_non_negative_seconds(self.restart_after, name="restart_after")


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause(_Window):
    """``node``'s process stops for ``duration`` seconds from ``at``: no polls, no calls.

    With ``in_call`` the pause begins inside the node's first backend call at or
    after ``at``, just after the store applied it, so the reply is handled only
    when the pause ends (a GC pause right after the lease was granted).
    """

    in_call: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Partition(_Window):
    """``node`` is cut off from the store for ``duration`` seconds from ``at``.

    Calls fail at once with ``BackendUnavailable``, or, when ``hang`` is given,
    take ``hang`` seconds before failing (a write that hangs ends in
    ``AmbiguousOutcome`` or ``BackendUnavailable``; it never reached the store).
    """

    hang: float | None = None

    def __post_init__(self) -> None:
        _Window.__post_init__(self)
        if self.hang is not None:
            check_seconds(self.hang, name="hang")


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreErrors(_Window):
    """For ``duration`` seconds from ``at``, each write by ``node`` fails with
    probability ``probability`` with ``AmbiguousOutcome``: half of those were
    applied by the store before the reply was lost, half never were.

    With ``late`` > 0, that share of the failed writes is instead applied
    *after* the error, up to one lease later (a request stuck in a queue).
    That is outside what the storage protocol promises (an ambiguous write
    has taken effect by the time the error is raised, or never will); the
    core stays safe against it all the same: see ``docs/simulation.md``.
    """

    probability: float = 0.5
    late: float = 0.0

    def __post_init__(self) -> None:
        _Window.__post_init__(self)
        for name in ("probability", "late"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Crash(_Ending):
    """``node``'s process dies at ``at`` without releasing anything; a fresh one
    starts ``restart_after`` seconds later (never, when ``None``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop(_Ending):
    """``node`` shuts down gracefully at ``at`` (``stop()`` / ``release()``); a fresh
    process starts ``restart_after`` seconds later (never, when ``None``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Resign(_Timed):
    """Elector ``node`` calls ``release()`` at ``at``: it steps down and keeps taking part."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Takeover(_Timed):
    """Lock user ``node`` calls ``acquire(blocking=False, force=True)`` at ``at``: it
    takes the lock even from a live holder (an operator's forced takeover).

    The holder it displaces is *fenced*: the store's record has a greater
    token, so the displaced holder can neither renew nor release it, and
    downstream systems reject its token. The checkers hold the displaced
    holder to exclusion and to the lease only until the takeover (see
    :mod:`~mongoelector.testing.simulation.checkers`).
    """


Fault = Pause | Partition | StoreErrors | Crash | Stop | Resign | Takeover


def fault_end(fault: Fault) -> float:
    """When ``fault`` stops having effects it causes by itself (true seconds)."""
    if isinstance(fault, _Window):
        return fault.at + fault.duration
    if isinstance(fault, _Ending):
        return fault.at + (fault.restart_after or 0.0)
    return fault.at


class NodeKind(enum.Enum):
    ELECTOR = "elector"
    LOCK = "lock"


class ReleaseHabit(enum.Enum):
    """What a lock user does after its ``release()`` raised a store error."""

    #: Re-send the release (up to three tries) before acquiring again.
    RESEND = "resend"
    #: Forget it: acquire again after the usual ``retry_every``.
    FORGET = "forget"
    #: Acquire again at once, in the same breath.
    REACQUIRE = "reacquire"


class Callback(enum.Enum):
    """What an elector's leadership callback does, the first time it fires in a process.

    A callback that stops the elector ends the process; a fresh one (new
    owner id, no such callback) starts one retry period later.
    """

    RELEASE_ON_LEADER = "on_leader calls release()"
    STOP_ON_LEADER = "on_leader calls stop()"
    RELEASE_ON_LOSS = "on_leader_loss calls release()"
    STOP_ON_LOSS = "on_leader_loss calls stop()"


@dataclass(frozen=True, slots=True, kw_only=True)
class LockBehaviour:
    """How a lock user behaves, in seconds of its own clock.

    When free it tries ``acquire(blocking=False)`` every ``retry_every``; once
    it holds the lock it works for ``hold``, calling ``touch()`` every
    ``touch_every``, then releases. After a ``release()`` that raised, it
    follows ``after_failed_release``. With ``threads=2`` two callers (threads)
    share the one ``Lock`` object, each following this plan; either may run
    while the other waits for the store.

    With ``auto_renew`` the user holds ``holdings`` keys (:meth:`lock_keys`), each
    with its own ``Lock(auto_renew=True, on_lost=...)``, all renewed by the
    process's scheduler on the node's clock; it never touches. When a holding
    is lost it acquires again after ``retry_every`` or, with
    ``reacquire_on_loss``, at once from inside ``on_lost``.

    With ``electors`` (auto-renewed users only) the node also runs that many
    *started* ``LeaderElector`` objects (:meth:`election_keys`: :data:`ELECTION_KEY`,
    then ``election-2``...), on the same scheduler and store link: a leading
    one renews in the batches of the node's locks (``renew_many``), following
    ones read their records together (``get_many``) before they try.
    """

    hold: float
    touch_every: float
    retry_every: float
    after_failed_release: ReleaseHabit = ReleaseHabit.RESEND
    threads: int = 1
    auto_renew: bool = False
    holdings: int = 1
    reacquire_on_loss: bool = False
    electors: int = 0

    def __post_init__(self) -> None:
        check_seconds(self.hold, name="hold")
        check_seconds(self.touch_every, name="touch_every")
        check_seconds(self.retry_every, name="retry_every")
        if not isinstance(self.after_failed_release, ReleaseHabit):
            raise TypeError(
                f"after_failed_release must be a ReleaseHabit, got {self.after_failed_release!r}"
            )
        if self.threads not in (1, 2) or isinstance(self.threads, bool):
            raise ValueError(f"threads must be 1 or 2, got {self.threads!r}")
        for name in ("auto_renew", "reacquire_on_loss"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if isinstance(self.holdings, bool) or self.holdings not in range(1, MAX_HOLDINGS + 1):
            raise ValueError(f"holdings must be 1..{MAX_HOLDINGS}, got {self.holdings!r}")
        if not self.auto_renew and (self.holdings > 1 or self.reacquire_on_loss):
            raise ValueError("several holdings and reacquire_on_loss need auto_renew=True")
        if self.auto_renew and self.threads != 1:
            raise ValueError("auto-renewed locks have one caller per key (threads=1)")
        if isinstance(self.electors, bool) or self.electors not in range(MAX_ELECTORS + 1):
            raise ValueError(f"electors must be 0..{MAX_ELECTORS}, got {self.electors!r}")
        if self.electors and not self.auto_renew:
            raise ValueError("started electors run beside auto-renewed locks (auto_renew=True)")

    def lock_keys(self) -> tuple[str, ...]:
        """The keys this user holds: :data:`LOCK_KEY`, then ``job-lock-2``, ``job-lock-3``..."""
        return (LOCK_KEY, *(f"{LOCK_KEY}-{index}" for index in range(2, self.holdings + 1)))

    def election_keys(self) -> tuple[str, ...]:
        """The keys its started electors run for: :data:`ELECTION_KEY`, ``election-2``..."""
        if not self.electors:
            return ()
        return (
            ELECTION_KEY,
            *(f"{ELECTION_KEY}-{index}" for index in range(2, self.electors + 1)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSpec:
    """One simulated machine: its name, what it runs, and its clock.

    ``rate`` is local seconds per true second; ``origin`` the monotonic reading
    at the start; ``skew`` how far its wall clock is off, in seconds. An
    elector's ``callback``, if any, acts from inside its leadership callbacks.
    """

    name: str
    kind: NodeKind = NodeKind.ELECTOR
    rate: float = 1.0
    origin: float = 0.0
    skew: float = 0.0
    lock: LockBehaviour | None = None
    callback: Callback | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty str, got {self.name!r}")
        if self.name.startswith("@") or "#" in self.name or "/" in self.name:
            raise ValueError(
                f"node names must not start with '@' or contain '#' or '/': {self.name!r}"
            )
        if not isinstance(self.kind, NodeKind):
            raise TypeError(f"kind must be a NodeKind, got {self.kind!r}")
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate must be a positive number, got {self.rate!r}")
        if (self.kind is NodeKind.LOCK) != (self.lock is not None):
            raise ValueError(
                f"node {self.name!r}: a lock user needs a LockBehaviour and an elector has none"
            )
        if self.callback is not None and self.kind is not NodeKind.ELECTOR:
            raise ValueError(f"node {self.name!r}: only an elector has a callback")


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """Everything one simulation run needs; the same scenario gives the same history.

    ``timing.max_drift`` is the drift bound: every node's ``rate`` must lie
    within it, and ``timing`` itself satisfies the safety inequality (checked
    by :class:`~mongoelector.timing.LeaseTiming`). ``latency`` bounds each
    call's round trip. The run lasts at least ``duration`` seconds, and long
    enough after the last fault to judge liveness. ``seed`` drives every
    random choice made while running (latencies, which writes fail).

    ``unsafe=True`` skips the check of node rates against the drift bound. It
    exists for negative-control tests, which break the bound on purpose to show
    that the checkers catch the double leadership that follows.
    """

    seed: int
    timing: LeaseTiming
    nodes: tuple[NodeSpec, ...]
    faults: tuple[Fault, ...] = ()
    duration: float = 60.0
    latency: float = 0.0
    unsafe: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {self.seed!r}")
        if not isinstance(self.timing, LeaseTiming):
            raise TypeError(f"timing must be a LeaseTiming, got {self.timing!r}")
        if not self.nodes:
            raise ValueError("a scenario needs at least one node")
        names = [node.name for node in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"node names must be unique, got {names!r}")
        check_seconds(self.duration, name="duration")
        check_non_negative_seconds(self.latency, name="latency")
        known = {*names, LEADER}
        locks = {node.name for node in self.nodes if node.kind is NodeKind.LOCK}
        for fault in self.faults:
            if fault.node not in known:
                raise ValueError(f"fault {fault!r} names an unknown node")
            if isinstance(fault, Takeover) and fault.node not in locks:
                raise ValueError(f"fault {fault!r}: only a lock user takes over")
        if not self.unsafe:
            slowest, fastest = rate_bounds(self.timing.max_drift)
            for node in self.nodes:
                if not slowest <= node.rate <= fastest:
                    raise ValueError(
                        f"node {node.name!r} has rate={node.rate!r}, outside the drift bound "
                        f"max_drift={self.timing.max_drift!r} ([{slowest!r}, {fastest!r}])"
                    )

    def all_keys(self) -> tuple[str, ...]:
        """Every key some node of the scenario contends for."""
        keys = [ELECTION_KEY] if any(n.kind is NodeKind.ELECTOR for n in self.nodes) else []
        for node in self.nodes:
            if node.lock is not None:
                mine = (*node.lock.election_keys(), *node.lock.lock_keys())
                keys += [key for key in mine if key not in keys]
        return tuple(keys)

    def last_fault_end(self) -> float:
        """When the last scheduled fault stops (0 when there are none)."""
        return max((fault_end(fault) for fault in self.faults), default=0.0)
