"""``python -m mongoelector``: the command line (see :mod:`mongoelector.cli`)."""

from __future__ import annotations

import sys

from mongoelector.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
