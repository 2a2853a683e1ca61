"""``FencedCollection`` and ``AsyncFencedCollection``: pymongo's write methods, fenced.

Each write takes the token when it is called (the token source raises
``LockLost`` when the holding is no longer trusted, before anything is sent),
and is sent as one command whose filter admits only documents whose fencing
field is missing or not greater than the token, and which stamps the token
into every document it writes.

What the wrappers read besides that one command, and only in these cases:

- a single-document write that changed nothing (and an upsert refused with a
  duplicate ``_id``, in a ``bulk_write`` too) reads the newest matching
  document once, to tell "no such document" from "a newer token wrote it"
  (then :class:`StaleToken`);
- ``update_many``, ``delete_many`` and ``bulk_write`` count the documents the
  filters matched but left alone as newer (``skipped``), with one
  ``count_documents`` per filter after the write. The count is exact unless
  another writer changes those documents in between.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from typing import Any, Generic, TypeVar, cast

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from pymongo.results import DeleteResult, InsertManyResult, InsertOneResult, UpdateResult

from mongoelector.errors import StaleToken
from mongoelector.fencing._plan import (
    Fence,
    FencedBulkWriteResult,
    FencedDeleteResult,
    FencedUpdateResult,
    Request,
)

__all__ = ["AsyncFencedCollection", "FencedCollection"]

DocT = TypeVar("DocT", bound=Mapping[str, Any])

Filter = Mapping[str, Any]
Update = Mapping[str, Any] | Sequence[Mapping[str, Any]]


def _acknowledged_noop(result: UpdateResult) -> bool:
    return result.acknowledged and result.matched_count == 0 and result.upserted_id is None


def _after_write_error(session: Any) -> Any:
    """The session to read in after a write error: none inside a transaction.

    The server aborts a transaction on a write error (a duplicate key too), so
    a read in it would fail with ``NoSuchTransaction``, an error labelled
    ``TransientTransactionError`` that would make ``with_transaction`` run the
    whole callback again. The newer document that refused the write is
    committed, so a read outside the transaction finds it.
    """
    return None if getattr(session, "in_transaction", False) else session


def _copy_back_id(document: Any, inserted_id: Any) -> None:
    """Give ``document`` the ``_id`` pymongo gave the stamped copy, as pymongo itself does."""
    if isinstance(document, MutableMapping) and "_id" not in document:
        document["_id"] = inserted_id


class FencedCollection(Generic[DocT]):
    """A pymongo ``Collection`` whose writes are fenced by a lock's or a term's token.

    Made by ``Lock.fenced(collection)`` or ``LeaderElector.fenced(collection)``.
    ``token`` returns the current token or raises ``LockLost``; ``key`` names
    the lock in :class:`~mongoelector.StaleToken`. Reads (``find``,
    ``find_one``, ``count_documents``, ``distinct``, ``aggregate``) pass
    through; ``collection`` is the unfenced collection.
    """

    def __init__(
        self,
        collection: Collection[DocT],
        token: Callable[[], int],
        *,
        key: str,
        field: str = "_fence",
    ) -> None:
        self._collection = collection
        self._fence = Fence(key, token, field)

    @property
    def collection(self) -> Collection[DocT]:
        """The wrapped collection (its writes are not fenced)."""
        return self._collection

    @property
    def field(self) -> str:
        return self._fence.field

    @property
    def key(self) -> str:
        return self._fence.key

    def __repr__(self) -> str:
        return f"FencedCollection(key={self.key!r}, field={self.field!r})"

    # --- reads ------------------------------------------------------------------

    def find(self, *args: Any, **kwargs: Any) -> Any:
        return self._collection.find(*args, **kwargs)

    def find_one(self, *args: Any, **kwargs: Any) -> DocT | None:
        return self._collection.find_one(*args, **kwargs)

    def count_documents(self, filter: Filter, **kwargs: Any) -> int:
        return self._collection.count_documents(filter, **kwargs)

    def distinct(self, key: str, *args: Any, **kwargs: Any) -> list[Any]:
        return self._collection.distinct(key, *args, **kwargs)

    def aggregate(self, pipeline: Sequence[Mapping[str, Any]], **kwargs: Any) -> Any:
        return self._collection.aggregate(pipeline, **kwargs)

    # --- what the writes read -----------------------------------------------------

    def _newest(self, newer: Filter, session: Any) -> DocT | None:
        """The document ``newer`` matches with the newest token (its ``_id`` and field only)."""
        return self._collection.find_one(
            newer, projection={self.field: True}, sort=[(self.field, -1)], session=session
        )

    def _raise_if_stale(self, filter: Filter, token: int, session: Any) -> None:
        newer = self._newest(self._fence.newer(filter, token), session)
        if newer is not None:
            raise self._fence.stale(newer, token)

    def _raise_if_refused_as_stale(self, filter: Filter, token: int, session: Any) -> None:
        """After a duplicate key: ``StaleToken`` if a newer document explains it.

        Returns (the caller re-raises the duplicate key) if none does, or if
        the read fails: the write was refused, and saying so beats a read's
        error. Inside a transaction the read goes outside it (see
        :func:`_after_write_error`).
        """
        try:
            newer = self._newest(self._fence.newer(filter, token), _after_write_error(session))
        except PyMongoError:
            return
        if newer is not None:
            raise self._fence.stale(newer, token)

    def _stale_upsert(
        self,
        error: BulkWriteError,
        planned: Sequence[tuple[Request, dict[str, Any] | None]],
        requests: Sequence[Request],
        token: int,
        session: Any,
    ) -> StaleToken | None:
        """``StaleToken`` if ``error`` is only upserts refused as stale, each read and confirmed."""
        stale: StaleToken | None = None
        for index in self._fence.refused_upserts(error.details, requests):
            newer_filter = planned[index][1]
            if newer_filter is None:
                return None
            try:
                newer = self._newest(newer_filter, _after_write_error(session))
            except PyMongoError:
                return None  # not proven; the bulk's own error says what is known
            if newer is None:
                return None  # not proven: the duplicate key may have another cause
            if stale is None:
                stale = self._fence.stale(newer, token, error.details)
        return stale

    def _skipped(self, filter: Filter, token: int, session: Any) -> int:
        return self._collection.count_documents(self._fence.newer(filter, token), session=session)

    # --- writes -------------------------------------------------------------------

    def insert_one(self, document: DocT, **kwargs: Any) -> InsertOneResult:
        token = self._fence.token()
        stamped = self._fence.document(document, token)
        try:
            result = self._collection.insert_one(cast(DocT, stamped), **kwargs)
        except DuplicateKeyError:
            if "_id" in stamped:
                self._raise_if_refused_as_stale(
                    {"_id": stamped["_id"]}, token, kwargs.get("session")
                )
            raise
        _copy_back_id(document, result.inserted_id)
        return result

    def insert_many(self, documents: Iterable[DocT], **kwargs: Any) -> InsertManyResult:
        token = self._fence.token()
        originals = list(documents)
        stamped = [cast(DocT, self._fence.document(d, token)) for d in originals]
        result = self._collection.insert_many(stamped, **kwargs)
        for original, inserted_id in zip(originals, result.inserted_ids, strict=False):
            _copy_back_id(original, inserted_id)
        return result

    def update_one(
        self, filter: Filter, update: Update, upsert: bool = False, **kwargs: Any
    ) -> UpdateResult:
        self._fence.check_upsert(filter, upsert)
        token = self._fence.token()
        session = kwargs.get("session")
        try:
            result = self._collection.update_one(
                self._fence.filter(filter, token),
                self._fence.update(update, token),
                upsert=upsert,
                **kwargs,
            )
        except DuplicateKeyError:
            self._raise_if_refused_as_stale(filter, token, session)
            raise
        if _acknowledged_noop(result):
            self._raise_if_stale(filter, token, session)
        return result

    def replace_one(
        self, filter: Filter, replacement: DocT, upsert: bool = False, **kwargs: Any
    ) -> UpdateResult:
        self._fence.check_upsert(filter, upsert)
        token = self._fence.token()
        session = kwargs.get("session")
        try:
            result = self._collection.replace_one(
                self._fence.filter(filter, token),
                cast(DocT, self._fence.document(replacement, token)),
                upsert=upsert,
                **kwargs,
            )
        except DuplicateKeyError:
            self._raise_if_refused_as_stale(filter, token, session)
            raise
        if _acknowledged_noop(result):
            self._raise_if_stale(filter, token, session)
        return result

    def update_many(
        self, filter: Filter, update: Update, upsert: bool = False, **kwargs: Any
    ) -> FencedUpdateResult:
        self._fence.check_upsert(filter, upsert)
        token = self._fence.token()
        session = kwargs.get("session")
        try:
            result = self._collection.update_many(
                self._fence.filter(filter, token),
                self._fence.update(update, token),
                upsert=upsert,
                **kwargs,
            )
        except DuplicateKeyError:
            self._raise_if_refused_as_stale(filter, token, session)
            raise
        return FencedUpdateResult(result, self._skipped(filter, token, session))

    def delete_one(self, filter: Filter, **kwargs: Any) -> DeleteResult:
        token = self._fence.token()
        result = self._collection.delete_one(self._fence.filter(filter, token), **kwargs)
        if result.acknowledged and result.deleted_count == 0:
            self._raise_if_stale(filter, token, kwargs.get("session"))
        return result

    def delete_many(self, filter: Filter, **kwargs: Any) -> FencedDeleteResult:
        token = self._fence.token()
        result = self._collection.delete_many(self._fence.filter(filter, token), **kwargs)
        skipped = self._skipped(filter, token, kwargs.get("session"))
        return FencedDeleteResult(result, skipped)

    def find_one_and_update(
        self,
        filter: Filter,
        update: Update,
        projection: Any = None,
        sort: Any = None,
        upsert: bool = False,
        return_document: bool = ReturnDocument.BEFORE,
        **kwargs: Any,
    ) -> DocT | None:
        self._fence.check_upsert(filter, upsert)
        token = self._fence.token()
        session = kwargs.get("session")
        try:
            found = self._collection.find_one_and_update(
                self._fence.filter(filter, token),
                self._fence.update(update, token),
                projection,
                sort,
                upsert,
                return_document,
                **kwargs,
            )
        except DuplicateKeyError:
            self._raise_if_refused_as_stale(filter, token, session)
            raise
        if found is None:
            self._raise_if_stale(filter, token, session)
        return found

    def find_one_and_replace(
        self,
        filter: Filter,
        replacement: DocT,
        projection: Any = None,
        sort: Any = None,
        upsert: bool = False,
        return_document: bool = ReturnDocument.BEFORE,
        **kwargs: Any,
    ) -> DocT | None:
        self._fence.check_upsert(filter, upsert)
        token = self._fence.token()
        session = kwargs.get("session")
        try:
            found = self._collection.find_one_and_replace(
                self._fence.filter(filter, token),
                cast(DocT, self._fence.document(replacement, token)),
                projection,
                sort,
                upsert,
                return_document,
                **kwargs,
            )
        except DuplicateKeyError:
            self._raise_if_refused_as_stale(filter, token, session)
            raise
        if found is None:
            self._raise_if_stale(filter, token, session)
        return found

    def find_one_and_delete(
        self, filter: Filter, projection: Any = None, sort: Any = None, **kwargs: Any
    ) -> DocT | None:
        token = self._fence.token()
        found = self._collection.find_one_and_delete(
            self._fence.filter(filter, token), projection, sort, **kwargs
        )
        if found is None:
            self._raise_if_stale(filter, token, kwargs.get("session"))
        return found

    def bulk_write(self, requests: Sequence[Request], **kwargs: Any) -> FencedBulkWriteResult:
        """Fences each request, sends them as pymongo's one ``bulk_write``, then counts skips.

        A bulk is a batch: a request that meets a document carrying a newer
        token is skipped (its fenced filter matches nothing, so it changes
        nothing) and is counted in ``skipped``, one ``count_documents`` per
        request filter after the write. ``skipped`` says how many, not which:
        to learn which, use the single-document methods.

        An upsert must match ``_id`` by equality (``ValueError`` before
        anything is sent otherwise). One that meets a newer document is
        refused by the server with a duplicate key (it tried to insert next
        to the document its fenced filter did not match); the wrapper reads
        that ``_id`` (with the request's filter) and, if it carries a newer
        token, raises ``StaleToken`` for it, from pymongo's ``BulkWriteError``:
        the refused upsert changed nothing, but other requests may have been
        applied (with ``ordered=True`` those before it, the later ones not
        sent; with ``ordered=False`` all the others), as ``StaleToken.details``
        (the ``BulkWriteError``'s ``details``) tells; ``skipped`` is not
        counted then. With several refused upserts, ``StaleToken`` names the
        first. Any other write error, a write concern error, or a duplicate
        key that no newer document explains stays pymongo's ``BulkWriteError``.
        """
        token = self._fence.token()
        originals = list(requests)
        planned = [self._fence.request(request, token) for request in originals]
        session = kwargs.get("session")
        try:
            result = self._collection.bulk_write([fenced for fenced, _ in planned], **kwargs)
        except BulkWriteError as error:
            stale = self._stale_upsert(error, planned, originals, token, session)
            if stale is not None:
                raise stale from error
            raise
        skipped = 0
        for _, newer in planned:
            if newer is not None:
                skipped += self._collection.count_documents(newer, session=session)
        return FencedBulkWriteResult(result, skipped)


class AsyncFencedCollection(Generic[DocT]):
    """:class:`FencedCollection` over a pymongo ``AsyncCollection``: the same rules, awaited.

    Made by ``AsyncLock.fenced(collection)`` or
    ``AsyncLeaderElector.fenced(collection)``.
    """

    def __init__(
        self,
        collection: AsyncCollection[DocT],
        token: Callable[[], int],
        *,
        key: str,
        field: str = "_fence",
    ) -> None:
        self._collection = collection
        self._fence = Fence(key, token, field)

    @property
    def collection(self) -> AsyncCollection[DocT]:
        """The wrapped collection (its writes are not fenced)."""
        return self._collection

    @property
    def field(self) -> str:
        return self._fence.field

    @property
    def key(self) -> str:
        return self._fence.key

    def __repr__(self) -> str:
        return f"AsyncFencedCollection(key={self.key!r}, field={self.field!r})"

    # --- reads ------------------------------------------------------------------

    def find(self, *args: Any, **kwargs: Any) -> Any:
        return self._collection.find(*args, **kwargs)

    async def find_one(self, *args: Any, **kwargs: Any) -> DocT | None:
        return await self._collection.find_one(*args, **kwargs)

    async def count_documents(self, filter: Filter, **kwargs: Any) -> int:
        return await self._collection.count_documents(filter, **kwargs)

    async def distinct(self, key: str, *args: Any, **kwargs: Any) -> list[Any]:
        return await self._collection.distinct(key, *args, **kwargs)

    async def aggregate(self, pipeline: Sequence[Mapping[str, Any]], **kwargs: Any) -> Any:
        return await self._collection.aggregate(pipeline, **kwargs)

    # --- what the writes read -----------------------------------------------------

    async def _newest(self, newer: Filter, session: Any) -> DocT | None:
        """The document ``newer`` matches with the newest token (its ``_id`` and field only)."""
        return await self._collection.find_one(
            newer, projection={self.field: True}, sort=[(self.field, -1)], session=session
        )

    async def _raise_if_stale(self, filter: Filter, token: int, session: Any) -> None:
        newer = await self._newest(self._fence.newer(filter, token), session)
        if newer is not None:
            raise self._fence.stale(newer, token)

    async def _raise_if_refused_as_stale(self, filter: Filter, token: int, session: Any) -> None:
        """After a duplicate key: ``StaleToken`` if a newer document explains it.

        Returns (the caller re-raises the duplicate key) if none does, or if
        the read fails: the write was refused, and saying so beats a read's
        error. Inside a transaction the read goes outside it (see
        :func:`_after_write_error`).
        """
        try:
            newer = await self._newest(
                self._fence.newer(filter, token), _after_write_error(session)
            )
        except PyMongoError:
            return
        if newer is not None:
            raise self._fence.stale(newer, token)

    async def _stale_upsert(
        self,
        error: BulkWriteError,
        planned: Sequence[tuple[Request, dict[str, Any] | None]],
        requests: Sequence[Request],
        token: int,
        session: Any,
    ) -> StaleToken | None:
        """``StaleToken`` if ``error`` is only upserts refused as stale, each read and confirmed."""
        stale: StaleToken | None = None
        for index in self._fence.refused_upserts(error.details, requests):
            newer_filter = planned[index][1]
            if newer_filter is None:
                return None
            try:
                newer = await self._newest(newer_filter, _after_write_error(session))
            except PyMongoError:
                return None  # not proven; the bulk's own error says what is known
            if newer is None:
                return None  # not proven: the duplicate key may have another cause
            if stale is None:
                stale = self._fence.stale(newer, token, error.details)
        return stale

    async def _skipped(self, filter: Filter, token: int, session: Any) -> int:
        return await self._collection.count_documents(
            self._fence.newer(filter, token), session=session
        )

    # --- writes -------------------------------------------------------------------

    async def insert_one(self, document: DocT, **kwargs: Any) -> InsertOneResult:
        token = self._fence.token()
        stamped = self._fence.document(document, token)
        try:
            result = await self._collection.insert_one(cast(DocT, stamped), **kwargs)
        except DuplicateKeyError:
            if "_id" in stamped:
                await self._raise_if_refused_as_stale(
                    {"_id": stamped["_id"]}, token, kwargs.get("session")
                )
            raise
        _copy_back_id(document, result.inserted_id)
        return result

    async def insert_many(self, documents: Iterable[DocT], **kwargs: Any) -> InsertManyResult:
        token = self._fence.token()
        originals = list(documents)
        stamped = [cast(DocT, self._fence.document(d, token)) for d in originals]
        result = await self._collection.insert_many(stamped, **kwargs)
        for original, inserted_id in zip(originals, result.inserted_ids, strict=False):
            _copy_back_id(original, inserted_id)
        return result

    async def update_one(
        self, filter: Filter, update: Update, upsert: bool = False, **kwargs: Any
    ) -> UpdateResult:
        self._fence.check_upsert(filter, upsert)
        token = self._fence.token()
        session = kwargs.get("session")
        try:
            result = await self._collection.update_one(
                self._fence.filter(filter, token),
                self._fence.update(update, token),
                upsert=upsert,
                **kwargs,
            )
        except DuplicateKeyError:
            await self._raise_if_refused_as_stale(filter, token, session)
            raise
        if _acknowledged_noop(result):
            await self._raise_if_stale(filter, token, session)
        return result

    async def replace_one(
        self, filter: Filter, replacement: DocT, upsert: bool = False, **kwargs: Any
    ) -> UpdateResult:
        self._fence.check_upsert(filter, upsert)
        token = self._fence.token()
        session = kwargs.get("session")
        try:
            result = await self._collection.replace_one(
                self._fence.filter(filter, token),
                cast(DocT, self._fence.document(replacement, token)),
                upsert=upsert,
                **kwargs,
            )
        except DuplicateKeyError:
            await self._raise_if_refused_as_stale(filter, token, session)
            raise
        if _acknowledged_noop(result):
            await self._raise_if_stale(filter, token, session)
        return result

    async def update_many(
        self, filter: Filter, update: Update, upsert: bool = False, **kwargs: Any
    ) -> FencedUpdateResult:
        self._fence.check_upsert(filter, upsert)
        token = self._fence.token()
        session = kwargs.get("session")
        try:
            result = await self._collection.update_many(
                self._fence.filter(filter, token),
                self._fence.update(update, token),
                upsert=upsert,
                **kwargs,
            )
        except DuplicateKeyError:
            await self._raise_if_refused_as_stale(filter, token, session)
            raise
        return FencedUpdateResult(result, await self._skipped(filter, token, session))

    async def delete_one(self, filter: Filter, **kwargs: Any) -> DeleteResult:
        token = self._fence.token()
        result = await self._collection.delete_one(self._fence.filter(filter, token), **kwargs)
        if result.acknowledged and result.deleted_count == 0:
            await self._raise_if_stale(filter, token, kwargs.get("session"))
        return result

    async def delete_many(self, filter: Filter, **kwargs: Any) -> FencedDeleteResult:
        token = self._fence.token()
        result = await self._collection.delete_many(self._fence.filter(filter, token), **kwargs)
        skipped = await self._skipped(filter, token, kwargs.get("session"))
        return FencedDeleteResult(result, skipped)

    async def find_one_and_update(
        self,
        filter: Filter,
        update: Update,
        projection: Any = None,
        sort: Any = None,
        upsert: bool = False,
        return_document: bool = ReturnDocument.BEFORE,
        **kwargs: Any,
    ) -> DocT | None:
        self._fence.check_upsert(filter, upsert)
        token = self._fence.token()
        session = kwargs.get("session")
        try:
            found = await self._collection.find_one_and_update(
                self._fence.filter(filter, token),
                self._fence.update(update, token),
                projection,
                sort,
                upsert,
                return_document,
                **kwargs,
            )
        except DuplicateKeyError:
            await self._raise_if_refused_as_stale(filter, token, session)
            raise
        if found is None:
            await self._raise_if_stale(filter, token, session)
        return found

    async def find_one_and_replace(
        self,
        filter: Filter,
        replacement: DocT,
        projection: Any = None,
        sort: Any = None,
        upsert: bool = False,
        return_document: bool = ReturnDocument.BEFORE,
        **kwargs: Any,
    ) -> DocT | None:
        self._fence.check_upsert(filter, upsert)
        token = self._fence.token()
        session = kwargs.get("session")
        try:
            found = await self._collection.find_one_and_replace(
                self._fence.filter(filter, token),
                cast(DocT, self._fence.document(replacement, token)),
                projection,
                sort,
                upsert,
                return_document,
                **kwargs,
            )
        except DuplicateKeyError:
            await self._raise_if_refused_as_stale(filter, token, session)
            raise
        if found is None:
            await self._raise_if_stale(filter, token, session)
        return found

    async def find_one_and_delete(
        self, filter: Filter, projection: Any = None, sort: Any = None, **kwargs: Any
    ) -> DocT | None:
        token = self._fence.token()
        found = await self._collection.find_one_and_delete(
            self._fence.filter(filter, token), projection, sort, **kwargs
        )
        if found is None:
            await self._raise_if_stale(filter, token, kwargs.get("session"))
        return found

    async def bulk_write(self, requests: Sequence[Request], **kwargs: Any) -> FencedBulkWriteResult:
        """As :meth:`FencedCollection.bulk_write`: skips counted, a stale upsert raises
        ``StaleToken`` (its ``details`` what the bulk applied), other errors pymongo's."""
        token = self._fence.token()
        originals = list(requests)
        planned = [self._fence.request(request, token) for request in originals]
        session = kwargs.get("session")
        try:
            result = await self._collection.bulk_write([fenced for fenced, _ in planned], **kwargs)
        except BulkWriteError as error:
            stale = await self._stale_upsert(error, planned, originals, token, session)
            if stale is not None:
                raise stale from error
            raise
        skipped = 0
        for _, newer in planned:
            if newer is not None:
                skipped += await self._collection.count_documents(newer, session=session)
        return FencedBulkWriteResult(result, skipped)
