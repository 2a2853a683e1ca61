"""Which holdings renew together, in one ``renew_many`` call (pure: no I/O, no threads).

A process that keeps many holdings in one store (a backend declaring
:attr:`~mongoelector.backends.Capability.RENEW_MANY`) need not send one
renewal per holding. When one holding's renewal falls due (the *trigger*),
every other holding of the same store whose own renewal falls due soon
joins it, and the drivers send them all in one call. :func:`renew_together`
is that choice; a driver gives it each candidate's :class:`RenewTiming`.

**The window.** A holding joins when its own renewal falls due within
:data:`JOIN_FRACTION` (one half) of *its own* renew interval from now, and
its renew deadline has not passed. Renewing early only extends a lease (the
holding stays trusted ``renew_deadline`` from the batch's start), so joining
is always safe; it costs that holding at most one extra renewal per interval.
One half is what keeps the batches few:

* every holding renewed in a batch next falls due one interval after that
  batch started, all at the same moment, so they stay together: in the
  steady state holdings of one interval make **one call per interval**
  (per :data:`MAX_BATCH` holdings);
* holdings whose renewals are spread anywhere over one interval (acquired at
  different times) line up within two batches: the first takes those due in
  the next half interval; the next trigger comes more than half an interval
  later, when the first batch's holdings are due within half an interval
  again, so it takes them and every holding left;
* a holding with a longer interval than the trigger's joins only in the last
  half of its own interval, so it is renewed at most about twice as often as
  it would be alone, never at every batch of shorter-lived neighbours.

**The cap.** At most :data:`MAX_BATCH` holdings per call (the trigger
included); candidates due soonest go first. A batch of 1,000 MongoDB updates
is one ``update`` command of roughly 200 kB, far below the server's 48 MB
message and 100,000-statement limits, and 1,000 holdings (the size issue 14
asks one call per interval for) fit in one. When more join, the rest go out
at the same moment in further calls of up to :data:`MAX_BATCH` each (each of
them would be the next trigger a moment later anyway), so N holdings take
⌈N / :data:`MAX_BATCH`⌉ calls per interval, chosen in one pass.

**One key per call.** A batch names each key at most once (the protocol
refuses a batch that repeats one): a second holding of the same key (another
lock object that took it over by force) waits for its own call.

What a driver does with a batch's outcome is not decided here: each item's
reply goes back into that holding's own renewal rules exactly as a single
``renew`` reply would (:class:`~mongoelector.core.renewal.Renewal`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["JOIN_FRACTION", "MAX_BATCH", "RenewTiming", "joins", "renew_together"]

#: A holding joins a batch when its own renewal falls due within this fraction of its renew
#: interval (see the module's docstring for why one half).
JOIN_FRACTION = 0.5
#: The most holdings renewed in one call (the trigger included).
MAX_BATCH = 1000

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RenewTiming:
    """When one kept holding of ``key`` must next be renewed, and until when it is trusted.

    All times are the holding's clock's monotonic seconds. ``renew_at`` is when its own
    renewal falls due, ``valid_until`` its renew deadline, ``interval`` its renew interval.
    """

    key: str
    renew_at: float
    valid_until: float
    interval: float


def joins(now: float, timing: RenewTiming) -> bool:
    """True if the holding of ``timing`` may be renewed at ``now`` in another holding's batch.

    It must still be trusted (``now`` before its deadline), and its own renewal must fall
    due within :data:`JOIN_FRACTION` of its interval.
    """
    return now < timing.valid_until and timing.renew_at <= now + timing.interval * JOIN_FRACTION


def renew_together(
    now: float,
    trigger: RenewTiming,
    candidates: Iterable[tuple[T, RenewTiming]],
    *,
    limit: int = MAX_BATCH,
) -> list[list[T]]:
    """The calls to make at ``now`` for ``trigger``'s renewal and the candidates that join it.

    ``candidates`` are the other kept holdings of the same store (a holding whose
    renewal is in flight, released, or lost is not a candidate: the driver leaves
    it out). Each joins if :func:`joins` says so. The first list holds those that
    go in ``trigger``'s own call (at most ``limit - 1``: ``limit`` counts the
    trigger); when more join than one call takes, the others follow in further
    lists of at most ``limit`` each, to be sent at the same time (they would
    each be the next trigger a moment later). No list names a key twice, nor the
    trigger's key in the first. Soonest due first; among holdings due at the same
    time, in the candidates' order. ``[[]]`` when nobody joins.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit!r}")
    eligible = [
        (timing.renew_at, index, timing.key, item)
        for index, (item, timing) in enumerate(candidates)
        if joins(now, timing)
    ]
    eligible.sort(key=lambda entry: entry[:2])
    calls: list[list[T]] = [[]]
    keys: list[set[str]] = [{trigger.key}]
    room = [limit - 1]
    first_open = 0  # every call before it is full
    for _, _, key, item in eligible:
        call = first_open
        while call < len(calls) and (room[call] == 0 or key in keys[call]):
            call += 1
        if call == len(calls):
            calls.append([])
            keys.append(set())
            room.append(limit)
        calls[call].append(item)
        keys[call].add(key)
        room[call] -= 1
        while first_open < len(calls) and room[first_open] == 0:
            first_open += 1
    return calls
