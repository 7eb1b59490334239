"""``calibrate``: fit a model's constants to data; ``Fit``: what the fit found.

The search runs on the batched backend: a global differential-evolution search whose
generations are single batched runs, then a least-squares polish whose Jacobian is one
batch of perturbed runs. Uncertainty comes from the Gauss-Newton Hessian (standard
errors, covariance) and from payoff thresholds (:meth:`Fit.confidence`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time as _time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

import numpy as np
import pandas as pd
import xarray as xr

from sd_model import metrics
from sd_model._errors import import_optional
from sd_model.backends import BackendName
from sd_model.calibrate.errors import CalibrationError
from sd_model.calibrate.observations import Series
from sd_model.calibrate.optimise import (
    SearchResult,
    all_failed,
    covariance,
    differential_evolution,
    local_fit,
    multistart,
)
from sd_model.calibrate.payoff import ErrorSpec, Payoff, build_payoff
from sd_model.integrate import SolverOptions
from sd_model.options import TimeSettings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from sd_model.model import Model

SearchMethod = Literal["differential_evolution", "multistart", "local"]
SEARCH_METHODS: tuple[str, ...] = get_args(SearchMethod)
ConfidenceMethod = Literal["profile", "payoff", "hessian"]


def calibrate(
    model: Model,
    data: Any,
    params: Mapping[str, tuple[float, float]],
    *,
    error: ErrorSpec = "normal",
    weights: Mapping[str, float] | None = None,
    priors: Mapping[str, Any] | None = None,
    fixed: Mapping[str, Any] | None = None,
    method: SearchMethod = "differential_evolution",
    seed: int | None = None,
    polish: bool = True,
    popsize: int = 15,
    maxiter: int = 300,
    tol: float = 0.01,
    time: TimeSettings | None = None,
    solver: SolverOptions | None = None,
    backend: BackendName = "auto",
    progress: bool = False,
) -> Fit:
    """Fit constants of ``model`` to observed data.

    Parameters
    ----------
    model : Model
        A loaded model.
    data : pandas.DataFrame, xarray.Dataset or mapping
        Observations: a tidy DataFrame (``time``, ``variable``, one column per subscript
        range, ``value``), a wide DataFrame indexed by time, a Dataset, or a mapping of
        variable name (``"Infected"``, ``"Population[North]"``) to a Series indexed by
        time or a DataArray. Only times where data exist count.
    params : mapping
        Constant name -> ``(low, high)``: a constant, one element (``"name[Elem]"``) or
        a whole subscripted constant (one value for every element).
    error : str, ErrorModel or mapping
        ``"normal"`` (default), ``"lognormal"``, ``"absolute"``, ``"poisson"``,
        ``"negative_binomial"``, an :class:`ErrorModel` (to give sigma), or a mapping of
        variable name or series label to those.
    weights : mapping, optional
        Series (or variable) -> multiplier of its negative log-likelihood (default 1).
    priors : mapping, optional
        Parameter -> frozen ``scipy.stats`` distribution; the payoff adds its negative
        log-density (a penalty, as Vensim's policy payoff terms).
    fixed : mapping, optional
        Overrides held fixed (as :meth:`Model.run` takes them).
    method : {"differential_evolution", "multistart", "local"}
        The search: differential evolution (default), a Latin-hypercube multi-start, or
        only the local polish from the model's own values.
    seed : int, optional
        Seeds the search: the same seed gives the same fit.
    polish : bool
        Polish the search's best point with least squares.
    popsize, maxiter, tol : int, int, float
        Differential evolution's population (per parameter; at least 64 members in
        all), generations, and relative tolerance (with an absolute tolerance of 1e-3 on
        the spread of the population's payoffs).
    time : TimeSettings, optional
        Replace the model's time settings (the run must cover every observation).
    solver : SolverOptions, optional
        Integration method (default: the method the model file declares).
    backend : {"auto", "compiled", "pysd"}
        ``auto`` runs batches on the compiled backend and falls back to PySD, one run at
        a time, with a warning.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Fit

    Raises
    ------
    CalibrationError
        Bad data, parameters, bounds, error models or options, each named.

    Examples
    --------
    >>> import pandas as pd, sd_model
    >>> model = sd_model.load("models/sir_boarding_school.mdl")  # doctest: +SKIP
    >>> data = pd.read_csv("models/data/boarding_school_influenza.csv")  # doctest: +SKIP
    >>> fit = sd_model.calibrate(model, {"Infected": data.set_index("day")["in_bed"]},
    ...                          {"contact rate": (0.5, 5), "recovery rate": (0.1, 1)},
    ...                          error="poisson", seed=1)  # doctest: +SKIP
    >>> fit.params  # doctest: +SKIP
    {'contact rate': 1.69..., 'recovery rate': 0.44...}
    """
    if method not in SEARCH_METHODS:
        raise CalibrationError(
            f"Unknown method {method!r}; choose one of {', '.join(SEARCH_METHODS)}."
        )
    for name, value in (("popsize", popsize), ("maxiter", maxiter)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CalibrationError(f"{name} must be a positive integer, got {value!r}.")
    started = _time.perf_counter()
    payoff = build_payoff(
        model,
        data,
        params,
        error=error,
        weights=weights,
        priors=priors,
        fixed=fixed,
        time=time,
        solver=solver,
        backend=backend,
        what="calibrating",
    )
    rng = np.random.default_rng(seed)
    with _one_blas_thread():
        found = search(
            payoff,
            method,
            rng,
            popsize=popsize,
            maxiter=maxiter,
            tol=tol,
            polish=polish,
            progress=progress,
        )
    payoff.evaluator.warn_failures("calibrating")
    return Fit(payoff, found, method=method, seed=seed, seconds=_time.perf_counter() - started)


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """Limit BLAS to one thread while fitting.

    The fit's matrices are small (parameters x residuals), so BLAS threads only wait on
    each other; on a busy 2-core machine OpenBLAS's spinning threads made the
    least-squares decompositions 6-250x slower (the hindcast fit: 64 s -> 40 s of CPU
    with one thread). Without threadpoolctl (the ``calibrate`` extra) nothing changes.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - the calibrate extra installs it
        return contextlib.nullcontext()
    return cast(contextlib.AbstractContextManager[Any], threadpool_limits(1, user_api="blas"))


def search(
    payoff: Payoff,
    method: SearchMethod,
    rng: np.random.Generator,
    *,
    popsize: int = 15,
    maxiter: int = 300,
    tol: float = 0.01,
    polish: bool = True,
    progress: bool = False,
    x0: np.ndarray | None = None,
) -> SearchResult:
    """Run a search (and its polish) on a payoff; ``x0`` is a starting point."""
    start = x0 if x0 is not None else np.array([t.initial_in_bounds for t in payoff.targets])
    inside = bool(np.all((start >= payoff.lower) & (start <= payoff.upper)))
    with progress_bar(
        progress, maxiter if method == "differential_evolution" else 5, f"calibrating ({method})"
    ) as tick:
        if method == "differential_evolution":
            found = differential_evolution(
                payoff,
                rng=rng,
                popsize=popsize,
                maxiter=maxiter,
                tol=tol,
                x0=start if inside else None,
                progress=tick,
            )
        elif method == "multistart":
            found = multistart(payoff, rng=rng, n=popsize * len(start), starts=5, progress=tick)
        else:
            values, _ = payoff.objective(start)
            found = SearchResult(start, float(values[0]), 0, "local")
    if not np.isfinite(found.fun):
        raise all_failed(payoff)
    if polish or method == "local":
        polished, value = local_fit(payoff, found.x)
        if value <= found.fun:
            found = SearchResult(polished, value, found.nit, found.message)
    return found


@contextlib.contextmanager
def progress_bar(enabled: bool, total: int, desc: str) -> Iterator[Callable[[int], None] | None]:
    """A tqdm bar's ``update`` (or None when disabled), closed on exit."""
    if not enabled:
        yield None
        return
    tqdm = import_optional("tqdm.auto", "calibrate", "calibrate(progress=True)").tqdm

    bar = tqdm(total=total, desc=desc, unit="step", leave=False)
    try:
        yield bar.update
    finally:
        bar.close()


class Fit:
    """The result of :func:`calibrate`.

    Attributes
    ----------
    params : dict
        Parameter (as given) -> fitted value.
    stderr : dict
        Parameter -> standard error from the Gauss-Newton Hessian of the payoff
        (``inf`` for a parameter the data do not inform).
    covariance : pandas.DataFrame
        The parameters' covariance matrix (labelled by parameter).
    scales : dict
        Series label -> its error scale (sigma or dispersion; estimated or given).
    payoff : float
        Weighted negative log-likelihood plus negative log-prior at the optimum.
    log_likelihood : float
        Unweighted log-likelihood of the data at the optimum.
    n_observations, n_evaluations, n_failed : int
        Observations, model runs, and runs that failed during the fit.
    backend : str
        ``"compiled"`` or ``"pysd"``.
    seconds : float
        Wall time of the fit.
    """

    def __init__(
        self,
        payoff: Payoff,
        found: SearchResult,
        *,
        method: str,
        seed: int | None,
        seconds: float,
    ) -> None:
        self._payoff = payoff
        self.x = np.asarray(found.x, dtype=float)
        self.method = method
        self.seed = seed
        self.seconds = seconds
        self.message = found.message
        keys = [t.key for t in payoff.targets]
        self.params = {k: float(v) for k, v in zip(keys, self.x, strict=True)}
        value, scales = payoff.objective(self.x)
        self.payoff = float(value[0])
        self._scales = payoff.fixed_scales(scales)
        sims, _ = payoff.simulate(self.x)
        self._sims = [s[0] for s in sims]
        nll = payoff.nll([s[None, :] for s in self._sims], self._scales)[0]
        self.log_likelihood = -float(np.sum(nll))
        self._nll = nll
        self.scales = {
            s.label: sc
            for s, em, sc in zip(payoff.series, payoff.errors, self._scales, strict=True)
            if em.scale_name is not None
        }
        cov, self.unidentified = covariance(payoff, self.x)
        cov = cov * self._small_sample_factor()
        self.covariance = pd.DataFrame(cov, index=keys, columns=keys)
        self.stderr = {k: float(np.sqrt(cov[j, j])) for j, k in enumerate(keys)}
        self.n_observations = payoff.obs.n
        ev = payoff.evaluator
        self.n_evaluations = ev.n_evaluations
        self.n_failed = ev.n_failed
        self.failures = ev.failures_frame()
        self.backend = ev.backend
        self._confidence: dict[tuple[float, str], pd.DataFrame] = {}

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.6g}" for k, v in self.params.items())
        return f"<Fit {self._payoff.evaluator.model.path.name}: {shown}; payoff {self.payoff:.6g}>"

    def _small_sample_factor(self) -> float:
        """n / (n - p) when every scale is an estimated Gaussian sigma, else 1.

        The ML variance SSR/n is biased low by (n - p)/n in linear least squares; the
        usual nonlinear-regression covariance uses SSR/(n - p) (Bates & Watts 1988, 2.3).
        """
        errors = self._payoff.errors
        n, p = self._payoff.obs.n, len(self.x)
        if all(em.kind in ("normal", "lognormal") and em.estimated for em in errors) and n > p:
            return n / (n - p)
        return 1.0

    # ------------------------------------------------------------------ runs
    @property
    def series(self) -> tuple[Series, ...]:
        """The observed series fitted (label, variable, element, times, values)."""
        return self._payoff.series

    @property
    def overrides(self) -> dict[str, Any]:
        """The fitted values and the fixed overrides, by the user's names (for ``run``)."""
        return self._payoff.evaluator.user_overrides(self.x.tolist())

    @cached_property
    def dataset(self) -> xr.Dataset:
        """The best run: every variable, with provenance (``attrs["overrides"]``)."""
        ev = self._payoff.evaluator
        g = ev.grid
        return ev.model.run(
            self.overrides,
            solver=ev.solver,
            time=TimeSettings(g.initial_time, g.final_time, g.time_step, g.saveper),
            backend=ev.backend,
            scenario="calibrated",
        )

    @cached_property
    def residuals(self) -> pd.DataFrame:
        """Observed against simulated: one row per observation.

        Columns ``series``, ``variable``, ``time``, ``observed``, ``simulated``,
        ``residual`` (observed - simulated) and ``deviance`` (the error model's
        standardised residual: ``residual / sigma`` under ``normal``).
        """
        rows = []
        p = self._payoff
        for s, em, sim, sc in zip(p.series, p.errors, self._sims, self._scales, strict=True):
            dev = em.residuals(sim[None, :], s.values, sc)[0]
            rows.append(
                pd.DataFrame(
                    {
                        "series": s.label,
                        "variable": s.variable.py_name,
                        "time": s.times,
                        "observed": s.values,
                        "simulated": sim,
                        "residual": s.values - sim,
                        "deviance": dev,
                    }
                )
            )
        return pd.concat(rows, ignore_index=True)

    # ------------------------------------------------------------------ reports
    def report(self) -> pd.DataFrame:
        """Fit statistics per series.

        Returns
        -------
        pandas.DataFrame
            One row per series: ``series``, ``variable``, ``n``, ``error`` (the error
            model), ``scale``, ``weight``, ``neg_log_likelihood``, ``mape_pct``,
            ``rmspe_pct``, ``r2``, ``theil_u1``, ``mse``, ``um``, ``us``, ``uc`` (Theil's
            decomposition of the mean square error, Sterman 1984; ``um + us + uc = 1``).
        """
        p = self._payoff
        rows = []
        for i, (s, em, sim) in enumerate(zip(p.series, p.errors, self._sims, strict=True)):
            obs = s.values
            with np.errstate(divide="ignore", invalid="ignore"):
                decomposition = metrics.theil_u_decomposition(sim, obs)
                sst = float(np.sum((obs - obs.mean()) ** 2))
                r2 = 1.0 - float(np.sum((obs - sim) ** 2)) / sst if sst > 0 else math.nan
                row = {
                    "series": s.label,
                    "variable": s.variable.py_name,
                    "n": len(obs),
                    "error": em.kind,
                    "scale": self._scales[i],
                    "weight": float(p.weights[i]),
                    "neg_log_likelihood": float(self._nll[i]),
                    "mape_pct": float(metrics.mape(sim, obs)),
                    "rmspe_pct": float(metrics.rmspe(sim, obs)),
                    "r2": r2,
                    "theil_u1": float(metrics.theil_u1(sim, obs)),
                    **{k: float(v) for k, v in decomposition.items()},
                }
            rows.append(row)
        return pd.DataFrame(rows)

    def parameters_table(self, level: float | None = 0.95) -> pd.DataFrame:
        """Parameters with bounds, estimates, standard errors and (optionally) intervals."""
        rows = []
        for t in self._payoff.targets:
            rows.append(
                {
                    "parameter": t.key,
                    "estimate": self.params[t.key],
                    "stderr": self.stderr[t.key],
                    "low_bound": t.low,
                    "high_bound": t.high,
                    "model_value": t.initial,
                }
            )
        table = pd.DataFrame(rows)
        if level is not None:
            ci = self.confidence(level)
            table["lower"] = ci["lower"].to_numpy()
            table["upper"] = ci["upper"].to_numpy()
        return table

    def summary(self, level: float | None = 0.95) -> str:
        """A Markdown summary: parameters (with intervals) and the per-series report."""
        ev = self._payoff.evaluator
        lines = [
            f"# Calibration of {ev.model.path.name}",
            "",
            f"- method: {self.method} (seed {self.seed}), {ev.backend} backend, "
            f"{self.n_evaluations} runs ({self.n_failed} failed), {self.seconds:.1f} s",
            f"- payoff (negative log-likelihood + negative log-prior): {self.payoff:.6g}",
            f"- log-likelihood: {self.log_likelihood:.6g} over {self.n_observations} observations",
            "",
            "## Parameters",
            "",
            _markdown(self.parameters_table(level)),
            "",
            "## Fit per series",
            "",
            _markdown(self.report()),
        ]
        return "\n".join(lines) + "\n"

    def confidence(self, level: float = 0.95, method: ConfidenceMethod = "profile") -> pd.DataFrame:
        """Confidence intervals of the parameters.

        Parameters
        ----------
        level : float
            Confidence level in (0, 1).
        method : {"profile", "payoff", "hessian"}
            ``profile``: where the payoff, minimised over the other parameters, rises by
            ``chi2(1).ppf(level) / 2`` above its optimum (likelihood-ratio interval;
            Vensim's thresholds 1.36 / 1.92 / 3.32 for 90 / 95 / 99 %). ``payoff``: the
            same threshold with the other parameters held at their optimum (Vensim's
            one-at-a-time sensitivity). ``hessian``: estimate +- z * standard error.

        Returns
        -------
        pandas.DataFrame
            Indexed by parameter: ``estimate``, ``lower``, ``upper``, and
            ``lower_at_bound`` / ``upper_at_bound`` (the threshold is not crossed before
            the bound, so the interval is cut there).
        """
        from sd_model.calibrate.confidence import intervals

        if not 0 < level < 1:
            raise CalibrationError(f"level must be between 0 and 1, got {level!r}.")
        key = (float(level), str(method))
        if key not in self._confidence:
            se = np.array([self.stderr[t.key] for t in self._payoff.targets])
            self._confidence[key] = intervals(
                self._payoff, self.x, self.payoff, se, level=level, method=method
            )
        return self._confidence[key].copy()

    # ------------------------------------------------------------------ output
    def to_yaml(self, path: str | os.PathLike[str]) -> Path:
        """Write a parameter file that scenario files can use (``params_file:``).

        The file's ``set:`` holds the fitted values (and the fixed overrides) under the
        names given to :func:`calibrate`; ``fit:`` records how they were found.

        Parameters
        ----------
        path : path-like

        Returns
        -------
        pathlib.Path
        """
        import yaml

        out = Path(path)
        ev = self._payoff.evaluator
        try:
            model_ref = os.path.relpath(ev.model.path, out.resolve().parent)
        except ValueError:  # another drive on Windows
            model_ref = str(ev.model.path)
        doc = {
            "model": model_ref,
            "model_sha256": ev.model.sha256,
            "set": {k: _plain(v) for k, v in self.overrides.items()},
            "fit": {
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "method": self.method,
                "seed": self.seed,
                "backend": ev.backend,
                "payoff": self.payoff,
                "log_likelihood": self.log_likelihood,
                "n_observations": self.n_observations,
                "stderr": dict(self.stderr),
                # For draws from the normal approximation (e.g. forecast bands later).
                "covariance": {
                    "parameters": [str(k) for k in self.covariance.index],
                    "matrix": self.covariance.to_numpy(dtype=float).tolist(),
                },
                "error_models": {
                    s.label: em.describe()
                    for s, em in zip(self.series, self._payoff.errors, strict=True)
                },
                "scales": dict(self.scales),
            },
        }
        text = "# Parameter file written by sd_model.calibrate\n" + yaml.safe_dump(
            json.loads(json.dumps(doc, default=float)), sort_keys=False, allow_unicode=True
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        return out

    def plot(self, **kwargs: Any) -> Figure:
        """Fit against data, one panel per series (:func:`sd_model.plots.plot_calibration`)."""
        from sd_model.plots import plot_calibration

        return plot_calibration(self, **kwargs)


def _plain(value: Any) -> Any:
    if isinstance(value, xr.DataArray | pd.Series | np.ndarray):
        raise CalibrationError(
            "to_yaml: fixed overrides that are arrays or time series cannot be written to a "
            "parameter file; give them as numbers or mappings of elements."
        )
    if isinstance(value, np.generic):
        return value.item()
    return value


def _markdown(df: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (without the optional tabulate package)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        cells = [f"{v:.6g}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
