"""The child process of ``run`` and ``elect``: started, stopped, signals passed on.

The child gets the runner's environment plus ``MONGOELECTOR_KEY`` and
``MONGOELECTOR_TOKEN`` (the fencing token of the holding or term it runs
under). Its exit status is reported as a shell would: its own code, or
``128 + N`` when signal N ended it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from types import FrameType

from mongoelector.cli.errors import CliError, ExitCode

__all__ = ["FORWARDED", "POLL", "Child", "forwarding_signals"]

#: The signals a runner passes on to its child.
FORWARDED = (signal.SIGTERM, signal.SIGINT)
#: Seconds between the supervisor loop's looks at the child, the lease and signals.
POLL = 0.05


def _status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


class Child:
    """One run of the command, with ``key`` and ``token`` in its environment."""

    def __init__(self, argv: Sequence[str], key: str, token: int) -> None:
        env = dict(os.environ, MONGOELECTOR_KEY=key, MONGOELECTOR_TOKEN=str(token))
        try:
            self._process = subprocess.Popen(list(argv), env=env)
        except FileNotFoundError as error:
            message = f"cannot run {argv[0]!r}: {error.strerror}"
            raise CliError(message, ExitCode.NOT_FOUND_COMMAND) from error
        except OSError as error:
            message = f"cannot run {argv[0]!r}: {error.strerror}"
            raise CliError(message, ExitCode.CANNOT_EXECUTE) from error
        self.token = token

    @property
    def pid(self) -> int:
        return self._process.pid

    def status(self) -> int | None:
        """The exit status once it has ended (``128 + N`` for signal N), else ``None``."""
        code = self._process.poll()
        return None if code is None else _status(code)

    def send(self, number: int) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(number)

    def stop(self, grace: float, why: str) -> int:
        """SIGTERM, then SIGKILL if it has not ended ``grace`` seconds later; its status."""
        if self._process.poll() is None:
            sys.stderr.write(f"mongoelector: {why}; sending SIGTERM to pid {self.pid}\n")
            self.send(signal.SIGTERM)
            try:
                self._process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                sys.stderr.write(
                    f"mongoelector: pid {self.pid} still running {grace:g}s after SIGTERM; "
                    "sending SIGKILL\n"
                )
                self.send(signal.SIGKILL)
        return _status(self._process.wait())


@contextlib.contextmanager
def forwarding_signals(handle: Callable[[int], None]) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT call ``handle(number)`` instead of their default."""

    def handler(number: int, frame: FrameType | None) -> None:
        handle(number)

    previous = {number: signal.signal(number, handler) for number in FORWARDED}
    try:
        yield
    finally:
        for number, before in previous.items():
            signal.signal(number, before if before is not None else signal.SIG_DFL)


def pause() -> None:
    time.sleep(POLL)
