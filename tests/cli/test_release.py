"""``mongoelector release KEY --force`` frees a lease; without ``--force`` it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from mongoelector import MongoLocker
from tests.cli.conftest import run_cli
from tests.cli.stores import database_of


def release(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return run_cli(capsys, "release", *args)


def test_without_force_it_refuses_and_changes_nothing(
    capsys: pytest.CaptureFixture[str], uri: str, ops: dict[str, Any]
) -> None:
    code, out, err = release(capsys, "--uri", uri, "nightly-report")

    assert (code, out) == (2, "")
    assert "refusing to release 'nightly-report' without --force" in err
    assert ops["lock"].owned()


def test_with_force_it_frees_the_lease_and_names_who_held_it(
    capsys: pytest.CaptureFixture[str], uri: str, ops: dict[str, Any]
) -> None:
    lock = ops["lock"]

    code, out, err = release(capsys, "--uri", uri, "nightly-report", "--force")

    assert (code, err) == (0, "")
    assert "released 'nightly-report' in mongolocker" in out
    assert f"uuid {lock.uuid}) with token {lock.token}" in out
    assert not lock.owned()
    successor = MongoLocker("nightly-report", database_of(uri), timeparanoid=False)
    assert successor.acquire(blocking=False)
    assert successor.token is not None and successor.token > lock.token


def test_an_election_lease_is_found_in_its_own_collection(
    capsys: pytest.CaptureFixture[str], uri: str, ops: dict[str, Any]
) -> None:
    code, out, _ = release(capsys, "--uri", uri, "scheduler", "--force")

    assert code == 0 and "released 'scheduler' in elector.locks" in out
    assert ops["leader"].mlock.owned() is False


def test_an_unknown_key_exits_4(
    capsys: pytest.CaptureFixture[str], uri: str, ops: dict[str, Any]
) -> None:
    code, _, err = release(capsys, "--uri", uri, "nope", "--force")

    assert code == 4
    assert "no lock or election named 'nope' in database 'app'" in err


def test_a_key_in_two_collections_needs_collection(
    capsys: pytest.CaptureFixture[str], uri: str
) -> None:
    database = database_of(uri)
    MongoLocker("twin", database, timeparanoid=False).acquire()
    MongoLocker("twin", database, dbcollection="elector.locks", timeparanoid=False).acquire()

    code, _, err = release(capsys, "--uri", uri, "twin", "--force")
    assert code == 2 and "choose one with --collection" in err

    code, out, _ = release(capsys, "--uri", uri, "twin", "--force", "--collection", "elector.locks")
    assert code == 0 and "in elector.locks" in out


def test_a_lease_nobody_holds_is_left_as_it_is(
    capsys: pytest.CaptureFixture[str], uri: str
) -> None:
    lock = MongoLocker("idle", database_of(uri), timeparanoid=False)
    lock.acquire()
    database_of(uri)["mongolocker"].update_one({"_id": "idle"}, {"$set": {"locked": False}})

    code, out, _ = release(capsys, "--uri", uri, "idle", "--force")

    assert code == 0
    assert f"'idle' in mongolocker was not held (token {lock.token}); nothing to release" in out
