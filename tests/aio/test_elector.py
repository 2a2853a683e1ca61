"""AsyncLeaderElector driven by poll() under a FakeClock: the sync elector's promises, awaited."""

from __future__ import annotations

import logging

import pytest

from mongoelector import LeaderInfo
from mongoelector.aio import AsyncLeaderElector
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock
from tests.aio.doubles import leaders, poll_due
from tests.fakes import FlakyBackend
from tests.sync.test_elector import Recorder


def elector(backend: object, clock: FakeClock, **kwargs: object) -> AsyncLeaderElector:
    return AsyncLeaderElector("svc", backend, clock=clock, **kwargs)  # type: ignore[arg-type]


async def test_exactly_one_of_several_electors_leads(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    nodes = [elector(backend, clock) for _ in range(3)]
    for node in nodes:
        await node.poll()
    assert leaders(nodes) == [nodes[0]]
    assert nodes[0].token == 1
    assert all(node.leader_exists for node in nodes)
    assert all(node.leader is not None and node.leader.uuid == nodes[0].uuid for node in nodes)


def test_defaults_are_fifteen_ten_two(backend: MemoryBackend, clock: FakeClock) -> None:
    node = elector(backend, clock)
    assert (node.ttl, node.renew_deadline, node.retry_period, node.poll_wait) == (15, 10, 2, 2)


async def test_a_crashed_leader_is_replaced_within_ttl_plus_retry_period(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    nodes = [elector(backend, clock) for _ in range(3)]
    await poll_due(clock, nodes, until=7.0)
    crashed = leaders(nodes)[0]
    last_renew = crashed.next_poll_at - crashed.retry_period
    survivors = [n for n in nodes if n is not crashed]
    while not leaders(survivors):
        await poll_due(clock, survivors, until=clock.monotonic() + 0.5)
    assert clock.monotonic() - last_renew <= crashed.ttl + crashed.retry_period
    assert leaders(survivors)[0].token == 2


async def test_a_leader_that_releases_is_replaced_within_one_retry_period(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    nodes = [elector(backend, clock) for _ in range(3)]
    await poll_due(clock, nodes, until=5.0)
    old = leaders(nodes)[0]
    await old.release()
    released_at = clock.monotonic()
    assert not old.is_leader
    while not leaders(nodes):
        await poll_due(clock, nodes, until=clock.monotonic() + 0.1)
    assert clock.monotonic() - released_at <= old.retry_period
    assert leaders(nodes)[0] is not old


async def test_leader_that_cannot_renew_steps_down_at_the_deadline_without_a_backend_call(
    clock: FakeClock,
) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    recorder = Recorder()
    node = elector(flaky, clock, report_status=False, **recorder.kwargs())
    await node.poll()
    assert node.is_leader
    flaky.mode = "down"
    await poll_due(clock, [node], until=9.999)
    assert node.is_leader
    calls_before = flaky.total_calls
    clock.advance(0.001)
    assert not node.is_leader and node.token is None
    assert flaky.total_calls == calls_before
    await node.poll()  # the step-down is reported on the next poll, exactly once
    await node.poll()
    assert recorder.count("leader") == 1 and recorder.count("loss") == 1


async def test_is_leader_and_leader_exists_cost_no_backend_call(clock: FakeClock) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    node = elector(flaky, clock)
    await node.poll()
    calls = flaky.total_calls
    for _ in range(10):
        assert node.is_leader and node.leader_exists and node.token == 1
        assert node.node_status["is_leader"] is True
    assert flaky.total_calls == calls


async def test_callbacks_fire_exactly_once_per_term(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    recorders = [Recorder() for _ in range(2)]
    nodes = [elector(backend, clock, **r.kwargs()) for r in recorders]
    await poll_due(clock, nodes, until=30)
    await nodes[0].release()
    await poll_due(clock, nodes, until=60)
    await nodes[1].release()
    await poll_due(clock, nodes, until=90)
    assert [r.count("leader") for r in recorders] == [2, 1]
    assert [r.count("loss") for r in recorders] == [1, 1]
    tokens = [info.token for kind, info in recorders[0].events if kind == "new"]  # type: ignore[attr-defined]
    assert tokens == [1, 2, 3]


async def test_coroutine_callbacks_are_awaited_in_order(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    events: list[str] = []

    async def on_leader() -> None:
        events.append("leader")

    async def on_leader_loss() -> None:
        events.append("loss")

    async def on_new_leader(info: LeaderInfo) -> None:
        events.append(f"new {info.token}")

    node = elector(
        backend,
        clock,
        on_leader=on_leader,
        on_leader_loss=on_leader_loss,
        on_new_leader=on_new_leader,
        on_loop=lambda: events.append("loop"),
    )
    await node.poll()
    await node.release()
    assert events == ["leader", "new 1", "loop", "loss"]


async def test_on_new_leader_receives_the_leader_identity(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    seen: list[LeaderInfo] = []
    first = elector(backend, clock)
    second = elector(backend, clock, on_new_leader=seen.append)
    await first.poll()
    await second.poll()
    assert seen == [LeaderInfo(uuid=first.uuid, host=first.host, pid=first.pid, token=1)]


async def test_raising_callbacks_plain_or_coroutine_are_logged_and_the_elector_keeps_going(
    backend: MemoryBackend, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def boom() -> None:
        raise RuntimeError("plain callback bug")

    async def async_boom(info: LeaderInfo) -> None:
        raise RuntimeError("coroutine callback bug")

    loops: list[int] = []
    node = elector(
        backend, clock, on_leader=boom, on_new_leader=async_boom, on_loop=lambda: loops.append(1)
    )
    with caplog.at_level(logging.ERROR, logger="mongoelector"):
        await node.poll()
    assert node.is_leader
    assert "plain callback bug" in caplog.text and "coroutine callback bug" in caplog.text
    await poll_due(clock, [node], until=10)
    assert node.is_leader and len(loops) == 6


async def test_ambiguous_acquire_is_confirmed_before_leading(clock: FakeClock) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    recorder = Recorder()
    node = elector(flaky, clock, report_status=False, **recorder.kwargs())
    flaky.mode = "lost-reply"
    await node.poll()
    assert not node.is_leader
    flaky.mode = "ok"
    await node.poll()  # reads the record: it is ours
    await node.poll()  # renews it: now trusted
    assert node.is_leader and node.token == 1
    assert recorder.count("leader") == 1


async def test_stop_after_an_ambiguous_acquire_reads_the_record_and_releases_it(
    clock: FakeClock,
) -> None:
    inner = MemoryBackend(clock)
    flaky = FlakyBackend(inner)
    node = elector(flaky, clock, report_status=False)
    flaky.mode = "lost-reply"
    await node.poll()  # the acquire applied, but its reply was lost
    flaky.mode = "ok"
    await node.stop()
    record = inner.get("svc")
    assert record is not None and record.owner is None
    assert flaky.calls["get"] == 1 and flaky.calls["release"] == 1


async def test_node_status_and_cluster_detail_have_the_1x_shape(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    nodes = [elector(backend, clock, app_version="1.2.3") for _ in range(2)]
    for node in nodes:
        await node.poll()
    status = nodes[0].node_status
    assert status["_id"] == nodes[0].uuid
    assert status["is_leader"] is True and status["elector_running"] is False
    assert status["app_version"] == "1.2.3" and status["last_poll"] == clock.now()
    assert status["lock_owned"] is True and status["token"] == 1
    detail = await nodes[1].cluster_detail()
    assert set(detail) == {"member_detail", "leader", "timestamp"}
    assert detail["leader"] == {
        "host": nodes[0].host,
        "process_id": nodes[0].pid,
        "uuid": nodes[0].uuid,
    }
    assert len(detail["member_detail"]) == 2


async def test_status_reporting_can_be_turned_off(clock: FakeClock) -> None:
    flaky = FlakyBackend(MemoryBackend(clock))
    await elector(flaky, clock, report_status=False).poll()
    assert flaky.calls["report_member"] == 0
    await elector(flaky, clock).poll()
    assert flaky.calls["report_member"] == 1


async def test_stop_without_start_releases_leadership(
    backend: MemoryBackend, clock: FakeClock
) -> None:
    recorder = Recorder()
    node = elector(backend, clock, **recorder.kwargs())
    await node.poll()
    await node.stop()
    assert not node.is_leader and recorder.count("loss") == 1
    record = backend.get("svc")
    assert record is not None and record.owner is None


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        ({"ttl": 10, "renew_deadline": 10}, ValueError, "renew_deadline"),
        ({"ttl": -5}, ValueError, "-5"),
        ({"retry_period": 0}, ValueError, "retry_period"),
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


def test_an_object_that_is_not_a_backend_is_refused() -> None:
    with pytest.raises(TypeError, match="StorageBackend"):
        AsyncLeaderElector("svc", "mongodb://localhost")  # type: ignore[arg-type]
