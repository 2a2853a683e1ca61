"""LiveRecorder turns what a live run reports into terms with renewals, deadlines and leases."""

from __future__ import annotations

import pytest

from mongoelector import LeaderElector
from mongoelector.backends import MemoryBackend
from mongoelector.picture.recorder import LiveRecorder
from mongoelector.testing import FakeClock


@pytest.fixture
def recorder(clock: FakeClock) -> LiveRecorder:
    return LiveRecorder(clock, ["n1", "n2"], ttl=3.0, renew_deadline=2.0)


def test_a_term_runs_from_gain_to_loss_with_its_renewals(
    recorder: LiveRecorder, clock: FakeClock
) -> None:
    recorder.wrote("n1", 0.0, 0.1)  # the acquire, reported before leadership is announced
    clock.advance(0.1)
    recorder.gained("n1", 7)
    for _ in range(2):
        clock.advance(0.5)
        recorder.wrote("n1", recorder.now(), recorder.now() + 0.01)
    clock.advance(0.5)
    recorder.lost("n1")

    [term] = recorder.timeline("t").terms

    assert (term.lane, term.token, term.start, term.end) == ("n1", 7, 0.1, 1.6)
    assert term.renewals == (0.6, 1.1)
    assert term.renew_deadline is None  # it ended before its deadline (1.1 + 2.0)
    assert term.lease_end == pytest.approx(1.11 + 3.0)


def test_a_term_that_lasts_until_its_renew_deadline_shows_it(
    recorder: LiveRecorder, clock: FakeClock
) -> None:
    recorder.wrote("n1", 0.0, 0.0)
    recorder.gained("n1", 1)
    clock.advance(2.0)
    recorder.lost("n1")

    [term] = recorder.timeline("t").terms

    assert term.renew_deadline == 2.0
    assert term.lease_end == 3.0  # the store keeps it until ttl after the write


def test_a_release_ends_the_lease_in_the_store(recorder: LiveRecorder, clock: FakeClock) -> None:
    recorder.wrote("n2", 0.0, 0.0)
    recorder.gained("n2", 4)
    clock.advance(1.0)
    recorder.lost("n2")
    recorder.released("n2")

    [term] = recorder.timeline("t").terms

    assert term.lease_end == 1.0


def test_faults_and_marks_last_until_the_picture_is_taken(
    recorder: LiveRecorder, clock: FakeClock
) -> None:
    clock.advance(1.0)
    recorder.fault("n2", "cut off", "crashed")
    recorder.mark("n2", "crash")
    clock.advance(2.0)

    timeline = recorder.timeline("t", "sub")

    [span] = timeline.spans
    assert (span.lane, span.kind, span.start, span.end, span.label) == (
        "n2",
        "cut off",
        1.0,
        3.0,
        "crashed",
    )
    assert [(m.kind, m.at) for m in timeline.markers] == [("crash", 1.0)]
    assert timeline.end > 3.0 and timeline.subtitle == "sub"
    assert (timeline.ttl, timeline.renew_deadline) == (3.0, 2.0)


def test_an_electors_listener_records_its_terms(recorder: LiveRecorder, clock: FakeClock) -> None:
    backend = MemoryBackend(clock)
    node = LeaderElector(
        "jobs",
        backend,
        ttl=3,
        renew_deadline=2,
        retry_period=0.5,
        clock=clock,
        event_listeners=[recorder.listener("n1")],
    )
    node.poll()
    for _ in range(2):
        clock.advance(0.5)
        node.poll()
    node.release()

    [term] = recorder.timeline("t").terms

    assert (term.lane, term.token, term.start, term.end) == ("n1", 1, 0.0, 1.0)
    assert term.renewals == (0.5, 1.0)
    assert term.renew_deadline is None and term.lease_end == 1.0  # released


def test_a_listener_is_for_a_known_lane(recorder: LiveRecorder) -> None:
    with pytest.raises(ValueError, match=r"lane must be one of \('n1', 'n2'\), got 'n3'"):
        recorder.listener("n3")
