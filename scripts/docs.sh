#!/usr/bin/env bash
# The documentation check (CI runs it after the test suite): build the site with warnings as
# errors, check its internal links, run one gallery notebook in a real Jupyter kernel and
# run the Markdown pages' code snippets as doctests. Needs the docs and notebook extras
# (scripts/setup.sh installs them). The site is in docs/_build/html.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg
start=$SECONDS
step() { echo "== docs: $1 ($((SECONDS - start)) s)"; }

step "the embedded world's test period for the gallery (generated once, then cached)"
"$PY" -c "import xfuxi; xfuxi.set_options(progress=False); xfuxi.datasets.held_suarez_split('test', days=20)"

step "sphinx-build -W --keep-going -n (the gallery runs at every build)"
rm -rf docs/_build docs/gallery docs/api
"$PY" -m sphinx -b html -W --keep-going -n -q docs docs/_build/html

step "internal links and anchors"
"$PY" docs/check_links.py docs/_build/html

step "a gallery notebook in a Jupyter kernel"
env -u MPLBACKEND "$PY" docs/check_notebook.py docs/gallery/plot_single_observation_4dvar.ipynb

step "the Markdown pages' code snippets as doctests"
"$PY" -m pytest -p no:cacheprovider -q -o addopts="" --doctest-glob="*.md" docs README.md

step "done"
