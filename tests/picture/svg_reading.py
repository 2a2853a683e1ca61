"""Reading a rendered timeline back: the tests check what the SVG shows, not how it is spelled."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

SVG = "{http://www.w3.org/2000/svg}"


@dataclass(frozen=True)
class Picture:
    root: ET.Element

    def all(self, tag: str, css: str | None = None) -> list[ET.Element]:
        found = self.root.iter(f"{SVG}{tag}")
        return [e for e in found if css is None or e.get("class") == css]

    def terms(self) -> list[tuple[str, int]]:
        """(lane, token) of every term bar, top to bottom as drawn."""
        return [
            (e.get("data-lane", ""), int(e.get("data-token", "-1")))
            for e in self.all("rect", "term")
        ]

    def texts(self) -> list[str]:
        return [e.text or "" for e in self.all("text")]

    def faults(self) -> list[str]:
        return [e.get("data-kind", "") for e in self.all("rect", "fault")]


def read_svg(text: str) -> Picture:
    """Parse ``text`` as XML (failing the test if it is not) and check it is an SVG document."""
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == f"{SVG}svg"
    assert root.get("viewBox") is not None
    return Picture(root)
