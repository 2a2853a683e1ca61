"""The command line logs to stderr, masked; -v adds leadership changes, -vv everything."""

from __future__ import annotations

import logging

import pytest

from mongoelector.cli.logs import logging_to_stderr

logger = logging.getLogger("mongoelector.test_cli_logs")


@pytest.mark.parametrize(
    ("verbosity", "shown"),
    [(0, {"WARNING"}), (1, {"WARNING", "INFO"}), (2, {"WARNING", "INFO", "DEBUG"})],
)
def test_verbosity_chooses_the_levels_shown(
    capsys: pytest.CaptureFixture[str], verbosity: int, shown: set[str]
) -> None:
    with logging_to_stderr(verbosity):
        logger.debug("debug line")
        logger.info("info line")
        logger.warning("warning line")

    err = capsys.readouterr().err
    assert {level for level in ("DEBUG", "INFO", "WARNING") if f" {level} " in err} == shown


def test_lines_are_masked_and_everything_is_put_back_after(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger("mongoelector")
    before = (root.level, list(root.handlers))

    with logging_to_stderr(1):
        logger.info("using %s", "mongodb://ops:pa55@db1/app")

    assert "using mongodb://ops:***@db1/app" in capsys.readouterr().err
    assert (root.level, list(root.handlers)) == before
