"""Lease timing settings and the safety inequality they must satisfy.

A holder stops trusting its lease ``renew_deadline`` seconds (by its own
monotonic clock) after the *start* of its last successful acquire or renew. The
store lets another node take the lease ``ttl`` seconds (by server time) after
it applied that write, which is no earlier than the start of the request. So no
two nodes act at once as long as the holder's deadline, stretched by the worst
clock-rate error and the server-time uncertainty, still falls before expiry::

    renew_deadline * (1 + max_drift) + time_uncertainty < ttl

:class:`LeaseTiming` refuses settings that break this, and also requires
``retry_period < renew_deadline`` so that a holder gets at least one retry
before it must step down.

Every duration is also bounded, so that no setting overflows a date or a wait
or makes a lease that round trips outlast: ``ttl`` from :data:`MIN_TTL` (0.1 s),
``renew_deadline`` from :data:`MIN_RENEW_DEADLINE` (0.05 s), ``retry_period``,
``follower_poll`` and an acquire's ``step`` from :data:`MIN_PERIOD` (1 ms), and
all of them (and an acquire's or a wait's ``timeout``) to at most
:data:`MAX_SECONDS` (365 days). A value outside is a ``ValueError`` naming it
and the bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from mongoelector._validation import (
    MAX_SECONDS,
    MIN_PERIOD,
    MIN_RENEW_DEADLINE,
    MIN_TTL,
    check_non_negative_seconds,
    check_seconds,
)

__all__ = [
    "DEFAULT_MAX_DRIFT",
    "MAX_SECONDS",
    "MIN_PERIOD",
    "MIN_RENEW_DEADLINE",
    "MIN_TTL",
    "RENEW_DEADLINE_FRACTION",
    "RETRY_PERIOD_FRACTION",
    "LeaseTiming",
]

#: Default bound on the relative rate error between any two clocks (1 %).
DEFAULT_MAX_DRIFT = 0.01
#: When only ``ttl`` is given, ``renew_deadline = ttl * 2/3`` (15 s -> 10 s).
RENEW_DEADLINE_FRACTION = 2 / 3
#: When only ``ttl`` is given, ``retry_period = ttl * 2/15`` (15 s -> 2 s).
RETRY_PERIOD_FRACTION = 2 / 15


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseTiming:
    """Validated lease settings, in seconds.

    ``ttl`` is how long the store keeps a lease after a write; ``renew_deadline``
    is when the holder stops believing it holds the lease (local monotonic time
    from the start of its last successful acquire/renew); ``retry_period`` is
    the pause between polls and between retries; ``follower_poll`` (default:
    ``retry_period``) is a follower's pause while another node leads. ``max_drift`` bounds the
    relative clock-rate error and ``time_uncertainty`` how far apart two
    observers' readings of server time may be.
    """

    ttl: float
    renew_deadline: float
    retry_period: float
    max_drift: float = DEFAULT_MAX_DRIFT
    time_uncertainty: float = 0.0
    follower_poll: float | None = None

    @property
    def follower_period(self) -> float:
        """Seconds between a follower's attempts while a live leader holds the lease.

        ``follower_poll`` when given, else ``retry_period``. It bounds failover
        (a crashed leader is replaced within ``ttl + follower_period``), never safety.
        """
        return self.follower_poll if self.follower_poll is not None else self.retry_period

    def __post_init__(self) -> None:
        check_seconds(self.ttl, name="ttl", least=MIN_TTL, most=MAX_SECONDS)
        check_seconds(
            self.renew_deadline, name="renew_deadline", least=MIN_RENEW_DEADLINE, most=MAX_SECONDS
        )
        check_seconds(self.retry_period, name="retry_period", least=MIN_PERIOD, most=MAX_SECONDS)
        check_non_negative_seconds(self.max_drift, name="max_drift")
        check_non_negative_seconds(self.time_uncertainty, name="time_uncertainty")
        if self.follower_poll is not None:
            check_seconds(
                self.follower_poll, name="follower_poll", least=MIN_PERIOD, most=MAX_SECONDS
            )
        if self.max_drift >= 1:
            raise ValueError(f"max_drift must be below 1, got {self.max_drift!r}")
        if self.renew_deadline >= self.ttl:
            raise ValueError(
                f"renew_deadline must be shorter than ttl, got renew_deadline="
                f"{self.renew_deadline!r} with ttl={self.ttl!r}"
            )
        worst = self.renew_deadline * (1 + self.max_drift) + self.time_uncertainty
        if worst >= self.ttl:
            raise ValueError(
                f"renew_deadline={self.renew_deadline!r} with max_drift={self.max_drift!r} and "
                f"time_uncertainty={self.time_uncertainty!r} breaks the safety inequality "
                f"renew_deadline * (1 + max_drift) + time_uncertainty < ttl "
                f"({worst!r} >= ttl={self.ttl!r})"
            )
        if self.retry_period >= self.renew_deadline:
            raise ValueError(
                f"retry_period must be shorter than renew_deadline, got retry_period="
                f"{self.retry_period!r} with renew_deadline={self.renew_deadline!r}"
            )

    @classmethod
    def for_ttl(
        cls,
        ttl: float,
        *,
        renew_deadline: float | None = None,
        retry_period: float | None = None,
        max_drift: float = DEFAULT_MAX_DRIFT,
        time_uncertainty: float = 0.0,
        follower_poll: float | None = None,
    ) -> LeaseTiming:
        """Settings for ``ttl``, deriving whichever of the others is ``None``.

        The derived values keep the proportions of the defaults (15 / 10 / 2 s).
        """
        ttl = check_seconds(ttl, name="ttl", least=MIN_TTL, most=MAX_SECONDS)
        if renew_deadline is None:
            renew_deadline = ttl * RENEW_DEADLINE_FRACTION
        if retry_period is None:
            retry_period = min(ttl * RETRY_PERIOD_FRACTION, renew_deadline / 2)
        return cls(
            ttl=ttl,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
            max_drift=max_drift,
            time_uncertainty=time_uncertainty,
            follower_poll=follower_poll,
        )
