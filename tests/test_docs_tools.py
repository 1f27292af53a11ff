"""The documentation's own tools (issue 23): the link checker and the results tables."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _load(path: Path):
    pytest.importorskip("docutils") if path.name == "xfuxi_docs.py" else None
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_link_checker_finds_missing_pages_and_anchors(tmp_path):
    check = _load(DOCS / "check_links.py")
    (tmp_path / "index.html").write_text(
        '<h1 id="top">x</h1><a href="page.html#here">ok</a><a href="#top">ok</a>'
        '<a href="gone.html">no page</a><a href="page.html#nowhere">no anchor</a>'
        '<a href="https://example.org/x.html">external</a><img src="img/a.png">'
    )
    (tmp_path / "page.html").write_text('<p id="here"><a href="index.html#top">back</a></p>')
    assert check.broken_links(tmp_path) == [
        "index.html: gone.html (no file gone.html)",
        "index.html: page.html#nowhere (no anchor #nowhere)",
        "index.html: img/a.png (no file a.png)",
    ]
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(b"")
    assert check.main([str(tmp_path)]) == 1
    (tmp_path / "index.html").write_text('<a id="top" href="page.html#here">ok</a>')
    assert check.main([str(tmp_path)]) == 0


def test_results_tables_read_the_files_benchmarks_write(tmp_path):
    ext = _load(DOCS / "_ext" / "xfuxi_docs.py")
    csv = tmp_path / "scores.csv"
    csv.write_text("variable,lead_h,crps\nz500,6,16.287577\nz500,12,30.5\n")
    assert ext.read_table(csv) == (
        ["variable", "lead_h", "crps"],
        [["z500", "6", "16.29"], ["z500", "12", "30.5"]],
    )
    assert ext.read_table(csv, columns=["crps"]) == (["crps"], [["16.29"], ["30.5"]])
    with pytest.raises(ValueError, match=r"no column\(s\) \['skill'\]"):
        ext.read_table(csv, columns=["skill"])
    nested = tmp_path / "summary.json"
    nested.write_text(json.dumps({"n": 48, "tuning": {"0.05": 0.3488, "0.1": 0.3119}}))
    assert ext.read_table(nested) == (
        ["quantity", "value"],
        [["n", "48"], ["tuning.0.05", "0.3488"], ["tuning.0.1", "0.3119"]],
    )
    records = tmp_path / "speed.json"
    records.write_text(json.dumps([{"model": "a", "s": 1.5}, {"model": "b", "mb": 3}]))
    assert ext.read_table(records) == (["model", "s", "mb"], [["a", "1.5", ""], ["b", "", "3"]])


def test_results_tables_select_a_part_of_a_file_and_lay_out_records(tmp_path):
    ext = _load(DOCS / "_ext" / "xfuxi_docs.py")
    result = tmp_path / "bench.json"
    result.write_text(json.dumps({
        "load": 1.5,
        "rows": [{"case": "a", "after": {"ms": 2.0, "eff": 0.5}},
                 {"case": "b", "after": {"ms": 4.0}}],
        "table": {"letkf": {"z500": {"rmse": 230.1, "spread": 179.3}, "t850": {"rmse": 2.1}}},
    }))  # fmt: skip
    # a list of records with nested cells: dotted columns
    assert ext.read_table(result, key="rows") == (
        ["case", "after.ms", "after.eff"],
        [["a", "2", "0.5"], ["b", "4", ""]],
    )
    # a mapping of names to flat mappings: one row per name
    assert ext.read_table(result, key="table.letkf") == (
        ["", "rmse", "spread"],
        [["z500", "230.1", "179.3"], ["t850", "2.1", ""]],
    )
    with pytest.raises(ValueError, match="no key 'table.lektf'"):
        ext.read_table(result, key="table.lektf")
    csv = tmp_path / "scores.csv"
    csv.write_text("variable,crps\nz500,16.3\n")
    with pytest.raises(ValueError, match=":key: needs a .json file"):
        ext.read_table(csv, key="rows")


def test_api_reference_lists_every_public_name_and_accessor_method():
    from xfuxi.api import PUBLIC, accessor_entries

    text = _load(DOCS / "_ext" / "xfuxi_docs.py").api_index()
    for entry in PUBLIC:
        assert f"\n   {entry.name}\n" in text
    for kind, cls in (("dataset", "Dataset"), ("dataarray", "DataArray")):
        for entry in accessor_entries(kind):
            assert f"\n   {cls}.fuxi.{entry.name}\n" in text
