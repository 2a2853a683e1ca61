"""What the sync and asyncio drivers share: their state and decisions, never their I/O.

The drivers (``mongoelector._sync`` and ``mongoelector.aio``) differ only in
how they call the store, wait and run callbacks; everything else about a lock
or an elector lives here once, on top of the pure machines in
``mongoelector.core``.
"""
