"""What a conformance check is, what it needs, and how it reports a failure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TypeAlias, TypeVar

from mongoelector.backends.protocol import Capability
from mongoelector.testing.conformance.harness import BackendHarness, HarnessFeature

__all__ = ["Check", "ConformanceFailure", "Need", "check", "checks_in", "expect", "present"]

_T = TypeVar("_T")

#: What a check may need: a backend capability or a harness feature.
Need: TypeAlias = Capability | HarnessFeature


class ConformanceFailure(AssertionError):
    """A backend broke the storage protocol; the message says which promise and how."""


def expect(condition: bool, message: str) -> None:
    """Raise :class:`ConformanceFailure` with ``message`` unless ``condition`` holds.

    The checks use this instead of ``assert`` so that they work the same under
    ``python -O`` and outside pytest.
    """
    if not condition:
        raise ConformanceFailure(message)


def present(value: _T | None, message: str) -> _T:
    """Return ``value``; raise :class:`ConformanceFailure` with ``message`` if it is ``None``."""
    if value is None:
        raise ConformanceFailure(message)
    return value


@dataclass(frozen=True)
class Check:
    """One promise of the protocol, checked against a fresh harness by ``run``."""

    name: str
    run: Callable[[BackendHarness], None]
    needs: frozenset[Need]

    @property
    def description(self) -> str:
        """The first line of the check's docstring: the promise it checks."""
        doc = (self.run.__doc__ or self.name).strip()
        return doc.splitlines()[0]

    def skip_reason(self, harness: BackendHarness) -> str | None:
        """Why this check cannot run on ``harness`` (naming what is missing), or ``None``."""
        for need in sorted(self.needs, key=lambda n: n.value):
            if isinstance(need, Capability):
                if need not in harness.backend.capabilities:
                    return (
                        f"needs Capability.{need.name}, which the backend does not declare "
                        f"in its capabilities"
                    )
            elif not harness.provides(need):
                return (
                    f"needs HarnessFeature.{need.name}, which the backend factory's "
                    f"harness does not provide"
                )
        return None


def check(*needs: Need) -> Callable[[Callable[[BackendHarness], None]], Check]:
    """Turn a function ``f(harness)`` into a :class:`Check` that needs ``needs``."""

    def register(func: Callable[[BackendHarness], None]) -> Check:
        return Check(name=func.__name__, run=func, needs=frozenset(needs))

    return register


def checks_in(module: ModuleType) -> list[Check]:
    """The checks a module defines, in the order it defines them."""
    return [value for value in vars(module).values() if isinstance(value, Check)]
