"""The 2.x benchmark runner still runs, in its count-only mode, and its tables still render.

Not a benchmark: no timings are asserted. The counts checked are the ones the
benchmark page states as facts (one round trip per uncontended acquire, renew
and release on every store), so a change that breaks them shows up here too.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def counts() -> dict[str, Any]:
    """What ``runner_2x.py --only counts`` prints, as ``compare.py`` reads it."""
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.syspath_prepend(str(BENCHMARKS))
        import runner_2x

        assert runner_2x.main(["--only", "counts"]) == 0
    output = json.loads(printed.getvalue().strip().splitlines()[-1])
    assert output["side"] == "2.x"
    figures: dict[str, Any] = output["results"]
    return figures


@pytest.mark.parametrize("store", ["memory", "mongomock", "wire"])
@pytest.mark.parametrize("operation", ["acquire", "renew", "release"])
def test_a_lock_operation_is_one_round_trip(
    counts: dict[str, Any], store: str, operation: str
) -> None:
    count = counts[f"{store}|count.{operation}"]
    assert count["reads"] + count["writes"] + count["other"] == 1, count


def test_a_follower_polling_a_live_leader_reads_on_both_write_paths(
    counts: dict[str, Any],
) -> None:
    for store in ("mongomock", "wire"):
        poll = counts[f"{store}|defaults.status_off.follower.poll"]
        assert (poll["reads"], poll["writes"]) == (1, 0), (store, poll)


def test_the_tables_render_from_the_counts(counts: dict[str, Any]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        from _report import render

        text = render({"1.x": counts, "2.x": counts}, header=["header"])
    assert "### Store operations per lock operation" in text
    assert "| uncontended acquire |" in text


def test_a_quick_run_says_n_a_for_what_it_did_not_measure(counts: dict[str, Any]) -> None:
    """``--quick`` measures counts and one call's cost only: no throughput, no simulation."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        from _report import render

        text = render({"1.x": counts, "2.x": counts}, header=["header"])
    throughput = text.split("### Throughput", 1)[1].split("###", 1)[0]
    rows = [line for line in throughput.splitlines() if line.startswith(("| one key", "| 1,000"))]
    assert len(rows) == 2
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1:4] == ["n/a", "n/a", "n/a"] and cells[-1] == "n/a", row
    assert "simulated schedules: not measured in this run (`--quick`)" in text
    assert "**0**" not in text.split("### Simulation", 1)[1]


def test_many_idle_locks_make_one_store_call_per_renew_interval_on_both_stores() -> None:
    """``many_locks.py`` (which ``make bench`` runs): the counts its table states, for N = 10."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        import many_locks

        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert (
                many_locks.main(
                    [
                        "--json",
                        "--memory",
                        "10",
                        "--mongomock",
                        "10",
                        "--mixed",
                        "10",
                        "5",
                        "--status-mixed",
                        "10",
                        "5",
                    ]
                )
                == 0
            )
    rows = json.loads(printed.getvalue().strip().splitlines()[-1])["rows"]
    assert [(row["store"], row["n"], row["electors"]) for row in rows] == [
        ("memory", 10, 0),
        ("mongomock", 10, 0),
        ("memory", 10, 5),  # the mixed row: five started electors beside the ten locks
        ("memory", 10, 5),  # the same, the electors reporting their status
    ]
    assert [row["status"] for row in rows] == [False, False, False, True]
    assert all(row["threads"] <= 4 for row in rows), rows
    for row in rows[:2]:
        assert row["calls_per_interval"] == 1, row  # one renew_many for the ten holdings
        assert row["calls_per_minute"] == 30, row
        assert row["key_by_key_per_minute"] == 300, row
    mixed = rows[2]  # one renew_many for the locks and the leading electors together
    assert mixed["calls_per_interval"] == 1, mixed
    assert mixed["status_calls"] == 0, mixed
    reporting = rows[3]  # and at most one report_members per renew interval beside it
    assert reporting["calls_per_interval"] <= 2, reporting
    assert 1 <= reporting["status_calls"] <= 6, reporting  # ~every 6 s over 12 s (and start-up)
    lines = many_locks.table(rows)
    assert lines[0].startswith("| store | N | extra threads |")
    assert len(lines) == 2 + len(rows)


@pytest.mark.parametrize("pipeline", [False, True], ids=["classic", "pipeline"])
def test_the_no_io_store_serves_a_pair_in_two_writes_and_refuses_anything_else(
    monkeypatch: pytest.MonkeyPatch, pipeline: bool
) -> None:
    import mongomock

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from _noio import NoIODatabase

    from mongoelector import MongoLocker

    db = NoIODatabase(mongomock.MongoClient()["bench"], "mongolocker", pipeline=pipeline)
    lock = MongoLocker("k", db)
    db.leases.calls = []
    tokens = []
    for _ in range(3):
        assert lock.acquire(blocking=False)
        tokens.append(lock.token)
        assert lock.release()
    assert tokens == sorted(set(tokens))  # the store's tokens grow, as a real one's do
    assert len(db.leases.calls) == 6
    assert all(isinstance(update, list) == pipeline for _, update, _ in db.leases.calls[::2])
    with pytest.raises(NotImplementedError, match="find_one"):
        db.leases.find_one({"_id": "k"})
