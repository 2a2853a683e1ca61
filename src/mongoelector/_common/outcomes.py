"""What a store call came back with, as both drivers hand it to the machines."""

from __future__ import annotations

import logging

from mongoelector._value import frozen_replacer
from mongoelector.backends.protocol import CasResult, LeaseRecord, LeaseRequest
from mongoelector.errors import AmbiguousOutcome, BackendError

__all__ = ["Failure", "Result", "failure_of", "with_acquisition"]

logger = logging.getLogger("mongoelector.backend")

#: What a store call returns: ``compare_and_set``, ``renew``/``get``, ``release``.
Result = CasResult | LeaseRecord | bool | None


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
