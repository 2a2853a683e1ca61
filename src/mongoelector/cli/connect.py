"""Opening the database a command works on, with clear errors for bad URIs and absent servers.

``mongodb://`` and ``mongodb+srv://`` URIs go to pymongo, with server
selection bounded by the command's ``--timeout``; the server is pinged
before the command starts, so an unreachable server is reported at once.

``mongomock://NAME`` opens an in-process mongomock server instead (mongomock
must be installed). It is meant for tests and for trying the commands without
a server: every ``mongomock://`` URI with the same ``NAME`` shares one store
within a process (see :func:`mongomock_client`), and the store is gone when
the process ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pymongo
from pymongo.errors import (
    ConfigurationError,
    InvalidName,
    OperationFailure,
    PyMongoError,
)

from mongoelector.cli.errors import CliError, ExitCode
from mongoelector.cli.masking import mask_secrets

__all__ = ["MONGOMOCK_SCHEME", "SCHEMES", "Connection", "mongomock_client", "open_database"]

MONGOMOCK_SCHEME = "mongomock://"
#: Every URI scheme a command accepts.
SCHEMES = ("mongodb://", "mongodb+srv://", MONGOMOCK_SCHEME)
#: Server error codes that mean "you may not": authentication and authorization failures.
_REFUSED_CODES = frozenset({13, 18})

_mongomock_clients: dict[str, Any] = {}


def mongomock_client(uri: str) -> Any:
    """The process's mongomock client for ``uri`` (``mongomock://NAME[/DATABASE]``).

    The same ``NAME`` always gives the same client, so a test can fill a store
    and then run a command on it in the same process.
    """
    name = uri[len(MONGOMOCK_SCHEME) :].split("/", 1)[0] or "localhost"
    if name not in _mongomock_clients:
        try:
            import mongomock  # noqa: PLC0415 - optional; only this scheme needs it
        except ImportError as error:
            raise CliError(
                "mongomock:// URIs need the mongomock package (pip install mongomock)",
                ExitCode.USAGE,
            ) from error
        _mongomock_clients[name] = mongomock.MongoClient(tz_aware=True)
    return _mongomock_clients[name]


@dataclass(frozen=True, slots=True)
class Connection:
    """An open database, and how to name it in output (the URI with its password masked)."""

    database: Any
    shown_uri: str

    @property
    def name(self) -> str:
        return str(self.database.name)


def _short(error: BaseException) -> str:
    """The first sentence of a pymongo error (server selection errors run on for a page)."""
    return mask_secrets(str(error).split(", Timeout:", 1)[0].split("\n", 1)[0])


def _uri_error(uri: str, error: Exception) -> CliError:
    """What to say about a URI pymongo refused: malformed, or its SRV name did not resolve."""
    if "DNS" in str(error):  # mongodb+srv:// names are looked up while parsing
        return CliError(
            f"cannot resolve the servers of {mask_secrets(uri)}: {_short(error)}",
            ExitCode.UNREACHABLE,
        )
    return CliError(f"bad URI {mask_secrets(uri)}: {_short(error)}", ExitCode.USAGE)


def _check_scheme(uri: str) -> None:
    if not uri.startswith(SCHEMES):
        accepted = ", ".join(f"'{scheme}'" for scheme in SCHEMES[:-1])
        raise CliError(
            f"bad URI {mask_secrets(uri)}: Invalid URI scheme: URI must begin with {accepted} "
            f"or '{SCHEMES[-1]}' (for a SQLite file, use --sqlite FILE)",
            ExitCode.USAGE,
        )


def _database_name(uri: str, given: str | None) -> str:
    if given is not None:
        return given
    if uri.startswith(MONGOMOCK_SCHEME):
        path = uri[len(MONGOMOCK_SCHEME) :].split("/", 1)
        name = path[1].split("?", 1)[0] if len(path) > 1 else ""
    else:
        try:
            name = pymongo.uri_parser.parse_uri(uri, validate=False).get("database") or ""
        except (PyMongoError, ValueError) as error:
            raise _uri_error(uri, error) from error
    if not name:
        raise CliError(
            f"no database given: pass --db NAME or put one in the URI ({mask_secrets(uri)})",
            ExitCode.USAGE,
        )
    return name


def _client(uri: str, timeout: float) -> Any:
    if uri.startswith(MONGOMOCK_SCHEME):
        return mongomock_client(uri)
    millis = max(1, round(timeout * 1000))
    try:
        return pymongo.MongoClient(
            uri,
            serverSelectionTimeoutMS=millis,
            connectTimeoutMS=millis,
            tz_aware=True,
            appname="mongoelector-cli",
        )
    except (ConfigurationError, ValueError, TypeError) as error:
        raise _uri_error(uri, error) from error


def _ping(database: Any, shown: str, timeout: float) -> None:
    try:
        database.command("ping")
    except NotImplementedError:  # pragma: no cover - mongomock answers ping
        return
    except OperationFailure as error:
        if error.code in _REFUSED_CODES:
            raise CliError(
                f"the server at {shown} refused us: {_short(error)}", ExitCode.UNREACHABLE
            ) from error
        raise CliError(f"ping to {shown} failed: {_short(error)}", ExitCode.UNREACHABLE) from error
    except PyMongoError as error:
        raise CliError(
            f"cannot reach a MongoDB server at {shown} within {timeout:g}s: {_short(error)}",
            ExitCode.UNREACHABLE,
        ) from error


@contextlib.contextmanager
def open_database(uri: str, database: str | None, *, timeout: float) -> Iterator[Connection]:
    """Connect to ``uri`` and yield its ``database`` (default: the URI's), checked reachable.

    Raises :class:`CliError`: ``USAGE`` for a malformed URI (or one of a scheme
    not in :data:`SCHEMES`) or database name,
    ``UNREACHABLE`` when no server answers within ``timeout`` seconds or the
    server refuses our credentials. The client is closed on exit.
    """
    shown = mask_secrets(uri)
    _check_scheme(uri)
    name = _database_name(uri, database)
    client = _client(uri, timeout)
    try:
        try:
            handle = client[name]
        except (InvalidName, ValueError, TypeError) as error:
            raise CliError(
                f"bad database name {name!r}: {_short(error)}", ExitCode.USAGE
            ) from error
        _ping(handle, shown, timeout)
        yield Connection(database=handle, shown_uri=shown)
    finally:
        if not uri.startswith(MONGOMOCK_SCHEME):
            client.close()
