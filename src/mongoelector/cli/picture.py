"""Writing a timeline picture to the file a command's ``--svg`` names."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from mongoelector.cli.errors import CliError, ExitCode
from mongoelector.picture import Timeline, render_svg

__all__ = ["write_svg"]


def write_svg(path: Path, timeline: Timeline, out: TextIO) -> None:
    """Draw ``timeline`` into ``path`` and say so on ``out``; ``USAGE`` error if it cannot."""
    try:
        path.write_text(render_svg(timeline), encoding="utf-8")
    except OSError as error:
        raise CliError(
            f"cannot write the picture to {str(path)!r}: {error}", ExitCode.USAGE
        ) from error
    out.write(f"timeline picture ({len(timeline.terms)} terms) written to {path}\n")
