"""Argument checks for backend authors: the rules every built-in backend applies.

A backend that calls these rejects the same bad input as the built-in ones,
with a :class:`TypeError` or :class:`ValueError` that names the bad value, and
so passes the conformance suite's bad-input checks. Check before touching the
store: a rejected call must change nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from mongoelector._validation import check_key as _check_key
from mongoelector._validation import check_seconds, check_unique_key
from mongoelector.backends.protocol import LeaseRequest, MemberRecord, RenewItem

__all__ = [
    "check_key",
    "check_keys",
    "check_member",
    "check_members",
    "check_owner",
    "check_renew_items",
    "check_request",
    "check_token",
    "check_ttl",
]


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


def check_token(token: object, *, name: str = "token") -> int:
    """Return ``token`` if it is a fencing token: an ``int`` (not a ``bool``)."""
    if isinstance(token, bool) or not isinstance(token, int):
        raise TypeError(f"{name} must be an int, got {type(token).__name__} {token!r}")
    return token


def _sequence(value: object, name: str, of: str) -> Sequence[object]:
    if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Sequence):
        raise TypeError(
            f"{name} must be a sequence (a list or tuple) of {of}, "
            f"got {type(value).__name__} {value!r}"
        )
    return value


def check_renew_items(items: object) -> list[RenewItem]:
    """Return ``items`` as a list if it is a batch ``renew_many`` accepts.

    A sequence (list, tuple) of :class:`RenewItem` whose keys, owners,
    tokens and ttls pass :func:`check_key`, :func:`check_owner`,
    :func:`check_token` and :func:`check_ttl`, naming each key once. The
    error names the bad item (``items[2].ttl``) or the repeated key.
    """
    checked: list[RenewItem] = []
    first: dict[str, int] = {}
    for index, item in enumerate(_sequence(items, "items", "RenewItem")):
        where = f"items[{index}]"
        if not isinstance(item, RenewItem):
            raise TypeError(f"{where} must be a RenewItem, got {type(item).__name__} {item!r}")
        check_key(item.key, name=f"{where}.key")
        check_owner(item.owner, name=f"{where}.owner")
        check_token(item.token, name=f"{where}.token")
        check_ttl(item.ttl, name=f"{where}.ttl")
        if item.key in first:
            raise ValueError(
                f"{where} repeats key {item.key!r} (items[{first[item.key]}]): "
                f"a batch renews each key at most once"
            )
        first[item.key] = index
        checked.append(item)
    return checked


def check_keys(keys: object) -> list[str]:
    """Return the distinct ``keys`` in first-seen order, if ``keys`` is a sequence of good keys.

    A bare ``str`` is refused (it is not a list of keys); each key must pass
    :func:`check_key`, and the error names it (``keys[1]``).
    """
    distinct: dict[str, None] = {}
    for index, key in enumerate(_sequence(keys, "keys", "str keys")):
        distinct[check_key(key, name=f"keys[{index}]")] = None
    return list(distinct)


def check_request(request: object) -> LeaseRequest:
    """Return ``request`` if it is a :class:`LeaseRequest` with a usable key, owner,
    acquisition id and ttl."""
    if not isinstance(request, LeaseRequest):
        raise TypeError(f"request must be a LeaseRequest, got {type(request).__name__}")
    check_key(request.key)
    check_owner(request.owner)
    check_unique_key(request.acquisition, name="request.acquisition")
    check_ttl(request.ttl)
    return request


def check_member(member: object, *, name: str = "member") -> MemberRecord:
    """Return ``member`` if it is a :class:`MemberRecord` with a usable key and ttl."""
    if not isinstance(member, MemberRecord):
        raise TypeError(f"{name} must be a MemberRecord, got {type(member).__name__}")
    check_key(member.key, name=f"{name}.key" if name != "member" else "key")
    check_ttl(member.ttl, name=f"{name}.ttl" if name != "member" else "ttl")
    return member


def check_members(members: object) -> list[MemberRecord]:
    """Return ``members`` as a list if it is a batch ``report_members`` accepts: a sequence
    (list, tuple) of reports that each pass :func:`check_member`. The error names the bad
    item (``members[2].ttl``)."""
    return [
        check_member(member, name=f"members[{index}]")
        for index, member in enumerate(_sequence(members, "members", "MemberRecord"))
    ]
