"""Fixtures for command-line tests: a fresh mongomock store, filled or empty."""

from __future__ import annotations

from typing import Any

import pytest

from mongoelector.cli import main
from tests.cli.stores import database_of, fill_ops, fresh_uri


@pytest.fixture
def uri() -> str:
    """A ``mongomock://`` URI of a store of this test's own (database ``app``)."""
    return fresh_uri()


@pytest.fixture
def ops(uri: str) -> dict[str, Any]:
    """The store at ``uri``, filled by :func:`tests.cli.stores.fill_ops`."""
    return fill_ops(database_of(uri))


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``mongoelector ARGS...`` in this process: exit code, stdout, stderr."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
