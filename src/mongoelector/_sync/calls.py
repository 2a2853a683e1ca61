"""Carries out a machine's :data:`~mongoelector.core.events.Action` on a sync backend."""

from __future__ import annotations

import logging

from mongoelector.backends.protocol import CasResult, LeaseRecord, LeaseRequest, StorageBackend
from mongoelector.core.events import Action, Inspect, Release, Renew, TryAcquire
from mongoelector.errors import AmbiguousOutcome, BackendError

__all__ = ["Failure", "perform"]

logger = logging.getLogger("mongoelector.backend")

Result = CasResult | LeaseRecord | bool | None


class Failure:
    """A backend call that raised: ``ambiguous`` if it may have taken effect."""

    __slots__ = ("ambiguous", "error")

    def __init__(self, error: BackendError) -> None:
        self.error = error
        self.ambiguous = isinstance(error, AmbiguousOutcome)


def perform(backend: StorageBackend, request: LeaseRequest, action: Action) -> Result | Failure:
    """Make the backend call ``action`` stands for, on behalf of ``request.owner``.

    Backend errors come back as a :class:`Failure`. Any other exception from a
    backend is a backend bug; it is logged and treated as an ambiguous outcome,
    the only assumption that cannot make two holders.
    """
    try:
        if isinstance(action, TryAcquire):
            return backend.compare_and_set(request, force=action.force)
        if isinstance(action, Renew):
            return backend.renew(request.key, request.owner, action.token, request.ttl)
        if isinstance(action, Inspect):
            return backend.get(request.key)
        assert isinstance(action, Release)
        return backend.release(request.key, request.owner, token=action.token)
    except BackendError as error:
        return Failure(error)
    except Exception as error:
        logger.exception("backend %r raised a non-BackendError; treating it as ambiguous", backend)
        return Failure(AmbiguousOutcome(f"backend raised {error!r}", original=error))
