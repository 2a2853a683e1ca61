"""Checks of fencing tokens: every acquisition of a key gets a greater token than any before."""

from __future__ import annotations

from itertools import pairwise

from mongoelector.testing.conformance.harness import BackendHarness, HarnessFeature
from mongoelector.testing.conformance.registry import check, expect, present
from mongoelector.testing.conformance.support import (
    SHORT_TTL,
    acquire,
    expect_refused,
    stored,
)


def _expect_increasing(tokens: list[tuple[str, int]]) -> None:
    for (_, earlier), (how, later) in pairwise(tokens):
        expect(
            later > earlier,
            f"fencing tokens must strictly increase; got {later} {how}, after {earlier} "
            f"(all: {tokens})",
        )


@check()
def tokens_grow_across_release_expiry_and_takeover(harness: BackendHarness) -> None:
    """Tokens strictly increase through release, expiry and forced takeover; refusals keep them."""
    backend = harness.backend
    key = "fenced"
    tokens = [("on the first acquisition", acquire(harness, key, "alice").token)]
    backend.release(key, "alice", token=tokens[-1][1])
    tokens.append(("after a release", acquire(harness, key, "bob", ttl=SHORT_TTL).token))
    harness.advance(SHORT_TTL)
    holder = acquire(harness, key, "carol")
    tokens.append(("after an expiry", holder.token))
    expect_refused(harness, key, "dave", holder, "was granted while carol held the key")
    expect(
        stored(harness, key).token == holder.token,
        "a refused compare_and_set must not change the token",
    )
    tokens.append(("after a forced takeover", acquire(harness, key, "dave", force=True).token))
    backend.release(key, None, force=True)
    tokens.append(("after a forced release", acquire(harness, key, "erin").token))
    _expect_increasing(tokens)


@check(HarnessFeature.DELETE_RECORD)
def tokens_grow_after_the_record_is_deleted(harness: BackendHarness) -> None:
    """Deleting a record (by an operator or a TTL index) does not let its tokens start over."""
    backend = harness.backend
    delete_record = present(harness.delete_record, "the harness has no delete_record hook")
    key = "deleted"
    tokens = [("on the first acquisition", acquire(harness, key, "alice").token)]
    delete_record(key)
    expect(
        backend.get(key) is None,
        "the harness's delete_record() left the record in place, so this check proves nothing",
    )
    tokens.append(("after the live record was deleted", acquire(harness, key, "bob").token))
    backend.release(key, "bob", token=tokens[-1][1])
    delete_record(key)
    tokens.append(("after the released record was deleted", acquire(harness, key, "carol").token))
    _expect_increasing(tokens)
