"""The real-server CI files parse and agree with each other, so that a typo fails here.

No MongoDB server and no docker engine run where this suite runs: the GitHub
workflow ``.github/workflows/real-mongodb.yml``, the script
``scripts/mongodb-replset.sh`` (with ``scripts/mongodb-replset-init.js``) and
``docker-compose.yml`` only ever run on GitHub or a developer's machine.
:func:`check_ci_files` reads them all and raises :class:`CiFilesError` at the
first thing that would break there: YAML that does not parse, a matrix
without exactly the supported versions (``5.0`` unquoted is the float 5.0),
a step that runs a file or a script command that does not exist, an
expression naming an unknown matrix key, a compose service whose replica set
name, ports or members differ from the script's, or a URI the workflow
exports that does not name the members the script starts. The typo tests
feed it corrupted copies and expect it to raise, saying what is wrong. A
fake ``docker`` on ``PATH`` shows what the script asks docker to do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ".github/workflows/real-mongodb.yml"
COMPOSE = "docker-compose.yml"
SCRIPT = "scripts/mongodb-replset.sh"
INIT_JS = "scripts/mongodb-replset-init.js"
FAILOVER_TESTS = "tests/backends/test_mongo_failover_real_server.py"
CONTRIBUTING = "CONTRIBUTING.md"
#: Every file the checks read, relative to the repository root.
FILES = (WORKFLOW, COMPOSE, SCRIPT, INIT_JS, FAILOVER_TESTS, CONTRIBUTING, "Makefile")

MONGODB_VERSIONS = ["4.4", "5.0", "6.0", "7.0", "8.0"]
STANDALONE_VERSIONS = ["7.0"]
PYTHON_VERSIONS = ["3.10", "3.12"]
REQUIRE_FAILOVER = "MONGOELECTOR_TEST_REQUIRE_FAILOVER"

BASH = shutil.which("bash")
needs_bash = pytest.mark.skipif(BASH is None, reason="needs bash")


class CiFilesError(Exception):
    """A CI file is broken or disagrees with another one."""


def need(condition: object, message: str) -> None:
    if not condition:
        raise CiFilesError(message)


@dataclass(frozen=True)
class Deployment:
    """The servers ``scripts/mongodb-replset.sh`` starts, as its settings say."""

    replica_set: str
    host: str
    ports: tuple[int, ...]
    standalone_port: int
    default_version: str
    mongod_options: tuple[str, ...]
    #: The script's commands (``start``, ``stop``, ...).
    commands: frozenset[str]

    @property
    def members(self) -> list[str]:
        return [f"{self.host}:{port}" for port in self.ports]

    @property
    def replset_uri(self) -> str:
        return f"mongodb://{','.join(self.members)}/?replicaSet={self.replica_set}"

    @property
    def standalone_uri(self) -> str:
        return f"mongodb://{self.host}:{self.standalone_port}/?directConnection=true"


# --- reading ---------------------------------------------------------------------------------


def load_yaml(path: Path) -> dict[Any, Any]:
    need(path.is_file(), f"{path} is missing")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise CiFilesError(f"{path} is not valid YAML: {error}") from error
    need(isinstance(document, dict), f"{path} is not a YAML mapping")
    return document  # type: ignore[no-any-return]


def strings_in(node: object) -> Iterator[str]:
    """Every string in a parsed YAML document, keys included."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings_in(key)
            yield from strings_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings_in(item)


def setting(text: str, name: str, path: Path) -> str:
    """The value of the shell assignment ``NAME=value`` at the start of a line."""
    match = re.search(rf"^{name}=(.*)$", text, re.MULTILINE)
    need(match, f"{path} has no {name}=... setting")
    assert match is not None
    return match.group(1).strip()


def shell_array(value: str, name: str, path: Path) -> list[str]:
    need(value.startswith("(") and value.endswith(")"), f"{name} in {path} is not an array")
    return value[1:-1].split()


def read_script(root: Path) -> Deployment:
    """Check the script's syntax (``bash -n``) and read its settings and commands."""
    path = root / SCRIPT
    need(path.is_file(), f"{path} is missing")
    need(os.access(path, os.X_OK), f"{path} is not executable")
    if BASH is not None:
        syntax = subprocess.run(
            [BASH, "-n", str(path)], check=False, capture_output=True, text=True
        )
        need(syntax.returncode == 0, f"bash -n {path} failed: {syntax.stderr.strip()}")
    text = path.read_text()
    ports = shell_array(setting(text, "PORTS", path), "PORTS", path)
    need(all(port.isdigit() for port in ports), f"PORTS in {path} are not all numbers")
    need(len(ports) == 3, f"{path} should start 3 members, not {len(ports)}")
    standalone_port = setting(text, "STANDALONE_PORT", path)
    need(standalone_port.isdigit(), f"STANDALONE_PORT in {path} is not a number")
    need(
        f'INIT_JS="$here/{Path(INIT_JS).name}"' in text,
        f"{path} does not run {INIT_JS} from its own directory",
    )
    case = text.rpartition('case "$command" in')[2]
    commands = frozenset(re.findall(r"^\s+([a-z][a-z-]*)\)", case, re.MULTILINE))
    need({"start", "start-standalone", "stop", "logs", "uri"} <= commands, f"{path}: {commands}")
    deployment = Deployment(
        replica_set=setting(text, "REPLICA_SET", path),
        host=setting(text, "HOST", path),
        ports=tuple(int(port) for port in ports),
        standalone_port=int(standalone_port),
        default_version=setting(text, "DEFAULT_VERSION", path),
        mongod_options=tuple(
            shell_array(setting(text, "MONGOD_OPTIONS", path), "MONGOD_OPTIONS", path)
        ),
        commands=commands,
    )
    need(deployment.host == "127.0.0.1", f"{path}: members must be on 127.0.0.1")
    need(
        len(set(deployment.ports) | {deployment.standalone_port}) == 4,
        f"{path}: the members and the standalone need distinct ports",
    )
    return deployment


# --- checking --------------------------------------------------------------------------------


def check_init_js(root: Path, deployment: Deployment) -> None:
    """The initiating script configures the replica set the script and compose file start."""
    path = root / INIT_JS
    need(path.is_file(), f"{path} is missing")
    text = path.read_text()
    name = re.search(r'^var REPLICA_SET = "([^"]*)";$', text, re.MULTILINE)
    need(name and name.group(1) == deployment.replica_set, f"{path}: replica set name")
    members = re.search(r"^var MEMBERS = (\[.*\]);$", text, re.MULTILINE)
    need(members, f"{path} has no MEMBERS")
    assert members is not None
    need(json.loads(members.group(1)) == deployment.members, f"{path}: members")
    for opening, closing in ("()", "[]", "{}"):
        need(text.count(opening) == text.count(closing), f"{path}: unbalanced {opening}")


def check_compose(root: Path, deployment: Deployment) -> None:
    """``docker-compose.yml`` starts what ``scripts/mongodb-replset.sh`` starts."""
    path = root / COMPOSE
    document = load_yaml(path)
    services = document.get("services")
    need(isinstance(services, dict), f"{path} has no services")
    names = [f"mongo{number}" for number in range(1, len(deployment.ports) + 1)]
    need(
        set(services) == {*names, "init", "standalone"},
        f"{path}: services {sorted(services)}, expected {[*names, 'init', 'standalone']}",
    )
    image = f"mongo:${{MONGO_VERSION:-{deployment.default_version}}}"
    for name, service in services.items():
        need(service.get("image") == image, f"{path}: {name} should run {image}")
    first = names[0]
    for name, port in zip(names, deployment.ports, strict=True):
        service = services[name]
        command = ["--replSet", deployment.replica_set, "--port", str(port)]
        need(
            service.get("command") == [*command, *deployment.mongod_options],
            f"{path}: {name} command {service.get('command')}",
        )
        probe = " ".join(strings_in(service.get("healthcheck", {}).get("test")))
        need(f"/dev/tcp/127.0.0.1/{port} " in f"{probe} ", f"{path}: {name} healthcheck")
        if name == first:
            published = [f"{deployment.host}:{port}:{port}" for port in deployment.ports]
            need(service.get("ports") == published, f"{path}: {name} should publish {published}")
            need("network_mode" not in service, f"{path}: {name} owns the network namespace")
        else:
            need(service.get("network_mode") == f"service:{first}", f"{path}: {name} network")
            need("ports" not in service, f"{path}: {name} shares {first}'s ports")
    init = services["init"]
    need(init.get("network_mode") == f"service:{first}", f"{path}: init network")
    depends = init.get("depends_on")
    need(
        isinstance(depends, dict)
        and set(depends) == set(names)
        and all(rule == {"condition": "service_healthy"} for rule in depends.values()),
        f"{path}: init must wait for every member to be healthy",
    )
    volumes = init.get("volumes")
    need(isinstance(volumes, list) and len(volumes) == 1, f"{path}: init mounts one file")
    source, target, mode = str(volumes[0]).split(":")
    need((path.parent / source).resolve() == (root / INIT_JS).resolve(), f"{path}: mounts {source}")
    need(mode == "ro", f"{path}: mount {source} read-only")
    entrypoint = " ".join(init.get("entrypoint", []))
    need(f"--port {deployment.ports[0]} {target}" in entrypoint, f"{path}: init runs {target}")
    need("$$(command -v mongosh || command -v mongo)" in entrypoint, f"{path}: init shell")
    standalone = services["standalone"]
    port = deployment.standalone_port
    need(
        standalone.get("command") == ["--port", str(port), *deployment.mongod_options],
        f"{path}: standalone command",
    )
    need(standalone.get("ports") == [f"{deployment.host}:{port}:{port}"], f"{path}: standalone")
    need(standalone.get("profiles") == ["standalone"], f"{path}: standalone profile")
    for text in strings_in(document):
        # Compose reads "$x" and "$(...)" as its own variables: a shell's "$" is written "$$".
        need(not re.search(r"(?<!\$)\$(?![${])", text), f"{path}: single $ in {text!r}")
    check_uris(path, deployment)


def check_uris(path: Path, deployment: Deployment) -> None:
    """Every MongoDB URI the file mentions (comments included) is one the script serves."""
    for uri in re.findall(r"mongodb://[^\s'\"]+", path.read_text()):
        need(
            uri in (deployment.replset_uri, deployment.standalone_uri),
            f"{path}: {uri} is not {deployment.replset_uri} or {deployment.standalone_uri}",
        )


def check_workflow(root: Path, deployment: Deployment) -> None:
    """The workflow starts the script's servers, tests them, and exports their URIs."""
    path = root / WORKFLOW
    document = load_yaml(path)
    # YAML 1.1 (PyYAML) reads the key "on" as True; GitHub reads it as "on".
    need(document.get("on", document.get(True)), f"{path} has no triggers")
    jobs = document.get("jobs")
    need(isinstance(jobs, dict), f"{path} has no jobs")
    need(set(jobs) == {"replica-set", "standalone"}, f"{path}: jobs {sorted(jobs)}")
    check_job(root, path, "replica-set", jobs["replica-set"], deployment)
    check_job(root, path, "standalone", jobs["standalone"], deployment)
    check_uris(path, deployment)
    failover_tests = (root / FAILOVER_TESTS).read_text()
    need(REQUIRE_FAILOVER in failover_tests, f"{FAILOVER_TESTS} does not read {REQUIRE_FAILOVER}")
    need(
        jobs["replica-set"].get("env", {}).get(REQUIRE_FAILOVER) == "1",
        f"{path}: the replica-set job must set {REQUIRE_FAILOVER}=1",
    )


def check_job(
    root: Path, path: Path, name: str, job: dict[str, Any], deployment: Deployment
) -> None:
    where = f"{path}: job {name}"
    need(str(job.get("runs-on", "")).startswith("ubuntu-"), f"{where} must run on Linux")
    matrix = job.get("strategy", {}).get("matrix", {})
    versions = MONGODB_VERSIONS if name == "replica-set" else STANDALONE_VERSIONS
    need(matrix.get("mongodb") == versions, f"{where}: mongodb {matrix.get('mongodb')!r}")
    need(matrix.get("python") == PYTHON_VERSIONS, f"{where}: python {matrix.get('python')!r}")
    need(set(matrix) == {"mongodb", "python"}, f"{where}: matrix keys {sorted(matrix)}")
    uri = deployment.replset_uri if name == "replica-set" else deployment.standalone_uri
    exported = job.get("env", {}).get("MONGOELECTOR_TEST_URI")
    need(exported == uri, f"{where} exports MONGOELECTOR_TEST_URI={exported}, not {uri}")
    for text in strings_in(job):
        need(text.count("${{") == text.count("}}"), f"{where}: unbalanced expression {text!r}")
        for key in re.findall(r"\bmatrix\.(\w+)", text):
            need(key in matrix, f"{where}: unknown matrix key in {text!r}")
    steps = job.get("steps")
    need(isinstance(steps, list) and steps, f"{where} has no steps")
    uses = [step["uses"] for step in steps if "uses" in step]
    need(uses == ["actions/checkout@v4", "actions/setup-python@v5"], f"{where}: uses {uses}")
    setup = next(step for step in steps if step.get("uses") == "actions/setup-python@v5")
    need(setup.get("with", {}).get("python-version") == "${{ matrix.python }}", f"{where}: py")
    runs = [str(step.get("run", "")) for step in steps]
    for run in runs:
        for file in re.findall(r"(?<![\w/.$-])((?:[\w.-]+/)+[\w.-]+\.(?:sh|js|py))\b", run):
            need((root / file).is_file(), f"{where} runs {file}, which does not exist")
        for command in re.findall(rf"{re.escape(SCRIPT)}\s+([\w-]+)", run):
            need(command in deployment.commands, f"{where}: {SCRIPT} has no command {command}")
    start = "start" if name == "replica-set" else "start-standalone"
    order = [
        step_index(runs, rf'^bash {re.escape(SCRIPT)} {start} "\$\{{\{{ matrix\.mongodb \}}\}}"$'),
        step_index(runs, r"^make test\b"),
        step_index(runs, rf"^bash {re.escape(SCRIPT)} logs$"),
        step_index(runs, rf"^bash {re.escape(SCRIPT)} stop$"),
    ]
    need(None not in order and order == sorted(order), f"{where}: start, test, logs, stop steps")
    need(steps[order[2]].get("if") == "failure()", f"{where}: logs only on failure")  # type: ignore[index]
    need(steps[order[3]].get("if") == "always()", f"{where}: always stop the servers")  # type: ignore[index]
    need(re.search(r"^test:", (root / "Makefile").read_text(), re.MULTILINE), "no make test")


def step_index(runs: list[str], pattern: str) -> int | None:
    found = [index for index, run in enumerate(runs) if re.search(pattern, run.strip())]
    return found[0] if len(found) == 1 else None


def check_ci_files(root: Path) -> Deployment:
    """Check every real-server CI file under ``root``; raise :class:`CiFilesError` if one is off."""
    deployment = read_script(root)
    check_init_js(root, deployment)
    check_compose(root, deployment)
    check_workflow(root, deployment)
    check_uris(root / CONTRIBUTING, deployment)
    return deployment


# --- the files as shipped -------------------------------------------------------------------


def test_the_ci_files_parse_and_agree() -> None:
    deployment = check_ci_files(ROOT)
    assert deployment.replset_uri == (
        "mongodb://127.0.0.1:27017,127.0.0.1:27018,127.0.0.1:27019/?replicaSet=rs0"
    )
    assert deployment.standalone_uri == "mongodb://127.0.0.1:27020/?directConnection=true"


@needs_bash
def test_the_script_prints_the_uris_the_workflow_exports() -> None:
    deployment = read_script(ROOT)
    for kind, uri in (
        ("replset", deployment.replset_uri),
        ("standalone", deployment.standalone_uri),
    ):
        printed = subprocess.run(
            [BASH or "bash", str(ROOT / SCRIPT), "uri", kind],
            check=False,
            capture_output=True,
            text=True,
        )
        assert printed.returncode == 0 and printed.stdout.strip() == uri


# --- typos fail the check -------------------------------------------------------------------


class Typo(NamedTuple):
    file: str
    old: str
    new: str
    #: What the check's error must say (a regular expression).
    error: str


TYPOS = {
    "an unquoted version is a float": Typo(WORKFLOW, '"5.0", "6.0"', '5.0, "6.0"', r"5.0, '6.0'"),
    "a version missing": Typo(WORKFLOW, ', "8.0"]', "]", r"mongodb \["),
    "a wrong Python": Typo(WORKFLOW, 'python: ["3.10"', 'python: ["3.1"', r"python \["),
    "a wrong replica set in the URI": Typo(
        WORKFLOW, "replicaSet=rs0", "replicaSet=rs1", r"replica-set exports"
    ),
    "a wrong member port in the URI": Typo(
        WORKFLOW, "127.0.0.1:27019/", "127.0.0.1:27091/", r"replica-set exports"
    ),
    "the standalone URI on a member's port": Typo(
        WORKFLOW, "127.0.0.1:27020/", "127.0.0.1:27017/", r"standalone exports"
    ),
    "a script command misspelt": Typo(
        WORKFLOW, "sh start-standalone", "sh start-standlone", r"has no command start-standlone"
    ),
    "a script path misspelt": Typo(
        WORKFLOW, "bash scripts/", "bash script/", r"runs script/mongodb-replset.sh, which does not"
    ),
    "a matrix key misspelt": Typo(
        WORKFLOW, 'start "${{ matrix.mongodb', 'start "${{ matrix.mongdb', r"unknown matrix key"
    ),
    "an unclosed expression": Typo(
        WORKFLOW, "${{ matrix.python }}", "${{ matrix.python }", r"unbalanced expression"
    ),
    "no stop after a failure": Typo(WORKFLOW, "if: always()", "if: success()", r"always stop"),
    "broken indentation": Typo(WORKFLOW, "\n    steps:\n", "\n   steps:\n", r"not valid YAML"),
    "no failover requirement": Typo(
        WORKFLOW, 'REQUIRE_FAILOVER: "1"', 'REQUIRE_FAILOVER: "0"', r"must set MONGOELECTOR_TEST"
    ),
    "compose: another replica set": Typo(
        COMPOSE, 'rs0, --port, "27018"', 'rs1, --port, "27018"', r"mongo2 command"
    ),
    "compose: a member on another port": Typo(
        COMPOSE, '--port, "27019"', '--port, "27029"', r"mongo3 command"
    ),
    "compose: a port not published": Typo(
        COMPOSE, '      - "127.0.0.1:27019:27019"\n', "", r"mongo1 should publish"
    ),
    "compose: a member outside the namespace": Typo(
        COMPOSE,
        "service:mongo1\n    depends_on",
        "service:mongo\n    depends_on",
        r"mongo2 network",
    ),
    "compose: a shell $ not escaped": Typo(COMPOSE, '"$$(command', '"$(command', r"init shell"),
    "compose: the init script's path misspelt": Typo(
        COMPOSE,
        "./scripts/mongodb-replset-init",
        "./script/mongodb-replset-init",
        r"mounts ./script/",
    ),
    "compose: a wrong URI in the comments": Typo(
        COMPOSE, "27020/?directConnection", "27021/?directConnection", r"27021/\?directConnection"
    ),
    "docs: a wrong URI": Typo(
        CONTRIBUTING, "127.0.0.1:27019/?replicaSet", "127.0.0.1:27019/?replicaset", r"CONTRIBUTING"
    ),
    "compose: a tab in the YAML": Typo(COMPOSE, "  mongo3:\n", "\tmongo3:\n", r"not valid YAML"),
    "script: a port changed": Typo(
        SCRIPT, "PORTS=(27017 27018 27019)", "PORTS=(27017 27018 27010)", r"init.js: members"
    ),
    "script: a syntax error": Typo(SCRIPT, "\n    esac\n}", "\n    esca\n}", r"bash -n .* failed"),
    "script: a command renamed": Typo(SCRIPT, "    logs) logs ;;", "    log) logs ;;", r"'log'"),
    "init: a member misspelt": Typo(
        INIT_JS, '"127.0.0.1:27018"', '"127.0.0.1:2018"', r"init.js: members"
    ),
    "init: another replica set": Typo(
        INIT_JS, 'REPLICA_SET = "rs0"', 'REPLICA_SET = "rs"', r"init.js: replica set name"
    ),
}


def copy_ci_files(destination: Path) -> None:
    for name in FILES:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)


def test_an_intact_copy_passes(tmp_path: Path) -> None:
    copy_ci_files(tmp_path)
    check_ci_files(tmp_path)


@pytest.mark.parametrize("name", sorted(TYPOS))
def test_a_typo_fails_the_check(tmp_path: Path, name: str) -> None:
    typo = TYPOS[name]
    if BASH is None and "syntax" in name:
        pytest.skip("needs bash")
    copy_ci_files(tmp_path)
    path = tmp_path / typo.file
    text = path.read_text()
    assert typo.old in text, f"the typo {name!r} no longer matches {typo.file}"
    path.write_text(text.replace(typo.old, typo.new, 1))
    with pytest.raises(CiFilesError, match=typo.error):
        check_ci_files(tmp_path)


# --- what the script asks docker to do ------------------------------------------------------

FAKE_DOCKER = """#!/usr/bin/env bash
# Logs its arguments; runs `docker exec CONTAINER COMMAND...` here, without the container.
printf '%s\\n' "$*" >> "$DOCKER_LOG"
case "$1 $2" in
    "container inspect") [[ "$*" == *State.Running* ]] && echo true; exit 0 ;;
esac
if [[ "$1" == exec ]]; then
    [[ "$*" == */dev/tcp/* ]] && exit 0
    shift 2
    exec "$@"
fi
"""

FAKE_SHELL = """#!/usr/bin/env bash
printf '%s %s\\n' "$(basename "$0")" "$*" >> "$DOCKER_LOG"
echo 1
"""


@pytest.fixture
def fake_docker(tmp_path: Path) -> Iterator[Path]:
    """A ``bin`` directory with a fake ``docker`` and the legacy ``mongo`` shell (as in 4.4)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("docker", FAKE_DOCKER), ("mongo", FAKE_SHELL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    yield bin_dir


def run_script(bin_dir: Path, *arguments: str) -> list[str]:
    log = bin_dir.parent / "docker.log"
    environment = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "DOCKER_LOG": str(log)}
    done = subprocess.run(
        [BASH or "bash", str(ROOT / SCRIPT), *arguments],
        check=False,
        capture_output=True,
        text=True,
        env=environment,
    )
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines()


@needs_bash
def test_the_script_starts_three_members_in_one_network_namespace(fake_docker: Path) -> None:
    calls = run_script(fake_docker, "start", "4.4")
    runs = [call for call in calls if call.startswith("run ")]
    options = "--bind_ip_all --wiredTigerCacheSizeGB 0.25"
    assert runs == [
        "run --detach --name mongoelector-test-rs-1 --publish 127.0.0.1:27017:27017 "
        "--publish 127.0.0.1:27018:27018 --publish 127.0.0.1:27019:27019 mongo:4.4 "
        f"--replSet rs0 --port 27017 {options}",
        "run --detach --name mongoelector-test-rs-2 --network container:mongoelector-test-rs-1 "
        f"mongo:4.4 --replSet rs0 --port 27018 {options}",
        "run --detach --name mongoelector-test-rs-3 --network container:mongoelector-test-rs-1 "
        f"mongo:4.4 --replSet rs0 --port 27019 {options}",
    ]
    copied = f"cp {ROOT / INIT_JS} mongoelector-test-rs-1:/tmp/mongodb-replset-init.js"
    # The image has no mongosh (as 4.4): the legacy shell runs the init script on member 1.
    initiated = "mongo --quiet --port 27017 /tmp/mongodb-replset-init.js"
    assert calls.index(copied) < calls.index(initiated) == len(calls) - 1
    assert calls.index(runs[-1]) < calls.index(copied)


@needs_bash
def test_the_script_prefers_mongosh_and_stops_members_before_the_namespace(
    fake_docker: Path,
) -> None:
    (fake_docker / "mongosh").write_text(FAKE_SHELL)
    (fake_docker / "mongosh").chmod(stat.S_IRWXU)
    assert run_script(fake_docker, "start", "8.0")[-1] == (
        "mongosh --quiet --port 27017 /tmp/mongodb-replset-init.js"
    )
    removed = [call for call in run_script(fake_docker, "stop") if call.startswith("rm ")]
    assert removed[-4:] == [
        f"rm --force --volumes mongoelector-test-{name}"
        for name in ("standalone", "rs-3", "rs-2", "rs-1")
    ]


@needs_bash
def test_the_script_starts_the_standalone_on_its_own_port(fake_docker: Path) -> None:
    calls = run_script(fake_docker, "start-standalone", "7.0")
    assert [call for call in calls if call.startswith("run ")] == [
        "run --detach --name mongoelector-test-standalone --publish 127.0.0.1:27020:27020 "
        "mongo:7.0 --port 27020 --bind_ip_all --wiredTigerCacheSizeGB 0.25"
    ]
    assert calls[-1] == "mongo --quiet --port 27020 --eval db.adminCommand({ping: 1}).ok"
