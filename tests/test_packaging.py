"""``pyproject.toml`` declares its metadata the way current setuptools wants it.

A TOML-table ``project.license`` (``{ text = "..." }``) makes setuptools 77+
print a deprecation warning three times per build; the SPDX string form needs
setuptools 77 as the build requirement, or an older one would reject it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_license_is_an_spdx_expression_with_a_build_requirement_that_reads_it() -> None:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    config = tomllib.loads(PYPROJECT.read_text())
    assert config["project"]["license"] == "Apache-2.0"
    assert not any(c.startswith("License ::") for c in config["project"].get("classifiers", []))
    requires = config["build-system"]["requires"]
    (setuptools,) = [r for r in requires if r.startswith("setuptools")]
    found = re.fullmatch(r"setuptools>=(\d+)(?:\.\d+)*", setuptools)
    assert found is not None and int(found.group(1)) >= 77, setuptools
