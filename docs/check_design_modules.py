"""Check that the module table of docs/design.md lists exactly the package's modules, once each.

Run from the repository root: ``python docs/check_design_modules.py``. Prints the modules
missing from the table, the rows naming a module that does not exist and the modules with
more than one row, and exits with status 1 if there are any (0 otherwise).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def documented(design: Path) -> list[str]:
    """Module paths named in the first column of the design page's module table, in order."""
    return re.findall(r"^\| `(xfuxi/[^`]+\.py)` \|", design.read_text(), flags=re.MULTILINE)


def present(package: Path) -> set[str]:
    """Module paths of the package, relative to the repository root."""
    return {p.relative_to(package.parent).as_posix() for p in package.rglob("*.py")}


def main() -> int:
    rows = documented(ROOT / "docs" / "design.md")
    listed = set(rows)
    tree = present(ROOT / "xfuxi")
    twice = sorted({path for path in rows if rows.count(path) > 1})
    missing = sorted(tree - listed)
    stale = sorted(listed - tree)
    for path in missing:
        print(f"not in docs/design.md: {path}")
    for path in stale:
        print(f"in docs/design.md but not in the package: {path}")
    for path in twice:
        print(f"more than one row in docs/design.md: {path}")
    return 1 if missing or stale or twice else 0


if __name__ == "__main__":
    sys.exit(main())
