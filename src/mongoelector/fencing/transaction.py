"""Fenced transactions: the caller's writes commit only while the lock is still theirs.

``with lock.fenced_transaction(client) as session:`` runs the block's writes
(made with ``session=session``) in one multi-document transaction on a
replica set or sharded cluster. When the block ends normally, one more write
goes into the same transaction, to the lock record itself::

    update {_id: key, locked: true, uuid: <this holder>, token: <its token>,
            $expr: {$gt: ["$ts_expire", "$$NOW"]}}
    with   {$inc: {fenced_commits: 1}}

and only if it matched is ``commitTransaction`` sent. The filter checks that
the record still belongs to this acquisition and has not expired by the
server's clock; the write takes the record's write lock inside the
transaction, so a takeover cannot slip in between the check and the commit
(it conflicts: whichever of the two writes the record second fails or waits
for the first to finish). ``$inc`` is used because it always changes the
document: a write that left it unchanged would not conflict with anything.

Outcomes (the transaction is never retried: the block ran once):

* the check matched nothing, or met a write conflict on the record → the
  transaction is aborted and :class:`~mongoelector.errors.LockLost` raised;
  nothing of the block is visible.
* ``commitTransaction`` failed with a write conflict → ``LockLost``; with
  the ``UnknownTransactionCommitResult`` label (the reply was lost, a write
  concern error) → :class:`~mongoelector.errors.AmbiguousOutcome`: the writes
  may have committed; any other failure of the check or the
  commit → :class:`~mongoelector.errors.BackendUnavailable` (not committed).
* the block raised → the transaction is aborted and the exception goes on.

A failed check, or a write conflict, does not by itself prove that the
holding is lost: the check reads the record as of the transaction's
snapshot, which may predate the holder's latest renewal (a long block, a
short ttl: the snapshot's ``ts_expire`` has passed though the lease was
renewed since), and a write conflict is also what the holder's own renewal
causes. So after those three (and only those) the lock record is read once
more, outside the transaction, from the primary with majority read concern:
if it is no longer this acquisition's (missing, not ``locked``, another
``uuid`` or ``token``: what a renew would refuse), the holding is lost for
sure, and the holder records it exactly as on a refused renewal (a ``Lock``
sets ``lost``, tells its listeners and ``on_lost`` once, stops its renewer;
an elector steps down, ``on_leader_loss``) before ``LockLost`` is raised. If
the record is still this acquisition's (even expired by the server's clock:
a renew would extend it), or the read fails, nothing is recorded: the
holding stays as trusted as it was, and the renewer's next renew decides.
An unknown commit outcome or any other failure reads nothing and records
nothing: the store may be unreachable, and nothing was learnt about the lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from pymongo import AsyncMongoClient, MongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.collection import Collection
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import ReadPreference
from pymongo.synchronous.client_session import ClientSession
from pymongo.write_concern import WriteConcern

from mongoelector.errors import AmbiguousOutcome, BackendUnavailable, LockLost

__all__ = [
    "FENCE_FIELD",
    "async_fenced_transaction",
    "fence_filter",
    "fence_update",
    "fenced_transaction",
]

#: The lock record's field the check increments (1.x and the lease ignore it).
FENCE_FIELD = "fenced_commits"
WRITE_CONFLICT = 112
UNKNOWN_COMMIT_RESULT = "UnknownTransactionCommitResult"


def fence_filter(key: str, owner: str, token: int) -> dict[str, Any]:
    """The check's filter: the record of this acquisition, unexpired by the server's clock."""
    return {
        "_id": key,
        "locked": True,
        "uuid": owner,
        "token": token,
        "$expr": {"$gt": ["$ts_expire", "$$NOW"]},
    }


def fence_update() -> dict[str, Any]:
    """The check's update: a change to a field that neither 1.x nor the lease reads."""
    return {"$inc": {FENCE_FIELD: 1}}


def _transaction_options() -> dict[str, Any]:
    return {
        "read_concern": ReadConcern("snapshot"),
        "write_concern": WriteConcern(w="majority"),
        "read_preference": ReadPreference.PRIMARY,
    }


def _describe(holder: Any) -> str:
    return f"{type(holder).__name__} {holder.key!r}"


def _current_token(holder: Any) -> int:
    """The token the transaction is fenced by: ``LockLost`` if the holder does not trust it."""
    ensure: Callable[[], int] | None = getattr(holder, "ensure", None)
    if ensure is not None:
        return ensure()
    token: int | None = holder.token
    if token is None:
        raise LockLost(f"{_describe(holder)} does not lead: no term to fence a transaction by")
    return token


def _lease_collection(holder: Any, client: Any, *, asynchronous: bool) -> Any:
    """The holder's lease collection, seen through ``client`` (sessions belong to a client)."""
    from mongoelector.backends import AsyncMongoBackend, MongoBackend  # noqa: PLC0415

    backend = holder.backend
    wanted: type[Any] = AsyncMongoBackend if asynchronous else MongoBackend
    if not isinstance(backend, wanted):
        raise TypeError(
            f"fenced_transaction needs a {wanted.__name__}; {_describe(holder)} uses {backend!r}"
        )
    client_type: type[Any] = AsyncMongoClient if asynchronous else MongoClient
    if not isinstance(client, client_type):
        raise TypeError(
            f"fenced_transaction of {_describe(holder)} needs a pymongo {client_type.__name__}, "
            f"got {client!r}"
        )
    return client.get_database(backend.database.name).get_collection(backend.collection.name)


def _lost(holder: Any, token: int, why: str, proven: bool) -> LockLost:
    after = (
        "; the lock record, read after, is no longer this acquisition's: the holding is lost"
        if proven
        else ""
    )
    return LockLost(
        f"{_describe(holder)}: transaction not committed (aborted): {why} (token {token}){after}"
    )


def _is_write_conflict(error: PyMongoError) -> bool:
    return isinstance(error, OperationFailure) and error.code == WRITE_CONFLICT


def _conflicted(error: PyMongoError) -> bool:
    """A commit that failed with a write conflict, and surely did not commit."""
    return _is_write_conflict(error) and not error.has_error_label(UNKNOWN_COMMIT_RESULT)


def _check_failed(holder: Any, token: int, error: PyMongoError, proven: bool) -> Exception:
    if _is_write_conflict(error):
        return _lost(holder, token, "the lock record was written concurrently", proven)
    return BackendUnavailable(
        f"{_describe(holder)}: the lock check of the transaction failed; "
        f"transaction not committed (aborted): {error}",
        original=error,
    )


def _commit_failed(holder: Any, token: int, error: PyMongoError, proven: bool) -> Exception:
    if error.has_error_label(UNKNOWN_COMMIT_RESULT):
        return AmbiguousOutcome(
            f"{_describe(holder)}: the outcome of commitTransaction is unknown; "
            f"the transaction may have committed: {error}",
            original=error,
        )
    if _is_write_conflict(error):
        return _lost(holder, token, "commitTransaction met a write conflict", proven)
    return BackendUnavailable(
        f"{_describe(holder)}: commitTransaction failed; not committed: {error}", original=error
    )


def _not_matched(holder: Any, token: int, proven: bool) -> LockLost:
    return _lost(
        holder,
        token,
        "the lock record no longer belongs to this acquisition or has expired by the "
        "server's clock",
        proven,
    )


def _lease_reader(leases: Any) -> Any:
    """``leases`` read from the primary, majority-committed: a lagging secondary (or a write
    a failover may roll back) could show a record older than this acquisition as not ours."""
    return leases.with_options(
        read_preference=ReadPreference.PRIMARY, read_concern=ReadConcern("majority")
    )


def _not_ours(document: Mapping[str, Any] | None, holder: Any, token: int) -> bool:
    """True if a renew of ``token`` would be refused by ``document`` (the record read)."""
    from mongoelector.backends._mongo.commands import holds  # noqa: PLC0415

    return document is None or not holds(document, holder.uuid, token)


def _ended_by_block(holder: Any) -> RuntimeError:
    return RuntimeError(
        f"{_describe(holder)}: the block ended the fenced transaction itself "
        f"(commit_transaction/abort_transaction); leave that to fenced_transaction"
    )


def _confirm_loss(holder: Any, leases: Collection[Any], token: int) -> bool:
    """After a failed check or a write conflict: ``True`` if the lock record proves the holding
    is lost, which ``holder`` then records as on a refused renew; see the module docstring."""
    started_at = holder.clock.monotonic()
    try:
        document = _lease_reader(leases).find_one({"_id": holder.key})
    except PyMongoError:
        return False  # not proven; the renewer finds out at its next renew
    if not _not_ours(document, holder, token):
        return False
    holder._transaction_refused(token, started_at)
    return True


async def _async_confirm_loss(holder: Any, leases: AsyncCollection[Any], token: int) -> bool:
    """The asyncio twin of :func:`_confirm_loss`."""
    started_at = holder.clock.monotonic()
    try:
        document = await _lease_reader(leases).find_one({"_id": holder.key})
    except PyMongoError:
        return False  # not proven; the renewer finds out at its next renew
    if not _not_ours(document, holder, token):
        return False
    await holder._transaction_refused(token, started_at)
    return True


@contextmanager
def fenced_transaction(holder: Any, client: MongoClient[Any]) -> Iterator[ClientSession]:
    """The sync fenced transaction of ``holder`` (a ``Lock`` or ``LeaderElector``); see module."""
    leases = _lease_collection(holder, client, asynchronous=False)
    token = _current_token(holder)
    with client.start_session() as session:
        session.start_transaction(**_transaction_options())
        try:
            yield session
        except BaseException:
            if session.in_transaction:
                session.abort_transaction()
            raise
        if not session.in_transaction:
            raise _ended_by_block(holder)
        filter_: Mapping[str, Any] = fence_filter(holder.key, holder.uuid, token)
        try:
            result = leases.update_one(filter_, fence_update(), session=session)
        except PyMongoError as error:
            session.abort_transaction()
            proven = _is_write_conflict(error) and _confirm_loss(holder, leases, token)
            raise _check_failed(holder, token, error, proven) from error
        if result.matched_count == 0:
            session.abort_transaction()
            raise _not_matched(holder, token, _confirm_loss(holder, leases, token))
        try:
            session.commit_transaction()
        except PyMongoError as error:
            proven = _conflicted(error) and _confirm_loss(holder, leases, token)
            raise _commit_failed(holder, token, error, proven) from error


@asynccontextmanager
async def async_fenced_transaction(
    holder: Any, client: AsyncMongoClient[Any]
) -> AsyncIterator[AsyncClientSession]:
    """The asyncio twin of :func:`fenced_transaction` (``AsyncLock``, ``AsyncLeaderElector``)."""
    leases = _lease_collection(holder, client, asynchronous=True)
    token = _current_token(holder)
    async with client.start_session() as session:
        await session.start_transaction(**_transaction_options())
        try:
            yield session
        except BaseException:
            if session.in_transaction:
                await session.abort_transaction()
            raise
        if not session.in_transaction:
            raise _ended_by_block(holder)
        filter_: Mapping[str, Any] = fence_filter(holder.key, holder.uuid, token)
        try:
            result = await leases.update_one(filter_, fence_update(), session=session)
        except PyMongoError as error:
            await session.abort_transaction()
            proven = _is_write_conflict(error) and await _async_confirm_loss(holder, leases, token)
            raise _check_failed(holder, token, error, proven) from error
        if result.matched_count == 0:
            await session.abort_transaction()
            raise _not_matched(holder, token, await _async_confirm_loss(holder, leases, token))
        try:
            await session.commit_transaction()
        except PyMongoError as error:
            proven = _conflicted(error) and await _async_confirm_loss(holder, leases, token)
            raise _commit_failed(holder, token, error, proven) from error
