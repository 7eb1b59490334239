"""Confidence intervals from payoff thresholds, profiles and the Hessian.

A parameter's confidence bound at level ``L`` is where the payoff (a negative
log-likelihood) rises by ``chi2(1).ppf(L) / 2`` above its minimum: 1.36, 1.92 and 3.32
for 90, 95 and 99 % -- Vensim's thresholds for a Gaussian log-likelihood payoff (Vensim
Reference Manual, "Optimization: Sensitivity"), the likelihood-ratio interval of Wilks'
theorem. In a *profile* the other parameters are re-optimised at each trial value
(Venzon & Moolgavkar 1988); Vensim's own *payoff* bounds hold them at their optimum,
which gives narrower intervals when parameters are correlated.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats

from sd_model.calibrate.errors import CalibrationError
from sd_model.calibrate.optimise import local_fit
from sd_model.calibrate.payoff import Payoff

Method = Literal["profile", "payoff", "hessian"]


def intervals(
    payoff: Payoff,
    x: np.ndarray,
    best: float,
    stderr: np.ndarray,
    *,
    level: float,
    method: Method,
) -> pd.DataFrame:
    """Lower and upper bounds of every parameter (see the module docstring)."""
    if method == "hessian":
        z = float(stats.norm.ppf(0.5 + level / 2))
        lower = np.maximum(x - z * stderr, payoff.lower)
        upper = np.minimum(x + z * stderr, payoff.upper)
        at_lo, at_hi = lower <= payoff.lower, upper >= payoff.upper
    elif method == "payoff":
        lower, upper, at_lo, at_hi = _one_at_a_time(payoff, x, best, level)
    elif method == "profile":
        lower, upper, at_lo, at_hi = _profiles(payoff, x, best, stderr, level)
    else:
        raise CalibrationError(
            f"Unknown confidence method {method!r}; choose profile, payoff or hessian."
        )
    return pd.DataFrame(
        {
            "estimate": x,
            "lower": lower,
            "upper": upper,
            "lower_at_bound": np.asarray(at_lo, dtype=bool),
            "upper_at_bound": np.asarray(at_hi, dtype=bool),
        },
        index=pd.Index([t.key for t in payoff.targets], name="parameter"),
    )


def threshold(level: float) -> float:
    """Rise of a negative log-likelihood that bounds a ``level`` confidence interval."""
    return float(stats.chi2.ppf(level, 1)) / 2.0


def _one_at_a_time(
    payoff: Payoff, x: np.ndarray, best: float, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vensim's bounds: each parameter moved alone, all of them in one batch per step."""
    k = len(x)
    target = best + threshold(level)
    # Two sides per parameter; distance to each bound, scanned geometrically, one batch.
    ends = np.concatenate([payoff.lower, payoff.upper])
    which = np.concatenate([np.arange(k), np.arange(k)])
    fractions = np.geomspace(1e-5, 1.0, 41)
    points = []
    for end, j in zip(ends, which, strict=True):
        for f in fractions:
            p = x.copy()
            p[j] = x[j] + f * (end - x[j])
            points.append(p)
    values, _ = payoff.objective(np.array(points))
    values = values.reshape(2 * k, len(fractions))
    inner = np.zeros(2 * k)
    outer = np.full(2 * k, np.nan)
    for side in range(2 * k):
        over = np.nonzero(values[side] > target)[0]
        if len(over):
            outer[side] = fractions[over[0]]
            inner[side] = fractions[over[0] - 1] if over[0] > 0 else 0.0
    crossed = np.isfinite(outer)
    lo_f, hi_f = inner.copy(), np.where(crossed, outer, 1.0)
    for _ in range(30):  # bisection of every crossing at once: 2**-30 of the bracket
        mid = 0.5 * (lo_f + hi_f)
        pts = []
        for side in range(2 * k):
            p = x.copy()
            j = which[side]
            p[j] = x[j] + mid[side] * (ends[side] - x[j])
            pts.append(p)
        v, _ = payoff.objective(np.array(pts))
        above = v > target
        lo_f = np.where(crossed & ~above, mid, lo_f)
        hi_f = np.where(crossed & above, mid, hi_f)
    frac = np.where(crossed, 0.5 * (lo_f + hi_f), 1.0)
    bound = x[which] + frac * (ends - x[which])
    return bound[:k], bound[k:], ~crossed[:k], ~crossed[k:]


def _profiles(
    payoff: Payoff, x: np.ndarray, best: float, stderr: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    k = len(x)
    delta = threshold(level)
    out = {(-1.0): [], 1.0: []}  # type: dict[float, list[tuple[float, bool]]]
    for j in range(k):
        for side in (-1.0, 1.0):
            out[side].append(_profile_bound(payoff, x, best, j, side, stderr[j], delta))
    lower = np.array([v for v, _ in out[-1.0]])
    upper = np.array([v for v, _ in out[1.0]])
    return lower, upper, np.array([b for _, b in out[-1.0]]), np.array([b for _, b in out[1.0]])


def _profile_bound(
    payoff: Payoff,
    x: np.ndarray,
    best: float,
    j: int,
    side: float,
    se: float,
    delta: float,
) -> tuple[float, bool]:
    """Where the profile of parameter ``j`` crosses ``best + delta`` on one side."""
    end = payoff.upper[j] if side > 0 else payoff.lower[j]
    free = np.ones(len(x), dtype=bool)
    free[j] = False
    starts = {0.0: x}

    def rise(v: float) -> float:
        # Warm start from the nearest point already profiled: the path is smooth.
        near = min(starts, key=lambda u: abs(u - v))
        start = starts[near].copy()
        start[j] = v
        if free.any():
            xs, value = local_fit(payoff, start, free=free)
        else:
            xs, value = start, float(payoff.objective(start)[0][0])
        if np.isfinite(value):
            starts[v] = xs
        # sqrt(2 * rise) is nearly linear in v (exactly so for a quadratic payoff), which
        # makes the root finding below converge in a few steps.
        return math.sqrt(2.0 * max(value - best, 0.0)) if np.isfinite(value) else math.inf

    goal = math.sqrt(2.0 * delta)
    width = abs(end - x[j])
    if not width > 0:
        return float(end), True
    step = se * goal if np.isfinite(se) and se > 0 else 0.05 * width
    step = min(step, width)
    inner, outer = 0.0, step
    while True:
        g = rise(x[j] + side * outer)
        if g >= goal:
            break
        inner = outer
        if outer >= width:
            return float(end), True
        outer = min(outer * 2.0, width)

    def f(u: float) -> float:
        r = rise(x[j] + side * u)
        return (min(r, 10.0 * goal) if math.isfinite(r) else 10.0 * goal) - goal

    try:
        root = optimize.brentq(
            f, inner, outer, xtol=1e-6 * max(width, 1e-12), rtol=1e-6, maxiter=40
        )
    except ValueError:  # a warm start found another branch: keep the bracket's end
        root = outer
    return float(x[j] + side * root), False
