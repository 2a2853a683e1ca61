"""A mongomock database, as a 1.x user's test suite would set one up."""

from collections.abc import Iterator

import mongomock
import pytest


@pytest.fixture
def db() -> Iterator[mongomock.Database]:
    client = mongomock.MongoClient()
    yield client["compat_tests"]
    client.close()
