"""The SQLite backend's time: the host's monotonic clock within one boot of the host.

A lease stored as wall-clock times would move whenever the wall clock steps
(NTP, a resumed VM, an operator), while its holder goes on trusting it by
the monotonic clock: a forward step would let a contender take a lease its
holder still trusts. So leases are stored as *ticks* (whole microseconds of
the injected clock's :meth:`~mongoelector.clock.Clock.monotonic`, the very
clock holders measure their validity by) together with the id of the boot
they were written in. The monotonic clock restarts at a reboot, so a tick
means nothing outside its boot: a row of another boot, or one written at a
tick this boot has not reached yet (its clock restarted), has lapsed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from mongoelector.clock import Clock

__all__ = ["BOOT_ID_FILE", "HostInstant", "at", "host_boot_id", "micros", "read_instant"]

#: Linux's id of the running boot: random, made anew by the kernel at every boot.
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    """``moment`` (timezone-aware) as whole microseconds since the epoch."""
    return (moment - _EPOCH) // _MICROSECOND


def at(count: int) -> datetime:
    """The UTC time ``count`` microseconds after the epoch."""
    return _EPOCH + count * _MICROSECOND


def host_boot_id() -> str:
    """The id of the host's running boot: Linux's boot id, or ``""`` on other platforms.

    On Linux a failure to read it raises :class:`OSError`. Elsewhere every
    boot gets the same ``""``, and only the restarted monotonic clock tells
    boots apart (see :meth:`HostInstant.in_this_boot`).
    """
    if not sys.platform.startswith("linux"):
        return ""
    with open(BOOT_ID_FILE, encoding="ascii") as source:
        boot = source.read().strip()
    if not boot:
        raise OSError(f"{BOOT_ID_FILE} is empty")
    return boot


@dataclass(frozen=True, slots=True)
class HostInstant:
    """One reading of the host's time: the boot, its monotonic tick, and the wall clock."""

    #: The id of the boot the reading was taken in.
    boot: str
    #: Whole microseconds of the monotonic clock (meaningful within ``boot`` only).
    tick: int
    #: Whole microseconds since the epoch on the wall clock, read with ``tick``.
    wall: int

    def in_this_boot(self, boot: str | None, written_tick: int | None) -> bool:
        """True if a row last written at ``written_tick`` of ``boot`` was written in this boot.

        A row of this boot id whose tick lies ahead of this reading was
        written before the monotonic clock restarted, so in an earlier boot.
        """
        return boot == self.boot and written_tick is not None and written_tick <= self.tick

    def wall_of(self, tick: int) -> datetime:
        """Tick ``tick`` of this boot as a wall time, by the wall clock of this reading.

        The difference between two presented times is the difference of their
        ticks, whatever the wall clock did in between.
        """
        return at(self.wall + tick - self.tick)

    def tick_of(self, wall: int) -> int:
        """The tick of this boot that :meth:`wall_of` presents as ``wall`` (µs since the epoch)."""
        return self.tick + wall - self.wall


def read_instant(clock: Clock, boot: str) -> HostInstant:
    """The current reading of ``clock`` in the boot ``boot``."""
    tick = round(clock.monotonic() * 1_000_000)
    return HostInstant(boot=boot, tick=tick, wall=micros(clock.now()))
