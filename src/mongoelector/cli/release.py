"""``mongoelector release KEY --force``: free a lease whoever holds it (a last resort)."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from mongoelector._validation import check_key
from mongoelector.backends._mongo.validation import check_collection_name
from mongoelector.backends.mongo import MongoBackend
from mongoelector.backends.protocol import LeaseRecord
from mongoelector.cli.connect import open_database
from mongoelector.cli.errors import CliError, ExitCode
from mongoelector.cli.inventory import DEFAULT_LEASE_COLLECTIONS
from mongoelector.cli.masking import mask_secrets
from mongoelector.cli.options import add_connection_options, checked_option, refuse_without_uri
from mongoelector.cli.sqlite_store import open_sqlite
from mongoelector.errors import BackendError

__all__ = ["DESCRIPTION", "HELP", "NAME", "add_arguments", "run"]

NAME = "release"
HELP = "force-release a lock or an election's lease (needs --force)"
DESCRIPTION = """\
Release the lease on KEY whoever holds it. The holder is not told: it goes on
believing it holds the lease until its renew deadline (at most the lease ttl),
so work it does meanwhile may overlap the next holder's. The next holder gets
a greater fencing token, so stores that check tokens reject the old holder's
writes. Because of that risk the command refuses to run without --force.
With --sqlite FILE it releases the lease in that SQLite file.
"""

REFUSAL = (
    "refusing to release {key!r} without --force: the holder is not told, and keeps "
    "acting as holder until its renew deadline; pass --force if that is what you want"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", metavar="KEY", help="the key to release")
    add_connection_options(parser, sqlite=True)
    parser.add_argument("--force", action="store_true", help="really release it, whoever holds it")
    parser.add_argument(
        "--collection",
        metavar="NAME",
        help="the lease collection (default: look in "
        + " and ".join(DEFAULT_LEASE_COLLECTIONS)
        + "; MongoDB only)",
    )


def _find(database: Any, key: str, collections: list[str], timeout: float) -> MongoBackend:
    """The backend on the collection holding ``key``'s record; ``NOT_FOUND`` if none has it."""
    found: list[MongoBackend] = []
    for collection in collections:
        backend = MongoBackend(
            database, collection, status_collection=None, create_indexes=False, timeout=timeout
        )
        if backend.get(key) is not None:
            found.append(backend)
    if not found:
        raise CliError(
            f"no lock or election named {key!r} in database {database.name!r} "
            f"(looked in {', '.join(collections)})",
            ExitCode.NOT_FOUND,
        )
    if len(found) > 1:
        names = ", ".join(backend.collection.name for backend in found)
        raise CliError(
            f"{key!r} is in several collections ({names}); choose one with --collection",
            ExitCode.USAGE,
        )
    return found[0]


def _describe(record: LeaseRecord) -> str:
    pid = "?" if record.pid is None else record.pid
    return f"{record.host or '?'} (pid {pid}, uuid {record.owner})"


def _outcome(where: str, before: LeaseRecord, released: bool) -> str:
    if released:
        return (
            f"released {where}: it was held by {_describe(before)} with token {before.token}; "
            f"the next holder gets a greater token\n"
        )
    return f"{where} was not held (token {before.token}); nothing to release\n"


def _release_in_sqlite(args: argparse.Namespace, out: TextIO) -> ExitCode:
    with open_sqlite(args.sqlite, timeout=args.timeout, create=False) as backend:
        try:
            before = backend.get(args.key)
            if before is None:
                raise CliError(
                    f"no lock or election named {args.key!r} in SQLite file {args.sqlite!r}",
                    ExitCode.NOT_FOUND,
                )
            released = backend.release(args.key, None, force=True)
        except BackendError as error:
            raise CliError(
                f"release of {args.key!r} failed: {error}", ExitCode.UNREACHABLE
            ) from error
    out.write(_outcome(f"{args.key!r} in SQLite file {args.sqlite!r}", before, released))
    return ExitCode.OK


def run(args: argparse.Namespace, out: TextIO) -> ExitCode:
    checked_option(check_key, args.key, "KEY")
    if not args.force:
        raise CliError(REFUSAL.format(key=args.key), ExitCode.USAGE)
    if args.sqlite is not None:
        refuse_without_uri(args, {"--db": args.db, "--collection": args.collection})
        return _release_in_sqlite(args, out)
    if args.collection is not None:
        checked_option(check_collection_name, args.collection, "--collection")
    collections = (
        [args.collection] if args.collection is not None else list(DEFAULT_LEASE_COLLECTIONS)
    )
    with open_database(args.uri, args.db, timeout=args.timeout) as connection:
        try:
            backend = _find(connection.database, args.key, collections, args.timeout)
            before = backend.get(args.key)
            assert before is not None
            released = backend.release(args.key, None, force=True)
        except BackendError as error:
            raise CliError(
                f"release of {args.key!r} failed: {mask_secrets(str(error))}", ExitCode.UNREACHABLE
            ) from error
    out.write(_outcome(f"{args.key!r} in {backend.collection.name}", before, released))
    return ExitCode.OK
