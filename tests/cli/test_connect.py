"""Bad URIs, missing databases and unreachable servers end a command with a clear message."""

from __future__ import annotations

import pymongo
import pytest
from pymongo.errors import ConfigurationError

from mongoelector.cli import main
from mongoelector.cli.connect import mongomock_client, open_database
from mongoelector.cli.errors import CliError, ExitCode
from tests.cli.stores import fresh_uri


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err


def test_an_unreachable_server_exits_3_naming_it_without_its_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = "mongodb://admin:hunter2@127.0.0.1:1/app"

    code, err = run(capsys, "status", "--uri", uri, "--timeout", "0.2")

    assert code == ExitCode.UNREACHABLE == 3
    assert "cannot reach a MongoDB server at mongodb://admin:***@127.0.0.1:1/app within 0.2s" in err
    assert "hunter2" not in err


@pytest.mark.parametrize(
    ("uri", "complaint"),
    [
        ("http://db1/app", "Invalid URI scheme"),
        ("mongodb://admin:pa@ss@db1/app", "must be escaped"),
        ("mongodb://db1:port/app", "Port contains non-digit characters"),
    ],
)
def test_a_bad_uri_exits_2(capsys: pytest.CaptureFixture[str], uri: str, complaint: str) -> None:
    code, err = run(capsys, "release", "k", "--force", "--uri", uri)

    assert code == ExitCode.USAGE == 2
    assert err.startswith("mongoelector release: error: bad URI ") and complaint in err
    assert "pa@ss" not in err


def test_the_database_comes_from_db_or_from_the_uri(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "status", "--uri", "mongodb://127.0.0.1:1")
    assert code == 2 and "no database given: pass --db NAME or put one in the URI" in err

    with open_database("mongomock://x/fromuri", None, timeout=1) as connection:
        assert connection.name == "fromuri"
    with open_database("mongomock://x/fromuri", "given", timeout=1) as connection:
        assert connection.name == "given"


def test_a_bad_database_name_exits_2() -> None:
    opening = open_database("mongodb://127.0.0.1:1", "a/b", timeout=0.1)
    with pytest.raises(CliError, match="bad database name 'a/b'") as caught, opening:
        pass
    assert caught.value.code is ExitCode.USAGE


def test_mongomock_uris_with_one_name_share_one_store() -> None:
    uri = fresh_uri()
    mongomock_client(uri)["app"]["things"].insert_one({"_id": 1})

    assert mongomock_client(uri + "?x=1") is mongomock_client(uri)
    assert mongomock_client(fresh_uri())["app"]["things"].count_documents({}) == 0


def test_an_srv_name_that_does_not_resolve_is_unreachable_not_bad(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_dns(*args: object, **kwargs: object) -> None:
        raise ConfigurationError("The DNS query name does not exist: _mongodb._tcp.db.example.")

    monkeypatch.setattr(pymongo, "MongoClient", no_dns)
    monkeypatch.setattr(pymongo.uri_parser, "parse_uri", no_dns)

    code, err = run(capsys, "status", "--uri", "mongodb+srv://ops:pw@db.example/app")

    assert code == 3
    assert "cannot resolve the servers of mongodb+srv://ops:***@db.example/app" in err
