"""Provenance: the attrs every result carries, and the one JSON encoding of overrides.

Runs and sweeps record the same facts the same way, so a run and a sweep of the same
overrides can be compared (and an override recorded here can be given back to ``--set``
or a scenario's ``set:``: subscripted values are element-keyed mappings, time series are
time-keyed mappings).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sd_model.integrate import SolverOptions, TimeGrid
    from sd_model.model import Model


def jsonable(obj: Any) -> Any:
    """``obj`` as JSON-ready Python: element-keyed dicts for arrays, time-keyed for series.

    Parameters
    ----------
    obj : Any
        Numbers, strings, mappings, sequences, NumPy values, ``xarray.DataArray`` and
        ``pandas.Series``.

    Returns
    -------
    Any
    """
    import pandas as pd
    import xarray as xr

    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, xr.DataArray):
        if obj.ndim == 0:
            return float(obj)
        flat = obj.stack(_all=list(obj.dims)) if obj.ndim > 1 else obj
        keys = (
            [str(k) for k in obj.coords[obj.dims[0]].values]
            if obj.ndim == 1
            else [",".join(str(x) for x in idx) for idx in flat.indexes["_all"]]
        )
        return {k: jsonable(v) for k, v in zip(keys, flat.values.tolist(), strict=True)}
    if isinstance(obj, pd.Series):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def overrides_json(overrides: Mapping[str, Any] | None) -> str:
    """The JSON text recorded in the ``overrides`` attr (sorted keys)."""
    return json.dumps(jsonable(overrides or {}), sort_keys=True, default=str)


@cache
def _versions() -> dict[str, str]:
    # importlib.metadata reads files on every call: look once per process.
    from importlib.metadata import PackageNotFoundError, version

    import pysd
    import xarray as xr

    from sd_model import _version

    out = {
        "sd_model_version": _version.version(),
        "pysd_version": str(pysd.__version__),
        "numpy_version": np.__version__,
        "xarray_version": xr.__version__,
    }
    for name in ("scipy", "zarr"):
        try:
            out[f"{name}_version"] = version(name)
        except PackageNotFoundError:  # pragma: no cover - installed with sd_model
            out[f"{name}_version"] = ""
    return out


def provenance(
    model: Model,
    *,
    solver: SolverOptions,
    grid: TimeGrid,
    backend: str,
    note: str,
    scenario: str,
    overrides: Mapping[str, Any] | None,
    title: str,
    seed: int | None = None,
    tier: str = "",
    tier_note: str = "",
) -> dict[str, Any]:
    """The global attrs of a result: model, versions, solver, time grid, overrides.

    Parameters
    ----------
    model : Model
    solver : SolverOptions
    grid : TimeGrid
    backend : str
        The backend that ran.
    note : str
        Why the compiled backend was not used ('' otherwise).
    scenario : str
        The scenario's name.
    overrides : mapping or None
        As the user gave them (recorded with :func:`overrides_json`).
    title : str
    seed : int, optional
        The seed the RANDOM functions drew from (recorded as ``random_seed``; give it
        back as ``seed=`` to repeat the run). None: the model has no RANDOM function,
        and the attr is left out.
    tier, tier_note : str, optional
        The fixed-step implementation that ran and why faster ones did not (recorded as
        ``solver_tier`` and ``solver_tier_note`` when ``tier`` is given).

    Returns
    -------
    dict
        netCDF-storable values only (no None, dict or bool).
    """
    out = {
        "title": title,
        "model_file": model.path.name,
        "model_path": str(model.path),
        "model_sha256": model.sha256,
        **_versions(),
        "backend": backend,
        "backend_note": note,
        "solver_method": solver.method,
        "solver_rtol": solver.rtol,
        "solver_atol": solver.atol,
        "solver_max_step": solver.max_step if solver.max_step is not None else "",
        "initial_time": grid.initial_time,
        "final_time": grid.final_time,
        "time_step": grid.time_step,
        "saveper": grid.saveper,
        "time_units": model.time_units,
        "scenario": scenario,
        "overrides": overrides_json(overrides),
        "Conventions": "CF-1.8",
    }
    if seed is not None:
        out["random_seed"] = int(seed)
    if tier:
        out["solver_tier"] = tier
        out["solver_tier_note"] = tier_note
    return out
