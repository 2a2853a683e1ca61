"""What a backend author hands the conformance suite: a backend and the means to test it.

The suite builds a fresh :class:`BackendHarness` for every check by calling a
:data:`BackendFactory`, runs the check, then calls the harness's ``close``.
Only ``backend`` and ``advance`` are required; every other hook is optional,
and the checks that need a missing hook are skipped with a reason that names
the hook (see :class:`HarnessFeature`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta

from mongoelector._validation import check_non_negative_seconds
from mongoelector.backends.memory import MemoryBackend
from mongoelector.backends.protocol import StorageBackend
from mongoelector.testing.fake_clock import FakeClock

__all__ = [
    "BackendFactory",
    "BackendHarness",
    "HarnessFeature",
    "close_harness",
    "memory_harness",
    "open_harness",
]


class HarnessFeature(enum.Enum):
    """Optional abilities of a harness; checks that need one are skipped without it."""

    #: ``advance`` moves server time by exactly the amount asked, and server
    #: time stands still otherwise (e.g. a backend on a FakeClock).
    EXACT_TIME = "exact_time"
    #: ``delete_record`` removes a key's record behind the backend's back.
    DELETE_RECORD = "delete_record"
    #: ``outage`` makes the store fail for a while.
    OUTAGE = "outage"


@dataclass(frozen=True, kw_only=True)
class BackendHarness:
    """A backend under test, fresh and empty, and the hooks the checks drive it with.

    ``backend``
        The :class:`~mongoelector.backends.StorageBackend` under test. It must
        hold no records (use a new file, database or collection per harness).
    ``advance(seconds)``
        Moves the backend's server time forward by at least ``seconds``. With a
        clock-injected backend this is ``FakeClock.advance``; against a real
        server whose clock cannot be moved, it sleeps (and then set
        ``exact_time=False``).
    ``exact_time``
        ``True`` if ``advance`` moves server time by exactly ``seconds`` and
        server time does not move by itself; checks of exact expiry boundaries
        need it. Give server time a value far from the host's wall clock (a
        FakeClock starts in 2030) and the checks also catch a backend that
        reads the host clock instead of its server time.
    ``time_tolerance``
        How far, in seconds, the timestamps the backend writes may be from
        its ``server_time()`` readings around the write: 1 ms by default (for
        stores that keep milliseconds). A backend that estimates server time
        from a measured offset sets its uncertainty bound here.
    ``delete_record(key)``
        Optional. Deletes the record of ``key`` the way an operator or a TTL
        index would, without going through the protocol.
    ``outage()``
        Optional. Returns a context manager during which the store fails: each
        operation either still succeeds or raises a
        :class:`~mongoelector.errors.BackendError`, and at least one fails.
        After the context exits the same backend object must work again.
    ``close()``
        Optional. Releases what the harness holds (connections, files); called
        once after each check, whether it passed or not.
    """

    backend: StorageBackend
    advance: Callable[[float], None]
    exact_time: bool = True
    time_tolerance: float = 0.001
    delete_record: Callable[[str], object] | None = None
    outage: Callable[[], AbstractContextManager[object]] | None = None
    close: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        if not callable(self.advance):
            raise TypeError(f"advance must be callable as advance(seconds), got {self.advance!r}")
        if not isinstance(self.exact_time, bool):
            raise TypeError(f"exact_time must be a bool, got {self.exact_time!r}")
        check_non_negative_seconds(self.time_tolerance, name="time_tolerance")
        for name in ("delete_record", "outage", "close"):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} must be callable or None, got {hook!r}")

    @property
    def tolerance(self) -> timedelta:
        """:attr:`time_tolerance` as a ``timedelta``."""
        return timedelta(seconds=self.time_tolerance)

    def provides(self, feature: HarnessFeature) -> bool:
        """True if this harness offers ``feature``."""
        if feature is HarnessFeature.EXACT_TIME:
            return self.exact_time
        if feature is HarnessFeature.DELETE_RECORD:
            return self.delete_record is not None
        return self.outage is not None


#: Makes a fresh harness (a new, empty backend) each time it is called.
BackendFactory = Callable[[], BackendHarness]


def open_harness(factory: BackendFactory) -> BackendHarness:
    """Call ``factory`` and return its harness; ``TypeError`` if it returns anything else."""
    harness = factory()
    if not isinstance(harness, BackendHarness):
        raise TypeError(f"a backend factory must return a BackendHarness, got {harness!r}")
    return harness


def close_harness(harness: BackendHarness) -> None:
    """Call ``harness.close`` if it has one."""
    if harness.close is not None:
        harness.close()


def memory_harness() -> BackendHarness:
    """A harness for :class:`~mongoelector.backends.MemoryBackend` on a :class:`FakeClock`.

    The reference factory: ``check_backend(memory_harness)`` passes every
    check it does not skip (a memory store cannot fail, so it has no outage).
    """
    clock = FakeClock()
    backend = MemoryBackend(clock)
    return BackendHarness(backend=backend, advance=clock.advance, delete_record=backend.delete)
