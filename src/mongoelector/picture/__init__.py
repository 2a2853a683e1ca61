"""Leadership timeline pictures: who led when, with which fencing token, through which faults.

Build a :class:`Timeline` (or get one from a simulation run with
:func:`mongoelector.testing.simulation.timeline_picture`, or from the demo),
then write it out::

    from mongoelector.picture import render_svg
    path.write_text(render_svg(timeline))

The SVG is drawn by hand (no plotting library); see ``docs/operations.md``.
"""

from mongoelector.picture.model import FAULT_KINDS, MARKER_KINDS, Marker, Span, Term, Timeline
from mongoelector.picture.svg import render_svg

__all__ = ["FAULT_KINDS", "MARKER_KINDS", "Marker", "Span", "Term", "Timeline", "render_svg"]
