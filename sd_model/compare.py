"""Compare runs: stack scenarios, tabulate regional disparity, measure historical fit.

:func:`compare` stacks runs of one model along a ``scenario`` dim; :func:`disparity_table`
reduces a variable over the regions into the disparity indices of :mod:`sd_model.metrics`
(CV, Williamson, Theil T and L, Gini, max/min) for every scenario and time;
:func:`fit_table` measures a simulation against observed data (MAPE, RMSPE, Theil's U1 and
Sterman's (1984) decomposition U^M, U^S, U^C) per series and region. ``cmd_compare`` is
the ``sd-model compare`` command.

Examples
--------
>>> import sd_model
>>> from sd_model.compare import compare, disparity_table
>>> runs = {n: sd_model.Scenario.from_yaml(f"scenarios/{n}.yaml").run()
...         for n in ("baseline", "equalization")}  # doctest: +SKIP
>>> both = compare(runs, ["income_per_capita", "population"])  # doctest: +SKIP
>>> disparity_table(both, "income_per_capita", "population", times=[2030, 2050])  # doctest: +SKIP

The functions are generic: the variable, its weights and the dimension to reduce over are
the caller's (the Kazakhstan choices live in ``notebooks/kazakhstan_policies.ipynb`` and
the README). A dimension left out is inferred only when the variable has exactly one
besides ``time`` and the ``scenario`` dim of :func:`compare`.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import xarray as xr

from sd_model import metrics
from sd_model._errors import CompareError

__all__ = [
    "DISPARITY_INDICES",
    "CompareError",
    "add_compare_parser",
    "cmd_compare",
    "compare",
    "disparity_indices",
    "disparity_table",
    "fit_table",
    "infer_dim",
    "load_runs",
    "observed_dataset",
]

Join = Literal["exact", "inner", "outer"]
JOINS: tuple[str, ...] = get_args(Join)

DisparityIndex = Literal["cv", "williamson", "theil_t", "theil_l", "gini", "max_min"]
#: The indices of :func:`disparity_table`, in column order, with their display names.
DISPARITY_INDICES: dict[str, str] = {
    "cv": "coefficient of variation",
    "williamson": "Williamson index",
    "theil_t": "Theil T index",
    "theil_l": "Theil L index",
    "gini": "Gini coefficient",
    "max_min": "max/min ratio",
}

TABLE_FORMATS = {".csv": ",", ".tab": "\t", ".tsv": "\t"}

# Global attrs that differ between runs of one model without making them incomparable.
_RUN_ATTRS = ("scenario", "overrides", "created", "scenario_file", "scenario_description")


# --------------------------------------------------------------------------- helpers
def _closest(name: str, choices: Sequence[Hashable]) -> str:
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    return ""


def _check_var(ds: xr.Dataset, var: str, what: str = "the results") -> xr.DataArray:
    if var not in ds.data_vars:
        raise CompareError(f"No variable {var!r} in {what}{_closest(var, list(ds.data_vars))}")
    return ds[var]


# Dims that stack runs, times or quantiles: never the one a variable is reduced over.
_STACKING_DIMS = ("time", "scenario", "quantile")


def infer_dim(
    da: xr.DataArray,
    dim: str | None = None,
    *,
    what: str | None = None,
    required: bool = True,
) -> str | None:
    """The dimension of ``da`` to reduce over: ``dim`` when given, else the only candidate.

    Parameters
    ----------
    da : xarray.DataArray
        The variable (e.g. income per capita by region, time and scenario).
    dim : str, optional
        The dimension the caller names; checked to be one of ``da``'s.
    what : str, optional
        How to name ``da`` in messages (default: its name, quoted).
    required : bool, optional
        Raise when ``da`` has no candidate dimension (else return None).

    Returns
    -------
    str or None
        ``dim``, or the one dimension of ``da`` besides ``time``, ``scenario`` (the dim
        :func:`compare` adds) and ``quantile``; None when there is none and not
        ``required``.

    Raises
    ------
    CompareError
        ``dim`` is not a dimension of ``da``; several candidates (the message lists them);
        none when ``required``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> da = xr.DataArray(np.ones((2, 3)), dims=("time", "Region"), name="income")
    >>> infer_dim(da)
    'Region'
    """
    label = what or repr(str(da.name))
    dims = [str(d) for d in da.dims]
    if dim is not None:
        if dim not in dims:
            raise CompareError(
                f"{label} has dims {tuple(dims)}, not {dim!r}; pass dim= one of "
                f"{', '.join(map(repr, dims)) or '(none)'}."
            )
        return dim
    candidates = _candidate_dims(da)
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        raise CompareError(
            f"{label} has several dims to reduce over ({', '.join(map(repr, candidates))}); "
            f"say which: dim={candidates[0]!r} (--dim {candidates[0]} on the command line)."
        )
    if required:
        raise CompareError(
            f"{label} has dims {tuple(dims)}: none besides time and scenario to reduce over; "
            "pick a subscripted variable (e.g. one by region)."
        )
    return None


def _candidate_dims(da: xr.DataArray) -> list[str]:
    """``da``'s dims besides time, quantile and the runs' dim (:func:`compare`'s ``dim=``)."""
    return [
        str(d)
        for d in da.dims
        if d not in _STACKING_DIMS
        and not (d in da.coords and da[d].attrs.get("long_name") == "scenario")
    ]


def _label(da: xr.DataArray) -> str:
    """``long_name [units]`` of a result variable."""
    name = str(da.attrs.get("long_name") or da.name or "")
    units = str(da.attrs.get("units") or "")
    return f"{name} [{units}]" if units else name


# --------------------------------------------------------------------------- compare
def compare(
    datasets: Mapping[str, xr.Dataset],
    variables: Sequence[str] | None = None,
    *,
    dim: str = "scenario",
    join: Join = "exact",
    check_model: bool = True,
) -> xr.Dataset:
    """Stack runs of one model along a new ``scenario`` dimension.

    Parameters
    ----------
    datasets : mapping of str to xarray.Dataset
        Run name -> results of :meth:`sd_model.Model.run` (or files opened with
        :func:`sd_model.open_results`). The names become the ``scenario`` coordinate, in
        the mapping's order.
    variables : sequence of str, optional
        Variables to keep (Python-safe names, e.g. ``"income_per_capita"``). Default: every
        variable that all runs have.
    dim : str, optional
        Name of the new dimension.
    join : {"exact", "inner", "outer"}, optional
        How the runs' other coordinates (``time``, ``Region``) must agree: ``"exact"``
        (the default) requires the same times and elements; ``"inner"`` keeps the common
        ones; ``"outer"`` keeps all and fills the gaps with NaN.
    check_model : bool, optional
        Require every run to come from the same model file (equal ``model_sha256``
        attrs). Pass ``False`` to compare, e.g., two versions of a model.

    Returns
    -------
    xarray.Dataset
        Every variable gains the leading dim ``scenario``; variable attrs (``long_name``,
        ``units``...) are kept; global attrs are those all runs share, plus ``runs``: JSON
        text of each run's own attrs (scenario, overrides, creation time...).

    Raises
    ------
    CompareError
        No runs; runs of different models; a variable missing from a run; a run that
        already has the ``scenario`` dim; coordinates that differ under ``join="exact"``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> a = xr.Dataset({"x": ("time", np.array([1.0, 2.0]))}, coords={"time": [0.0, 1.0]})
    >>> both = compare({"low": a, "high": a * 10})
    >>> both["x"].sel(scenario="high").values.tolist()
    [10.0, 20.0]
    """
    if join not in JOINS:
        raise CompareError(f"Unknown join {join!r}; choose one of {', '.join(JOINS)}.")
    if not datasets:
        raise CompareError("compare() needs at least one run; got none.")
    names = list(datasets)
    runs = [datasets[n] for n in names]
    for name, ds in zip(names, runs, strict=True):
        if not isinstance(ds, xr.Dataset):
            raise CompareError(
                f"Run {name!r} is a {type(ds).__name__}, not an xarray.Dataset; "
                "pass the results of Model.run() or sd_model.open_results()."
            )
        if dim in ds.dims:
            raise CompareError(
                f"Run {name!r} already has a {dim!r} dimension (a sweep?); select one "
                f"scenario first, or compare with dim='another_name'."
            )
    if check_model:
        _check_same_model(names, runs)

    if variables is None:
        keep = [str(v) for v in runs[0].data_vars if all(v in ds.data_vars for ds in runs[1:])]
        if not keep:
            raise CompareError(f"Runs {', '.join(map(repr, names))} have no variable in common.")
    else:
        keep = [str(v) for v in variables]
        for name, ds in zip(names, runs, strict=True):
            for v in keep:
                if v not in ds.data_vars:
                    raise CompareError(
                        f"Run {name!r} has no variable {v!r}{_closest(v, list(ds.data_vars))}"
                    )

    selected = [ds[keep] for ds in runs]
    try:
        aligned = xr.align(*selected, join=join)
    except ValueError as exc:
        raise CompareError(_coord_mismatch(names, selected, exc)) from exc
    if any(a.sizes.get(d, 1) == 0 for a in aligned for d in a.dims):
        raise CompareError(
            f"Runs {', '.join(map(repr, names))} have no {'/'.join(map(str, aligned[0].dims))} "
            "values in common."
        )
    out = xr.concat(
        aligned,
        # A NumPy string coordinate (not pandas' string dtype): netCDF-storable.
        dim=xr.DataArray(np.array(names, dtype=str), dims=dim, name=dim),
        data_vars="all",
        coords="minimal",
        compat="override",
        combine_attrs="drop",
    )
    for v in keep:
        out[v].attrs = dict(runs[0][v].attrs)
    out[dim].attrs = {"long_name": "scenario"}
    out.attrs = _shared_attrs(names, runs)
    return out


def _check_same_model(names: list[str], runs: list[xr.Dataset]) -> None:
    shas = [ds.attrs.get("model_sha256") for ds in runs]
    if all(s is None for s in shas):
        return  # hand-built Datasets carry no provenance
    if len(set(shas)) == 1:
        return
    lines = []
    for name, ds, sha in zip(names, runs, shas, strict=True):
        file = ds.attrs.get("model_file", "unknown model file")
        lines.append(f"{name!r}: {file}, sha256 {str(sha)[:12] if sha else 'missing'}")
    raise CompareError(
        "Runs come from different models (" + "; ".join(lines) + "). Compare runs of one "
        "model file, or pass check_model=False (--any-model on the command line) to compare "
        "different model versions."
    )


def _coord_mismatch(names: list[str], runs: list[xr.Dataset], exc: Exception) -> str:
    for d in runs[0].dims:
        first = runs[0].indexes.get(d)
        for name, ds in zip(names[1:], runs[1:], strict=True):
            other = ds.indexes.get(d)
            if first is not None and other is not None and not first.equals(other):
                return (
                    f"Runs {names[0]!r} and {name!r} have different {d!r} coordinates "
                    f"({_describe_index(first)} vs {_describe_index(other)}); use join='inner' "
                    "to compare the common values."
                )
    return f"Runs {', '.join(map(repr, names))} cannot be aligned: {exc}"


def _describe_index(idx: pd.Index) -> str:
    if len(idx) and np.issubdtype(idx.dtype, np.number):
        return f"{len(idx)} values, {idx.min():g} to {idx.max():g}"
    return f"{len(idx)} values"


def _shared_attrs(names: list[str], runs: list[xr.Dataset]) -> dict[str, Any]:
    shared: dict[str, Any] = {}
    for key, value in runs[0].attrs.items():
        if key in _RUN_ATTRS:
            continue
        if all(key in ds.attrs and _same(ds.attrs[key], value) for ds in runs[1:]):
            shared[key] = value
    per_run = {}
    for name, ds in zip(names, runs, strict=True):
        per_run[name] = {
            k: _plain(v) for k, v in ds.attrs.items() if k not in shared and k != "title"
        }
    shared["runs"] = json.dumps(per_run, sort_keys=True, default=str)
    return shared


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.all(np.asarray(a) == np.asarray(b)))
    except (TypeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def load_runs(paths: Sequence[str | os.PathLike[str]]) -> dict[str, xr.Dataset]:
    """Open result files and name each run by its scenario (or its file name).

    Parameters
    ----------
    paths : sequence of path-like
        netCDF files or zarr stores written by sd_model.

    Returns
    -------
    dict of str to xarray.Dataset
        Run name -> Dataset, in the order given; the name is the ``scenario`` attr, or the
        file's stem when that is empty or shared by several files.

    Examples
    --------
    >>> runs = load_runs(["results/baseline.nc", "results/equalization.nc"])  # doctest: +SKIP
    >>> list(runs)  # doctest: +SKIP
    ['baseline', 'equalization']
    """
    from sd_model.results import open_results

    opened = [(Path(p), open_results(p)) for p in paths]
    labels = [str(ds.attrs.get("scenario") or "") or p.stem for p, ds in opened]
    if len(set(labels)) < len(labels):
        labels = [p.stem for p, _ in opened]
    if len(set(labels)) < len(labels):
        labels = [str(p) for p, _ in opened]
    if len(set(labels)) < len(labels):
        raise CompareError(f"The same file is given twice: {', '.join(labels)}.")
    return {label: ds for label, (_, ds) in zip(labels, opened, strict=True)}


# --------------------------------------------------------------------------- disparity
def disparity_indices(
    ds: xr.Dataset,
    var: str,
    weight: str | xr.DataArray | None,
    *,
    dim: str | None = None,
    times: Any = None,
) -> xr.Dataset:
    """The disparity indices of one variable across regions, as a Dataset.

    The same as :func:`disparity_table` but keeps xarray's labels (one variable per
    index, dims ``scenario``/``time``...), for plotting and further arithmetic.

    Parameters
    ----------
    ds : xarray.Dataset
        A run, or runs stacked by :func:`compare` (any extra dims are kept).
    var, weight, dim, times
        As in :func:`disparity_table`.

    Returns
    -------
    xarray.Dataset
        Variables ``cv``, ``williamson``, ``theil_t``, ``theil_l``, ``gini`` and
        ``max_min``, each reduced over ``dim``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset({"income_per_capita": ("Region", np.array([1.0, 3.0])),
    ...                  "population": ("Region", np.array([3.0, 1.0]))})
    >>> d = disparity_indices(ds, "income_per_capita", "population")
    >>> round(float(d["williamson"]), 6)
    0.57735
    """
    y = _check_var(ds, var)
    dim = infer_dim(y, dim)
    assert dim is not None
    if isinstance(weight, str):
        w: xr.DataArray | None = _check_var(ds, weight)
        assert w is not None
        if dim not in w.dims:
            raise CompareError(f"Weight {weight!r} has no {dim!r} dimension.")
    else:
        w = weight
    if w is not None:
        y, w = xr.broadcast(y, w)
    if times is not None:
        y = _select_times(y, times)
        w = _select_times(w, times) if w is not None else None
    y = y.load()
    w = w.load() if w is not None else None
    weights = w if w is not None else xr.ones_like(y)
    if bool((y <= 0).any()):
        bad = "Theil T and L, and the max/min ratio, need positive values"
        raise CompareError(f"{var!r} has values <= 0; {bad}.")
    out = xr.Dataset(
        {
            "cv": metrics.coefficient_of_variation(y, dim=dim),
            "williamson": metrics.williamson_index(y, weights, dim=dim),
            "theil_t": metrics.theil_index(y, w, dim=dim),
            "theil_l": metrics.theil_l(y, w, dim=dim),
            "gini": metrics.gini(y, w, dim=dim),
            "max_min": metrics.max_min_ratio(y, dim=dim),
        }
    )
    weight_name = weight if isinstance(weight, str) else ("given weights" if w is not None else "")
    for key, title in DISPARITY_INDICES.items():
        unweighted = key in ("cv", "max_min") or w is None
        out[key].attrs = {
            "long_name": f"{title} of {y.attrs.get('long_name') or var}",
            "units": "Dmnl",
            "description": f"{'' if unweighted else 'weighted '}{title} of {var} across {dim}"
            + ("" if unweighted else f", weighted by {weight_name}"),
        }
    out.attrs = {"variable": var, "weight": weight_name, "dim": dim}
    return out


def _select_times(da: xr.DataArray, times: Any) -> xr.DataArray:
    if "time" not in da.dims:
        raise CompareError(f"{da.name!r} has no time dimension to select times from.")
    if isinstance(times, slice):
        return da.sel(time=times)
    wanted = np.atleast_1d(np.asarray(times, dtype=float))
    have = da["time"].values
    missing = [t for t in wanted if not np.any(np.isclose(have, t, rtol=0, atol=1e-9))]
    if missing:
        raise CompareError(
            f"No saved time {', '.join(f'{t:g}' for t in missing)}; the results have "
            f"{len(have)} times from {have.min():g} to {have.max():g}."
        )
    return da.sel(time=wanted, method="nearest")


def disparity_table(
    ds: xr.Dataset,
    var: str,
    weight: str | xr.DataArray | None,
    *,
    dim: str | None = None,
    times: Any = None,
) -> pd.DataFrame:
    """Regional disparity indices of a variable, per scenario and time.

    Parameters
    ----------
    ds : xarray.Dataset
        A run, or runs stacked by :func:`compare`.
    var : str
        The per-capita variable to compare across regions (e.g. ``"income_per_capita"``).
    weight : str or xarray.DataArray or None
        Population weights: a variable of ``ds`` (e.g. ``"population"``), an array, or
        ``None`` for equal weights. The CV and max/min ratio are always unweighted.
    dim : str, optional
        The regional dimension reduced over; default: ``var``'s only dimension besides
        ``time`` and ``scenario`` (see :func:`infer_dim`).
    times : float, sequence of float or slice, optional
        Saved times to report (default: all).

    Returns
    -------
    pandas.DataFrame
        Indexed by the remaining dims (e.g. ``scenario`` and ``time``); columns ``cv``,
        ``williamson``, ``theil_t``, ``theil_l``, ``gini``, ``max_min``
        (:data:`DISPARITY_INDICES`), computed by :mod:`sd_model.metrics`.

    Raises
    ------
    CompareError
        Unknown variable, a variable without ``dim`` (or, with ``dim`` left out, with no
        or several candidates), times that were not saved, or non-positive values.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset(
    ...     {"income_per_capita": (("time", "Region"), np.array([[1.0, 3.0], [2.0, 2.0]])),
    ...      "population": (("time", "Region"), np.array([[3.0, 1.0], [1.0, 1.0]]))},
    ...     coords={"time": [2022.0, 2023.0], "Region": ["A", "B"]})
    >>> disparity_table(ds, "income_per_capita", "population")["williamson"].round(6).tolist()
    [0.57735, 0.0]
    """
    indices = disparity_indices(ds, var, weight, dim=dim, times=times)
    cols = list(DISPARITY_INDICES)
    order = list(indices["williamson"].dims)
    if order:
        table = indices.to_dataframe(dim_order=order)[cols]
    else:
        table = pd.DataFrame([{c: float(indices[c]) for c in cols}])
    table.attrs = dict(indices.attrs)
    return table


# --------------------------------------------------------------------------- fit
def observed_dataset(
    observed: pd.DataFrame | xr.Dataset,
    *,
    region_dim: str | None = None,
) -> xr.Dataset:
    """Observed data as a Dataset with dims ``time`` (and ``region_dim``).

    Parameters
    ----------
    observed : pandas.DataFrame or xarray.Dataset
        A Dataset is returned as it is. A DataFrame is either *long* with columns
        ``variable``, ``value``, a time column (``time`` or ``year``) and optionally a
        region column (``region`` or the name of ``region_dim``), like
        ``models/data/harmonised_series.csv``; or *wide*: indexed by time with one column
        per variable.
    region_dim : str, optional
        Name of the regional dimension in the simulation (e.g. ``"Region"``), which the
        region column becomes; required when a long DataFrame has a region column.

    Returns
    -------
    xarray.Dataset
        One variable per series, time as float.

    Raises
    ------
    CompareError
        A DataFrame in neither layout, duplicate observations, or a region column
        without ``region_dim``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"region": ["A", "A"], "year": [2010, 2011],
    ...                    "variable": ["population", "population"], "value": [1.0, 2.0]})
    >>> observed_dataset(df, region_dim="Region")["population"].sel(Region="A").values.tolist()
    [1.0, 2.0]
    """
    if isinstance(observed, xr.Dataset):
        return observed
    if not isinstance(observed, pd.DataFrame):
        raise CompareError(
            f"Observed data must be a pandas DataFrame or an xarray Dataset, "
            f"not {type(observed).__name__}."
        )
    df = observed
    if {"variable", "value"} <= set(df.columns):
        time_col = next((c for c in ("time", "year", "Time", "Year") if c in df.columns), None)
        if time_col is None:
            raise CompareError(
                "Observed data in long layout needs a 'time' or 'year' column; "
                f"it has {', '.join(map(str, df.columns))}."
            )
        names = ("region",) if region_dim is None else ("region", region_dim)
        region_col = next((c for c in names if c in df.columns), None)
        if region_col is not None and region_dim is None:
            raise CompareError(
                f"Observed data has a {region_col!r} column; say which dimension of the "
                "simulation it is: region_dim='Region' (the name of the model's subscript)."
            )
        keys = ["variable", time_col] + ([region_col] if region_col else [])
        dup = df.duplicated(keys)
        if dup.any():
            first = df.loc[dup, keys].iloc[0].tolist()
            raise CompareError(f"Observed data has duplicate rows for {first}.")
        tidy = df[[*keys, "value"]].rename(columns={time_col: "time"})
        tidy["time"] = tidy["time"].astype(float)
        index = ["time"]
        if region_col is not None and region_dim is not None:
            tidy = tidy.rename(columns={region_col: region_dim})
            index.append(region_dim)
        wide = tidy.set_index(["variable", *index])["value"].unstack("variable")
        out = xr.Dataset.from_dataframe(wide)
        return out
    wide = df.copy()
    wide.index = pd.Index(np.asarray(wide.index, dtype=float), name="time")
    return xr.Dataset.from_dataframe(wide)


def fit_table(
    simulated: xr.Dataset,
    observed: pd.DataFrame | xr.Dataset,
    variables: Mapping[str, str] | Sequence[str] | None = None,
    *,
    region_dim: str | None = None,
    times: Any = None,
) -> pd.DataFrame:
    """Fit statistics of a simulation against observed series, per series and region.

    Parameters
    ----------
    simulated : xarray.Dataset
        A run (e.g. the hindcast, ``scenarios/hindcast.yaml``).
    observed : pandas.DataFrame or xarray.Dataset
        Observed data (see :func:`observed_dataset` for the layouts), e.g.
        ``models/data/harmonised_series.csv``.
    variables : mapping or sequence of str, optional
        Observed name -> simulated name (``{"grp_real": "grp"}``), or names shared by
        both. Default: every observed series the simulation has under the same name.
    region_dim : str, optional
        The regional dimension; default: the one dimension besides ``time`` that the
        compared simulated variables have (none for national series; an error, listing
        them, when there are several).
    times : slice or sequence of float, optional
        The window to measure (e.g. ``slice(2010, 2018)``); default: every time both have.

    Returns
    -------
    pandas.DataFrame
        One row per series and region (``region`` is ``""`` for national series), columns
        ``series``, ``variable``, ``region``, ``n`` (points compared), ``mape_pct``,
        ``rmspe_pct``, ``theil_u1``, ``mse``, ``um``, ``us``, ``uc``, from
        :mod:`sd_model.metrics`; ``um + us + uc = 1`` (Sterman 1984).

    Raises
    ------
    CompareError
        No series in common, an unknown name, no time in common, or several candidate
        regional dimensions.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> sim = xr.Dataset({"population": ("time", np.array([2.0, 3.0, 4.0]))},
    ...                  coords={"time": [2010.0, 2011.0, 2012.0]})
    >>> obs = pd.DataFrame({"population": [1.0, 2.0, 3.0]}, index=[2010, 2011, 2012])
    >>> row = fit_table(sim, obs).iloc[0]
    >>> float(row["um"]), float(row["mse"])
    (1.0, 1.0)
    """
    if variables is None:
        observed_names = _observed_names(observed)
        pairs = {v: v for v in observed_names if v in simulated.data_vars}
        if not pairs:
            raise CompareError(
                f"No observed series ({', '.join(observed_names)}) has a simulated "
                "variable of the same name; pass variables={'observed': 'simulated'}."
            )
    elif isinstance(variables, Mapping):
        pairs = {str(k): str(v) for k, v in variables.items()}
    else:
        pairs = {str(v): str(v) for v in variables}
    if region_dim is None:
        region_dim = _common_region_dim(simulated, pairs.values())
    obs = observed_dataset(observed, region_dim=region_dim)
    rows: list[dict[str, Any]] = []
    for obs_name, sim_name in pairs.items():
        a = _check_var(obs, obs_name, "the observed data")
        s = _check_var(simulated, sim_name, "the simulation")
        if "time" not in s.dims or "time" not in a.dims:
            raise CompareError(f"{sim_name!r} and {obs_name!r} both need a time dimension.")
        s = s.assign_coords(time=s["time"].astype(float))
        a = a.assign_coords(time=a["time"].astype(float))
        if times is not None:
            s, a = _window(s, times), _window(a, times)
        s, a = xr.align(s, a, join="inner")
        if s.sizes["time"] == 0:
            raise CompareError(f"{sim_name!r} and observed {obs_name!r} have no time in common.")
        extra = [d for d in s.dims if d != "time" and d != region_dim]
        if extra:
            raise CompareError(
                f"{sim_name!r} has extra dims {extra}; select one run before fit_table()."
            )
        s = s.transpose("time", ...).load()
        a = a.transpose(*s.dims).load()
        n = (s.notnull() & a.notnull()).sum("time")
        stats = {
            "mape_pct": metrics.mape(s, a, dim="time"),
            "rmspe_pct": metrics.rmspe(s, a, dim="time"),
            "theil_u1": metrics.theil_u1(s, a, dim="time"),
            **metrics.theil_u_decomposition(s, a, dim="time"),
        }
        regions = s[region_dim].values.tolist() if region_dim in s.dims else [""]
        for i, region in enumerate(regions):
            pick = {region_dim: i} if region_dim in s.dims else {}
            row: dict[str, Any] = {
                "series": obs_name,
                "variable": sim_name,
                "region": str(region),
                "n": int(n.isel(pick)),
            }
            for key, da in stats.items():
                row[key] = float(np.asarray(da.isel(pick)))
            rows.append(row)
    columns = ["series", "variable", "region", "n", "mape_pct", "rmspe_pct", "theil_u1"]
    columns += ["mse", "um", "us", "uc"]
    return pd.DataFrame(rows, columns=columns)


def _observed_names(observed: pd.DataFrame | xr.Dataset) -> list[str]:
    """The series names of observed data in either layout (before any reshaping)."""
    if isinstance(observed, xr.Dataset):
        return [str(v) for v in observed.data_vars]
    if isinstance(observed, pd.DataFrame):
        if {"variable", "value"} <= set(observed.columns):
            return [str(v) for v in pd.unique(observed["variable"])]
        return [str(c) for c in observed.columns]
    return []  # observed_dataset() names the wrong type


def _common_region_dim(simulated: xr.Dataset, names: Any) -> str | None:
    """The one non-time dim of the simulated variables (None: all national)."""
    found: dict[str, None] = {}
    for name in names:
        if name in simulated.data_vars:
            found.update(dict.fromkeys(_candidate_dims(simulated[name])))
    if len(found) > 1:
        raise CompareError(
            f"The simulated variables have several regional dims ({', '.join(map(repr, found))}); "
            f"say which one the observed regions are: region_dim={next(iter(found))!r}."
        )
    return next(iter(found), None)


def _window(da: xr.DataArray, times: Any) -> xr.DataArray:
    if isinstance(times, slice):
        return da.sel(time=times)
    wanted = np.atleast_1d(np.asarray(times, dtype=float))
    return da.sel(time=da["time"].values[np.isin(da["time"].values, wanted)])


# --------------------------------------------------------------------------- CLI
def add_compare_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``compare`` sub-command to ``sd-model``'s sub-parsers.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The result of ``parser.add_subparsers()``.

    Returns
    -------
    argparse.ArgumentParser
        The ``compare`` parser; its ``func`` default is :func:`cmd_compare`.

    Examples
    --------
    >>> p = argparse.ArgumentParser(prog="sd-model")
    >>> _ = add_compare_parser(p.add_subparsers(dest="command"))
    >>> p.parse_args(["compare", "a.nc", "b.nc", "--var", "grp_per_capita"]).var
    'grp_per_capita'
    """
    p = subparsers.add_parser(
        "compare",
        help="disparity indices across regions for one or more runs",
        description="Tabulate regional disparity (CV, Williamson, Theil T/L, Gini, max/min) "
        "of a variable for each run and saved time.",
    )
    p.add_argument("runs", nargs="+", help="result files (.nc or .zarr) of runs of one model")
    p.add_argument(
        "--var",
        help="variable by region, e.g. income_per_capita (default: the runs' only "
        "subscripted variable; an error listing them when there are several)",
    )
    p.add_argument(
        "--weight",
        help="weight variable, e.g. population, or 'none' for equal weights (required)",
    )
    p.add_argument(
        "--dim",
        help="the dimension to reduce over, e.g. Region (default: the variable's only one "
        "besides time)",
    )
    p.add_argument(
        "--time",
        action="append",
        type=float,
        default=None,
        help="report only this saved time (repeatable; default: every time)",
    )
    p.add_argument(
        "--any-model",
        action="store_true",
        help="compare runs of different model files (skip the model_sha256 check)",
    )
    p.add_argument(
        "-o", "--output", help="write the table (.csv, .tab or .tsv) instead of printing"
    )
    p.set_defaults(func=cmd_compare)
    return p


def cmd_compare(args: argparse.Namespace) -> int:
    """Run ``sd-model compare``: print or write the disparity table.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed by the parser of :func:`add_compare_parser`.

    Returns
    -------
    int
        Exit status (0).

    Raises
    ------
    SDModelError
        Missing files, runs of different models, unknown variables or times, an unknown
        output extension.

    Examples
    --------
    >>> argv = ["compare", "b.nc", "e.nc", "--var", "income_per_capita", "--weight", "population"]
    >>> cmd_compare(parser.parse_args(argv))  # doctest: +SKIP
    0
    """
    from sd_model.results import write_atomic

    out = Path(args.output) if args.output is not None else None
    if out is not None and out.suffix.lower() not in TABLE_FORMATS:
        raise CompareError(
            f"Cannot write {out}: unknown extension {out.suffix!r}; use one of "
            f"{', '.join(sorted(TABLE_FORMATS))}."
        )
    runs = load_runs(args.runs)
    stacked = compare(runs, check_model=not args.any_model)
    var = args.var if args.var is not None else _only_regional_variable(stacked)
    if args.weight is None:
        raise CompareError(
            f"Say how to weight the regions for {var!r}: --weight VARIABLE (e.g. --weight "
            "population) or --weight none for equal weights."
        )
    weight = None if str(args.weight).lower() == "none" else args.weight
    table = disparity_table(stacked, var, weight, dim=args.dim, times=args.time)
    if out is None:
        title = _label(stacked[var])
        weights = f", weighted by {weight}" if weight else ", equal weights"
        print(f"Disparity of {title} across {table.attrs['dim']}{weights}:")
        with pd.option_context("display.max_rows", None, "display.width", 120):
            print(table.to_string(float_format=lambda x: f"{x:.4f}"))
        return 0
    sep = TABLE_FORMATS[out.suffix.lower()]
    write_atomic(out, lambda tmp: table.to_csv(tmp, sep=sep))
    print(f"wrote {out} ({len(table)} rows)")
    return 0


def _only_regional_variable(ds: xr.Dataset) -> str:
    """The one time-varying variable with a dim besides time and scenario, for ``--var``."""
    names = [str(v) for v, da in ds.data_vars.items() if "time" in da.dims and _candidate_dims(da)]
    if len(names) == 1:
        return names[0]
    shown = ", ".join(names[:12]) + (f" ... ({len(names)} in all)" if len(names) > 12 else "")
    raise CompareError(
        "Say which variable to compare: --var NAME; "
        + (f"the subscripted variables are {shown}." if names else "the runs have none by region.")
    )
