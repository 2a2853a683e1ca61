"""Threads sharing a mongomock store see each command run whole, as on a MongoDB server.

Without :mod:`mongomock_atomic`, mongomock lets commands of different threads
interleave: a read copying a stored document while an update (or the pipeline
model's ``apply``) changes it in place raises ``RuntimeError: OrderedDict
mutated during iteration``, and two ``findAndModify`` compare-and-sets that
read the same version both apply. The tests make threads switch every
microsecond, so an interleaving that a loaded machine produces once in many
runs happens in nearly every run; what they count is the outcome, never time.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import mongomock
import pytest

from mongoelector.testing import BackendHarness, check_backend
from tests.backends import mongomock_atomic
from tests.backends.mongo_support import MONGO_KINDS, make_store

THREADS = 4
ROUNDS = 200
#: The conformance checks that call one backend from several threads at once.
THREAD_CHECKS = ("one_winner_per_round_among_threads", "threads_on_different_keys_all_win")

Update = Callable[[int, str], Any]

UPDATES: dict[str, Update] = {
    "mongomock-classic": lambda seen, name: {"$set": {"n": seen + 1, "by": name}},
    "mongomock-pipeline": lambda seen, name: [
        {"$set": {"n": {"$literal": seen + 1}, "by": name, "at": "$$NOW"}}
    ],
}


@pytest.fixture
def frequent_switches() -> Iterator[None]:
    """Threads switch every microsecond instead of every 5 ms, as under heavy load."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


@dataclass
class Hammering:
    """What threads reading and compare-and-setting one document saw."""

    raised: list[BaseException] = field(default_factory=list)
    granted: int = 0
    final: int = 0


def hammer(collection: Any, update: Update) -> Hammering:
    """``THREADS`` threads each ``ROUNDS`` times read ``n`` and set it to one more if unchanged."""
    collection.insert_one({"_id": "doc", "n": 0})
    outcome = Hammering()
    tally = threading.Lock()
    start = threading.Barrier(THREADS)

    def work(name: str) -> None:
        start.wait()
        for _ in range(ROUNDS):
            try:
                seen = collection.find_one({"_id": "doc"})["n"]
                won = collection.find_one_and_update({"_id": "doc", "n": seen}, update(seen, name))
            except Exception as error:  # every failure (a torn read too) is the finding
                with tally:
                    outcome.raised.append(error)
                continue
            if won is not None:
                with tally:
                    outcome.granted += 1

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcome.final = collection.find_one({"_id": "doc"})["n"]
    return outcome


@pytest.mark.parametrize("kind", list(UPDATES))
@pytest.mark.usefixtures("frequent_switches")
def test_threads_hammering_one_document_see_each_command_whole(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No read copies a half-changed document, and no two compare-and-sets take one version."""
    outcome = hammer(make_store(kind, monkeypatch).collection, UPDATES[kind])
    assert outcome.raised == []
    assert outcome.final == outcome.granted  # each granted set moved n by one
    assert outcome.granted > 0


@pytest.mark.usefixtures("frequent_switches")
def test_a_database_made_without_make_store_runs_each_command_whole_too() -> None:
    """The suite's conftest makes commands atomic for every test, not only for stores."""
    outcome = hammer(mongomock.MongoClient()["app"]["leases"], UPDATES["mongomock-classic"])
    assert outcome.raised == []
    assert outcome.final == outcome.granted


@pytest.mark.parametrize("kind", list(UPDATES))
@pytest.mark.usefixtures("frequent_switches")
def test_the_hammer_catches_commands_that_interleave(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation: with the server lock gone, the hammer sees a torn read or a double grant."""
    collection = make_store(kind, monkeypatch).collection
    monkeypatch.setattr(mongomock_atomic, "SERVER", contextlib.nullcontext())
    outcome = hammer(collection, UPDATES[kind])
    assert outcome.raised or outcome.final != outcome.granted


@pytest.mark.parametrize("kind", MONGO_KINDS)
@pytest.mark.usefixtures("frequent_switches")
def test_the_thread_conformance_checks_pass_on_mongomock_under_frequent_switches(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flake this module fixes: the checks failed in most such runs on the sync stores."""

    def factory() -> BackendHarness:
        store = make_store(kind, monkeypatch)
        return BackendHarness(
            backend=store.backend, advance=store.clock.advance, delete_record=store.delete
        )

    for _ in range(5):
        report = check_backend(factory, only=THREAD_CHECKS)
        assert report.ok, str(report)
