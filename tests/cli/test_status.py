"""``mongoelector status`` lists every lock and election, their holders, tokens and members."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.cli.conftest import run_cli
from tests.cli.stores import database_of


def status(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return run_cli(capsys, "status", *args)


def line_of(text: str, *words: str) -> str:
    [line] = [line for line in text.splitlines() if all(word in line.split() for word in words)]
    return line


def test_the_table_shows_each_key_with_holder_token_and_expiry(
    capsys: pytest.CaptureFixture[str], uri: str, ops: dict[str, Any]
) -> None:
    code, out, err = status(capsys, "--uri", uri)

    assert (code, err) == (0, "")
    lock, leader = ops["lock"], ops["leader"]
    row = line_of(out, "nightly-report")
    for cell in ("mongolocker", "held", lock.host, str(lock.pid), lock.uuid, str(lock.token)):
        assert cell in row.split()
    assert row.split()[-1].startswith("9m5")  # a 600 s lock expires in 9m5xs
    row = line_of(out, "scheduler", "elector.locks")
    assert leader.uuid in row.split() and str(leader.token) in row.split()


def test_columns_line_up(capsys: pytest.CaptureFixture[str], uri: str, ops: dict[str, Any]) -> None:
    _, out, _ = status(capsys, "--uri", uri)

    header = line_of(out, "KEY", "COLLECTION")
    for line in (line_of(out, "nightly-report"), line_of(out, "scheduler", "held")):
        for column in ("STATE", "TOKEN", "EXPIRES"):
            at = header.index(column)
            assert line[at - 2 : at] == "  " and line[at] != " "


def test_members_are_listed_leader_first_with_their_last_poll(
    capsys: pytest.CaptureFixture[str], uri: str, ops: dict[str, Any]
) -> None:
    _, out, _ = status(capsys, "--uri", uri)

    members = out.split("members:\n", 1)[1].splitlines()[1:]
    assert len(members) == 3
    assert members[0].split()[3] == ops["leader"].uuid
    assert [m.split()[4] for m in members] == ["yes", "no", "no"]
    assert all(m.endswith("ago") for m in members)


def test_json_has_the_same_facts_for_machines(
    capsys: pytest.CaptureFixture[str], uri: str, ops: dict[str, Any]
) -> None:
    code, out, _ = status(capsys, "--uri", uri, "--json")

    assert code == 0
    document = json.loads(out)
    assert document["database"] == "app"
    by_key = {entry["key"]: entry for entry in document["keys"]}
    lock = by_key["nightly-report"]
    assert lock["holder"] == {
        "host": ops["lock"].host,
        "pid": ops["lock"].pid,
        "uuid": ops["lock"].uuid,
    }
    assert lock["token"] == ops["lock"].token and lock["state"] == "held"
    assert 590 < lock["expires_in"] <= 600
    election = by_key["scheduler"]
    assert [m["is_leader"] for m in election["members"]] == [True, False, False]
    assert {m["app_version"] for m in election["members"]} == {"1.4.2"}


def test_key_narrows_to_one_and_an_unknown_key_exits_4(
    capsys: pytest.CaptureFixture[str], uri: str, ops: dict[str, Any]
) -> None:
    code, out, _ = status(capsys, "--uri", uri, "--key", "scheduler")
    assert code == 0 and "scheduler" in out and "nightly-report" not in out

    code, out, err = status(capsys, "--uri", uri, "--key", "nope")
    assert code == 4 and out == ""
    assert "no lock or election named 'nope' in database 'app'" in err


def test_expired_and_released_records_say_so(capsys: pytest.CaptureFixture[str], uri: str) -> None:
    now = datetime.now(timezone.utc)
    locks = database_of(uri)["mongolocker"]
    locks.insert_one(
        {
            "_id": "stale",
            "locked": True,
            "uuid": "u1",
            "host": "h1",
            "pid": 1,
            "token": 5,
            "ts_created": now - timedelta(minutes=5),
            "ts_expire": now - timedelta(seconds=30),
        }
    )
    locks.insert_one(
        {
            "_id": "done",
            "locked": False,
            "uuid": "u2",
            "host": "h2",
            "pid": 2,
            "token": 9,
            "ts_created": now - timedelta(minutes=5),
            "ts_expire": now - timedelta(minutes=1),
        }
    )

    _, out, _ = status(capsys, "--uri", uri)

    stale = line_of(out, "stale")
    assert "expired" in stale.split() and stale.endswith("ago") and "u1" in stale.split()
    done = line_of(out, "done")
    assert "released" in done.split() and "u2" not in done.split() and "9" in done.split()


def test_custom_collections_are_searched_too(capsys: pytest.CaptureFixture[str], uri: str) -> None:
    from mongoelector import MongoLocker

    MongoLocker(
        "custom-job", database_of(uri), dbcollection="my_locks", timeparanoid=False
    ).acquire()

    _, out, _ = status(capsys, "--uri", uri)
    assert "custom-job" not in out

    _, out, _ = status(capsys, "--uri", uri, "--collection", "my_locks")
    assert "my_locks" in line_of(out, "custom-job").split()


def test_an_empty_database_says_where_it_looked(
    capsys: pytest.CaptureFixture[str], uri: str
) -> None:
    code, out, _ = status(capsys, "--uri", uri)

    assert code == 0
    assert "no locks or elections found (looked in mongolocker, elector.locks)" in out


def test_a_member_that_stopped_reporting_is_marked_stale(
    capsys: pytest.CaptureFixture[str], uri: str
) -> None:
    now = datetime.now(timezone.utc)
    database_of(uri)["elector.leader_status"].insert_one(
        {"_id": "m1", "uuid": "m1", "key": "scheduler", "ttl": 15, "host": "h", "pid": 7,
         "is_leader": False, "elector_running": True, "timestamp": now - timedelta(seconds=60)}
    )  # fmt: skip

    _, out, _ = status(capsys, "--uri", uri)

    assert "no record" in line_of(out, "scheduler", "record")
    assert line_of(out, "m1").endswith("ago (stale)")
