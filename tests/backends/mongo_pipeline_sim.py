"""Runs MongoBackend's update pipelines inside mongomock, which cannot evaluate them itself.

mongomock hands pipeline updates to its aggregation engine, which lacks
``$replaceWith``, ``$$NOW`` and date arithmetic. This module evaluates the
subset of aggregation expressions the backend sends, following MongoDB's
documented semantics (BSON comparison order across types, missing fields,
``$max`` ignoring nulls, date + milliseconds), with ``$$NOW`` read from a
test clock. It is a model of the server, not the server: the wire-level
tests pin the exact commands, and the real-server suite
(``MONGOELECTOR_TEST_URI``) is the authority on what MongoDB does with them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import mongomock.collection
import pytest

from tests.backends.mongomock_atomic import make_commands_atomic

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()


def _rank(value: Any) -> int:
    """BSON comparison order: missing, null, numbers, strings, objects, arrays, bool, date."""
    if value is MISSING:
        return 0
    if value is None:
        return 1
    if isinstance(value, bool):
        return 7
    if isinstance(value, (int, float)):
        return 2
    if isinstance(value, str):
        return 3
    if isinstance(value, Mapping):
        return 4
    if isinstance(value, list):
        return 5
    if isinstance(value, datetime):
        return 8
    raise NotImplementedError(f"cannot order {value!r}")


def _compare(left: Any, right: Any) -> int:
    rank_l, rank_r = _rank(left), _rank(right)
    if rank_l != rank_r:
        return -1 if rank_l < rank_r else 1
    if rank_l <= 1:
        return 0
    if left == right:
        return 0
    return -1 if left < right else 1


def _truthy(value: Any) -> bool:
    return not (value is MISSING or value is None or value is False or value == 0)


def _nullish(value: Any) -> bool:
    return value is MISSING or value is None


class Evaluator:
    """Evaluates expressions against ``root`` with ``$$NOW`` = ``now`` (naive UTC, whole ms)."""

    def __init__(self, root: Mapping[str, Any], now: datetime) -> None:
        self.root = root
        self.now = now

    def __call__(self, expression: Any) -> Any:
        if isinstance(expression, str):
            return self._path(expression)
        if isinstance(expression, list):
            return [self(item) for item in expression]
        if isinstance(expression, Mapping):
            if len(expression) == 1:
                ((name, argument),) = expression.items()
                if name.startswith("$"):
                    return self._operator(name, argument)
            result = {}
            for name, item in expression.items():
                value = self(item)
                if value is not MISSING:
                    result[name] = value
            return result
        return expression

    def _path(self, text: str) -> Any:
        if text == "$$NOW":
            return self.now
        if text == "$$ROOT":
            return dict(self.root)
        if text.startswith("$$"):
            raise NotImplementedError(f"variable {text}")
        if not text.startswith("$"):
            return text
        value: Any = self.root
        for part in text[1:].split("."):
            if not isinstance(value, Mapping) or part not in value:
                return MISSING
            value = value[part]
        return value

    def _args(self, argument: Any) -> list[Any]:
        return [self(item) for item in (argument if isinstance(argument, list) else [argument])]

    def _operator(self, name: str, argument: Any) -> Any:
        if name == "$literal":
            return argument
        if name == "$cond":
            if isinstance(argument, Mapping):
                test, then, other = argument["if"], argument["then"], argument["else"]
            else:
                test, then, other = argument
            return self(then) if _truthy(self(test)) else self(other)
        args = self._args(argument)
        comparisons: dict[str, Callable[[int], bool]] = {
            "$eq": lambda c: c == 0,
            "$ne": lambda c: c != 0,
            "$gt": lambda c: c > 0,
            "$gte": lambda c: c >= 0,
            "$lt": lambda c: c < 0,
            "$lte": lambda c: c <= 0,
        }
        if name in comparisons:
            left, right = args
            return comparisons[name](_compare(left, right))
        if name == "$or":
            return any(_truthy(value) for value in args)
        if name == "$and":
            return all(_truthy(value) for value in args)
        if name == "$not":
            return not _truthy(args[0])
        if name == "$ifNull":
            *candidates, fallback = args
            return next((value for value in candidates if not _nullish(value)), fallback)
        if name in ("$max", "$min"):
            present = [value for value in args if not _nullish(value)]
            if not present:
                return None
            best = present[0]
            for value in present[1:]:
                order = _compare(value, best)
                if (name == "$max" and order > 0) or (name == "$min" and order < 0):
                    best = value
            return best
        if name == "$add":
            if any(_nullish(value) for value in args):
                return None
            dates = [value for value in args if isinstance(value, datetime)]
            numbers = sum(value for value in args if not isinstance(value, datetime))
            if len(dates) > 1:
                raise ValueError("$add can add only one date")
            if dates:
                return dates[0] + timedelta(milliseconds=numbers)
            return numbers
        if name == "$multiply":
            if any(_nullish(value) for value in args):
                return None
            product = 1
            for value in args:
                product *= value
            return product
        if name == "$toLong":
            (value,) = args
            if _nullish(value):
                return None
            if isinstance(value, datetime):
                return (value - datetime(1970, 1, 1)) // timedelta(milliseconds=1)
            return int(value)
        raise NotImplementedError(f"operator {name}")


def apply_pipeline(
    document: Mapping[str, Any], pipeline: list[Any], now: datetime
) -> dict[str, Any]:
    """``document`` after the update ``pipeline`` (``$set``/``$addFields``/``$replaceWith``)."""
    current = dict(document)
    for stage in pipeline:
        ((name, argument),) = stage.items()
        evaluate = Evaluator(current, now)
        if name in ("$set", "$addFields"):
            updated = dict(current)
            for field, expression in argument.items():
                value = evaluate(expression)
                if value is MISSING:
                    updated.pop(field, None)
                else:
                    updated[field] = value
            current = updated
        elif name in ("$replaceWith", "$replaceRoot"):
            replacement = evaluate(argument["newRoot"] if name == "$replaceRoot" else argument)
            if not isinstance(replacement, Mapping):
                raise ValueError(f"{name} needs a document, got {replacement!r}")
            current = dict(replacement)
        else:
            raise NotImplementedError(f"stage {name}")
    if current.get("_id", MISSING) != document.get("_id", MISSING):
        raise ValueError("the pipeline changed _id")
    return current


def install(monkeypatch: pytest.MonkeyPatch, now: Callable[[], datetime]) -> None:
    """Make mongomock evaluate pipeline updates with this module, ``$$NOW`` = ``now()``.

    Each command also runs whole (:func:`make_commands_atomic`): ``apply`` changes the
    stored document in place, as mongomock's update requires, and a read in another
    thread must not copy it half-changed.
    """
    make_commands_atomic(monkeypatch)

    def apply(self: Any, existing: dict[str, Any], pipeline: list[Any], session: Any) -> None:
        moment = now().astimezone(timezone.utc).replace(tzinfo=None)
        moment = moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)
        updated = apply_pipeline(existing, pipeline, moment)
        existing.clear()
        existing.update(updated)

    monkeypatch.setattr(mongomock.collection.Collection, "_apply_update_pipeline", apply)
