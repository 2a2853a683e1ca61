"""``LeaderElector``: leader election over any storage backend (the sync driver)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from collections.abc import Mapping as _Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from mongoelector._common.elector_base import ElectorBase
from mongoelector._common.stores import sync_store
from mongoelector._sync.callbacks import run_callback
from mongoelector._sync.calls import perform
from mongoelector._sync.leadership import Leadership
from mongoelector.backends.protocol import (
    Capability,
    MemberRecord,
    MemberStatusBackend,
    StorageBackend,
)
from mongoelector.clock import Clock
from mongoelector.core.elector_machine import Step
from mongoelector.core.events import Action, LeaderInfo
from mongoelector.errors import BackendError
from mongoelector.monitoring import EventListener

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.collection import Collection
    from pymongo.database import Database
    from pymongo.synchronous.client_session import ClientSession

    from mongoelector.fencing import FencedCollection

__all__ = ["LeaderElector"]

logger = logging.getLogger("mongoelector.elector")


DocT = TypeVar("DocT", bound="_Mapping[str, Any]")


@dataclass(eq=False)
class _Loop:
    """One run of the polling loop, from ``start()`` to ``stop()``; changed under ``_state``."""

    wakeup: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    stopped: bool = False
    #: The loop's thread is inside a user callback (``stop()`` does not wait for it then).
    in_callback: bool = False
    #: The loop's thread has left the loop.
    done: bool = False


class LeaderElector(ElectorBase[StorageBackend]):
    """Elects one leader among all electors of ``key`` sharing ``backend``.

    The leader renews its lease every ``retry_period`` and steps down
    ``renew_deadline`` seconds after the start of its last successful renew if
    it cannot renew, firing ``on_leader_loss`` then even if the store is
    unreachable. Followers try to take the lease every ``retry_period``, so a
    crashed leader is replaced within ``ttl + retry_period`` and one that
    releases within ``retry_period``.

    ``backend`` is a :class:`~mongoelector.backends.StorageBackend`, or a
    pymongo ``Database`` (a mongomock one too), wrapped in
    ``MongoBackend(db, clock=clock)`` with that backend's defaults (the lease
    in ``mongolocker``, status reports in ``elector.leader_status``; the 1.x
    ``MongoLeaderElector`` keeps its lease in ``elector.locks`` instead).
    Anything else is a ``TypeError`` naming the methods it lacks.

    Callbacks: ``on_leader()`` and ``on_leader_loss()`` once per leadership
    term, ``on_new_leader(leader)`` with a
    :class:`~mongoelector.core.events.LeaderInfo` whenever a new term is
    observed (including this node's own), ``on_loop()`` after every poll. A
    callback that raises is logged and the elector goes on. Callbacks run one
    at a time, in the order their events happened, and never while the elector
    holds a lock, so any callback may call :meth:`stop`, :meth:`release`,
    :meth:`start` or :meth:`poll` from any thread. The thread that caused a
    callback (the loop's, or the caller of :meth:`poll`, :meth:`release` or
    :meth:`stop`) runs it before that call returns, unless a callback of this
    elector is running at that moment: then the call returns at once and the
    thread running that callback runs the new ones next. A callback whose news
    is stale by its turn is skipped: ``on_leader`` of a term already over (and
    then that term's ``on_leader_loss``), ``on_new_leader`` naming a leader
    this node no longer knows as leader, e.g. itself after a release.
    """

    def __init__(
        self,
        key: str,
        backend: StorageBackend | Database[Any],
        *,
        ttl: float = 15,
        renew_deadline: float | None = None,
        retry_period: float | None = None,
        follower_poll: float | None = None,
        clock: Clock | None = None,
        on_leader: Callable[[], Any] | None = None,
        on_leader_loss: Callable[[], Any] | None = None,
        on_loop: Callable[[], Any] | None = None,
        on_new_leader: Callable[[LeaderInfo], Any] | None = None,
        app_version: str | None = None,
        report_status: bool = True,
        event_listeners: Iterable[EventListener] = (),
    ) -> None:
        super().__init__(
            key,
            sync_store(backend, clock=clock),
            ttl=ttl,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
            follower_poll=follower_poll,
            clock=clock,
            on_leader=on_leader,
            on_leader_loss=on_leader_loss,
            on_loop=on_loop,
            on_new_leader=on_new_leader,
            app_version=app_version,
            report_status=report_status,
            event_listeners=event_listeners,
        )
        # Held around the machine and store calls only, never while a user callback runs.
        self._poll_lock = threading.RLock()
        # Guards the loop bookkeeping; never held while taking _poll_lock.
        self._state = threading.Condition(threading.Lock())
        self._loop: _Loop | None = None
        self._starts = 0

    # --- what this node knows (no backend call) ------------------------------------

    @property
    def running(self) -> bool:
        """True from :meth:`start` until :meth:`stop` (or the loop's crash)."""
        return self._loop is not None

    @property
    def cluster_detail(self) -> dict[str, Any]:
        """Every member's latest report (newest first) and the current leader (reads the store)."""
        members: list[MemberRecord] = []
        if Capability.MEMBER_STATUS in self._backend.capabilities and isinstance(
            self._backend, MemberStatusBackend
        ):
            members = self._backend.members(self._key)
        record = self._backend.get(self._key)
        return self._cluster_detail(members, record, self._backend.server_time())

    # --- polling --------------------------------------------------------------------

    def poll(self) -> None:
        """Run one poll cycle now: step down if due, renew or try to acquire, report status.

        Returns once the cycle's store calls are done and the callbacks it
        caused have run, unless another callback of this elector was running
        (see the class docstring).
        """
        self._poll(None)

    def release(self) -> None:
        """Step down now if leading and free the lease; fire ``on_leader_loss``.

        Returns once the lease is freed in the store (after the loop's
        in-flight store call, if any); it never waits for a callback running
        elsewhere, and from inside a callback it only queues ``on_leader_loss``.
        """
        with self._poll_lock:
            confirmation = self._confirmation_before_stop()
            if confirmation is not None:
                self._notify(self._carry_out(confirmation))
            self._let_go(self._machine.release(self._clock.monotonic()))
        self._wake_listeners()
        self._run_callbacks(None)
        self._send_releases()

    def fenced_transaction(self, client: MongoClient[Any]) -> AbstractContextManager[ClientSession]:
        """A context manager whose block's writes commit only while this node leads its term.

        ``with elector.fenced_transaction(client) as session:`` starts a
        multi-document transaction on ``client`` (a pymongo ``MongoClient`` of
        a replica set or sharded cluster; the backend must be a
        ``MongoBackend``, else ``TypeError``); make the block's reads and
        writes with ``session=session``. When the block ends, a write to the
        lock record inside the same transaction checks that it still belongs
        to the current term and has not expired by the server's clock, and
        only then is the transaction committed. Not leading: ``LockLost``
        before anything is sent.
        :class:`~mongoelector.errors.LockLost` and nothing committed if the
        check fails or a takeover conflicts; if the lease record, read then,
        is no longer this term's, the node first steps down as on a refused
        renewal (``on_leader_loss``);
        :class:`~mongoelector.errors.AmbiguousOutcome` if the commit's
        outcome is unknown; an exception of the block aborts the transaction
        and goes on. Never retried. See ``docs/locks.md``, "Transactions".
        """
        from mongoelector.fencing.transaction import fenced_transaction  # noqa: PLC0415

        return fenced_transaction(self, client)

    def _transaction_refused(self, token: int, started_at: float) -> None:
        """``fenced_transaction`` proved the store no longer has the lease of term ``token``:
        step down as on a refused renew (listeners woken, ``on_leader_loss`` run here unless
        a callback of this elector runs elsewhere, as ``release()`` does)."""
        with self._poll_lock:
            step = self._refused_by_check(token, started_at)
            if step is None:
                return
            self._notify(step)
        self._wake_listeners()
        self._run_callbacks(None)

    def leadership(self, timeout: float | None = None) -> Leadership:
        """A context manager whose block runs only while this node leads.

        ``with elector.leadership() as term:`` enters at once if this node
        leads; otherwise it waits (up to ``timeout`` seconds of the elector's
        clock, forever when ``None``) for this running elector to become
        leader, raising :class:`~mongoelector.errors.AcquireTimeout` when the
        time is up and :class:`~mongoelector.errors.NotLeader` if the elector
        is not running or stops meanwhile. ``term.token`` is the term's fencing
        token; ``term.lost`` is set once leadership ends (renew deadline,
        takeover, release or stop), and the block must stop acting then. If the
        term ends before the block does, leaving the block raises
        :class:`~mongoelector.errors.LockLost`. Leaving the block never steps down.
        """
        return Leadership(self, timeout)

    # --- the loop ---------------------------------------------------------------------

    def start(self, blocking: bool = False) -> None:
        """Start polling in a background thread, or in this thread if ``blocking``.

        A second call while running does nothing. Once :meth:`stop` has been
        called, ``start()`` runs a new loop at once, even from a callback the
        old loop is still running (from ``on_leader_loss``, it first frees the
        lease that the stop is about to free). With ``blocking``, returns after
        :meth:`stop` (from a callback or another thread) and the callbacks
        this thread was running.
        """
        with self._poll_lock, self._state:
            if self._loop is not None:
                return
            self._starts += 1
            self._loop = loop = _Loop()
            while (release := self._next_unsent()) is not None:
                self._carry_out(release)
            self._machine.start()
            if blocking:
                loop.thread = threading.current_thread()
            else:
                loop.thread = threading.Thread(
                    target=self._run, args=(loop,), name=f"mongoelector-{self._key}", daemon=True
                )
        if blocking:
            self._run(loop)
        else:
            assert loop.thread is not None
            loop.thread.start()

    def stop(self) -> None:
        """Stop polling, step down and release the lease; fire ``on_leader_loss`` if leading.

        Returns once the lease is freed in the store and the loop has ended,
        never after a whole poll interval. It waits for the loop's in-flight
        store call (bounded), never for a callback: if the loop's thread is
        running one, ``stop()`` returns without it, and that thread ends after
        running the callbacks still due. From a callback it does the same.
        """
        with self._state:
            loop = self._loop
            self._loop = None
            if loop is not None:
                loop.stopped = True
                loop.wakeup.set()
            starts = self._starts
        self._wake_listeners()
        self._step_down_for_good(starts)
        if loop is None or loop.thread is threading.current_thread():
            return
        with self._state:
            self._state.wait_for(lambda: loop.done or loop.in_callback)

    def _run(self, loop: _Loop) -> None:
        try:
            while not loop.stopped:
                self._poll(loop)
                if loop.stopped:
                    break
                self._clock.wait_until(self._machine.wake_at(), loop.wakeup)
                loop.wakeup.clear()
        except BaseException:
            logger.exception("elector loop for %r crashed; stepping down", self._key)
            with self._state:
                crashed = self._loop is loop
                if crashed:
                    self._loop = None
                    loop.stopped = True
                starts = self._starts
            if crashed:
                self._step_down_for_good(starts)
            raise
        finally:
            with self._state:
                loop.done = True
                self._state.notify_all()

    def _poll(self, loop: _Loop | None) -> None:
        """One poll cycle; by ``loop``, none once it was stopped."""
        with self._poll_lock:
            if loop is not None and loop.stopped:
                return
            step = self._machine.begin_poll(self._clock.monotonic())
            self._notify(step)
            if step.action is not None:
                self._notify(self._carry_out(step.action))
            if self._polled():
                self._send_status(running=self.running)
            self._notify_loop()
        self._wake_listeners()
        self._run_callbacks(loop)

    def _step_down_for_good(self, starts: int) -> None:
        """Stop taking part and free the lease, unless ``start()`` ran since its call ``starts``."""
        with self._poll_lock:
            if self._starts == starts:
                confirmation = self._confirmation_before_stop()
                if confirmation is not None:
                    self._notify(self._carry_out(confirmation))
                self._let_go(self._machine.stop(self._clock.monotonic()))
                if self._report_status:
                    self._send_status(running=False)
        self._wake_listeners()
        self._run_callbacks(None)
        self._send_releases()

    # --- plumbing -----------------------------------------------------------------------

    def _send_releases(self) -> None:
        """Free in the store every lease this node gave up and has not freed yet."""
        with self._poll_lock:
            while (release := self._next_unsent()) is not None:
                self._carry_out(release)

    def _carry_out(self, action: Action) -> Step:
        started_at = self._clock.monotonic()
        return self._settle(action, started_at, perform(self._backend, self._request, action))

    def _run_callbacks(self, loop: _Loop | None) -> None:
        """Run the queued callbacks still due, unless they already run elsewhere.

        ``loop`` is the loop whose thread this is, if any: ``stop()`` stops
        waiting for that thread while it is inside a callback.
        """
        me = threading.current_thread()
        if not self._queue.claim(me):
            return
        try:
            while (call := self._next_callback(me)) is not None:
                self._in_callback(loop, True)
                try:
                    run_callback(call.callback, call.name, *call.args)
                finally:
                    self._in_callback(loop, False)
        finally:
            self._queue.give_up(me)

    def _in_callback(self, loop: _Loop | None, inside: bool) -> None:
        if loop is None:
            return
        with self._state:
            loop.in_callback = inside
            self._state.notify_all()

    def _send_status(self, *, running: bool) -> None:
        backend = self._backend
        if Capability.MEMBER_STATUS not in backend.capabilities or not isinstance(
            backend, MemberStatusBackend
        ):
            return
        member, at = self._member_record(running=running)
        error: BackendError | None = None
        try:
            backend.report_member(member)
        except BackendError as caught:
            error = caught
        self._status_sent(member, at, error)

    def fenced(
        self, collection: Collection[DocT], *, field: str = "_fence"
    ) -> FencedCollection[DocT]:
        """``collection`` with its writes fenced by the current term's token (docs/locks.md).

        Raises :class:`~mongoelector.errors.NotLeader` if this node does not
        lead now. Its writes raise :class:`~mongoelector.errors.LockLost`,
        before anything is sent, once that term is over, even if a later term
        has begun: call ``fenced()`` again for the new term.
        """
        from mongoelector.fencing import FencedCollection  # noqa: PLC0415 - pymongo on use
        from mongoelector.fencing._tokens import term_token  # noqa: PLC0415

        return FencedCollection(collection, term_token(self), key=self._key, field=field)

    def __enter__(self) -> LeaderElector:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
