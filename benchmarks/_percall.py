"""The cost of one call, shared by the 1.x and 2.x scenario runners.

Times here are *ratios measured side by side*: each figure is timed in
alternating batches with the thing it is compared to, in one process, and
the median batch is kept. Three ways to look at an acquire+release pair:

* **Own code**: the time a pair takes minus the time spent inside the store's
  collection methods (:class:`TimingDatabase` measures that). That is the
  library's own cost against a store that does no I/O, whatever the store.
* **Client CPU on the wire**: CPU time of the calling thread (so not the
  in-process server's threads) per pair, next to raw pymongo sending the same
  commands from the same thread.
* **Import**: seconds that ``import mongoelector`` and its lock classes
  (``Lock`` and ``MongoLocker``, where the version has them) add to ``import
  pymongo``, each measured in a fresh interpreter with the bytecode cached,
  as an installed package has it.

Like :mod:`_counting`, this module needs only the standard library and
pymongo, since the 1.x runner imports it from its own virtual environment.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["TimingDatabase", "import_seconds", "side_by_side"]

#: Rounds of alternating batches; the median round is kept.
ROUNDS = 7
#: Fresh interpreters started to time an import.
IMPORT_RUNS = 9


class _TimingCollection:
    def __init__(self, inner: Any, owner: TimingDatabase) -> None:
        self._inner = inner
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or not callable(value):
            return value
        owner = self._owner
        timer = owner.timer

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = timer()
            try:
                return value(*args, **kwargs)
            finally:
                owner.inside += timer() - began

        return timed


class TimingDatabase:
    """Wraps a pymongo-style database; :attr:`inside` sums the ``timer`` seconds spent
    inside its collections' methods and its commands (the store's share of a call)."""

    def __init__(self, inner: Any, timer: Callable[[], float] = time.perf_counter) -> None:
        self._inner = inner
        self.timer = timer
        self.inside = 0.0

    def get_collection(self, name: str, **options: Any) -> _TimingCollection:
        return _TimingCollection(self._inner.get_collection(name, **options), self)

    def __getitem__(self, name: str) -> _TimingCollection:
        return self.get_collection(name)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        began = self.timer()
        try:
            return self._inner.command(*args, **kwargs)
        finally:
            self.inside += self.timer() - began

    def create_collection(self, name: str, **options: Any) -> Any:
        return self._inner.create_collection(name, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def side_by_side(
    pairs: Mapping[str, Callable[[], None]],
    *,
    n: int,
    timer: Callable[[], float] = time.perf_counter,
    inside: Mapping[str, Callable[[], float]] | None = None,
) -> dict[str, float]:
    """Seconds per call of each of ``pairs``, timed in alternating batches of ``n``.

    ``inside[name]()`` (if given) is a running total of time spent in the store
    during ``name``'s calls; it is subtracted. Each result is the median over
    :data:`ROUNDS` batches.
    """
    inside = inside or {}
    for pair in pairs.values():  # warm up: first calls, caches, connections
        for _ in range(max(10, n // 10)):
            pair()
    found: dict[str, list[float]] = {name: [] for name in pairs}
    for _ in range(ROUNDS):
        for name, pair in pairs.items():
            store = inside.get(name)
            store_before = store() if store else 0.0
            began = timer()
            for _ in range(n):
                pair()
            spent = timer() - began - ((store() - store_before) if store else 0.0)
            found[name].append(spent / n)
    return {name: statistics.median(values) for name, values in found.items()}


# 2.x loads its names on first use (PEP 562), so the probe touches the lock classes too:
# ``import mongoelector`` alone would time next to nothing.
_IMPORT_PROBE = """
import sys, time
import pymongo
began = time.perf_counter()
import mongoelector
for name in ("Lock", "MongoLocker"):
    getattr(mongoelector, name, None)
print(time.perf_counter() - began, mongoelector.__file__)
"""


def import_seconds() -> float:
    """Median seconds ``import mongoelector`` (and its lock classes) takes after ``import
    pymongo``, in a fresh interpreter each time.

    The child interpreter is this one, with this environment, so it imports
    the same ``mongoelector`` as the runner (checked); but it may write
    bytecode, into a cache of its own (``PYTHONPYCACHEPREFIX``), filled by a
    first, untimed run. An installed package has its bytecode compiled; an
    environment with ``PYTHONDONTWRITEBYTECODE`` set (or a source checkout
    never imported before) would otherwise time the compiler.
    """
    import mongoelector

    expected = os.path.realpath(mongoelector.__file__ or "")
    found: list[float] = []
    with tempfile.TemporaryDirectory(prefix="mongoelector-bench-pyc-") as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        for run in range(IMPORT_RUNS + 1):
            done = subprocess.run(
                [sys.executable, "-c", _IMPORT_PROBE],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            seconds, _, where = done.stdout.strip().partition(" ")
            if os.path.realpath(where) != expected:
                raise RuntimeError(f"the import probe found {where}, not {expected}")
            if run:  # the first run compiles and caches
                found.append(float(seconds))
    return statistics.median(found)
