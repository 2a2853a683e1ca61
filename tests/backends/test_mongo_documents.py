"""How lease documents are read: the lean readers say exactly what the full record says."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from mongoelector.backends._mongo import commands, documents
from mongoelector.backends._mongo.documents import record_from_document, token_and_holder_expiry

_MISSING = object()
_NAIVE = datetime(2026, 12, 5, 3, 0, 0, 123000)
_PLUS_TWO = timezone(timedelta(hours=2))

#: Each field's variants: well-typed, mistyped the ways 1.x or a hand edit leave it, absent.
_VARIANTS: dict[str, list[object]] = {
    "token": [7, 0, True, "7", 7.0, None, _MISSING],
    "locked": [True, False, 1, None, _MISSING],
    "uuid": ["me", 5, None, _MISSING],
    "ts_expire": [_NAIVE, _NAIVE.replace(tzinfo=_PLUS_TWO), "2026-12-05", None, _MISSING],
}


def lease_documents() -> Iterator[dict[str, Any]]:
    """Every combination of the variants, on an otherwise ordinary document."""
    names = list(_VARIANTS)
    for values in itertools.product(*(_VARIANTS[name] for name in names)):
        document: dict[str, Any] = {"_id": "k", "host": "h", "pid": 1, "metadata": {}}
        document.update({n: v for n, v in zip(names, values, strict=True) if v is not _MISSING})
        yield document


def record_says(document: Mapping[str, Any]) -> tuple[int, datetime | None]:
    record = record_from_document(document)
    return record.token, (record.expires_at if record.owner is not None else None)


def mismatches(
    read: Callable[[Mapping[str, Any]], tuple[int, datetime | None]],
) -> list[dict[str, Any]]:
    return [d for d in lease_documents() if read(d) != record_says(d)]


def test_a_release_reply_reads_as_the_record_would() -> None:
    assert mismatches(token_and_holder_expiry) == []


@pytest.mark.parametrize(
    "broken",
    [
        # the owner check dropped: an unlocked document would count as a holding
        lambda d: (
            (record_says(d)[0], documents.as_utc(d["ts_expire"]))
            if isinstance(d.get("ts_expire"), datetime)
            else record_says(d)
        ),
        # a bool taken for a token
        lambda d: (
            (int(d["token"]), record_says(d)[1])
            if isinstance(d.get("token"), bool)
            else record_says(d)
        ),
    ],
    ids=["no-owner-check", "bool-token"],
)
def test_mutation_the_comparison_catches_a_lean_reader_that_differs(
    broken: Callable[[Mapping[str, Any]], tuple[int, datetime | None]],
) -> None:
    assert mismatches(broken)


_TIMES = [
    datetime(2026, 12, 5, 3, 0, 0, micro, tzinfo=timezone.utc)
    for micro in (0, 1, 999, 1000, 999999)
] + [_NAIVE.replace(microsecond=500), datetime(2026, 12, 5, 5, 0, 0, 1500, tzinfo=_PLUS_TWO)]
_SECONDS = [0.0, 0.0005, 0.001, 1.0, 15.0000004, 600.0]


@pytest.mark.parametrize(("now", "seconds"), list(itertools.product(_TIMES, _SECONDS)))
def test_an_expiry_is_the_next_whole_millisecond_at_or_after_now_plus_ttl(
    now: datetime, seconds: float
) -> None:
    exact = documents.as_utc(now) + timedelta(seconds=seconds)
    expiry = commands._expiry(now, seconds)
    assert expiry.tzinfo is timezone.utc
    assert expiry.microsecond % 1000 == 0
    assert exact <= expiry < exact + timedelta(milliseconds=1)


def test_mutation_the_expiry_check_sees_a_rounding_table_one_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    short = tuple(timedelta(microseconds=max(0, n - 1)) for n in range(1000))
    monkeypatch.setattr(commands, "MICROSECONDS", short)
    now = datetime(2026, 12, 5, 3, 0, 0, 1, tzinfo=timezone.utc)
    assert commands._expiry(now, 1.0).microsecond % 1000 != 0  # the check above fails


def test_a_release_reply_teaches_the_least_token_as_the_record_would() -> None:
    from mongoelector.backends._mongo.seen import SeenLeases

    by_record, by_token = SeenLeases(), SeenLeases()
    for token in (5, 9, 3):
        document = {"_id": "k", "locked": True, "uuid": "o", "token": token, "ts_expire": _NAIVE}
        by_record.note(record_from_document(document))
        by_record.note_released("k")
        by_token.note_token("k", token_and_holder_expiry(document)[0])
        by_token.note_released("k")
        assert by_token.least_token("k") == by_record.least_token("k")
    assert by_token.least_token("k") == 10
    assert by_token.expects_held("k", _NAIVE.replace(tzinfo=timezone.utc)) is False


# --- time arithmetic: the shortcuts answer exactly as the plain datetime operations -------

_ZONES = [None, timezone.utc, _PLUS_TWO, timezone(timedelta(hours=-9, minutes=-30))]


def sample_times() -> Iterator[datetime]:
    """Times around the edges the shortcuts meet: the epoch, before it, whole and odd
    microseconds, the ends of a day and of the calendar, in every zone (and naive)."""
    bases = [
        datetime(1970, 1, 1),
        datetime(1969, 12, 31, 23, 59, 59, 999999),
        datetime(2026, 12, 5, 3, 0, 0, 0),
        datetime(2026, 12, 31, 23, 59, 59, 999001),
        datetime(2000, 2, 29, 12, 0, 0, 1),
        datetime(1, 1, 2, 0, 0, 0, 1),
        datetime(9999, 12, 30, 23, 59, 59, 999999),
    ]
    for base, micro in itertools.product(bases, (None, 0, 1, 499, 500, 999, 1000, 123456)):
        value = base if micro is None else base.replace(microsecond=micro)
        for zone in _ZONES:
            yield value.replace(tzinfo=zone)


def plain_as_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def plain_bson_time(value: datetime) -> datetime:
    value = plain_as_utc(value)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def plain_time_floor(value: datetime) -> int:
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (plain_as_utc(value) - epoch) // timedelta(microseconds=1)


def same_instant_and_zone(a: datetime, b: datetime) -> bool:
    return a == b and a.tzinfo is b.tzinfo is timezone.utc and a.timetuple() == b.timetuple()


def test_as_utc_bson_time_and_time_floor_answer_as_the_plain_operations() -> None:
    for value in sample_times():
        assert same_instant_and_zone(documents.as_utc(value), plain_as_utc(value)), value
        assert same_instant_and_zone(documents.bson_time(value), plain_bson_time(value)), value
        assert documents.time_floor(value) == plain_time_floor(value), value


def test_the_millisecond_table_is_each_count_of_microseconds() -> None:
    assert tuple(timedelta(microseconds=n) for n in range(1000)) == documents.MICROSECONDS


@pytest.mark.parametrize(
    ("name", "broken"),
    [
        # the naive shortcut from a local-time epoch: every naive time an hour off
        ("_NAIVE_EPOCH", datetime(1970, 1, 1, 1)),
        # the table one microsecond short: times rounded a microsecond off
        ("MICROSECONDS", tuple(timedelta(microseconds=max(0, n - 1)) for n in range(1000))),
        # the epoch a second late: every time and every time floor a second off
        ("_EPOCH", datetime(1970, 1, 1, 0, 0, 1, tzinfo=timezone.utc)),
    ],
    ids=["naive-epoch", "table", "epoch"],
)
def test_mutation_the_comparison_catches_a_broken_shortcut(
    name: str, broken: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(documents, name, broken)
    assert any(
        documents.as_utc(value) != plain_as_utc(value)
        or documents.bson_time(value) != plain_bson_time(value)
        or documents.time_floor(value) != plain_time_floor(value)
        for value in sample_times()
    )


def test_as_utc_moves_an_aware_time_and_relabels_a_naive_one() -> None:
    # An aware time of another zone is the same instant in UTC, never relabelled.
    assert documents.as_utc(datetime(2026, 1, 1, 2, tzinfo=_PLUS_TWO)) == datetime(
        2026, 1, 1, tzinfo=timezone.utc
    )
    # A naive time is UTC already: relabelled, not moved.
    assert documents.as_utc(datetime(2026, 1, 1, 2)) == datetime(2026, 1, 1, 2, tzinfo=timezone.utc)
