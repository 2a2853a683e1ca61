"""Draws a :class:`~mongoelector.picture.model.Timeline` as a standalone SVG document.

Each lane is one node. A term is a coloured bar labelled with its fencing
token (white ticks: renewals). Under it a thin strip shows how long the store
held the lease for that term; where the store held it after the node stopped
believing (a crash, a pause, a lost link), that part is dashed, and a solid
line marks where the lease ended. A red dashed line marks a renew deadline
that ended a term. Faults are hatched bands across the lane; violations are
red lines across the whole chart. Every term is one ``<rect class="term">``
with ``data-token`` and ``data-lane`` attributes, so tools and tests can read
the picture back.
"""

from __future__ import annotations

from dataclasses import dataclass

from mongoelector.picture._draw import (
    DEADLINE,
    FAULT_STYLE,
    FONT,
    GHOST,
    LEASE_END,
    PALETTE,
    VIOLATION,
    defs,
    element,
    glyph,
    nice_step,
    path,
    text,
    text_width,
    title,
)
from mongoelector.picture._legend import legend
from mongoelector.picture.model import Marker, Span, Term, Timeline

__all__ = ["render_svg"]

_LANE = 54.0
_BAR_TOP = 15.0
_BAR = 20.0
_STRIP_TOP = 39.0
_STRIP = 6.0
_TOP = 66.0
_RIGHT = 24.0
_LEGEND_GAP = 44.0
_MARK_Y = 7.5
_CAPTION_INDENT = 8.0


def _seconds(value: float) -> str:
    return f"{value:.2f}s"


@dataclass(frozen=True, slots=True)
class _Frame:
    """Where things go: x for a time, y for a lane."""

    left: float
    width: float
    end: float
    lanes: tuple[str, ...]

    def x(self, time: float) -> float:
        clamped = min(max(time, 0.0), self.end)
        return self.left + clamped / self.end * self.width

    def top(self, lane: str) -> float:
        return _TOP + self.lanes.index(lane) * _LANE

    @property
    def bottom(self) -> float:
        return _TOP + len(self.lanes) * _LANE


def _lanes(frame: _Frame) -> list[str]:
    parts = []
    for index, lane in enumerate(frame.lanes):
        top = frame.top(lane)
        if index % 2 == 0:
            parts.append(
                element(
                    "rect", x=frame.left, y=top, width=frame.width, height=_LANE, fill="#f6f7f9"
                )
            )
        parts.append(
            text(frame.left - 10, top + _BAR_TOP + 14, lane, text_anchor="end", font_size=13)
        )
    return parts


def _axis(frame: _Frame) -> list[str]:
    step = nice_step(frame.end)
    parts = []
    tick = 0.0
    while tick <= frame.end + 1e-9:
        x = frame.x(tick)
        parts.append(element("line", x1=x, y1=_TOP, x2=x, y2=frame.bottom, stroke="#dadce0"))
        parts.append(text(x, frame.bottom + 16, f"{tick:g}s", text_anchor="middle", font_size=11))
        tick = round(tick + step, 9)
    right = frame.left + frame.width
    parts.append(
        element("line", x1=frame.left, y1=frame.bottom, x2=right, y2=frame.bottom, stroke="#5f6368")
    )
    return parts


def _span(frame: _Frame, span: Span, labelled: dict[str, float]) -> list[str]:
    """The hatched band of ``span``; its caption unless it would overlap the lane's last one.

    ``labelled`` maps each lane to where its last caption ends (updated here).
    """
    top = frame.top(span.lane)
    x0, x1 = frame.x(span.start), frame.x(span.end)
    fill, meaning = FAULT_STYLE[span.kind]
    label = span.label or span.kind
    band = element(
        "rect",
        title(f"{span.lane} {meaning}: {_seconds(span.start)} - {_seconds(span.end)}"),
        x=x0,
        y=top + 2,
        width=max(x1 - x0, 1.5),
        height=_LANE - 4,
        fill=fill,
        class_="fault",
        data_kind=span.kind,
    )
    if x0 < labelled.get(span.lane, -1.0):
        return [band]
    # Leave room at the start for a marker (a crash often starts a span).
    labelled[span.lane] = x0 + _CAPTION_INDENT + 3 + text_width(label, 9)
    caption = text(
        x0 + _CAPTION_INDENT, top + 11, label, font_size=9, fill="#3c4043", font_style="italic"
    )
    return [band, caption]


def _lease(frame: _Frame, term: Term, fill: str) -> list[str]:
    """The strip under a term: the lease in the store, dashed where only the store held it.

    Where the holder believed past the end of its lease (a safety violation)
    the strip stops short of the bar.
    """
    top = frame.top(term.lane) + _STRIP_TOP
    x0, x1 = frame.x(term.start), frame.x(term.end)
    x2 = x1 if term.lease_end is None else frame.x(term.lease_end)
    solid = max(min(x1, x2) - x0, 1.0)
    parts = [element("rect", x=x0, y=top, width=solid, height=_STRIP, fill=fill, class_="lease")]
    if term.lease_end is None:
        return parts
    if x2 > x1:
        parts.append(
            element(
                "rect",
                title(f"the store still held the lease of token {term.token}"),
                x=x1,
                y=top,
                width=x2 - x1,
                height=_STRIP,
                fill=fill,
                stroke=fill,
                **GHOST,
            )
        )
    if term.lease_end <= frame.end:
        parts.append(
            element(
                "line",
                title(f"the lease of token {term.token} ends at {_seconds(term.lease_end)}"),
                x1=x2,
                y1=top - _STRIP_TOP + _BAR_TOP,
                x2=x2,
                y2=top + _STRIP + 2,
                class_="lease-end",
                **LEASE_END,
            )
        )
    return parts


def _token_label(term: Term, x0: float, width: float, top: float, ink: str) -> str:
    for label in (f"token {term.token}", str(term.token)):
        if text_width(label, 11) + 8 <= width:
            middle = x0 + width / 2
            return text(
                middle, top + _BAR_TOP + 14, label, text_anchor="middle", font_size=11, fill=ink
            )
    # Too narrow: write the token just above the bar.
    return text(x0, top + _BAR_TOP - 3, str(term.token), font_size=9)


def _term(frame: _Frame, term: Term, index: int) -> list[str]:
    fill, ink = PALETTE[index % len(PALETTE)]
    top = frame.top(term.lane)
    x0 = frame.x(term.start)
    width = max(frame.x(term.end) - x0, 1.5)
    key = f" {term.key!r}" if term.key else ""
    tooltip = (
        f"{term.lane} holds{key} with token {term.token}: "
        f"{_seconds(term.start)} - {_seconds(term.end)}, {len(term.renewals)} renewal(s)"
    )
    parts = _lease(frame, term, fill)
    parts.append(
        element(
            "rect",
            title(tooltip),
            x=x0,
            y=top + _BAR_TOP,
            width=width,
            height=_BAR,
            rx=3,
            fill=fill,
            class_="term",
            data_lane=term.lane,
            data_token=term.token,
        )
    )
    bottom = top + _BAR_TOP + _BAR
    for renewal in term.renewals:
        x = frame.x(renewal)
        parts.append(element("line", x1=x, y1=bottom - 6, x2=x, y2=bottom, stroke="#ffffff"))
    if term.renew_deadline is not None and term.renew_deadline <= frame.end:
        x = frame.x(term.renew_deadline)
        parts.append(
            element(
                "line",
                title(f"renew deadline of token {term.token}: {_seconds(term.renew_deadline)}"),
                x1=x,
                y1=top + _BAR_TOP - 4,
                x2=x,
                y2=bottom + 4,
                class_="renew-deadline",
                **DEADLINE,
            )
        )
    parts.append(_token_label(term, x0, width, top, ink))
    return parts


def _marker(frame: _Frame, marker: Marker) -> list[str]:
    x = frame.x(marker.at)
    tip = title(f"{marker.label or marker.kind} at {_seconds(marker.at)}")
    if marker.kind == "violation":
        bottom = frame.bottom
        line = element("line", tip, x1=x, y1=_TOP, x2=x, y2=bottom, class_="violation", **VIOLATION)
        head = path((x - 6, bottom + 12), (x + 6, bottom + 12), (x, bottom + 2), close=True)
        return [line, element("path", d=head, fill=VIOLATION["stroke"])]
    if marker.lane is None:
        return []
    # In the caption row above the bars, so that no token label is hidden.
    return [glyph(marker.kind, x, frame.top(marker.lane) + _MARK_Y, tip)]


def _caption(timeline: Timeline) -> str:
    caption = timeline.subtitle
    if timeline.ttl is not None and timeline.renew_deadline is not None:
        timing = f"lease ttl {timeline.ttl:g}s, renew deadline {timeline.renew_deadline:g}s"
        caption = f"{caption}  ·  {timing}" if caption else timing
    return caption


def render_svg(timeline: Timeline, *, width: int = 1000) -> str:
    """``timeline`` as an SVG document (a ``str``), ``width`` pixels wide."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 400:
        raise ValueError(f"width must be an int of at least 400 pixels, got {width!r}")
    left = max(70.0, max(text_width(lane, 13) for lane in timeline.lanes) + 20)
    frame = _Frame(left=left, width=width - left - _RIGHT, end=timeline.end, lanes=timeline.lanes)
    body = [defs(), *_lanes(frame), *_axis(frame)]
    labelled: dict[str, float] = {}
    for span in sorted(timeline.spans, key=lambda s: s.start):
        body += _span(frame, span, labelled)
    for index, term in enumerate(sorted(timeline.terms, key=lambda t: (t.start, t.lane))):
        body += _term(frame, term, index)
    for marker in timeline.markers:
        body += _marker(frame, marker)
    body.append(text(16, 24, timeline.title, font_size=16, font_weight="bold"))
    body.append(text(16, 44, _caption(timeline), font_size=12, fill="#5f6368"))
    shown = {span.kind for span in timeline.spans} | {marker.kind for marker in timeline.markers}
    key, key_height = legend(frame.left, frame.width, frame.bottom + _LEGEND_GAP, shown)
    body += key
    height = int(frame.bottom + _LEGEND_GAP + key_height + 8)
    svg = element(
        "svg",
        "\n" + "\n".join(body) + "\n",
        xmlns="http://www.w3.org/2000/svg",
        width=width,
        height=height,
        viewBox=f"0 0 {width} {height}",
        font_family=FONT,
    )
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{svg}\n'
