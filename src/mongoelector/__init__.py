"""mongoelector: distributed locks and leader election with fencing tokens.

``Lock`` and ``LeaderElector`` work over any
:class:`~mongoelector.backends.StorageBackend`; ``MongoLocker`` and
``MongoLeaderElector`` are the 1.x-compatible versions on a pymongo
``Database``. See ``docs/`` for the safety model and the API.

The names below are imported on first use (PEP 562), so that importing a
lower layer (``mongoelector.core``, ``mongoelector.backends.protocol``) does
not load the drivers, threads or pymongo.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mongoelector._sync.elector import LeaderElector
    from mongoelector._sync.lock import Lock
    from mongoelector._sync.signals import stop_on_signals
    from mongoelector.core.events import LeaderInfo
    from mongoelector.elector import MongoLeaderElector
    from mongoelector.errors import (
        AcquireTimeout,
        AmbiguousOutcome,
        BackendError,
        BackendUnavailable,
        LockExists,
        LockLost,
        MongoElectorError,
        NotLeader,
        StaleToken,
        TimeOffsetError,
    )
    from mongoelector.locker import MongoLocker
    from mongoelector.timing import LeaseTiming

__version__ = "2.0.0.dev0"

__all__ = [
    "AcquireTimeout",
    "AmbiguousOutcome",
    "BackendError",
    "BackendUnavailable",
    "LeaderElector",
    "LeaderInfo",
    "LeaseTiming",
    "Lock",
    "LockExists",
    "LockLost",
    "MongoElectorError",
    "MongoLeaderElector",
    "MongoLocker",
    "NotLeader",
    "StaleToken",
    "TimeOffsetError",
    "__version__",
    "stop_on_signals",
]

#: Where each public name lives.
_HOMES = {
    "AcquireTimeout": "mongoelector.errors",
    "AmbiguousOutcome": "mongoelector.errors",
    "BackendError": "mongoelector.errors",
    "BackendUnavailable": "mongoelector.errors",
    "LeaderElector": "mongoelector._sync.elector",
    "LeaderInfo": "mongoelector.core.events",
    "LeaseTiming": "mongoelector.timing",
    "Lock": "mongoelector._sync.lock",
    "LockExists": "mongoelector.errors",
    "LockLost": "mongoelector.errors",
    "MongoElectorError": "mongoelector.errors",
    "MongoLeaderElector": "mongoelector.elector",
    "MongoLocker": "mongoelector.locker",
    "NotLeader": "mongoelector.errors",
    "StaleToken": "mongoelector.errors",
    "TimeOffsetError": "mongoelector.errors",
    "stop_on_signals": "mongoelector._sync.signals",
}
#: Submodules that ``import mongoelector`` used to load, reachable as attributes.
_SUBMODULES = frozenset(
    {"backends", "clock", "core", "elector", "errors", "jobs", "locker", "monitoring", "timing"}
)


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
