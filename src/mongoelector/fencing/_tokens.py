"""The token sources behind ``fenced()``: a callable returning the token or raising ``LockLost``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mongoelector._common.elector_base import ElectorBase
from mongoelector.errors import LockLost, NotLeader

__all__ = ["term_token"]


def term_token(elector: ElectorBase[Any]) -> Callable[[], int]:
    """The token of the elector's current term, for as long as that term lasts.

    Raises :class:`NotLeader` now if this node does not lead; the callable
    raises :class:`LockLost` once the term is over (renew deadline passed,
    taken over, released or stopped), even if a later term has begun.
    """
    token = elector.token
    if token is None:
        raise NotLeader(
            f"this node does not lead {elector.key!r}: fenced() writes under the current term"
        )

    def current() -> int:
        reason = elector._term_loss(token)
        if reason is not None:
            raise LockLost(f"leadership of {elector.key!r} (token {token}) ended: {reason.value}")
        return token

    return current
