"""The asyncio shell of :class:`~mongoelector.backends.AsyncMongoBackend`: plans, awaited.

:func:`drive` runs a plan of :mod:`mongoelector.backends._mongo.plans` to its
end, and :func:`perform` awaits each step on ``AsyncMongoClient``. No decision
is made here: the plans are the sync backend's. Cancellation is never thrown
into a plan: it closes the plan and propagates (the call may have applied).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from contextlib import closing
from typing import Any, TypeVar

import pymongo

from mongoelector.backends._mongo import plans
from mongoelector.clock import Clock

__all__ = ["drive", "perform"]

T = TypeVar("T")


async def drive(plan: plans.Plan[T], perform: Callable[[plans.Step], Awaitable[object]]) -> T:
    """Run ``plan`` to its end, awaiting ``perform`` for each step it yields.

    A step's ``Exception`` is raised inside the plan at its ``yield``;
    anything else (``asyncio.CancelledError``) ends the plan and propagates.
    """
    with closing(plans.PlanRun(plan)) as run:
        while not run.done:
            run.feed(await _outcome(perform, run.step))
        return run.value


async def _outcome(perform: Callable[[plans.Step], Awaitable[object]], step: plans.Step) -> object:
    try:
        return await perform(step)
    except Exception as error:
        return plans.Raised(error)


async def perform(
    step: plans.Step, *, clock: Clock, hello: Callable[[], Awaitable[Mapping[str, Any] | None]]
) -> object:
    """Await ``step`` on pymongo's async API; a pause waits on ``clock`` without blocking."""
    match step:
        case plans.Bounded(inner, seconds):
            with pymongo.timeout(seconds):
                return await perform(inner, clock=clock, hello=hello)
        case plans.Sleep(seconds):
            # Imported here: mongoelector.aio imports the backends package.
            from mongoelector.aio._time import sleep  # noqa: PLC0415

            await sleep(clock, seconds)
            return None
        case plans.Hello():
            return await hello()
        case plans.FindMany(collection, query):
            return await collection.find(query).to_list()
    started = plans.start(step)  # an awaitable, or a Call's plain result
    return await started if inspect.isawaitable(started) else started
