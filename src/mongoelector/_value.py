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

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Value", "frozen_builder", "frozen_replacer"]

_T = TypeVar("_T")
_new = object.__new__


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


# --- frozen, slotted dataclasses built without their ``__init__`` ------------------------------
#
# A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (and
# takes keywords); the public records made on every call (``LeaseRequest``,
# ``LeaseRecord``, ``Holding``) stay such dataclasses, but code that already holds
# checked values may build them through their slots' descriptors, which is what
# ``object.__setattr__`` ends up calling. The instance is the same in every way
# (type, equality, hash, ``repr``, pickling): only the route is shorter. Only for
# classes with ``slots=True`` and no ``__post_init__`` (checked when a builder is made).


def _setters(cls: type) -> tuple[Callable[[Any, Any], None], ...]:
    if not dataclasses.is_dataclass(cls) or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a slotted dataclass")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__ that a builder would skip")
    return tuple(getattr(cls, field.name).__set__ for field in dataclasses.fields(cls))


def frozen_builder(cls: type[_T]) -> Callable[..., _T]:
    """A function making ``cls(**fields)`` from every field's value, in field order
    (positional, none left out: defaults are not applied)."""
    setters = _setters(cls)
    count = len(setters)

    def build(*values: Any) -> _T:
        if len(values) != count:
            raise TypeError(f"{cls.__name__} takes {count} values, got {len(values)}")
        made: _T = _new(cls)
        for set_value, value in zip(setters, values, strict=False):  # count checked
            set_value(made, value)
        return made

    return build


def frozen_replacer(cls: type[_T], name: str) -> Callable[[_T, Any], _T]:
    """A function making ``dataclasses.replace(instance, **{name: value})`` for ``cls``."""
    setters = _setters(cls)
    names = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
    changed = setters[names.index(name)]
    copies = tuple(
        (getattr(cls, other).__get__, setter)
        for other, setter in zip(names, setters, strict=True)
        if other != name
    )

    def replace(instance: _T, value: Any) -> _T:
        made: _T = _new(cls)
        for get_value, set_value in copies:
            set_value(made, get_value(instance))
        changed(made, value)
        return made

    return replace
