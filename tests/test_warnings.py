"""Warnings point at the user's line, through the ``.fuxi`` accessor too: with a fixed
stacklevel a call through the accessor was attributed to xfuxi/accessor.py, where Python
hides a DeprecationWarning (it showed only for the plain function)."""

import warnings

import matplotlib
import pytest

import xfuxi
from tests import tiny

matplotlib.use("Agg")


def _origins(call):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        call()
    return {(w.category, w.filename) for w in seen if "deprecated" in str(w.message)}


@pytest.mark.parametrize("through", ["function", "accessor"])
def test_deprecation_warnings_point_at_the_callers_line(through):
    model, ds = tiny.model(), tiny.dataset(3)
    kw = dict(model=model, n=2, steps=1, method="gaussian", progress=False)  # an old keyword
    field = ds["temperature"].isel(time=0).sel(level=500.0)
    if through == "function":
        ens = _origins(lambda: xfuxi.ensemble(ds, **kw))
        maps = _origins(lambda: xfuxi.plot_map(field, cmap="RdBu"))
    else:
        ens = _origins(lambda: ds.fuxi.ensemble(**kw))
        maps = _origins(lambda: field.fuxi.plot_map(cmap="RdBu"))
    assert ens == {(DeprecationWarning, __file__)}
    assert maps == {(DeprecationWarning, __file__)}


def test_user_stacklevel_counts_the_frames_inside_xfuxi():
    from xfuxi.config import user_stacklevel

    assert user_stacklevel() == 1  # called from outside xfuxi: the caller itself


def test_ensemble_names_a_wrong_keyword_not_a_private_function():
    """``members=`` for ``n=`` said "_prepare() missing 1 required keyword-only argument"."""
    model, ds = tiny.model(), tiny.dataset(3)
    with pytest.raises(TypeError, match=r"ensemble\(\) got an unexpected keyword argument "
                       r"'members' \(did you mean 'n'\?\)"):  # fmt: skip
        ds.fuxi.ensemble(model=model, members=2, steps=1)
    with pytest.raises(TypeError, match=r"ensemble\(\) missing the ensemble size n"):
        xfuxi.ensemble(ds, model=model, steps=1)


def test_misspelt_keywords_are_named_with_the_closest_name_and_the_right_function():
    """held_suarez(dayz=3) was named as WorldConfig.__init__'s keyword; the functions whose
    keywords are config fields (cycle, train_forecast, ...) proposed no correction."""
    with pytest.raises(TypeError, match=r"held_suarez\(\) got .* 'dayz' \(did you mean 'days'\?\)"):
        xfuxi.held_suarez(dayz=3)
    with pytest.raises(
        TypeError, match=r"lorenz96_twin\(\) .* 'n_cycle' \(did you mean 'n_cycles'"
    ):
        xfuxi.lorenz96_twin(n_cycle=2)


def test_an_en4dvar_summary_of_an_empty_cost_history():
    import numpy as np
    import pandas as pd
    import xarray as xr

    from xfuxi.assimilation.result import En4DVarResult

    t0 = np.array(["2001-01-01T12"], dtype="M8[ns]")
    state = xr.Dataset({"t": (("time",), [1.0])}, coords={"time": t0})
    trajectory = state.expand_dims(prediction_timedelta=pd.to_timedelta(["0h"]))
    diagnostics = xr.Dataset({"cost": ("iteration", np.array([], float))})
    res = En4DVarResult(state, trajectory, state, diagnostics)
    assert "J nan -> nan" in repr(res) and "J nan -&gt; nan" in res._repr_html_()


def test_a_config_summary_shows_a_network_by_its_class_and_size():
    """A VAEPerturbation's Jupyter summary printed the module's whole layer tree."""
    html = xfuxi.VAEPerturbation(tiny.vae(tiny.model()))._repr_html_()
    assert "Conv2d" not in html and "PerturbationVAE (" in html and " parameters)" in html
