"""How pymongo failures are judged: not applied, maybe applied, worth retrying."""

from __future__ import annotations

import pytest
from pymongo.errors import (
    AutoReconnect,
    ConfigurationError,
    DuplicateKeyError,
    ExecutionTimeout,
    InvalidOperation,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
    WTimeoutError,
)

from mongoelector.backends._mongo.failures import RetryPolicy, classify, is_transient
from mongoelector.errors import AmbiguousOutcome, BackendUnavailable


def not_primary(code: int) -> NotPrimaryError:
    return NotPrimaryError("not primary", {"ok": 0, "code": code, "errmsg": "x"})


NOT_APPLIED = [
    ServerSelectionTimeoutError("no primary"),
    not_primary(10107),
    not_primary(13435),
    not_primary(189),
    not_primary(91),
    OperationFailure("bad value", code=2),
    DuplicateKeyError("E11000", code=11000),
    ConfigurationError("bad uri"),
    InvalidOperation("client closed"),
]
MAYBE_APPLIED = [
    not_primary(11602),
    not_primary(11600),
    AutoReconnect("connection closed"),
    NetworkTimeout("timed out"),
    WriteConcernError("waiting for replication timed out", code=64),
    # A write-concern error means the write ran, whatever the code of the error.
    WriteConcernError("shutting down while waiting for replication", code=91),
    WriteConcernError("stepped down while waiting for replication", code=189),
    WriteConcernError("not primary while waiting", code=10107),
    WTimeoutError("wtimeout", code=64),
    ExecutionTimeout("operation exceeded time limit", code=50),
]


@pytest.mark.parametrize("error", NOT_APPLIED, ids=repr)
def test_writes_that_definitely_did_not_apply(error: PyMongoError) -> None:
    failure = classify(error, write=True, what="acquire of 'k'")
    assert type(failure) is BackendUnavailable
    assert failure.original is error
    assert "acquire of 'k'" in str(failure)


@pytest.mark.parametrize("error", MAYBE_APPLIED, ids=repr)
def test_writes_that_may_have_applied(error: PyMongoError) -> None:
    assert isinstance(classify(error, write=True, what="renew"), AmbiguousOutcome)


def test_a_no_writes_performed_label_settles_it() -> None:
    error = AutoReconnect("connection closed", {"errorLabels": ["NoWritesPerformed"]})
    assert type(classify(error, write=True, what="renew")) is BackendUnavailable


@pytest.mark.parametrize("error", NOT_APPLIED + MAYBE_APPLIED, ids=repr)
def test_a_failed_read_never_changed_anything(error: PyMongoError) -> None:
    assert type(classify(error, write=False, what="read")) is BackendUnavailable


@pytest.mark.parametrize(
    "error",
    [not_primary(10107), not_primary(11602), AutoReconnect("reset"), WriteConcernError("w")],
    ids=repr,
)
def test_transient_failures(error: PyMongoError) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        ServerSelectionTimeoutError("no primary"),  # it already waited its time
        NetworkTimeout("budget spent"),
        OperationFailure("bad value", code=2),
        InvalidOperation("client closed"),
    ],
    ids=repr,
)
def test_failures_not_worth_retrying(error: PyMongoError) -> None:
    assert not is_transient(error)


def test_retries_back_off_within_the_budget() -> None:
    policy = RetryPolicy(budget=1.0, first_delay=0.1, max_delay=0.3, max_attempts=10)
    assert policy.delay_before_retry(1, elapsed=0.0) == 0.1
    assert policy.delay_before_retry(2, elapsed=0.1) == 0.2
    assert policy.delay_before_retry(3, elapsed=0.3) == 0.3
    assert policy.delay_before_retry(4, elapsed=0.8) is None
    assert policy.remaining(0.8) == pytest.approx(0.2)
    assert policy.remaining(2.0) == 0


def test_retries_stop_after_max_attempts() -> None:
    policy = RetryPolicy(budget=100, max_attempts=2)
    assert policy.delay_before_retry(1, elapsed=0) is not None
    assert policy.delay_before_retry(2, elapsed=0) is None


@pytest.mark.parametrize(
    "options", [{"budget": 0}, {"first_delay": -1}, {"max_attempts": 0}, {"budget": True}]
)
def test_bad_policies_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize("error", [not_primary(10107), not_primary(189), not_primary(91)], ids=repr)
def test_a_refusal_after_the_drivers_own_retry_is_ambiguous(error: PyMongoError) -> None:
    """With retryWrites the driver may have sent the write before: its first send may apply."""
    assert type(classify(error, write=True, what="acquire")) is BackendUnavailable
    failure = classify(error, write=True, what="acquire", driver_retries=True)
    assert isinstance(failure, AmbiguousOutcome)
    assert "retryWrites" in str(failure)


def test_a_no_writes_performed_label_settles_it_even_with_driver_retries() -> None:
    error = NotPrimaryError("x", {"ok": 0, "code": 10107, "errorLabels": ["NoWritesPerformed"]})
    assert type(classify(error, write=True, what="w", driver_retries=True)) is BackendUnavailable


def test_whether_the_driver_retries_writes_is_read_from_the_client() -> None:
    import mongomock
    import pymongo

    from mongoelector.backends._mongo.failures import driver_retries_writes

    default = pymongo.MongoClient("mongodb://localhost:1", connect=False)
    off = pymongo.MongoClient("mongodb://localhost:1", connect=False, retryWrites=False)
    try:
        assert driver_retries_writes(default["db"]["c"]) is True
        assert driver_retries_writes(off["db"]["c"]) is False
    finally:
        default.close()
        off.close()
    assert driver_retries_writes(mongomock.MongoClient()["db"]["c"]) is False
