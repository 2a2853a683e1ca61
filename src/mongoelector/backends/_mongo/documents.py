"""The stored layouts: lease documents and member status documents, as 1.x wrote them.

A lease document is ``{_id: key, locked, host, uuid, pid, ts_created,
ts_expire}`` (the 1.x layout, which 1.x nodes read and write) plus the 2.x
fields ``token``, ``acquire_id`` and ``metadata`` (and, once released by 2.x,
``released_by`` and, on the pipeline path, ``released_live``). A document without a
``token`` was written by 1.x (or replaced by a 1.x forced acquire) and reads
as token 0. ``locked`` is ``False`` once released; the document stays so the
next holder's token can build on it.

Member status documents live in their own collection, ``_id`` = the member's
uuid, with the fields of the 1.x ``node_status`` that a reader needs plus
``token``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from mongoelector._value import frozen_builder
from mongoelector.backends.protocol import LeaseRecord, MemberRecord
from mongoelector.core import status as status_docs

__all__ = [
    "ACQUIRE_ID",
    "CREATED",
    "EXPIRES",
    "HOST",
    "ID",
    "LOCKED",
    "METADATA",
    "OWNER",
    "PID",
    "RELEASED_BY",
    "RELEASED_LIVE",
    "TOKEN",
    "as_utc",
    "bson_time",
    "member_from_document",
    "member_set_fields",
    "record_from_document",
    "time_floor",
    "token_and_holder_expiry",
]

ID = "_id"
LOCKED = "locked"
HOST = "host"
OWNER = "uuid"
PID = "pid"
CREATED = "ts_created"
EXPIRES = "ts_expire"
TOKEN = "token"
#: The ``LeaseRequest.acquisition`` of the call that wrote the holding (a random id per
#: ``compare_and_set`` call), so its caller can tell its own write.
ACQUIRE_ID = "acquire_id"
METADATA = "metadata"
#: The id of the release call whose write set ``locked: false`` (one id per ``release``
#: call, the same in every send of it), so that a release whose reply was lost can tell
#: its own write from another client's.
RELEASED_BY = "released_by"
#: Pipeline path: whether the holding was live (``ts_expire`` after ``$$NOW``) when that
#: release's write applied, as the server judged it in the same write.
RELEASED_LIVE = "released_live"

_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
#: ``MICROSECONDS[n]`` is ``timedelta(microseconds=n)`` for ``0 <= n < 1000``: rounding to
#: the millisecond by a lookup and one addition (``datetime.replace`` costs ten times more,
#: and these run for every reply and every classic command).
MICROSECONDS = tuple(timedelta(microseconds=n) for n in range(1000))


def as_utc(value: datetime) -> datetime:
    """``value`` as timezone-aware UTC; a naive value (pymongo's default) is taken as UTC."""
    zone = value.tzinfo
    if zone is _UTC:
        return value
    if zone is None:
        # value.replace(tzinfo=_UTC), the same instant, by arithmetic (far cheaper).
        return _EPOCH + (value - _NAIVE_EPOCH)
    if value.utcoffset() is None:
        return value.replace(tzinfo=_UTC)
    return value.astimezone(_UTC)


def bson_time(value: datetime) -> datetime:
    """``value`` as aware UTC cut to whole milliseconds, exactly as BSON stores it."""
    value = as_utc(value)
    extra = value.microsecond % 1000
    return value - MICROSECONDS[extra] if extra else value


def time_floor(now: datetime) -> int:
    """The least fencing token an acquisition at server time ``now`` may get: ``now`` in µs."""
    since = as_utc(now) - _EPOCH  # in µs, by its fields (cheaper than //)
    return (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds


def _time_or_none(value: object) -> datetime | None:
    return as_utc(value) if isinstance(value, datetime) else None


def _metadata(value: object) -> dict[str, str]:
    if not value or not isinstance(value, Mapping):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def record_from_document(document: Mapping[str, Any]) -> LeaseRecord:
    """The :class:`LeaseRecord` a stored lease document stands for.

    Tolerant of what 1.x wrote and of naive datetimes: an unknown or
    mistyped field reads as absent; no ``token`` reads as 0; the owner is the
    ``uuid`` only while ``locked`` is ``True``.
    """
    # Written out (the field checks of _str_or_none and friends, with a shortcut for
    # the expected types): this runs for every reply of every lock operation.
    get = document.get
    key = document[ID]
    owner = get(OWNER) if get(LOCKED) is True else None
    token = get(TOKEN)
    created = get(CREATED)
    expires = get(EXPIRES)
    host = get(HOST)
    pid = get(PID)
    acquisition = get(ACQUIRE_ID)
    # LeaseRecord(key=..., owner=..., ...), in field order, built through the slots.
    return _new_record(
        key if type(key) is str else str(key),
        owner if owner is None or type(owner) is str else _str_or_none(owner),
        token if type(token) is int else (_int_or_none(token) or 0),
        as_utc(created) if type(created) is datetime else _time_or_none(created),
        as_utc(expires) if type(expires) is datetime else _time_or_none(expires),
        host if host is None or type(host) is str else _str_or_none(host),
        pid if pid is None or type(pid) is int else _int_or_none(pid),
        _metadata(get(METADATA)),
        acquisition
        if acquisition is None or type(acquisition) is str
        else _str_or_none(acquisition),
    )


_new_record = frozen_builder(LeaseRecord)


def token_and_holder_expiry(document: Mapping[str, Any]) -> tuple[int, datetime | None]:
    """The token of the stored lease ``document`` and, if it has an owner, its expiry.

    Field for field what :func:`record_from_document` reads (``record.token``,
    and ``record.expires_at`` when ``record.owner`` is set, else ``None``),
    without building the record: a release reads only these from its reply.
    """
    get = document.get
    token = get(TOKEN)
    if type(token) is not int:
        token = _int_or_none(token) or 0
    if get(LOCKED) is not True or not isinstance(get(OWNER), str):
        return token, None
    expires = get(EXPIRES)
    return token, (as_utc(expires) if isinstance(expires, datetime) else None)


def member_set_fields(member: MemberRecord) -> dict[str, Any]:
    """The fields of ``member``'s status document, except ``timestamp`` (stamped by the store).

    The 1.x ``member_detail`` entry, plus ``lock_owned`` as 1.x stored it.
    """
    fields = status_docs.member_document(member)
    del fields["timestamp"]
    fields["lock_owned"] = member.is_leader
    return fields


def member_from_document(document: Mapping[str, Any]) -> MemberRecord | None:
    """The :class:`MemberRecord` of a status document, or ``None`` if it is not one."""
    uuid = _str_or_none(document.get("uuid"))
    key = _str_or_none(document.get("key"))
    ttl = document.get("ttl")
    if uuid is None or key is None or isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        return None
    return MemberRecord(
        key=key,
        uuid=uuid,
        host=_str_or_none(document.get("host")) or "",
        pid=_int_or_none(document.get("pid")) or 0,
        is_leader=document.get("is_leader") is True,
        elector_running=document.get("elector_running") is True,
        ttl=float(ttl),
        token=_int_or_none(document.get("token")),
        app_version=_str_or_none(document.get("app_version")),
        timestamp=_time_or_none(document.get("timestamp")),
    )
