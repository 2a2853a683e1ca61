"""The synchronous I/O under :class:`~mongoelector.backends.MongoBackend`.

Calls with bounded retries, index creation, and readings of the server's
clock, on pymongo's sync API. The decisions (what a failure means, how long to
retry, how to estimate the server's time) come from the pure modules in
:mod:`mongoelector.backends._mongo`; an async backend pairs them with its own
version of this module.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import pymongo
from pymongo.errors import OperationFailure, PyMongoError

from mongoelector.backends._mongo.failures import RetryPolicy, classify, is_transient
from mongoelector.backends._mongo.indexes import IndexSpec, describe_refusal
from mongoelector.backends._mongo.server_clock import (
    ClockSample,
    ServerClockEstimator,
    ServerTimeEstimate,
    host_clock_offset,
)
from mongoelector.clock import Clock
from mongoelector.errors import AmbiguousOutcome, BackendUnavailable

__all__ = ["ServerClock", "call_with_retries", "create_indexes", "hello_of"]

logger = logging.getLogger("mongoelector.backend")

T = TypeVar("T")

Hello = Callable[[], Mapping[str, Any] | None]


def call_with_retries(
    clock: Clock, policy: RetryPolicy, what: str, attempt: Callable[[], T], *, write: bool
) -> T:
    """Call ``attempt`` until it succeeds, fails for good, or ``policy``'s budget is spent.

    Every attempt runs under ``pymongo.timeout`` with what is left of the
    budget, so server selection and the network are bounded too. Failures are
    raised as our error types; once any attempt of a write may have applied,
    the final error is :class:`~mongoelector.errors.AmbiguousOutcome`.
    """
    started = clock.monotonic()
    attempts = 0
    maybe_applied: AmbiguousOutcome | None = None
    while True:
        remaining = policy.remaining(clock.monotonic() - started)
        try:
            with pymongo.timeout(max(remaining, 0.001)):
                return attempt()
        except PyMongoError as error:
            attempts += 1
            failure = classify(error, write=write, what=what)
            if isinstance(failure, AmbiguousOutcome) and maybe_applied is None:
                maybe_applied = failure
            elapsed = clock.monotonic() - started
            delay = policy.delay_before_retry(attempts, elapsed) if is_transient(error) else None
            if delay is None:
                if maybe_applied is not None and not isinstance(failure, AmbiguousOutcome):
                    raise AmbiguousOutcome(
                        f"{what}: an earlier attempt may have applied; then {failure}",
                        original=error,
                    ) from error
                raise failure from error
            logger.debug("%s failed (%s); retrying in %.3f s", what, error, delay)
            clock.sleep(delay)


def create_indexes(collection: Any, specs: list[IndexSpec], *, budget: float) -> bool:
    """Create ``specs`` on ``collection``; ``False`` if the server could not be reached.

    An index the server refuses (it exists with other options, or we may not
    create it) is logged and left alone: nothing is ever dropped.
    """
    for spec in specs:
        try:
            with pymongo.timeout(budget):
                collection.create_index(spec.keys, **spec.options)
        except OperationFailure as error:
            logger.warning(describe_refusal(collection.name, spec, error.code, error))
        except PyMongoError as error:
            logger.info("index creation on %r postponed: %s", collection.name, error)
            return False
    return True


def hello_of(database: Any) -> Mapping[str, Any] | None:
    """``database``'s ``hello`` reply, or ``None`` if the store lacks the command (mongomock)."""
    try:
        reply: Mapping[str, Any] = database.command("hello")
    except NotImplementedError:
        return None
    except OperationFailure as error:
        if error.code != 59:  # CommandNotFound: a server older than hello
            raise
        try:
            reply = database.command("isMaster")
        except NotImplementedError:
            return None
    return reply


def _local_time(reply: Mapping[str, Any] | None) -> datetime | None:
    local_time = reply.get("localTime") if reply is not None else None
    return local_time if isinstance(local_time, datetime) else None


class ServerClock:
    """The server's time, read with ``hello`` and extrapolated between readings.

    Until :meth:`read` has run, nothing is known; where the server cannot tell
    its time (:attr:`tells_time` false), ``clock`` stands in for it.
    """

    def __init__(self, hello: Hello, clock: Clock, policy: RetryPolicy, max_drift: float) -> None:
        self._hello = hello
        self._clock = clock
        self._policy = policy
        self._estimator = ServerClockEstimator(max_drift=max_drift)
        self._mutex = threading.Lock()
        self.tells_time: bool | None = None

    def _sample(self) -> tuple[Mapping[str, Any] | None, ClockSample | None]:
        sent_at = self._clock.monotonic()
        reply = self._hello()
        received_at = self._clock.monotonic()
        local_time = _local_time(reply)
        if local_time is None:
            return reply, None
        return reply, ClockSample(sent_at=sent_at, server_time=local_time, received_at=received_at)

    def read(self) -> Mapping[str, Any] | None:
        """Ask the server (one ``hello``, retried); return its reply, keep its clock reading."""
        reply, sample = call_with_retries(
            self._clock, self._policy, "reading the server's clock", self._sample, write=False
        )
        with self._mutex:
            self.tells_time = sample is not None
            if sample is not None:
                self._estimator.add(sample)
        return reply

    def estimate(self) -> ServerTimeEstimate:
        """The server's time now, within the returned uncertainty; reads again when stale."""
        if not self.tells_time:
            return ServerTimeEstimate(time=self._clock.now(), uncertainty=0.0)
        with self._mutex:
            stale = self._estimator.is_stale(self._clock.monotonic())
        if stale:
            try:
                self.read()
            except BackendUnavailable:
                if self._estimator.sample is None:
                    raise  # an old reading is better than none; no reading is nothing
        with self._mutex:
            estimate = self._estimator.estimate(self._clock.monotonic())
        assert estimate is not None
        return estimate

    def host_offset(self) -> tuple[float, float] | None:
        """How far the server's clock is ahead of this host's wall clock, and the uncertainty.

        ``None`` if the server cannot tell its time. Always a fresh round trip.
        """

        def attempt() -> tuple[float, float] | None:
            before = self._clock.now()
            local_time = _local_time(self._hello())
            after = self._clock.now()
            return None if local_time is None else host_clock_offset(before, local_time, after)

        return call_with_retries(
            self._clock, self._policy, "reading the server's clock", attempt, write=False
        )
