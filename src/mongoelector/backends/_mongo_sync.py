"""The synchronous shell of :class:`~mongoelector.backends.MongoBackend`: plans, performed.

:func:`drive` runs a plan of :mod:`mongoelector.backends._mongo.plans` to its
end, and :func:`perform` carries out each step with pymongo's sync API. No
decision is made here: what to send, when to retry and what the replies mean
are the plans'.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pymongo

from mongoelector.backends._mongo import plans
from mongoelector.clock import Clock

__all__ = ["drive", "perform"]

T = TypeVar("T")


def drive(plan: plans.Plan[T], perform: Callable[[plans.Step], object]) -> T:
    """Run ``plan`` to its end, performing each step it yields with ``perform``.

    A step's ``Exception`` is raised inside the plan at its ``yield``; anything
    else (``KeyboardInterrupt``) ends the plan and propagates. (The stepping of
    :class:`~mongoelector.backends._mongo.plans.PlanRun`, written out: this runs
    for every store call.)
    """
    try:
        step = next(plan)
        while True:
            try:
                outcome = perform(step)
            except Exception as error:
                raised: Exception | None = error
            else:
                raised = None
            step = plan.send(outcome) if raised is None else plan.throw(raised)
    except StopIteration as finished:
        value: T = finished.value
        return value
    finally:
        plan.close()


def perform(
    step: plans.Step, *, clock: Clock, hello: Callable[[], Mapping[str, Any] | None]
) -> object:
    """Carry out ``step`` with pymongo's sync API; a pause is ``clock.sleep``.

    ``hello`` answers a :class:`~mongoelector.backends._mongo.plans.Hello` step.
    """
    if type(step) is plans.Bounded:
        inner = step.step
        with pymongo.timeout(step.seconds):
            if type(inner) is plans.Modify:  # the step of every lease write: no matching
                return inner.collection.find_one_and_update(
                    inner.filter,
                    inner.update,
                    upsert=inner.upsert,
                    return_document=inner.return_document,
                )
            return perform(inner, clock=clock, hello=hello)
    match step:
        case plans.Sleep(seconds):
            clock.sleep(seconds)
            return None
        case plans.Hello():
            return hello()
        case plans.FindMany(collection, query):
            return list(collection.find(query))
    return plans.start(step)
