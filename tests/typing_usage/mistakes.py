# ruff: noqa: F841  (the assignments are the mistakes)
"""Mistakes that mypy must flag, each with the error code its trailing comment names.

Never run (see usage.py); tests/test_typing.py checks that mypy reports exactly these.
"""

import xarray as xr

import xfuxi


def mistakes(ds: xr.Dataset) -> None:
    xfuxi.forcast(ds)  # error: [attr-defined]
    xfuxi.forecast(ds, steps="x")  # error: [arg-type]
    xfuxi.rmse(1, 2)  # error: [call-overload]
    xfuxi.forecast(ds, stepz=4)  # error: [call-arg]
    n: int = xfuxi.forecast(ds)  # error: [assignment]
    da: xr.DataArray = xfuxi.climatology(ds)  # error: [assignment]
    xfuxi.Cascade([xfuxi.load_model("fuxi-hs-t21-cascade")], switch_steps=[4])  # error: [list-item]
    t: xr.DataArray = xfuxi.regrid(ds, "T21")  # error: [assignment]
    v: xr.DataArray = xfuxi.validate(ds)  # error: [assignment]
