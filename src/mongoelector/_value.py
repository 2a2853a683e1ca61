"""A base for the small value objects the hot paths make on every call.

A frozen dataclass is built with ``exec`` at import (about 0.4 ms each) and
sets each field through ``object.__setattr__`` on every instance; the
decisions, actions and steps made once or more per store call are plain
classes with ``__slots__`` and a written-out ``__init__`` instead. This base
gives them what the dataclasses gave: equality and hashing by type and
fields, a ``repr`` in the dataclass form, and positional ``match`` patterns
(``__match_args__`` = the fields). They are never changed after they are made
(nothing assigns to their fields outside ``__init__``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Value"]


class Value:
    """Equality, hashing and ``repr`` by the fields named in ``__slots__`` (in that order)."""

    __slots__ = ()

    def _names(self) -> tuple[str, ...]:
        names: tuple[str, ...] = self.__slots__
        return names

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._names())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Value) or type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash((type(self), self._fields()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._names())
        return f"{type(self).__qualname__}({fields})"
