"""``forecast_bands``: run the model over parameter draws and take quantiles.

The draws are a posterior sample (:func:`sd_model.sample_posterior`), bootstrap refits,
a DataFrame of parameter sets, or a :class:`~sd_model.calibrate.Fit` (draws from its
Laplace approximation: a normal distribution with the fit's covariance, truncated to the
bounds). All runs go through the batched evaluator, in chunks; failed runs are dropped
with a warning. The bands show parameter uncertainty (posterior-predictive bands of the
model's variables), not the observation noise of the error model.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from sd_model._errors import SDModelWarning
from sd_model.backends import BackendName
from sd_model.calibrate.errors import CalibrationError
from sd_model.calibrate.params import Evaluator, resolve_params
from sd_model.integrate import SolverOptions
from sd_model.options import TimeSettings
from sd_model.provenance import provenance
from sd_model.results import build_dataset

if TYPE_CHECKING:
    from sd_model.model import Model


def forecast_bands(
    model: Model,
    draws: Any,
    *,
    quantiles: Sequence[float] = (0.05, 0.5, 0.95),
    outputs: Sequence[str] | None = None,
    fixed: Mapping[str, Any] | None = None,
    n: int | None = None,
    seed: int | None = None,
    time: TimeSettings | None = None,
    solver: SolverOptions | None = None,
    backend: BackendName = "auto",
    chunk_size: int = 1000,
    progress: bool = False,
) -> xr.Dataset:
    """Quantile bands of the model's variables over parameter draws.

    Parameters
    ----------
    model : Model
    draws : xarray.Dataset, pandas.DataFrame or Fit
        A Dataset with ``(chain, draw)`` variables named after parameters (its attrs
        ``parameters`` and ``fixed``, written by :func:`sample_posterior`, are used when
        present); a DataFrame with one column per parameter; or a Fit (``n`` draws from
        its normal approximation, default 1000).
    quantiles : sequence of float
        Quantiles in (0, 1).
    outputs : sequence of str, optional
        Variables to return (model or PySD names; default every variable that changes
        in time).
    fixed : mapping, optional
        Overrides held fixed (default: those recorded with the draws).
    n : int, optional
        Use at most ``n`` draws (picked at random with ``seed``).
    seed : int, optional
        Seeds the thinning and the Fit's draws.
    time : TimeSettings, optional
        The run's time settings, e.g. ``TimeSettings(final_time=2050)`` to forecast.
    solver : SolverOptions, optional
        Integration method (default: the model file's).
    backend : {"auto", "compiled", "pysd"}
    chunk_size : int
        Runs per batch.
    progress : bool
        Show a progress bar.

    Returns
    -------
    xarray.Dataset
        Each output with dims ``(quantile, time, *subscripts)``; attrs with provenance,
        ``n_draws`` and ``n_failed``.

    Examples
    --------
    >>> bands = sd_model.forecast_bands(model, post, quantiles=[0.05, 0.5, 0.95],
    ...                                 time=TimeSettings(final_time=30))  # doctest: +SKIP
    >>> bands["infected"].sel(quantile=0.5)  # doctest: +SKIP
    """
    from sd_model.calibrate.fit import Fit, progress_bar

    q = np.asarray(list(quantiles), dtype=float)
    if q.ndim != 1 or not len(q) or np.any(~((q > 0) & (q < 1))):
        raise CalibrationError(f"quantiles must be numbers in (0, 1), got {list(quantiles)!r}.")
    if chunk_size < 1:
        raise CalibrationError(f"chunk_size must be positive, got {chunk_size!r}.")
    rng = np.random.default_rng(seed)
    if isinstance(draws, Fit):
        table, recorded_fixed = _laplace_draws(draws, n or 1000, rng), draws._payoff.evaluator.fixed
    else:
        table, recorded_fixed = _table(draws)
        if n is not None and n < len(table):
            table = table.iloc[np.sort(rng.choice(len(table), size=n, replace=False))]
    fixed = recorded_fixed if fixed is None else fixed
    targets = resolve_params(
        model, {k: None for k in table.columns}, fixed=fixed, where="draws", need_bounds=False
    )
    grid = model.time_grid(**time.as_kwargs()) if time is not None else model.time_grid()
    options = solver if solver is not None else SolverOptions(model.resolve_method(None))
    variables = _outputs(model, outputs)
    ev = Evaluator(
        model,
        targets,
        solver=options,
        grid=grid,
        backend=backend,
        fixed=fixed,
        outputs=[v.py_name for v in variables],
        what="running the draws",
    )
    theta = table.to_numpy(dtype=float)
    kept: dict[str, list[np.ndarray]] = {v.py_name: [] for v in variables}
    times = grid.save_times()
    with progress_bar(progress, len(theta), "forecast bands") as tick:
        for start in range(0, len(theta), chunk_size):
            chunk = theta[start : start + chunk_size]
            times, values, ok = ev.run(chunk)
            for name in kept:
                kept[name].append(values[name][ok])
            if tick is not None:
                tick(len(chunk))
    if ev.n_failed:
        warnings.warn(
            f"{model.path.name}: {ev.n_failed} of {len(theta)} draws failed to run and were "
            f"left out of the bands (e.g. {ev.failures[0].reason[:200]}).",
            SDModelWarning,
            stacklevel=2,
        )
    n_ok = len(theta) - ev.n_failed
    if n_ok == 0:
        raise CalibrationError(f"{model.path.name}: no draw ran; there are no bands.")
    bands = {name: np.quantile(np.concatenate(parts), q, axis=0) for name, parts in kept.items()}
    attrs = provenance(
        model,
        solver=options,
        grid=grid,
        backend=ev.backend,
        note=ev.note,
        scenario="forecast bands",
        overrides=fixed,
        title=f"Forecast bands of {model.path.name}",
    )
    attrs.update(
        {"n_draws": n_ok, "n_failed": ev.n_failed, "parameters": json.dumps(list(table.columns))}
    )
    return build_dataset(
        times,
        bands,
        variables,
        model.coords,
        time_units=model.time_units,
        attrs=attrs,
        lead_dims=[("quantile", q)],
    )


def _table(draws: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Draws as a DataFrame (one row per draw), and the fixed overrides recorded."""
    if isinstance(draws, pd.DataFrame):
        if draws.empty:
            raise CalibrationError("draws: the DataFrame has no rows.")
        return draws.astype(float), {}
    if not isinstance(draws, xr.Dataset):
        raise CalibrationError(
            "draws must be a Dataset of (chain, draw) samples, a DataFrame of parameter "
            f"sets or a Fit; got {type(draws).__name__}."
        )
    names = (
        json.loads(draws.attrs["parameters"])
        if "parameters" in draws.attrs
        else [str(k) for k, v in draws.data_vars.items() if set(v.dims) == {"chain", "draw"}]
    )
    missing = [n for n in names if n not in draws.data_vars]
    if missing or not names:
        raise CalibrationError(f"draws: no variable(s) {missing or 'with dims (chain, draw)'}.")
    flat = {n: np.asarray(draws[n].transpose("chain", "draw").values, float).ravel() for n in names}
    fixed = json.loads(draws.attrs["fixed"]) if "fixed" in draws.attrs else {}
    return pd.DataFrame(flat), fixed


def _laplace_draws(fit: Any, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` draws from the fit's normal approximation, truncated to the bounds."""
    cov = np.asarray(fit.covariance.values, dtype=float)
    if not np.all(np.isfinite(cov)):
        raise CalibrationError(
            "draws: the fit's covariance is not finite (a parameter the data do not inform); "
            "sample the posterior instead."
        )
    p = fit._payoff
    out: list[np.ndarray] = []
    for _ in range(100):
        x = rng.multivariate_normal(fit.x, cov, size=n, method="eigh")
        out.append(x[np.all((x >= p.lower) & (x <= p.upper), axis=1)])
        if sum(len(o) for o in out) >= n:
            break
    x = np.concatenate(out)[:n]
    if len(x) < n:
        raise CalibrationError("draws: the fit's normal approximation lies outside the bounds.")
    return pd.DataFrame(x, columns=list(fit.params))


def _outputs(model: Model, outputs: Sequence[str] | None) -> list[Any]:
    from sd_model.overrides import normalize_name

    timed = [v for v in model.variables if v.time_dependent]
    if outputs is None:
        return timed
    by_norm = {normalize_name(n): v for v in timed for n in (v.name, v.py_name)}
    out = []
    for name in outputs:
        v = by_norm.get(normalize_name(name))
        if v is None:
            raise CalibrationError(
                f"outputs: {name!r} is not a variable of the model that changes in time."
            )
        out.append(v)
    return out


def scenario_bands(
    model: Model,
    spec: Mapping[str, Any],
    params: Mapping[str, Any],
    run_kw: Mapping[str, Any],
    *,
    held: set[str] | frozenset[str] = frozenset(),
    where: str = "uncertainty",
) -> xr.Dataset:
    """Bands of one scenario over the draws its ``uncertainty:`` section names.

    Parameters
    ----------
    model : Model
    spec : mapping
        The checked ``uncertainty:`` section (:class:`sd_model.Scenario`'s
        ``uncertainty``): ``draws`` (path), optional ``n``, ``quantiles``, ``outputs``,
        ``seed``.
    params : mapping
        The scenario run's overrides; those of drawn parameters give way to the draws.
    run_kw : mapping
        The scenario run's :meth:`Model.run` keywords (time, solver, backend).
    held : set of str
        Normalised names of drawn parameters to hold at ``params``' value instead.
    where : str
        The scenario file and line, for error messages.

    Returns
    -------
    xarray.Dataset
        :func:`forecast_bands` output, with attrs ``draws_file`` and ``draws_kind``.
    """
    from sd_model._errors import ScenarioError
    from sd_model.options import resolve_solver, resolve_time
    from sd_model.overrides import ParameterError, normalize_name

    path = Path(spec["draws"])
    table, attrs = read_draws(path, where)
    sha = attrs.get("model_sha256")
    if sha and sha != model.sha256:
        warnings.warn(
            f"{where}: uncertainty.draws ({path}) are draws of another version of "
            f"{model.path.name}; refit (sd-model calibrate) to draw for the current model.",
            SDModelWarning,
            stacklevel=3,
        )
    table = table[[c for c in table.columns if normalize_name(c.split("[")[0]) not in held]]
    if table.shape[1] == 0:
        raise ScenarioError(f"{where}: every drawn parameter is held fixed; there are no bands.")
    drawn = {normalize_name(c.split("[")[0]) for c in table.columns}
    fixed = {k: v for k, v in params.items() if normalize_name(k.split("[")[0]) not in drawn}
    rng = np.random.default_rng(spec.get("seed"))
    n = spec.get("n")
    if n is not None and n < len(table):
        table = table.iloc[np.sort(rng.choice(len(table), size=n, replace=False))]
    time_keys = ("initial_time", "final_time", "time_step", "saveper")
    solver_keys = ("method", "rtol", "atol", "max_step")
    time = resolve_time(run_kw.get("time"), **{k: run_kw[k] for k in time_keys if k in run_kw})
    solver = resolve_solver(
        model,
        run_kw.get("solver"),
        **{k: run_kw[k] for k in solver_keys if k in run_kw},
        jit=bool(run_kw.get("jit", False)),
    )
    try:
        bands = forecast_bands(
            model,
            table,
            quantiles=spec.get("quantiles", (0.05, 0.25, 0.5, 0.75, 0.95)),
            outputs=spec.get("outputs"),
            fixed=fixed,
            time=time,
            solver=solver,
            backend=run_kw.get("backend", "auto"),
            # One batched evaluation over all draws: the batch is the draws.
            chunk_size=max(len(table), 1),
        )
    except (CalibrationError, ParameterError) as exc:
        raise ScenarioError(f"{where}: uncertainty ({path}): {exc}") from exc
    bands.attrs["draws_file"] = str(path)
    bands.attrs["draws_kind"] = str(attrs.get("kind", ""))
    return bands


def read_draws(path: Path, where: str = "draws") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Parameter draws from a file, and what is recorded about them.

    ``.csv``: one row per draw, one column per parameter (a ``draw`` column is the label),
    as ``sd-model calibrate`` writes ``draws.csv``; what they are is then read from the
    ``draws:`` section of ``params.yaml`` beside it, when there is one. ``.nc``: a
    ``(chain, draw)`` sample as :func:`sd_model.sample_posterior` writes it (its attrs).
    """
    import yaml

    from sd_model._errors import ScenarioError

    try:
        if path.suffix.lower() == ".csv":
            table = pd.read_csv(path)
            table = table.drop(columns=[c for c in table.columns if str(c).strip() == "draw"])
            if table.empty or not all(pd.api.types.is_numeric_dtype(t) for t in table.dtypes):
                raise CalibrationError(
                    "a draws table has one row per draw and one numeric column per parameter."
                )
            sidecar = path.parent / "params.yaml"
            about = yaml.safe_load(sidecar.read_text("utf-8")) if sidecar.is_file() else None
            attrs = about.get("draws") if isinstance(about, dict) else None
            if isinstance(attrs, dict) and attrs.get("file") == path.name:
                return table.astype(float), dict(attrs)
            return table.astype(float), {}
        if path.suffix.lower() in (".nc", ".nc4"):
            with xr.open_dataset(path) as opened:
                ds = opened.load()
            return _table(ds)[0], dict(ds.attrs)
    except (OSError, ValueError, CalibrationError) as exc:
        raise ScenarioError(f"{where}: uncertainty.draws: cannot read {path}: {exc}") from exc
    raise ScenarioError(
        f"{where}: uncertainty.draws: {path.name}: draws are read from .csv (one row per draw) "
        "or .nc (a posterior sample) files."
    )


def add_bands(ds: xr.Dataset, bands: xr.Dataset) -> xr.Dataset:
    """The run ``ds`` with each variable of ``bands`` added as ``<name>_band``.

    The central run's variables are unchanged; a band variable has dims ``(quantile,
    time, *subscripts)`` and attrs ``band_of`` (the variable) and ``n_draws``.
    """
    out = ds.copy()
    for name, da in bands.data_vars.items():
        band = da.copy()
        band.attrs = {
            **da.attrs,
            "band_of": str(name),
            "n_draws": int(bands.attrs.get("n_draws", 0)),
        }
        out[f"{name}_band"] = band
    out = out.assign_coords(quantile=bands["quantile"])
    for key in ("n_draws", "n_failed", "draws_file", "draws_kind", "parameters"):
        if key in bands.attrs:
            out.attrs[f"bands_{key}"] = bands.attrs[key]
    return out
