"""Shared fixtures for the core test suite."""

from __future__ import annotations

import asyncio
import inspect
import tracemalloc
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock
from tests.backends.mongomock_atomic import make_commands_atomic
from tests.fakes import FlakyBackend


@pytest.fixture(autouse=True)
def mongomock_commands_atomic(monkeypatch: pytest.MonkeyPatch) -> None:
    """In every test, each mongomock command runs whole, as on a server, whatever thread
    calls it: started electors and lock renewers call their store from their own threads
    (see tests/backends/mongomock_atomic.py)."""
    make_commands_atomic(monkeypatch)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend(clock: FakeClock) -> MemoryBackend:
    return MemoryBackend(clock)


#: Real seconds an ``async def`` test may take before it counts as hung (a guard, not a timing).
ASYNC_TEST_HANG_GUARD = 30


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests in a fresh event loop (``asyncio.run``), without a plugin.

    A test still running after :data:`ASYNC_TEST_HANG_GUARD` real seconds fails
    with ``TimeoutError`` instead of hanging the suite.
    """
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    funcargs = pyfuncitem.funcargs
    kwargs = {name: funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(_guarded(pyfuncitem.obj(**kwargs), pyfuncitem.nodeid))
    return True


async def _guarded(test: Coroutine[Any, Any, None], name: str) -> None:
    task = asyncio.ensure_future(test)
    done, _ = await asyncio.wait({task}, timeout=ASYNC_TEST_HANG_GUARD)
    if not done:
        task.cancel()
        await asyncio.wait({task})
        raise TimeoutError(f"{name} still ran after {ASYNC_TEST_HANG_GUARD} s: it hangs")
    task.result()


@pytest.fixture
def flaky(backend: MemoryBackend) -> FlakyBackend:
    """``backend`` behind a wrapper that fails on demand (``flaky.mode = "down"``)."""
    return FlakyBackend(backend)


@pytest.fixture
def not_traced() -> Iterator[None]:
    """For a test that counts bytes with tracemalloc: skipped if someone traces already."""
    if tracemalloc.is_tracing():  # pragma: no cover - someone traces the whole run
        pytest.skip("tracemalloc is already tracing this process")
    yield
