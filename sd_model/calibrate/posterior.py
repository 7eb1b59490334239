"""``sample_posterior``: the parameters' posterior by ensemble MCMC on the batched backend.

The sampler is emcee's affine-invariant ensemble (Goodman & Weare 2010; Foreman-Mackey
et al. 2013) with ``vectorize=True``: each stretch move proposes for half of the walkers
at once, and those proposals are one batched run. Estimated error scales are sampled
with the model's parameters (as ``log(sigma)``; prior flat in ``log(sigma)``, Jeffreys'
prior, unless a prior is given for ``"sigma[series]"``); an estimated negative-binomial
dispersion ``phi`` gets the prior ``1/phi ~ Exponential(5)`` of Grinsztajn et al. (2021),
"Bayesian workflow for disease transmission modeling in Stan", *Stat. Med.* 40:6209.

Convergence is checked with the split R-hat of Gelman et al. (2013, *Bayesian Data
Analysis*, 3rd ed., section 11.4) over the walkers, and the effective sample size from
emcee's integrated autocorrelation time (Sokal 1997); poor values give a warning.
"""

from __future__ import annotations

import json
import math
import time as _time
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import xarray as xr

from sd_model._errors import SDModelWarning, import_optional
from sd_model.backends import BackendName
from sd_model.calibrate.errors import CalibrationError
from sd_model.calibrate.payoff import ErrorSpec, Payoff, build_payoff, nuisance_names
from sd_model.integrate import SolverOptions
from sd_model.options import TimeSettings

if TYPE_CHECKING:
    from sd_model.calibrate.fit import Fit
    from sd_model.model import Model

# Warn when a sample is this far from converged: R-hat < 1.1 (Gelman et al. 2013, BDA3
# section 11.5; Vehtari et al. 2021 ask 1.01 of independent chains, which the coupled
# walkers of an ensemble reach only in very long runs) and 100 effective draws.
RHAT_LIMIT = 1.1
ESS_LIMIT = 100.0
# The dispersion prior 1/phi ~ Exponential(rate) of Grinsztajn et al. (2021).
_NB_INV_PHI_RATE = 5.0


def sample_posterior(
    model: Model,
    data: Any,
    params: Mapping[str, tuple[float, float]],
    *,
    error: ErrorSpec = "normal",
    weights: Mapping[str, float] | None = None,
    priors: Mapping[str, Any] | None = None,
    fixed: Mapping[str, Any] | None = None,
    draws: int = 1000,
    tune: int | None = None,
    walkers: int | None = None,
    seed: int | None = None,
    method: Literal["emcee", "bootstrap"] = "emcee",
    start: Fit | None = None,
    time: TimeSettings | None = None,
    solver: SolverOptions | None = None,
    backend: BackendName = "auto",
    progress: bool = False,
    **bootstrap_options: Any,
) -> xr.Dataset:
    """Sample the posterior of the parameters given the data.

    Parameters
    ----------
    model, data, params, error, weights, priors, fixed, time, solver, backend
        As :func:`sd_model.calibrate`. Parameters without a prior have a flat prior
        within their bounds.
    draws : int
        Draws kept per walker (chain) after tuning (``method="bootstrap"``: refits).
    tune : int, optional
        Steps discarded first (default ``draws``).
    walkers : int, optional
        Walkers of the ensemble (default ``max(64, 4 * dims)``, even); each step runs
        half of them as one batch (larger batches run more evaluations per second).
    seed : int, optional
        The same seed gives the same draws.
    method : {"emcee", "bootstrap"}
        Ensemble MCMC, or bootstrap refits (:func:`sd_model.calibrate.bootstrap`, to which
        ``**bootstrap_options`` go: ``kind``, ``block_length``).
    start : Fit, optional
        A fit to start the walkers around (default: :func:`calibrate` with the same seed).
    progress : bool
        Show a progress bar.

    Returns
    -------
    xarray.Dataset
        One variable per parameter (and per estimated error scale, ``"sigma[series]"``)
        with dims ``(chain, draw)``, as ArviZ's ``from_dict``/``convert_to_dataset`` take
        it. Each variable's attrs hold ``rhat`` and ``ess``; the Dataset's attrs hold the
        sampler's settings, ``acceptance_fraction``, ``n_evaluations``,
        ``evaluations_per_second``, ``parameters`` (JSON list of the model parameters)
        and the model file.

    Warns
    -----
    SDModelWarning
        When an R-hat exceeds 1.1 or an effective sample size is below 100.

    Examples
    --------
    >>> post = sd_model.sample_posterior(model, data, {"contact rate": (0.5, 5)},
    ...                                  error="poisson", draws=500, seed=1)  # doctest: +SKIP
    >>> float(post["contact rate"].mean())  # doctest: +SKIP
    1.69...
    """
    if method == "bootstrap":
        from sd_model.calibrate.bootstrap import bootstrap
        from sd_model.calibrate.fit import calibrate

        fit = start or calibrate(
            model,
            data,
            params,
            error=error,
            weights=weights,
            priors=priors,
            fixed=fixed,
            seed=seed,
            time=time,
            solver=solver,
            backend=backend,
            progress=progress,
        )
        return bootstrap(fit, n=draws, seed=seed, progress=progress, **bootstrap_options)
    if method != "emcee":
        raise CalibrationError(f"Unknown method {method!r}; choose emcee or bootstrap.")
    if bootstrap_options:
        raise CalibrationError(
            f"Unknown option(s) {sorted(bootstrap_options)} of sample_posterior (emcee)."
        )
    _check_counts(draws=draws, tune=tune, walkers=walkers)
    emcee = import_optional("emcee", "calibrate", "sample_posterior")

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
        what="sampling",
    )
    seeds = np.random.SeedSequence(seed).spawn(3)
    if start is None:
        from sd_model.calibrate.fit import Fit, search

        rng = np.random.default_rng(seeds[0])
        started = _time.perf_counter()
        found = search(payoff, "differential_evolution", rng, progress=progress)
        start = Fit(
            payoff,
            found,
            method="differential_evolution",
            seed=seed,
            seconds=_time.perf_counter() - started,
        )
    target = _LogPosterior(payoff)
    ndim = target.ndim
    nwalkers = walkers or max(64, 4 * ndim)
    nwalkers += nwalkers % 2
    if nwalkers < 2 * ndim:
        raise CalibrationError(f"walkers must be at least {2 * ndim} (twice the dimensions).")
    tune = draws if tune is None else tune
    p0 = target.initial(start, nwalkers, np.random.default_rng(seeds[1]))
    sampler = emcee.EnsembleSampler(nwalkers, ndim, target, vectorize=True)
    before = payoff.evaluator.n_evaluations
    started = _time.perf_counter()
    rstate = np.random.RandomState(seeds[2].generate_state(1)[0])
    initial = emcee.State(p0, random_state=rstate.get_state())
    sampler.run_mcmc(initial, tune + draws, progress=progress)
    seconds = _time.perf_counter() - started
    chain = sampler.get_chain()[tune:]  # (draws, walkers, ndim)
    n_eval = payoff.evaluator.n_evaluations - before
    payoff.evaluator.warn_failures("sampling")
    info = {
        "sampler": "emcee.EnsembleSampler (stretch move, vectorized)",
        "walkers": nwalkers,
        "tune": tune,
        "draws": draws,
        "seed": "" if seed is None else int(seed),
        "acceptance_fraction": float(np.mean(sampler.acceptance_fraction)),
        "n_evaluations": n_eval,
        "seconds": seconds,
        "evaluations_per_second": n_eval / seconds if seconds > 0 else math.nan,
    }
    return draws_dataset(payoff, target.to_values(chain), target.names, info)


def _check_counts(**counts: int | None) -> None:
    for name, value in counts.items():
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < (0 if name == "tune" else 1)
        ):
            raise CalibrationError(f"{name} must be a positive integer, got {value!r}.")


class _LogPosterior:
    """Log-posterior of walker positions (W, d): model parameters, then log-scales."""

    def __init__(self, payoff: Payoff) -> None:
        self.payoff = payoff
        self.k = len(payoff.targets)
        self.nuisance = nuisance_names(payoff.obs, payoff.errors)
        self.ndim = self.k + len(self.nuisance)
        self.names = [t.key for t in payoff.targets] + [n for _, n in self.nuisance]

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        pos = np.atleast_2d(positions)
        theta = pos[:, : self.k]
        lp = self.payoff.log_prior(theta)
        out = np.full(len(pos), -np.inf)
        inside = np.isfinite(lp)
        if not inside.any():
            return out
        sims, ok = self.payoff.simulate(theta[inside])
        scales = self.payoff.scales(sims, estimate=False)
        log_scales = pos[inside, self.k :]
        extra = np.zeros(int(inside.sum()))
        for n, (i, name) in enumerate(self.nuisance):
            u = log_scales[:, n]
            scales[i] = np.exp(u)
            extra += self._log_prior_scale(name, self.payoff.errors[i].kind, u)
        with np.errstate(all="ignore"):
            nll = self.payoff.nll(sims, scales) @ self.payoff.weights
            value = -nll + lp[inside] + extra
        out[inside] = np.where(ok & np.isfinite(value), value, -np.inf)
        return out

    def _log_prior_scale(self, name: str, kind: str, u: np.ndarray) -> np.ndarray:
        """Log-density of ``u = log(scale)`` (the Jacobian ``e**u`` included)."""
        dist = self.payoff.nuisance_priors.get(name)
        with np.errstate(all="ignore"):
            if dist is not None:
                return np.asarray(dist.logpdf(np.exp(u)), dtype=float) + u
            if kind == "negative_binomial":
                # psi = 1/phi = e**-u ~ Exponential(rate): log p(u) = log rate - rate psi - u.
                return math.log(_NB_INV_PHI_RATE) - _NB_INV_PHI_RATE * np.exp(-u) - u
        return np.zeros_like(u)  # Jeffreys: flat in log(sigma)

    def initial(self, fit: Fit, nwalkers: int, rng: np.random.Generator) -> np.ndarray:
        """Walkers drawn around the fit from its covariance, inside the bounds."""
        p = self.payoff
        cov = np.asarray(fit.covariance.values, dtype=float)
        sd = np.sqrt(np.where(np.isfinite(np.diag(cov)), np.diag(cov), 0.0))
        width = p.upper - p.lower
        sd = np.where(sd > 0, np.minimum(sd, 0.1 * width), 1e-3 * width)
        center = np.concatenate([fit.x, [math.log(fit._scales[i]) for i, _ in self.nuisance]])
        spread = np.concatenate([sd, np.full(len(self.nuisance), 0.05)])
        out = np.empty((nwalkers, self.ndim))
        filled = 0
        for _ in range(100):
            trial = center + 0.5 * spread * rng.standard_normal((nwalkers, self.ndim))
            good = trial[np.isfinite(self(trial))]
            take = min(len(good), nwalkers - filled)
            out[filled : filled + take] = good[:take]
            filled += take
            if filled == nwalkers:
                return out
            spread = spread * 0.5
        raise CalibrationError(
            "sample_posterior: cannot place the walkers around the fit (the log-posterior "
            "is not finite there); check the bounds and priors."
        )

    def to_values(self, chain: np.ndarray) -> np.ndarray:
        """Positions (draws, walkers, d) as parameter values (chain, draw, d)."""
        values = np.transpose(chain, (1, 0, 2)).copy()
        values[..., self.k :] = np.exp(values[..., self.k :])
        return values


def draws_dataset(
    payoff: Payoff, values: np.ndarray, names: list[str], info: Mapping[str, Any]
) -> xr.Dataset:
    """Draws (chain, draw, d) as a Dataset with diagnostics; warns when they are poor."""
    ev = payoff.evaluator
    nchain, ndraw, _ = values.shape
    data_vars = {}
    problems = []
    ess_all = _ess(values)
    for j, name in enumerate(names):
        x = values[:, :, j]
        rhat = split_rhat(x) if nchain > 1 else math.nan
        ess = float(ess_all[j])
        attrs = {"rhat": rhat, "ess": ess}
        data_vars[name] = (("chain", "draw"), x, attrs)
        if nchain > 1 and ndraw >= 4 and (not rhat < RHAT_LIMIT):
            problems.append(f"R-hat of {name!r} is {rhat:.3f} (> {RHAT_LIMIT})")
        if not ess >= ESS_LIMIT:
            problems.append(f"effective sample size of {name!r} is {ess:.0f} (< {ESS_LIMIT:.0f})")
    ds = xr.Dataset(data_vars, coords={"chain": np.arange(nchain), "draw": np.arange(ndraw)})
    ds.attrs = {
        **{k: v for k, v in info.items() if k != "check"},
        "parameters": json.dumps([t.key for t in payoff.targets]),
        "fixed": json.dumps(ev.fixed, default=str),
        "model_file": ev.model.path.name,
        "model_sha256": ev.model.sha256,
        "backend": ev.backend,
        "error_models": json.dumps(
            {s.label: em.describe() for s, em in zip(payoff.series, payoff.errors, strict=True)}
        ),
    }
    if problems and info.get("check", True):
        warnings.warn(
            f"{ev.model.path.name}: the posterior sample may not have converged: "
            + "; ".join(problems)
            + ". Draw more (draws=, tune=).",
            SDModelWarning,
            stacklevel=3,
        )
    return ds


def split_rhat(x: np.ndarray) -> float:
    """Split R-hat (Gelman et al. 2013, BDA3 eq. 11.4) of draws shaped (chain, draw)."""
    n = x.shape[1] // 2
    if n < 2:
        return math.nan
    halves = np.concatenate([x[:, :n], x[:, -n:]], axis=0)
    means = halves.mean(axis=1)
    within = halves.var(axis=1, ddof=1).mean()
    between = n * means.var(ddof=1)
    if not within > 0:
        return 1.0 if not between > 0 else math.inf
    var_plus = (n - 1) / n * within + between / n
    return float(math.sqrt(var_plus / within))


def _ess(values: np.ndarray) -> np.ndarray:
    """Effective sample sizes from emcee's integrated autocorrelation time."""
    emcee = import_optional("emcee", "calibrate", "sample_posterior")

    nchain, ndraw, d = values.shape
    if ndraw < 4:
        return np.full(d, math.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # emcee's "chain too short" is reported by us
        tau = emcee.autocorr.integrated_time(np.transpose(values, (1, 0, 2)), quiet=True, tol=0)
    tau = np.maximum(np.asarray(tau, dtype=float), 1.0)
    return nchain * ndraw / tau
