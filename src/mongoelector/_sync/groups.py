"""What the sync driver's renew and read groups share: their members and their registry.

A :class:`Registry` holds the groups of one kind (renewals, follower reads) by
backend object and clock; one lock guards it and every member set of its
groups, and a forked child starts with an empty one (the parent's loops do not
run there). A :class:`MemberGroup` keeps its members in the order they came
(ties go to the older), leaves the registry with its last member, and turns a
plan of calls into batches of the members that joined.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from mongoelector._common.batches import clock_key
from mongoelector._sync import scheduler
from mongoelector.clock import Clock

__all__ = ["Joiner", "MemberGroup", "Registry"]


class Joiner(Protocol):
    """A member as its group queues it: :meth:`_join` gives its ticket (``None``: it ended)."""

    def _join(self) -> int | None: ...


M = TypeVar("M", bound=Joiner)
B = TypeVar("B")
G = TypeVar("G", bound="MemberGroup[Any, Any]")

#: A group's place in its registry: the backend object's id and the clock's key.
Key = tuple[int, object]


class Registry(Generic[G]):
    """The groups with members now, by backend object and clock."""

    def __init__(self) -> None:
        self.guard = threading.Lock()  # the registry and every group's members
        self.groups: dict[Key, G] = {}
        os.register_at_fork(after_in_child=self._after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        self.guard = threading.Lock()  # a fresh lock for the child
        self.groups.clear()  # the parent's members do not run in the child

    def enter(self, member: object, backend: object, clock: Clock, make: Callable[[Key], G]) -> G:
        """Add ``member`` to the group of ``backend`` (the object) and ``clock``, made by
        ``make`` if there is none (or one of a former object with the same id); that group."""
        key = (id(backend), clock_key(clock))
        with self.guard:
            group = self.groups.get(key)
            if group is None or group.backend is not backend:
                group = self.groups[key] = make(key)
            group._members[member] = None
            return group

    def snapshot(self) -> list[G]:
        """The groups with members now."""
        with self.guard:
            return list(self.groups.values())


class MemberGroup(Generic[M, B]):
    """The members of one backend object on one clock, in one :class:`Registry`.

    Members come and go with the registry's ``enter`` and :meth:`leave`; the group
    leaves the registry with its last member.
    """

    def __init__(self, registry: Registry[Any], key: Key, backend: B, clock: Clock) -> None:
        self._registry = registry
        self._key = key
        self.backend = backend
        self.clock = clock
        self._members: dict[M, None] = {}  # insertion-ordered: ties go to the older

    def __len__(self) -> int:
        with self._registry.guard:
            return len(self._members)

    def leave(self, member: M) -> None:
        """``member`` ended: it is no longer a candidate of any batch."""
        with self._registry.guard:
            self._members.pop(member, None)
            groups = self._registry.groups
            if not self._members and groups.get(self._key) is self:
                del groups[self._key]

    def _members_now(self) -> list[M]:
        with self._registry.guard:
            return list(self._members)

    @staticmethod
    def _batches(trigger: M, ticket: int, calls: list[list[M]]) -> list[list[tuple[M, int]]]:
        """The batches of ``calls`` (the first ``trigger``'s, with its ``ticket``): each
        member that still joins (:meth:`Joiner._join`) with its ticket; empty ones dropped."""
        batches: list[list[tuple[M, int]]] = []
        for number, call in enumerate(calls):
            batch = [(trigger, ticket)] if number == 0 else []
            for member in call:
                joined = member._join()
                if joined is not None:
                    batch.append((member, joined))
            if batch:
                batches.append(batch)
        return batches

    def _submit(self, batches: list[list[tuple[M, int]]]) -> None:
        """One worker runs ``batches`` one after the other (:meth:`_run` each): they go to
        the same store, and the process keeps its few threads (calls queued side by side
        would make the scheduler add a worker for each while they wait)."""
        scheduler.submit(functools.partial(self._run_all, batches))

    def _run_all(self, batches: list[list[tuple[M, int]]]) -> None:
        for batch in batches:
            self._run(batch)

    def _run(self, batch: list[tuple[M, int]]) -> None:
        raise NotImplementedError
