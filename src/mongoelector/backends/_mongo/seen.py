"""What one backend has seen of each key: the least token it may issue, and who seemed to hold it.

All of it comes from the backend's own replies. The least token is part of
the fencing argument (see ``docs/mongodb.md``); the holder's expiry is only a
hint that picks which classic acquire to try first, so a wrong hint costs a
round trip, never safety. The last holding seen lets a classic batch renewal
return records without reading them again: a holding's key, owner, token,
acquisition, ``acquired_at``, host, pid and metadata never change while it
lasts (a renewal changes only its expiry), so a record seen once stands for
the holding, given its new expiry. The expiry seen stands for the holding's
expiry only while every renewal of it sent through this backend was answered:
a renewal whose reply never came (it failed after it may have applied, or its
caller gave up waiting) may have moved the expiry anywhere, earlier too (a
shorter ``ttl``), even after a later renewal was answered. That is counted per
holding: an answered renewal of another holding of the key (a stale lock's,
refused) answers none of this one's, and only a record of a later holding (or
of this one released) ends them. Not thread-safe: the backend serialises
access.
"""

from __future__ import annotations

from datetime import datetime

from mongoelector.backends.protocol import LeaseRecord

__all__ = ["SeenLeases"]


class SeenLeases:
    """Per key: the least fencing token an acquisition may get, and the last holder's expiry."""

    def __init__(self) -> None:
        self._least_token: dict[str, int] = {}
        self._held_until: dict[str, datetime] = {}
        self._holding: dict[str, LeaseRecord] = {}
        #: Per key: each holding (owner, token) with renewals unanswered, and how many.
        self._unanswered: dict[str, dict[tuple[str, int], int]] = {}

    def least_token(self, key: str) -> int:
        """One more than the greatest token seen for ``key`` (1 if none)."""
        return self._least_token.get(key, 1)

    def note(self, record: LeaseRecord | None) -> None:
        """Remember ``record`` as the key's latest state in the store (``None``: nothing known)."""
        if record is None:
            return
        if record.token + 1 > self.least_token(record.key):
            self._least_token[record.key] = record.token + 1
        if record.owner is not None and record.expires_at is not None:
            self._held_until[record.key] = record.expires_at
        else:
            self._held_until.pop(record.key, None)
        if record.owner is not None:
            self._holding[record.key] = record
        else:
            self._holding.pop(record.key, None)
        unanswered = self._unanswered.get(record.key)
        if unanswered:
            # Holdings with a smaller token (or this token, released or another owner's)
            # are over: no renewal of theirs lands any more. (A record older than a
            # holding noted, from a reply that came late, tells nothing of that holding.)
            latest = (record.owner, record.token)
            over = [
                holding
                for holding in unanswered
                if holding[1] < record.token or (holding[1] == record.token and holding != latest)
            ]
            for holding in over:
                del unanswered[holding]
            if not unanswered:
                del self._unanswered[record.key]

    def note_token(self, key: str, token: int) -> None:
        """Remember that ``key``'s record carried ``token`` (a release's reply: what
        :meth:`note` then :meth:`note_released` learn from it, without the record)."""
        if token + 1 > self._least_token.get(key, 1):
            self._least_token[key] = token + 1

    def note_released(self, key: str) -> None:
        """Remember that this backend just ended the holding of ``key`` (if there was one)."""
        self._held_until.pop(key, None)
        self._holding.pop(key, None)
        self._unanswered.pop(key, None)

    def renewing(self, key: str, owner: str, token: int) -> None:
        """Remember that a renewal of ``owner``'s holding ``token`` of ``key`` is being sent:
        until :meth:`renewed` says it was answered, the expiry seen may not be the stored one."""
        unanswered = self._unanswered.setdefault(key, {})
        unanswered[owner, token] = unanswered.get((owner, token), 0) + 1

    def renewed(self, key: str, owner: str, token: int) -> None:
        """Remember that a renewal begun with :meth:`renewing` was answered (its reply noted).

        Only that holding's count goes down: an answered renewal of another holding of
        the key (a stale lock's, refused) vouches for nothing of this one."""
        unanswered = self._unanswered.get(key)
        count = unanswered.get((owner, token)) if unanswered is not None else None
        if unanswered is None or count is None:
            return
        if count > 1:
            unanswered[owner, token] = count - 1
            return
        del unanswered[owner, token]
        if not unanswered:
            del self._unanswered[key]

    def holding(self, key: str, owner: str, token: int) -> LeaseRecord | None:
        """The record last seen of ``key``, if it is ``owner``'s holding ``token``."""
        record = self._holding.get(key)
        if record is None or record.owner != owner or record.token != token:
            return None
        return record

    def expiry_of(self, key: str, owner: str | None, token: int | None) -> datetime | None:
        """The expiry last seen of ``key``'s holding by ``owner`` with ``token`` (either
        ``None``: any), if that is the holding last seen and none of its renewals is
        unanswered (else the expiry stored may be another, earlier or later)."""
        record = self._holding.get(key)
        if record is None or (owner is not None and record.owner != owner):
            return None
        if token is not None and record.token != token:
            return None
        unanswered = self._unanswered.get(key)
        if unanswered is not None and (record.owner, record.token) in unanswered:
            return None
        return record.expires_at

    def held_until(self, key: str) -> datetime | None:
        """When the last holder seen for ``key`` stops holding it (``None``: no holder seen)."""
        return self._held_until.get(key)

    def expects_held(self, key: str, now: datetime) -> bool:
        """True if the last holder seen for ``key`` holds it until after ``now`` (server time)."""
        until = self._held_until.get(key)
        return until is not None and until > now
