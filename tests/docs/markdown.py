"""Runs every Python block of README.md and docs/*.md, through Sybil.

The root ``conftest.py`` hands pytest's ``pytest_collect_file`` hook to
:data:`pytest_collect_file`, and ``testpaths`` in pyproject.toml names the
pages, so ``make test`` (plain ``pytest``) collects each ```` ```python ````
block as a test item (``README.md::line:21,column:1``). The blocks of one page
run in order in one namespace, as a reader would paste them one after the
other, in a fresh temporary working directory. A block that defines
``test_*`` functions also runs them, with the pytest fixtures they name (the
``mongoelector`` plugin's ``fake_clock``, ``memory_backend`` and
``elector_group``, or pytest's own).

The namespace starts with :data:`PLACEHOLDERS`: stand-ins for the reader's own
code that the examples call (``run_report``, ``batches``, ``db``...). They are
never names that mongoelector provides (``test_markdown_blocks.py`` checks
that), so a missing import still fails. On a page that shows
``MongoClient(...)``, ``pymongo.MongoClient`` is mongomock's while the page
runs, and the page says so under the block.

A block that cannot run here is preceded by a visible italic line
``*Not run in CI: <reason>.*`` and by Sybil's marker
``<!-- skip: next "<reason>" -->``; ``test_markdown_blocks.py`` checks that
the two go together and that no Python block hides behind another fence.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import tempfile
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mongomock
import prometheus_client
import pymongo
import pytest
from sybil import Example, Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

from mongoelector import LeaderElector, Lock, monitoring

ROOT = Path(__file__).resolve().parents[2]
#: The pages whose Python blocks run (also listed in ``testpaths``).
PAGES = ("README.md", "docs/*.md")


def _does_nothing(*args: object, **kwargs: object) -> None:
    """Stands for a function of the reader's: the examples only call it."""


async def _does_nothing_async(*args: object, **kwargs: object) -> None:
    """Stands for a coroutine function of the reader's: the examples only await it."""


def placeholders() -> dict[str, Any]:
    """Fresh stand-ins for the reader's own code, one set per page."""
    return {
        # functions of the reader's, called with a fencing token or as callbacks
        **dict.fromkeys(
            [
                "run_report",
                "write",
                "migrate",
                "page",
                "start",
                "my_on_leader",
                "became_leader",
                "start_jobs",
                "stop_jobs",
                "start_reporting",
                "start_scheduler",
                "write_results",
            ],
            _does_nothing,
        ),
        **dict.fromkeys(["run_due_jobs", "run_jobs"], _does_nothing_async),
        "batches": ["batch-1", "batch-2"],
        "report": "the nightly report",
        "storage": types.SimpleNamespace(write=_does_nothing),  # a downstream system
        "log": logging.getLogger("docs.example"),
        "db": mongomock.MongoClient().myapp,  # "a pymongo Database of yours"
    }


#: The names :func:`placeholders` provides (none of them is a name mongoelector exports).
PLACEHOLDERS = frozenset(placeholders())


class BlockAndItsTests:
    """Runs a block, then every ``test_*`` function the block defined."""

    def __init__(self) -> None:
        self.python = PythonEvaluator()

    def __call__(self, example: Example) -> None:
        namespace = example.namespace
        request: pytest.FixtureRequest = namespace.pop("request")
        before = {name: value for name, value in namespace.items() if name.startswith("test_")}
        self.python(example)
        for name, test in list(namespace.items()):
            if not name.startswith("test_") or not callable(test) or before.get(name) is test:
                continue
            arguments = {
                parameter: request.getfixturevalue(parameter)
                for parameter in inspect.signature(test).parameters
            }
            result = test(**arguments)
            if inspect.iscoroutine(result):
                asyncio.run(result)


class PythonBlocks(PythonCodeBlockParser):
    """Sybil's Markdown parser for ```` ```python ```` blocks, with :class:`BlockAndItsTests`."""

    def __init__(self) -> None:
        super().__init__()
        self.codeblock_parser._evaluator = BlockAndItsTests()


#: What :func:`_setup` changed, per page, for :func:`_teardown` to undo.
_undo: dict[int, list[Callable[[], None]]] = {}


def _setup(namespace: dict[str, Any]) -> None:
    undo: list[Callable[[], None]] = []
    _undo[id(namespace)] = undo
    namespace.update(placeholders(), __name__="docs_example")

    directory = tempfile.TemporaryDirectory(prefix="docs-example-")
    previous = Path.cwd()
    os.chdir(directory.name)
    undo += [directory.cleanup, lambda: os.chdir(previous)]

    registry, listeners = prometheus_client.REGISTRY, monitoring.registered()
    prometheus_client.REGISTRY = prometheus_client.CollectorRegistry()

    def restore_process_wide_listeners() -> None:
        prometheus_client.REGISTRY = registry
        for listener in monitoring.registered():
            if listener not in listeners:
                monitoring.unregister(listener)

    undo.append(restore_process_wide_listeners)

    client = pymongo.MongoClient
    pymongo.MongoClient = mongomock.MongoClient  # type: ignore[misc]

    def restore_client() -> None:
        pymongo.MongoClient = client  # type: ignore[misc]

    undo.append(restore_client)


def _teardown(namespace: dict[str, Any]) -> None:
    for value in namespace.values():  # electors and locks a page left running
        if isinstance(value, LeaderElector):
            value.stop()
        elif isinstance(value, Lock) and value.owned():
            value.release()
    for step in reversed(_undo.pop(id(namespace))):
        step()


pytest_collect_file = Sybil(
    parsers=[SkipParser(), PythonBlocks()],
    path=str(ROOT),
    patterns=PAGES,
    setup=_setup,
    teardown=_teardown,
    fixtures=["request"],
).pytest()
