"""Checks under real concurrency: threads sharing one backend object."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from mongoelector.backends.protocol import CasResult
from mongoelector.testing.conformance.harness import BackendHarness
from mongoelector.testing.conformance.registry import ConformanceFailure, check, expect, present
from mongoelector.testing.conformance.support import lease_request

__all__ = ["ROUNDS", "THREADS"]

THREADS = 8
ROUNDS = 10
_BARRIER_TIMEOUT = 60.0


@dataclass
class _Contest:
    """Runs ``THREADS`` threads that call compare_and_set together, one round at a time."""

    harness: BackendHarness
    keys: list[str]
    rounds: int
    outcomes: list[list[CasResult | BaseException]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._start = threading.Barrier(len(self.keys) + 1, timeout=_BARRIER_TIMEOUT)
        self._done = threading.Barrier(len(self.keys) + 1, timeout=_BARRIER_TIMEOUT)
        self._results: list[CasResult | BaseException | None] = [None] * len(self.keys)
        self._threads = [
            threading.Thread(target=self._contend, args=(index,), daemon=True)
            for index in range(len(self.keys))
        ]

    def _contend(self, index: int) -> None:
        request = lease_request(self.keys[index], f"thread-{index}")
        try:
            for _ in range(self.rounds):
                self._start.wait()
                try:
                    self._results[index] = self.harness.backend.compare_and_set(request)
                except Exception as error:
                    self._results[index] = error
                self._done.wait()
        except threading.BrokenBarrierError:
            return

    def __enter__(self) -> _Contest:
        for thread in self._threads:
            thread.start()
        return self

    def play_round(self) -> list[CasResult | BaseException]:
        """Let every thread make one call at once; their outcomes, by thread."""
        self._results = [None] * len(self.keys)
        self._start.wait()
        self._done.wait()
        outcomes: list[CasResult | BaseException] = []
        for index, result in enumerate(self._results):
            if result is None:
                raise ConformanceFailure(f"thread {index} made no call in this round")
            outcomes.append(result)
        self.outcomes.append(outcomes)
        return outcomes

    def __exit__(self, *exc_info: object) -> None:
        self._start.abort()
        self._done.abort()
        for thread in self._threads:
            thread.join(_BARRIER_TIMEOUT)


def _granted(outcomes: list[CasResult | BaseException]) -> list[tuple[int, CasResult]]:
    """The (thread, result) pairs that were granted; fails the check if any call raised."""
    granted = []
    for index, outcome in enumerate(outcomes):
        expect(
            isinstance(outcome, CasResult),
            f"thread {index}: compare_and_set raised under contention: {outcome!r}",
        )
        if isinstance(outcome, CasResult) and outcome.acquired:
            granted.append((index, outcome))
    return granted


@check()
def one_winner_per_round_among_threads(harness: BackendHarness) -> None:
    """Threads racing for one free key: each round exactly one wins, with a growing token."""
    backend = harness.backend
    key = "contended"
    last_token = 0
    with _Contest(harness, [key] * THREADS, ROUNDS) as contest:
        for number in range(ROUNDS):
            winners = _granted(contest.play_round())
            expect(
                len(winners) == 1,
                f"round {number}: {len(winners)} of {THREADS} threads were granted the key "
                f"(threads {[index for index, _ in winners]}); exactly one must be",
            )
            record = present(winners[0][1].record, f"round {number}: the winner got no record")
            expect(
                record.token > last_token,
                f"round {number}: token {record.token} does not exceed {last_token}",
            )
            last_token = record.token
            expect(
                backend.release(key, record.owner, token=record.token) is True,
                f"round {number}: the winner could not release its holding",
            )


@check()
def threads_on_different_keys_all_win(harness: BackendHarness) -> None:
    """Threads racing each for its own key are all granted their key."""
    keys = [f"own-key-{index}" for index in range(THREADS)]
    with _Contest(harness, keys, 1) as contest:
        winners = _granted(contest.play_round())
    expect(
        len(winners) == THREADS,
        f"only threads {[index for index, _ in winners]} of {THREADS} were granted "
        f"their own free key",
    )
