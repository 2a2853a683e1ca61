"""The legend under a timeline: one swatch and a few words per kind of mark shown."""

from __future__ import annotations

from mongoelector.picture._draw import (
    DEADLINE,
    FAULT_STYLE,
    GHOST,
    LEASE_END,
    PALETTE,
    VIOLATION,
    element,
    glyph,
    text,
    text_width,
)

__all__ = ["legend"]

_ROW = 20.0
_SWATCH_TOP = -9.0
#: Marker kind -> legend text.
_MOMENTS = {
    "crash": "process crashed",
    "stop": "graceful stop",
    "resign": "resigned (steps down, stays in)",
    "event": "other event (hover for details)",
}


def _bar() -> str:
    return element("rect", y=_SWATCH_TOP, width=22, height=11, rx=2, fill=PALETTE[0][0])


def _renewal() -> str:
    tick = element("line", x1=11, y1=_SWATCH_TOP + 5, x2=11, y2=_SWATCH_TOP + 11, stroke="#ffffff")
    return _bar() + tick


def _strip(**style: object) -> str:
    return element("rect", y=_SWATCH_TOP + 3, width=22, height=5, **style)


def _rule(style: dict[str, object]) -> str:
    return element("line", x1=11, y1=_SWATCH_TOP - 2, x2=11, y2=_SWATCH_TOP + 13, **style)


def _entries(shown: set[str]) -> list[tuple[str, str]]:
    colour = PALETTE[0][0]
    entries = [
        (_bar(), "term, labelled with its fencing token"),
        (_renewal(), "renewal"),
        (_strip(fill=colour), "lease held in the store"),
        (_strip(fill=colour, stroke=colour, **GHOST), "store holds it, holder does not"),
        (_rule(LEASE_END), "lease ends (expiry, release)"),
        (_rule(DEADLINE), "renew deadline: holder steps down"),
    ]
    for kind, (fill, meaning) in FAULT_STYLE.items():
        if kind in shown:
            entries.append(
                (element("rect", y=_SWATCH_TOP, width=22, height=11, fill=fill), meaning)
            )
    for kind, meaning in _MOMENTS.items():
        if kind in shown:
            entries.append((glyph(kind, 11, _SWATCH_TOP + 5.5, css=False), meaning))
    if "violation" in shown:
        entries.append((_rule(VIOLATION), "invariant violated"))
    return entries


def legend(left: float, width: float, top: float, shown: set[str]) -> tuple[list[str], float]:
    """The legend's elements, laid out in columns from ``(left, top)``, and its height.

    ``shown`` holds the fault and marker kinds present in the chart; only
    those get an entry.
    """
    entries = _entries(shown)
    column = max(text_width(meaning, 11) for _, meaning in entries) + 40
    columns = max(1, int(width // column))
    parts = []
    for index, (swatch, meaning) in enumerate(entries):
        x = left + (index % columns) * column
        y = top + (index // columns) * _ROW
        parts.append(element("g", swatch, transform=f"translate({x:.1f},{y:.1f})"))
        parts.append(text(x + 28, y, meaning, font_size=11, fill="#3c4043"))
    rows = (len(entries) + columns - 1) // columns
    return parts, rows * _ROW
