"""How a fenced write is rewritten (pure: no I/O), shared by the sync and async wrappers.

Every rewritten filter keeps the caller's top-level fields (so an upsert still
builds its new document from them) and adds one clause under ``$and``: the
fencing field is missing or not greater than the token.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bson.regex import Regex
from pymongo import DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne
from pymongo.results import BulkWriteResult, DeleteResult, UpdateResult

from mongoelector.errors import StaleToken

__all__ = [
    "Fence",
    "FencedBulkWriteResult",
    "FencedDeleteResult",
    "FencedUpdateResult",
    "Request",
]

#: The request types ``bulk_write`` accepts.
Request = InsertOne[Any] | UpdateOne | UpdateMany | ReplaceOne[Any] | DeleteOne | DeleteMany

#: The server's duplicate-key error codes (as pymongo's ``DuplicateKeyError`` reads them).
_DUPLICATE_KEY_CODES = (11000, 11001, 12582)

#: Pipeline stages that name the fields they write.
_WRITING_STAGES = ("$set", "$addFields", "$unset")


class FencedUpdateResult(UpdateResult):
    """pymongo's ``UpdateResult``, plus ``skipped``: matched documents left alone as newer."""

    def __init__(self, result: UpdateResult, skipped: int) -> None:
        super().__init__(result.raw_result, result.acknowledged)
        self.skipped = skipped


class FencedDeleteResult(DeleteResult):
    """pymongo's ``DeleteResult``, plus ``skipped``: matched documents left alone as newer."""

    def __init__(self, result: DeleteResult, skipped: int) -> None:
        super().__init__(result.raw_result, result.acknowledged)
        self.skipped = skipped


class FencedBulkWriteResult(BulkWriteResult):
    """pymongo's ``BulkWriteResult``, plus ``skipped`` summed over the requests' filters."""

    def __init__(self, result: BulkWriteResult, skipped: int) -> None:
        super().__init__(result.bulk_api_result, result.acknowledged)
        self.skipped = skipped


def _touches(name: str, field: str) -> bool:
    return name == field or name.startswith(field + ".") or field.startswith(name + ".")


def _pins_id(filter: Mapping[str, Any]) -> bool:
    """True if ``filter`` matches ``_id`` by equality: an upsert cannot add a second document."""
    if "_id" not in filter:
        return False
    value = filter["_id"]
    if isinstance(value, Mapping) and set(value) == {"$eq"}:
        value = value["$eq"]
    elif isinstance(value, Mapping):
        return not any(str(k).startswith("$") for k in value)
    # A regular expression matches by pattern, not equality (and so may miss a newer document).
    return not isinstance(value, (re.Pattern, Regex))


def _lookup(document: Mapping[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


class Fence:
    """The rewriting rules for one ``(key, token source, field)``."""

    def __init__(self, key: str, token: Callable[[], int], field: str) -> None:
        if not isinstance(field, str) or not field or field.startswith("$") or field == "_id":
            raise ValueError(f"field must name a document field other than _id, not {field!r}")
        self.key = key
        self.field = field
        self._token = token

    def token(self) -> int:
        """The token now: raises ``LockLost`` (from the lock or elector) when it is not trusted."""
        return self._token()

    def _with(self, filter: Mapping[str, Any], clause: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(filter, Mapping):
            raise TypeError(f"filter must be a mapping, not {type(filter).__name__}")
        rewritten = dict(filter)
        rewritten["$and"] = [*filter.get("$and", ()), clause]
        return rewritten

    def filter(self, filter: Mapping[str, Any], token: int) -> dict[str, Any]:
        """``filter``, restricted to documents whose field is missing or not above ``token``."""
        field = self.field
        # ``{field: None}`` matches a missing field and a null one: both carry no token.
        return self._with(filter, {"$or": [{field: None}, {field: {"$lte": token}}]})

    def newer(self, filter: Mapping[str, Any], token: int) -> dict[str, Any]:
        """``filter``, restricted to documents carrying a token newer than ``token``."""
        return self._with(filter, {self.field: {"$gt": token}})

    def update(
        self, update: Mapping[str, Any] | Sequence[Mapping[str, Any]], token: int
    ) -> dict[str, Any] | list[Mapping[str, Any]]:
        """``update`` that also sets the field to ``token``; refuses one that writes the field."""
        field = self.field
        if isinstance(update, Mapping):
            rewritten: dict[str, Any] = {}
            for operator, fields in update.items():
                if isinstance(fields, Mapping):
                    # $rename writes its targets (the values), the others their keys.
                    names = [*fields, *fields.values()] if operator == "$rename" else list(fields)
                    for name in names:
                        if _touches(str(name), field):
                            raise ValueError(
                                f"a fenced update must not write the fencing field {field!r} "
                                f"({operator} {name!r})"
                            )
                    rewritten[operator] = dict(fields)
                else:
                    rewritten[operator] = fields
            rewritten["$set"] = {**rewritten.get("$set", {}), field: token}
            return rewritten
        stages = list(update)
        for stage in stages:
            for operator, spec in stage.items():
                names = [spec] if isinstance(spec, str) else list(spec)
                if operator in _WRITING_STAGES and any(_touches(str(n), field) for n in names):
                    raise ValueError(
                        f"a fenced update must not write the fencing field {field!r} ({operator})"
                    )
        return [*stages, {"$set": {field: token}}]

    def document(self, document: Mapping[str, Any], token: int) -> dict[str, Any]:
        """A copy of ``document`` (insert or replacement) carrying ``token`` in the field."""
        if self.field.split(".")[0] in document:
            raise ValueError(f"a fenced write sets the fencing field {self.field!r} itself")
        stamped = dict(document)
        parts = self.field.split(".")
        target = stamped
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = token
        return stamped

    def check_upsert(self, filter: Mapping[str, Any], upsert: bool | None) -> None:
        """Refuses an upsert that could add a second document next to a newer one."""
        if upsert and not _pins_id(filter):
            raise ValueError(
                "a fenced upsert needs a filter that matches _id by equality: otherwise a "
                "document with a newer token would not match, and the upsert would insert "
                "a second one"
            )

    def stale(
        self, newer: Mapping[str, Any], token: int, details: Mapping[str, Any] | None = None
    ) -> StaleToken:
        return StaleToken(self.key, token, _lookup(newer, self.field), newer.get("_id"), details)

    @staticmethod
    def refused_upserts(details: Mapping[str, Any], requests: Sequence[Request]) -> list[int]:
        """The indexes of the upserts a ``BulkWriteError`` may have refused as stale.

        Empty unless every write error is a duplicate key on an upsert request
        (``UpdateOne``, ``UpdateMany`` or ``ReplaceOne`` with ``upsert=True``)
        and there is no write concern error: anything else is not (only) a
        stale upsert, and stays pymongo's ``BulkWriteError``. Each index still
        has to be confirmed by reading a newer document.
        """
        errors = details.get("writeErrors") or []
        if details.get("writeConcernErrors"):
            return []
        indexes: list[int] = []
        for error in errors:
            index = error.get("index")
            if error.get("code") not in _DUPLICATE_KEY_CODES or not isinstance(index, int):
                return []
            if not 0 <= index < len(requests):
                return []
            request = requests[index]
            if not isinstance(request, UpdateOne | UpdateMany | ReplaceOne) or not request._upsert:
                return []
            indexes.append(index)
        return indexes

    def request(self, request: Request, token: int) -> tuple[Request, dict[str, Any] | None]:
        """A fenced copy of a ``bulk_write`` request, and the filter to count skipped ones by.

        pymongo's request classes keep their arguments in private attributes
        (``_filter``, ``_doc``, ``_upsert``); the copy keeps every other option.
        """
        fenced: Any = copy.copy(request)
        if isinstance(request, InsertOne):
            fenced._doc = self.document(request._doc, token)
            return fenced, None
        if isinstance(request, UpdateOne | UpdateMany | ReplaceOne):
            self.check_upsert(request._filter, request._upsert)
            if isinstance(request, ReplaceOne):
                fenced._doc = self.document(request._doc, token)
            else:
                fenced._doc = self.update(request._doc, token)
        elif not isinstance(request, DeleteOne | DeleteMany):
            raise TypeError(f"not a bulk_write request: {request!r}")
        fenced._filter = self.filter(request._filter, token)
        return fenced, self.newer(request._filter, token)
