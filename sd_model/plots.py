"""Figures of results: regions over time, scenarios side by side, disparity, historical fit.

Every function draws with matplotlib (colours from seaborn palettes), labels the axes with
the variables' ``long_name`` and ``units`` attrs, and returns what it drew on (an ``Axes``,
or a ``Figure`` for the multi-panel :func:`plot_fit`). Nothing calls ``plt.show()`` and
nothing changes matplotlib's global style, so the functions work in notebooks, scripts and
headless (Agg) processes alike. ``cmd_plot`` is the ``sd-model plot`` command; it draws
on a ``matplotlib.figure.Figure`` without pyplot.

The functions are generic: the variable, the weights and the regional dimension are the
caller's; a dimension left out is inferred only when the variable has exactly one besides
``time`` and ``scenario`` (:func:`sd_model.compare.infer_dim`). matplotlib and seaborn are
the ``plot`` extra (``pip install 'sd_model[plot]'``), imported on first use.

Examples
--------
>>> import sd_model
>>> from sd_model.plots import plot_regions
>>> ds = sd_model.Scenario.from_yaml("scenarios/baseline.yaml").run()  # doctest: +SKIP
>>> ax = plot_regions(ds, "population", ["Astana", "Almaty city"], dim="Region")  # doctest: +SKIP
>>> ax.figure.savefig("population.png")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import difflib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

import numpy as np
import pandas as pd
import xarray as xr

from sd_model._errors import CompareError, PlotError, import_optional
from sd_model.compare import (
    DISPARITY_INDICES,
    compare,
    disparity_indices,
    infer_dim,
    load_runs,
    observed_dataset,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "PlotError",
    "add_plot_parser",
    "cmd_plot",
    "plot_backtest",
    "plot_calibration",
    "plot_disparity",
    "plot_fan",
    "plot_fit",
    "plot_regions",
    "plot_scenarios",
    "plot_sensitivity",
]

National = Literal["auto", "sum", "mean", "weighted"]
NATIONAL: tuple[str, ...] = get_args(National)

# Units that mark a variable as intensive (averaged, not summed, into a national value).
_DIMENSIONLESS = {"", "dmnl", "1", "dimensionless", "fraction", "%", "percent"}


# --------------------------------------------------------------------------- helpers
def _seaborn() -> Any:
    # Imported on first use: seaborn (and pyplot with it) costs about a second, which
    # every `sd-model` command would pay when the CLI builds its parsers; and it is an
    # optional dependency (the `plot` extra).
    return import_optional("seaborn", "plot", "sd_model.plots")


def _matplotlib(module: str) -> Any:
    """``matplotlib.<module>``, or an error naming the ``plot`` extra."""
    return import_optional(f"matplotlib.{module}", "plot", "sd_model.plots")


def _dim(da: xr.DataArray, dim: str | None, what: str) -> str | None:
    """``dim`` checked, or ``da``'s one regional dim (None for a national variable)."""
    try:
        return infer_dim(da, dim, what=what, required=False)
    except CompareError as exc:
        raise PlotError(str(exc)) from None


def _label(da: xr.DataArray, suffix: str = "") -> str:
    name = str(da.attrs.get("long_name") or da.name or "")
    units = str(da.attrs.get("units") or "")
    return f"{name}{suffix} [{units}]" if units else f"{name}{suffix}"


def _time_label(obj: xr.Dataset | xr.DataArray) -> str:
    units = str(obj["time"].attrs.get("units") or obj.attrs.get("time_units") or "")
    return f"time [{units}]" if units else "time"


def _variable(ds: xr.Dataset, var: str) -> xr.DataArray:
    if not isinstance(ds, xr.Dataset):
        raise PlotError(f"Expected an xarray.Dataset of results, got {type(ds).__name__}.")
    if var not in ds.data_vars:
        close = difflib.get_close_matches(var, [str(v) for v in ds.data_vars], n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise PlotError(f"No variable {var!r} in the results{hint}")
    da = ds[var]
    if "time" not in da.dims:
        raise PlotError(f"{var!r} is a constant (no time dimension); there is nothing to plot.")
    return da


def _check_elements(da: xr.DataArray, dim: str, elements: Sequence[str]) -> list[str]:
    have = [str(e) for e in da[dim].values]
    wanted = [str(e) for e in elements]
    for e in wanted:
        if e not in have:
            # Compared without case ("almaty city"); below 0.6 the "closest" name is noise
            # (0.5 pairs "Narnia" with "Astana"), so the valid names are listed instead.
            lowered = {h.lower(): h for h in have}
            close = [
                lowered[c] for c in difflib.get_close_matches(e.lower(), lowered, n=3, cutoff=0.6)
            ]
            if close:
                hint = f"; did you mean {' or '.join(map(repr, close))}?"
            else:
                hint = f"; the {dim} elements are {', '.join(have)}."
            raise PlotError(f"No {dim} {e!r} in {da.name!r}{hint}")
    return wanted


def _time_axis(ax: Axes, nbins: int | Literal["auto"] = "auto") -> None:
    # Saved times are usually whole years: no "2012.5" ticks.
    ax.xaxis.set_major_locator(_matplotlib("ticker").MaxNLocator(nbins=nbins, integer=True))


def _new_axes(ax: Axes | None, figsize: tuple[float, float] = (9.0, 5.0)) -> Axes:
    if ax is not None:
        return ax
    _, new = _matplotlib("pyplot").subplots(figsize=figsize, layout="constrained")
    return cast("Axes", new)


def _series_dim(da: xr.DataArray, what: str) -> str | None:
    """The one dim besides ``time`` whose values become separate lines (or None)."""
    others = [str(d) for d in da.dims if d != "time"]
    if len(others) > 1:
        raise PlotError(
            f"{what} has dims {tuple(map(str, da.dims))}; select all but one besides time "
            f"first, e.g. ds.sel({others[-1]}=...)."
        )
    return others[0] if others else None


def _draw_lines(
    ax: Axes,
    da: xr.DataArray,
    series_dim: str | None,
    *,
    palette: str | Sequence[Any] | None,
    label: str = "",
) -> None:
    times = np.asarray(da["time"].values, dtype=float)
    if series_dim is None:
        ax.plot(times, np.asarray(da.values, dtype=float), label=label or str(da.name))
        return
    keys = [str(k) for k in da[series_dim].values]
    colours = _seaborn().color_palette(palette, n_colors=len(keys))
    for i, (key, colour) in enumerate(zip(keys, colours, strict=True)):
        values = np.asarray(da.isel({series_dim: i}).values, dtype=float)
        ax.plot(times, values, label=key, color=colour)


def _legend(ax: Axes, n: int, title: str) -> None:
    if n <= 1:
        return
    if n > 8:
        ax.legend(
            title=title,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize="small",
            frameon=False,
            ncols=1 if n <= 24 else 2,
        )
    else:
        ax.legend(title=title, fontsize="small", frameon=False)


def _is_intensive(da: xr.DataArray) -> bool:
    units = str(da.attrs.get("units") or "").strip()
    if units.lower() in _DIMENSIONLESS:
        return True
    _, slash, denominator = units.partition("/")
    return bool(slash) and "person" in denominator.lower()


def _national(
    ds: xr.Dataset, da: xr.DataArray, how: National, weight: str | None, dim: str
) -> tuple[xr.DataArray, str]:
    """Aggregate ``da`` over ``dim``; returns the values and the label suffix."""
    if how not in NATIONAL:
        raise PlotError(f"Unknown national={how!r}; choose one of {', '.join(NATIONAL)}.")
    if how == "auto":
        how = "weighted" if _is_intensive(da) else "sum"
        if how == "weighted" and weight is None:
            units = str(da.attrs.get("units") or "")
            raise PlotError(
                f"{da.name!r} is a rate or a value per person (units {units!r}): its national "
                f"value is a mean over {dim}. Say how to weight it: weight='population' (a "
                "variable of the results; --weight on the command line), or national='mean' "
                "for equal weights."
            )
    if how == "sum":
        return da.sum(dim, skipna=False), f" (total over {dim})"
    if how == "mean":
        return da.mean(dim, skipna=False), f" (mean over {dim})"
    if weight is None or weight not in ds.data_vars:
        raise PlotError(
            f"national='weighted' needs a weight variable in the results; got {weight!r}."
        )
    w = ds[weight]
    if dim not in w.dims:
        raise PlotError(f"Weight {weight!r} has no {dim!r} dimension.")
    out = (da * w).sum(dim, skipna=False) / w.sum(dim, skipna=False)
    return out, f" ({weight}-weighted mean over {dim})"


# --------------------------------------------------------------------------- figures
def plot_regions(
    ds: xr.Dataset,
    var: str,
    regions: Sequence[str] | None = None,
    *,
    dim: str | None = None,
    ax: Axes | None = None,
    palette: str | Sequence[Any] | None = "husl",
) -> Axes:
    """One line per region of a variable over time.

    Parameters
    ----------
    ds : xarray.Dataset
        One run (results of :meth:`sd_model.Model.run`).
    var : str
        Variable name, e.g. ``"population"``. A variable without ``dim`` gives one line.
    regions : sequence of str, optional
        Elements of ``dim`` to draw (default: all).
    dim : str, optional
        The regional dimension (e.g. ``"Region"``); default: ``var``'s only dimension
        besides ``time``.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    palette : str or sequence, optional
        A seaborn palette name or list of colours.

    Returns
    -------
    matplotlib.axes.Axes
        The y axis is labelled ``long_name [units]``, the x axis ``time [units]``; the
        legend lists the regions by their value at the last time, highest first.

    Raises
    ------
    PlotError
        Unknown variable or region; a Dataset with more dims (select one scenario first);
        ``dim`` left out for a variable with several dims besides ``time``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset(
    ...     {"population": (("time", "Region"), np.ones((3, 2)), {"units": "persons"})},
    ...     coords={"time": [2022.0, 2023.0, 2024.0], "Region": ["A", "B"]})
    >>> ax = plot_regions(ds, "population")
    >>> len(ax.lines), ax.get_ylabel()
    (2, 'population [persons]')
    """
    da = _variable(ds, var)
    dim = _dim(da, dim, repr(var))
    if dim is not None:
        if regions is not None:
            da = da.sel({dim: _check_elements(da, dim, regions)})
        last = np.asarray(da.isel(time=-1).values, dtype=float)
        if da.ndim == 2:
            order = np.argsort(-np.nan_to_num(last, nan=-np.inf), kind="stable")
            da = da.isel({dim: order})
    elif regions is not None:
        raise PlotError(f"{var!r} has no regional dimension; drop the regions.")
    series = _series_dim(da, repr(var))
    ax = _new_axes(ax)
    _draw_lines(ax, da.transpose("time", ...), series, palette=palette)
    _time_axis(ax)
    ax.set_xlabel(_time_label(ds))
    ax.set_ylabel(_label(da))
    scen = str(ds.attrs.get("scenario") or "")
    ax.set_title(f"{da.attrs.get('long_name') or var}" + (f" ({scen})" if scen else ""))
    _legend(ax, da.sizes.get(series, 1) if series else 1, series or "")
    _seaborn().despine(ax=ax)
    return ax


def plot_scenarios(
    compared: xr.Dataset,
    var: str,
    region: str | None = None,
    *,
    national: National = "auto",
    weight: str | None = None,
    dim: str | None = None,
    ax: Axes | None = None,
    palette: str | Sequence[Any] | None = "colorblind",
) -> Axes:
    """One line per scenario of a variable, for one region or the whole country.

    Parameters
    ----------
    compared : xarray.Dataset
        Runs stacked by :func:`sd_model.compare.compare` (dim ``scenario``), or a sweep.
    var : str
        Variable name.
    region : str, optional
        An element of ``dim``; default: the national value (see ``national``).
    national : {"auto", "sum", "mean", "weighted"}, optional
        How a regional variable becomes national when ``region`` is None: ``"sum"``
        (population, GRP), ``"weighted"`` mean by ``weight`` (per-capita values),
        ``"mean"`` unweighted. ``"auto"`` takes ``"weighted"`` for dimensionless units
        and units per person (which then needs ``weight``), else ``"sum"``.
    weight : str, optional
        Weight variable for ``national="weighted"`` (e.g. ``"population"``).
    dim : str, optional
        The regional dimension (e.g. ``"Region"``); default: ``var``'s only dimension
        besides ``time`` and ``scenario``.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    palette : str or sequence, optional
        A seaborn palette name or list of colours.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    PlotError
        Unknown variable or region, an unknown ``national``, a weighted national value
        without ``weight``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from sd_model.compare import compare
    >>> run = xr.Dataset({"gdp": ("time", np.array([1.0, 2.0]), {"units": "bn KZT"})},
    ...                  coords={"time": [2022.0, 2023.0]})
    >>> ax = plot_scenarios(compare({"base": run, "policy": run * 1.1}), "gdp")
    >>> [line.get_label() for line in ax.lines]
    ['base', 'policy']
    """
    da = _variable(compared, var)
    suffix = ""
    where = ""
    dim = _dim(da, dim, repr(var))
    if dim is not None:
        if region is None:
            da, suffix = _national(compared, da, national, weight, dim)
            da.attrs = dict(compared[var].attrs)
        else:
            (region,) = _check_elements(da, dim, [region])
            da = da.sel({dim: region})
            where = f", {region}"
    elif region is not None:
        raise PlotError(f"{var!r} is national (no regional dimension); drop region={region!r}.")
    series = _series_dim(da, repr(var))
    ax = _new_axes(ax)
    _draw_lines(ax, da.transpose("time", ...), series, palette=palette)
    _time_axis(ax)
    ax.set_xlabel(_time_label(compared))
    ax.set_ylabel(_label(da))
    ax.set_title(f"{da.attrs.get('long_name') or var}{where}{suffix}")
    _legend(ax, da.sizes.get(series, 1) if series else 1, series or "")
    _seaborn().despine(ax=ax)
    return ax


def plot_disparity(
    data: xr.Dataset,
    index: str = "williamson",
    *,
    var: str,
    weight: str | None,
    dim: str | None = None,
    ax: Axes | None = None,
    palette: str | Sequence[Any] | None = "colorblind",
) -> Axes:
    """A regional disparity index over time, one line per scenario.

    Parameters
    ----------
    data : xarray.Dataset
        One run, or runs stacked by :func:`sd_model.compare.compare`.
    index : {"williamson", "cv", "theil_t", "theil_l", "gini", "max_min"}, optional
        The index (computed by :mod:`sd_model.metrics`).
    var : str
        The per-capita variable whose disparity across ``dim`` is measured (e.g.
        ``"income_per_capita"``).
    weight : str or None
        Population weights (e.g. ``"population"``; ``None``: equal weights).
    dim : str, optional
        The regional dimension; default: ``var``'s only dimension besides ``time`` and
        ``scenario``.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    palette : str or sequence, optional
        A seaborn palette name or list of colours.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    PlotError
        Unknown index.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset(
    ...     {"income_per_capita": (("time", "Region"), [[1.0, 3.0], [2.0, 2.0]]),
    ...      "population": (("time", "Region"), [[3.0, 1.0], [1.0, 1.0]])},
    ...     coords={"time": [2022.0, 2023.0], "Region": ["A", "B"]})
    >>> ax = plot_disparity(ds, var="income_per_capita", weight="population")
    >>> ax.lines[0].get_ydata().round(4).tolist()
    [0.5774, 0.0]
    """
    if index not in DISPARITY_INDICES:
        raise PlotError(f"Unknown index {index!r}; choose one of {', '.join(DISPARITY_INDICES)}.")
    da = disparity_indices(data, var, weight, dim=dim)[index]
    series = _series_dim(da, f"The {index} index of {var!r}")
    ax = _new_axes(ax)
    label = str(data.attrs.get("scenario") or index) if series is None else ""
    _draw_lines(ax, da.transpose("time", ...), series, palette=palette, label=label)
    _time_axis(ax)
    ax.set_xlabel(_time_label(data))
    ax.set_ylabel(_label(da))
    ax.set_title(str(da.attrs.get("long_name")))
    _legend(ax, da.sizes.get(series, 1) if series else 1, series or "")
    _seaborn().despine(ax=ax)
    return ax


def plot_fit(
    simulated: xr.Dataset,
    observed: pd.DataFrame | xr.Dataset,
    var: str,
    regions: Sequence[str] | None = None,
    *,
    observed_var: str | None = None,
    dim: str | None = None,
    calibration: tuple[float, float] | None = None,
    col_wrap: int = 4,
    fig: Figure | None = None,
) -> Figure:
    """Simulated series (lines) against observed data (dots), one panel per region.

    Parameters
    ----------
    simulated : xarray.Dataset
        One run, e.g. the hindcast (``scenarios/hindcast.yaml``).
    observed : pandas.DataFrame or xarray.Dataset
        Observed data, in a layout :func:`sd_model.compare.observed_dataset` reads (e.g.
        ``models/data/harmonised_series.csv``).
    var : str
        Simulated variable.
    regions : sequence of str, optional
        Regions to show (default: all); ignored for a national variable.
    observed_var : str, optional
        Name of the observed series when it differs from ``var`` (``"grp_real"``).
    dim : str, optional
        The regional dimension (e.g. ``"Region"``), which the observed data's region column
        becomes; default: ``var``'s only dimension besides ``time``.
    calibration : (float, float), optional
        A calibration window to shade (e.g. ``(2010, 2018)``).
    col_wrap : int, optional
        Panels per row.
    fig : matplotlib.figure.Figure, optional
        An empty figure to draw on (default: a new one).

    Returns
    -------
    matplotlib.figure.Figure
        One axes per region, each with the simulated line and the observed points; the
        figure's y label is ``long_name [units]``.

    Raises
    ------
    PlotError
        Unknown variables or regions.

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> sim = xr.Dataset({"population": ("time", np.array([1.0, 2.0]), {"units": "persons"})},
    ...                  coords={"time": [2010.0, 2011.0]})
    >>> fig = plot_fit(sim, pd.DataFrame({"population": [1.1, 1.9]}, index=[2010, 2011]),
    ...                "population")
    >>> len(fig.axes)
    1
    """
    obs_name = observed_var or var
    sim = _variable(simulated, var)
    dim = _dim(sim, dim, repr(var))
    # A national variable: observed regional rows (if any) get a dim of their own.
    obs_dim = dim if dim is not None else "region"
    obs_ds = observed_dataset(observed, region_dim=obs_dim)
    if obs_name not in obs_ds.data_vars:
        close = difflib.get_close_matches(obs_name, [str(v) for v in obs_ds.data_vars], n=3)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise PlotError(f"No observed series {obs_name!r}{hint}")
    obs = obs_ds[obs_name]
    if dim is not None:
        panels = _check_elements(sim, dim, regions) if regions is not None else None
        panels = panels or [str(e) for e in sim[dim].values]
    else:
        panels = [""]
    ncols = max(1, min(col_wrap, len(panels)))
    nrows = -(-len(panels) // ncols)
    if fig is None:
        fig = _matplotlib("pyplot").figure(
            figsize=(3.2 * ncols + 1.0, 2.4 * nrows + 0.8), layout="constrained"
        )
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
    colours = _seaborn().color_palette("colorblind", 2)
    obs_times = np.asarray(obs["time"].values, dtype=float)
    for ax, region in zip(axes, panels, strict=False):
        s = sim.sel({dim: region}) if dim is not None else sim
        if dim is not None and dim in obs.dims:
            a = obs.sel({dim: region}) if region in obs[dim].values else None
        else:
            a = obs if obs_dim not in obs.dims else None
        if calibration is not None:
            ax.axvspan(*calibration, color="0.92", zorder=0)
        ax.plot(s["time"].values, s.values, color=colours[0], label="simulated")
        if a is not None:
            ax.plot(
                obs_times,
                np.asarray(a.values, dtype=float),
                linestyle="none",
                marker="o",
                markersize=3.5,
                color=colours[1],
                label="observed",
            )
        if region:
            ax.set_title(region, fontsize="medium")
        _time_axis(ax, nbins=4)
        _seaborn().despine(ax=ax)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize="small", frameon=False)
    fig.supxlabel(_time_label(simulated))
    fig.supylabel(_label(sim))
    return fig


def plot_sensitivity(
    si: xr.Dataset,
    *,
    output: str | None = None,
    time: float | None = None,
    select: Mapping[str, Any] | None = None,
    ax: Axes | None = None,
    palette: str | Sequence[Any] | None = "colorblind",
) -> Axes:
    """Sensitivity indices per parameter as bars, with their confidence intervals.

    Sobol' and FAST results draw ``S1`` and ``ST`` side by side; Morris results draw
    ``mu_star`` and ``sigma``. Error bars are the ``*_conf`` half-widths.

    Parameters
    ----------
    si : xarray.Dataset
        A result of :func:`sd_model.sensitivity`.
    output : str, optional
        The output to draw when ``si`` has an ``output`` dim of several.
    time : float, optional
        The time to draw (default: the last analysed time).
    select : mapping, optional
        One element of each subscript dim of the output, e.g. ``{"Region": "North"}``.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure).
    palette : str or sequence, optional
        A seaborn palette name or list of colours.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    PlotError
        Not a sensitivity result, an unknown output, time or element, or a dim left to
        select.

    Examples
    --------
    >>> import xarray as xr
    >>> si = xr.Dataset(
    ...     {"S1": ("parameter", [0.31, 0.44, 0.0]), "S1_conf": ("parameter", [0.02] * 3),
    ...      "ST": ("parameter", [0.56, 0.44, 0.24]), "ST_conf": ("parameter", [0.02] * 3)},
    ...     coords={"parameter": ["x1", "x2", "x3"]})
    >>> ax = plot_sensitivity(si)
    >>> [round(float(p.get_height()), 2) for p in ax.patches]
    [0.31, 0.44, 0.0, 0.56, 0.44, 0.24]
    """
    if not isinstance(si, xr.Dataset) or "parameter" not in si.dims:
        raise PlotError("Expected the result of sd_model.sensitivity (a Dataset with 'parameter').")
    if "mu_star" in si.data_vars:
        bars = ["mu_star", "sigma"]
    elif {"S1", "ST"} <= set(map(str, si.data_vars)):
        bars = ["S1", "ST"]
    else:
        raise PlotError("No sensitivity indices (S1/ST or mu_star/sigma) in this Dataset.")
    ds = si[[*bars, *(f"{b}_conf" for b in bars if f"{b}_conf" in si.data_vars)]]
    title: list[str] = []
    repeated: list[str] = []
    if "output" in ds.dims:
        names = [str(o) for o in ds["output"].values]
        if output is None and len(names) > 1:
            raise PlotError(f"Several outputs ({', '.join(names)}); pick one with output=.")
        chosen = names[0] if output is None else output
        if chosen not in names:
            raise PlotError(f"No output {chosen!r}; the outputs are {', '.join(names)}.")
        ds = ds.sel(output=chosen)
        # The indices of an output repeat along the dims only the other outputs have.
        own = json.loads(str(si.attrs.get("output_dims", "{}"))).get(chosen)
        if own is not None:
            repeated = [str(d) for d in ds.dims if d not in ("parameter", "time", *own)]
            ds = ds.isel(dict.fromkeys(repeated, 0), drop=True)
        title.append(chosen)
    elif output is not None and output != si[bars[0]].attrs.get("output", output):
        raise PlotError(
            f"These indices are of {si[bars[0]].attrs.get('output')!r}, not {output!r}."
        )
    else:
        title.append(str(si[bars[0]].attrs.get("output_long_name") or ""))
    if "time" in ds.dims:
        times = np.asarray(ds["time"].values, dtype=float)
        when = float(times[-1]) if time is None else float(time)
        hit = np.flatnonzero(np.isclose(times, when))
        if not len(hit):
            raise PlotError(f"No time {when:g} in the indices; they have {times.tolist()}.")
        ds = ds.isel(time=int(hit[0]))
        title.append(f"time {when:g}")
    for dim, label in (select or {}).items():
        if dim in repeated:
            continue  # this output has no such dim; other outputs have
        if dim not in ds.dims:
            raise PlotError(
                f"No dim {dim!r} to select; the indices have {list(map(str, ds.dims))}."
            )
        _check_elements(ds[bars[0]], dim, [str(label)])
        ds = ds.sel({dim: str(label)})
        title.append(f"{dim} {label}")
    left = [str(d) for d in ds.dims if d != "parameter"]
    if left:
        raise PlotError(
            f"The indices still have dims {left}; pick one element each, e.g. "
            f"select={{{left[0]!r}: {str(ds[left[0]].values[0])!r}}} "
            f"(sd-model sensitivity: --plot-select {left[0]}={ds[left[0]].values[0]})."
        )
    ax = _new_axes(ax, figsize=(max(4.0, 1.2 * ds.sizes["parameter"] + 2), 4.5))
    params = [str(p) for p in ds["parameter"].values]
    x = np.arange(len(params))
    width = 0.8 / len(bars)
    colours = _seaborn().color_palette(palette, n_colors=len(bars))
    for i, (name, colour) in enumerate(zip(bars, colours, strict=True)):
        conf = f"{name}_conf"
        err = np.asarray(ds[conf].values, dtype=float) if conf in ds.data_vars else None
        ax.bar(
            x + (i - (len(bars) - 1) / 2) * width,
            np.asarray(ds[name].values, dtype=float),
            width,
            yerr=err,
            capsize=3,
            label=name,
            color=colour,
        )
    ax.set_xticks(x, params)
    ax.axhline(0.0, color="0.5", linewidth=0.8)
    units = str(ds[bars[0]].attrs.get("units") or "")
    if bars[0] == "S1":
        ax.set_ylabel("sensitivity index")
    else:
        ax.set_ylabel(f"elementary effect [{units}]" if units else "elementary effect")
    ax.set_title(", ".join(t for t in title if t))
    ax.legend(fontsize="small", frameon=False)
    _seaborn().despine(ax=ax)
    return ax


# --------------------------------------------------------------------------- calibration
def _panels(n: int, col_wrap: int, fig: Figure | None) -> tuple[Figure, Any]:
    ncols = max(1, min(col_wrap, n))
    nrows = -(-n // ncols)
    if fig is None:
        fig = _matplotlib("pyplot").figure(
            figsize=(3.6 * ncols + 1.0, 2.6 * nrows + 0.8), layout="constrained"
        )
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def _band_pairs(q: np.ndarray) -> list[tuple[int, int]]:
    """Index pairs (low, high) of symmetric quantiles, widest first."""
    order = np.argsort(q)
    return [(int(order[i]), int(order[-1 - i])) for i in range(len(order) // 2)]


def plot_calibration(
    fit: Any,
    *,
    series: Sequence[str] | None = None,
    bands: xr.Dataset | None = None,
    col_wrap: int = 3,
    fig: Figure | None = None,
) -> Figure:
    """A calibration's best run (lines) against its data (dots), one panel per series.

    Parameters
    ----------
    fit : sd_model.Fit
        The result of :func:`sd_model.calibrate`.
    series : sequence of str, optional
        Series labels to show (default: all).
    bands : xarray.Dataset, optional
        :func:`sd_model.forecast_bands` output to shade behind the run.
    col_wrap : int
        Panels per row.
    fig : matplotlib.figure.Figure, optional
        An empty figure to draw on.

    Returns
    -------
    matplotlib.figure.Figure
    """
    table = fit.residuals
    labels = list(dict.fromkeys(table["series"]))
    if series is not None:
        unknown = [s for s in series if s not in labels]
        if unknown:
            raise PlotError(f"No series {unknown[0]!r} in the fit; series: {', '.join(labels)}.")
        labels = list(series)
    fig, axes = _panels(len(labels), col_wrap, fig)
    colours = _seaborn().color_palette("colorblind", 2)
    ds = fit.dataset
    by_label = {s.label: s for s in fit.series}
    for ax, label in zip(axes, labels, strict=False):
        s = by_label[label]
        pick = dict(zip(s.variable.dims, s.elements, strict=True))
        sim = ds[s.variable.py_name].sel(pick)
        if bands is not None and s.variable.py_name in bands.data_vars:
            _shade(ax, bands[s.variable.py_name].sel(pick), colours[0])
        ax.plot(sim["time"].values, sim.values, color=colours[0], label="fitted run")
        ax.plot(
            s.times,
            s.values,
            linestyle="none",
            marker="o",
            markersize=3.5,
            color=colours[1],
            label="data",
        )
        ax.set_title(label, fontsize="medium")
        ax.set_ylabel(_label(sim))
        _seaborn().despine(ax=ax)
    axes[0].legend(fontsize="small", frameon=False)
    fig.supxlabel(_time_label(ds))
    return fig


def _shade(ax: Axes, da: xr.DataArray, colour: Any) -> None:
    q = np.asarray(da["quantile"].values, dtype=float)
    times = da["time"].values
    for n, (lo, hi) in enumerate(_band_pairs(q)):
        ax.fill_between(
            times,
            np.asarray(da.isel(quantile=lo).values, dtype=float),
            np.asarray(da.isel(quantile=hi).values, dtype=float),
            color=colour,
            alpha=0.15 + 0.15 * n,
            linewidth=0,
            label=f"{q[lo]:.0%}-{q[hi]:.0%}",
        )
    if np.any(np.isclose(q, 0.5)):
        mid = int(np.argmin(np.abs(q - 0.5)))
        ax.plot(
            times,
            da.isel(quantile=mid).values,
            color=colour,
            linestyle="--",
            linewidth=1.0,
            label="median",
        )


def plot_fan(
    bands: xr.Dataset,
    var: str,
    *,
    element: Mapping[str, str] | None = None,
    observed: pd.Series | None = None,
    ax: Axes | None = None,
) -> Axes:
    """A fan chart: nested quantile bands of one variable, its median and the data.

    Parameters
    ----------
    bands : xarray.Dataset
        :func:`sd_model.forecast_bands` output (a ``quantile`` dim).
    var : str
        Variable (PySD name, as in the Dataset).
    element : mapping, optional
        ``{dim: element}`` for a subscripted variable.
    observed : pandas.Series, optional
        Data indexed by time, drawn as dots.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> b = xr.Dataset({"x": (("quantile", "time"), np.array([[0.0, 1.0], [1.0, 2.0],
    ...                                                       [2.0, 3.0]]))},
    ...                coords={"quantile": [0.05, 0.5, 0.95], "time": [0.0, 1.0]})
    >>> len(plot_fan(b, "x").collections)
    1
    """
    if "quantile" not in bands.dims:
        raise PlotError("plot_fan needs forecast_bands output (a 'quantile' dim).")
    da = _variable(bands, var)
    if element:
        for d, e in element.items():
            if d not in da.dims:
                raise PlotError(f"{var!r} has no dim {d!r} (dims: {list(da.dims)}).")
            _check_elements(da, d, [e])
        da = da.sel(dict(element))
    extra = [d for d in da.dims if d not in ("quantile", "time")]
    if extra:
        raise PlotError(f"{var!r} has dims {extra}; pick one element with element={{...}}.")
    ax = _new_axes(ax)
    colour = _seaborn().color_palette("colorblind", 2)
    _shade(ax, da, colour[0])
    if observed is not None:
        ax.plot(
            np.asarray(observed.index, dtype=float),
            np.asarray(observed.values, float),
            linestyle="none",
            marker="o",
            markersize=3.5,
            color=colour[1],
            label="data",
        )
    ax.set_xlabel(_time_label(bands))
    ax.set_ylabel(_label(da))
    ax.set_title(str(da.attrs.get("long_name") or var))
    ax.legend(fontsize="small", frameon=False)
    _seaborn().despine(ax=ax)
    return ax


def plot_backtest(
    backtest: Any,
    *,
    series: Sequence[str] | None = None,
    col_wrap: int = 3,
    fig: Figure | None = None,
) -> Figure:
    """Rolling-origin forecasts (model solid, benchmarks dashed) against the data.

    Parameters
    ----------
    backtest : sd_model.Backtest
        The result of :func:`sd_model.backtest`.
    series : sequence of str, optional
        Series to show (default: all).
    col_wrap : int
        Panels per row.
    fig : matplotlib.figure.Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    table = backtest.forecasts
    labels = list(dict.fromkeys(table["series"]))
    if series is not None:
        unknown = [s for s in series if s not in labels]
        if unknown:
            raise PlotError(f"No series {unknown[0]!r} in the backtest; series: {labels}.")
        labels = list(series)
    fig, axes = _panels(len(labels), col_wrap, fig)
    methods = list(dict.fromkeys(table["method"]))
    colours = dict(
        zip(methods, _seaborn().color_palette("colorblind", len(methods) + 1), strict=False)
    )
    for ax, label in zip(axes, labels, strict=False):
        part = table[table["series"] == label]
        seen = part.drop_duplicates("time")
        ax.plot(
            seen["time"],
            seen["observed"],
            linestyle="none",
            marker="o",
            markersize=3.5,
            color="0.2",
            label="data",
        )
        for (origin, method), g in part.groupby(["origin", "method"], sort=False):
            ax.plot(
                g["time"],
                g["forecast"],
                color=colours[method],
                linestyle="-" if method == "model" else "--",
                label=method if origin == part["origin"].iloc[0] else None,
            )
            ax.axvline(float(origin), color="0.85", linewidth=0.8, zorder=0)
        ax.set_title(label, fontsize="medium")
        _seaborn().despine(ax=ax)
    axes[0].legend(fontsize="small", frameon=False)
    fig.supxlabel("time")
    return fig


# --------------------------------------------------------------------------- CLI
def add_plot_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``plot`` sub-command to ``sd-model``'s sub-parsers.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The result of ``parser.add_subparsers()``.

    Returns
    -------
    argparse.ArgumentParser
        The ``plot`` parser; its ``func`` default is :func:`cmd_plot`.

    Examples
    --------
    >>> p = argparse.ArgumentParser(prog="sd-model")
    >>> _ = add_plot_parser(p.add_subparsers(dest="command"))
    >>> p.parse_args(["plot", "b.nc", "--var", "population", "-o", "f.png"]).region
    []
    """
    p = subparsers.add_parser(
        "plot",
        help="draw a variable by region, or several runs side by side, to an image file",
        description="One run: one line per region. Several runs (of one model): one line "
        "per run, for one --region or the national value. --disparity draws a disparity "
        "index of --var across regions instead.",
    )
    p.add_argument("runs", nargs="+", help="result files (.nc or .zarr)")
    p.add_argument("--var", help="variable to draw (python-safe name, e.g. population)")
    p.add_argument(
        "--region",
        action="append",
        default=[],
        help="region to draw (repeatable; one run: default all; several runs: default national)",
    )
    p.add_argument(
        "--dim",
        help="the regional dimension, e.g. Region (default: the variable's only one besides time)",
    )
    p.add_argument(
        "--weight",
        help="weight variable (e.g. population) for --disparity, or 'none' for equal weights; "
        "and for national means of rates and per-person values",
    )
    p.add_argument(
        "--national",
        choices=NATIONAL,
        default="auto",
        help="how several runs' regional values become national (default: %(default)s)",
    )
    p.add_argument(
        "--disparity",
        choices=list(DISPARITY_INDICES),
        help="draw this disparity index of --var across regions",
    )
    p.add_argument(
        "--any-model",
        action="store_true",
        help="allow runs of different model files (skip the model_sha256 check)",
    )
    p.add_argument("--dpi", type=float, default=150.0, help="resolution (default: %(default)s)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="image file; the extension picks the format (.png, .pdf, .svg ...)",
    )
    p.set_defaults(func=cmd_plot)
    return p


def cmd_plot(args: argparse.Namespace) -> int:
    """Run ``sd-model plot``: draw the figure and write it atomically.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed by the parser of :func:`add_plot_parser`.

    Returns
    -------
    int
        Exit status (0).

    Raises
    ------
    SDModelError
        Missing files, unknown variables or regions, an unsupported image format.

    Examples
    --------
    >>> args = parser.parse_args(["plot", "b.nc", "--var", "gdp", "-o", "g.png"])  # doctest: +SKIP
    >>> cmd_plot(args)  # doctest: +SKIP
    0
    """
    from sd_model.results import write_atomic

    out = Path(args.output)
    fig = _matplotlib("figure").Figure(figsize=(9.0, 5.0), layout="constrained")
    formats = fig.canvas.get_supported_filetypes()
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in formats:
        raise PlotError(
            f"Cannot write {out}: unknown image extension {out.suffix!r}; use one of "
            f"{', '.join('.' + f for f in sorted(formats))}."
        )
    runs = load_runs(args.runs)
    data = next(iter(runs.values())) if len(runs) == 1 else None
    if data is None:
        data = compare(runs, check_model=not args.any_model)
    ax = fig.subplots()
    weight = None if args.weight is None or args.weight.lower() == "none" else args.weight
    if args.disparity:
        if args.region:
            raise PlotError("--disparity is across all regions; drop --region.")
        if not args.var or args.weight is None:
            raise PlotError(
                "--disparity needs the variable and its weights: --var NAME --weight NAME "
                "(e.g. --var income_per_capita --weight population; --weight none for equal "
                "weights)."
            )
        plot_disparity(data, args.disparity, var=args.var, weight=weight, dim=args.dim, ax=ax)
    elif not args.var:
        raise PlotError("Say what to draw: --var NAME (e.g. --var population) or --disparity.")
    elif len(runs) == 1:
        plot_regions(data, args.var, args.region or None, dim=args.dim, ax=ax)
    else:
        if len(args.region) > 1:
            raise PlotError(
                f"With {len(runs)} runs give at most one --region (or none for the national "
                f"value); got {', '.join(args.region)}."
            )
        region = args.region[0] if args.region else None
        plot_scenarios(
            data, args.var, region, national=args.national, weight=weight, dim=args.dim, ax=ax
        )
    write_atomic(out, lambda tmp: fig.savefig(tmp, format=fmt, dpi=args.dpi))
    print(f"wrote {out}")
    return 0
