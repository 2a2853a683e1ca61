"""The synchronous shell of :class:`~mongoelector.backends.MongoBackend`: plans, performed.

:func:`drive` runs a plan of :mod:`mongoelector.backends._mongo.plans` to its
end, and :func:`perform` performs each step with pymongo's sync API. No
decision is made here: what to send, when to retry and what the replies mean
are the plans'.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pymongo

from mongoelector.backends._mongo.plans import (
    Bounded,
    Call,
    Command,
    CreateIndex,
    FindMany,
    FindOne,
    Hello,
    InsertOne,
    Modify,
    Plan,
    Sleep,
    Step,
    UpsertOne,
)
from mongoelector.clock import Clock

__all__ = ["drive", "perform"]

T = TypeVar("T")


def drive(plan: Plan[T], perform: Callable[[Step], object]) -> T:
    """Run ``plan`` to its end, performing each step it yields with ``perform``.

    A step's ``Exception`` is raised inside the plan at its ``yield``; anything
    else (``KeyboardInterrupt``) ends the plan and propagates.
    """
    try:
        step = next(plan)
        while True:
            try:
                result = perform(step)
            except Exception as error:
                step = plan.throw(error)
            else:
                step = plan.send(result)
    except StopIteration as done:
        value: T = done.value
        return value
    finally:
        plan.close()


def perform(step: Step, *, clock: Clock, hello: Callable[[], Mapping[str, Any] | None]) -> object:
    """Perform ``step`` with pymongo's sync API; a pause is ``clock.sleep``.

    ``hello`` answers a :class:`~mongoelector.backends._mongo.plans.Hello` step.
    """
    match step:
        case Bounded(inner, seconds):
            with pymongo.timeout(seconds):
                return perform(inner, clock=clock, hello=hello)
        case Sleep(seconds):
            clock.sleep(seconds)
            return None
        case Hello():
            return hello()
        case Command(database, name):
            return database.command(name)
        case FindOne(collection, query):
            return collection.find_one(query)
        case FindMany(collection, query):
            return list(collection.find(query))
        case Modify(collection, query, update, upsert, return_document):
            return collection.find_one_and_update(
                query, update, upsert=upsert, return_document=return_document
            )
        case InsertOne(collection, document):
            return collection.insert_one(document)
        case UpsertOne(collection, query, update):
            return collection.update_one(query, update, upsert=True)
        case CreateIndex(collection, spec):
            return collection.create_index(spec.keys, **spec.options)
        case Call(function):
            return function()
    raise TypeError(f"not a plan step: {step!r}")
