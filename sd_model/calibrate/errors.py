"""Error models: how observed data scatter around a simulated series.

Each error model gives, for a batch of simulated series, the negative log-likelihood of
the data (the *payoff* that calibration minimises), per-observation *deviance residuals*
(whose half sum of squares is the negative log-likelihood less its value for a perfect
fit, so that ``scipy.optimize.least_squares`` minimises the same payoff), the maximum
likelihood estimate of the error scale when it is estimated, and random draws of new data.

The five models are those of Vensim's payoff definitions and of readsdr's measurement
models: ``normal`` (Gaussian; sigma given or estimated, Vensim's "Gaussian with the
variance estimated"), ``lognormal`` (Gaussian on logarithms: relative errors),
``absolute`` (Laplace: Vensim's and Stella's robust absolute error), ``poisson`` and
``negative_binomial`` (counts; the latter in the mean/dispersion form of Stan's
``neg_binomial_2``: variance ``mu + mu**2 / phi``). Deviance residuals follow McCullagh
& Nelder (1989), *Generalized Linear Models*, 2nd ed., section 2.4.3.

Examples
--------
>>> import numpy as np
>>> em = ErrorModel("normal", sigma=2.0)
>>> float(em.nll(np.array([[1.0, 2.0]]), np.array([1.0, 4.0]), 2.0)[0] - em.nll(
...     np.array([[1.0, 4.0]]), np.array([1.0, 4.0]), 2.0)[0])
0.5
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
from scipy import special

from sd_model._errors import CalibrationError

ErrorKind = Literal["normal", "lognormal", "absolute", "poisson", "negative_binomial"]
ERROR_KINDS: tuple[str, ...] = get_args(ErrorKind)

# The range searched for an estimated negative-binomial dispersion (phi): below 1e-3 the
# variance is a thousand times mu**2; above 1e6 the model is Poisson for any count seen.
_LOG_PHI_RANGE = (math.log(1e-3), math.log(1e6))
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class ErrorModel:
    """The distribution of a data series around the simulated one.

    Parameters
    ----------
    kind : {"normal", "lognormal", "absolute", "poisson", "negative_binomial"}
        ``normal``: data ~ N(sim, sigma); ``lognormal``: log(data) ~ N(log(sim), sigma);
        ``absolute``: data ~ Laplace(sim, sigma) (robust, Vensim's absolute error);
        ``poisson``: data ~ Poisson(sim); ``negative_binomial``: data ~ NB(mean sim,
        dispersion phi), variance ``sim + sim**2 / phi``.
    sigma : float, optional
        Scale of ``normal``, ``lognormal`` and ``absolute``; ``None`` estimates it (by
        maximum likelihood in :func:`~sd_model.calibrate` and as a sampled parameter in
        :func:`~sd_model.sample_posterior`).
    dispersion : float, optional
        ``phi`` of ``negative_binomial``; ``None`` estimates it.

    Examples
    --------
    >>> ErrorModel.parse({"kind": "normal", "sigma": 0.5}, "error")
    ErrorModel(kind='normal', sigma=0.5, dispersion=None)
    """

    kind: ErrorKind = "normal"
    sigma: float | None = None
    dispersion: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ERROR_KINDS:
            raise CalibrationError(
                f"Unknown error model {self.kind!r}; choose one of {', '.join(ERROR_KINDS)}."
            )
        for name in ("sigma", "dispersion"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise CalibrationError(f"error model {self.kind}: {name} must be positive.")
        if self.sigma is not None and self.kind in ("poisson", "negative_binomial"):
            raise CalibrationError(f"error model {self.kind} has no sigma (counts).")
        if self.dispersion is not None and self.kind != "negative_binomial":
            raise CalibrationError(f"error model {self.kind} has no dispersion.")

    @classmethod
    def parse(cls, spec: Any, where: str) -> ErrorModel:
        """An error model from ``"normal"``, ``{"kind": ..., "sigma": ...}`` or itself."""
        if isinstance(spec, ErrorModel):
            return spec
        if isinstance(spec, str):
            return cls(spec)  # type: ignore[arg-type]
        if isinstance(spec, Mapping):
            unknown = sorted(set(spec) - {"kind", "sigma", "dispersion"})
            if unknown:
                raise CalibrationError(
                    f"{where}: unknown key(s) {unknown}; an error model takes kind, sigma, "
                    "dispersion."
                )
            try:
                return cls(
                    spec.get("kind", "normal"),
                    sigma=None if spec.get("sigma") is None else float(spec["sigma"]),
                    dispersion=None
                    if spec.get("dispersion") is None
                    else float(spec["dispersion"]),
                )
            except (TypeError, ValueError) as exc:
                raise CalibrationError(f"{where}: {exc}") from exc
        raise CalibrationError(
            f"{where}: give an error model as a name ({', '.join(ERROR_KINDS)}) or "
            f"{{kind: ..., sigma: ...}}; got {spec!r}."
        )

    # ------------------------------------------------------------------ facts
    @property
    def scale_name(self) -> str | None:
        """``"sigma"``, ``"dispersion"`` or None (Poisson has no scale)."""
        if self.kind == "poisson":
            return None
        return "dispersion" if self.kind == "negative_binomial" else "sigma"

    @property
    def fixed_scale(self) -> float | None:
        """The given scale (None when estimated or absent)."""
        return self.dispersion if self.kind == "negative_binomial" else self.sigma

    @property
    def estimated(self) -> bool:
        """True when the scale is a free (nuisance) parameter."""
        return self.scale_name is not None and self.fixed_scale is None

    def check_data(self, values: np.ndarray, label: str) -> None:
        """Refuse data the model cannot produce (non-positive under lognormal...)."""
        if self.kind == "lognormal" and np.any(values <= 0):
            bad = float(values[values <= 0][0])
            raise CalibrationError(
                f"data {label}: the lognormal error model needs positive data; found {bad:g}. "
                "Use 'normal' or 'absolute' for series that reach zero."
            )
        if self.kind in ("poisson", "negative_binomial"):
            if np.any(values < 0):
                bad = float(values[values < 0][0])
                raise CalibrationError(
                    f"data {label}: the {self.kind} error model is for counts; found {bad:g}."
                )
            if np.any(np.abs(values - np.round(values)) > 1e-9):
                bad = float(values[np.abs(values - np.round(values)) > 1e-9][0])
                raise CalibrationError(
                    f"data {label}: the {self.kind} error model is for whole counts; found {bad:g}."
                )

    # ------------------------------------------------------------------ maths
    def pointwise(self, sim: np.ndarray, obs: np.ndarray, scale: Any) -> np.ndarray:
        """Negative log-likelihood of each observation, shape of ``sim`` (B, n).

        Impossible simulated values (non-positive under lognormal, negative counts) give
        ``inf``: the run is penalised, not the data.
        """
        s = _col(scale, sim)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if self.kind == "normal":
                return 0.5 * ((sim - obs) / s) ** 2 + np.log(s) + 0.5 * math.log(2 * math.pi)
            if self.kind == "lognormal":
                ls = np.where(sim > 0, np.log(np.where(sim > 0, sim, 1.0)), np.nan)
                e = (ls - np.log(obs)) / s
                out = 0.5 * e**2 + np.log(s) + 0.5 * math.log(2 * math.pi) + np.log(obs)
                return np.where(sim > 0, out, np.inf)
            if self.kind == "absolute":
                return np.abs(sim - obs) / s + np.log(2.0 * s)
            mu = sim
            ok = mu >= 0
            mu_safe = np.where(ok, mu, 1.0)
            if self.kind == "poisson":
                out = mu_safe - special.xlogy(obs, mu_safe) + special.gammaln(obs + 1.0)
            else:
                phi = s
                out = -(
                    special.gammaln(obs + phi)
                    - special.gammaln(phi)
                    - special.gammaln(obs + 1.0)
                    + phi * (np.log(phi) - np.log(phi + mu_safe))
                    + special.xlogy(obs, mu_safe)
                    - special.xlogy(obs, phi + mu_safe)
                )
            # mu = 0 with a positive count is impossible: xlogy gives -inf there already.
            return np.where(ok, np.where(np.isnan(out), np.inf, out), np.inf)

    def nll(self, sim: np.ndarray, obs: np.ndarray, scale: Any) -> np.ndarray:
        """Negative log-likelihood of a series for each run, shape (B,)."""
        return self.pointwise(sim, obs, scale).sum(axis=-1)

    def saturated(self, obs: np.ndarray, scale: Any) -> np.ndarray:
        """Pointwise negative log-likelihood of a perfect fit (``sim == obs``)."""
        # A perfect fit of a zero count is mu = 0, which pointwise accepts.
        return self.pointwise(np.asarray(obs, dtype=float)[None, :], obs, scale)

    def residuals(self, sim: np.ndarray, obs: np.ndarray, scale: Any) -> np.ndarray:
        """Deviance residuals: ``0.5 * sum(r**2) == nll(sim) - nll(perfect fit)``.

        For ``normal`` this is ``(obs - sim) / sigma``; for the others the signed square
        root of twice the excess negative log-likelihood of each observation.
        """
        s = _col(scale, sim)
        excess = self.pointwise(sim, obs, s) - self.saturated(obs, s)
        sign = np.sign(obs - sim)
        if self.kind == "lognormal":
            sign = np.sign(np.log(obs) - np.log(np.where(sim > 0, sim, np.nan)))
        return sign * np.sqrt(np.maximum(excess, 0.0) * 2.0)

    def estimate_scale(self, sim: np.ndarray, obs: np.ndarray, weight: float = 1.0) -> np.ndarray:
        """Maximum-likelihood scale for each run (B,); NaN where it has none.

        ``normal``: ``sqrt(mean((obs - sim)**2))``; ``lognormal`` the same on logarithms;
        ``absolute``: ``mean(|obs - sim|)``; ``negative_binomial``: the dispersion by a
        golden-section search on ``log(phi)`` (the profile likelihood has no closed form).
        """
        n = sim.shape[-1]
        tiny = 1e-12 * (np.max(np.abs(obs)) + 1.0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if self.kind == "normal":
                return np.maximum(np.sqrt(np.sum((sim - obs) ** 2, axis=-1) / n), tiny)
            if self.kind == "lognormal":
                ls = np.log(np.where(sim > 0, sim, np.nan))
                return np.maximum(np.sqrt(np.sum((ls - np.log(obs)) ** 2, axis=-1) / n), 1e-12)
            if self.kind == "absolute":
                return np.maximum(np.mean(np.abs(sim - obs), axis=-1), tiny)
        if self.kind == "negative_binomial":
            return self._profile_dispersion(sim, obs)
        return np.full(sim.shape[0], np.nan)

    def _profile_dispersion(self, sim: np.ndarray, obs: np.ndarray) -> np.ndarray:
        a = np.full(sim.shape[0], _LOG_PHI_RANGE[0])
        b = np.full(sim.shape[0], _LOG_PHI_RANGE[1])
        for _ in range(60):  # the bracket shrinks by 0.618 per step: 3e-13 of the range
            c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
            fc, fd = self.nll(sim, obs, np.exp(c)), self.nll(sim, obs, np.exp(d))
            left = ~(fc > fd)  # NaN (a failed run) shrinks to the left; its payoff is inf
            a, b = np.where(left, a, c), np.where(left, d, b)
        return np.exp(0.5 * (a + b))

    def sample(self, mean: np.ndarray, scale: Any, rng: np.random.Generator) -> np.ndarray:
        """Random data around ``mean`` (for parametric bootstraps and predictive bands)."""
        s = np.asarray(scale, dtype=float)
        if self.kind == "normal":
            return mean + rng.normal(size=np.shape(mean)) * s
        if self.kind == "lognormal":
            return np.exp(np.log(np.maximum(mean, 1e-300)) + rng.normal(size=np.shape(mean)) * s)
        if self.kind == "absolute":
            return mean + rng.laplace(size=np.shape(mean)) * s
        mu = np.maximum(mean, 0.0)
        if self.kind == "poisson":
            return rng.poisson(mu).astype(float)
        # NB(mu, phi) as a gamma-Poisson mixture: rate ~ Gamma(phi, mu / phi).
        rate = rng.gamma(shape=np.broadcast_to(s, np.shape(mu)), scale=mu / s)
        return rng.poisson(rate).astype(float)

    def describe(self) -> str:
        """``"normal (sigma 2)"``, ``"poisson"``, ``"lognormal (sigma estimated)"``."""
        name = self.scale_name
        if name is None:
            return self.kind
        fixed = self.fixed_scale
        return f"{self.kind} ({name} {'estimated' if fixed is None else f'{fixed:g}'})"


def _col(scale: Any, sim: np.ndarray) -> Any:
    """A per-run scale (B,) as a column broadcasting over the observations."""
    s = np.asarray(scale, dtype=float)
    if s.ndim == 1 and sim.ndim == 2:
        return s[:, None]
    return s
