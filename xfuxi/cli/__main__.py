"""``python -m xfuxi.cli``: the ``xfuxi`` command line."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
