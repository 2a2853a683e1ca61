"""MongoLeaderElector as the 1.x README documents it, tested the way a 1.x user tests it.

Only the 1.x API against a mongomock database with real time. As 1.x users
must, the tests patch ``MongoLocker._verifytime`` (mongomock cannot tell the
server's time); waits poll for a condition instead of sleeping a fixed time.
"""

import inspect
import time
from datetime import datetime
from unittest import mock

import pytest

from mongoelector import MongoLeaderElector, MongoLocker, TimeOffsetError


@pytest.fixture(autouse=True)
def _sane_clock():
    with mock.patch("mongoelector.locker.MongoLocker._verifytime", return_value=True):
        yield


def eventually(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_importable_from_the_1x_module():
    from mongoelector import elector

    assert elector.MongoLeaderElector is MongoLeaderElector


def test_constructor_signature_and_defaults():
    parameters = inspect.signature(MongoLeaderElector).parameters
    assert list(parameters)[:2] == ["key", "db"]
    assert parameters["ttl"].default == 15
    for name in ("on_leader", "on_leader_loss", "on_loop", "app_version"):
        assert parameters[name].default is None
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["report_status"].default is True


def test_bad_arguments(db):
    with pytest.raises(TypeError):
        MongoLeaderElector("svc", db.client)
    with pytest.raises(ValueError):
        MongoLeaderElector("", db)
    with pytest.raises(ValueError):
        MongoLeaderElector("svc", db, ttl=0)


def test_a_manual_poll_elects_and_calls_back(db):
    calls = []
    elector = MongoLeaderElector(
        "svc",
        db,
        ttl=5,
        on_leader=lambda: calls.append("leader"),
        on_loop=lambda: calls.append("loop"),
    )
    assert not elector.is_leader
    elector.poll()
    assert elector.is_leader
    assert elector.leader_exists
    assert calls == ["leader", "loop"]
    elector.poll()
    assert calls == ["leader", "loop", "loop"]


def test_only_one_elector_leads(db):
    first = MongoLeaderElector("svc", db, ttl=5)
    second = MongoLeaderElector("svc", db, ttl=5)
    first.poll()
    second.poll()
    assert first.is_leader
    assert not second.is_leader
    assert second.leader_exists


def test_release_gives_up_leadership(db):
    lost = []
    elector = MongoLeaderElector("svc", db, ttl=5, on_leader_loss=lambda: lost.append(1))
    elector.poll()
    elector.release()
    assert not elector.is_leader
    assert lost == [1]
    assert not elector.mlock.locked()


def test_start_and_stop_run_the_elector_in_a_thread(db):
    changes = []
    elector = MongoLeaderElector(
        "svc",
        db,
        ttl=5,
        on_leader=lambda: changes.append("leader"),
        on_leader_loss=lambda: changes.append("loss"),
    )
    elector.start()
    assert eventually(lambda: elector.is_leader)
    assert elector.running
    elector.stop()
    assert not elector.running
    assert not elector.is_leader
    assert changes == ["leader", "loss"]
    assert not elector.mlock.locked()


def test_start_blocking_returns_after_stop(db):
    elector_ref = []

    def on_loop():
        if elector_ref[0].is_leader:
            elector_ref[0].stop()

    elector = MongoLeaderElector("svc", db, ttl=5, on_loop=on_loop)
    elector_ref.append(elector)
    elector.start(blocking=True)
    assert not elector.running


def test_context_manager_starts_and_stops(db):
    with MongoLeaderElector("svc", db, ttl=5) as elector:
        assert eventually(lambda: elector.is_leader)
        assert elector.running
    assert not elector.running
    assert not elector.is_leader


def test_a_second_elector_takes_over_when_the_leader_stops(db):
    first = MongoLeaderElector("svc", db, ttl=3)
    second = MongoLeaderElector("svc", db, ttl=3)
    first.poll()
    second.start()
    try:
        first.stop()
        assert eventually(lambda: second.is_leader)
    finally:
        second.stop()


def test_properties(db):
    elector = MongoLeaderElector("svc", db, ttl=9)
    assert elector.key == "svc"
    assert elector.db is db
    assert elector.ttl == 9
    assert isinstance(elector.mlock, MongoLocker)
    assert elector.poll_wait > 0
    assert elector.running is False
    elector.poll()
    assert elector.mlock.owned()
    assert elector.mlock.locked()


def test_the_lease_lives_in_elector_locks(db):
    elector = MongoLeaderElector("svc", db, ttl=5)
    elector.poll()
    document = db["elector.locks"].find_one({"_id": "svc"})
    assert document["locked"] is True
    assert document["uuid"] == elector.mlock.uuid


def test_node_status(db):
    elector = MongoLeaderElector("svc", db, ttl=5, app_version="1.2.3")
    elector.poll()
    status = elector.node_status
    assert status["_id"] == status["uuid"] == elector.mlock.uuid
    assert status["is_leader"] is True
    assert status["elector_running"] is False
    assert isinstance(status["last_poll"], datetime)
    assert status["app_version"] == "1.2.3"
    assert status["key"] == "svc"
    assert status["lock_owned"] is True


def test_node_status_without_app_version(db):
    assert "app_version" not in MongoLeaderElector("svc", db).node_status


def test_cluster_detail(db):
    leader = MongoLeaderElector("svc", db, ttl=5)
    follower = MongoLeaderElector("svc", db, ttl=5)
    leader.poll()
    follower.poll()
    detail = follower.cluster_detail
    assert set(detail) == {"member_detail", "leader", "timestamp"}
    assert isinstance(detail["timestamp"], datetime)
    assert detail["leader"] == {
        "host": leader.mlock.host,
        "process_id": leader.mlock.pid,
        "uuid": leader.mlock.uuid,
    }
    members = detail["member_detail"]
    assert {member["uuid"] for member in members} == {leader.mlock.uuid, follower.mlock.uuid}
    assert all("_id" not in member for member in members)
    stamps = [member["timestamp"] for member in members]
    assert stamps == sorted(stamps, reverse=True)


def test_cluster_detail_without_a_leader(db):
    assert MongoLeaderElector("svc", db).cluster_detail["leader"] is None


def test_status_is_reported_to_elector_leader_status(db):
    elector = MongoLeaderElector("svc", db, ttl=5)
    elector.poll()
    document = db["elector.leader_status"].find_one({"_id": elector.mlock.uuid})
    assert document["key"] == "svc"
    assert document["is_leader"] is True


def test_report_status_false_reports_nothing(db):
    MongoLeaderElector("svc", db, ttl=5, report_status=False).poll()
    assert db["elector.leader_status"].count_documents({}) == 0


def test_a_failing_callback_does_not_stop_the_elector(db):
    def boom():
        raise RuntimeError("callback failure")

    elector = MongoLeaderElector("svc", db, ttl=5, on_leader=boom, on_loop=boom)
    elector.poll()
    elector.poll()
    assert elector.is_leader


def test_a_failed_clock_check_keeps_the_elector_a_follower(db):
    with mock.patch(
        "mongoelector.locker.MongoLocker._verifytime", side_effect=TimeOffsetError("off")
    ):
        elector = MongoLeaderElector("svc", db, ttl=5)
        elector.poll()
        assert not elector.is_leader
        assert not elector.mlock.locked()


def test_repr_shows_role_and_state(db):
    elector = MongoLeaderElector("svc", db, ttl=5)
    assert "MongoLeaderElector" in repr(elector)
    assert "follower" in repr(elector)
    assert "stopped" in repr(elector)
    elector.start()
    try:
        assert eventually(lambda: elector.is_leader)
        assert "running" in repr(elector)
        assert ", leader," in repr(elector)
    finally:
        elector.stop()
