"""The --faults language of ``mongoelector simulate``."""

from __future__ import annotations

import argparse

import pytest

from mongoelector.cli.faults import describe, fault_spec
from mongoelector.testing.simulation import (
    LEADER,
    Crash,
    Partition,
    Pause,
    Resign,
    Stop,
    StoreErrors,
)


@pytest.mark.parametrize(
    ("spec", "fault", "words"),
    [
        (
            "pause:leader:20:30",
            Pause(node=LEADER, at=20, duration=30),
            "the leader pauses at 20s for 30s",
        ),
        (
            "partition:n2:5:12.5",
            Partition(node="n2", at=5, duration=12.5),
            "n2 is cut off at 5s for 12.5s",
        ),
        (
            "errors:n1:0:10",
            StoreErrors(node="n1", at=0, duration=10),
            "n1 gets store errors at 0s for 10s (50% of writes)",
        ),
        ("crash:leader:40", Crash(node=LEADER, at=40), "the leader crashes at 40s for good"),
        (
            "crash:n3:40:10",
            Crash(node="n3", at=40, restart_after=10),
            "n3 crashes at 40s, back after 10s",
        ),
        ("stop:n1:7:0", Stop(node="n1", at=7, restart_after=0), "n1 stops at 7s, back after 0s"),
        ("resign:leader:50", Resign(node=LEADER, at=50), "the leader resigns at 50s"),
    ],
)
def test_each_kind_of_fault_parses_and_reads_back(spec: str, fault: object, words: str) -> None:
    parsed = fault_spec(spec)

    assert parsed == fault
    assert describe(parsed) == words  # type: ignore[arg-type]


def test_the_words_random_and_none_stand_for_themselves() -> None:
    assert fault_spec("random") == "random" and fault_spec("none") == "none"


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("meteor:n1:5", "bad fault 'meteor:n1:5': expected KIND:NODE:AT"),
        ("pause:n1", "expected KIND:NODE:AT"),
        ("pause:n1:5", "pause needs SECONDS > 0"),
        ("pause:n1:5:0", "pause needs SECONDS > 0"),
        ("pause:n1:soon:5", "AT must be seconds in 'pause:n1:soon:5'"),
        ("crash:n1:-1", "AT must be a number >= 0"),
        ("resign:n1:5:5", "resign takes no SECONDS"),
        ("crash::5", "NODE is empty"),
        ("pause:n1:nan:2", "AT must be a number >= 0 in 'pause:n1:nan:2'"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, complaint: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=complaint.replace("(", r"\(")):
        fault_spec(spec)
