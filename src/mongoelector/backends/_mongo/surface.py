"""What the sync and async MongoDB backends share outside their calls: settings and properties.

:class:`MongoBackendBase` checks the constructor's arguments, opens the
collections (primary reads, majority writes for leases) and builds the
:class:`~.operations.MongoOperations` whose plans the subclass's shell runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from pymongo import ReadPreference
from pymongo.write_concern import WriteConcern

from mongoelector.backends._mongo.failures import RetryPolicy
from mongoelector.backends._mongo.names import DEFAULT_COLLECTION, DEFAULT_STATUS_COLLECTION
from mongoelector.backends._mongo.operations import MongoOperations
from mongoelector.backends._mongo.validation import check_collection_name, check_database
from mongoelector.backends.protocol import Capability
from mongoelector.backends.validation import check_ttl
from mongoelector.clock import Clock, SystemClock
from mongoelector.timing import DEFAULT_MAX_DRIFT

__all__ = ["DEFAULT_COLLECTION", "DEFAULT_STATUS_COLLECTION", "MongoBackendBase"]


class MongoBackendBase:
    """Settings, collections and properties of a MongoDB backend (see ``MongoBackend``).

    A subclass sets :attr:`asynchronous` (which kind of database it takes)
    and runs the plans of ``self._ops``.
    """

    #: True for a backend on ``AsyncMongoClient`` (its database must be an ``AsyncDatabase``).
    asynchronous: ClassVar[bool] = False

    def __init__(
        self,
        database: Any,
        collection: str = DEFAULT_COLLECTION,
        *,
        status_collection: str | None = DEFAULT_STATUS_COLLECTION,
        clock: Clock | None = None,
        pipeline: bool | None = None,
        timeout: float = 5.0,
        create_indexes: bool = True,
        max_drift: float = DEFAULT_MAX_DRIFT,
        acquire_check: Callable[[], object] | None = None,
    ) -> None:
        self._database = check_database(database, asynchronous=self.asynchronous)
        self._collection_name = check_collection_name(collection)
        self._status_name = (
            None
            if status_collection is None
            else check_collection_name(status_collection, name="status_collection")
        )
        if pipeline is not None and not isinstance(pipeline, bool):
            raise TypeError(f"pipeline must be a bool or None, got {pipeline!r}")
        if not isinstance(create_indexes, bool):
            raise TypeError(f"create_indexes must be a bool, got {create_indexes!r}")
        if acquire_check is not None and not callable(acquire_check):
            raise TypeError(f"acquire_check must be callable or None, got {acquire_check!r}")
        policy = RetryPolicy(budget=check_ttl(timeout, name="timeout"))
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._leases = database.get_collection(
            collection,
            read_preference=ReadPreference.PRIMARY,
            write_concern=WriteConcern(w="majority"),
        )
        self._status = (
            None
            if status_collection is None
            else database.get_collection(status_collection, read_preference=ReadPreference.PRIMARY)
        )
        self._ops = MongoOperations(
            leases=self._leases,
            status=self._status,
            clock=self._clock,
            policy=policy,
            pipeline=pipeline,
            create_indexes=create_indexes,
            max_drift=max_drift,
            acquire_check=acquire_check,
        )

    @property
    def capabilities(self) -> frozenset[Capability]:
        batches = frozenset({Capability.RENEW_MANY, Capability.GET_MANY})
        if self._status is None:
            return batches
        return batches | {Capability.MEMBER_STATUS, Capability.REPORT_MANY}

    @property
    def database(self) -> Any:
        """The database given at construction."""
        return self._database

    @property
    def collection(self) -> Any:
        """The lease collection (majority write concern, primary reads)."""
        return self._leases

    @property
    def status_collection(self) -> Any:
        """The status collection, or ``None``."""
        return self._status

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def uses_pipeline(self) -> bool | None:
        """True if lease writes are server-side pipelines; ``None`` until the first call."""
        return self._ops.use_pipeline

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(database={getattr(self._database, 'name', '?')!r}, "
            f"collection={self._collection_name!r}, status_collection={self._status_name!r})"
        )
