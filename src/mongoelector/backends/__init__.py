"""Storage backends and the protocol they implement."""

from mongoelector.backends.async_mongo import AsyncMongoBackend
from mongoelector.backends.memory import MemoryBackend
from mongoelector.backends.mongo import MongoBackend
from mongoelector.backends.protocol import (
    Capability,
    CasResult,
    GetManyBackend,
    LeaseRecord,
    LeaseRequest,
    MemberRecord,
    MemberStatusBackend,
    RenewItem,
    RenewManyBackend,
    StorageBackend,
    require_backend,
)
from mongoelector.errors import AmbiguousOutcome, BackendError, BackendUnavailable

__all__ = [
    "AmbiguousOutcome",
    "AsyncMongoBackend",
    "BackendError",
    "BackendUnavailable",
    "Capability",
    "CasResult",
    "GetManyBackend",
    "LeaseRecord",
    "LeaseRequest",
    "MemberRecord",
    "MemberStatusBackend",
    "MemoryBackend",
    "MongoBackend",
    "RenewItem",
    "RenewManyBackend",
    "StorageBackend",
    "require_backend",
]
