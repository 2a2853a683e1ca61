"""The default collection names of the MongoDB backends (1.x's), without importing them."""

from __future__ import annotations

__all__ = ["DEFAULT_COLLECTION", "DEFAULT_STATUS_COLLECTION"]

#: Where 1.x ``MongoLocker`` keeps its locks by default.
DEFAULT_COLLECTION = "mongolocker"
#: Where 1.x ``MongoLeaderElector`` keeps its members' status reports.
DEFAULT_STATUS_COLLECTION = "elector.leader_status"
