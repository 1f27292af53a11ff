"""The Jupyter experience (issue 23): HTML summaries, real accessor signatures, tqdm.auto."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

import xfuxi
from xfuxi.api import accessor_entries
from xfuxi.assimilation.result import En4DVarResult
from xfuxi.models.cascade import Cascade

from . import tiny


def test_accessor_signatures_have_no_quoted_annotations():
    # issue 23 item 3: `ds.fuxi.rmse?` showed 'XarrayObj', 'bool' ... as strings
    for kind, obj in (("dataset", xr.Dataset()), ("dataarray", xr.DataArray(np.zeros(1)))):
        for entry in accessor_entries(kind):
            sig = inspect.signature(getattr(obj.fuxi, entry.name))
            quoted = [p.name for p in sig.parameters.values() if isinstance(p.annotation, str)]
            assert not quoted, f"{kind}.fuxi.{entry.name}: quoted annotations of {quoted}"
            assert not isinstance(sig.return_annotation, str), entry.name
    sig = inspect.signature(xr.Dataset().fuxi.rmse)
    assert sig.parameters["skipna"].annotation is bool
    assert list(sig.parameters)[0] == "truth"  # the data argument is the object itself


def test_config_html_shows_fields_and_marks_changed_ones():
    out = xfuxi.Window(n_slots=3)._repr_html_()
    assert out.startswith('<div class="xfuxi-summary"><table>') and "<b>Window</b>" in out
    assert "<th" in out and "n_slots" in out and "<b>3</b>" in out  # changed from default
    assert "<b>False</b>" not in out  # increment_previous left at its default


def test_model_html_is_a_summary_not_a_module_tree():
    model = tiny.model()
    out = model._repr_html_()
    assert "ForecastModel &#x27;tiny&#x27;" in out
    assert "temperature@500" in out and "8 × 16" in out and "TinyNet" in out
    n_params = sum(p.numel() for p in model.parameters())
    assert f"{n_params:,} parameters" in out
    assert "Conv2d" not in out  # the torch module tree stays in repr(), not here
    cascade = Cascade([tiny.model(), tiny.model()], switch_steps=[2])
    out = cascade._repr_html_()
    assert "steps 1 to 2" in out and "steps 3 to end" in out


def _result() -> En4DVarResult:
    t0 = np.array(["2001-01-01T12"], dtype="M8[ns]")
    state = xr.Dataset({"temperature": (("time", "latitude"), [[250.0, 260.0]])},
                       coords={"time": t0, "latitude": [-45.0, 45.0]})  # fmt: skip
    traj = state.expand_dims(prediction_timedelta=pd.to_timedelta(["0h", "6h"]))
    diag = xr.Dataset(
        {"cost": ("iteration", [10.0, 2.5]), "n_rejected": ("reason", [0, 3])},
        coords={"reason": ["nan_value", "outside_grid"]},
        attrs={"method": "FuXi-En4DVar", "model": "tiny", "iterations": 1,
               "n_observations_used": 7, "message": "converged"},
    )  # fmt: skip
    return En4DVarResult(state, traj, state - state, diag)


def test_en4dvar_result_html_matches_its_text_summary():
    res = _result()
    text, out = repr(res), res._repr_html_()
    assert (
        text.splitlines()[0] == "En4DVarResult: FuXi-En4DVar analysis at 2001-01-01T12:00 with tiny"
    )
    assert "  minimisation: 1 iterations, J 10 -> 2.5 (converged)" in text.splitlines()
    assert "<b>En4DVarResult: FuXi-En4DVar analysis at 2001-01-01T12:00 with tiny</b>" in out
    assert "7 used, rejected {&#x27;outside_grid&#x27;: 3}" in out
    assert "leads +0 h, +6 h" in out
    # every line of the text summary is a row of the table
    assert out.count("<tr>") == len(text.splitlines()) - 1


def test_progress_bars_come_from_tqdm_auto():
    # widgets in a notebook, text elsewhere: every bar is tqdm.auto's
    root = Path(xfuxi.__file__).parent
    plain = re.compile(
        r"^\s*(from tqdm import|import tqdm\b|from tqdm\.(std|notebook) import)", re.M
    )
    offenders = [
        str(p.relative_to(root)) for p in root.rglob("*.py") if plain.search(p.read_text())
    ]
    assert not offenders, f"tqdm imported without tqdm.auto in {offenders}"
    from tqdm.auto import tqdm

    bar = xfuxi.options.progress_bar(3, False, "x")
    assert isinstance(bar, tqdm) and bar.disable
    bar.close()
