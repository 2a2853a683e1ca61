"""SQLiteBackend's leases are immune to wall-clock steps, and lapse at a reboot.

Leases expire by the host's monotonic clock within one boot. A clock whose
wall time steps while its monotonic time does not stands for NTP, a resumed
VM or an operator; a new ``boot_id`` (and a monotonic clock that starts over)
stands for a reboot.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import threading
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from mongoelector import Lock, LockExists
from mongoelector.backends import _host_time, _sqlite_file
from mongoelector.backends._host_time import HostInstant, host_boot_id, micros
from mongoelector.backends.protocol import LeaseRequest, MemberRecord
from mongoelector.backends.sqlite import SQLiteBackend
from mongoelector.clock import Clock
from mongoelector.errors import BackendUnavailable
from mongoelector.testing import FakeClock

TTL = 30.0
HOUR = 3600.0


class SteppingClock(FakeClock):
    """A FakeClock whose wall time can also jump alone, leaving monotonic time as it was."""

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__(start)
        self._step = timedelta(0)

    def step_wall(self, seconds: float) -> None:
        """Move ``now()`` by ``seconds`` (either way), as an NTP step would."""
        self._step += timedelta(seconds=seconds)

    def now(self) -> datetime:
        return super().now() + self._step


def request(owner: str, key: str = "job") -> LeaseRequest:
    return LeaseRequest(key=key, owner=owner, ttl=TTL)


def member(uuid: str) -> MemberRecord:
    return MemberRecord(
        key="job", uuid=uuid, host="h", pid=1, is_leader=False, elector_running=True, ttl=TTL
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "leases.sqlite"


def trusting_holders_after_a_wall_step(path: Path, clock: SteppingClock, step: float) -> list[str]:
    """Alice takes the lock in one process; a second later the wall clock steps by
    ``step`` and Bob, in another process, tries to take it. Who trusts a holding then?"""
    with (
        SQLiteBackend(path, clock=clock) as first_process,
        SQLiteBackend(path, clock=clock) as second_process,
    ):
        alice = Lock("job", first_process, ttl=TTL, clock=clock)
        bob = Lock("job", second_process, ttl=TTL, clock=clock)
        assert alice.acquire(blocking=False)
        clock.advance(1)
        clock.step_wall(step)
        with contextlib.suppress(LockExists):
            bob.acquire(blocking=False)
        return [name for name, lock in (("alice", alice), ("bob", bob)) if lock.token is not None]


def test_a_contender_cannot_take_a_live_lease_after_a_forward_wall_step(path: Path) -> None:
    # An hour is far more than ttl - renew_deadline * (1 + drift) for any drift.
    assert trusting_holders_after_a_wall_step(path, SteppingClock(), HOUR) == ["alice"]


def test_the_wall_step_test_detects_two_holders_on_a_wall_clock_lease(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation: with ticks read from the wall clock (the old design), the test above fails."""

    def wall_clock_instant(clock: Clock, boot: str) -> HostInstant:
        wall = micros(clock.now())
        return HostInstant(boot=boot, tick=wall, wall=wall)

    monkeypatch.setattr(_sqlite_file, "read_instant", wall_clock_instant)
    assert trusting_holders_after_a_wall_step(path, SteppingClock(), HOUR) == ["alice", "bob"]


@pytest.mark.parametrize("step", [HOUR, -HOUR], ids=["forward", "backward"])
def test_a_wall_step_neither_shortens_nor_lengthens_a_lease(path: Path, step: float) -> None:
    clock = SteppingClock()
    with SQLiteBackend(path, clock=clock) as backend:
        held = backend.compare_and_set(request("alice")).record
        assert held is not None
        backend.report_member(member("alice"))
        clock.advance(1)
        clock.step_wall(step)

        record = backend.get("job")
        assert record is not None and record.expires_at is not None
        assert record.expires_at - backend.server_time() == timedelta(seconds=TTL - 1)
        assert record.is_held(backend.server_time())
        assert not backend.compare_and_set(request("bob")).acquired
        assert [m.uuid for m in backend.members("job")] == ["alice"]

        clock.advance(TTL - 1)
        assert backend.members("job") == []
        taken = backend.compare_and_set(request("bob"))
        assert taken.acquired and taken.record is not None
        assert taken.record.token == held.token + 1


def test_renewing_counts_from_the_monotonic_clock_after_a_wall_step(path: Path) -> None:
    clock = SteppingClock()
    with SQLiteBackend(path, clock=clock) as backend:
        token = backend.compare_and_set(request("alice")).record.token  # type: ignore[union-attr]
        clock.advance(20)
        clock.step_wall(HOUR)
        renewed = backend.renew("job", "alice", token, TTL)
        assert renewed is not None and renewed.expires_at is not None
        assert renewed.expires_at - backend.server_time() == timedelta(seconds=TTL)
        assert renewed.expires_at - renewed.acquired_at == timedelta(seconds=20 + TTL)  # type: ignore[operator]
        clock.advance(TTL - 1)
        assert not backend.compare_and_set(request("bob")).acquired
        clock.advance(1)
        assert backend.compare_and_set(request("bob")).acquired


@pytest.mark.parametrize(
    ("uptime", "wall_gap"),
    [(1.0, 60.0), (110.0, 60.0), (110.0, -HOUR)],
    ids=[
        "new-boot-clock-behind-the-last-write",
        "new-boot-clock-past-the-last-write",
        "wall-clock-set-back-at-boot",
    ],
)
def test_after_a_reboot_every_lease_and_member_has_lapsed_and_tokens_still_grow(
    path: Path, uptime: float, wall_gap: float
) -> None:
    before = FakeClock()
    before.advance(100)  # the old boot had been up for 100 s at the last write
    with SQLiteBackend(path, clock=before, boot_id="boot-1") as old_boot:
        held = old_boot.compare_and_set(request("alice")).record
        old_boot.report_member(member("alice"))
    assert held is not None

    # The new boot's monotonic clock starts over; its wall clock goes on.
    after = FakeClock(start=before.now() + timedelta(seconds=wall_gap))
    after.advance(uptime)  # 110 s: the lease's ticks would still be live in the new boot
    with SQLiteBackend(path, clock=after, boot_id="boot-2") as new_boot:
        stale = new_boot.get("job")
        assert stale is not None and stale.owner == "alice"
        assert not stale.is_held(new_boot.server_time())
        assert stale.acquired_at == held.acquired_at
        assert new_boot.members("job") == []
        assert new_boot.release("job", "alice") is False  # nothing live to free
        taken = new_boot.compare_and_set(request("bob")).record
        assert taken is not None and taken.token == held.token + 1


def test_a_reboot_under_one_boot_id_is_told_by_the_restarted_monotonic_clock(path: Path) -> None:
    """Without a boot id (platforms other than Linux) a lease from before a reboot
    lapses at once if this boot's clock is behind its last write, else within its ttl."""
    before = FakeClock()
    before.advance(1000)
    with SQLiteBackend(path, clock=before, boot_id="") as old_boot:
        old_boot.compare_and_set(request("alice"))
        old_boot.compare_and_set(request("alice", key="other"))

    after = FakeClock(start=before.now())
    after.advance(999)
    with SQLiteBackend(path, clock=after, boot_id="") as new_boot:
        assert new_boot.compare_and_set(request("bob")).acquired
        after.advance(2)  # now past the old boot's last write: this boot cannot tell
        assert not new_boot.compare_and_set(request("bob", key="other")).acquired
        after.advance(TTL - 1)
        assert new_boot.compare_and_set(request("bob", key="other")).acquired


# The schema an earlier 2.0 development version created: wall-clock times only.
_PREVIOUS_SCHEMA = (
    """CREATE TABLE mongoelector_leases (
        key TEXT PRIMARY KEY, owner TEXT, token INTEGER NOT NULL,
        acquired_us INTEGER, expires_us INTEGER,
        host TEXT, pid INTEGER, metadata TEXT NOT NULL, acquisition TEXT)""",
    "CREATE TABLE mongoelector_tokens (key TEXT PRIMARY KEY, last_token INTEGER NOT NULL)",
    """CREATE TABLE mongoelector_members (
        key TEXT NOT NULL, uuid TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
        is_leader INTEGER NOT NULL, elector_running INTEGER NOT NULL, ttl REAL NOT NULL,
        token INTEGER, app_version TEXT, stamped_us INTEGER NOT NULL,
        lapses_us INTEGER NOT NULL, PRIMARY KEY (key, uuid))""",
)


def test_a_file_of_the_previous_schema_keeps_its_leases_tokens_and_members(path: Path) -> None:
    clock = SteppingClock()
    now = micros(clock.now())
    with closing(sqlite3.connect(path)) as conn, conn:
        for statement in _PREVIOUS_SCHEMA:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO mongoelector_leases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("job", "alice", 7, now - 10_000_000, now + 20_000_000, "h", 1, "{}", "a1"),
        )
        conn.execute("INSERT INTO mongoelector_tokens VALUES ('job', 7)")
        conn.execute(
            "INSERT INTO mongoelector_members VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("job", "alice", "h", 1, 1, 1, TTL, 7, None, now - 10_000_000, now + 20_000_000),
        )

    with SQLiteBackend(path, clock=clock) as backend:
        legacy = backend.get("job")
        assert legacy is not None and (legacy.owner, legacy.token) == ("alice", 7)
        assert legacy.expires_at - backend.server_time() == timedelta(seconds=20)  # type: ignore[operator]
        assert not backend.compare_and_set(request("bob")).acquired
        assert [(m.uuid, m.token) for m in backend.members("job")] == [("alice", 7)]

        # Rows of the old layout keep being judged by the wall clock, as before.
        clock.advance(20)
        assert backend.members("job") == []
        taken = backend.compare_and_set(request("bob")).record
        assert taken is not None and taken.token == 8

    with closing(sqlite3.connect(path)) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(mongoelector_leases)")}
        row = conn.execute("SELECT boot, expires_tick FROM mongoelector_leases").fetchone()
    assert {"boot", "acquired_tick", "renewed_tick", "expires_tick"} <= columns
    assert row == (host_boot_id(), 20_000_000 + round(TTL * 1_000_000))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux has a boot id")
def test_on_linux_the_boot_id_is_the_kernels(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as source:
        assert host_boot_id() == source.read().strip()
    with SQLiteBackend(path, clock=FakeClock()) as backend:
        backend.compare_and_set(request("alice"))
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT boot FROM mongoelector_leases").fetchone() == (host_boot_id(),)

    monkeypatch.setattr(_host_time, "BOOT_ID_FILE", str(path.with_name("no-such-file")))
    with (
        SQLiteBackend(path, clock=FakeClock()) as unbooted,
        pytest.raises(BackendUnavailable, match="boot id"),
    ):
        unbooted.get("job")


def test_a_boot_id_must_be_text(path: Path) -> None:
    with pytest.raises(TypeError, match="boot_id"):
        SQLiteBackend(path, boot_id=42)  # type: ignore[arg-type]


class ClockWithHook:
    """Reads ``inner``, but runs ``hook`` (once) right after its next monotonic reading."""

    def __init__(self, inner: FakeClock) -> None:
        self.inner = inner
        self.hook: Callable[[], object] | None = None

    def now(self) -> datetime:
        return self.inner.now()

    def monotonic(self) -> float:
        reading = self.inner.monotonic()
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return reading

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)

    def wait_until(self, deadline: float, wakeup: threading.Event) -> bool:
        return self.inner.wait_until(deadline, wakeup)


def test_a_read_never_mistakes_a_write_committed_after_its_clock_reading_for_another_boot(
    path: Path,
) -> None:
    """A reader reads the clock; before it reads the rows, another process renews.
    The renewal's tick lies after the reader's reading, which must not look like
    a row from before a reboot: reads see the rows as of before their reading."""
    clock = FakeClock()
    reader_clock = ClockWithHook(clock)
    with (
        SQLiteBackend(path, clock=clock) as writer,
        SQLiteBackend(path, clock=reader_clock) as reader,
    ):
        token = writer.compare_and_set(request("alice")).record.token  # type: ignore[union-attr]
        writer.report_member(member("alice"))
        assert reader.get("job") is not None  # the reader is connected

        def renew_a_second_later() -> None:
            clock.advance(1)
            assert writer.renew("job", "alice", token, TTL) is not None
            writer.report_member(member("alice"))

        reader_clock.hook = renew_a_second_later
        seen = reader.get("job")
        assert seen is not None and seen.is_held(reader.server_time())
        reader_clock.hook = renew_a_second_later
        assert [m.uuid for m in reader.members("job")] == ["alice"]
