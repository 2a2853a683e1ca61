"""Every public member of Lock and LeaderElector that acts for the holder checks for a fork.

The fork is faked (the process-wide count moves on, as the ``after_in_child``
hook moves it), so the check is reached without ``os.fork``: each member is
used once on an object holding a lease, and must reset the object as a child
would. Only members that read settings or ask the store who holds (and act
for nobody) may skip it; they are named below, so a new public member that
forgets the check fails here.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from mongoelector import LeaderElector, Lock, _identity
from mongoelector._common.participant import Participant
from mongoelector.backends import MemoryBackend
from mongoelector.testing import FakeClock

#: Settings, and reads of the store that act for nobody.
NEEDS_NO_CHECK = {
    Lock: {
        "auto_renew",
        "backend",
        "clock",
        "host",
        "key",
        "renew_deadline",
        "retry_period",
        "ttl",
        "get_current",
        "locked",
    },
    LeaderElector: {
        "app_version",
        "backend",
        "clock",
        "host",
        "key",
        "renew_deadline",
        "retry_period",
        "timing",
        "ttl",
        "cluster_detail",
        "leadership",
    },  # its scope checks when entered (tests/sync/test_fork.py)
}
#: Members that need a MongoDB collection or client (they read ``uuid``/the term, which check).
SKIPPED = {"fenced", "fenced_transaction"}
ARGUMENTS: dict[str, dict[str, Any]] = {
    "acquire": {"blocking": False},
    "wait_idle": {"timeout": 0.1},
    "leadership": {"timeout": 0.0},
}


def holding(cls: type[Lock] | type[LeaderElector]) -> Lock | LeaderElector:
    clock = FakeClock()
    participant = cls("k", MemoryBackend(clock), clock=clock)
    if isinstance(participant, Lock):
        assert participant.acquire()
    else:
        participant.poll()
        assert participant.is_leader
    return participant


def unchecked_members(cls: type[Lock] | type[LeaderElector]) -> set[str]:
    """The public members of ``cls`` that left the object unreset after a (faked) fork."""
    unchecked = set()
    for name in sorted(n for n in dir(cls) if not n.startswith("_")):
        if name in SKIPPED:
            continue
        participant = holding(cls)
        _identity.forks += 1
        member = inspect.getattr_static(cls, name)
        try:
            if isinstance(member, property):
                getattr(participant, name)
            elif callable(member):
                getattr(participant, name)(**ARGUMENTS.get(name, {}))
        except Exception:
            pass
        if participant._forks != _identity.forks:
            unchecked.add(name)
        if isinstance(participant, LeaderElector):
            participant.stop()  # start() ran a loop on the scheduler
        else:
            participant.release()
    return unchecked


@pytest.fixture(autouse=True)
def restore_the_fork_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_identity, "forks", _identity.forks)


@pytest.mark.parametrize("cls", [Lock, LeaderElector])
def test_every_member_that_acts_for_the_holder_checks_for_a_fork(
    cls: type[Lock] | type[LeaderElector],
) -> None:
    assert unchecked_members(cls) == NEEDS_NO_CHECK[cls]


def test_mutation_a_check_that_does_nothing_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Participant, "_check_fork", lambda self: None)
    assert unchecked_members(Lock) > NEEDS_NO_CHECK[Lock] | {"ensure", "release", "touch"}
