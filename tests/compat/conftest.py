"""The database a 1.x user's test suite would use: mongomock, or a real server if configured.

With ``MONGOELECTOR_TEST_URI`` set, every test gets a fresh database on that
server (dropped afterwards), so the same suite proves 2.x against MongoDB.
"""

import os
import uuid
from collections.abc import Iterator
from typing import Any

import mongomock
import pymongo
import pytest


@pytest.fixture
def db() -> Iterator[Any]:
    uri = os.environ.get("MONGOELECTOR_TEST_URI")
    if not uri:
        client = mongomock.MongoClient()
        yield client["compat_tests"]
        client.close()
        return
    real: pymongo.MongoClient[Any] = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
    name = f"mongoelector_compat_{uuid.uuid4().hex[:12]}"
    yield real[name]
    real.drop_database(name)
    real.close()
