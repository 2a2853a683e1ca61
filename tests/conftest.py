"""Shared fixtures for the core test suite."""

from __future__ import annotations

import pytest

from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend(clock: FakeClock) -> MemoryBackend:
    return MemoryBackend(clock)
