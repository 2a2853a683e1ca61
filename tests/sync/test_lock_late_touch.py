"""Lock.touch() reports no renewal when its reply comes after the renew deadline."""

from __future__ import annotations

from collections.abc import Sequence

from mongoelector import Lock
from mongoelector.backends.memory import MemoryBackend
from mongoelector.backends.protocol import LeaseRecord, RenewItem
from mongoelector.testing import FakeClock


class SlowRenews(MemoryBackend):
    """A store whose renew replies take ``delay`` seconds after the write applied."""

    def __init__(self, clock: FakeClock, delay: float) -> None:
        super().__init__(clock=clock)
        self.fake_clock = clock
        self.delay = delay

    def renew(self, key: str, owner: str, token: int, ttl: float) -> LeaseRecord | None:
        record = super().renew(key, owner, token, ttl)
        self.fake_clock.advance(self.delay)
        return record

    def renew_many(self, items: Sequence[RenewItem]) -> list[LeaseRecord | None]:
        records = super().renew_many(items)  # as slow as one renew, for the whole batch
        self.fake_clock.advance(self.delay)
        return records


def test_touch_with_a_reply_before_the_deadline_returns_the_new_expiry() -> None:
    clock = FakeClock()
    lock = Lock("job", SlowRenews(clock, delay=9.0), ttl=15, renew_deadline=10, clock=clock)
    lock.acquire()

    assert lock.touch() is not None
    assert lock.token == 1


def test_touch_with_a_reply_after_the_deadline_returns_none_and_holds_nothing() -> None:
    clock = FakeClock()
    lock = Lock("job", SlowRenews(clock, delay=10.0), ttl=15, renew_deadline=10, clock=clock)
    lock.acquire()

    assert lock.touch() is None
    assert lock.holding is None
    assert lock.token is None
