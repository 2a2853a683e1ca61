"""``StopControl``: what stopping a renewer waits for, shared by the thread and the task."""

from __future__ import annotations

from mongoelector._common.renewing import StopControl


class TestStopControl:
    def test_a_running_renewer_goes_on_until_stopped(self) -> None:
        control = StopControl()
        assert control.may_go_on()
        assert not control.settled()  # deciding or calling the store: a stop waits

    def test_after_a_stop_request_no_store_call_starts(self) -> None:
        control = StopControl()
        control.request_stop()
        assert not control.may_go_on()

    def test_a_stop_does_not_wait_for_callbacks(self) -> None:
        control = StopControl()
        control.enter_callbacks()
        assert control.settled()
        control.request_stop()
        assert control.settled()

    def test_after_callbacks_a_stopped_renewer_does_not_go_on(self) -> None:
        control = StopControl()
        control.enter_callbacks()
        assert control.leave_callbacks()  # not stopped: goes on
        assert not control.settled()
        control.enter_callbacks()
        control.request_stop()
        assert not control.leave_callbacks()

    def test_an_ended_renewer_is_settled_for_good(self) -> None:
        control = StopControl()
        control.enter_callbacks()
        control.finish()
        assert control.done
        assert control.settled()
