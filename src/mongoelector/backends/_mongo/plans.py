"""I/O as data: the steps a MongoDB backend's operations ask their shell to perform.

Every operation of the MongoDB backends is written once, as a *plan*: a
generator that yields :data:`Step` objects (call this pymongo method, pause
this long, ...) and gets back each step's result, or has the step's
exception raised at its ``yield``. A shell runs plans: the sync backend
performs each step with pymongo's sync API, the async backend awaits it on
``AsyncMongoClient``. So every decision (retries, write path, index refusals,
clock readings) is made once, here and in the modules built on this one, and
a shell only carries steps out.

Shells throw ``Exception`` subclasses into the plan and let anything else
(``asyncio.CancelledError``, ``KeyboardInterrupt``) propagate, closing the
plan: an interrupted call may have applied, which the lock and elector
drivers take into account.

Also here: the plans every operation builds on (:func:`with_retries`,
:func:`hello`, :func:`create_indexes`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Mapping
from typing import Any, Generic, TypeAlias, TypeVar

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import OperationFailure, PyMongoError

from mongoelector._value import Value
from mongoelector.backends._mongo.commands import FindAndModify
from mongoelector.backends._mongo.failures import RetryPolicy, classify, is_transient
from mongoelector.backends._mongo.indexes import IndexSpec, describe_refusal
from mongoelector.clock import Clock
from mongoelector.errors import AmbiguousOutcome

__all__ = [
    "Bounded",
    "BulkUpdate",
    "BulkUpsert",
    "Call",
    "Command",
    "CreateIndex",
    "FindMany",
    "FindOne",
    "Hello",
    "InsertOne",
    "Modify",
    "Plan",
    "PlanRun",
    "Raised",
    "Sleep",
    "Step",
    "UpdateMatching",
    "UpsertOne",
    "bounded",
    "create_indexes",
    "hello",
    "modify",
    "retried_step",
    "start",
    "with_retries",
]

logger = logging.getLogger("mongoelector.backend")

T = TypeVar("T")


# --- the steps (each field is what the pymongo call takes) ---------------------------------


class Hello(Value):
    """Read the server's ``hello`` reply (``None`` if it has none): the shell's ``_hello()``."""

    __slots__ = ()
    __match_args__ = ()


class Command(Value):
    """``database.command(name)``."""

    __slots__ = ("database", "name")
    __match_args__ = ("database", "name")

    def __init__(self, database: Any, name: str) -> None:
        self.database = database
        self.name = name


class FindOne(Value):
    """``collection.find_one(filter)``."""

    __slots__ = ("collection", "filter")
    __match_args__ = ("collection", "filter")

    def __init__(self, collection: Any, filter: dict[str, Any]) -> None:
        self.collection = collection
        self.filter = filter


class FindMany(Value):
    """Every document ``collection.find(filter)`` yields, as a list."""

    __slots__ = ("collection", "filter")
    __match_args__ = ("collection", "filter")

    def __init__(self, collection: Any, filter: dict[str, Any]) -> None:
        self.collection = collection
        self.filter = filter


class Modify(Value):
    """``collection.find_one_and_update(filter, update, upsert=, return_document=)``."""

    __slots__ = ("collection", "filter", "return_document", "update", "upsert")
    __match_args__ = ("collection", "filter", "update", "upsert", "return_document")

    def __init__(
        self,
        collection: Any,
        filter: dict[str, Any],
        update: dict[str, Any] | list[dict[str, Any]],
        upsert: bool,
        return_document: bool,
    ) -> None:
        self.collection = collection
        self.filter = filter
        self.update = update
        self.upsert = upsert
        self.return_document = return_document


class InsertOne(Value):
    """``collection.insert_one(document)``."""

    __slots__ = ("collection", "document")
    __match_args__ = ("collection", "document")

    def __init__(self, collection: Any, document: dict[str, Any]) -> None:
        self.collection = collection
        self.document = document


class UpsertOne(Value):
    """``collection.update_one(filter, update, upsert=True)``."""

    __slots__ = ("collection", "filter", "update")
    __match_args__ = ("collection", "filter", "update")

    def __init__(self, collection: Any, filter: dict[str, Any], update: Any) -> None:
        self.collection = collection
        self.filter = filter
        self.update = update


class UpdateMatching(Value):
    """``collection.update_one(filter, update)`` (no upsert); the reply has ``matched_count``."""

    __slots__ = ("collection", "filter", "update")
    __match_args__ = ("collection", "filter", "update")

    def __init__(self, collection: Any, filter: dict[str, Any], update: Any) -> None:
        self.collection = collection
        self.filter = filter
        self.update = update


class BulkUpdate(Value):
    """``collection.bulk_write([UpdateOne(filter, update), ...], ordered=False)``.

    pymongo sends it as one ``update`` command (up to the server's batch
    limits: 100,000 statements and 48 MB); the reply has ``matched_count``,
    the total over all statements.
    """

    __slots__ = ("collection", "updates")
    __match_args__ = ("collection", "updates")

    def __init__(self, collection: Any, updates: tuple[tuple[dict[str, Any], Any], ...]) -> None:
        self.collection = collection
        self.updates = updates


class BulkUpsert(Value):
    """``collection.bulk_write([UpdateOne(filter, update, upsert=True), ...], ordered=False)``:
    one ``update`` command, as :class:`BulkUpdate`, each statement an upsert."""

    __slots__ = ("collection", "updates")
    __match_args__ = ("collection", "updates")

    def __init__(self, collection: Any, updates: tuple[tuple[dict[str, Any], Any], ...]) -> None:
        self.collection = collection
        self.updates = updates


class CreateIndex(Value):
    """``collection.create_index(spec.keys, **spec.options)``."""

    __slots__ = ("collection", "spec")
    __match_args__ = ("collection", "spec")

    def __init__(self, collection: Any, spec: IndexSpec) -> None:
        self.collection = collection
        self.spec = spec


class Call(Value):
    """Call ``function()`` (awaiting its result, in an async shell, if it is awaitable)."""

    __slots__ = ("function",)
    __match_args__ = ("function",)

    def __init__(self, function: Callable[[], object]) -> None:
        self.function = function


class Sleep(Value):
    """Let ``seconds`` of the backend's clock pass."""

    __slots__ = ("seconds",)
    __match_args__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class Bounded(Value):
    """Perform ``step`` within ``seconds`` (under ``pymongo.timeout``)."""

    __slots__ = ("seconds", "step")
    __match_args__ = ("step", "seconds")

    def __init__(self, step: Step, seconds: float) -> None:
        self.step = step
        self.seconds = seconds


Step: TypeAlias = (
    Hello
    | Command
    | FindOne
    | FindMany
    | Modify
    | InsertOne
    | UpsertOne
    | UpdateMatching
    | BulkUpdate
    | BulkUpsert
    | CreateIndex
    | Call
    | Sleep
    | Bounded
)
#: A plan that ends with a ``T``.
Plan: TypeAlias = Generator[Step, Any, T]


def modify(collection: Any, command: FindAndModify) -> Modify:
    """The step that sends ``command`` to ``collection``."""
    return Modify(
        collection,
        command.filter,
        command.update,
        command.upsert,
        ReturnDocument.AFTER if command.return_new else ReturnDocument.BEFORE,
    )


# --- plans every operation builds on ------------------------------------------------------


class Raised(Value):
    """A step's outcome when it raised ``error`` (see :meth:`PlanRun.feed`)."""

    __slots__ = ("error",)
    __match_args__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class PlanRun(Generic[T]):
    """One run of ``plan``, a step at a time: the stepping protocol every driver shares.

    While not :attr:`done`, perform :attr:`step` and :meth:`feed` its outcome
    back; then :attr:`value` is what the plan returned. :meth:`close` ends the
    plan early (its ``finally`` blocks run).
    """

    def __init__(self, plan: Plan[T]) -> None:
        self._plan = plan
        self.done = False
        self._value: T | None = None
        self.step: Step = Sleep(0.0)
        self._advance(lambda: next(plan))

    @property
    def value(self) -> T:
        """What the plan returned (once :attr:`done`)."""
        if not self.done:
            raise RuntimeError("the plan has not finished")
        return self._value  # type: ignore[return-value]

    def feed(self, outcome: object) -> None:
        """Answer the current step: its result, or :class:`Raised` to raise its error in the plan.

        An exception the plan raises in turn propagates from here.
        """
        if isinstance(outcome, Raised):
            error = outcome.error
            self._advance(lambda: self._plan.throw(error))
        else:
            self._advance(lambda: self._plan.send(outcome))

    def close(self) -> None:
        self._plan.close()

    def _advance(self, move: Callable[[], Step]) -> None:
        try:
            self.step = move()
        except StopIteration as finished:
            self.done = True
            self._value = finished.value


def bounded(plan: Plan[T], seconds: Callable[[], float]) -> Plan[T]:
    """``plan``, with each of its I/O steps bounded by ``seconds()`` as the step starts.

    A step's error is raised inside ``plan`` at its ``yield``; ``plan`` is
    closed when this plan ends or is closed (what :class:`PlanRun` does, without
    its bookkeeping: this runs for every store call).
    """
    try:
        step = next(plan)
        while True:
            if not isinstance(step, (Sleep, Bounded)):
                step = Bounded(step, seconds())
            try:
                outcome = yield step
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


def start(step: Step) -> object:
    """Make the pymongo call of a collection or database ``step``; return what it returns.

    That is the reply itself from pymongo's sync API, and an awaitable of it
    from the async one. A ``Call`` calls its function. The other steps
    (``Bounded``, ``Sleep``, ``Hello``, ``FindMany``) need the shell: they are
    refused with ``TypeError``.
    """
    match step:
        case Command(database, name):
            return database.command(name)
        case FindOne(collection, query):
            return collection.find_one(query)
        case Modify(collection, query, update, upsert, return_document):
            return collection.find_one_and_update(
                query, update, upsert=upsert, return_document=return_document
            )
        case InsertOne(collection, document):
            return collection.insert_one(document)
        case UpsertOne(collection, query, update):
            return collection.update_one(query, update, upsert=True)
        case UpdateMatching(collection, query, update):
            return collection.update_one(query, update)
        case BulkUpdate(collection, updates):
            return collection.bulk_write(
                [UpdateOne(query, update) for query, update in updates], ordered=False
            )
        case BulkUpsert(collection, updates):
            return collection.bulk_write(
                [UpdateOne(query, update, upsert=True) for query, update in updates],
                ordered=False,
            )
        case CreateIndex(collection, spec):
            return collection.create_index(spec.keys, **spec.options)
        case Call(function):
            return function()
    raise TypeError(f"a shell must perform {step!r} itself")


class _Retries:
    """What :func:`with_retries` and :func:`retried_step` keep once a first attempt failed."""

    __slots__ = ("attempts", "clock", "driver_retries", "maybe_applied", "policy", "started")

    def __init__(
        self, clock: Clock, policy: RetryPolicy, started: float, driver_retries: bool
    ) -> None:
        self.clock = clock
        self.policy = policy
        self.started = started
        self.driver_retries = driver_retries
        self.attempts = 0
        self.maybe_applied: AmbiguousOutcome | None = None

    def delay_after(self, error: PyMongoError, what: str, *, write: bool) -> float:
        """Seconds to wait before the next attempt after ``error``; raises when giving up."""
        self.attempts += 1
        failure = classify(error, write=write, what=what, driver_retries=self.driver_retries)
        if isinstance(failure, AmbiguousOutcome) and self.maybe_applied is None:
            self.maybe_applied = failure
        elapsed = self.clock.monotonic() - self.started
        delay = (
            self.policy.delay_before_retry(self.attempts, elapsed) if is_transient(error) else None
        )
        if delay is None:
            if self.maybe_applied is not None and not isinstance(failure, AmbiguousOutcome):
                raise AmbiguousOutcome(
                    f"{what}: an earlier attempt may have applied; then {failure}",
                    original=error,
                ) from error
            raise failure from error
        logger.debug("%s failed (%s); retrying in %.3f s", what, error, delay)
        return delay


def with_retries(
    clock: Clock,
    policy: RetryPolicy,
    what: str,
    attempt: Callable[[], Plan[T]],
    *,
    write: bool,
    driver_retries: bool = False,
    started: float | None = None,
    thrown: PyMongoError | None = None,
) -> Plan[T]:
    """Run ``attempt()`` until it succeeds, fails for good, or ``policy``'s budget is spent.

    Every step of an attempt is bounded by what is left of the budget, so
    server selection and the network are bounded too. Failures are raised as
    our error types; once any attempt of a write may have applied, the final
    error is :class:`~mongoelector.errors.AmbiguousOutcome`. ``driver_retries``:
    the driver retries writes itself (see :func:`.failures.classify`).

    ``started`` and ``thrown`` continue an operation whose caller performed the
    first step of the first attempt itself (a shell's one-write fast path),
    starting at monotonic time ``started``, and saw it raise ``thrown``: that
    error is raised inside the first attempt at its first ``yield``, whose step
    is not sent again; from there on all is as above, the budget counted from
    ``started``.

    (:func:`bounded` around each attempt, written out in this one generator:
    it runs for every store call.)
    """
    if started is None:
        started = clock.monotonic()
    retries: _Retries | None = None
    while True:
        plan = attempt()
        try:
            try:
                step = next(plan)
                if thrown is not None:
                    error, thrown = thrown, None
                    step = plan.throw(error)
                while True:
                    if not isinstance(step, (Sleep, Bounded)):
                        step = Bounded(
                            step, max(policy.remaining(clock.monotonic() - started), 0.001)
                        )
                    try:
                        outcome = yield step
                    except Exception as error:
                        step = plan.throw(error)
                    else:
                        step = plan.send(outcome)
            except StopIteration as finished:
                value: T = finished.value
                return value
            finally:
                plan.close()
        except PyMongoError as error:
            if retries is None:
                retries = _Retries(clock, policy, started, driver_retries)
            delay = retries.delay_after(error, what, write=write)
        yield Sleep(delay)


def retried_step(
    clock: Clock,
    policy: RetryPolicy,
    step: Step,
    what: Callable[[], str],
    *,
    write: bool,
    driver_retries: bool = False,
    started: float | None = None,
    thrown: PyMongoError | None = None,
) -> Plan[Any]:
    """:func:`with_retries` of an attempt that is the single I/O ``step``; ``what()`` names
    the operation (built only if it fails).

    The same bound on the step, the same retries and the same errors, without
    a plan per attempt: most store calls are one step. ``started`` and
    ``thrown``: the caller sent ``step`` once itself, at monotonic time
    ``started``, and it raised ``thrown``; the plan goes on from that failure
    (as :func:`with_retries` does).
    """
    if started is None:
        started = clock.monotonic()
    retries: _Retries | None = None
    if thrown is not None:
        retries = _Retries(clock, policy, started, driver_retries)
        yield Sleep(retries.delay_after(thrown, what(), write=write))
    while True:
        try:
            return (yield Bounded(step, max(policy.remaining(clock.monotonic() - started), 0.001)))
        except PyMongoError as error:
            if retries is None:
                retries = _Retries(clock, policy, started, driver_retries)
            delay = retries.delay_after(error, what(), write=write)
        yield Sleep(delay)


def hello(database: Any) -> Plan[Mapping[str, Any] | None]:
    """``database``'s ``hello`` reply, or ``None`` if the store lacks the command (mongomock)."""
    try:
        reply: Mapping[str, Any] = yield Command(database, "hello")
    except NotImplementedError:
        return None
    except OperationFailure as error:
        if error.code != 59:  # CommandNotFound: a server older than hello
            raise
        try:
            reply = yield Command(database, "isMaster")
        except NotImplementedError:
            return None
    return reply


def create_indexes(collection: Any, specs: list[IndexSpec], *, budget: float) -> Plan[bool]:
    """Create ``specs`` on ``collection``; ``False`` if the server could not be reached.

    An index the server refuses (it exists with other options, or we may not
    create it) is logged and left alone: nothing is ever dropped.
    """
    for spec in specs:
        try:
            yield Bounded(CreateIndex(collection, spec), budget)
        except OperationFailure as error:
            logger.warning(describe_refusal(collection.name, spec, error.code, error))
        except PyMongoError as error:
            logger.info("index creation on %r postponed: %s", collection.name, error)
            return False
    return True
