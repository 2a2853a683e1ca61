"""LeaderElector driven by poll() under a FakeClock: no threads, no sleeps, deterministic."""

from __future__ import annotations

import logging

import pytest

from mongoelector import LeaderElector, LeaderInfo
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock
from tests.fakes import FlakyBackend


class Recorder:
    """Collects every callback an elector fires, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def kwargs(self) -> dict[str, object]:
        return {
            "on_leader": lambda: self.events.append(("leader", None)),
            "on_leader_loss": lambda: self.events.append(("loss", None)),
            "on_new_leader": lambda info: self.events.append(("new", info)),
        }

    def count(self, kind: str) -> int:
        return sum(1 for event, _ in self.events if event == kind)


def elector(backend: object, clock: FakeClock, **kwargs: object) -> LeaderElector:
    return LeaderElector("svc", backend, clock=clock, **kwargs)  # type: ignore[arg-type]


def poll_due(clock: FakeClock, electors: list[LeaderElector], until: float) -> None:
    """Advance the clock poll by poll, polling each elector when it is due, until ``until``."""
    while True:
        due = min(e.next_poll_at for e in electors)
        if due > until:
            clock.advance(until - clock.monotonic())
            return
        clock.advance(max(0.0, due - clock.monotonic()))
        for each in electors:
            if each.next_poll_at <= clock.monotonic():
                each.poll()


def leaders(electors: list[LeaderElector]) -> list[LeaderElector]:
    return [e for e in electors if e.is_leader]


def test_exactly_one_of_several_electors_leads(backend: MemoryBackend, clock: FakeClock) -> None:
    nodes = [elector(backend, clock) for _ in range(3)]
    for node in nodes:
        node.poll()
    assert leaders(nodes) == [nodes[0]]
    assert nodes[0].token == 1
    assert all(node.leader_exists for node in nodes)
    assert all(node.leader is not None and node.leader.uuid == nodes[0].uuid for node in nodes)


def test_defaults_are_fifteen_ten_two(backend: MemoryBackend, clock: FakeClock) -> None:
    node = elector(backend, clock)
    assert (node.ttl, node.renew_deadline, node.retry_period, node.poll_wait) == (15, 10, 2, 2)


def test_a_crashed_leader_is_replaced_within_ttl_plus_retry_period(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    nodes = [elector(backend, clock) for _ in range(3)]
    poll_due(clock, nodes, until=7.0)
    crashed = leaders(nodes)[0]
    crash_time = clock.monotonic()
    last_renew = crashed.next_poll_at - crashed.retry_period
    survivors = [n for n in nodes if n is not crashed]
    while not leaders(survivors):
        poll_due(clock, survivors, until=clock.monotonic() + 0.5)
    failover = clock.monotonic() - last_renew
    assert failover <= crashed.ttl + crashed.retry_period
    assert clock.monotonic() - crash_time <= crashed.ttl + crashed.retry_period
    assert leaders(survivors)[0].token == 2


def test_a_leader_that_releases_is_replaced_within_one_retry_period(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    nodes = [elector(backend, clock) for _ in range(3)]
    poll_due(clock, nodes, until=5.0)
    old = leaders(nodes)[0]
    old.release()
    released_at = clock.monotonic()
    assert not old.is_leader
    while not leaders(nodes):
        poll_due(clock, nodes, until=clock.monotonic() + 0.1)
    assert clock.monotonic() - released_at <= old.retry_period
    assert leaders(nodes)[0] is not old


def test_leader_that_cannot_renew_steps_down_at_the_deadline_without_a_backend_call(
    clock: FakeClock,
) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    recorder = Recorder()
    node = elector(flaky, clock, report_status=False, **recorder.kwargs())
    node.poll()
    assert node.is_leader
    flaky.mode = "down"
    poll_due(clock, [node], until=9.999)
    assert node.is_leader
    calls_before = flaky.total_calls
    clock.advance(0.001)
    assert not node.is_leader
    assert node.token is None
    assert flaky.total_calls == calls_before
    node.poll()  # the step-down is reported on the next poll, exactly once
    node.poll()
    assert recorder.count("leader") == 1 and recorder.count("loss") == 1


def test_is_leader_and_leader_exists_cost_no_backend_call(clock: FakeClock) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    node = elector(flaky, clock)
    node.poll()
    calls = flaky.total_calls
    for _ in range(10):
        assert node.is_leader and node.leader_exists and node.token == 1
        assert node.node_status["is_leader"] is True
    assert flaky.total_calls == calls


def test_callbacks_fire_exactly_once_per_term(backend: MemoryBackend, clock: FakeClock) -> None:
    recorders = [Recorder() for _ in range(2)]
    nodes = [elector(backend, clock, **r.kwargs()) for r in recorders]
    poll_due(clock, nodes, until=30)
    nodes[0].release()
    poll_due(clock, nodes, until=60)
    nodes[1].release()
    poll_due(clock, nodes, until=90)
    assert [r.count("leader") for r in recorders] == [2, 1]
    assert [r.count("loss") for r in recorders] == [1, 1]
    tokens = [info.token for kind, info in recorders[0].events if kind == "new"]  # type: ignore[attr-defined]
    assert tokens == [1, 2, 3]


def test_on_new_leader_receives_the_leader_identity(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    seen: list[LeaderInfo] = []
    first = elector(backend, clock)
    second = elector(backend, clock, on_new_leader=seen.append)
    first.poll()
    second.poll()
    assert seen == [LeaderInfo(uuid=first.uuid, host=first.host, pid=first.pid, token=1)]


def test_a_raising_callback_is_logged_and_the_elector_keeps_going(
    backend: MemoryBackend, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def boom() -> None:
        raise RuntimeError("callback bug")

    loops: list[int] = []
    node = elector(backend, clock, on_leader=boom, on_loop=lambda: loops.append(1))
    with caplog.at_level(logging.ERROR, logger="mongoelector"):
        node.poll()
    assert node.is_leader
    assert "callback bug" in caplog.text
    poll_due(clock, [node], until=10)
    assert node.is_leader and len(loops) == 6


def test_ambiguous_acquire_is_confirmed_before_leading(clock: FakeClock) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    recorder = Recorder()
    node = elector(flaky, clock, report_status=False, **recorder.kwargs())
    flaky.mode = "lost-reply"
    node.poll()
    assert not node.is_leader
    flaky.mode = "ok"
    node.poll()  # reads the record: it is ours
    node.poll()  # renews it: now trusted
    assert node.is_leader and node.token == 1
    assert recorder.count("leader") == 1


def test_node_status_and_cluster_detail_have_the_1x_shape(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    nodes = [elector(backend, clock, app_version="1.2.3") for _ in range(2)]
    for node in nodes:
        node.poll()
    status = nodes[0].node_status
    assert status["_id"] == nodes[0].uuid
    assert status["is_leader"] is True and status["elector_running"] is False
    assert status["app_version"] == "1.2.3" and status["last_poll"] == clock.now()
    assert status["lock_owned"] is True and status["token"] == 1
    detail = nodes[1].cluster_detail
    assert set(detail) == {"member_detail", "leader", "timestamp"}
    assert detail["leader"] == {
        "host": nodes[0].host,
        "process_id": nodes[0].pid,
        "uuid": nodes[0].uuid,
    }
    assert len(detail["member_detail"]) == 2
    assert all("_id" not in member for member in detail["member_detail"])


def test_status_reporting_can_be_turned_off(clock: FakeClock) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    elector(flaky, clock, report_status=False).poll()
    assert flaky.calls["report_member"] == 0
    elector(flaky, clock).poll()
    assert flaky.calls["report_member"] == 1


def test_stop_without_start_releases_leadership(backend: MemoryBackend, clock: FakeClock) -> None:
    recorder = Recorder()
    node = elector(backend, clock, **recorder.kwargs())
    node.poll()
    node.stop()
    assert not node.is_leader and recorder.count("loss") == 1
    record = backend.get("svc")
    assert record is not None and record.owner is None


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        ({"ttl": 10, "renew_deadline": 10}, ValueError, "renew_deadline"),
        ({"ttl": 10, "renew_deadline": 12}, ValueError, "renew_deadline"),
        ({"ttl": -5}, ValueError, "-5"),
        ({"retry_period": 0}, ValueError, "retry_period"),
        ({"retry_period": 11}, ValueError, "retry_period"),
        ({"on_leader": "not callable"}, TypeError, "on_leader"),
        ({"app_version": 2}, TypeError, "app_version"),
        ({"report_status": "yes"}, TypeError, "report_status"),
    ],
)
def test_bad_settings_are_refused_naming_the_value(
    backend: MemoryBackend, clock: FakeClock, kwargs: dict[str, object], error: type, named: str
) -> None:
    with pytest.raises(error, match=named):
        elector(backend, clock, **kwargs)


@pytest.mark.parametrize(
    ("key", "error"), [("", ValueError), (None, TypeError), (["k"], TypeError)]
)
def test_bad_keys_are_refused(backend: MemoryBackend, key: object, error: type) -> None:
    with pytest.raises(error, match="key"):
        LeaderElector(key, backend)  # type: ignore[arg-type]


def test_an_object_that_is_not_a_backend_is_refused() -> None:
    with pytest.raises(TypeError, match="StorageBackend"):
        LeaderElector("svc", "mongodb://localhost")  # type: ignore[arg-type]


def test_one_x_cadence_leader_every_half_ttl_follower_every_ttl(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    nodes = [elector(backend, clock, retry_period=7.5, follower_poll=15) for _ in range(2)]
    for node in nodes:
        node.poll()
    assert [node.poll_wait for node in nodes] == [7.5, 15]
    crash_at = nodes[0].next_poll_at - 7.5  # the leader's last renew
    survivor = nodes[1]
    while not survivor.is_leader:
        poll_due(clock, [survivor], until=clock.monotonic() + 1)
    assert clock.monotonic() - crash_at <= 2 * 15
