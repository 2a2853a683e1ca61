"""render_svg draws every term with its token, the leases, the deadlines, faults and violations."""

from __future__ import annotations

import pytest

from mongoelector.picture import Marker, Span, Term, Timeline, render_svg
from tests.picture.svg_reading import read_svg


def two_terms(**changes: object) -> Timeline:
    fields: dict[str, object] = {
        "title": "run",
        "lanes": ("n1", "n2"),
        "end": 60.0,
        "terms": (
            Term(
                lane="n1",
                token=1,
                start=0.0,
                end=20.0,
                renewals=(5.0, 10.0, 15.0),
                renew_deadline=20.0,
                lease_end=25.0,
            ),
            Term(lane="n2", token=2, start=26.0, end=60.0, lease_end=75.0),
        ),
        "spans": (Span(lane="n1", kind="cut off", start=12.0, end=40.0),),
        "ttl": 15.0,
        "renew_deadline": 8.0,
    }
    fields.update(changes)
    return Timeline(**fields)  # type: ignore[arg-type]


def test_every_term_is_one_bar_carrying_its_lane_and_token() -> None:
    picture = read_svg(render_svg(two_terms()))

    assert picture.terms() == [("n1", 1), ("n2", 2)]
    assert "token 1" in picture.texts() and "token 2" in picture.texts()


def test_a_term_too_narrow_for_its_label_still_shows_its_token() -> None:
    narrow = Term(lane="n2", token=123456789, start=59.5, end=59.6)
    picture = read_svg(render_svg(two_terms(terms=(narrow,))))

    assert picture.terms() == [("n2", 123456789)]
    assert "123456789" in picture.texts()


def test_renew_deadlines_and_lease_ends_are_drawn_where_they_fall() -> None:
    picture = read_svg(render_svg(two_terms()))

    assert len(picture.all("line", "renew-deadline")) == 1  # only n1's term ended by it
    # n1's lease ended within the chart, n2's runs past its end.
    assert len(picture.all("line", "lease-end")) == 1


def test_faults_are_bands_on_their_lane_and_violations_cross_the_chart() -> None:
    timeline = two_terms(
        spans=(
            Span(lane="n1", kind="paused", start=1.0, end=9.0),
            Span(lane="n2", kind="down", start=10.0, end=20.0),
        ),
        markers=(
            Marker(kind="crash", at=10.0, lane="n2"),
            Marker(kind="violation", at=30.0, label="exclusion: n1 and n2"),
        ),
    )
    picture = read_svg(render_svg(timeline))

    assert picture.faults() == ["paused", "down"]
    assert len(picture.all("path", "crash")) == 1
    assert len(picture.all("line", "violation")) == 1
    assert "invariant violated" in picture.texts()


def test_the_legend_lists_only_the_faults_shown() -> None:
    texts = read_svg(render_svg(two_terms(spans=()))).texts()

    assert "renew deadline: holder steps down" in texts
    assert "process paused" not in texts and "cut off from the store" not in texts


def test_text_from_the_timeline_is_escaped() -> None:
    timeline = two_terms(
        title="<b>&run",
        lanes=("n1", "a<&>b"),
        terms=(Term(lane="a<&>b", token=3, start=1.0, end=2.0, key='k"ey'),),
        spans=(),
    )
    picture = read_svg(render_svg(timeline))

    assert "<b>&run" in picture.texts() and "a<&>b" in picture.texts()
    assert picture.terms() == [("a<&>b", 3)]


def test_width_must_be_a_sensible_number_of_pixels() -> None:
    with pytest.raises(ValueError, match="width must be an int of at least 400 pixels, got 10"):
        render_svg(two_terms(), width=10)
    root = read_svg(render_svg(two_terms(), width=1600)).root
    assert root.get("width") == "1600"


def test_a_holder_believing_past_its_lease_shows_a_bar_longer_than_its_lease() -> None:
    overrun = Term(lane="n1", token=4, start=0.0, end=30.0, lease_end=15.0)
    picture = read_svg(render_svg(two_terms(terms=(overrun,), spans=())))

    [bar] = picture.all("rect", "term")
    [lease] = picture.all("rect", "lease")
    assert float(lease.get("width", "0")) == pytest.approx(float(bar.get("width", "0")) / 2)
