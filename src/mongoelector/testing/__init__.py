"""Tools for testing code that uses mongoelector, and for testing backends."""

from mongoelector.testing.fake_clock import FakeClock

__all__ = ["FakeClock"]
