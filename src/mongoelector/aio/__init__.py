"""The asyncio API: ``AsyncLock`` and ``AsyncLeaderElector``, mirroring the sync classes.

Both run the same pure state machines as the sync classes; only the I/O is
asynchronous. They take an :class:`AsyncStorageBackend`, or a sync backend
that never blocks (``MemoryBackend``), whose calls then run inline on the
event loop. Waits go through the clock (:func:`sleep`, :func:`wait_until`),
so code using them is tested deterministically under
:class:`~mongoelector.testing.FakeClock`; see ``docs/asyncio.md``.
"""

from mongoelector.aio._time import AsyncWaitClock, sleep, wait_until
from mongoelector.aio.elector import AsyncLeaderElector
from mongoelector.aio.leadership import AsyncLeadership, AsyncLeadershipTerm, AsyncLostFlag
from mongoelector.aio.lock import AsyncLock
from mongoelector.backends.async_protocol import (
    AsyncGetManyBackend,
    AsyncMemberStatusBackend,
    AsyncRenewManyBackend,
    AsyncStorageBackend,
    InlineBackend,
    as_async_backend,
)

__all__ = [
    "AsyncGetManyBackend",
    "AsyncLeaderElector",
    "AsyncLeadership",
    "AsyncLeadershipTerm",
    "AsyncLock",
    "AsyncLostFlag",
    "AsyncMemberStatusBackend",
    "AsyncRenewManyBackend",
    "AsyncStorageBackend",
    "AsyncWaitClock",
    "InlineBackend",
    "as_async_backend",
    "sleep",
    "wait_until",
]
