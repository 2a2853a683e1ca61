"""pytest fixtures for testing code that uses mongoelector (loaded automatically).

Installed through the ``pytest11`` entry point, so any project that has
mongoelector installed gets these fixtures with no set-up:

* ``fake_clock``: a fresh :class:`~mongoelector.testing.FakeClock`.
* ``memory_backend``: a :class:`~mongoelector.backends.MemoryBackend` whose
  server time is ``fake_clock``.
* ``elector_group``: an empty :class:`~mongoelector.testing.ElectorGroup` on
  ``fake_clock``; add electors built with ``clock=fake_clock``.

A fixture of the same name in a project's own ``conftest.py`` takes precedence.
Disable the plugin with ``-p no:mongoelector``.
"""

from __future__ import annotations

import pytest

from mongoelector.backends.memory import MemoryBackend
from mongoelector.testing.fake_clock import FakeClock
from mongoelector.testing.stepping import ElectorGroup

__all__ = ["elector_group", "fake_clock", "memory_backend"]


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock frozen at 2030-01-01 UTC (monotonic 0.0) until the test advances it."""
    return FakeClock()


@pytest.fixture
def memory_backend(fake_clock: FakeClock) -> MemoryBackend:
    """An empty in-memory store whose server time is ``fake_clock``."""
    return MemoryBackend(clock=fake_clock)


@pytest.fixture
def elector_group(fake_clock: FakeClock) -> ElectorGroup:
    """An empty group of electors polled on ``fake_clock``."""
    return ElectorGroup(fake_clock)
