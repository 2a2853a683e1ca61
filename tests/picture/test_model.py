"""The picture's data refuses nonsense, naming the bad value."""

from __future__ import annotations

import pytest

from mongoelector.picture import Marker, Span, Term, Timeline


def test_a_term_cannot_end_before_it_starts() -> None:
    with pytest.raises(ValueError, match=r"end must not come before start, got 5\.0\.\.4\.0"):
        Term(lane="n1", token=1, start=5.0, end=4.0)


def test_a_term_token_is_an_int() -> None:
    with pytest.raises(TypeError, match="token must be an int, got '1'"):
        Term(lane="n1", token="1", start=0.0, end=1.0)  # type: ignore[arg-type]


def test_times_are_finite_numbers() -> None:
    with pytest.raises(ValueError, match="start must be finite, got nan"):
        Term(lane="n1", token=1, start=float("nan"), end=1.0)
    with pytest.raises(TypeError, match="at must be a number of seconds, got str '3'"):
        Marker(kind="crash", at="3")  # type: ignore[arg-type]


def test_kinds_of_spans_and_markers_are_the_ones_the_renderer_draws() -> None:
    with pytest.raises(ValueError, match=r"kind must be one of .* got 'meteor'"):
        Span(lane="n1", kind="meteor", start=0.0, end=1.0)
    with pytest.raises(ValueError, match=r"kind must be one of .* got 'party'"):
        Marker(kind="party", at=1.0)


def test_a_timeline_needs_unique_lanes_and_everything_on_them() -> None:
    with pytest.raises(ValueError, match="at least one lane"):
        Timeline(title="t", lanes=(), end=1.0)
    with pytest.raises(ValueError, match="lane names must be unique"):
        Timeline(title="t", lanes=("a", "a"), end=1.0)
    with pytest.raises(ValueError, match="names a lane not in lanes"):
        Timeline(title="t", lanes=("a",), end=1.0, terms=(Term(lane="b", token=1, start=0, end=1),))
    with pytest.raises(ValueError, match="end must be positive, got 0"):
        Timeline(title="t", lanes=("a",), end=0)
