"""Storage backends and the protocol they implement.

The backends are imported on first use (PEP 562): ``mongoelector.backends.protocol``,
which the pure core builds on, can be imported without pymongo being loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        ReportManyBackend,
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
    "ReportManyBackend",
    "StorageBackend",
    "require_backend",
]

_PROTOCOL = "mongoelector.backends.protocol"
#: Where each public name lives.
_HOMES = {
    "AmbiguousOutcome": "mongoelector.errors",
    "AsyncMongoBackend": "mongoelector.backends.async_mongo",
    "BackendError": "mongoelector.errors",
    "BackendUnavailable": "mongoelector.errors",
    "Capability": _PROTOCOL,
    "CasResult": _PROTOCOL,
    "GetManyBackend": _PROTOCOL,
    "LeaseRecord": _PROTOCOL,
    "LeaseRequest": _PROTOCOL,
    "MemberRecord": _PROTOCOL,
    "MemberStatusBackend": _PROTOCOL,
    "MemoryBackend": "mongoelector.backends.memory",
    "MongoBackend": "mongoelector.backends.mongo",
    "RenewItem": _PROTOCOL,
    "RenewManyBackend": _PROTOCOL,
    "ReportManyBackend": _PROTOCOL,
    "StorageBackend": _PROTOCOL,
    "require_backend": _PROTOCOL,
}
#: Submodules that ``import mongoelector.backends`` used to load, reachable as attributes.
_SUBMODULES = frozenset({"async_mongo", "memory", "mongo", "protocol", "validation"})


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
