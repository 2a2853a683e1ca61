"""``python -m tests.cli.mongomock_driver FIXTURE ARGS...``: the CLI on mongomock, in a process.

Fills the store ``mongomock://ops`` (database ``app``) with ``FIXTURE`` from
:mod:`tests.cli.stores`, then exits with ``mongoelector ARGS...``'s exit code.
"""

from __future__ import annotations

import sys

from mongoelector.cli import main
from tests.cli.stores import FIXTURES, database_of

if __name__ == "__main__":
    FIXTURES[sys.argv[1]](database_of("mongomock://ops/app"))
    sys.exit(main(sys.argv[2:]))
