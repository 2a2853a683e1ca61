"""Carries out a machine's :data:`~mongoelector.core.events.Action` on a sync backend."""

from __future__ import annotations

from mongoelector._common.outcomes import Failure, Result, failure_of, with_acquisition
from mongoelector.backends.protocol import LeaseRequest, StorageBackend
from mongoelector.core.events import Action, Inspect, Observe, Release, Renew, TryAcquire

__all__ = ["Failure", "Result", "perform"]


def perform(backend: StorageBackend, request: LeaseRequest, action: Action) -> Result | Failure:
    """Make the backend call ``action`` stands for, on behalf of ``request.owner``.

    Backend errors come back as a :class:`Failure` (see
    :func:`~mongoelector._common.outcomes.failure_of`).
    """
    try:
        if isinstance(action, TryAcquire):
            return backend.compare_and_set(
                with_acquisition(request, action.acquisition), force=action.force
            )
        if isinstance(action, Renew):
            return backend.renew(request.key, request.owner, action.token, request.ttl)
        if isinstance(action, (Inspect, Observe)):
            return backend.get(request.key)
        assert isinstance(action, Release)
        return backend.release(request.key, request.owner, token=action.token)
    except Exception as error:
        return failure_of(backend, error)
