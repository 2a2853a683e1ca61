"""Random scenarios drawn from a seed, within configured bounds.

:func:`draw_scenario` turns ``(seed, config)`` into a :class:`Scenario`; the
same pair always gives the same scenario. The draws lean towards the cases
that matter: faults aimed at whoever leads, clocks at the edge of the drift
bound, renew deadlines as close to the lease as the safety inequality allows.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from mongoelector._validation import check_non_negative_seconds, check_seconds
from mongoelector.testing.simulation.clocks import rate_bounds
from mongoelector.testing.simulation.scenario import (
    LEADER,
    Callback,
    Crash,
    Fault,
    LockBehaviour,
    NodeKind,
    NodeSpec,
    Partition,
    Pause,
    ReleaseHabit,
    Resign,
    Scenario,
    Stop,
    StoreErrors,
    Takeover,
)
from mongoelector.timing import DEFAULT_MAX_DRIFT, RENEW_DEADLINE_FRACTION, LeaseTiming

__all__ = ["SimulationConfig", "draw_scenario"]

#: A "tight" renew deadline leaves this fraction of the inequality's margin unused.
TIGHT_MARGIN = 1e-4


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationConfig:
    """The bounds random scenarios are drawn within (lengths in seconds or leases).

    ``min_nodes``..``max_nodes`` electors; with probability ``lock_users``
    also two or three lock users on another key. Clocks drift up to
    ``max_drift``; every call takes up to ``latency``. Up to ``max_faults``
    faults start within the first ``fault_window`` leases: pauses up to
    ``max_pause`` leases, partitions, ambiguous store errors (each write
    failing with ``error_probability``), crashes, graceful stops and
    resignations (forced takeovers come on top). ``leader_bias`` is the
    chance a fault targets whoever leads at that moment rather than a node
    picked in advance. ``late_writes`` is
    the share of failed writes that reach the store after the error (see
    :class:`StoreErrors`; off by default, as the protocol rules it out).

    ``rough_callers`` makes callers behave like real ones, not gentle ones:
    each lock user picks what it does after a failed release (re-send it,
    forget it, or acquire again at once), some share one ``Lock`` object
    between two callers, and up to ``max_takeovers`` forced takeovers
    (``acquire(force=True)``) by lock users join the faults.
    ``reentrant_callbacks`` gives some electors a leadership callback that
    calls ``release()`` or ``stop()`` (``on_leader`` calls either,
    ``on_leader_loss`` calls ``release()`` or, with ``stop_on_loss_callbacks``
    (on by default), ``stop()``). These are drawn from a stream of their own,
    so turning them off leaves the rest of each schedule as it was.

    ``auto_renewed`` is the chance that a schedule's lock users hold auto-renewed
    locks instead: each holds two or three keys (``job-lock``, ``job-lock-2``...,
    so they contend for the keys they share), renewed by the process's
    scheduler, and after a loss acquires again later or at once from
    ``on_lost`` (drawn from a stream of their own, as above).
    ``started_electors`` is the chance that such users also run one to three
    *started* electors each (``election``, ``election-2``..., shared across
    nodes and with the electors of the schedule), on the same scheduler: their
    leaders renew in the nodes' ``renew_many`` batches, their followers read
    together with ``get_many`` (a stream of its own again).
    """

    min_nodes: int = 2
    max_nodes: int = 7
    ttl: float = 15.0
    max_drift: float = DEFAULT_MAX_DRIFT
    latency: float = 0.05
    lock_users: float = 0.3
    max_faults: int = 6
    fault_window: float = 4.0
    max_pause: float = 3.0
    error_probability: float = 0.5
    leader_bias: float = 0.6
    late_writes: float = 0.0
    rough_callers: bool = True
    max_takeovers: int = 2
    reentrant_callbacks: bool = True
    stop_on_loss_callbacks: bool = True
    auto_renewed: float = 0.35
    started_electors: float = 0.6

    def __post_init__(self) -> None:
        for name in ("min_nodes", "max_nodes", "max_faults", "max_takeovers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if not 1 <= self.min_nodes <= self.max_nodes:
            raise ValueError(
                f"need 1 <= min_nodes <= max_nodes, got {self.min_nodes!r}..{self.max_nodes!r}"
            )
        check_seconds(self.ttl, name="ttl")
        check_non_negative_seconds(self.max_drift, name="max_drift")
        check_non_negative_seconds(self.latency, name="latency")
        check_seconds(self.fault_window, name="fault_window")
        check_seconds(self.max_pause, name="max_pause")
        for name in (
            "lock_users",
            "error_probability",
            "leader_bias",
            "late_writes",
            "auto_renewed",
            "started_electors",
        ):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")
        for name in ("rough_callers", "reentrant_callbacks", "stop_on_loss_callbacks"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")


def _timing(rng: random.Random, config: SimulationConfig) -> LeaseTiming:
    ttl = config.ttl
    # The drivers check the inequality with their own default bound too.
    drift = max(config.max_drift, DEFAULT_MAX_DRIFT)
    tightest = ttl / (1 + drift) * (1 - TIGHT_MARGIN)
    shape = rng.randrange(3)
    if shape == 0:
        renew_deadline = tightest
    elif shape == 1:
        renew_deadline = ttl * RENEW_DEADLINE_FRACTION
    else:
        renew_deadline = rng.uniform(0.3 * ttl, tightest)
    retry_period = renew_deadline * rng.uniform(0.1, 0.6)
    return LeaseTiming(
        ttl=ttl,
        renew_deadline=renew_deadline,
        retry_period=retry_period,
        max_drift=config.max_drift,
    )


def _rate(rng: random.Random, max_drift: float) -> float:
    slowest, fastest = rate_bounds(max_drift)
    pick = rng.random()
    if pick < 0.2:
        return slowest
    if pick < 0.4:
        return fastest
    return rng.uniform(slowest, fastest)


def _nodes(rng: random.Random, config: SimulationConfig, timing: LeaseTiming) -> list[NodeSpec]:
    electors = rng.randint(config.min_nodes, config.max_nodes)
    locks = rng.randint(2, 3) if rng.random() < config.lock_users else 0
    nodes = []
    for index in range(electors + locks):
        behaviour = None
        if index >= electors:
            behaviour = LockBehaviour(
                hold=round(rng.uniform(0.5, 3) * timing.ttl, 3),
                touch_every=round(rng.uniform(0.2, 1.2) * timing.renew_deadline, 3),
                retry_every=round(rng.uniform(0.1, 1) * timing.ttl, 3),
            )
        nodes.append(
            NodeSpec(
                name=f"n{index + 1}",
                kind=NodeKind.ELECTOR if behaviour is None else NodeKind.LOCK,
                rate=_rate(rng, config.max_drift),
                origin=round(rng.uniform(0, 1e6), 3),
                skew=round(rng.uniform(-30, 30), 3),
                lock=behaviour,
            )
        )
    return nodes


def _fault(
    rng: random.Random, config: SimulationConfig, names: list[str], timing: LeaseTiming
) -> Fault:
    ttl = timing.ttl
    node = LEADER if rng.random() < config.leader_bias else rng.choice(names)
    at = round(rng.uniform(0, config.fault_window * ttl), 3)
    kind = rng.choices(
        ("pause", "pause_in_call", "partition", "errors", "crash", "stop", "resign"),
        weights=(3, 1, 2, 2, 1, 1, 1),
    )[0]
    if kind in ("pause", "pause_in_call"):
        duration = round(rng.uniform(0.05, config.max_pause) * ttl, 3)
        return Pause(node=node, at=at, duration=duration, in_call=kind == "pause_in_call")
    if kind == "partition":
        hang = None if rng.random() < 0.5 else round(rng.uniform(0.05, 1.5) * ttl, 3)
        return Partition(node=node, at=at, duration=round(rng.uniform(0.1, 2) * ttl, 3), hang=hang)
    if kind == "errors":
        return StoreErrors(
            node=node,
            at=at,
            duration=round(rng.uniform(0.5, 3) * ttl, 3),
            probability=config.error_probability,
            late=config.late_writes,
        )
    if kind == "resign":
        return Resign(node=node, at=at)
    restart_after = round(rng.uniform(0, 2) * ttl, 3)
    if kind == "crash":
        return Crash(node=node, at=at, restart_after=restart_after)
    return Stop(node=node, at=at, restart_after=restart_after)


#: The share of electors whose leadership callback calls release() or stop().
CALLBACK_SHARE = 0.2
#: The share of lock users that share their Lock object between two callers.
SHARED_SHARE = 0.4


def _rough(
    seed: int, config: SimulationConfig, timing: LeaseTiming, nodes: list[NodeSpec]
) -> tuple[list[NodeSpec], list[Fault]]:
    """Give callers real callers' habits; draws from a stream of their own."""
    rng = random.Random(f"mongoelector-simulation-callers/{seed}")
    rough: list[NodeSpec] = []
    for node in nodes:
        drawn = node
        if node.lock is not None and config.rough_callers:
            habit = rng.choice(list(ReleaseHabit))
            threads = 2 if rng.random() < SHARED_SHARE else 1
            lock = dataclasses.replace(node.lock, after_failed_release=habit, threads=threads)
            drawn = dataclasses.replace(node, lock=lock)
        elif node.lock is None and config.reentrant_callbacks and rng.random() < CALLBACK_SHARE:
            callbacks = list(Callback)
            if not config.stop_on_loss_callbacks:
                callbacks.remove(Callback.STOP_ON_LOSS)
            drawn = dataclasses.replace(node, callback=rng.choice(callbacks))
        rough.append(drawn)
    takeovers: list[Fault] = []
    locks = [node.name for node in nodes if node.lock is not None]
    if locks and config.rough_callers:
        for _ in range(rng.randint(0, config.max_takeovers)):
            at = round(rng.uniform(0, config.fault_window * timing.ttl), 3)
            takeovers.append(Takeover(node=rng.choice(locks), at=at))
    return rough, takeovers


#: How many keys a user of auto-renewed locks holds at most.
MOST_HOLDINGS = 3


def _auto_renewed(seed: int, config: SimulationConfig, nodes: list[NodeSpec]) -> list[NodeSpec]:
    """Make the lock users hold several auto-renewed locks; draws from a stream of its own."""
    rng = random.Random(f"mongoelector-simulation-holdings/{seed}")
    if not any(node.lock is not None for node in nodes) or rng.random() >= config.auto_renewed:
        return nodes
    drawn: list[NodeSpec] = []
    for node in nodes:
        if node.lock is None:
            drawn.append(node)
            continue
        lock = dataclasses.replace(
            node.lock,
            threads=1,
            auto_renew=True,
            holdings=rng.randint(2, MOST_HOLDINGS),
            reacquire_on_loss=rng.random() < 0.5,
        )
        drawn.append(dataclasses.replace(node, lock=lock))
    return _started_electors(seed, config, drawn)


#: How many started electors a user of auto-renewed locks runs at most.
MOST_ELECTORS = 3


def _started_electors(seed: int, config: SimulationConfig, nodes: list[NodeSpec]) -> list[NodeSpec]:
    """Give the users of auto-renewed locks started electors; draws from a stream of its own."""
    rng = random.Random(f"mongoelector-simulation-started-electors/{seed}")
    if rng.random() >= config.started_electors:
        return nodes
    drawn: list[NodeSpec] = []
    for node in nodes:
        if node.lock is not None and node.lock.auto_renew:
            lock = dataclasses.replace(node.lock, electors=rng.randint(1, MOST_ELECTORS))
            drawn.append(dataclasses.replace(node, lock=lock))
        else:
            drawn.append(node)
    return drawn


def draw_scenario(seed: int, config: SimulationConfig | None = None) -> Scenario:
    """The scenario for ``seed`` within ``config`` (the defaults when ``None``)."""
    if config is None:
        config = SimulationConfig()
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    rng = random.Random(seed)
    timing = _timing(rng, config)
    nodes = _nodes(rng, config, timing)
    names = [node.name for node in nodes]
    faults = [_fault(rng, config, names, timing) for _ in range(rng.randint(0, config.max_faults))]
    nodes, takeovers = _rough(seed, config, timing, nodes)
    nodes = _auto_renewed(seed, config, nodes)
    faults += takeovers
    faults.sort(key=lambda fault: fault.at)
    return Scenario(
        seed=seed,
        timing=timing,
        nodes=tuple(nodes),
        faults=tuple(faults),
        duration=config.fault_window * timing.ttl,
        latency=config.latency,
    )
