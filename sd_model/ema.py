"""Export sweeps in the shapes the EMA Workbench's analysis functions take.

EMA's ``prim.Prim(x, y)``, ``cart.CART(x, y)`` and ``feature_scoring.get_feature_scores_all(x,
outcomes)`` take the *experiments* as a DataFrame (one row per run, one column per
uncertainty or lever) and the *outcomes* as a dict of arrays: ``(n_experiments,)`` for
scalar outcomes and ``(n_experiments, n_times)`` for time series, with the time axis
itself under ``"TIME"`` (as EMA's Vensim connector returns it).

>>> experiments, outcomes = to_ema(ds)  # doctest: +SKIP
>>> from ema_workbench.analysis import prim  # doctest: +SKIP
>>> y = outcomes["total_population"][:, -1] > 2e6  # doctest: +SKIP
>>> box = prim.Prim(experiments, y, threshold=0.8).find_box()  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from sd_model._errors import SDModelError

_DIAGNOSTICS = ("status", "error")


def _lead_dims(ds: xr.Dataset) -> list[str]:
    """The sweep dims: grid parameters (coords marked ``sd_sweep``) and ``scenario``."""
    dims = [str(d) for d in ds.dims if d in ds.coords and ds[d].attrs.get("sd_sweep") == "grid"]
    if "scenario" in ds.dims:
        dims.append("scenario")
    return dims


def to_ema(
    ds: xr.Dataset,
    *,
    outcomes: Sequence[str] | None = None,
    at_time: float | None = None,
    drop_failed: bool = True,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Experiments and outcomes of a sweep, as EMA Workbench analyses take them.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`sd_model.sweep` (in memory or opened from a store).
    outcomes : sequence of str, optional
        Variables to export (Python names); default all.
    at_time : float, optional
        Export time series at this one time (nearest saved time) as scalar outcomes,
        which is what PRIM and CART need as ``y``.
    drop_failed : bool
        Leave out scenarios whose ``status`` is not 0 (failed or not run); EMA's
        analyses do not accept NaN.

    Returns
    -------
    experiments : pandas.DataFrame
        One row per scenario (grid points in C order, then samples), one float column per
        swept parameter, named by its coordinate (``transfer_intensity``,
        ``productivity_North``): grid parameters in the order of the sweep's dims, then
        sampled parameters in alphabetical order (the same for a sweep in memory and
        one read back from a store).
    outcomes : dict of str to numpy.ndarray
        ``(n_experiments,)`` for scalar outcomes, ``(n_experiments, n_times)`` for time
        series; a subscripted variable gives one outcome per element,
        ``"population[North]"``. ``"TIME"`` holds the saved times for each experiment.

    Raises
    ------
    SDModelError
        When ``ds`` is not a sweep, or an outcome is unknown.

    Examples
    --------
    >>> experiments, outcomes = to_ema(ds, outcomes=["population"])  # doctest: +SKIP
    >>> outcomes["population[North]"].shape  # doctest: +SKIP
    (320, 29)
    """
    lead = _lead_dims(ds)
    if not lead:
        raise SDModelError(
            "This dataset has no sweep dims (grid parameters or 'scenario'); "
            "to_ema takes the result of sd_model.sweep."
        )
    # One row per scenario: the sweep dims stacked in C order (grid points, then samples).
    flat = ds.stack(_experiment=lead)
    keep = np.ones(flat.sizes["_experiment"], dtype=bool)
    if drop_failed and "status" in flat:
        keep = np.asarray(flat["status"].values) == 0
    # Grid parameters in the order of the sweep's dims, then sampled ones by name: a
    # store lists its coordinates alphabetically, and a sweep read back from one must
    # give the same columns as the sweep in memory.
    grid_columns = [d for d in lead if d != "scenario"]
    sample_columns = sorted(
        str(name) for name, coord in ds.coords.items() if coord.attrs.get("sd_sweep") == "sample"
    )
    experiments = pd.DataFrame(
        {
            name: np.asarray(flat[name].values, dtype=float)[keep]
            for name in grid_columns + sample_columns
        }
    )

    names = (
        list(outcomes)
        if outcomes is not None
        else [str(v) for v in ds.data_vars if v not in _DIAGNOSTICS]
    )
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name not in ds.data_vars or name in _DIAGNOSTICS:
            raise SDModelError(
                f"Unknown outcome {name!r}; the sweep has "
                f"{', '.join(str(v) for v in ds.data_vars if v not in _DIAGNOSTICS)}."
            )
        da = flat[name]
        if at_time is not None and "time" in da.dims:
            da = da.sel(time=at_time, method="nearest")
        extra = [d for d in da.dims if d not in ("_experiment", "time")]
        da = da.transpose("_experiment", *(["time"] if "time" in da.dims else []), *extra)
        values = np.asarray(da.values, dtype=float)[keep]
        if not extra:
            out[name] = values
            continue
        labels = [[str(c) for c in ds[d].values] for d in extra]
        n_lead = 2 if "time" in da.dims else 1
        grid = values.reshape(*values.shape[:n_lead], -1)
        for k, combo in enumerate(itertools.product(*labels)):
            out[f"{name}[{','.join(combo)}]"] = grid[..., k]
    if "time" in ds.dims and (at_time is None):
        out["TIME"] = np.broadcast_to(
            np.asarray(ds["time"].values, dtype=float), (int(keep.sum()), ds.sizes["time"])
        ).copy()
    return experiments, out
