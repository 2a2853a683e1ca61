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


def _compiled(source: str, name: str, namespace: dict[str, Any]) -> Callable[..., Any]:
    """The function ``name`` that ``source`` defines, run in ``namespace``.

    The builders below are written out per class, one statement per field (a
    loop over the fields costs about twice as much per call). ``source`` is made
    here from field positions only (``v0``, ``s0``, ...), never from outside text;
    compiling one takes tens of microseconds, once per builder.
    """
    exec(source, namespace)
    function: Callable[..., Any] = namespace[name]
    return function


def frozen_builder(cls: type[_T]) -> Callable[..., _T]:
    """A function making ``cls(**fields)`` from every field's value, in field order
    (positional, none left out: defaults are not applied)."""
    setters = _setters(cls)
    count = len(setters)
    namespace: dict[str, Any] = {"_new": _new, "cls": cls, "count": count}
    namespace.update({f"s{index}": setter for index, setter in enumerate(setters)})
    values = "".join(f"v{index}, " for index in range(count))
    lines = [
        "def build(*values):",
        "    if len(values) != count:",
        '        raise TypeError(f"{cls.__name__} takes {count} values, got {len(values)}")',
        f"    ({values}) = values" if count else "    pass",
        "    made = _new(cls)",
        *(f"    s{index}(made, v{index})" for index in range(count)),
        "    return made",
    ]
    build: Callable[..., _T] = _compiled("\n".join(lines) + "\n", "build", namespace)
    return build


def frozen_replacer(cls: type[_T], name: str) -> Callable[[_T, Any], _T]:
    """A function making ``dataclasses.replace(instance, **{name: value})`` for ``cls``."""
    setters = _setters(cls)
    names = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
    changed = names.index(name)
    namespace: dict[str, Any] = {"_new": _new, "cls": cls}
    lines = ["def replace(instance, value):", "    made = _new(cls)"]
    for index, (other, setter) in enumerate(zip(names, setters, strict=True)):
        namespace[f"s{index}"] = setter
        if index == changed:
            lines.append(f"    s{index}(made, value)")
        else:
            namespace[f"g{index}"] = getattr(cls, other).__get__
            lines.append(f"    s{index}(made, g{index}(instance))")
    lines.append("    return made")
    replace: Callable[[_T, Any], _T] = _compiled("\n".join(lines) + "\n", "replace", namespace)
    return replace
