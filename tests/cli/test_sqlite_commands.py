"""``status`` and ``release`` work on a SQLite file (``--sqlite FILE``) as on MongoDB.

The same table, the same ``--json`` document, the same exit codes: 0 done,
2 usage error, 3 the file cannot be opened, 4 unknown key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mongoelector.cli.release as release_command
import mongoelector.cli.status as status_command
from mongoelector import LeaderElector, Lock
from mongoelector.backends.sqlite import SQLiteBackend
from tests.cli.conftest import run_cli


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "leases.sqlite")


@pytest.fixture
def store(path: str) -> Iterator[SQLiteBackend]:
    with SQLiteBackend(path) as backend:
        yield backend


@pytest.fixture
def ops(store: SQLiteBackend) -> dict[str, Any]:
    """A held lock, and an election of three electors that each polled once."""
    lock = Lock("nightly-report", store, ttl=600)
    assert lock.acquire(blocking=False)
    electors = [LeaderElector("scheduler", store, ttl=15, app_version="1.4.2") for _ in range(3)]
    for elector in electors:
        elector.poll()
    [leader] = [elector for elector in electors if elector.is_leader]
    return {"lock": lock, "leader": leader}


def line_of(text: str, *words: str) -> str:
    [line] = [line for line in text.splitlines() if all(word in line.split() for word in words)]
    return line


def test_status_shows_each_key_with_holder_token_expiry_and_members(
    capsys: pytest.CaptureFixture[str], path: str, ops: dict[str, Any]
) -> None:
    code, out, err = run_cli(capsys, "status", "--sqlite", path)

    assert (code, err) == (0, "")
    assert out.startswith(f"SQLite file {path!r}\n")
    lock = ops["lock"]
    row = line_of(out, "nightly-report")
    for cell in ("mongoelector_leases", "held", lock.host, str(lock.pid), lock.uuid, "1"):
        assert cell in row.split()
    assert ops["leader"].uuid in line_of(out, "scheduler", "held").split()
    members = out.split("members:\n", 1)[1].splitlines()[1:]
    assert len(members) == 3 and members[0].split()[3] == ops["leader"].uuid


def test_status_json_has_the_same_document_as_for_mongodb(
    capsys: pytest.CaptureFixture[str], path: str, ops: dict[str, Any]
) -> None:
    code, out, _ = run_cli(capsys, "status", "--sqlite", path, "--json", "--key", "scheduler")

    assert code == 0
    document = json.loads(out)
    assert document["database"] == path
    [election] = document["keys"]
    assert election["holder"]["uuid"] == ops["leader"].uuid
    assert election["state"] == "held" and election["token"] == 1
    assert [m["is_leader"] for m in election["members"]] == [True, False, False]
    assert {m["app_version"] for m in election["members"]} == {"1.4.2"}


def test_status_of_an_unknown_key_exits_4(
    capsys: pytest.CaptureFixture[str], path: str, ops: dict[str, Any]
) -> None:
    code, out, err = run_cli(capsys, "status", "--sqlite", path, "--key", "nope")

    assert (code, out) == (4, "")
    assert f"no lock or election named 'nope' in SQLite file {path!r}" in err


def test_release_frees_the_lease_and_names_who_held_it(
    capsys: pytest.CaptureFixture[str], path: str, store: SQLiteBackend, ops: dict[str, Any]
) -> None:
    lock = ops["lock"]

    code, out, err = run_cli(capsys, "release", "nightly-report", "--sqlite", path, "--force")

    assert (code, err) == (0, "")
    assert f"released 'nightly-report' in SQLite file {path!r}" in out
    assert f"uuid {lock.uuid}) with token {lock.token}" in out
    assert not lock.owned()
    successor = Lock("nightly-report", store)
    assert successor.acquire(blocking=False) and successor.token == 2


def test_release_refuses_without_force_and_of_an_unknown_key_exits_4(
    capsys: pytest.CaptureFixture[str], path: str, ops: dict[str, Any]
) -> None:
    code, _, err = run_cli(capsys, "release", "nightly-report", "--sqlite", path)
    assert code == 2 and "without --force" in err
    assert ops["lock"].owned()

    code, _, err = run_cli(capsys, "release", "nope", "--sqlite", path, "--force")
    assert code == 4 and "no lock or election named 'nope'" in err


@pytest.mark.parametrize(
    "command",
    [("status",), ("status", "--key", "k"), ("release", "k", "--force")],
)
def test_a_missing_file_exits_3_at_once_and_is_not_created(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: tuple[str, ...]
) -> None:
    missing = tmp_path / "typo.sqlite"

    code, out, err = run_cli(capsys, *command, "--sqlite", str(missing))

    assert (code, out) == (3, "")
    assert f"cannot open SQLite file {str(missing)!r}: no such file" in err
    assert not missing.exists()


def test_a_file_that_is_not_a_database_exits_3_with_the_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database, just some words that fill a page " * 100)

    code, _, err = run_cli(capsys, "status", "--sqlite", str(notes))

    assert code == 3
    assert "file is not a database" in err


@pytest.mark.parametrize(
    "extra",
    [("--db", "app"), ("--collection", "locks"), ("--status-collection", "s")],
)
def test_mongodb_options_with_sqlite_are_usage_errors(
    capsys: pytest.CaptureFixture[str], path: str, extra: tuple[str, str]
) -> None:
    code, _, err = run_cli(capsys, "status", "--sqlite", path, *extra)

    assert code == 2 and f"{extra[0]} needs --uri" in err


def test_sqlite_and_uri_are_exclusive_and_one_is_required(
    capsys: pytest.CaptureFixture[str], path: str
) -> None:
    for args in (["--sqlite", path, "--uri", "mongomock://x/app"], []):
        with pytest.raises(SystemExit) as exited:
            run_cli(capsys, "status", *args)
        assert exited.value.code == 2


def test_a_uri_of_another_scheme_is_refused_naming_every_accepted_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_cli(capsys, "status", "--uri", "sqlite:///tmp/x.sqlite")

    assert code == 2
    for scheme in ("'mongodb://'", "'mongodb+srv://'", "'mongomock://'", "--sqlite FILE"):
        assert scheme in err


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("--key", ""), "bad --key: key must be a non-empty string"),
        (("--collection", "a$b"), "bad --collection: collection must not contain '$'"),
        (("--collection", ""), "bad --collection: collection must not be empty"),
        (("--status-collection", "x.."), "bad --status-collection"),
    ],
)
def test_status_checks_key_and_collections_before_connecting(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, str],
    complaint: str,
) -> None:
    def never(*_: object, **__: object) -> None:
        raise AssertionError("connected before checking the arguments")

    monkeypatch.setattr(status_command, "open_database", never)

    code, _, err = run_cli(capsys, "status", "--uri", "mongodb://127.0.0.1:1/app", *args)

    assert code == 2 and complaint in err


def test_release_checks_key_and_collection_before_connecting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*_: object, **__: object) -> None:
        raise AssertionError("connected before checking the arguments")

    monkeypatch.setattr(release_command, "open_database", never)
    uri = "mongodb://127.0.0.1:1/app"

    code, _, err = run_cli(capsys, "release", "k", "--force", "--uri", uri, "--collection", "")
    assert code == 2 and "bad --collection" in err
    code, _, err = run_cli(capsys, "release", "", "--force", "--uri", uri)
    assert code == 2 and "bad KEY" in err
