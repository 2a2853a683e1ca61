"""mongoelector: distributed locks and leader election with fencing tokens.

``Lock`` and ``LeaderElector`` work over any
:class:`~mongoelector.backends.StorageBackend`; ``MongoLocker`` and
``MongoLeaderElector`` are the 1.x-compatible versions on a pymongo
``Database``. See ``docs/`` for the safety model and the API.
"""

from mongoelector._sync.elector import LeaderElector
from mongoelector._sync.lock import Lock
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
    "TimeOffsetError",
    "__version__",
]
