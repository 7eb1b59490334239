"""Regional disparity indices and historical-fit statistics.

Every function works on NumPy arrays (reducing along ``axis``) and on xarray DataArrays
(reducing along the named ``dim``, which the caller always names: nothing here knows a
model's dimensions), and is vectorized over all other dimensions, so a whole simulation
(e.g. ``time`` x ``Region``) is reduced in one call.

Disparity indices follow the formulas in the design notes (MODEL-DESIGN.md, section 5):
population weights ``pi_i = p_i / sum(p)``, the weighted (national) mean
``ybar_w = sum(pi_i * y_i)``. Fit statistics follow Sterman (1984), "Appropriate summary
statistics for evaluating the historical fit of system dynamics models", *Dynamica* 10:51-66.

Examples
--------
>>> import numpy as np
>>> from sd_model.metrics import williamson_index, theil_u_decomposition
>>> float(williamson_index(np.array([1.0, 3.0]), np.array([1.0, 1.0])))
0.5
>>> stats = theil_u_decomposition(np.array([1.0, 2.0, 4.0]), np.array([1.0, 2.0, 3.0]))
>>> round(float(stats["um"] + stats["us"] + stats["uc"]), 12)
1.0
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "coefficient_of_variation",
    "gini",
    "mape",
    "max_min_ratio",
    "rmspe",
    "theil_index",
    "theil_l",
    "theil_u1",
    "theil_u_decomposition",
    "williamson_index",
]

ArrayLike = Any  # numpy array or xarray DataArray


def _as_numpy(x: ArrayLike, axis: int, dim: str | None) -> tuple[np.ndarray, int]:
    """Return ``x`` as a float array and the axis to reduce over."""
    if isinstance(x, xr.DataArray):
        if dim is None:
            dims = ", ".join(repr(str(d)) for d in x.dims) or "none"
            raise ValueError(f"dim= is required for xarray input; the array's dims are {dims}.")
        if dim not in x.dims:
            dims = ", ".join(repr(str(d)) for d in x.dims) or "none"
            raise ValueError(f"No dim {dim!r} to reduce over; the array's dims are {dims}.")
        return np.asarray(x.values, dtype=float), x.get_axis_num(dim)
    return np.asarray(x, dtype=float), axis


def _wrap(result: np.ndarray, template: ArrayLike, dim: str | None) -> ArrayLike:
    """Wrap a reduced NumPy result back into a DataArray if the input was one."""
    if isinstance(template, xr.DataArray):
        reduced = template.isel({dim: 0}, drop=True)
        return reduced.copy(data=result)
    return result


def _weights(
    y: ArrayLike, population: ArrayLike | None, axis: int, dim: str | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Return (values, normalised weights, axis), broadcasting xarray inputs by name."""
    if isinstance(y, xr.DataArray) and population is not None:
        pop = xr.DataArray(population) if not isinstance(population, xr.DataArray) else population
        y, pop = xr.broadcast(y, pop)
        pop = pop.transpose(*y.dims)
        population = pop
    yv, ax = _as_numpy(y, axis, dim)
    if population is None:
        w = np.ones_like(yv)
    else:
        w = np.broadcast_to(_as_numpy(population, axis, dim)[0], yv.shape).astype(float)
    if np.any(w < 0):
        raise ValueError("population weights must be non-negative")
    w = w / w.sum(axis=ax, keepdims=True)
    return yv, w, ax


def coefficient_of_variation(
    y: ArrayLike, *, axis: int = -1, dim: str | None = None, ddof: int = 0
) -> ArrayLike:
    """Unweighted coefficient of variation ``std(y) / mean(y)``.

    Parameters
    ----------
    y : array_like or xarray.DataArray
        Per-capita values by region.
    axis : int, optional
        Axis to reduce over for NumPy input.
    dim : str, optional
        Dimension to reduce over for xarray input (e.g. ``"Region"``).
    ddof : int, optional
        Delta degrees of freedom of the standard deviation: 0 (the default, the design
        notes' choice) or 1 (REAT's default).

    Returns
    -------
    numpy.ndarray or xarray.DataArray
        The CV, reduced over ``axis``/``dim``.

    Examples
    --------
    >>> float(coefficient_of_variation(np.array([1.0, 3.0])))
    0.5
    """
    yv, ax = _as_numpy(y, axis, dim)
    out = yv.std(axis=ax, ddof=ddof) / yv.mean(axis=ax)
    return _wrap(out, y, dim)


def williamson_index(
    y: ArrayLike, population: ArrayLike, *, axis: int = -1, dim: str | None = None
) -> ArrayLike:
    """Williamson (1965) index: population-weighted CV around the weighted mean.

    ``V_w = sqrt(sum(pi_i * (y_i - ybar_w)**2)) / ybar_w`` with ``pi_i = p_i / sum(p)``.

    Parameters
    ----------
    y : array_like or xarray.DataArray
        Per-capita values by region.
    population : array_like or xarray.DataArray
        Population weights, broadcastable to ``y``.
    axis : int, optional
        Axis to reduce over for NumPy input.
    dim : str, optional
        Dimension to reduce over for xarray input.

    Returns
    -------
    numpy.ndarray or xarray.DataArray
        The index (0 for equal values).

    Examples
    --------
    >>> float(williamson_index(np.array([1.0, 3.0]), np.array([3.0, 1.0])))
    0.5773502691896257
    """
    yv, w, ax = _weights(y, population, axis, dim)
    mean = (w * yv).sum(axis=ax, keepdims=True)
    var = (w * (yv - mean) ** 2).sum(axis=ax)
    return _wrap(np.sqrt(var) / np.squeeze(mean, axis=ax), y, dim)


def theil_index(
    y: ArrayLike, population: ArrayLike | None = None, *, axis: int = -1, dim: str | None = None
) -> ArrayLike:
    """Theil T index, population-weighted: ``sum(pi_i * r_i * ln r_i)``, ``r_i = y_i/ybar_w``.

    Parameters
    ----------
    y : array_like or xarray.DataArray
        Positive per-capita values by region.
    population : array_like or xarray.DataArray, optional
        Population weights; ``None`` gives the unweighted (OECD) Theil index.
    axis : int, optional
        Axis to reduce over for NumPy input.
    dim : str, optional
        Dimension to reduce over for xarray input.

    Returns
    -------
    numpy.ndarray or xarray.DataArray
        The index, between 0 (equality) and ``ln(1/min(pi))``.

    Examples
    --------
    >>> round(float(theil_index(np.array([1.0, 3.0]))), 6)
    0.130812
    """
    yv, w, ax = _weights(y, population, axis, dim)
    r = yv / (w * yv).sum(axis=ax, keepdims=True)
    return _wrap((w * r * np.log(r)).sum(axis=ax), y, dim)


def theil_l(
    y: ArrayLike, population: ArrayLike | None = None, *, axis: int = -1, dim: str | None = None
) -> ArrayLike:
    """Theil L index (mean log deviation): ``sum(pi_i * ln(ybar_w / y_i))``.

    Parameters
    ----------
    y : array_like or xarray.DataArray
        Positive per-capita values by region.
    population : array_like or xarray.DataArray, optional
        Population weights; ``None`` weights regions equally.
    axis : int, optional
        Axis to reduce over for NumPy input.
    dim : str, optional
        Dimension to reduce over for xarray input.

    Returns
    -------
    numpy.ndarray or xarray.DataArray
        The index (0 for equal values).

    Examples
    --------
    >>> round(float(theil_l(np.array([1.0, 3.0]))), 6)
    0.143841
    """
    yv, w, ax = _weights(y, population, axis, dim)
    mean = (w * yv).sum(axis=ax, keepdims=True)
    return _wrap((w * np.log(mean / yv)).sum(axis=ax), y, dim)


def gini(
    y: ArrayLike, population: ArrayLike | None = None, *, axis: int = -1, dim: str | None = None
) -> ArrayLike:
    """Gini coefficient across regions: ``sum_i sum_j pi_i pi_j |y_i - y_j| / (2 ybar_w)``.

    Parameters
    ----------
    y : array_like or xarray.DataArray
        Per-capita values by region.
    population : array_like or xarray.DataArray, optional
        Population weights; ``None`` gives the unweighted Gini across regions.
    axis : int, optional
        Axis to reduce over for NumPy input.
    dim : str, optional
        Dimension to reduce over for xarray input.

    Returns
    -------
    numpy.ndarray or xarray.DataArray
        The coefficient, in [0, 1).

    Examples
    --------
    Two equally populated regions, one with nothing: G = 1/2.

    >>> float(gini(np.array([0.0, 1.0])))
    0.5
    """
    yv, w, ax = _weights(y, population, axis, dim)
    yv = np.moveaxis(yv, ax, -1)
    w = np.moveaxis(w, ax, -1)
    diff = np.abs(yv[..., :, None] - yv[..., None, :])
    ww = w[..., :, None] * w[..., None, :]
    mean = (w * yv).sum(axis=-1)
    return _wrap((ww * diff).sum(axis=(-2, -1)) / (2.0 * mean), y, dim)


def max_min_ratio(y: ArrayLike, *, axis: int = -1, dim: str | None = None) -> ArrayLike:
    """Ratio of the largest to the smallest regional value.

    Parameters
    ----------
    y : array_like or xarray.DataArray
        Positive per-capita values by region.
    axis : int, optional
        Axis to reduce over for NumPy input.
    dim : str, optional
        Dimension to reduce over for xarray input.

    Returns
    -------
    numpy.ndarray or xarray.DataArray
        ``max(y) / min(y)``.

    Examples
    --------
    >>> float(max_min_ratio(np.array([2.0, 5.0, 10.0])))
    5.0
    """
    yv, ax = _as_numpy(y, axis, dim)
    return _wrap(yv.max(axis=ax) / yv.min(axis=ax), y, dim)


def _pair(
    simulated: ArrayLike, actual: ArrayLike, axis: int, dim: str | None
) -> tuple[np.ndarray, np.ndarray, int, ArrayLike]:
    """Align simulated and actual series, dropping time points where either is NaN."""
    if isinstance(simulated, xr.DataArray) and isinstance(actual, xr.DataArray):
        simulated, actual = xr.align(simulated, actual, join="inner")
        actual = actual.transpose(*simulated.dims)
    s, ax = _as_numpy(simulated, axis, dim)
    a, _ = _as_numpy(actual, axis, dim)
    if s.shape != a.shape:
        raise ValueError(f"simulated shape {s.shape} differs from actual shape {a.shape}")
    missing = np.isnan(s) | np.isnan(a)
    s = np.where(missing, np.nan, s)
    a = np.where(missing, np.nan, a)
    return s, a, ax, simulated


def mape(
    simulated: ArrayLike, actual: ArrayLike, *, axis: int = -1, dim: str | None = None
) -> ArrayLike:
    """Mean absolute percent error, ``100/n * sum(|S - A| / |A|)``; NaN pairs are skipped.

    Parameters
    ----------
    simulated, actual : array_like or xarray.DataArray
        Series of the same shape (xarray inputs are aligned by coordinates).
    axis : int, optional
        Time axis for NumPy input.
    dim : str, optional
        Time dimension for xarray input (e.g. ``"time"``).

    Returns
    -------
    numpy.ndarray or xarray.DataArray
        MAPE in percent.

    Examples
    --------
    >>> float(mape(np.array([110.0, 90.0]), np.array([100.0, 100.0])))
    10.0
    """
    s, a, ax, tmpl = _pair(simulated, actual, axis, dim)
    return _wrap(100.0 * np.nanmean(np.abs(s - a) / np.abs(a), axis=ax), tmpl, dim)


def rmspe(
    simulated: ArrayLike, actual: ArrayLike, *, axis: int = -1, dim: str | None = None
) -> ArrayLike:
    """Root mean square percent error, ``100 * sqrt(mean(((S - A)/A)**2))``.

    Parameters
    ----------
    simulated, actual : array_like or xarray.DataArray
        Series of the same shape.
    axis : int, optional
        Time axis for NumPy input.
    dim : str, optional
        Time dimension for xarray input.

    Returns
    -------
    numpy.ndarray or xarray.DataArray
        RMSPE in percent.

    Examples
    --------
    >>> float(rmspe(np.array([110.0, 90.0]), np.array([100.0, 100.0])))
    10.0
    """
    s, a, ax, tmpl = _pair(simulated, actual, axis, dim)
    return _wrap(100.0 * np.sqrt(np.nanmean(((s - a) / a) ** 2, axis=ax)), tmpl, dim)


def theil_u_decomposition(
    simulated: ArrayLike, actual: ArrayLike, *, axis: int = -1, dim: str | None = None
) -> dict[str, ArrayLike]:
    """Decompose the mean square error into Theil's inequality proportions (Sterman 1984).

    ``MSE = (Sbar - Abar)**2 + (s_S - s_A)**2 + 2 (1 - r) s_S s_A`` with population (1/n)
    standard deviations ``s`` and correlation ``r``. The proportions are
    ``um = (Sbar - Abar)**2 / MSE`` (bias), ``us = (s_S - s_A)**2 / MSE`` (unequal variation)
    and ``uc = 2 (1 - r) s_S s_A / MSE`` (unequal covariation); they sum to 1.

    Parameters
    ----------
    simulated, actual : array_like or xarray.DataArray
        Series of the same shape; time points where either is NaN are skipped.
    axis : int, optional
        Time axis for NumPy input.
    dim : str, optional
        Time dimension for xarray input.

    Returns
    -------
    dict
        ``{"mse", "um", "us", "uc"}``; the proportions are NaN where ``MSE == 0``.

    Examples
    --------
    A pure bias puts all the error in ``um``:

    >>> d = theil_u_decomposition(np.array([2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0]))
    >>> float(d["mse"]), float(d["um"]), float(d["us"]), float(d["uc"])
    (1.0, 1.0, 0.0, 0.0)
    """
    s, a, ax, tmpl = _pair(simulated, actual, axis, dim)
    ms = np.nanmean(s, axis=ax, keepdims=True)
    ma = np.nanmean(a, axis=ax, keepdims=True)
    ss = np.sqrt(np.nanmean((s - ms) ** 2, axis=ax))
    sa = np.sqrt(np.nanmean((a - ma) ** 2, axis=ax))
    cov = np.nanmean((s - ms) * (a - ma), axis=ax)
    mse = np.nanmean((s - a) ** 2, axis=ax)
    bias = np.squeeze(ms - ma, axis=ax) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        um = bias / mse
        us = (ss - sa) ** 2 / mse
        # 2 (1 - r) s_S s_A = 2 (s_S s_A - cov), which avoids dividing by a zero std.
        uc = 2.0 * (ss * sa - cov) / mse
    return {k: _wrap(v, tmpl, dim) for k, v in {"mse": mse, "um": um, "us": us, "uc": uc}.items()}


def theil_u1(
    simulated: ArrayLike, actual: ArrayLike, *, axis: int = -1, dim: str | None = None
) -> ArrayLike:
    """Theil's U1 inequality coefficient, ``RMSE / (sqrt(mean S**2) + sqrt(mean A**2))``.

    Parameters
    ----------
    simulated, actual : array_like or xarray.DataArray
        Series of the same shape.
    axis : int, optional
        Time axis for NumPy input.
    dim : str, optional
        Time dimension for xarray input.

    Returns
    -------
    numpy.ndarray or xarray.DataArray
        U1 in [0, 1]: 0 is a perfect fit.

    Examples
    --------
    >>> float(theil_u1(np.array([1.0, 1.0]), np.array([1.0, 1.0])))
    0.0
    """
    s, a, ax, tmpl = _pair(simulated, actual, axis, dim)
    rmse = np.sqrt(np.nanmean((s - a) ** 2, axis=ax))
    den = np.sqrt(np.nanmean(s**2, axis=ax)) + np.sqrt(np.nanmean(a**2, axis=ax))
    return _wrap(rmse / den, tmpl, dim)
