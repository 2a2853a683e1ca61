"""Argument checks for backend authors: the rules every built-in backend applies.

A backend that calls these rejects the same bad input as the built-in ones,
with a :class:`TypeError` or :class:`ValueError` that names the bad value, and
so passes the conformance suite's bad-input checks. Check before touching the
store: a rejected call must change nothing.
"""

from __future__ import annotations

from mongoelector._validation import check_key as _check_key
from mongoelector._validation import check_seconds
from mongoelector.backends.protocol import LeaseRequest, MemberRecord

__all__ = ["check_key", "check_member", "check_owner", "check_request", "check_ttl"]


def check_key(key: object, *, name: str = "key") -> str:
    """Return ``key`` if it is a usable key: a non-empty ``str`` (no NUL, at most 1024 chars).

    Anything else, including a query-shaped value such as ``{"$gt": ""}``,
    raises ``TypeError`` (not a ``str``) or ``ValueError``.
    """
    return _check_key(key, name=name)


def check_owner(owner: object, *, name: str = "owner") -> str:
    """Return ``owner`` if it is a usable owner id (the same rules as a key)."""
    return _check_key(owner, name=name)


def check_ttl(ttl: object, *, name: str = "ttl") -> float:
    """Return ``ttl`` as float seconds if it is a finite number greater than zero."""
    return check_seconds(ttl, name=name)


def check_request(request: object) -> LeaseRequest:
    """Return ``request`` if it is a :class:`LeaseRequest` with a usable key, owner,
    acquisition id and ttl."""
    if not isinstance(request, LeaseRequest):
        raise TypeError(f"request must be a LeaseRequest, got {type(request).__name__}")
    check_key(request.key)
    check_owner(request.owner)
    _check_key(request.acquisition, name="request.acquisition")
    check_ttl(request.ttl)
    return request


def check_member(member: object) -> MemberRecord:
    """Return ``member`` if it is a :class:`MemberRecord` with a usable key and ttl."""
    if not isinstance(member, MemberRecord):
        raise TypeError(f"member must be a MemberRecord, got {type(member).__name__}")
    check_key(member.key)
    check_ttl(member.ttl)
    return member
