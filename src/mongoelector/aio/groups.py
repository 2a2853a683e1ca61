"""What the asyncio driver's renew and read groups share: their members and their registry.

A :class:`Registry` holds the groups of one kind (renewals, follower reads) by
event loop, store and clock, and forgets those of loops that closed. A
:class:`MemberGroup` keeps its members in the order they came, leaves the
registry with its last member, and keeps its calls' tasks alive while they run.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from mongoelector._common.batches import clock_key, store_of
from mongoelector.clock import Clock

__all__ = ["MemberGroup", "Registry"]

M = TypeVar("M")
B = TypeVar("B")
G = TypeVar("G", bound="MemberGroup[Any, Any]")

#: A group's place in its registry: the loop's id, the store's id and the clock's key.
Key = tuple[int, int, object]


class Registry(Generic[G]):
    """The groups with members now, by event loop, store and clock."""

    def __init__(self) -> None:
        self.groups: dict[Key, G] = {}

    def enter(
        self,
        member: object,
        backend: object,
        clock: Clock,
        make: Callable[[Key, asyncio.AbstractEventLoop], G],
    ) -> G:
        """Add ``member`` to the group of the running loop, ``backend``'s store and ``clock``,
        made by ``make`` if there is none; that group.

        The store is the backend object, or the backend an ``InlineBackend`` wraps
        (:func:`~mongoelector._common.batches.store_of`); the group calls the first
        member's backend object, which stands for the same store as every other's.
        """
        loop = asyncio.get_running_loop()
        self.forget_closed_loops()
        store = store_of(backend)  # each AsyncLock or elector wraps a sync MemoryBackend anew
        key = (id(loop), id(store), clock_key(clock))
        group = self.groups.get(key)
        if group is None or group.loop() is not loop or store_of(group.backend) is not store:
            group = self.groups[key] = make(key, loop)
        group._members[member] = None
        return group

    def forget_closed_loops(self) -> None:
        """Drop the groups of loops that closed without ending their members' tasks."""
        for key, group in list(self.groups.items()):
            loop = group.loop()
            if loop is None or loop.is_closed():
                self.groups.pop(key, None)

    def snapshot(self, loop: asyncio.AbstractEventLoop | None = None) -> list[G]:
        """The groups with members now, of ``loop`` (every live loop's when ``None``)."""
        self.forget_closed_loops()
        return [group for group in self.groups.values() if loop is None or group.loop() is loop]


class MemberGroup(Generic[M, B]):
    """The members of one store and clock on one event loop, in one :class:`Registry`."""

    def __init__(
        self,
        registry: Registry[Any],
        key: Key,
        backend: B,
        clock: Clock,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._registry = registry
        self._key = key
        self.loop = weakref.ref(loop)
        self.backend = backend
        self.clock = clock
        self._members: dict[M, None] = {}  # insertion-ordered
        self._calls: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._members)

    def leave(self, member: M) -> None:
        """``member`` ended: it is no longer a candidate of any batch."""
        self._members.pop(member, None)
        groups = self._registry.groups
        if not self._members and groups.get(self._key) is self:
            del groups[self._key]

    def _start(self, call: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``call`` in a task of its own (cancelling a member never cancels it), kept
        alive until it is done."""
        task = asyncio.get_running_loop().create_task(call, name=name)
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
