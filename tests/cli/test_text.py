"""Tables line up; times and durations read at a glance."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mongoelector.cli.text import format_duration, format_time, render_table


def test_a_table_aligns_columns_two_spaces_apart_without_trailing_blanks() -> None:
    text = render_table(["KEY", "TOKEN", "X"], [["scheduler", "7", ""], ["a", "123456", "-"]])

    assert text.splitlines() == [
        "KEY        TOKEN   X",
        "scheduler  7",
        "a          123456  -",
    ]


def test_a_row_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match=r"row \['a'\] has 1 cells, expected 2"):
        render_table(["A", "B"], [["a"]])


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "-"),
        (0.85, "850ms"),
        (12.64, "12.6s"),
        (587.9, "9m47s"),
        (11100, "3h05m"),
        (187200, "2d04h"),
        (-3.2, "-3.2s"),
    ],
)
def test_durations_are_short(seconds: float | None, shown: str) -> None:
    assert format_duration(seconds) == shown


def test_times_are_utc_iso_to_the_millisecond() -> None:
    moment = datetime(2025, 1, 31, 13, 0, 0, 250999, tzinfo=timezone(timedelta(hours=1)))

    assert format_time(moment) == "2025-01-31T12:00:00.250Z"
    assert (
        format_time(moment.astimezone(timezone.utc).replace(tzinfo=None))
        == "2025-01-31T12:00:00.250Z"
    )
    assert format_time(None) == "-"
