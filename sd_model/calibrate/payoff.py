"""The payoff of a calibration: data, error models, weights and priors in one function.

The payoff of a parameter vector is the weighted negative log-likelihood of the data
plus the negative log-prior density of the parameters (Vensim's payoff with its sign
turned: smaller is better). Error scales that are estimated are profiled out (replaced
by their maximum-likelihood value for each run), so the search space holds the model's
parameters only. :meth:`Payoff.residuals` gives the same payoff as a sum of squares for
``scipy.optimize.least_squares``: deviance residuals of the data, and for each prior the
signed root of twice its log-density below its maximum.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import optimize

from sd_model.calibrate.errors import CalibrationError, ErrorModel
from sd_model.calibrate.observations import Observations, Series
from sd_model.calibrate.params import Evaluator, ParamTarget
from sd_model.overrides import normalize_name

ErrorSpec = Any  # str | ErrorModel | Mapping[str, str | ErrorModel | Mapping]


def _series_for(obs: Observations, key: str, where: str) -> list[int]:
    """Indices of the series a key names: a series label or a variable (all its series)."""
    norm = normalize_name(key)
    hits = [
        i
        for i, s in enumerate(obs.series)
        if norm
        in (
            normalize_name(s.label),
            normalize_name(s.variable.name),
            normalize_name(s.variable.py_name),
        )
    ]
    if not hits:
        labels = ", ".join(repr(s.label) for s in obs.series)
        raise CalibrationError(f"{where}: {key!r} names no observed series (series: {labels}).")
    return hits


def assign_errors(obs: Observations, error: ErrorSpec) -> list[ErrorModel]:
    """One error model per series: one for all, or by variable name or series label."""
    if isinstance(error, str | ErrorModel) or (
        isinstance(error, Mapping)
        and set(error) <= {"kind", "sigma", "dispersion"}
        and error
        and "kind" in error
    ):
        em = ErrorModel.parse(error, "error")
        out = [em] * len(obs.series)
    elif isinstance(error, Mapping):
        out = [ErrorModel("normal")] * len(obs.series)
        for key, spec in error.items():
            em = ErrorModel.parse(spec, f"error[{key!r}]")
            for i in _series_for(obs, str(key), "error"):
                out[i] = em
    else:
        raise CalibrationError(
            f"error: give an error model name, an ErrorModel, or a mapping of series to "
            f"error models; got {error!r}."
        )
    for s, em in zip(obs.series, out, strict=True):
        em.check_data(s.values, s.label)
    return out


def assign_weights(obs: Observations, weights: Mapping[str, float] | None) -> np.ndarray:
    """Per-series multipliers of the negative log-likelihood (default 1)."""
    w = np.ones(len(obs.series))
    for key, value in (weights or {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise CalibrationError(f"weights: {key!r} must be a positive number, got {value!r}.")
        for i in _series_for(obs, str(key), "weights"):
            w[i] = float(value)
    return w


def nuisance_names(obs: Observations, errors: Sequence[ErrorModel]) -> list[tuple[int, str]]:
    """``(series index, "sigma[label]")`` for each estimated error scale."""
    return [
        (i, f"{em.scale_name}[{s.label}]")
        for i, (s, em) in enumerate(zip(obs.series, errors, strict=True))
        if em.estimated
    ]


def resolve_priors(
    targets: Sequence[ParamTarget],
    nuisance: Sequence[str],
    priors: Mapping[str, Any] | None,
) -> tuple[list[Any], dict[str, Any]]:
    """Priors by parameter (None: flat within the bounds) and by nuisance name."""
    by_norm = {normalize_name(t.key): j for j, t in enumerate(targets)}
    nuis_norm = {normalize_name(n): n for n in nuisance}
    model_priors: list[Any] = [None] * len(targets)
    nuis_priors: dict[str, Any] = {}
    for key, dist in (priors or {}).items():
        if not (hasattr(dist, "logpdf") and hasattr(dist, "rvs")):
            raise CalibrationError(
                f"priors: {key!r} must be a frozen scipy.stats distribution (e.g. "
                f"scipy.stats.lognorm(0.5, scale=1.7)); got {type(dist).__name__}."
            )
        norm = normalize_name(str(key))
        if norm in by_norm:
            model_priors[by_norm[norm]] = dist
        elif norm in nuis_norm:
            nuis_priors[nuis_norm[norm]] = dist
        else:
            names = [t.key for t in targets] + list(nuisance)
            raise CalibrationError(
                f"priors: {key!r} is not a fitted parameter (fitted: {', '.join(names)})."
            )
    return model_priors, nuis_priors


def _max_logpdf(dist: Any, low: float, high: float) -> float:
    """The largest log-density of ``dist`` on [low, high] (for the prior residuals)."""
    xs = np.linspace(low, high, 513)
    with np.errstate(all="ignore"):
        lp = np.asarray(dist.logpdf(xs), dtype=float)
    lp = np.where(np.isfinite(lp), lp, -np.inf)
    i = int(np.argmax(lp))
    if not np.isfinite(lp[i]):
        raise CalibrationError(
            f"priors: a prior has no probability within the bounds [{low:g}, {high:g}]."
        )
    a, b = xs[max(i - 1, 0)], xs[min(i + 1, len(xs) - 1)]
    res = optimize.minimize_scalar(
        lambda x: -float(dist.logpdf(x)), bounds=(a, b), method="bounded"
    )
    return max(float(lp[i]), -float(res.fun)) if res.success else float(lp[i])


class Payoff:
    """Weighted negative log-likelihood plus negative log-prior of parameter vectors.

    Parameters
    ----------
    evaluator : Evaluator
    obs : Observations
    errors : sequence of ErrorModel
        One per series.
    weights : numpy.ndarray
        One per series.
    priors : sequence
        One frozen scipy distribution (or None) per free parameter.
    """

    def __init__(
        self,
        evaluator: Evaluator,
        obs: Observations,
        errors: Sequence[ErrorModel],
        weights: np.ndarray,
        priors: Sequence[Any],
    ) -> None:
        self.evaluator = evaluator
        self.obs = obs
        self.errors = list(errors)
        self.weights = np.asarray(weights, dtype=float)
        self.priors = list(priors)
        # Priors of estimated error scales (by "sigma[label]"), used by the sampler.
        self.nuisance_priors: dict[str, Any] = {}
        self.targets = evaluator.targets
        self.index = obs.time_index(evaluator.grid)
        self.lower = np.array([t.low for t in self.targets])
        self.upper = np.array([t.high for t in self.targets])
        self._prior_max = [
            None if p is None else _max_logpdf(p, t.low, t.high)
            for p, t in zip(self.priors, self.targets, strict=True)
        ]
        self._prior_mode = [
            math.nan if p is None else _mode(p, t)
            for p, t in zip(self.priors, self.targets, strict=True)
        ]

    @property
    def series(self) -> tuple[Series, ...]:
        """The observed series."""
        return self.obs.series

    def simulate(self, theta: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Simulated values at the observations: one (B, n_s) array per series, and ok."""
        _, values, ok = self.evaluator.run(theta)
        sims = []
        for s, idx in zip(self.obs.series, self.index, strict=True):
            v = values[s.variable.py_name]
            index: tuple[Any, ...] = (slice(None), idx, *s.position)
            sims.append(np.asarray(v[index], dtype=float))
        return sims, ok

    def scales(self, sims: Sequence[np.ndarray], *, estimate: bool = True) -> list[np.ndarray]:
        """Each series' error scale per run (B,): the given one, or its ML estimate.

        With ``estimate=False`` estimated scales are NaN (a sampler supplies them).
        """
        out = []
        for s, em, sim in zip(self.obs.series, self.errors, sims, strict=True):
            fixed = em.fixed_scale
            if fixed is not None:
                out.append(np.full(len(sim), fixed))
            elif em.scale_name is None or not estimate:
                out.append(np.full(len(sim), np.nan))
            else:
                out.append(em.estimate_scale(sim, s.values))
        return out

    def nll(self, sims: Sequence[np.ndarray], scales: Sequence[Any]) -> np.ndarray:
        """Unweighted negative log-likelihood per run and series, (B, S)."""
        cols = [
            em.nll(sim, s.values, sc)
            for s, em, sim, sc in zip(self.obs.series, self.errors, sims, scales, strict=True)
        ]
        return np.stack(cols, axis=1)

    def log_prior(self, theta: np.ndarray) -> np.ndarray:
        """Sum of the priors' log-densities per run (flat priors count 0), (B,)."""
        theta = np.atleast_2d(theta)
        total = np.zeros(len(theta))
        inside = np.all((theta >= self.lower) & (theta <= self.upper), axis=1)
        with np.errstate(all="ignore"):
            for j, p in enumerate(self.priors):
                if p is not None:
                    total = total + np.asarray(p.logpdf(theta[:, j]), dtype=float)
        return np.where(inside, total, -np.inf)

    def objective(self, theta: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Payoff per run (B,), ``inf`` for failed runs, and the scales used."""
        theta = np.atleast_2d(theta)
        sims, ok = self.simulate(theta)
        scales = self.scales(sims)
        with np.errstate(all="ignore"):
            value = self.nll(sims, scales) @ self.weights - self.log_prior(theta)
        value = np.where(ok & np.isfinite(value), value, np.inf)
        return value, scales

    def residuals(self, theta: np.ndarray, scales: Sequence[float]) -> np.ndarray:
        """Residuals (B, m) whose half sum of squares is the payoff less a constant.

        The error scales are held at ``scales`` (one per series). Failed runs give NaN.
        """
        theta = np.atleast_2d(theta)
        sims, ok = self.simulate(theta)
        parts = []
        for s, em, sim, sc, w in zip(
            self.obs.series, self.errors, sims, scales, self.weights, strict=True
        ):
            parts.append(math.sqrt(w) * em.residuals(sim, s.values, sc))
        for j, (p, top) in enumerate(zip(self.priors, self._prior_max, strict=True)):
            if p is None:
                continue
            with np.errstate(all="ignore"):
                excess = top - np.asarray(p.logpdf(theta[:, j]), dtype=float)
            sign = np.where(theta[:, j] >= self._prior_mode[j], 1.0, -1.0)
            parts.append((sign * np.sqrt(2.0 * np.maximum(excess, 0.0)))[:, None])
        r = np.concatenate(parts, axis=1)
        r[~ok] = np.nan
        return r

    def fixed_scales(self, scales: Sequence[np.ndarray], b: int = 0) -> list[float]:
        """Scales of run ``b`` as plain numbers (for residuals)."""
        return [float(np.asarray(s)[b]) for s in scales]


def _mode(dist: Any, target: ParamTarget) -> float:
    """Where a prior's density peaks within the bounds (on a fine grid)."""
    xs = np.linspace(target.low, target.high, 2049)
    with np.errstate(all="ignore"):
        lp = np.asarray(dist.logpdf(xs), dtype=float)
    return float(xs[int(np.argmax(np.where(np.isfinite(lp), lp, -np.inf)))])


def build_payoff(
    model: Any,
    data: Any,
    params: Mapping[str, Any],
    *,
    error: ErrorSpec,
    weights: Mapping[str, float] | None,
    priors: Mapping[str, Any] | None,
    fixed: Mapping[str, Any] | None,
    time: Any,
    solver: Any,
    backend: Any,
    what: str,
    observations: Observations | None = None,
) -> Payoff:
    """Resolve everything a calibration needs and bind it into a :class:`Payoff`.

    ``time`` is a :class:`~sd_model.options.TimeSettings` or None (the model's),
    ``solver`` a :class:`~sd_model.integrate.SolverOptions` or None (the method the
    model file declares). ``observations`` replaces ``data`` when already resolved.
    """
    from sd_model.calibrate.observations import read_observations
    from sd_model.calibrate.params import resolve_params
    from sd_model.integrate import SolverOptions

    obs = observations if observations is not None else read_observations(model, data)
    grid = model.time_grid(**time.as_kwargs()) if time is not None else model.time_grid()
    options = solver if solver is not None else SolverOptions(model.resolve_method(None))
    obs.time_index(grid)  # times outside the run are an error before anything runs
    errors = assign_errors(obs, error)
    w = assign_weights(obs, weights)
    targets = resolve_params(model, params, fixed=fixed)
    model_priors, nuisance_priors = resolve_priors(
        targets, [n for _, n in nuisance_names(obs, errors)], priors
    )
    evaluator = Evaluator(
        model,
        targets,
        solver=options,
        grid=grid,
        backend=backend,
        fixed=fixed,
        outputs=obs.variables,
        what=what,
    )
    payoff = Payoff(evaluator, obs, errors, w, model_priors)
    payoff.nuisance_priors = nuisance_priors
    return payoff
