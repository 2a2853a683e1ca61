#!/usr/bin/env bash
# The MongoDB deployments of the real-server tests, in docker (the official mongo images).
# GitHub Actions (.github/workflows/real-mongodb.yml) and developers use this same script;
# docker-compose.yml starts the same replica set, and tests/test_ci_files.py keeps the two in step.
#
#   scripts/mongodb-replset.sh start [VERSION]             replica set rs0: 127.0.0.1:27017-27019
#   scripts/mongodb-replset.sh start-standalone [VERSION]  a standalone on 127.0.0.1:27020
#   scripts/mongodb-replset.sh uri [replset|standalone]    the MONGOELECTOR_TEST_URI to use
#   scripts/mongodb-replset.sh logs                        the servers' logs
#   scripts/mongodb-replset.sh stop                        removes the containers and their data
#
# VERSION is a tag of the mongo image (4.4, 5.0, 6.0, 7.0, 8.0; default 7.0). The three members
# run in three containers that share one network namespace (--network container:...), each
# mongod on its own port, and the replica set names them 127.0.0.1:<port>: the same addresses
# work inside the containers and, through the published ports, on the host. No host
# networking, so this also works with Docker Desktop.
set -euo pipefail

REPLICA_SET=rs0
PORTS=(27017 27018 27019)
STANDALONE_PORT=27020
HOST=127.0.0.1
DEFAULT_VERSION=7.0
MONGOD_OPTIONS=(--bind_ip_all --wiredTigerCacheSizeGB 0.25)
PREFIX=mongoelector-test
WAIT_SECONDS=${MONGOELECTOR_WAIT_SECONDS:-120}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
INIT_JS="$here/mongodb-replset-init.js"

member() { echo "$PREFIX-rs-$1"; }
STANDALONE="$PREFIX-standalone"

containers() {
    local number
    for number in "${!PORTS[@]}"; do member $((number + 1)); done
    echo "$STANDALONE"
}

uri() {
    case "${1:-replset}" in
        replset)
            local hosts=() port
            for port in "${PORTS[@]}"; do hosts+=("$HOST:$port"); done
            (IFS=,; echo "mongodb://${hosts[*]}/?replicaSet=$REPLICA_SET")
            ;;
        standalone) echo "mongodb://$HOST:$STANDALONE_PORT/?directConnection=true" ;;
        *) echo "unknown deployment '$1' (replset or standalone)" >&2; return 2 ;;
    esac
}

remove() {  # containers...
    local name
    for name in "$@"; do
        if docker container inspect "$name" >/dev/null 2>&1; then
            docker rm --force --volumes "$name" >/dev/null
        fi
    done
}

# Runs the container's MongoDB shell on 127.0.0.1:PORT: `mongosh` where the image has it
# (5.0 and later), else the legacy `mongo` shell (the 4.4 images ship only that one).
mongo_shell() {  # container port shell-arguments...
    local container=$1 port=$2
    shift 2
    docker exec "$container" bash -c \
        'shell="$(command -v mongosh || command -v mongo)" && exec "$shell" --quiet --port "$@"' \
        mongo-shell "$port" "$@"
}

# Waits until a mongod listens on PORT inside CONTAINER (checked from inside: on the host a
# published port accepts connections before the server listens).
wait_for_port() {  # container port
    local container=$1 port=$2 deadline=$((SECONDS + WAIT_SECONDS))
    until docker exec "$container" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; do
        if [[ "$(docker container inspect -f '{{.State.Running}}' "$container")" != true ]] ||
            ((SECONDS >= deadline)); then
            echo "mongod in $container does not listen on port $port:" >&2
            docker logs --tail 50 "$container" >&2 || true
            return 1
        fi
        sleep 1
    done
}

start_replset() {  # version
    local image="mongo:$1" first publish=() number port
    first="$(member 1)"
    for number in "${!PORTS[@]}"; do remove "$(member $((number + 1)))"; done
    for port in "${PORTS[@]}"; do publish+=(--publish "$HOST:$port:$port"); done
    docker run --detach --name "$first" "${publish[@]}" "$image" \
        --replSet "$REPLICA_SET" --port "${PORTS[0]}" "${MONGOD_OPTIONS[@]}" >/dev/null
    for number in "${!PORTS[@]}"; do
        ((number == 0)) && continue
        docker run --detach --name "$(member $((number + 1)))" --network "container:$first" \
            "$image" --replSet "$REPLICA_SET" --port "${PORTS[$number]}" "${MONGOD_OPTIONS[@]}" \
            >/dev/null
    done
    for number in "${!PORTS[@]}"; do wait_for_port "$(member $((number + 1)))" "${PORTS[$number]}"; done
    docker cp "$INIT_JS" "$first:/tmp/mongodb-replset-init.js"
    mongo_shell "$first" "${PORTS[0]}" /tmp/mongodb-replset-init.js
    echo "replica set $REPLICA_SET (mongo:$1) is up: MONGOELECTOR_TEST_URI='$(uri replset)'"
}

start_standalone() {  # version
    local image="mongo:$1" deadline=$((SECONDS + WAIT_SECONDS))
    remove "$STANDALONE"
    docker run --detach --name "$STANDALONE" \
        --publish "$HOST:$STANDALONE_PORT:$STANDALONE_PORT" \
        "$image" --port "$STANDALONE_PORT" "${MONGOD_OPTIONS[@]}" >/dev/null
    wait_for_port "$STANDALONE" "$STANDALONE_PORT"
    until mongo_shell "$STANDALONE" "$STANDALONE_PORT" --eval 'db.adminCommand({ping: 1}).ok' |
        grep -q 1; do
        if ((SECONDS >= deadline)); then
            echo "the standalone does not answer a ping" >&2
            return 1
        fi
        sleep 1
    done
    echo "standalone (mongo:$1) is up: MONGOELECTOR_TEST_URI='$(uri standalone)'"
}

logs() {
    local name
    for name in $(containers); do
        if docker container inspect "$name" >/dev/null 2>&1; then
            echo "===== $name"
            docker logs --tail 200 "$name" 2>&1
        fi
    done
}

usage() {
    sed -n '6,10p' "${BASH_SOURCE[0]}" | sed 's/^# *//' >&2
    return 2
}

command=${1:-}
case "$command" in
    start) start_replset "${2:-$DEFAULT_VERSION}" ;;
    start-standalone) start_standalone "${2:-$DEFAULT_VERSION}" ;;
    uri) uri "${2:-replset}" ;;
    logs) logs ;;
    stop)
        # The members share the first one's network namespace: remove them before it.
        for name in $(containers | tac); do remove "$name"; done
        ;;
    *) usage ;;
esac
