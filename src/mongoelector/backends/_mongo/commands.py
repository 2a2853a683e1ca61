"""The commands the MongoDB backends send, and how their replies are read.

Two ways to write, chosen per deployment:

* **Pipeline** (MongoDB 4.2+): every lease write is one ``findAndModify``
  whose update is an aggregation pipeline, so the server decides expiry and
  stamps times with its own ``$$NOW``. Acquire is a single upsert on
  ``{_id: key}``; the pipeline keeps the document as it is unless the lease is
  free (or ``force``), so no ``$expr`` is needed in the (upsert) filter.
* **Classic** (stores without pipeline updates, such as mongomock): times are
  the client's estimate of server time. An acquire that expects a free lease
  first tries one conditional upsert that can only apply where reading then
  writing would have written the same (:func:`optimistic_classic_acquire`);
  otherwise it reads the document then writes it back only if it is unchanged
  (an exact-match compare-and-set, or an insert that fails with a duplicate
  key if someone else got there).

Either way the fencing token of an acquisition is
``max(previous token + 1, server time in microseconds, least_token)``: it
grows by at least one while the document lives, and after the document is
deleted (a TTL index, a 1.x node, an operator) server time has moved past every
token issued before. See ``docs/mongodb.md`` for why that is safe.

User-supplied strings go into pipelines only inside ``$literal``, so a value
such as ``"$$ROOT"`` is stored as text, never evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from mongoelector._value import Value, frozen_builder
from mongoelector.backends._mongo.documents import (
    ACQUIRE_ID,
    CREATED,
    EXPIRES,
    HOST,
    ID,
    LOCKED,
    METADATA,
    MICROSECONDS,
    OWNER,
    PID,
    RELEASED_BY,
    RELEASED_LIVE,
    TOKEN,
    as_utc,
    bson_time,
    member_set_fields,
    record_from_document,
    time_floor,
)
from mongoelector.backends.protocol import CasResult, LeaseRecord, LeaseRequest, MemberRecord

__all__ = [
    "ClassicAcquire",
    "Confirmed",
    "FindAndModify",
    "Insert",
    "Refuse",
    "Replace",
    "acquire_pipeline",
    "holds",
    "is_held",
    "lost_release_outcome",
    "member_update",
    "optimistic_classic_acquire",
    "plan_classic_acquire",
    "read_acquire_reply",
    "release_command",
    "renew_command",
    "renew_expiry",
    "ttl_millis",
]

NOW = "$$NOW"


class FindAndModify(Value):
    """One ``findAndModify``: ``update`` is an update document or a pipeline (a list).

    ``return_new`` asks for the document after the update, else before it.
    """

    __slots__ = ("filter", "return_new", "update", "upsert")

    def __init__(
        self,
        *,
        filter: dict[str, Any],
        update: dict[str, Any] | list[dict[str, Any]],
        upsert: bool = False,
        return_new: bool = True,
    ) -> None:
        self.filter = filter
        self.update = update
        self.upsert = upsert
        self.return_new = return_new


def literal(value: object) -> dict[str, object]:
    """``value`` as a pipeline constant, never read as a field path or operator."""
    return {"$literal": value}


def ttl_millis(ttl: float) -> int:
    """``ttl`` seconds as whole milliseconds, rounded up (a lease never gets shorter)."""
    return max(1, math.ceil(ttl * 1000))


def _expiry(now: datetime, seconds: float) -> datetime:
    """``now + seconds`` rounded up to the next whole millisecond (BSON precision)."""
    exact = as_utc(now) + timedelta(0, seconds)
    extra = exact.microsecond % 1000
    return exact + MICROSECONDS[1000 - extra] if extra else exact


def is_held(document: Mapping[str, Any], cutoff: datetime) -> bool:
    """True if ``document`` is a live lease at ``cutoff``: locked, expiring after it.

    The classic twin of the pipeline's condition: a missing or non-date
    ``ts_expire`` counts as expired, and anything but ``locked: true`` as free.
    """
    expires = document.get(EXPIRES)
    return (
        document.get(LOCKED) is True and isinstance(expires, datetime) and as_utc(expires) > cutoff
    )


# --- pipeline path (MongoDB 4.2+) ---------------------------------------------------------

# The constant parts of the acquire pipeline.
_ID_PATH = "$" + ID
_LITERAL_TRUE = {"$literal": True}
_FREE = {"$or": [{"$ne": ["$" + LOCKED, True]}, {"$lte": ["$" + EXPIRES, NOW]}]}
_NEXT_TOKEN = {"$add": [{"$ifNull": ["$" + TOKEN, 0]}, 1]}
_TIME_TOKEN = {"$multiply": [{"$toLong": NOW}, 1000]}


def acquire_pipeline(
    request: LeaseRequest, *, acquire_id: str, force: bool, least_token: int
) -> FindAndModify:
    """The one-round-trip acquire: an upsert that takes the lease only if it is free.

    Free means no document, not ``locked: true``, or ``ts_expire <= $$NOW``.
    The reply is the document afterwards; see :func:`read_acquire_reply`.
    """
    # Built from the parts that never change (shared, never mutated: pymongo only encodes
    # them) and the few that do: the holder's fields of ClassicAcquire.fields, as literals.
    metadata = request.metadata
    taken: dict[str, object] = {
        ID: _ID_PATH,
        LOCKED: _LITERAL_TRUE,
        OWNER: {"$literal": request.owner},
        HOST: {"$literal": request.host},
        PID: {"$literal": request.pid},
        ACQUIRE_ID: {"$literal": acquire_id},
        METADATA: {"$literal": dict(metadata) if metadata else {}},
        CREATED: NOW,
        EXPIRES: {"$add": [NOW, ttl_millis(request.ttl)]},
        TOKEN: {"$max": [_NEXT_TOKEN, _TIME_TOKEN, {"$literal": least_token}]},
    }
    free = True if force else _FREE
    stage = {"$replaceWith": {"$cond": {"if": free, "then": taken, "else": "$$ROOT"}}}
    return FindAndModify(filter={ID: request.key}, update=[stage], upsert=True)


def read_acquire_reply(
    document: Mapping[str, Any] | None, request: LeaseRequest, acquire_id: str
) -> CasResult:
    """Whether the acquire whose id is ``acquire_id`` holds the lease in ``document``.

    A document carrying another id (or none) is someone else's holding, or a
    holding of ``request.owner`` from an earlier call: either way a refusal.
    """
    if document is None:
        return CasResult(acquired=False, record=None)
    record = record_from_document(document)
    mine = document.get(ACQUIRE_ID) == acquire_id and record.owner == request.owner
    return _new_result(mine, record)  # CasResult(acquired=mine, record=record)


_new_result = frozen_builder(CasResult)


# --- shared by both paths: now=None means "use the server's $$NOW" -------------------------


def _owner_filter(key: str, owner: str | None, token: int | None) -> dict[str, Any]:
    query: dict[str, Any] = {ID: key, LOCKED: True}
    if owner is not None:
        query[OWNER] = owner
    if token is not None:
        query[TOKEN] = token
    return query


def renew_command(
    key: str, owner: str, token: int, ttl: float, *, now: datetime | None, margin: float = 0.0
) -> FindAndModify:
    """Move the expiry of ``owner``'s holding ``token`` to ``ttl`` from now.

    With ``now`` (classic), the expiry is ``now + ttl + margin``; ``margin`` is
    the uncertainty of ``now``, so the lease never ends early by server time.
    """
    if now is None:
        update: dict[str, Any] | list[dict[str, Any]] = [
            {"$set": {EXPIRES: {"$add": [NOW, ttl_millis(ttl)]}}}
        ]
    else:
        update = {"$set": {EXPIRES: renew_expiry(now, ttl, margin)}}
    return FindAndModify(filter=_owner_filter(key, owner, token), update=update)


def renew_expiry(now: datetime, ttl: float, margin: float) -> datetime:
    """The expiry a classic renewal at estimated server time ``now`` writes, to the millisecond."""
    return _expiry(now, ttl + margin)


def holds(document: Mapping[str, Any], owner: str, token: int) -> bool:
    """True if ``document`` is ``owner``'s holding ``token`` (what a renewal's filter matches)."""
    return (
        document.get(LOCKED) is True
        and document.get(OWNER) == owner
        and document.get(TOKEN) == token
        and not isinstance(document.get(TOKEN), bool)
    )


def release_command(
    key: str,
    owner: str | None,
    token: int | None,
    *,
    force: bool,
    now: datetime | None,
    release_id: str,
) -> FindAndModify:
    """Mark the holding released and expired now; the reply is the document before.

    The document stays (with its token); bringing ``ts_expire`` forward lets a
    1.x TTL index remove it soon, so 1.x nodes, which acquire by insert, get
    their turn. In the pipeline it is kept at least 1 ms after ``ts_created``,
    so a TTL index never deletes a document in the millisecond its token was
    issued (see the token argument in ``docs/mongodb.md``). On the classic
    path the expiry is kept past the released token read as a time, for the
    same reason; a forced release (token unknown) leaves the expiry as it is.

    Every send of the release call ``release_id`` (unique per call) stamps it
    in ``released_by``; the pipeline also stores in ``released_live`` whether
    the holding was live (``ts_expire`` after ``$$NOW``) when the write applied.
    Those stamps tell a release whose reply was lost whether its own write
    ended the holding (:func:`lost_release_outcome`).
    """
    query = _owner_filter(key, None if force else owner, None if force else token)
    if now is None:
        expire = {
            "$max": [
                {"$min": ["$" + EXPIRES, NOW]},
                {"$add": ["$" + CREATED, 1]},
            ]
        }
        update: dict[str, Any] | list[dict[str, Any]] = [
            {
                "$set": {
                    LOCKED: False,
                    EXPIRES: expire,
                    RELEASED_BY: {"$literal": release_id},
                    RELEASED_LIVE: {"$gt": ["$" + EXPIRES, NOW]},
                }
            }
        ]
    elif force or token is None:
        # The token is unknown: leave the expiry where it is (see below).
        update = {"$set": {LOCKED: False, RELEASED_BY: release_id}}
    else:
        # Never bring the expiry below the token read as a time (µs since the epoch):
        # a TTL index then deletes the record only after the server passed that
        # time, so the next token, which starts from server time, is greater.
        update = {
            "$set": {LOCKED: False, RELEASED_BY: release_id},
            "$min": {EXPIRES: max(bson_time(now), _token_time(token))},
        }
    return FindAndModify(filter=query, update=update, return_new=False)


def _release_id(command: FindAndModify) -> object:
    """The ``release_id`` that :func:`release_command` put in ``command``."""
    update = command.update
    if isinstance(update, list):
        return update[0]["$set"][RELEASED_BY]["$literal"]
    return update["$set"][RELEASED_BY]


def lost_release_outcome(
    command: FindAndModify,
    document: Mapping[str, Any] | None,
    *,
    sent: datetime,
    now: datetime,
    held_until: datetime | None,
) -> bool | None:
    """Whether an earlier send of the release ``command`` ended a live holding, told from
    ``document``, the record read after a later send of it matched nothing; ``None`` when
    the record cannot tell.

    ``sent`` is the server time (to the millisecond) when the first send left,
    ``now`` the server time of the read. The record is the holding the command
    names (owner and token, when given) released, or another holding.

    Whose write released the named holding is told by ``released_by``: only a
    send of this command writes its release id there, and once released the
    holding matches no release again, so any other value (or none) means no
    send of this command applied: ``False``. When it is this command's write:

    * pipeline: ``released_live``, the server's own judgement in that write of
      whether the holding was live (``True`` or ``False``);
    * classic, by token: the expiry is exactly the command's own ``$min`` when
      the holding outlived the time in the command (any lower expiry is the
      holding's own, which had lapsed by then: ``False``); it was live when the
      write landed (before ``now``) only if ``held_until``, the holding's expiry
      as this backend last saw it and could vouch for (see
      :meth:`.SeenLeases.expiry_of`), is after ``now`` (``True``), else ``None``;
    * classic, forced or without a token: the expiry is the holding's own, left
      as it was: ``True`` if it is after ``now``, ``False`` if before ``sent``,
      else ``None``.

    Another holding acquired before ``sent`` means the named one had ended
    before: ``False``. ``None`` also when the record is gone, a later holding
    replaced the named one after ``sent``, or a release naming no token finds a
    holding acquired after ``sent`` (or one whose acquisition time is unknown),
    which a late send of this command may have released as well as the one it
    meant.
    """
    if document is None:
        return None
    query = command.filter
    record = record_from_document(document)
    named = all(document.get(field) == query[field] for field in (OWNER, TOKEN) if field in query)
    since = time_floor(sent) // 1000 * 1000  # ``sent`` to the millisecond, in µs
    acquired = record.acquired_at
    if not named or document.get(LOCKED) is True:
        # Another holding of the key: the named one ended before it was acquired.
        if acquired is not None and time_floor(acquired) < since:
            return False
        return None
    if TOKEN not in query and (acquired is None or time_floor(acquired) >= since):
        # A release naming no token: a holding acquired after it was sent (and released
        # since by someone else) matches it as well as the one it may have ended.
        return None
    if document.get(RELEASED_BY) != _release_id(command):
        return False  # another client's write released it: no send of this one matched
    update = command.update
    if isinstance(update, list):
        live = document.get(RELEASED_LIVE)
        return live if isinstance(live, bool) else None
    expires = record.expires_at
    if expires is None:
        return None
    written = update.get("$min", {}).get(EXPIRES)
    if isinstance(written, datetime):
        if bson_time(expires) != bson_time(written):
            return False  # the holding's own expiry, before the time in the command
        # Live when the command was made; when it landed (before ``now``), only if known so.
        return True if held_until is not None and held_until > now else None
    # Forced or without a token: the expiry is the holding's own, as it was.
    if expires > now:
        return True
    return False if time_floor(expires) < since else None


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _token_time(token: int) -> datetime:
    """The first whole millisecond after fencing token ``token`` read as µs since the epoch."""
    return _EPOCH + timedelta(milliseconds=token // 1000 + 1)


def member_update(member: MemberRecord, *, now: datetime | None) -> tuple[dict[str, Any], Any]:
    """The upsert (filter, update) that stores ``member``'s status stamped with server time."""
    fields = member_set_fields(member)
    if now is None:
        stamped: dict[str, object] = {name: literal(value) for name, value in fields.items()}
        stamped["timestamp"] = NOW
        return {ID: member.uuid}, [{"$set": stamped}]
    return {ID: member.uuid}, {"$set": {**fields, "timestamp": bson_time(now)}}


# --- classic path (no pipelines): read, then compare-and-set ------------------------------


@dataclass(frozen=True, slots=True)
class Refuse:
    """Someone holds the lease: report ``record``."""

    record: LeaseRecord


@dataclass(frozen=True, slots=True)
class Confirmed:
    """An earlier attempt of this same call took the lease: ``record`` is ours."""

    record: LeaseRecord


@dataclass(frozen=True, slots=True)
class Insert:
    """There is no document: insert ``document`` (a duplicate key means someone was faster)."""

    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Replace:
    """Overwrite the document with ``update`` if it still matches ``filter`` exactly."""

    filter: dict[str, Any]
    update: dict[str, Any] = field(default_factory=dict)


ClassicStep = Refuse | Confirmed | Insert | Replace

#: The fields an exact-match compare-and-set pins down: any write changes one of them.
_VERSION_FIELDS = (LOCKED, OWNER, EXPIRES, TOKEN, ACQUIRE_ID)


def _unchanged_filter(current: Mapping[str, Any]) -> dict[str, Any]:
    query: dict[str, Any] = {ID: current[ID]}
    for name in _VERSION_FIELDS:
        query[name] = current.get(name, {"$exists": False})
    return query


class ClassicAcquire(Value):
    """One classic acquire call: ``request`` at estimated server time ``now``.

    ``now`` may be off by ``uncertainty`` seconds either way: a lease counts
    as expired only once it is expired even at the earliest time ``now`` may
    stand for, and the expiry written is pushed out by the same margin.
    ``acquire_id`` marks this call's own write; the token is at least
    ``least_token``.
    """

    __slots__ = ("acquire_id", "force", "least_token", "now", "request", "uncertainty")

    def __init__(
        self,
        *,
        request: LeaseRequest,
        acquire_id: str,
        force: bool,
        now: datetime,
        uncertainty: float,
        least_token: int,
    ) -> None:
        self.request = request
        self.acquire_id = acquire_id
        self.force = force
        self.now = now
        self.uncertainty = uncertainty
        self.least_token = least_token

    @property
    def cutoff(self) -> datetime:
        """The earliest server time ``now`` may stand for: leases ending by then are over."""
        now = as_utc(self.now)
        uncertainty = self.uncertainty
        return now - timedelta(0, uncertainty) if uncertainty else now

    @property
    def time_floor(self) -> int:
        """The least token this acquisition may get: the *latest* time ``now`` may stand for.

        So a token is never below the true server time at which it was issued,
        and (as a release keeps ``ts_expire`` past the token, see
        :func:`release_command`) a record deleted after its expiry is followed
        by a greater token, whichever client's estimate erred which way.
        """
        now = as_utc(self.now)
        uncertainty = self.uncertainty
        return time_floor(now + timedelta(0, uncertainty) if uncertainty else now)

    def fields(self, token: int) -> dict[str, Any]:
        """The fields this acquisition writes, with fencing token ``token``."""
        now = self.now
        request = self.request
        metadata = request.metadata
        return {  # the holder, then the times and the token (the pipeline's order)
            LOCKED: True,
            OWNER: request.owner,
            HOST: request.host,
            PID: request.pid,
            ACQUIRE_ID: self.acquire_id,
            METADATA: dict(metadata) if metadata else {},
            CREATED: bson_time(now),
            EXPIRES: _expiry(now, request.ttl + self.uncertainty),
            TOKEN: token,
        }


def plan_classic_acquire(current: Mapping[str, Any] | None, call: ClassicAcquire) -> ClassicStep:
    """Decide ``call`` from the document as just read (``None``: there is none)."""
    previous = 0
    if current is not None:
        record = record_from_document(current)
        if current.get(ACQUIRE_ID) == call.acquire_id and record.owner == call.request.owner:
            return Confirmed(record)
        if not call.force and is_held(current, call.cutoff):
            return Refuse(record)
        previous = record.token
    fields = call.fields(max(previous + 1, call.time_floor, call.least_token))
    if current is None:
        return Insert({ID: call.request.key, **fields})
    return Replace(_unchanged_filter(current), {"$set": fields})


def optimistic_classic_acquire(call: ClassicAcquire) -> FindAndModify:
    """The one-round-trip classic acquire, for when the lease is probably free.

    An upsert that takes the lease with token ``max(time floor, least_token)``
    only where :func:`plan_classic_acquire`, reading the document at that
    instant, would write exactly that: the lease is free at the earliest time
    ``now`` may stand for (or ``force``), and the stored token (none: 0) is
    below the new one. Then the reply (the document afterwards) reads as
    acquired with :func:`read_acquire_reply`. On any other document the
    upsert fails with a duplicate key, having changed nothing, and the caller
    falls back to reading and :func:`plan_classic_acquire` (the lease is
    held, or the time floor did not raise the token, or a field has a type
    the filter does not judge).
    """
    token = max(call.time_floor, call.least_token)
    below: dict[str, Any] = {"$or": [{TOKEN: {"$lt": token}}, {TOKEN: {"$exists": False}}]}
    conditions: list[dict[str, Any]] = [below]
    if not call.force:
        # The negation of is_held(document, cutoff), clause by clause. The cutoff is
        # cut to whole milliseconds, as stored times are: the same comparison, never later.
        free = [
            {LOCKED: {"$ne": True}},
            {EXPIRES: {"$not": {"$type": "date"}}},
            {EXPIRES: {"$lte": bson_time(call.cutoff)}},
        ]
        conditions.append({"$or": free})
    return FindAndModify(
        filter={ID: call.request.key, "$and": conditions},
        update={"$set": call.fields(token)},
        upsert=True,
    )
