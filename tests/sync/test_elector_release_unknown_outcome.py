"""release() right after an acquire of unknown outcome frees what the acquire may have written.

Review finding: ``stop()`` read the record first and released the write by its
token, but ``release()`` did not, so the lease stayed blocked for a whole ttl.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from mongoelector import LeaderElector
from mongoelector.aio import AsyncLeaderElector
from mongoelector.backends import CasResult, LeaseRequest, MemoryBackend
from mongoelector.core.elector_machine import Role
from mongoelector.errors import AmbiguousOutcome
from mongoelector.testing import FakeClock
from tests.fakes import FlakyBackend


class LosesTheFirstGrant(FlakyBackend):
    """The first compare_and_set is applied, and its reply lost."""

    def compare_and_set(self, request: LeaseRequest, *, force: bool = False) -> CasResult:
        result = super().compare_and_set(request, force=force)
        if self.calls["compare_and_set"] == 1:
            raise AmbiguousOutcome("compare_and_set: applied, the reply lost")
        return result


def elector(backend: object, clock: FakeClock) -> LeaderElector:
    return LeaderElector("svc", backend, ttl=15, clock=clock, report_status=False)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "let_go", [LeaderElector.release, LeaderElector.stop], ids=["release", "stop"]
)
def test_letting_go_while_confirming_frees_the_write(
    let_go: Callable[[LeaderElector], None],
) -> None:
    clock = FakeClock()
    memory = MemoryBackend(clock)
    node = elector(LosesTheFirstGrant(memory), clock)
    node.poll()
    assert node.role is Role.CONFIRMING

    let_go(node)

    record = memory.get("svc")
    assert record is not None and record.owner is None
    other = elector(memory, clock)
    other.poll()
    assert other.is_leader


@pytest.mark.parametrize("let_go", ["release", "stop"])
def test_an_async_elector_letting_go_while_confirming_frees_the_write(let_go: str) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        memory = MemoryBackend(clock)
        node = AsyncLeaderElector(
            "svc",
            LosesTheFirstGrant(memory),  # type: ignore[arg-type]
            ttl=15,
            clock=clock,
            report_status=False,
        )
        await node.poll()
        assert node.role is Role.CONFIRMING
        await getattr(node, let_go)()
        record = memory.get("svc")
        assert record is not None and record.owner is None

    asyncio.run(scenario())
