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
  may or may not have committed; any other failure of the check or the
  commit → :class:`~mongoelector.errors.BackendUnavailable` (not committed).
* the block raised → the transaction is aborted and the exception goes on.

A write conflict also happens when this lock's own renewal writes the record
during the transaction; that too aborts it with ``LockLost``, although the
lock may still be held (``lock.ensure()`` tells).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from pymongo import AsyncMongoClient, MongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
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


def _lost(holder: Any, token: int, why: str) -> LockLost:
    return LockLost(
        f"{_describe(holder)}: transaction not committed (aborted): {why} (token {token})"
    )


def _is_write_conflict(error: PyMongoError) -> bool:
    return isinstance(error, OperationFailure) and error.code == WRITE_CONFLICT


def _check_failed(holder: Any, token: int, error: PyMongoError) -> Exception:
    if _is_write_conflict(error):
        return _lost(holder, token, "the lock record was written concurrently")
    return BackendUnavailable(
        f"{_describe(holder)}: the lock check of the transaction failed; "
        f"transaction not committed (aborted): {error}",
        original=error,
    )


def _commit_failed(holder: Any, token: int, error: PyMongoError) -> Exception:
    if error.has_error_label(UNKNOWN_COMMIT_RESULT):
        return AmbiguousOutcome(
            f"{_describe(holder)}: the outcome of commitTransaction is unknown; "
            f"the transaction may have committed: {error}",
            original=error,
        )
    if _is_write_conflict(error):
        return _lost(holder, token, "commitTransaction met a write conflict")
    return BackendUnavailable(
        f"{_describe(holder)}: commitTransaction failed; not committed: {error}", original=error
    )


def _not_matched(holder: Any, token: int) -> LockLost:
    return _lost(
        holder,
        token,
        "the lock record no longer belongs to this acquisition or has expired by the "
        "server's clock",
    )


def _ended_by_block(holder: Any) -> RuntimeError:
    return RuntimeError(
        f"{_describe(holder)}: the block ended the fenced transaction itself "
        f"(commit_transaction/abort_transaction); leave that to fenced_transaction"
    )


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
            raise _check_failed(holder, token, error) from error
        if result.matched_count == 0:
            session.abort_transaction()
            raise _not_matched(holder, token)
        try:
            session.commit_transaction()
        except PyMongoError as error:
            raise _commit_failed(holder, token, error) from error


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
            raise _check_failed(holder, token, error) from error
        if result.matched_count == 0:
            await session.abort_transaction()
            raise _not_matched(holder, token)
        try:
            await session.commit_transaction()
        except PyMongoError as error:
            raise _commit_failed(holder, token, error) from error
