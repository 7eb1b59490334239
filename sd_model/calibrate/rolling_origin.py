"""``backtest``: rolling-origin evaluation of the calibrated model's forecasts.

For each origin the model is fitted to the data up to the origin, run on, and its
forecasts of the next ``horizon`` observations of each series are scored against the
data that follow, next to naive benchmarks: *no change* (the last observed value) and
*trend* (the drift method: the last value plus the average change per unit of time of
the training data; Hyndman & Athanasopoulos 2021, *Forecasting: Principles and
Practice*, 3rd ed., section 5.2). Errors are scored by MAPE and by MASE, the mean
absolute error scaled by the in-sample mean absolute one-step change of the training
data (Hyndman & Koehler 2006, "Another look at measures of forecast accuracy", *Int. J.
Forecasting* 22:679): MASE < 1 beats the one-step naive forecast in sample.
"""

from __future__ import annotations

import time as _time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from sd_model import metrics
from sd_model.backends import BackendName
from sd_model.calibrate.errors import CalibrationError
from sd_model.calibrate.observations import Observations, read_observations
from sd_model.calibrate.payoff import ErrorSpec, build_payoff
from sd_model.integrate import SolverOptions
from sd_model.options import TimeSettings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from sd_model.calibrate.fit import SearchMethod
    from sd_model.model import Model

BENCHMARKS = ("no_change", "trend")


@dataclass(frozen=True)
class Backtest:
    """Rolling-origin forecasts and their scores.

    Attributes
    ----------
    forecasts : pandas.DataFrame
        One row per origin, series, method (``model`` and each benchmark) and step
        ahead: ``origin``, ``series``, ``method``, ``step``, ``time``, ``observed``,
        ``forecast``, ``error`` (observed - forecast).
    scores : pandas.DataFrame
        One row per origin, series and method: ``n``, ``mape_pct``, ``mase``.
    params : pandas.DataFrame
        The parameters fitted at each origin.
    """

    forecasts: pd.DataFrame
    scores: pd.DataFrame
    params: pd.DataFrame

    def summary(self) -> pd.DataFrame:
        """Mean scores over the origins, per series and method."""
        return (
            self.scores.groupby(["series", "method"], sort=False)[["mape_pct", "mase"]]
            .mean()
            .reset_index()
        )

    def plot(self, **kwargs: Any) -> Figure:
        """Forecasts from each origin against the data (:func:`sd_model.plots.plot_backtest`)."""
        from sd_model.plots import plot_backtest

        return plot_backtest(self, **kwargs)


def backtest(
    model: Model,
    data: Any,
    params: Mapping[str, tuple[float, float]],
    *,
    origins: Sequence[float],
    horizon: int,
    benchmarks: Sequence[str] = BENCHMARKS,
    error: ErrorSpec = "normal",
    weights: Mapping[str, float] | None = None,
    priors: Mapping[str, Any] | None = None,
    fixed: Mapping[str, Any] | None = None,
    method: str = "differential_evolution",
    seed: int | None = None,
    time: TimeSettings | None = None,
    solver: SolverOptions | None = None,
    backend: BackendName = "auto",
    progress: bool = False,
    **search_options: Any,
) -> Backtest:
    """Fit up to each origin, forecast ``horizon`` steps, score against what followed.

    Parameters
    ----------
    model, data, params, error, weights, priors, fixed, method, seed, time, solver, backend
        As :func:`sd_model.calibrate` (``time`` must cover every observation).
    origins : sequence of float
        Times after which data are held out.
    horizon : int
        Observations of each series forecast after each origin (steps of the data).
    benchmarks : sequence of {"no_change", "trend"}
        Naive forecasts scored alongside the model.
    progress : bool
        Show progress bars.
    **search_options
        ``popsize``, ``maxiter``, ``tol``, ``polish`` of :func:`sd_model.calibrate`.

    Returns
    -------
    Backtest

    Examples
    --------
    >>> bt = sd_model.backtest(model, data, {"contact rate": (0.5, 5)}, origins=[6, 8],
    ...                        horizon=3, error="poisson", seed=1)  # doctest: +SKIP
    >>> bt.summary()  # doctest: +SKIP
    """
    from sd_model.calibrate.fit import SEARCH_METHODS, Fit, search

    unknown = [b for b in benchmarks if b not in BENCHMARKS]
    if unknown:
        raise CalibrationError(f"Unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}.")
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise CalibrationError(f"horizon must be a positive integer, got {horizon!r}.")
    if method not in SEARCH_METHODS:
        raise CalibrationError(f"Unknown method {method!r}; choose one of {SEARCH_METHODS}.")
    if not len(origins):
        raise CalibrationError("origins: give at least one origin.")
    everything = read_observations(model, data)
    grid = model.time_grid(**time.as_kwargs()) if time is not None else model.time_grid()
    everything.time_index(grid)
    rows: list[pd.DataFrame] = []
    fitted = []
    x0 = None
    for origin in sorted(float(o) for o in origins):
        train = everything.window(last_time=origin)
        test = _heads(everything.window(first_time=origin), horizon)
        if not train.series:
            raise CalibrationError(f"origin {origin:g}: there are no data up to it to fit.")
        if not test.series:
            raise CalibrationError(f"origin {origin:g}: there are no data after it to forecast.")
        payoff = build_payoff(
            model,
            None,
            params,
            error=error,
            weights=weights,
            priors=priors,
            fixed=fixed,
            time=time,
            solver=solver,
            backend=backend,
            what="backtesting",
            observations=train,
        )
        started = _time.perf_counter()
        found = search(
            payoff,
            cast("SearchMethod", method),
            np.random.default_rng(seed),
            progress=progress,
            x0=x0,
            **search_options,
        )
        fit = Fit(payoff, found, method=method, seed=seed, seconds=_time.perf_counter() - started)
        x0 = fit.x
        fitted.append({"origin": origin, **fit.params, "payoff": fit.payoff})
        simulated = _simulate(payoff, fit.x, test)
        rows.append(_forecasts(origin, train, test, simulated, benchmarks))
    forecasts = pd.concat(rows, ignore_index=True)
    return Backtest(forecasts, _scores(forecasts, everything), pd.DataFrame(fitted))


def _heads(obs: Observations, horizon: int) -> Observations:
    """The first ``horizon`` observations of each series."""
    keep = []
    for s in obs.series:
        mask = np.zeros(len(s.times), dtype=bool)
        mask[:horizon] = True
        keep.append(s.subset(mask))
    return Observations(tuple(keep))


def _simulate(payoff: Any, x: np.ndarray, test: Observations) -> list[np.ndarray]:
    """The fitted run's values at the held-out observations."""
    ev = payoff.evaluator
    _, values, ok = ev.run(x[None, :])
    out = []
    for s, idx in zip(test.series, test.time_index(ev.grid), strict=True):
        v = values[s.variable.py_name][(0, idx, *s.position)]
        out.append(np.asarray(v, dtype=float) if ok[0] else np.full(len(idx), np.nan))
    return out


def _forecasts(
    origin: float,
    train: Observations,
    test: Observations,
    simulated: list[np.ndarray],
    benchmarks: Sequence[str],
) -> pd.DataFrame:
    history = {s.label: s for s in train.series}
    frames = []
    for s, sim in zip(test.series, simulated, strict=True):
        methods = {"model": sim}
        past = history.get(s.label)
        for b in benchmarks:
            methods[b] = _benchmark(b, past, s.times)
        for name, forecast in methods.items():
            frames.append(
                pd.DataFrame(
                    {
                        "origin": origin,
                        "series": s.label,
                        "method": name,
                        "step": np.arange(1, len(s.times) + 1),
                        "time": s.times,
                        "observed": s.values,
                        "forecast": forecast,
                        "error": s.values - forecast,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def _benchmark(name: str, past: Any, times: np.ndarray) -> np.ndarray:
    if past is None or not len(past.values):
        return np.full(len(times), np.nan)
    last_t, last_y = past.times[-1], past.values[-1]
    if name == "no_change":
        return np.full(len(times), last_y)
    if len(past.values) < 2:
        return np.full(len(times), np.nan)
    slope = (last_y - past.values[0]) / (last_t - past.times[0])
    return last_y + slope * (times - last_t)


def _scores(forecasts: pd.DataFrame, everything: Observations) -> pd.DataFrame:
    by_label = {s.label: s for s in everything.series}
    rows = []
    for (origin, series, method), g in forecasts.groupby(
        ["origin", "series", "method"], sort=False
    ):
        s = by_label[str(series)]
        train = s.values[s.times <= float(cast(float, origin)) + 1e-9]
        scale = float(np.mean(np.abs(np.diff(train)))) if len(train) > 1 else np.nan
        err = np.abs(g["error"].to_numpy(dtype=float))
        with np.errstate(divide="ignore", invalid="ignore"):
            mase = float(np.mean(err) / scale) if scale and np.isfinite(scale) else np.nan
            mape = float(metrics.mape(g["forecast"].to_numpy(float), g["observed"].to_numpy(float)))
        rows.append(
            {
                "origin": origin,
                "series": series,
                "method": method,
                "n": len(g),
                "mape_pct": mape,
                "mase": mase,
            }
        )
    return pd.DataFrame(rows)
