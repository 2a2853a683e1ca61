"""Writing a timeline picture to the file a command's ``--svg`` names."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TextIO

from mongoelector.cli.errors import CliError, ExitCode
from mongoelector.picture import Timeline, render_svg

__all__ = ["check_writable", "write_svg"]


def _cannot_write(path: Path, error: OSError | str) -> CliError:
    return CliError(f"cannot write the picture to {str(path)!r}: {error}", ExitCode.USAGE)


def check_writable(path: Path) -> None:
    """Raise the ``USAGE`` error :func:`write_svg` would, now, if ``path`` cannot be written.

    For commands that run a while before they draw: a bad path fails before
    the run, not after it. Leaves no file behind (an existing one is opened
    for appending, which changes nothing).
    """
    if path.is_dir():
        raise _cannot_write(path, "it is a directory")
    existed = path.exists()
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as error:
        raise _cannot_write(path, error) from error
    if not existed:
        with contextlib.suppress(OSError):
            path.unlink()


def write_svg(path: Path, timeline: Timeline, out: TextIO) -> None:
    """Draw ``timeline`` into ``path`` and say so on ``out``; ``USAGE`` error if it cannot."""
    try:
        path.write_text(render_svg(timeline), encoding="utf-8")
    except OSError as error:
        raise _cannot_write(path, error) from error
    out.write(f"timeline picture ({len(timeline.terms)} terms) written to {path}\n")
