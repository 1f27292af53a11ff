"""Execute a gallery notebook with a real Jupyter kernel and check what it shows.

    python docs/check_notebook.py docs/gallery/plot_single_observation_4dvar.ipynb

The notebook that sphinx-gallery made from an example is run by nbclient in a fresh
``python3`` kernel (the environment's ipykernel), with one cell appended that shows an xfuxi
progress bar. It passes when the run raises nothing and its outputs hold an HTML table (an
xfuxi ``_repr_html_`` summary), a PNG figure and a progress-bar widget, and no widget
warning (tqdm's "IProgress not found", which means the bar fell back to text).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

_PROGRESS_CELL = """\
import xfuxi
from xfuxi.options import progress_bar

bar = progress_bar(3, True, "notebook check")
for _ in range(3):
    bar.update()
bar.close()
"""


def check(path: Path, *, timeout: int = 300) -> list[str]:
    """Run the notebook; return what is missing or wrong (empty when it passes)."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_PROGRESS_CELL))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})  # fmt: skip
    client.execute()
    html = png = widget = False
    problems = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            html |= "<table" in str(data.get("text/html", ""))
            png |= "image/png" in data
            widget |= "application/vnd.jupyter.widget-view+json" in data
            text = str(out.get("text", "")) + str(data.get("text/plain", ""))
            if "IProgress not found" in text:
                problems.append("tqdm could not make a widget: 'IProgress not found'")
            if out.get("output_type") == "error":
                problems.append(f"error: {out.get('ename')}: {out.get('evalue')}")
    if not html:
        problems.append("no HTML table in the outputs")
    if not png:
        problems.append("no PNG figure in the outputs")
    if not widget:
        problems.append("the progress bar is not a widget")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__)
        return 2
    start = time.perf_counter()
    problems = check(Path(args[0]))
    for p in problems:
        print(p)
    took = time.perf_counter() - start
    print(f"{args[0]}: {'FAILED' if problems else 'ok'} ({took:.0f} s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
