"""Fixtures of the wire-level tests: an event loop thread, and a scripted MongoDB primary."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator

import pymongo
import pytest

from mongoelector.testing.aio import EventLoopThread
from tests.backends.mongo_wire_support import Primary


@pytest.fixture
def loop() -> Iterator[EventLoopThread]:
    thread = EventLoopThread(name="wire-tests-event-loop")
    yield thread
    # An AsyncMongoClient closed while one of its monitors is reconnecting (the
    # retry tests make them reconnect often) drops that half-made socket without
    # closing it: a pymongo leak on cancellation, not ours. Collect it here, so
    # its ResourceWarning does not surface in whichever test runs next.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        thread.close()
        gc.collect()


@pytest.fixture
def primary(monkeypatch: pytest.MonkeyPatch, loop: EventLoopThread) -> Iterator[Primary]:
    # After an error pymongo waits for a fresh look at the server, at most every
    # 0.5 s; shorten that so the retry tests take no noticeable time.
    monkeypatch.setattr(pymongo.common, "MIN_HEARTBEAT_INTERVAL", 0.01)
    mock = Primary(loop)
    yield mock
    mock.stop()
