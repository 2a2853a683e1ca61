"""What both drivers share about renewing many holdings in one ``renew_many`` call.

Which holdings go together is the pure
:func:`~mongoelector.core.batching.renew_together`; this module says which
stores take batches at all (:func:`renews_in_batches`), and turns the reply
of one ``renew_many`` call into one outcome per holding, each exactly what a
single ``renew`` of that holding would have come back with
(:func:`outcomes_of`, :func:`failed_batch`): a record, ``None`` (refused: that
holding is lost), or a :class:`~mongoelector._common.outcomes.Failure` (no
verdict; an ambiguous failure of the call is an ambiguous failure of each item).
"""

from __future__ import annotations

import logging
import sys
import weakref
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol, TypeVar

from mongoelector._common.outcomes import Failure, failure_of
from mongoelector.backends.protocol import Capability, LeaseRecord, MemberRecord
from mongoelector.clock import Clock, SystemClock
from mongoelector.core import batching
from mongoelector.errors import AmbiguousOutcome, BackendError, BackendUnavailable

__all__ = [
    "Member",
    "Observed",
    "Outcome",
    "Reporter",
    "Timings",
    "clock_key",
    "failed_batch",
    "observed_of",
    "outcomes_of",
    "overrides_renew_alone",
    "plan_calls",
    "plan_reports",
    "reads_in_batches",
    "renews_in_batches",
    "reports_in_batches",
    "store_of",
]

logger = logging.getLogger("mongoelector.backend")

#: What one holding's renewal came back with, alone or in a batch.
Outcome = LeaseRecord | Failure | None


class Timings(Protocol):
    """What tells when a member's holding must next be renewed (a lock's renewal rules, an
    elector's leadership term)."""

    def timing(self, now: float | None = None) -> batching.RenewTiming | None: ...


class Member(Protocol):
    """A member of a renew group of either driver, as the group plans its calls: a lock's
    renewer, or a started elector's loop while it leads (its next poll is a renewal)."""

    @property
    def _rules(self) -> Timings: ...

    def _may_join(self, now: float) -> bool: ...


M = TypeVar("M", bound=Member)


def plan_calls(trigger: M, members: Iterable[M], now: float) -> list[list[M]]:
    """The calls to make at ``now`` for ``trigger``'s renewal: the members of its group that
    join it (waiting for their own time, soon enough), as
    :func:`~mongoelector.core.batching.renew_together` splits them; ``[[]]`` (``trigger``
    alone) if ``trigger`` has no holding to renew. The first call is ``trigger``'s."""
    timing = trigger._rules.timing(now)
    if timing is None:
        return [[]]
    candidates = []
    for member in members:
        if member is trigger or not member._may_join(now):
            continue
        joining = member._rules.timing(now)
        if joining is not None:
            candidates.append((member, joining))
    return batching.renew_together(now, timing, candidates)


class Reporter(Protocol):
    """A member of a status group of either driver (a started elector's loop with status
    reports on), in the order asked.

    :meth:`_claim_status` marks its report queued (``False``: it is queued already, or
    the loop ended), :meth:`_unclaim_status` gives a claim back (the report is no longer
    due); :meth:`_may_join_status` says whether it might join another's batch (a quick,
    racy read). As the group's call starts :meth:`_status_begin` gives its report
    (``None``: it has nothing to send now, and its claim is settled), and
    :meth:`_status_end` settles the report sent with the call's outcome.
    """

    def status_timing(self, now: float) -> batching.RenewTiming | None: ...

    def _may_join_status(self) -> bool: ...

    def _claim_status(self) -> bool: ...

    def _unclaim_status(self) -> None: ...

    def _status_begin(self) -> tuple[MemberRecord, float] | None: ...

    def _status_end(self, member: MemberRecord, at: float, error: BackendError | None) -> None: ...


R = TypeVar("R", bound=Reporter)


def plan_reports(trigger: R, members: Iterable[R], now: float) -> list[list[R]] | None:
    """The calls to make at ``now`` for ``trigger``'s status report: the members of its group
    whose reports join it (not queued or in flight, due within half their status interval),
    as :func:`~mongoelector.core.batching.renew_together` splits them; the first call is
    ``trigger``'s. ``None`` if ``trigger``'s report is not due at ``now`` (a batch took it
    in after its poll found it due, and has settled since): nothing to send."""
    timing = trigger.status_timing(now)
    if timing is None or timing.renew_at > now:
        return None
    candidates = []
    for member in members:
        if member is trigger or not member._may_join_status():
            continue
        joining = member.status_timing(now)
        if joining is not None:
            candidates.append((member, joining))
    return batching.renew_together(now, timing, candidates)


def claim_reports(trigger: R, members: Iterable[R], now: float) -> list[list[R]]:
    """The batches of reports to send at ``now`` for ``trigger``, each report claimed (marked
    queued) as it is taken in: :func:`plan_reports`' calls, the first led by ``trigger``,
    with the members whose claim succeeds; empty batches dropped. None at all if
    ``trigger``'s report is queued or in flight already, or no longer due (its claim is
    then given back)."""
    if not trigger._claim_status():
        return []
    calls = plan_reports(trigger, members, now)
    if calls is None:  # not due any more: a batch sent it meanwhile
        trigger._unclaim_status()
        return []
    batches: list[list[R]] = []
    for number, call in enumerate(calls):
        batch = [trigger] if number == 0 else []
        batch.extend(member for member in call if member._claim_status())
        if batch:
            batches.append(batch)
    return batches


def clock_key(clock: Clock) -> object:
    """What tells ``clock`` apart: every :class:`~mongoelector.clock.SystemClock` is one
    clock (one scheduler timer, one renew group), any other clock object its own."""
    return SystemClock if type(clock) is SystemClock else id(clock)


def renews_in_batches(backend: object) -> bool:
    """True if ``backend`` declares :attr:`Capability.RENEW_MANY` and has ``renew_many``
    that goes with its ``renew``.

    The capability is read from the backend object itself (its ``capabilities``),
    so a wrapper or a subclass that does not declare it is renewed key by key. So
    is a backend whose ``capabilities`` cannot be read, and one whose ``renew`` was
    replaced without its ``renew_many`` (:func:`overrides_renew_alone`), itself or
    any store it wraps through ``InlineBackend`` or ``BlockingBackend`` (whose
    ``renew_many`` calls that store's): a test double that injects faults into
    ``renew`` must see every renewal.
    """
    try:
        declared = Capability.RENEW_MANY in backend.capabilities  # type: ignore[attr-defined]
    except Exception:  # a broken property: the per-key calls still work
        return False
    return (
        declared
        and callable(getattr(backend, "renew_many", None))
        and not any(overrides_renew_alone(layer) for layer in _layers(backend))
    )


#: The adapters whose ``renew_many`` calls the ``renew_many`` of what they wrap (``wrapped``):
#: the sync store an ``InlineBackend`` runs inline, the async store a ``BlockingBackend`` view
#: blocks on. Looked up by module, and only once loaded (see :func:`store_of`).
_ADAPTERS = (
    ("mongoelector.backends.async_protocol", "InlineBackend"),
    ("mongoelector.testing.blocking", "BlockingBackend"),
)


def _layers(backend: object) -> list[object]:
    """``backend`` and, through the adapters of :data:`_ADAPTERS`, each backend it wraps."""
    layers = [backend]
    while len(layers) < 16:  # a bound against a wrapper that wraps itself
        adapters = tuple(
            getattr(sys.modules[module], name)
            for module, name in _ADAPTERS
            if module in sys.modules
        )
        if not adapters or not isinstance(layers[-1], adapters):
            break
        layers.append(layers[-1].wrapped)
    return layers


def overrides_renew_alone(backend: object) -> bool:
    """True if ``backend``'s ``renew`` was replaced below the ``renew_many`` it inherits.

    That is: set on the instance without ``renew_many``, or defined by a subclass
    of the class that defines ``renew_many`` (say a ``MemoryBackend`` subclass
    that overrides ``renew`` alone, to count or fail renewals). Its inherited
    ``renew_many`` would bypass the override.
    """
    own = getattr(backend, "__dict__", {})
    if "renew" in own or "renew_many" in own:
        return "renew_many" not in own
    return _class_overrides_renew_alone(type(backend))


#: :func:`_class_overrides_renew_alone` per class, once asked (every acquire asks).
_by_class: weakref.WeakKeyDictionary[type, bool] = weakref.WeakKeyDictionary()


def _class_overrides_renew_alone(cls: type) -> bool:
    """:func:`overrides_renew_alone` for the class (worked out once per class)."""
    known = _by_class.get(cls)
    if known is not None:
        return known
    mro = cls.__mro__
    renew_owner = next((each for each in mro if "renew" in vars(each)), None)
    many_owner = next((each for each in mro if "renew_many" in vars(each)), None)
    found = (
        renew_owner is not None
        and many_owner is not None
        and renew_owner is not many_owner
        and issubclass(renew_owner, many_owner)
    )
    _by_class[cls] = found
    return found


def store_of(backend: object) -> object:
    """The store ``backend`` stands for: holdings of one store renew together.

    That is ``backend`` itself, except for the plain
    :class:`~mongoelector.backends.async_protocol.InlineBackend` an ``AsyncLock``
    makes of a sync backend (each lock makes its own): the backend it wraps. An
    instance of a subclass (passed in by the user, say to inject faults) is a
    store of its own: its calls must not go through another lock's adapter.
    """
    # Only loaded modules are looked at: an InlineBackend exists only once its module is
    # (which loads pymongo: a sync lock must not).
    module = sys.modules.get("mongoelector.backends.async_protocol")
    if module is not None and type(backend) is module.InlineBackend:
        return backend.wrapped  # type: ignore[attr-defined]
    return backend


def failed_batch(backend: object, count: int, error: Exception) -> list[Outcome]:
    """The outcome of each of ``count`` items of a ``renew_many`` call that raised ``error``.

    Each item failed as its own ``renew`` would have: ``BackendUnavailable`` (nothing
    renewed) or ``AmbiguousOutcome`` (each item may have been renewed), kept as it was;
    anything else is a backend bug, logged once and taken as ambiguous.
    """
    failure = failure_of(backend, error)
    return [failure] * count


def outcomes_of(backend: object, count: int, records: object) -> list[Outcome]:
    """The outcome of each of ``count`` items from what ``renew_many`` returned.

    A reply that is not one ``LeaseRecord | None`` per item breaks the protocol:
    it is logged and every item is taken as an ambiguous failure (the only
    assumption that cannot make two holders).
    """
    if (
        isinstance(records, list)
        and len(records) == count
        and all(record is None or isinstance(record, LeaseRecord) for record in records)
    ):
        return list(records)
    logger.error(
        "backend %r answered renew_many of %d items with %r; treating it as ambiguous",
        backend,
        count,
        records if not isinstance(records, list) else f"a list of {len(records)}",
    )
    failure = Failure(AmbiguousOutcome(f"renew_many of {count} items answered {type(records)}"))
    return [failure] * count


#: What one follower's read came back with, alone or in a batch: the record (``None``: no
#: record), with the store's time read after it; or a failure (no verdict).
Observed = tuple[LeaseRecord | None, datetime]


def reads_in_batches(backend: object) -> bool:
    """True if ``backend`` declares :attr:`Capability.GET_MANY` and has ``get_many`` that goes
    with its ``get``: then the following electors of a process read their records together.

    As for renewals (:func:`renews_in_batches`), the capability is read from the backend
    object, and a backend whose ``get`` was replaced without its ``get_many`` (a test
    double counting or failing reads), itself or a store it wraps, reads key by key.
    """
    try:
        declared = Capability.GET_MANY in backend.capabilities  # type: ignore[attr-defined]
    except Exception:  # a broken property: the per-key calls still work
        return False
    return (
        declared
        and callable(getattr(backend, "get_many", None))
        and not any(_overrides_get_alone(layer) for layer in _layers(backend))
    )


def _overrides_get_alone(backend: object) -> bool:
    """True if ``backend``'s ``get`` was replaced below the ``get_many`` it inherits."""
    own = getattr(backend, "__dict__", {})
    if "get" in own or "get_many" in own:
        return "get_many" not in own
    mro = type(backend).__mro__
    get_owner = next((each for each in mro if "get" in vars(each)), None)
    many_owner = next((each for each in mro if "get_many" in vars(each)), None)
    return (
        get_owner is not None
        and many_owner is not None
        and get_owner is not many_owner
        and issubclass(get_owner, many_owner)
    )


def reports_in_batches(backend: object) -> bool:
    """True if ``backend`` declares :attr:`Capability.REPORT_MANY` (and ``MEMBER_STATUS``)
    and has ``report_members`` that goes with its ``report_member``: then the started
    electors of a process send their status reports together.

    As for renewals (:func:`renews_in_batches`), the capability is read from the backend
    object, and a backend whose ``report_member`` was replaced without its
    ``report_members`` (a test double counting or failing reports), itself or a store it
    wraps, reports elector by elector.
    """
    try:
        capabilities = backend.capabilities  # type: ignore[attr-defined]
        declared = Capability.REPORT_MANY in capabilities
        declared = declared and Capability.MEMBER_STATUS in capabilities
    except Exception:  # a broken property: the per-elector calls still work
        return False
    return (
        declared
        and callable(getattr(backend, "report_members", None))
        and not any(
            _overrides_alone(layer, "report_member", "report_members") for layer in _layers(backend)
        )
    )


def _overrides_alone(backend: object, single: str, many: str) -> bool:
    """True if ``backend``'s ``single`` call was replaced below the ``many`` it inherits."""
    own = getattr(backend, "__dict__", {})
    if single in own or many in own:
        return many not in own
    mro = type(backend).__mro__
    single_owner = next((each for each in mro if single in vars(each)), None)
    many_owner = next((each for each in mro if many in vars(each)), None)
    return (
        single_owner is not None
        and many_owner is not None
        and single_owner is not many_owner
        and issubclass(single_owner, many_owner)
    )


def observed_of(
    backend: object, keys: list[str], records: object, server_now: object
) -> list[Observed | Failure]:
    """What each of ``keys`` read, from what ``get_many`` returned and the store's time.

    A reply that is not one ``LeaseRecord | None`` per key (or a time that is not an
    aware ``datetime``) breaks the protocol: it is logged and each read taken as failed
    (a follower then tries again later; a read decides nothing on its own).
    """
    if (
        isinstance(records, dict)
        and all(key in records for key in keys)
        and all(records[key] is None or isinstance(records[key], LeaseRecord) for key in keys)
        and isinstance(server_now, datetime)
        and server_now.tzinfo is not None
    ):
        return [(records[key], server_now) for key in keys]
    logger.error(
        "backend %r answered get_many of %d keys with %r (server time %r); treating it as failed",
        backend,
        len(keys),
        type(records),
        server_now,
    )
    failure = Failure(BackendUnavailable(f"get_many of {len(keys)} keys answered {type(records)}"))
    return [failure] * len(keys)
