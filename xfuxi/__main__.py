"""``python -m xfuxi``: the ``xfuxi`` command line (as ``python -m xfuxi.cli``)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
