"""Storage backends and the protocol they implement."""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from mongoelector.backends.async_mongo import AsyncMongoBackend
    from mongoelector.backends.memory import MemoryBackend
    from mongoelector.backends.mongo import MongoBackend

#: The backends, imported on first use: ``import mongoelector`` needs none of them.
_LAZY = {
    "AsyncMongoBackend": "mongoelector.backends.async_mongo",
    "MemoryBackend": "mongoelector.backends.memory",
    "MongoBackend": "mongoelector.backends.mongo",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib  # noqa: PLC0415 - only when a backend is first asked for

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
