"""``mongoelector status``: every lock and election in a store, as a table or as JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from mongoelector._validation import check_key
from mongoelector.backends._mongo.validation import check_collection_name
from mongoelector.backends.mongo import DEFAULT_STATUS_COLLECTION
from mongoelector.cli.connect import open_database
from mongoelector.cli.errors import CliError, ExitCode
from mongoelector.cli.inventory import (
    DEFAULT_LEASE_COLLECTIONS,
    Inventory,
    KeyView,
    MemberView,
    read_inventory,
    read_sqlite_inventory,
)
from mongoelector.cli.options import add_connection_options, checked_option, refuse_without_uri
from mongoelector.cli.sqlite_store import open_sqlite
from mongoelector.cli.text import format_duration, format_time, render_table

__all__ = ["DESCRIPTION", "HELP", "NAME", "add_arguments", "render_json", "render_text", "run"]

NAME = "status"
HELP = "show every lock and election in a database"
DESCRIPTION = """\
Show every lock and election in a database: the key, who holds it (host, pid,
uuid), its fencing token, when it was acquired and how long until it expires
(by the server's clock), and for elections every member with its last status
report (members report every ttl/3 and whenever they gain or lose leadership).

Leases are looked for in the collections the library uses by default
(mongolocker for locks, elector.locks for elections) and in any given with
--collection; member reports in elector.leader_status (--status-collection).
With --sqlite FILE, every lease and live member report in that SQLite file
(the COLLECTION column then names its table, mongoelector_leases).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection_options(parser, sqlite=True)
    parser.add_argument("--key", metavar="KEY", help="show only this key (exit 4 if unknown)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--collection",
        action="append",
        default=[],
        metavar="NAME",
        help="also look for leases in this collection (repeatable; MongoDB only)",
    )
    parser.add_argument(
        "--status-collection",
        metavar="NAME",
        help=f"where electors report their status (default: {DEFAULT_STATUS_COLLECTION}; "
        f"MongoDB only)",
    )


def _check_arguments(args: argparse.Namespace) -> tuple[list[str], str]:
    """Check what can be checked before connecting (usage errors name the option).

    Return the lease collections and the status collection to read (for
    MongoDB; unused with ``--sqlite``).
    """
    if args.key is not None:
        checked_option(check_key, args.key, "--key")
    given = args.status_collection
    status_collection = DEFAULT_STATUS_COLLECTION if given is None else given
    if args.sqlite is not None:
        refuse_without_uri(
            args, {"--db": args.db, "--collection": args.collection, "--status-collection": given}
        )
        return [], status_collection
    for name in args.collection:
        checked_option(check_collection_name, name, "--collection")
    checked_option(check_collection_name, status_collection, "--status-collection")
    return list(dict.fromkeys([*DEFAULT_LEASE_COLLECTIONS, *args.collection])), status_collection


def run(args: argparse.Namespace, out: TextIO) -> ExitCode:
    collections, status_collection = _check_arguments(args)
    if args.sqlite is not None:
        with open_sqlite(args.sqlite, timeout=args.timeout, create=False) as backend:
            inventory = read_sqlite_inventory(backend, key=args.key)
        where = f"SQLite file {args.sqlite!r}"
        looked = ""
    else:
        with open_database(args.uri, args.db, timeout=args.timeout) as connection:
            inventory = read_inventory(
                connection.database,
                collections=collections,
                status_collection=status_collection,
                key=args.key,
                timeout=args.timeout,
            )
        where = f"database {inventory.database!r} at {connection.shown_uri}"
        looked = f" (looked in {', '.join(collections)} and {status_collection})"
    if args.key is not None and not inventory.keys:
        name = "database" if args.sqlite is None else "SQLite file"
        raise CliError(
            f"no lock or election named {args.key!r} in {name} {inventory.database!r}{looked}",
            ExitCode.NOT_FOUND,
        )
    if args.json:
        out.write(render_json(inventory) + "\n")
    else:
        out.write(f"{where}\n")
        out.write(render_text(inventory) + "\n")
    return ExitCode.OK


def _holder(view: KeyView) -> tuple[str, str, str]:
    record = view.record
    if record is None or record.owner is None:
        return "-", "-", "-"
    pid = "-" if record.pid is None else str(record.pid)
    return record.host or "-", pid, record.owner


def _expires(view: KeyView) -> str:
    if view.state == "held":
        return format_duration(view.expires_in)
    if view.state == "expired" and view.expires_in is not None:
        return f"expired {format_duration(-view.expires_in)} ago"
    return "-"


def _member_row(key: str, view: MemberView) -> list[str]:
    member = view.member
    return [
        key,
        member.host or "-",
        str(member.pid),
        member.uuid,
        "yes" if member.is_leader else "no",
        "yes" if member.elector_running else "no",
        "-" if member.token is None else str(member.token),
        _reported(view),
    ]


def _reported(view: MemberView) -> str:
    """How long ago the member reported; ``(stale)`` once that is over its ttl (it is gone)."""
    if view.age is None:
        return "-"
    stale = " (stale)" if view.age > view.member.ttl else ""
    return f"{format_duration(view.age)} ago{stale}"


def render_text(inventory: Inventory) -> str:
    """The inventory as two aligned tables: leases, then members."""
    precision = f" (±{format_duration(inventory.uncertainty)})" if inventory.uncertainty else ""
    lines = [f"server time {format_time(inventory.server_time)}{precision}", ""]
    if not inventory.keys:
        lines.append(f"no locks or elections found (looked in {', '.join(inventory.collections)})")
        return "\n".join(lines)
    rows = []
    for view in inventory.keys:
        host, pid, uuid = _holder(view)
        record = view.record
        rows.append(
            [
                view.key,
                view.collection or "-",
                view.state,
                host,
                pid,
                uuid,
                "-" if record is None else str(record.token),
                format_time(None if record is None else record.acquired_at),
                _expires(view),
            ]
        )
    headers = ["KEY", "COLLECTION", "STATE", "HOST", "PID", "UUID", "TOKEN", "ACQUIRED"]
    lines.append(render_table([*headers, "EXPIRES IN"], rows))
    members = [_member_row(view.key, member) for view in inventory.keys for member in view.members]
    if members:
        headers = ["KEY", "HOST", "PID", "UUID", "LEADER", "RUNNING", "TOKEN", "REPORTED"]
        lines += ["", "members:", render_table(headers, members)]
    return "\n".join(lines)


def _record_json(view: KeyView) -> dict[str, Any]:
    record = view.record
    holder = None
    if record is not None and record.owner is not None:
        holder = {"host": record.host, "pid": record.pid, "uuid": record.owner}
    return {
        "key": view.key,
        "collection": view.collection,
        "state": view.state,
        "holder": holder,
        "token": None if record is None else record.token,
        "acquired": None if record is None else _iso(record.acquired_at),
        "expires": None if record is None else _iso(record.expires_at),
        "expires_in": view.expires_in,
        "members": [
            {
                "host": m.member.host,
                "pid": m.member.pid,
                "uuid": m.member.uuid,
                "is_leader": m.member.is_leader,
                "running": m.member.elector_running,
                "token": m.member.token,
                "app_version": m.member.app_version,
                "reported": _iso(m.member.timestamp),
                "reported_age": m.age,
            }
            for m in view.members
        ],
    }


def _iso(value: Any) -> str | None:
    return None if value is None else format_time(value)


def render_json(inventory: Inventory) -> str:
    """The inventory as a JSON document (times as UTC ISO 8601, durations in seconds)."""
    document = {
        "database": inventory.database,
        "server_time": format_time(inventory.server_time),
        "server_time_uncertainty": inventory.uncertainty,
        "collections": list(inventory.collections),
        "keys": [_record_json(view) for view in inventory.keys],
    }
    return json.dumps(document, indent=2)
