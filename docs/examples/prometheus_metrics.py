"""Serve mongoelector's metrics to Prometheus at /metrics while an elector runs.

    pip install 'mongoelector[prometheus]'
    python prometheus_metrics.py --port 9464 --key scheduler
    MONGO_URI=mongodb://db1,db2,db3/app?replicaSet=rs0 python prometheus_metrics.py

With no MongoDB URI (``--uri`` or ``$MONGO_URI``) the elector runs on an
in-memory store, alone. Serves until Ctrl-C or SIGTERM, then stops the
elector (which releases the lease) and exits.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading

from prometheus_client import start_http_server
from pymongo import MongoClient

from mongoelector import LeaderElector, monitoring
from mongoelector.backends import MemoryBackend, MongoBackend, StorageBackend
from mongoelector.metrics import PrometheusListener


def store(uri: str | None) -> StorageBackend:
    if not uri:
        return MemoryBackend()
    return MongoBackend(MongoClient(uri).get_default_database("mongoelector"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9464, help="0: any free port")
    parser.add_argument("--addr", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--key", default="scheduler", help="what to elect a leader of")
    parser.add_argument("--uri", default=os.environ.get("MONGO_URI"), help="MongoDB URI")
    args = parser.parse_args(argv)

    # One listener for every elector and lock in the process, in prometheus_client's
    # default registry: the one start_http_server() serves.
    monitoring.register(PrometheusListener())

    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: done.set())

    server, _ = start_http_server(args.port, addr=args.addr)
    elector = LeaderElector(args.key, store(args.uri))
    elector.start()
    url = f"http://{args.addr}:{server.server_port}/metrics"
    print(f"serving {url} for {args.key!r}; Ctrl-C stops", flush=True)
    try:
        done.wait()
    finally:
        elector.stop()  # steps down: is_leader goes to 0, the lease is free at once
        server.shutdown()
        server.server_close()
    print(f"stopped; {args.key!r} released", flush=True)


if __name__ == "__main__":
    main()
