"""The test evaluator of update pipelines follows MongoDB's documented expression semantics.

The pipeline-path tests on mongomock are only as good as this model, so the
rules they depend on are pinned here: missing fields sort before everything,
``$max``/``$min`` skip nulls, ``$ifNull`` replaces missing and null, a date
plus a number is a date that many milliseconds later, ``$literal`` is never
evaluated, and an upsert starts from the filter's ``_id``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.backends.mongo_pipeline_sim import Evaluator, apply_pipeline

NOW = datetime(2030, 1, 1)


def evaluate(expression: object, document: dict[str, object] | None = None) -> object:
    return Evaluator(document or {"_id": 1}, NOW)(expression)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"$ne": ["$missing", True]}, True),
        ({"$lte": ["$missing", "$$NOW"]}, True),
        ({"$lt": [5, "text"]}, True),
        ({"$lt": ["text", "$$NOW"]}, True),
        ({"$lt": [True, "$$NOW"]}, True),
        ({"$max": [None, 3, "$missing"]}, 3),
        ({"$min": ["$missing", None]}, None),
        ({"$ifNull": ["$missing", 0]}, 0),
        ({"$ifNull": [None, 7]}, 7),
        ({"$add": ["$$NOW", 1500]}, NOW + timedelta(milliseconds=1500)),
        ({"$add": ["$missing", 1]}, None),
        ({"$toLong": "$$NOW"}, 1893456000000),
        ({"$literal": "$$ROOT"}, "$$ROOT"),
        ({"$literal": {"$gt": ""}}, {"$gt": ""}),
        ({"$cond": {"if": 0, "then": "yes", "else": "no"}}, "no"),
        ({"$or": [False, None, "$missing"]}, False),
    ],
)
def test_expressions(expression: object, expected: object) -> None:
    assert evaluate(expression) == expected


def test_object_literals_drop_missing_fields() -> None:
    assert evaluate({"a": "$missing", "b": 1}) == {"b": 1}


def test_replace_with_keeps_or_replaces_the_document() -> None:
    document = {"_id": "k", "locked": True, "x": 1}
    keep = [{"$replaceWith": {"$cond": [False, {"_id": "$_id"}, "$$ROOT"]}}]
    assert apply_pipeline(document, keep, NOW) == document
    replace = [{"$replaceWith": {"$cond": [True, {"_id": "$_id", "y": 2}, "$$ROOT"]}}]
    assert apply_pipeline(document, replace, NOW) == {"_id": "k", "y": 2}


def test_a_pipeline_may_not_change_the_id() -> None:
    with pytest.raises(ValueError):
        apply_pipeline({"_id": "k"}, [{"$replaceWith": {"_id": "other"}}], NOW)
