"""Check that every internal link and anchor of the built site exists.

    python docs/check_links.py docs/_build/html

Every ``href`` and ``src`` of every HTML page that points inside the site (not ``http:``,
``https:``, ``mailto:`` or ``data:``) must name a file that was built, and its ``#anchor``,
if any, an ``id`` (or ``name``) in that file. Prints each broken link with the page it is
on and exits 1 if there is any.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

_EXTERNAL = ("http", "https", "mailto", "data", "javascript", "ftp")


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if value is None:
                continue
            if key == "id" or (key == "name" and tag == "a"):
                self.ids.add(value)
            elif key in ("href", "src") and tag in ("a", "img", "link", "script", "source"):
                self.links.append(value)


def broken_links(site: Path) -> list[str]:
    """The broken internal links of the site, as ``page: link (why)``."""
    pages: dict[Path, _Page] = {}
    for path in sorted(site.rglob("*.html")):
        if path.relative_to(site).parts[0] in ("_static", "_sources"):
            continue  # theme templates and page sources, not pages
        page = _Page()
        page.feed(path.read_text(encoding="utf-8", errors="replace"))
        pages[path.resolve()] = page
    out = []
    for path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme in _EXTERNAL or parts.netloc or link.startswith("//"):
                continue
            target = path if not parts.path else (path.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            rel = path.relative_to(site.resolve())
            if not target.exists():
                out.append(f"{rel}: {link} (no file {target.name})")
                continue
            anchor = unquote(parts.fragment)
            if anchor and target.suffix == ".html":
                ids = pages[target].ids if target in pages else set()
                if anchor not in ids:
                    out.append(f"{rel}: {link} (no anchor #{anchor})")
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__)
        return 2
    site = Path(args[0])
    if not (site / "index.html").exists():
        print(f"{site} holds no built site (no index.html)")
        return 2
    bad = broken_links(site)
    for line in bad:
        print(line)
    print(f"{len(bad)} broken internal link(s) in the pages of {site}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
