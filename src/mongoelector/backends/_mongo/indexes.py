"""The indexes the MongoDB backends ask for, and what a refusal means.

The lease collection gets the 1.x TTL index (``ts_expire``, expire after 0 s),
so documents of locks nobody uses any more go away and 1.x nodes, which
acquire by insert, get a turn after a 2.x release. The status collection gets
the 1.x indexes too: a TTL index on ``timestamp`` and an index on ``key``.
Neither is needed for safety: expiry is judged by the lease's own
``ts_expire``, never by whether the TTL monitor has run.

An index that already exists with other options (say a 1.x deployment made
the TTL index with another ``expireAfterSeconds``) is left as it is and
reported: the backends never drop an index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mongoelector.backends._mongo.documents import EXPIRES

__all__ = ["CONFLICT_CODES", "IndexSpec", "describe_refusal", "lease_indexes", "status_indexes"]

#: An index with this name or these keys exists with different options.
CONFLICT_CODES = frozenset(
    {
        85,  # IndexOptionsConflict
        86,  # IndexKeySpecsConflict
        68,  # IndexAlreadyExists
    }
)


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """One ``create_index(keys, **options)`` call."""

    keys: list[tuple[str, int]]
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        keys = ", ".join(f"{name}: {direction}" for name, direction in self.keys)
        options = "".join(f", {name}={value!r}" for name, value in self.options.items())
        return f"{{{keys}}}{options}"


def lease_indexes() -> list[IndexSpec]:
    """The indexes of a lease collection (the 1.x TTL index on ``ts_expire``)."""
    return [IndexSpec([(EXPIRES, 1)], {"expireAfterSeconds": 0})]


def status_indexes(ttl: float) -> list[IndexSpec]:
    """The indexes of a status collection, as a 1.x elector with this ``ttl`` makes them."""
    return [
        IndexSpec([("timestamp", 1)], {"expireAfterSeconds": int(ttl)}),
        IndexSpec([("key", 1)]),
    ]


def describe_refusal(collection: str, spec: IndexSpec, code: int | None, error: object) -> str:
    """The warning logged when the server refuses to create ``spec``."""
    if code in CONFLICT_CODES:
        return (
            f"index {spec.describe()} on {collection!r} conflicts with an existing index "
            f"({error}); leaving the existing index in place. Leases stay correct without "
            f"it; drop or fix the conflicting index by hand if you want the 1.x layout."
        )
    return (
        f"could not create index {spec.describe()} on {collection!r} ({error}); "
        f"leases stay correct without it."
    )
