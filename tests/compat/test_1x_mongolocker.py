"""MongoLocker as the 1.x README documents it, tested the way a 1.x user tests it.

Everything here uses only the 1.x API against a mongomock database (real time,
no 2.x extras), so a 1.x test suite keeps passing on 2.x.
"""

import inspect
import os
import threading
import time
from datetime import datetime
from unittest import mock

import mongomock
import pytest

from mongoelector import AcquireTimeout, LockExists, MongoLocker, TimeOffsetError


def test_importable_from_the_1x_modules():
    from mongoelector import locker

    assert locker.MongoLocker is MongoLocker
    assert locker.LockExists is LockExists
    assert locker.AcquireTimeout is AcquireTimeout
    assert locker.TimeOffsetError is TimeOffsetError


def test_constructor_signature_and_defaults():
    parameters = inspect.signature(MongoLocker).parameters
    assert list(parameters)[:2] == ["key", "db"]
    assert parameters["dbcollection"].default == "mongolocker"
    assert parameters["ttl"].default == 600
    assert parameters["timeparanoid"].default is True
    assert parameters["maxoffset"].default == 0.5
    for name in ("dbcollection", "ttl", "timeparanoid", "maxoffset"):
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY


def test_a_client_instead_of_a_database_is_a_type_error(db):
    with pytest.raises(TypeError):
        MongoLocker("k", mongomock.MongoClient())
    with pytest.raises(TypeError):
        MongoLocker(None, None)


@pytest.mark.parametrize("ttl", [0, -1, "600", None])
def test_a_ttl_that_is_not_a_positive_number_is_a_value_error(db, ttl):
    with pytest.raises(ValueError):
        MongoLocker("k", db, ttl=ttl)


def test_an_empty_key_is_a_value_error(db):
    with pytest.raises(ValueError):
        MongoLocker("", db)


def test_a_float_ttl_is_allowed(db):
    lock = MongoLocker("k", db, ttl=1.5)
    assert lock._ttl == 1.5


def test_acquire_returns_true_and_release_frees(db):
    lock = MongoLocker("k", db, ttl=30)
    assert lock.acquire() is True
    assert lock.locked()
    assert lock.owned()
    lock.release()
    assert not lock.locked()
    assert not lock.owned()


def test_the_lock_document_has_the_1x_layout(db):
    lock = MongoLocker("k", db, ttl=30)
    lock.acquire()
    document = db["mongolocker"].find_one({"_id": "k"})
    assert document["locked"] is True
    assert document["uuid"] == lock.uuid
    assert document["host"] == lock.host
    assert document["pid"] == lock.pid
    assert isinstance(document["ts_created"], datetime)
    assert document["ts_expire"] > document["ts_created"]


def test_dbcollection_names_the_collection(db):
    MongoLocker("k", db, dbcollection="my_locks").acquire()
    assert db["my_locks"].find_one({"_id": "k"}) is not None
    assert db["mongolocker"].find_one({"_id": "k"}) is None


def test_context_manager_acquires_and_releases(db):
    with MongoLocker("k", db, ttl=30) as lock:
        assert lock.owned()
    assert not lock.locked()


def test_context_manager_releases_when_the_body_raises(db):
    lock = MongoLocker("k", db, ttl=30)
    with pytest.raises(RuntimeError), lock:
        raise RuntimeError("boom")
    assert not lock.locked()


def test_non_blocking_acquire_of_a_held_lock_raises_lock_exists(db):
    MongoLocker("k", db, ttl=30).acquire()
    with pytest.raises(LockExists):
        MongoLocker("k", db, ttl=30).acquire(blocking=False)


def test_blocking_acquire_gives_up_after_timeout(db):
    MongoLocker("k", db, ttl=30).acquire()
    with pytest.raises(AcquireTimeout):
        MongoLocker("k", db, ttl=30).acquire(timeout=0.2, step=0.05)


def test_blocking_acquire_gets_the_lock_once_it_is_released(db):
    first = MongoLocker("k", db, ttl=30)
    first.acquire()
    releaser = threading.Timer(0.1, first.release)
    releaser.start()
    second = MongoLocker("k", db, ttl=30)
    assert second.acquire(timeout=5, step=0.02) is True
    releaser.join()
    assert second.owned()


def test_release_by_a_non_owner_does_nothing_unless_forced(db):
    owner = MongoLocker("k", db, ttl=30)
    other = MongoLocker("k", db, ttl=30)
    owner.acquire()
    other.release()
    assert owner.owned()
    other.release(force=True)
    assert not owner.locked()
    assert not owner.owned()


def test_forced_acquire_takes_the_lock_from_its_holder(db):
    owner = MongoLocker("k", db, ttl=30)
    thief = MongoLocker("k", db, ttl=30)
    owner.acquire()
    assert thief.acquire(force=True) is True
    assert thief.owned()
    assert not owner.owned()


def test_touch_renews_and_returns_the_new_expiry(db):
    lock = MongoLocker("k", db, ttl=30)
    lock.acquire()
    before = lock.ts_expire
    time.sleep(0.05)
    renewed = lock.touch()
    assert isinstance(renewed, datetime)
    assert renewed > before
    assert lock.ts_expire == renewed


def test_touch_without_the_lock_returns_none(db):
    assert MongoLocker("k", db, ttl=30).touch() is None


def test_get_current_returns_the_holders_document_or_none(db):
    lock = MongoLocker("k", db, ttl=30)
    assert lock.get_current() is None
    lock.acquire()
    current = lock.get_current()
    assert current["_id"] == "k"
    assert current["uuid"] == lock.uuid
    assert current["locked"] is True
    lock.release()
    assert lock.get_current() is None


def test_identity_properties(db):
    lock = MongoLocker("k", db)
    assert isinstance(lock.uuid, str) and lock.uuid
    assert isinstance(lock.host, str) and lock.host
    assert lock.pid == os.getpid()
    assert lock.ts_expire is None
    lock.acquire()
    assert isinstance(lock.ts_expire, datetime)


def test_status_reports_ownership(db):
    lock = MongoLocker("k", db, ttl=30)
    status = lock.status
    assert set(status) >= {
        "uuid",
        "key",
        "ttl",
        "timestamp",
        "host",
        "pid",
        "lock_owned",
        "lock_created",
        "lock_expires",
    }
    assert status["lock_owned"] is False
    assert status["lock_created"] is None
    assert status["lock_expires"] is None
    lock.acquire()
    status = lock.status
    assert status["lock_owned"] is True
    assert status["key"] == "k"
    assert status["uuid"] == lock.uuid
    assert isinstance(status["lock_created"], datetime)
    assert isinstance(status["lock_expires"], datetime)


def test_repr_names_the_lock(db):
    lock = MongoLocker("k", db)
    assert "MongoLocker" in repr(lock)
    assert "k" in repr(lock)
    assert lock.uuid in repr(lock)


def test_time_paranoia_can_be_patched_out(db):
    with mock.patch("mongoelector.locker.MongoLocker._verifytime", return_value=True) as check:
        lock = MongoLocker("k", db, timeparanoid=True)
        assert lock._verifytime() is True
        assert lock.acquire() is True
    assert check.called


def test_a_failed_clock_check_stops_acquire(db):
    with mock.patch(
        "mongoelector.locker.MongoLocker._verifytime", side_effect=TimeOffsetError("off")
    ):
        lock = MongoLocker("k", db, timeparanoid=True)
        with pytest.raises(TimeOffsetError):
            lock.acquire()
    assert not lock.locked()


def test_timeparanoid_works_unpatched_where_the_server_cannot_tell_its_time(db):
    assert MongoLocker("k", db, timeparanoid=True).acquire() is True


def test_maxoffset_is_kept(db):
    assert MongoLocker("k", db, maxoffset=2.0)._maxoffset == 2.0
