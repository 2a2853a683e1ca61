"""``mongoelector run`` and ``elect`` as operators use them: real runner and child processes.

Children are small Python scripts that write what they see (their environment,
the signals they get) to files, so the test can wait for them. Waits are bounded
only to keep a broken build from hanging; nothing here asserts on timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mongoelector.backends.sqlite import SQLiteBackend
from mongoelector.cli import main

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

ROOT = Path(__file__).resolve().parents[2]
#: A hang guard, never a timing assertion.
BOUND = 30.0


def runner(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mongoelector", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    _, err = process.communicate(timeout=BOUND)
    return process.returncode, err


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, "hang guard"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def script(path: Path, body: str) -> list[str]:
    path.write_text("import os, signal, sys, time\n" + body)
    return [sys.executable, str(path)]


def writes_env(out: Path) -> str:
    return (
        f"open({str(out)!r}, 'w').write(os.environ['MONGOELECTOR_KEY'] + ' ' "
        "+ os.environ['MONGOELECTOR_TOKEN'])\n"
    )


def holder(sqlite: Path) -> SQLiteBackend:
    return SQLiteBackend(str(sqlite))


def test_the_child_status_comes_back_and_the_env_names_key_and_token(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    child = script(tmp_path / "c.py", writes_env(seen) + "sys.exit(7)\n")

    code, err = finish(runner("run", "job", "--sqlite", str(tmp_path / "l.db"), "--", *child))

    assert code == 7, err
    key, token = seen.read_text().split()
    assert key == "job" and int(token) >= 1
    with holder(tmp_path / "l.db") as backend:
        record = backend.get("job")
        assert record is not None and record.owner is None  # released afterwards


def test_mongomock_uri_runs_the_child_with_a_token(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    child = script(tmp_path / "c.py", writes_env(seen))

    code, err = finish(runner("run", "job", "--uri", "mongomock://runner/app", "--", *child))

    assert code == 0, err
    key, token = seen.read_text().split()
    assert key == "job" and int(token) >= 1


def test_a_lock_held_elsewhere_exits_75_at_once_or_after_wait(tmp_path: Path) -> None:
    db = str(tmp_path / "l.db")
    ran = tmp_path / "ran"
    started = tmp_path / "started"
    first = runner(
        "run",
        "job",
        "--sqlite",
        db,
        "--",
        *script(tmp_path / "a.py", f"open({str(started)!r}, 'w')\ntime.sleep(60)\n"),
    )
    until(started.exists)
    other = script(tmp_path / "b.py", f"open({str(ran)!r}, 'w')\n")

    code, err = finish(runner("run", "job", "--sqlite", db, "--", *other))
    assert code == 75 and "held elsewhere" in err, err
    code, err = finish(runner("run", "job", "--sqlite", db, "--wait", "0.5", "--", *other))
    assert code == 75, err
    assert not ran.exists()

    waiting = runner(
        "run", "job", "--sqlite", db, "--wait", "--", *script(tmp_path / "w.py", writes_env(ran))
    )
    first.send_signal(signal.SIGTERM)
    assert finish(first)[0] == 128 + signal.SIGTERM
    code, err = finish(waiting)
    assert code == 0, err
    assert int(ran.read_text().split()[1]) >= 2


def test_a_lost_lock_stops_the_child_with_sigterm_then_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    started = tmp_path / "started"
    termed = tmp_path / "termed"
    stubborn = script(
        tmp_path / "c.py",
        f"signal.signal(signal.SIGTERM, lambda *a: open({str(termed)!r}, 'w'))\n"
        f"open({str(started)!r}, 'w')\n"
        "while True: time.sleep(0.1)\n",
    )
    process = runner(
        "run", "job", "--sqlite", str(db), "--ttl", "1.5", "--grace", "0.5", "--", *stubborn
    )
    until(started.exists)

    with SQLiteBackend(str(db)) as backend:
        assert backend.release("job", None, force=True)
    code, err = finish(process)

    assert code == 70, err
    assert termed.exists(), "SIGTERM came first"
    assert "SIGKILL" in err and "lost the lock 'job'" in err


def test_sigterm_to_the_runner_reaches_the_child_and_the_lock_is_released(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    started = tmp_path / "started"
    child = script(
        tmp_path / "c.py",
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(42))\n"
        f"open({str(started)!r}, 'w')\n"
        "while True: time.sleep(0.1)\n",
    )
    process = runner("run", "job", "--sqlite", str(db), "--", *child)
    until(started.exists)

    process.send_signal(signal.SIGTERM)
    code, err = finish(process)

    assert code == 42, err  # the child's own answer to SIGTERM
    with SQLiteBackend(str(db)) as backend:
        record = backend.get("job")
        assert record is not None and record.owner is None


def test_at_least_keeps_the_lock_after_the_child_ends(tmp_path: Path) -> None:
    db = str(tmp_path / "l.db")
    pid = tmp_path / "pid"
    child = script(tmp_path / "c.py", f"open({str(pid)!r}, 'w').write(str(os.getpid()))\n")
    first = runner("run", "job", "--sqlite", db, "--at-least", "60", "--", *child)
    until(lambda: pid.exists() and pid.read_text() != "")
    until(lambda: not alive(int(pid.read_text())))  # the child ended and its runner reaped it
    code, err = finish(runner("run", "job", "--sqlite", db, "--", "true"))
    assert code == 75, err
    first.send_signal(signal.SIGTERM)
    assert finish(first)[0] == 0


def test_elect_runs_one_child_and_hands_over_with_a_greater_token(tmp_path: Path) -> None:
    db = str(tmp_path / "l.db")
    tokens = tmp_path / "tokens"
    child = script(
        tmp_path / "c.py",
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
        f"open({str(tokens)!r}, 'a').write(os.environ['MONGOELECTOR_TOKEN'] + ' '"
        " + str(os.getppid()) + '\\n')\n"
        "while True: time.sleep(0.1)\n",
    )
    first = runner("elect", "svc", "--sqlite", db, "--ttl", "1.5", "--", *child)
    until(tokens.exists)
    second = runner("elect", "svc", "--sqlite", db, "--ttl", "1.5", "--", *child)
    with SQLiteBackend(db) as backend:
        # Both have polled and reported: the one that found the lease held started nothing.
        until(lambda: {m.pid for m in backend.members("svc")} == {first.pid, second.pid})
    lines = tokens.read_text().splitlines()
    assert len(lines) == 1
    token, parent = (int(word) for word in lines[0].split())
    leader, follower = (first, second) if parent == first.pid else (second, first)

    leader.send_signal(signal.SIGTERM)
    code, err = finish(leader)
    assert code == 0, err
    until(lambda: len(tokens.read_text().splitlines()) == 2)
    new_token, new_parent = (int(word) for word in tokens.read_text().splitlines()[1].split())
    assert new_parent == follower.pid and new_token > token

    follower.send_signal(signal.SIGTERM)
    assert finish(follower)[0] == 0
    # Whenever it came, a child the follower started during the first term would show here
    # (the sleep above only gives it a chance to show early).
    assert [line.split()[1] for line in tokens.read_text().splitlines()] == [
        str(leader.pid),
        str(follower.pid),
    ]


def test_elect_stops_the_child_when_leadership_is_lost_and_restarts_it(tmp_path: Path) -> None:
    db = str(tmp_path / "l.db")
    tokens = tmp_path / "tokens"
    termed = tmp_path / "termed"
    child = script(
        tmp_path / "c.py",
        f"signal.signal(signal.SIGTERM, lambda *a: (open({str(termed)!r}, 'a').write('x'), "
        "sys.exit(0)))\n"
        f"open({str(tokens)!r}, 'a').write(os.environ['MONGOELECTOR_TOKEN'] + '\\n')\n"
        "while True: time.sleep(0.1)\n",
    )
    process = runner("elect", "svc", "--sqlite", db, "--ttl", "1.5", "--", *child)
    until(tokens.exists)

    with SQLiteBackend(db) as backend:
        assert backend.release("svc", None, force=True)
    until(lambda: len(tokens.read_text().splitlines()) >= 2)

    first, second = (int(line) for line in tokens.read_text().splitlines()[:2])
    assert second > first and termed.exists()
    process.send_signal(signal.SIGINT)
    code, err = finish(process)
    assert code == 128 + signal.SIGINT, err  # the child died of the SIGINT passed to it


def test_elect_on_mongomock_leads_at_once(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    child = script(tmp_path / "c.py", writes_env(seen) + "sys.exit(3)\n")

    code, err = finish(runner("elect", "svc", "--uri", "mongomock://elect/app", "--", *child))

    assert code == 3, err
    key, token = seen.read_text().split()
    assert key == "svc" and int(token) >= 1


def test_unknown_command_is_127() -> None:
    code, err = finish(
        runner("run", "job", "--uri", "mongomock://x/app", "--", "no-such-command-x")
    )
    assert code == 127 and "cannot run 'no-such-command-x'" in err


# --- --collection: the lease collection (MongoDB only) ---------------------------------------

#: Runs the CLI on ``mongomock://c/app`` in its own process, then prints the names of the
#: collections the store has (a released lease leaves its collection behind, empty). With
#: ``held``, a live lock on ``job`` is first taken in the collection ``jobs_locks``.
DRIVER = """\
import json, sys
from mongoelector import Lock
from mongoelector.backends import MongoBackend
from mongoelector.cli import main
from mongoelector.cli.connect import mongomock_client
db = mongomock_client("mongomock://c/app")["app"]
if sys.argv[1] == "held":
    Lock("job", MongoBackend(db, "jobs_locks", status_collection=None), ttl=60).acquire()
code = main(sys.argv[2:])
print(json.dumps(sorted(db.list_collection_names())))
sys.exit(code)
"""


def driven(fixture: str, *args: str) -> tuple[int, list[str], str]:
    process = subprocess.run(
        [sys.executable, "-c", DRIVER, fixture, *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BOUND,
    )
    collections = json.loads(process.stdout.splitlines()[-1]) if process.stdout else []
    return process.returncode, collections, process.stderr


def test_run_keeps_its_lease_in_the_collection_given(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    child = script(tmp_path / "c.py", writes_env(seen))
    uri = ["--uri", "mongomock://c/app"]

    code, collections, err = driven(
        "empty", "run", "job", *uri, "--collection", "jobs_locks", "--", *child
    )
    assert code == 0, err
    assert seen.exists()
    assert collections == ["jobs_locks"]

    code, collections, err = driven("empty", "run", "job", *uri, "--", *child)
    assert code == 0, err
    assert collections == ["mongolocker"]  # the default, as before


def test_run_meets_a_holder_only_in_its_own_collection(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    child = script(tmp_path / "c.py", f"open({str(ran)!r}, 'w')\n")
    uri = ["--uri", "mongomock://c/app"]

    code, _, err = driven("held", "run", "job", *uri, "--collection", "jobs_locks", "--", *child)
    assert code == 75 and "held elsewhere" in err, err
    assert not ran.exists()

    code, _, err = driven("held", "run", "job", *uri, "--", *child)  # mongolocker: free
    assert code == 0, err
    assert ran.exists()


def test_elect_keeps_its_lease_in_the_collection_given(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    child = script(tmp_path / "c.py", writes_env(seen) + "sys.exit(3)\n")
    uri = ["--uri", "mongomock://c/app"]

    code, collections, err = driven(
        "empty", "elect", "svc", *uri, "--collection", "svc_leases", "--", *child
    )
    assert code == 3, err
    assert seen.read_text().split()[0] == "svc"
    assert collections == ["elector.leader_status", "svc_leases"]  # reports stay where they were

    code, collections, err = driven("empty", "elect", "svc", *uri, "--", *child)
    assert code == 3, err
    assert collections == ["elector.leader_status", "elector.locks"]


@pytest.mark.parametrize("command", ["run", "elect"])
def test_collection_with_sqlite_is_a_usage_error(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "l.db"
    code = main([command, "job", "--sqlite", str(db), "--collection", "locks", "--", "true"])
    assert code == 2
    assert "--collection needs --uri" in capsys.readouterr().err
    assert not db.exists()  # refused before the file was opened


@pytest.mark.parametrize("command", ["run", "elect"])
@pytest.mark.parametrize("name", ["", "a$b", "system.locks", "a..b", ".a"])
def test_a_bad_collection_name_is_a_usage_error_before_connecting(
    command: str, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens on port 1: connecting would fail with exit 3, after the timeout.
    uri = ["--uri", "mongodb://127.0.0.1:1/app", "--timeout", "30"]
    code = main([command, "job", *uri, "--collection", name, "--", "true"])
    assert code == 2
    assert "bad --collection" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "elect"])
def test_help_names_the_collection_option(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--collection NAME" in capsys.readouterr().out
