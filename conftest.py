"""Collects the Python blocks of README.md and docs/*.md (see tests/docs/markdown.py)."""

from tests.docs.markdown import pytest_collect_file

__all__ = ["pytest_collect_file"]
