"""Plain-text formatting for the command line: aligned tables, times and durations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone

__all__ = ["format_duration", "format_time", "render_table"]


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``rows`` under ``headers`` in left-aligned columns two spaces apart (no trailing blanks)."""
    widths = [len(header) for header in headers]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row {row!r} has {len(row)} cells, expected {len(headers)}")
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = []
    for row in (headers, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def format_time(value: datetime | None) -> str:
    """``value`` as UTC ISO 8601 to the millisecond (``2025-01-31T12:00:00.250Z``), or ``-``."""
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def format_duration(seconds: float | None) -> str:
    """A short duration: ``850ms``, ``12.6s``, ``9m47s``, ``3h05m``, ``2d04h``; ``-`` for None."""
    if seconds is None or math.isnan(seconds):
        return "-"
    sign = "-" if seconds < 0 else ""
    value = abs(seconds)
    if value < 1:
        text = f"{value * 1000:.0f}ms"
    elif value < 60:
        text = f"{value:.1f}s"
    elif value < 3600:
        minutes, rest = divmod(int(value), 60)
        text = f"{minutes}m{rest:02d}s"
    elif value < 86400:
        hours, rest = divmod(int(value) // 60, 60)
        text = f"{hours}h{rest:02d}m"
    else:
        days, rest = divmod(int(value) // 3600, 24)
        text = f"{days}d{rest:02d}h"
    return sign + text
