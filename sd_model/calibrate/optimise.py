"""Optimisers on the batched backend: a global search, then a local polish.

* Differential evolution (Storn & Price 1997) through
  ``scipy.optimize.differential_evolution(vectorized=True, updating="deferred")``: each
  generation's trial population is one batched run.
* Multi-start: a Latin-hypercube sample of the bounds evaluated as one batch, the best
  points polished.
* Local polish: ``scipy.optimize.least_squares`` (trust-region reflective, bounds) on the
  payoff's residuals, its finite-difference Jacobian computed as one batch of perturbed
  runs (central differences, one-sided at a bound).

Estimated error scales are profiled: the search minimises the profiled payoff; the
polish holds the scales at their current estimate, re-estimates them and polishes again
until the payoff stops falling (a block-coordinate descent on the joint likelihood).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize
from scipy.stats import qmc

from sd_model.calibrate.payoff import Payoff

# Relative step of the finite differences: about eps**(1/3), the optimum of central
# differences of a smooth function (Nocedal & Wright 2006, section 8.1). Runs of one
# batch share their integration steps, so even adaptive methods differentiate smoothly.
_REL_STEP = 1e-5
# Smallest differential-evolution population, in members.
_MIN_POPULATION = 64
# A failed run inside the polish: a residual this large rejects the step.
_FAILED_RESIDUAL = 1e8


@dataclass
class SearchResult:
    """Where a search ended."""

    x: np.ndarray
    fun: float
    nit: int
    message: str


def differential_evolution(
    payoff: Payoff,
    *,
    rng: np.random.Generator,
    popsize: int,
    maxiter: int,
    tol: float,
    x0: np.ndarray | None,
    progress: Callable[[int], None] | None = None,
) -> SearchResult:
    """Differential evolution with each generation evaluated as one batch."""

    def energies(x: np.ndarray) -> np.ndarray:
        # vectorized=True passes the population as (k, S).
        return payoff.objective(np.asarray(x, dtype=float).T)[0]

    def callback(intermediate_result: Any) -> None:
        if progress is not None:
            progress(1)

    bounds = list(zip(payoff.lower, payoff.upper, strict=True))
    # scipy's population is popsize * k: with one or two parameters that is too few to
    # sample a rugged payoff (an oscillator's has a minimum at every aliased frequency);
    # a batch of 64 costs little more than one of 15.
    popsize = max(popsize, -(-_MIN_POPULATION // len(bounds)))
    res = optimize.differential_evolution(
        energies,
        bounds,
        popsize=popsize,
        maxiter=maxiter,
        tol=tol,
        atol=1e-3,
        rng=rng,
        polish=False,
        init="latinhypercube",
        updating="deferred",
        vectorized=True,
        x0=x0,
        callback=callback,
    )
    return SearchResult(np.asarray(res.x, dtype=float), float(res.fun), int(res.nit), res.message)


def multistart(
    payoff: Payoff,
    *,
    rng: np.random.Generator,
    n: int,
    starts: int,
    progress: Callable[[int], None] | None = None,
) -> SearchResult:
    """A Latin-hypercube sample as one batch; the ``starts`` best points polished."""
    k = len(payoff.lower)
    unit = qmc.LatinHypercube(d=k, rng=rng).random(n)
    points = payoff.lower + unit * (payoff.upper - payoff.lower)
    values, _ = payoff.objective(points)
    order = np.argsort(values)
    best: SearchResult | None = None
    for i in order[:starts]:
        if not np.isfinite(values[i]):
            break
        x, fun = local_fit(payoff, points[i])
        if progress is not None:
            progress(1)
        if best is None or fun < best.fun:
            best = SearchResult(x, fun, 1, "multi-start")
    if best is None:
        raise all_failed(payoff)
    return best


def all_failed(payoff: Payoff) -> Exception:
    """The error when no run of a search had a finite payoff (naming the first failure)."""
    from sd_model.calibrate.errors import CalibrationError

    ev = payoff.evaluator
    reason = ev.failures[0].reason if ev.failures else "payoff not finite"
    return CalibrationError(
        f"{ev.model.path.name}: every run of the search failed or had an infinite payoff "
        f"({reason[:300]}); check the bounds, the error models and the data."
    )


def local_fit(
    payoff: Payoff,
    x0: np.ndarray,
    *,
    free: np.ndarray | None = None,
    rounds: int = 4,
) -> tuple[np.ndarray, float]:
    """Polish ``x0`` with least squares; parameters not ``free`` stay at ``x0``.

    Returns
    -------
    x : numpy.ndarray
        The polished point (the start when nothing better was found).
    value : float
        Its payoff.
    """
    x = np.asarray(x0, dtype=float).copy()
    value, scales = payoff.objective(x)
    best = float(value[0])
    if not np.isfinite(best):
        return x, best
    estimated = any(em.estimated for em in payoff.errors)
    for _ in range(rounds if estimated else 1):
        candidate = _least_squares(payoff, x, payoff.fixed_scales(scales), free)
        new_value, new_scales = payoff.objective(candidate)
        if not float(new_value[0]) < best - 1e-12:
            break
        improvement = best - float(new_value[0])
        x, best, scales = candidate, float(new_value[0]), new_scales
        if improvement < 1e-9 * max(1.0, abs(best)):
            break
    return x, best


def _least_squares(
    payoff: Payoff, x0: np.ndarray, scales: list[float], free: np.ndarray | None
) -> np.ndarray:
    idx = np.arange(len(x0)) if free is None else np.nonzero(free)[0]
    if not len(idx):
        return x0

    def full(z: np.ndarray) -> np.ndarray:
        x = np.array(x0, dtype=float)
        x[idx] = z
        return x

    def fun(z: np.ndarray) -> np.ndarray:
        r = payoff.residuals(full(z)[None, :], scales)[0]
        return np.where(np.isfinite(r), r, _FAILED_RESIDUAL)

    def jac(z: np.ndarray) -> np.ndarray:
        # One-sided differences: half the runs of central ones per Jacobian. The trust
        # region accepts a step only when the residuals themselves improve, so the O(h)
        # error of the slope changes the path, not the optimum (MINPACK's lmdif does the
        # same); the covariance keeps central differences.
        return jacobian(payoff, full(z), scales, idx, central=False)

    lo, hi = payoff.lower[idx], payoff.upper[idx]
    start = np.clip(x0[idx], lo, hi)
    try:
        res = optimize.least_squares(
            fun,
            start,
            jac=jac,
            bounds=(lo, hi),
            method="trf",
            x_scale="jac",
            ftol=1e-12,
            xtol=1e-12,
            gtol=1e-12,
            max_nfev=100 * (len(idx) + 1),
        )
    except ValueError:  # residuals not finite at the start: nothing to polish
        return x0
    return full(np.asarray(res.x, dtype=float))


def steps(payoff: Payoff, x: np.ndarray) -> np.ndarray:
    """Finite-difference steps, relative to the value or to the width of the bounds."""
    width = payoff.upper - payoff.lower
    return _REL_STEP * np.maximum(np.abs(x), 1e-3 * width)


def jacobian(
    payoff: Payoff,
    x: np.ndarray,
    scales: list[float],
    idx: np.ndarray | None = None,
    *,
    central: bool = True,
) -> np.ndarray:
    """The residuals' Jacobian at ``x`` over the parameters ``idx``, from one batch.

    Central differences by default; ``central=False`` takes one-sided differences (one
    run per parameter instead of two), forward unless the upper bound is in the way.
    """
    idx = np.arange(len(x)) if idx is None else idx
    h = steps(payoff, x)[idx]
    plus_ok = x[idx] + h <= payoff.upper[idx]
    minus_ok = x[idx] - h >= payoff.lower[idx]
    signs = (1.0, -1.0) if central else (0.0,)
    points = [x]
    for n, j in enumerate(idx):
        for sign in signs:
            p = x.copy()
            p[j] += (sign or (1.0 if plus_ok[n] else -1.0)) * h[n]
            points.append(p)
    r = payoff.residuals(np.array(points), scales)
    r = np.where(np.isfinite(r), r, np.nan)
    base = r[0]
    jac = np.empty((r.shape[1], len(idx)))
    for n in range(len(idx)):
        if not central:
            other = r[1 + n]
            jac[:, n] = (other - base) / h[n] if plus_ok[n] else (base - other) / h[n]
            continue
        up, down = r[1 + 2 * n], r[2 + 2 * n]
        if plus_ok[n] and minus_ok[n]:
            jac[:, n] = (up - down) / (2.0 * h[n])
        elif plus_ok[n]:
            jac[:, n] = (up - base) / h[n]
        else:
            jac[:, n] = (base - down) / h[n]
    return np.where(np.isfinite(jac), jac, 0.0)


def covariance(payoff: Payoff, x: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Inverse of the Gauss-Newton Hessian ``J'J`` of the payoff at ``x``.

    Returns the covariance and the indices of parameters the data do not inform (a zero
    direction of ``J'J``), whose variances are reported as infinite.
    """
    _, scales = payoff.objective(x)
    jac = jacobian(payoff, x, payoff.fixed_scales(scales))
    info = jac.T @ jac
    k = len(x)
    diag = np.sqrt(np.maximum(np.diag(info), 0.0))
    dead = [j for j in range(k) if not diag[j] > 0]
    live = [j for j in range(k) if diag[j] > 0]
    cov = np.full((k, k), np.nan)
    for j in dead:
        cov[j, j] = np.inf
    if live:
        sub = info[np.ix_(live, live)] / np.outer(diag[live], diag[live])
        # Scaled to unit diagonal first so the condition number reflects identifiability,
        # not units; pinv drops directions the data cannot tell apart.
        inv = np.linalg.pinv(sub, rcond=1e-12, hermitian=True)
        cov[np.ix_(live, live)] = inv / np.outer(diag[live], diag[live])
    return cov, dead
