"""``BackendConformance``: the conformance suite as a pytest test class to subclass.

A backend's own test suite needs one module::

    from mongoelector.testing import BackendConformance, BackendHarness

    class TestMyBackend(BackendConformance):
        def make_harness(self) -> BackendHarness:
            clock = FakeClock()
            return BackendHarness(backend=MyBackend(clock=clock), advance=clock.advance)

Every check becomes a test method ``test_<check name>``; checks the backend
or harness cannot support are skipped with a reason naming the missing
capability or harness feature. To use other fixtures (``tmp_path``, a server
URI), override the ``conformance_harness`` fixture instead of ``make_harness``.
A subclass may override a single ``test_...`` method, e.g. to mark it xfail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mongoelector.testing.conformance.checks import ALL_CHECKS
from mongoelector.testing.conformance.harness import BackendHarness, close_harness, open_harness
from mongoelector.testing.conformance.registry import Check

__all__ = ["BackendConformance"]


class BackendConformance:
    """Subclass as ``Test...`` and provide :meth:`make_harness` to run every check."""

    def make_harness(self) -> BackendHarness:
        """A fresh harness around a new, empty backend (called once per test)."""
        raise NotImplementedError(
            f"{type(self).__name__} must define make_harness() or override the "
            f"conformance_harness fixture"
        )

    @pytest.fixture
    def conformance_harness(self) -> Iterator[BackendHarness]:
        """The harness each test runs on; closed after the test."""
        harness = open_harness(self.make_harness)
        try:
            yield harness
        finally:
            close_harness(harness)


def _as_test(check: Check) -> Callable[[BackendConformance, BackendHarness], None]:
    def test(self: BackendConformance, conformance_harness: BackendHarness) -> None:
        reason = check.skip_reason(conformance_harness)
        if reason is not None:
            pytest.skip(reason)
        check.run(conformance_harness)

    test.__name__ = f"test_{check.name}"
    test.__qualname__ = f"{BackendConformance.__name__}.{test.__name__}"
    test.__doc__ = check.run.__doc__
    return test


for _check in ALL_CHECKS:
    setattr(BackendConformance, f"test_{_check.name}", _as_test(_check))
