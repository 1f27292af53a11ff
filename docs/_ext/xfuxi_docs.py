"""Sphinx helpers of the xfuxi documentation.

* ``builder-inited``: writes ``docs/api/index.rst`` from :data:`xfuxi.api.PUBLIC`, so that
  every public name and every ``Dataset.fuxi`` / ``DataArray.fuxi`` method gets a page and a
  new row of the table gets one automatically.
* ``results-table`` directive: renders a result file that a benchmark wrote (CSV, or JSON:
  a list of records, or a possibly nested mapping) as a table, with the command that makes
  it, so that the results pages never copy numbers by hand.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util.docutils import SphinxDirective

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent

#: API sections: the first part of an entry's target module -> heading
_SECTIONS = {
    "data": "Data: reading, checking, statistics",
    "datasets": "Data sets",
    "world": "The embedded world",
    "forecasting": "Forecasts and ensembles",
    "models": "Models",
    "assimilation": "Assimilation",
    "observations": "Observations",
    "perturbations": "Perturbations",
    "experiments": "Experiments",
    "training": "Training",
    "verify": "Verification",
    "grid": "Grid",
    "plot": "Plotting",
}


def api_index() -> str:
    """The reST text of the API reference, from the public table."""
    from xfuxi.api import PUBLIC, accessor_entries

    groups: dict[str, list[str]] = {}
    for entry in PUBLIC:
        top = entry.target.split(":")[0].split(".")[0]
        groups.setdefault(top, []).append(entry.name)
    lines = [
        ".. This file is written by docs/_ext/xfuxi_docs.py at every build; do not edit.",
        "",
        "API reference",
        "=============",
        "",
        "Every public name of xfuxi, generated from the public table ``xfuxi.api.PUBLIC``:",
        "each is importable as ``xfuxi.<name>``; those marked in the table are also methods",
        "of the ``.fuxi`` accessor on ``xarray.Dataset`` and ``xarray.DataArray``",
        "(:ref:`accessor-dataset`, :ref:`accessor-dataarray`), where the data argument is the",
        "object itself.",
        "",
        ".. currentmodule:: xfuxi",
        "",
    ]
    for top, names in groups.items():
        title = _SECTIONS.get(top, top.capitalize())
        lines += [title, "-" * len(title), "", ".. autosummary::", "   :toctree: generated/", ""]
        lines += [f"   {n}" for n in names] + [""]
    for kind, cls in (("dataset", "Dataset"), ("dataarray", "DataArray")):
        title = f"``{cls}.fuxi``"
        lines += [f".. _accessor-{kind}:", "", title, "-" * len(title), ""]
        lines += [".. currentmodule:: xarray", ""]
        lines += [f"Methods of ``{cls}.fuxi``; ``obj.fuxi.name(...)`` is ``xfuxi.name(obj, ...)``."]
        lines += [
            "",
            ".. autosummary::",
            "   :toctree: generated/",
            "   :template: autosummary/accessor_method.rst",
            "",
        ]
        lines += [f"   {cls}.fuxi.{e.name}" for e in accessor_entries(kind)] + [""]
    return "\n".join(lines)


def _write_api(app: Any, config: Any = None) -> None:
    out = DOCS / "api" / "index.rst"
    out.parent.mkdir(exist_ok=True)
    text = api_index()
    if not out.exists() or out.read_text() != text:
        out.write_text(text)


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, dict):
        rows: list[tuple[str, Any]] = []
        for k, v in obj.items():
            rows += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return rows
    return [(prefix, obj)]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def read_table(
    path: Path, *, columns: list[str] | None = None, key: str | None = None
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a result file (CSV, or JSON records / mapping).

    ``key`` (JSON only) is a dotted path to the part of the file to show, e.g. ``rows``.
    """
    if key is not None and path.suffix != ".json":
        raise ValueError(f"results-table :key: needs a .json file; got {path}")
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        header, body = rows[0], rows[1:]
        body = [[_fmt(_num(c)) for c in r] for r in body]
    elif path.suffix == ".json":
        data = json.loads(path.read_text())
        for part in key.split(".") if key else []:
            if not isinstance(data, dict) or part not in data:
                raise ValueError(f"{path}: no key {key!r}")
            data = data[part]
        if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
            data = [dict(_flatten(r)) for r in data]  # nested cells -> dotted columns
            header = list(dict.fromkeys(k for r in data for k in r))
            body = [[_fmt(r.get(k, "")) for k in header] for r in data]
        elif _is_record_mapping(data):
            # {name: {column: value}}: one row per name
            header = ["", *dict.fromkeys(k for r in data.values() for k in r)]
            body = [[str(n), *(_fmt(r.get(k, "")) for k in header[1:])] for n, r in data.items()]
        else:
            header = ["quantity", "value"]
            body = [[k, _fmt(v)] for k, v in _flatten(data)]
    else:
        raise ValueError(f"results-table reads .csv or .json files; got {path}")
    if columns:
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"{path}: no column(s) {missing}; it has {header}")
        idx = [header.index(c) for c in columns]
        header, body = columns, [[r[i] for i in idx] for r in body]
    return header, body


def _is_record_mapping(data: Any) -> bool:
    """A non-empty mapping of names to flat mappings (no nested mappings)."""
    return (
        isinstance(data, dict)
        and bool(data)
        and all(
            isinstance(r, dict) and r and not any(isinstance(v, dict) for v in r.values())
            for r in data.values()
        )
    )


def _num(text: str) -> Any:
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        return text


def _table(header: list[str], body: list[list[str]]) -> nodes.table:
    table = nodes.table(classes=["results-table"])
    group = nodes.tgroup(cols=len(header))
    table += group
    group += [nodes.colspec(colwidth=1) for _ in header]
    thead = nodes.thead()
    group += thead
    for cells, parent in (([header], thead), (body, nodes.tbody())):
        for cells_row in cells:
            row = nodes.row()
            for c in cells_row:
                row += nodes.entry("", nodes.paragraph(text=str(c)))
            parent += row
        if parent is not thead:
            group += parent
    return table


class ResultsTable(SphinxDirective):
    """``results-table <path relative to the repository>`` with ``:command:`` (required)."""

    required_arguments = 1
    option_spec = {
        "command": directives.unchanged_required,
        "columns": directives.unchanged,
        "max-rows": directives.nonnegative_int,
        "key": directives.unchanged,
    }

    def run(self) -> list[nodes.Node]:
        path = ROOT / self.arguments[0]
        if "command" not in self.options:
            raise self.error("results-table needs :command: (how the file is made)")
        if not path.exists():
            raise self.error(f"result file {self.arguments[0]} does not exist")
        self.env.note_dependency(str(path))
        columns = self.options.get("columns")
        try:
            header, body = read_table(
                path, columns=columns.split(",") if columns else None, key=self.options.get("key")
            )
        except ValueError as err:
            raise self.error(str(err)) from err
        limit = self.options.get("max-rows")
        shown = body if limit is None else body[:limit]
        out: list[nodes.Node] = [_table(header, shown)]
        para = nodes.paragraph()
        where = f" ({self.options['key']})" if "key" in self.options else ""
        para += nodes.Text(f"From {self.arguments[0]}{where}")
        if limit is not None and len(body) > limit:
            para += nodes.Text(f" (first {limit} of {len(body)} rows)")
        para += nodes.Text(", written by: ")
        para += nodes.literal(text=self.options["command"])
        out.append(para)
        return out


def _public_objects() -> dict[int, str]:
    from xfuxi.api import PUBLIC, resolve

    return {id(resolve(e.target)): e.name for e in PUBLIC}


def _lookup(name: str, module: str | None, cls: str | None) -> tuple[Any, str] | None:
    """The object a reference names and the module it was found in, or None."""
    import importlib

    name = name.lstrip("~.")
    candidates = [name]
    if module:
        if cls:
            candidates.append(f"{module}.{cls}.{name}")
        candidates.append(f"{module}.{name}")
    candidates.append(f"xfuxi.{name}")
    for full in candidates:
        parts = full.split(".")
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except Exception:  # noqa: BLE001 - not a module: try a shorter prefix
                continue
            where = obj.__name__
            try:
                for attr in parts[i:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                break
            return obj, where
    # a bare name used inside a docstring of a module that xfuxi.<name> re-exports: the
    # one object of that name in xfuxi's modules, if it is unique
    import sys

    if "." not in name:
        found = {
            id(getattr(m, name)): (getattr(m, name), k)
            for k, m in list(sys.modules.items())
            if k.startswith("xfuxi") and m is not None and hasattr(m, name)
        }
        if len(found) == 1:
            return next(iter(found.values()))
    return None


def _missing_reference(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve references to xfuxi objects that have no page of their own.

    A reference to an internal object whose public name has a page (``xfuxi.<name>``)
    becomes a link to that page; one to an existing internal object without a page is set
    as code without a link. A reference to nothing keeps its warning, so typos still fail
    the build.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    module, cls = node.get("py:module"), node.get("py:class")
    found = _lookup(target, module, cls)
    if found is None:
        return None
    obj, where = found
    # a class, function or module says where it is defined; data (a dict, a constant) is
    # taken as xfuxi's when it was found in an xfuxi module
    owner = getattr(obj, "__module__", None) if callable(obj) else None
    owner = owner or getattr(obj, "__name__", None) if isinstance(obj, type(sys)) else owner
    if not str(owner or where).startswith("xfuxi"):
        return None
    public = _public_objects().get(id(obj))
    if public is not None:
        domain = env.get_domain("py")
        for role in ("obj", "func", "class", "mod"):
            ref = domain.resolve_xref(
                env, node["refdoc"], app.builder, role, f"xfuxi.{public}", node, contnode
            )
            if ref is not None:
                return ref
    return contnode


def setup(app: Any) -> dict[str, Any]:
    app.connect("missing-reference", _missing_reference)
    # at config-inited, before Sphinx lists the sources (autosummary scans only those)
    app.connect("config-inited", _write_api)
    app.add_directive("results-table", ResultsTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
