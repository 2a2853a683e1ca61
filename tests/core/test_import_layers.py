"""The layers of the design are visible in the imports: the pure core loads no I/O.

Each check runs in a fresh interpreter, so that what an import pulls in is
not hidden by modules other tests loaded already.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Every module of the pure core.
CORE = [
    "mongoelector.core",
    "mongoelector.core.batching",
    "mongoelector.core.elector_machine",
    "mongoelector.core.events",
    "mongoelector.core.lease",
    "mongoelector.core.lock_machine",
    "mongoelector.core.renewal",
    "mongoelector.core.status",
]
#: What the core may import of mongoelector: the protocol below it and plain values.
ALLOWED = {
    "mongoelector",
    "mongoelector._validation",
    "mongoelector._value",  # the base of the plain value classes (no imports)
    "mongoelector.backends",  # the package, whose names are loaded lazily
    "mongoelector.backends.protocol",
    "mongoelector.timing",
}
WATCHED = ("pymongo", "bson", "threading", "asyncio", "sqlite3", "mongoelector")


def loaded_after(statement: str) -> list[str]:
    """The watched modules loaded in a fresh interpreter after ``statement``."""
    script = (
        f"import sys, json; {statement}; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {WATCHED!r})))"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout
    loaded: list[str] = json.loads(output)
    return loaded


def test_importing_the_core_loads_neither_pymongo_nor_threads_nor_a_backend() -> None:
    loaded = loaded_after("import " + ", ".join(CORE))

    assert not [m for m in loaded if m.split(".")[0] in ("pymongo", "bson")]
    assert "threading" not in loaded
    assert "asyncio" not in loaded and "sqlite3" not in loaded
    assert set(loaded) - set(CORE) <= ALLOWED, sorted(set(loaded) - set(CORE) - ALLOWED)


def test_the_protocol_alone_loads_nothing_heavy() -> None:
    loaded = loaded_after("import mongoelector.backends.protocol")

    assert set(loaded) == {
        "mongoelector",
        "mongoelector.backends",
        "mongoelector.backends.protocol",
    }


@pytest.mark.parametrize(
    ("statement", "module"),
    [
        (
            "from mongoelector import MongoLocker, MongoLeaderElector, Lock, LeaderElector",
            "mongoelector.locker",
        ),
        ("from mongoelector import *", "mongoelector.elector"),
        (
            "from mongoelector.backends import MongoBackend, RenewItem",
            "mongoelector.backends.mongo",
        ),
        ("import mongoelector; mongoelector.locker.MongoLocker._verifytime", "mongoelector.locker"),
        ("import mongoelector.backends as b; b.mongo.MongoBackend", "mongoelector.backends.mongo"),
    ],
)
def test_the_public_names_still_import_as_before(statement: str, module: str) -> None:
    """The lazy packages keep every name, and the submodules 1.x code reaches, importable."""
    assert module in loaded_after(statement)
