"""Storage backends and the protocol they implement."""

from mongoelector.backends.async_mongo import AsyncMongoBackend
from mongoelector.backends.memory import MemoryBackend
from mongoelector.backends.mongo import MongoBackend
from mongoelector.backends.protocol import (
    Capability,
    CasResult,
    LeaseRecord,
    LeaseRequest,
    MemberRecord,
    MemberStatusBackend,
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
    "LeaseRecord",
    "LeaseRequest",
    "MemberRecord",
    "MemberStatusBackend",
    "MemoryBackend",
    "MongoBackend",
    "StorageBackend",
    "require_backend",
]
