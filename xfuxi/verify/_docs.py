"""Docstring parts shared by the scores, so that each parameter is described once.

A docstring line holding only ``{{name}}`` (indented) is replaced by the part ``name``,
indented the same way (:func:`xfuxi.docstrings.docstring_parts` over :data:`DOC_PARTS`).
Used through :func:`fill_doc`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from ..config import check_flag, switch_kind
from ..docstrings import docstring_parts

__all__ = ["DOC_PARTS", "fill_doc", "score_doc"]

F = TypeVar("F", bound=Callable)

DOC_PARTS: dict[str, str] = {
    "forecast_truth": """\
forecast, truth : Dataset or DataArray
    Forecast and verifying truth, both Datasets or both DataArrays. On every shared dim
    but ``time`` (latitude, longitude, level, ...) the truth must hold exactly the
    forecast's values (in any order); it is taken at the forecast's times and may hold
    more. A forecast with ``prediction_timedelta`` is matched to a truth on ``time`` by
    valid time.""",
    "ensemble_truth": """\
forecast : Dataset or DataArray
    Ensemble forecast with an ensemble dimension (``number``, ``member`` or
    ``realization``).
truth : Dataset or DataArray
    Verifying truth without the ensemble dimension, matched as in :func:`~xfuxi.rmse`.""",
    "dim": """\
dim : str or list of str, optional
    Dimensions to reduce; ``None`` (default) reduces all.""",
    "member_dim": """\
member_dim : str, optional
    Name of the ensemble dimension; by default the first of the accepted names present.""",
    "weights": """\
weights : {"area"}, DataArray or None, default "area"
    ``"area"``: latitude area weights (:func:`~xfuxi.verify.weights.area_weights`) when
    ``latitude`` is reduced; a reduced latitude dim of another name (``lat``) is refused,
    not left unweighted: bring the data to xfuxi's names with :func:`xfuxi.validate` or
    ``.rename(lat="latitude", lon="longitude")``. A DataArray over reduced dims, finite,
    non-negative, not all zero, covering exactly the data's values on its dims (in any
    order); ``None``: unweighted.""",
    "skipna": """\
skipna : bool, default False
    Skip NaN in the averaging (their weight is dropped). With ``False`` any NaN gives
    NaN.""",
    "skipna_ensemble": """\
skipna : bool, default False
    ``True``: score each point over its valid (non-NaN) members only, the member count
    being the number of valid members there (a point with none, or with a NaN truth, is
    NaN and then skipped in the averaging, its weight dropped). ``False``: any NaN gives
    NaN. See the missing-data rules in the documentation (docs/verification.md).""",
    "region": """\
region : str, Region, dict, DataArray, list of those, or None, default None
    Score only inside a region: a name of :data:`xfuxi.verify.regions.REGIONS`
    (WeatherBench2's: ``"global"``, ``"tropics"``, ``"extra-tropics"``, ``"europe"``, ...),
    a :class:`~xfuxi.verify.regions.Region`, a box ``{"latitude": (south, north),
    "longitude": (west, east)}`` or a boolean or weight mask over reduced dims; a list
    gives one score per region along a new ``region`` dim. The region's dims must be
    reduced. Points outside it never make the score NaN. See docs/verification.md.""",
    "keep_attrs": """\
keep_attrs : bool, default False
    Keep the forecast's attributes.""",
    "raises_pair": """\
ValueError
    If the grids of forecast and truth differ, a variable or a (valid) time is missing
    from the truth, both carry a ``units`` attribute and they differ (spellings of one
    unit, "m/s" and "m s**-1", are the same), the weights are invalid or do not cover the
    grid, the default area
    weights are asked over a latitude named ``lat``, or ``dim`` names an unknown
    dimension.""",
    "raises_ensemble": """\
ValueError
    If there is no ensemble dimension, the truth has one, or as :func:`~xfuxi.rmse`.""",
    "raises_type": """\
TypeError
    If forecast or truth holds complex data; if a ``time`` holds cftime dates or carries
    a time zone where valid times are needed, or the other's ``time`` is of another kind
    (:func:`~xfuxi.verify.weights.prepare_pair`).""",
    "reduction": """\
The area-weighted mean over the reduced dims other than ``time`` is taken per time
first, then the mean over ``time`` (WeatherBench2's order). Defined in the
documentation, docs/design.md (Verification).""",
}

#: the options every score takes, and those with ``dim`` (the pair scores' whole tail)
DOC_PARTS["reduce_options"] = "\n".join(
    DOC_PARTS[k] for k in ("weights", "region", "skipna", "keep_attrs")
)
DOC_PARTS["score_options"] = DOC_PARTS["dim"] + "\n" + DOC_PARTS["reduce_options"]
#: the same for the ensemble scores (members may be skipped where NaN), and the options of
#: an ensemble score described by reference to :func:`~xfuxi.crps`
DOC_PARTS["ensemble_reduce_options"] = "\n".join(
    DOC_PARTS[k] for k in ("weights", "region", "skipna_ensemble", "keep_attrs")
)
DOC_PARTS["ensemble_options"] = (
    "dim, member_dim, weights, region, keep_attrs\n    As :func:`crps`.\n"
    + DOC_PARTS["skipna_ensemble"]
)


_fill = docstring_parts(DOC_PARTS)


def fill_doc(func: F) -> F:
    """Replace the ``{{name}}`` lines of ``func``'s docstring by :data:`DOC_PARTS`.

    Raises
    ------
    KeyError
        If a placeholder names no part (at import time, so it cannot go unnoticed).

    Examples
    --------
    The parts are looked up when the module is imported; a score's docstring shows them:

    >>> import inspect
    >>> from xfuxi.verify.probabilistic import crps
    >>> "{{" in crps.__doc__, DOC_PARTS["keep_attrs"] in inspect.cleandoc(crps.__doc__)
    (False, True)
    """
    return _checking_flags(_fill(func))


def _checking_flags(func: F) -> F:
    """``func``, refusing a keyword switch (a parameter annotated ``bool``) that is not True
    or False: ``fair="False"`` gave the fair score, ``skipna="no"`` skipped NaN."""
    params = inspect.signature(func).parameters.values()
    kinds = {
        p.name: switch_kind(p.annotation)
        for p in params
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }
    flags = {name: kind for name, kind in kinds.items() if kind is not None}
    if not flags:
        return func

    @functools.wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        for name in flags.keys() & kwargs.keys():
            check_flag(kwargs[name], name, allow_none=flags[name])
        return func(*args, **kwargs)

    return checked  # type: ignore[return-value]


#: the layout of the docstring of a score built by a factory (:func:`score_doc`)
_SCORE_DOC = """{summary}

    Parameters
    ----------
    {parameters}

    Returns
    -------
    Dataset or DataArray
        {returns}

    Raises
    ------
    {raises}

    Notes
    -----
    {notes}
    {{{{reduction}}}}

    Examples
    --------
    {example}
    """


def score_doc(func: F, name: str, **doc: str) -> F:
    """Name ``func`` and give it a score's docstring: ``doc`` in the shared layout.

    For the scores that factories build (several scores with one implementation), so that
    every score's docstring has the same sections in the same order.

    Parameters
    ----------
    func : callable
        The score.
    name : str
        Its public name (``__name__`` and ``__qualname__``).
    **doc : str
        ``summary``, ``parameters``, ``returns``, ``raises``, ``notes`` and ``example``, each
        with its continuation lines indented by four spaces; they may hold ``{{name}}``
        lines of :data:`DOC_PARTS` (filled by :func:`fill_doc`).

    Returns
    -------
    callable
        ``func``, named and documented.

    Examples
    --------
    >>> def f(): ...
    >>> f = score_doc(f, "zero", summary="Zero.", parameters="{{keep_attrs}}", returns="0.",
    ...               raises="Nothing.", notes="None.", example=">>> zero()")
    >>> f.__name__, f.__doc__.splitlines()[4].strip()
    ('zero', 'keep_attrs : bool, default False')
    """
    func.__name__ = func.__qualname__ = name
    func.__doc__ = _SCORE_DOC.format(**doc)
    return fill_doc(func)
