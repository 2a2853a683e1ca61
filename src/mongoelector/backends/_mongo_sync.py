"""The synchronous shell of :class:`~mongoelector.backends.MongoBackend`: plans, performed.

:func:`drive` runs a plan of :mod:`mongoelector.backends._mongo.plans` to its
end, and :func:`perform` carries out each step with pymongo's sync API. No
decision is made here: what to send, when to retry and what the replies mean
are the plans'.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import closing
from typing import Any, TypeVar

import pymongo

from mongoelector.backends._mongo import plans
from mongoelector.clock import Clock

__all__ = ["drive", "perform"]

T = TypeVar("T")


def drive(plan: plans.Plan[T], perform: Callable[[plans.Step], object]) -> T:
    """Run ``plan`` to its end, performing each step it yields with ``perform``.

    A step's ``Exception`` is raised inside the plan at its ``yield``; anything
    else (``KeyboardInterrupt``) ends the plan and propagates.
    """
    with closing(plans.PlanRun(plan)) as run:
        while not run.done:
            run.feed(_outcome(perform, run.step))
        return run.value


def _outcome(perform: Callable[[plans.Step], object], step: plans.Step) -> object:
    try:
        return perform(step)
    except Exception as error:
        return plans.Raised(error)


def perform(
    step: plans.Step, *, clock: Clock, hello: Callable[[], Mapping[str, Any] | None]
) -> object:
    """Carry out ``step`` with pymongo's sync API; a pause is ``clock.sleep``.

    ``hello`` answers a :class:`~mongoelector.backends._mongo.plans.Hello` step.
    """
    match step:
        case plans.Bounded(inner, seconds):
            with pymongo.timeout(seconds):
                return perform(inner, clock=clock, hello=hello)
        case plans.Sleep(seconds):
            clock.sleep(seconds)
            return None
        case plans.Hello():
            return hello()
        case plans.FindMany(collection, query):
            return list(collection.find(query))
    return plans.start(step)
