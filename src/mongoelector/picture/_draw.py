"""SVG building blocks: escaping, element strings, colours, hatch patterns, the time axis.

Nothing here knows about leadership; :mod:`mongoelector.picture.svg` composes
these into a timeline.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape, quoteattr

__all__ = [
    "DEADLINE",
    "FAULT_STYLE",
    "FONT",
    "GHOST",
    "LEASE_END",
    "PALETTE",
    "VIOLATION",
    "defs",
    "element",
    "glyph",
    "nice_step",
    "path",
    "text",
    "text_width",
    "title",
]

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"

#: Term colours (fill, label colour), told apart by colour-blind readers too.
PALETTE: tuple[tuple[str, str], ...] = (
    ("#4e79a7", "#ffffff"),
    ("#59a14f", "#ffffff"),
    ("#b07aa1", "#ffffff"),
    ("#f28e2b", "#1f1f1f"),
    ("#76b7b2", "#1f1f1f"),
    ("#9c755f", "#ffffff"),
    ("#edc948", "#1f1f1f"),
    ("#ff9da7", "#1f1f1f"),
)

#: Fault kind -> (fill, legend text).
FAULT_STYLE: dict[str, tuple[str, str]] = {
    "paused": ("url(#hatch-paused)", "process paused"),
    "cut off": ("url(#hatch-cut)", "cut off from the store"),
    "store errors": ("url(#hatch-errors)", "store errors"),
    "down": ("url(#hatch-down)", "process down"),
}


#: Line and shape styles shared by the chart and its legend.
DEADLINE: dict[str, object] = {"stroke": "#d93025", "stroke_width": 2.0, "stroke_dasharray": "4,2"}
LEASE_END: dict[str, object] = {"stroke": "#202124", "stroke_width": 1.5}
VIOLATION: dict[str, object] = {"stroke": "#d93025", "stroke_width": 2.0}
#: The part of a lease the store kept after its holder stopped believing (add ``fill``/``stroke``).
GHOST: dict[str, object] = {"fill_opacity": 0.25, "stroke_dasharray": "3,2"}


def path(*points: tuple[float, float], close: bool = False, jump: int | None = None) -> str:
    """The ``d`` of a path through ``points`` (``jump``: index where a new stroke starts)."""
    steps = []
    for index, (x, y) in enumerate(points):
        move = "M" if index in (0, jump) else "L"
        steps.append(f"{move}{x:.1f},{y:.1f}")
    return " ".join(steps) + (" Z" if close else "")


def _number(value: float) -> str:
    """``value`` with at most two decimals and no trailing zeros."""
    rounded = round(value, 2)
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.2f}".rstrip("0")


def element(name: str, body: str = "", /, **attributes: object) -> str:
    """One SVG element; ``attributes`` with ``_`` for ``-`` (``stroke_width``), ``None`` skipped."""
    parts = [name]
    for attribute, value in attributes.items():
        if value is None:
            continue
        shown = _number(value) if isinstance(value, float) else str(value)
        parts.append(f"{attribute.rstrip('_').replace('_', '-')}={quoteattr(shown)}")
    opening = " ".join(parts)
    if not body:
        return f"<{opening}/>"
    return f"<{opening}>{body}</{name}>"


def text(x: float, y: float, content: str, **attributes: object) -> str:
    """A ``<text>`` element with ``content`` escaped."""
    return element("text", escape(content), x=float(x), y=float(y), **attributes)


def title(content: str) -> str:
    """A ``<title>`` (the tooltip of its parent element) with ``content`` escaped."""
    return element("title", escape(content))


def text_width(content: str, size: float) -> float:
    """A generous estimate of how wide ``content`` renders at font ``size`` (px)."""
    return len(content) * size * 0.62


def nice_step(span: float, most: int = 10) -> float:
    """The smallest of 1, 2, 5 x 10^k that cuts ``span`` into at most ``most`` steps."""
    if span <= 0:
        return 1.0
    exponent = math.floor(math.log10(span / most))
    for base in (1, 2, 5, 10):
        step = base * 10.0**exponent
        if span / step <= most:
            return step
    return 10.0 ** (exponent + 1)  # pragma: no cover - 10 x 10^k always fits


def _hatch(name: str, colour: str, *, cross: bool = False, opacity: float = 0.55) -> str:
    lines = element("path", d="M0,8 L8,0", stroke=colour, stroke_width=1.6, opacity=opacity)
    if cross:
        lines += element("path", d="M0,0 L8,8", stroke=colour, stroke_width=1.6, opacity=opacity)
    background = element("rect", width=8, height=8, fill=colour, opacity=0.12)
    return element(
        "pattern",
        background + lines,
        id=name,
        width=8,
        height=8,
        patternUnits="userSpaceOnUse",
    )


def defs() -> str:
    """The patterns the fault bands use."""
    return element(
        "defs",
        _hatch("hatch-paused", "#e8710a")
        + _hatch("hatch-cut", "#5f6368")
        + _hatch("hatch-errors", "#8e44ad", cross=True)
        + _hatch("hatch-down", "#202124", opacity=0.35),
    )


def glyph(kind: str, x: float, y: float, body: str = "", *, css: bool = True) -> str:
    """The mark of a moment of ``kind`` (crash, stop, resign, other) centred on ``(x, y)``.

    With ``css`` a crash is ``class="crash"`` (the chart's, not the legend's).
    """
    if kind == "crash":
        cross = path((x - 4, y - 4), (x + 4, y + 4), (x - 4, y + 4), (x + 4, y - 4), jump=2)
        css_class = "crash" if css else None
        return element("path", body, d=cross, stroke="#d93025", stroke_width=2.5, class_=css_class)
    if kind == "stop":
        return element("rect", body, x=x - 4, y=y - 4, width=8, height=8, fill="#202124")
    if kind == "resign":
        triangle = path((x - 5, y - 4), (x + 5, y - 4), (x, y + 4), close=True)
        return element("path", body, d=triangle, fill="#202124")
    return element("circle", body, cx=x, cy=y, r=3.5, fill="#5f6368")
