"""Bootstrap refits: the sampling distribution of the fitted parameters.

Each replicate makes a new data set from the fit -- the fitted series plus resampled
residuals (*residual* bootstrap, Efron & Tibshirani 1993, section 9.5), plus moving
blocks of residuals that keep their autocorrelation (*block* bootstrap, Kunsch 1989;
block length ``n ** (1/3)`` after Hall, Horowitz & Jing 1995), or new draws from the
error model (*parametric*) -- and refits it by least squares from the fit's optimum.
Bootstrap intervals are preferred to likelihood-ratio ones for system-dynamics models,
whose residuals are autocorrelated (Dogan 2007; Struben, Sterman & Keith 2015).
"""

from __future__ import annotations

import math
import time as _time
from typing import TYPE_CHECKING, Literal

import numpy as np
import xarray as xr

from sd_model.calibrate.errors import CalibrationError, ErrorModel
from sd_model.calibrate.observations import Observations, Series
from sd_model.calibrate.optimise import local_fit
from sd_model.calibrate.payoff import Payoff, nuisance_names

if TYPE_CHECKING:
    from sd_model.calibrate.fit import Fit

BootstrapKind = Literal["residual", "block", "parametric"]


def bootstrap(
    fit: Fit,
    *,
    n: int = 200,
    kind: BootstrapKind = "residual",
    block_length: int | None = None,
    seed: int | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """Refit the model to ``n`` resampled data sets.

    Parameters
    ----------
    fit : Fit
        The fit to resample (its data, error models and optimum).
    n : int
        Replicates.
    kind : {"residual", "block", "parametric"}
        How new data are made. Count error models (``poisson``,
        ``negative_binomial``) always draw from the error model (parametric).
    block_length : int, optional
        Block length of ``kind="block"`` (default ``ceil(n_obs ** (1/3))`` per series).
    seed : int, optional
        The same seed gives the same replicates.
    progress : bool
        Show a progress bar.

    Returns
    -------
    xarray.Dataset
        One variable per parameter (and estimated error scale) with dims
        ``(chain, draw)``, ``chain`` of length 1; attrs as :func:`sample_posterior`'s.

    Examples
    --------
    >>> boot = sd_model.calibrate.bootstrap(fit, n=200, kind="block", seed=1)  # doctest: +SKIP
    >>> boot["contact rate"].quantile([0.025, 0.975])  # doctest: +SKIP
    """
    from sd_model.calibrate.fit import progress_bar
    from sd_model.calibrate.posterior import draws_dataset

    if kind not in ("residual", "block", "parametric"):
        raise CalibrationError(f"Unknown bootstrap {kind!r}; choose residual, block or parametric.")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise CalibrationError(f"n must be a positive integer, got {n!r}.")
    if block_length is not None and (not isinstance(block_length, int) or block_length < 1):
        raise CalibrationError(f"block_length must be a positive integer, got {block_length!r}.")
    payoff: Payoff = fit._payoff
    rng = np.random.default_rng(seed)
    nuisance = nuisance_names(payoff.obs, payoff.errors)
    names = [t.key for t in payoff.targets] + [name for _, name in nuisance]
    values = np.empty((1, n, len(names)))
    before = payoff.evaluator.n_evaluations
    started = _time.perf_counter()
    with progress_bar(progress, n, f"bootstrap ({kind})") as tick:
        for b in range(n):
            series = tuple(
                _resample(s, em, sim, sc, kind, block_length, rng)
                for s, em, sim, sc in zip(
                    payoff.series, payoff.errors, fit._sims, fit._scales, strict=True
                )
            )
            replicate = Payoff(
                payoff.evaluator,
                Observations(series),
                payoff.errors,
                payoff.weights,
                payoff.priors,
            )
            x, _ = local_fit(replicate, fit.x)
            _, scales = replicate.objective(x)
            values[0, b, : len(x)] = x
            for m, (i, _) in enumerate(nuisance):
                values[0, b, len(x) + m] = float(scales[i][0])
            if tick is not None:
                tick(1)
    seconds = _time.perf_counter() - started
    n_eval = payoff.evaluator.n_evaluations - before
    info = {
        "sampler": f"bootstrap ({kind}, least-squares refits from the fit)",
        "draws": n,
        "seed": "" if seed is None else int(seed),
        "n_evaluations": n_eval,
        "seconds": seconds,
        "evaluations_per_second": n_eval / seconds if seconds > 0 else math.nan,
    }
    ds = draws_dataset(payoff, values, names, {**info, "check": False})
    for name in names:  # replicates are independent: every draw counts
        ds[name].attrs["ess"] = float(n)
    return ds


def _resample(
    s: Series,
    em: ErrorModel,
    sim: np.ndarray,
    scale: float,
    kind: str,
    block_length: int | None,
    rng: np.random.Generator,
) -> Series:
    if kind == "parametric" or em.kind in ("poisson", "negative_binomial"):
        new = em.sample(sim, scale, rng)
    else:
        log = em.kind == "lognormal"
        resid = np.log(s.values) - np.log(sim) if log else s.values - sim
        if kind == "residual":
            picked = rng.choice(resid, size=len(resid), replace=True)
        else:
            picked = _moving_blocks(resid, block_length, rng)
        new = sim * np.exp(picked) if log else sim + picked
    return Series(s.label, s.variable, s.elements, s.position, s.times, np.asarray(new, float))


def _moving_blocks(resid: np.ndarray, length: int | None, rng: np.random.Generator) -> np.ndarray:
    n = len(resid)
    size = min(length or max(1, math.ceil(n ** (1.0 / 3.0))), n)
    starts = rng.integers(0, n - size + 1, size=math.ceil(n / size))
    return np.concatenate([resid[i : i + size] for i in starts])[:n]
