"""The 1.x-compatible status dictionaries, built from state the caller already has."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from mongoelector.backends.protocol import LeaseRecord, MemberRecord

__all__ = ["cluster_detail", "lock_document", "lock_status", "member_document", "node_status"]


def lock_document(record: LeaseRecord) -> dict[str, Any]:
    """``record`` in the 1.x lock document layout, plus ``token``."""
    return {
        "_id": record.key,
        "locked": record.owner is not None,
        "host": record.host,
        "uuid": record.owner,
        "pid": record.pid,
        "ts_created": record.acquired_at,
        "ts_expire": record.expires_at,
        "token": record.token,
    }


def lock_status(
    *,
    uuid: str,
    key: str,
    ttl: float,
    timestamp: datetime,
    host: str,
    pid: int,
    holding: LeaseRecord | None,
    owned: bool,
) -> dict[str, Any]:
    """The 1.x ``status`` dict of a lock; ``holding`` is this lock's own record, if any."""
    return {
        "uuid": uuid,
        "key": key,
        "ttl": ttl,
        "timestamp": timestamp,
        "host": host,
        "pid": pid,
        "lock_owned": owned,
        "lock_created": holding.acquired_at if holding is not None else None,
        "lock_expires": holding.expires_at if holding is not None else None,
        "token": holding.token if holding is not None and owned else None,
    }


def node_status(
    status: dict[str, Any],
    *,
    is_leader: bool,
    elector_running: bool,
    last_poll: datetime | None,
    app_version: str | None,
) -> dict[str, Any]:
    """The 1.x ``node_status`` dict: a lock ``status`` plus the elector's own fields."""
    result = dict(status)
    result.update(
        {
            "_id": status["uuid"],
            "is_leader": is_leader,
            "elector_running": elector_running,
            "last_poll": last_poll,
        }
    )
    if app_version is not None:
        result["app_version"] = app_version
    return result


def member_document(member: MemberRecord) -> dict[str, Any]:
    """A member's status report as a 1.x ``member_detail`` entry (no ``_id``)."""
    document: dict[str, Any] = {
        "uuid": member.uuid,
        "key": member.key,
        "ttl": member.ttl,
        "timestamp": member.timestamp,
        "host": member.host,
        "pid": member.pid,
        "is_leader": member.is_leader,
        "elector_running": member.elector_running,
        "token": member.token,
    }
    if member.app_version is not None:
        document["app_version"] = member.app_version
    return document


def cluster_detail(
    members: Sequence[MemberRecord], leader: LeaseRecord | None, timestamp: datetime
) -> dict[str, Any]:
    """The 1.x ``cluster_detail`` dict; ``leader`` is the live lease record, if any."""
    ordered = sorted(members, key=lambda m: (m.timestamp is not None, m.timestamp), reverse=True)
    leader_entry = None
    if leader is not None and leader.owner is not None:
        leader_entry = {"host": leader.host, "process_id": leader.pid, "uuid": leader.owner}
    return {
        "member_detail": [member_document(m) for m in ordered],
        "leader": leader_entry,
        "timestamp": timestamp,
    }
