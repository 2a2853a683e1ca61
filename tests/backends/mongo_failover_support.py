"""Helpers of the failover tests: a real replica set whose primary the test steps down.

Everything here talks to the server named by ``MONGOELECTOR_TEST_URI`` with a
plain pymongo client; the tests build their locks and electors on top. With
``MONGOELECTOR_TEST_REQUIRE_FAILOVER=1`` (the CI replica-set job) a server that
cannot run these tests fails them instead of skipping them.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

import pymongo
import pytest
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

URI = os.environ.get("MONGOELECTOR_TEST_URI")
REQUIRE_FAILOVER = os.environ.get("MONGOELECTOR_TEST_REQUIRE_FAILOVER") == "1"

#: Seconds the stepped-down member may not stand for election again.
STEP_DOWN_SECONDS = 10
#: Seconds the stepping-down primary waits for a secondary to catch up before it steps down anyway.
CATCH_UP_SECONDS = 5
#: Bound on how long the replica set may take to elect a new primary.
ELECTION_BOUND = 60.0
UNAUTHORIZED = 13


def cannot_test(reason: str) -> NoReturn:
    """Skip (or, with ``MONGOELECTOR_TEST_REQUIRE_FAILOVER=1``, fail) the test for ``reason``."""
    if REQUIRE_FAILOVER:
        pytest.fail(f"MONGOELECTOR_TEST_REQUIRE_FAILOVER=1, but {reason}")
    pytest.skip(reason)


def connect() -> pymongo.MongoClient[Any]:
    assert URI is not None
    return pymongo.MongoClient(URI, serverSelectionTimeoutMS=int(ELECTION_BOUND * 1000))


def may_step_down(client: pymongo.MongoClient[Any]) -> bool:
    """True unless the authenticated user surely lacks the ``replSetStepDown`` privilege."""
    auth = client.admin.command("connectionStatus", showPrivileges=True)["authInfo"]
    if not auth.get("authenticatedUsers"):
        return True  # no user: access control is off (else no test could run at all)
    for privilege in auth.get("authenticatedUserPrivileges", []):
        resource = privilege.get("resource", {})
        actions = privilege.get("actions", [])
        if (resource.get("cluster") or resource.get("anyResource")) and (
            "replSetStepDown" in actions or "anyAction" in actions
        ):
            return True
    return False


def require_failover(client: pymongo.MongoClient[Any]) -> None:
    """Skip the test unless the test may step down a primary the client then follows."""
    hello = client.admin.command("hello")
    if "setName" not in hello:
        cannot_test(
            "MONGOELECTOR_TEST_URI is not a replica set (a standalone or mongos): "
            "replSetStepDown needs one"
        )
    if client.topology_description.topology_type_name != "ReplicaSetWithPrimary":
        cannot_test(
            "MONGOELECTOR_TEST_URI connects to one member directly: give replicaSet=<name> "
            "(and no directConnection) so the client follows the new primary"
        )
    if not may_step_down(client):
        cannot_test("the user of MONGOELECTOR_TEST_URI lacks the replSetStepDown privilege")


def step_down(client: pymongo.MongoClient[Any]) -> tuple[str, int] | None:
    """Make the primary step down now; return the address it had.

    The command may end in a connection error: servers before 4.2 close every
    connection when they step down, and a reply lost that way still means the
    step-down happened (or a failover was under way anyway).
    """
    old = client.primary
    try:
        client.admin.command(
            "replSetStepDown",
            STEP_DOWN_SECONDS,
            secondaryCatchUpPeriodSecs=CATCH_UP_SECONDS,
            force=True,
        )
    except ConnectionFailure:
        pass
    except OperationFailure as error:
        if error.code == UNAUTHORIZED:
            cannot_test(f"the user of MONGOELECTOR_TEST_URI may not step down: {error}")
        raise
    return old


def wait_for_primary(client: pymongo.MongoClient[Any], timeout: float = ELECTION_BOUND) -> None:
    """Return once the replica set has a primary that answers; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.admin.command("ping")  # selects the primary, waiting for one
            if client.primary is not None:
                return
        except PyMongoError:
            pass
        assert time.monotonic() < deadline, f"no primary within {timeout} s of a step-down"
        time.sleep(0.2)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``condition`` until it holds (``True``) or ``timeout`` seconds passed (``False``)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def strictly_increasing(tokens: list[int]) -> bool:
    return all(earlier < later for earlier, later in itertools.pairwise(tokens))


class Watch:
    """Calls ``check()`` every ``interval`` seconds in a thread and remembers any failure.

    For invariants that must hold at every moment (never two leaders at once):
    :meth:`stop` joins the thread and raises the first failed assertion.
    """

    def __init__(self, check: Callable[[], None], interval: float = 0.05) -> None:
        self._check = check
        self._interval = interval
        self._stopped = threading.Event()
        self._failure: AssertionError | None = None
        self._thread = threading.Thread(target=self._run, name="failover-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._check()
            except AssertionError as failure:
                self._failure = failure
                return

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        if self._failure is not None:
            raise self._failure
