"""Every conformance check, grouped by the part of the protocol it checks.

Each module holds readable checks, one function per promise; :data:`ALL_CHECKS`
lists them in a stable order (module order, then definition order).
"""

from __future__ import annotations

from mongoelector.testing.conformance.checks import (
    acquisition,
    batches,
    cas,
    failures,
    holding,
    inputs,
    keys,
    members,
    surface,
    threads,
    tokens,
)
from mongoelector.testing.conformance.registry import Check, checks_in

__all__ = ["ALL_CHECKS"]

_MODULES = (
    surface,
    cas,
    acquisition,
    holding,
    tokens,
    keys,
    inputs,
    threads,
    failures,
    members,
    batches,
)

#: Every check of the suite, in the order the suite runs them.
ALL_CHECKS: tuple[Check, ...] = tuple(check for module in _MODULES for check in checks_in(module))

_names = [check.name for check in ALL_CHECKS]
if len(set(_names)) != len(_names):  # pragma: no cover - a mistake in this package
    raise RuntimeError(f"conformance check names must be unique: {sorted(_names)}")
