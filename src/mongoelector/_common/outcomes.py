"""What a store call came back with, as both drivers hand it to the machines."""

from __future__ import annotations

import logging

from mongoelector._value import frozen_builder, frozen_replacer
from mongoelector.backends.protocol import EMPTY_METADATA, CasResult, LeaseRecord, LeaseRequest
from mongoelector.errors import AmbiguousOutcome, BackendError

__all__ = ["UNSENT", "Failure", "Result", "failure_of", "request_for", "with_acquisition"]

logger = logging.getLogger("mongoelector.backend")

#: What a store call returns: ``compare_and_set``, ``renew``/``get``, ``release``.
Result = CasResult | LeaseRecord | bool | None


#: The acquisition id of a lock's or elector's kept request: never sent, as every
#: ``compare_and_set`` goes out :func:`with_acquisition` its own try's id.
UNSENT = "unsent"


def request_for(
    key: str, owner: str, ttl: float, host: str, pid: int, acquisition: str = UNSENT
) -> LeaseRequest:
    """The request a lock or elector makes for its store calls: no metadata (the shared
    empty mapping), and ``acquisition`` (a try's id; :data:`UNSENT` when the call is no
    try). Built for each call through the slots
    (:func:`~mongoelector._value.frozen_builder`): a kept one would cost memory for
    each of the thousands of locks a process may hold."""
    return _build_request(key, owner, ttl, host, pid, EMPTY_METADATA, acquisition)


def with_acquisition(request: LeaseRequest, acquisition: str) -> LeaseRequest:
    """``request`` with ``acquisition`` as its id (``request`` itself if it has it already).

    What ``dataclasses.replace`` would return, built through the slots
    (:func:`~mongoelector._value.frozen_replacer`): this runs once per acquire
    attempt. Every field is carried over, whatever fields ``LeaseRequest`` has.
    """
    if request.acquisition == acquisition:
        return request
    return _with_acquisition(request, acquisition)


_with_acquisition = frozen_replacer(LeaseRequest, "acquisition")
_build_request = frozen_builder(LeaseRequest)


class Failure:
    """A backend call that raised: ``ambiguous`` if it may have taken effect."""

    __slots__ = ("ambiguous", "error")

    def __init__(self, error: BackendError) -> None:
        self.error = error
        self.ambiguous = isinstance(error, AmbiguousOutcome)


def failure_of(backend: object, error: Exception) -> Failure:
    """The :class:`Failure` for ``error`` raised by ``backend``.

    Anything but a :class:`~mongoelector.errors.BackendError` is a backend bug:
    it is logged and treated as an ambiguous outcome, the only assumption that
    cannot make two holders.
    """
    if isinstance(error, BackendError):
        return Failure(error)
    logger.exception(
        "backend %r raised a non-BackendError; treating it as ambiguous",
        backend,
        exc_info=error,
    )
    return Failure(AmbiguousOutcome(f"backend raised {error!r}", original=error))
