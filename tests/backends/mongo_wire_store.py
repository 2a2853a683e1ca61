"""A lease store behind the scripted mockupdb primary, for tests that run many locks on the wire.

:class:`WireStore` answers, on its own, the commands the pipeline path of the
MongoDB backends sends for locks (acquire, renew, release as
``findAndModify``; ``renew_many`` as one ``update`` plus one ``find``), keeping
one document per key, and counts every command it answers. Status reports
(``update`` upserts of the status collection) are counted as ``"status update"``,
and the reported uuids kept in :attr:`WireStore.reported`. It is a model of
the server for counting round trips, not of its semantics: expiry is not
judged (every lease stays held until released), and times in its replies are
fixed. The exact commands are pinned by ``test_mongo_wire_batches.py``.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

from tests.backends.mongo_wire_support import NOW, Primary

__all__ = ["WireStore"]

_EXPIRES = NOW.replace(tzinfo=None) + timedelta(seconds=15)


class WireStore:
    """Lease documents kept for ``primary``'s clients; counts the commands answered, by name."""

    def __init__(self, primary: Primary) -> None:
        self.documents: dict[str, dict[str, Any]] = {}
        self.commands: Counter[str] = Counter()
        self.reported: set[str] = set()  # the uuids of the status reports received
        self.last_status: list[dict[str, Any]] = []  # the statements of the latest one
        self._tokens = itertools.count(1)
        self._guard = threading.Lock()
        primary.server.autoresponds(self._answer)

    @property
    def total(self) -> int:
        with self._guard:
            return sum(self.commands.values())

    def counted(self) -> Counter[str]:
        with self._guard:
            return Counter(self.commands)

    def _answer(self, request: Any) -> bool:
        name = getattr(request, "command_name", None)
        handler = {
            "findAndModify": self._find_and_modify,
            "update": self._update,
            "find": self._find,
        }.get(name or "")
        if handler is None:
            return False
        if name == "update" and request["update"] != "mongolocker":  # status reports
            with self._guard:
                self.commands["status update"] += 1
                self.reported.update(statement["q"]["_id"] for statement in request["updates"])
                self.last_status = list(request["updates"])
            return bool(request.ok(n=len(request["updates"]), nModified=0))
        with self._guard:
            self.commands[str(name)] += 1
            reply = handler(request)
        return bool(request.ok(**reply))

    def _find_and_modify(self, request: Any) -> dict[str, Any]:
        query = request["query"]
        key = query["_id"]
        update = request["update"]
        current = self.documents.get(key)
        if isinstance(update, list) and "$replaceWith" in update[0]:  # an acquire
            taken = update[0]["$replaceWith"]["$cond"]["then"]
            document = {
                "_id": key,
                "locked": True,
                "uuid": taken["uuid"]["$literal"],
                "host": "h",
                "pid": 7,
                "token": next(self._tokens),
                "acquire_id": taken["acquire_id"]["$literal"],
                "ts_created": NOW.replace(tzinfo=None),
                "ts_expire": _EXPIRES,
            }
            if current is not None and current.get("locked"):
                return {"value": current}  # held: refused (no expiry here)
            self.documents[key] = document
            return {"value": document}
        if not self._matches(current, query):
            return {"value": None}
        assert current is not None
        if "locked" in update[0]["$set"]:  # a release: the document before
            before = dict(current)
            current["locked"] = False
            return {"value": before}
        return {"value": current}  # a renewal: the document after (same fixed expiry)

    def _update(self, request: Any) -> dict[str, Any]:
        matched = sum(
            1
            for statement in request["updates"]
            if self._matches(self.documents.get(statement["q"]["_id"]), statement["q"])
        )
        return {"n": matched, "nModified": matched}

    def _find(self, request: Any) -> dict[str, Any]:
        wanted = request["filter"]["_id"]
        keys = wanted["$in"] if isinstance(wanted, dict) else [wanted]
        found = [self.documents[key] for key in keys if key in self.documents]
        return {"cursor": {"id": 0, "firstBatch": found, "ns": "app.mongolocker"}}

    @staticmethod
    def _matches(document: dict[str, Any] | None, query: dict[str, Any]) -> bool:
        return document is not None and all(
            document.get(field) == value for field, value in query.items()
        )
