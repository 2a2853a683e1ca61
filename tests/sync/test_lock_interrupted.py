"""Lock: a store call interrupted by ``KeyboardInterrupt`` (or ``SystemExit``) may have applied.

So may a release whose backend raised something other than a ``BackendError``
(a backend's bug, or an error its driver does not classify, such as bson's
``InvalidBSON`` on a corrupt record): the acquire side already takes such an
error as an ambiguous outcome, and the release side remembers that the store
may still hold the lock, as it does for a store error.

The MongoDB shells let such exceptions through untouched, promising that the
lock drivers allow for a call that may have applied (as ``AsyncLock`` does for
a cancelled call). So an acquire interrupted after its write landed, or a
release interrupted before its write was sent, leaves the lock object
remembering that the store may hold the lock: the next ``release()`` frees it,
instead of leaving it held until it expires.
"""

from __future__ import annotations

import pytest

from mongoelector import Lock, LockExists
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock
from tests.fakes import FlakyBackend


class Interrupting(FlakyBackend):
    """A FlakyBackend whose next ``interrupt_after`` call applies, then raises
    ``KeyboardInterrupt``; and whose next ``interrupt_before`` call raises it unsent."""

    def __init__(
        self, inner: MemoryBackend, error: type[BaseException] = KeyboardInterrupt
    ) -> None:
        super().__init__(inner)
        self.interrupt_after = ""
        self.interrupt_before = ""
        self.error = error

    def _enter(self, name: str) -> None:
        super()._enter(name)
        if name == self.interrupt_before:
            self.interrupt_before = ""
            raise self.error

    def _leave(self, name: str) -> None:
        super()._leave(name)
        if name == self.interrupt_after:
            self.interrupt_after = ""
            raise KeyboardInterrupt


def taken_by_another(backend: MemoryBackend, clock: FakeClock) -> bool:
    try:
        return Lock("job", backend, ttl=600, clock=clock).acquire(blocking=False)
    except LockExists:
        return False


def free_after_an_interrupted_acquire(backend: MemoryBackend, clock: FakeClock) -> bool:
    """Whether another lock object can take the lock after ours was interrupted mid-acquire
    (its write landed) and then released."""
    store = Interrupting(backend)
    lock = Lock("job", store, ttl=600, clock=clock)  # type: ignore[arg-type]
    store.interrupt_after = "compare_and_set"
    with pytest.raises(KeyboardInterrupt):
        lock.acquire(blocking=False)
    record = backend.get("job")
    assert record is not None and record.owner == lock.uuid  # the write landed
    lock.release()
    return taken_by_another(backend, clock)


def test_an_acquire_interrupted_after_its_write_is_freed_by_release(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    assert free_after_an_interrupted_acquire(backend, clock)


def test_the_interrupted_acquire_test_sees_the_write_forgotten(
    backend: MemoryBackend, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Lock, "_mark_maybe_held", lambda self: None)
    assert not free_after_an_interrupted_acquire(backend, clock)


class BackendBug(Exception):
    """Not a ``BackendError``: what a backend's bug, or an unclassified driver error, raises."""


def free_after_an_interrupted_release(
    backend: MemoryBackend, clock: FakeClock, error: type[BaseException] = KeyboardInterrupt
) -> bool:
    """Whether another lock object can take the lock after our release was interrupted
    (by ``error``) before its write was sent, and released again."""
    store = Interrupting(backend, error)
    lock = Lock("job", store, ttl=600, clock=clock)  # type: ignore[arg-type]
    assert lock.acquire(blocking=False)
    store.interrupt_before = "release"
    with pytest.raises(error):
        lock.release()
    record = backend.get("job")
    assert record is not None and record.owner == lock.uuid  # still held in the store
    lock.release()
    return taken_by_another(backend, clock)


_ERRORS = pytest.mark.parametrize(
    "error", [KeyboardInterrupt, SystemExit, BackendBug], ids=["interrupt", "exit", "bug"]
)


@_ERRORS
def test_a_release_interrupted_before_its_write_is_done_by_the_next_release(
    backend: MemoryBackend, clock: FakeClock, error: type[BaseException]
) -> None:
    assert free_after_an_interrupted_release(backend, clock, error)


@_ERRORS
def test_the_interrupted_release_test_sees_the_release_forgotten(
    backend: MemoryBackend,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    error: type[BaseException],
) -> None:
    monkeypatch.setattr(Lock, "_release_failed", lambda self, *args: None)
    assert not free_after_an_interrupted_release(backend, clock, error)
