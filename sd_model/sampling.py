"""Sweep designs: grid axes and random or quasi-random samples of parameters.

A sample is drawn in two steps: points in the unit hypercube (Latin hypercube, scrambled
Sobol or Halton sequences, or plain Monte Carlo), then each coordinate is mapped
through the inverse CDF of its parameter's distribution. The map is monotone, so the
design's properties in the unit cube (one point per stratum for LHS, balance of Sobol
points) hold in probability for every distribution.

Randomness is passed in as a seed: the same seed gives the same points, always.

>>> spec = SampleSpec.from_mapping(
...     {"method": "lhs", "n": 4, "seed": 1,
...      "parameters": {"birth rate": {"dist": "uniform", "lower": 0.01, "upper": 0.03}}}
... )
>>> values = draw(spec)
>>> sorted(int((v - 0.01) / 0.005) for v in values["birth rate"])
[0, 1, 2, 3]
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
from scipy import stats
from scipy.stats import qmc

from sd_model._errors import ScenarioError, SDModelWarning

SampleMethod = Literal["lhs", "sobol", "halton", "monte-carlo"]
DistName = Literal["uniform", "normal", "triangular", "lognormal", "discrete"]
SAMPLE_METHODS: tuple[str, ...] = get_args(SampleMethod)
DISTRIBUTIONS: tuple[str, ...] = get_args(DistName)

# Keys each distribution takes: (required, optional).
_DIST_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "uniform": (("lower", "upper"), ()),
    "normal": (("mean", "std"), ("lower", "upper")),
    "triangular": (("lower", "mode", "upper"), ()),
    "lognormal": (("mu", "sigma"), ("lower", "upper")),
    "discrete": (("values",), ("weights",)),
}


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)


@dataclass(frozen=True)
class Distribution:
    """A parameter's distribution.

    Parameters
    ----------
    dist : {"uniform", "normal", "triangular", "lognormal", "discrete"}
        ``uniform`` takes ``lower``, ``upper``; ``normal`` takes ``mean``, ``std``;
        ``triangular`` takes ``lower``, ``mode``, ``upper``; ``lognormal`` takes ``mu``
        and ``sigma`` of the variable's logarithm; ``discrete`` takes ``values`` and
        optional ``weights``. ``normal`` and ``lognormal`` accept ``lower`` and/or
        ``upper`` bounds, which truncate the distribution.
    params : mapping
        The numbers above.
    """

    dist: DistName
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: Any, where: str) -> Distribution:
        """Read ``{dist: ..., ...}``, or ``[lower, upper]`` as a uniform distribution."""
        if isinstance(spec, list | tuple) and len(spec) == 2 and all(map(_is_number, spec)):
            spec = {"dist": "uniform", "lower": spec[0], "upper": spec[1]}
        if not isinstance(spec, Mapping):
            raise ScenarioError(
                f"{where}: give a distribution as {{dist: uniform, lower: ..., upper: ...}} "
                f"or [lower, upper]; got {spec!r}."
            )
        dist = spec.get("dist", "uniform")
        if dist not in DISTRIBUTIONS:
            raise ScenarioError(
                f"{where}: unknown distribution {dist!r}; choose one of {', '.join(DISTRIBUTIONS)}."
            )
        required, optional = _DIST_KEYS[dist]
        params = {k: v for k, v in spec.items() if k != "dist"}
        unknown = sorted(set(params) - set(required) - set(optional))
        missing = [k for k in required if k not in params]
        if unknown or missing:
            allowed = ", ".join(required + optional)
            what = f"unknown key(s) {unknown}" if unknown else f"missing {missing}"
            raise ScenarioError(f"{where}: {dist} distribution: {what}; it takes {allowed}.")
        if dist == "discrete":
            values = params["values"]
            if not isinstance(values, list | tuple) or not values:
                raise ScenarioError(f"{where}: 'values' must be a non-empty list of numbers.")
            if not all(map(_is_number, values)):
                raise ScenarioError(f"{where}: 'values' must be numbers, got {values!r}.")
            weights = params.get("weights")
            if weights is not None and (
                not isinstance(weights, list | tuple)
                or len(weights) != len(values)
                or not all(_is_number(w) and w >= 0 for w in weights)
                or not sum(weights) > 0
            ):
                raise ScenarioError(
                    f"{where}: 'weights' must be {len(values)} non-negative numbers, not all 0."
                )
            clean: dict[str, Any] = {"values": [float(v) for v in values]}
            if weights is not None:
                clean["weights"] = [float(w) for w in weights]
            return cls(dist, clean)
        for k, v in params.items():
            if not (_is_number(v) and math.isfinite(float(v))):
                raise ScenarioError(f"{where}: {dist} '{k}' must be a finite number, got {v!r}.")
        p = {k: float(v) for k, v in params.items()}
        if dist == "uniform" and not p["lower"] < p["upper"]:
            raise ScenarioError(f"{where}: uniform needs lower < upper, got {p}.")
        if dist == "triangular" and not (p["lower"] <= p["mode"] <= p["upper"] > p["lower"]):
            raise ScenarioError(f"{where}: triangular needs lower <= mode <= upper, lower < upper.")
        if dist in ("normal", "lognormal"):
            scale = p["std"] if dist == "normal" else p["sigma"]
            if not scale > 0:
                raise ScenarioError(f"{where}: {dist} needs a positive spread, got {p}.")
            if "lower" in p and "upper" in p and not p["lower"] < p["upper"]:
                raise ScenarioError(f"{where}: {dist} needs lower < upper, got {p}.")
            if dist == "lognormal" and p.get("upper", 1.0) <= 0:
                raise ScenarioError(f"{where}: a lognormal's upper bound must be positive.")
        return cls(dist, p)

    def _frozen(self) -> Any:
        p = self.params
        if self.dist == "normal":
            return stats.norm(loc=p["mean"], scale=p["std"])
        if self.dist == "lognormal":
            return stats.lognorm(s=p["sigma"], scale=math.exp(p["mu"]))
        if self.dist == "triangular":
            width = p["upper"] - p["lower"]
            return stats.triang(c=(p["mode"] - p["lower"]) / width, loc=p["lower"], scale=width)
        return stats.uniform(loc=p["lower"], scale=p["upper"] - p["lower"])

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Map probabilities in [0, 1) to values (the inverse CDF, truncated to the bounds)."""
        u = np.asarray(u, dtype=float)
        p = self.params
        if self.dist == "discrete":
            values = np.asarray(p["values"])
            w = np.asarray(p.get("weights", np.ones(len(values))), dtype=float)
            cum = np.cumsum(w) / w.sum()
            idx = np.searchsorted(cum, u, side="right")
            return np.asarray(values[np.minimum(idx, len(values) - 1)], dtype=float)
        frozen = self._frozen()
        lo = p.get("lower", -math.inf)
        hi = p.get("upper", math.inf)
        # Truncation rescales u into [F(lower), F(upper)]: still monotone, so strata map
        # to strata of the truncated distribution.
        f_lo = float(frozen.cdf(lo)) if math.isfinite(lo) else 0.0
        f_hi = float(frozen.cdf(hi)) if math.isfinite(hi) else 1.0
        if not f_hi > f_lo:
            raise ScenarioError(
                f"The {self.dist} distribution {dict(p)} has no probability between its bounds."
            )
        x = np.asarray(frozen.ppf(f_lo + u * (f_hi - f_lo)), dtype=float)
        return np.clip(x, lo, hi)

    def to_json(self) -> dict[str, Any]:
        """The distribution as plain data."""
        return {"dist": self.dist, **self.params}


@dataclass(frozen=True)
class SampleSpec:
    """A sampling design: method, size, seed and one distribution per parameter.

    Parameters
    ----------
    method : {"lhs", "sobol", "halton", "monte-carlo"}
        How points are placed in the unit hypercube.
    n : int
        Number of points (scenarios). Sobol points are balanced when ``n`` is a power of 2.
    seed : int or None
        Seed of the generator; ``None`` draws a fresh seed (see :meth:`resolved`).
    parameters : mapping
        Parameter name (``"name"`` or ``"name[element]"``) -> :class:`Distribution`.
    """

    method: SampleMethod
    n: int
    seed: int | None
    parameters: Mapping[str, Distribution]

    @classmethod
    def from_mapping(cls, data: Any, where: str = "samples") -> SampleSpec:
        """Validate the ``samples:`` section of a sweep.

        Parameters
        ----------
        data : mapping
            ``{method: lhs, n: 100, seed: 1, parameters: {name: {dist: ..., ...}}}``.
        where : str
            Origin, for error messages.

        Returns
        -------
        SampleSpec

        Examples
        --------
        >>> SampleSpec.from_mapping({"n": 8, "seed": 3, "parameters": {"x": [0, 1]}}).method
        'lhs'
        """
        if isinstance(data, SampleSpec):
            return data
        if not isinstance(data, Mapping):
            raise ScenarioError(f"{where}: 'samples' must be a mapping (method, n, seed, ...).")
        allowed = ("method", "n", "seed", "parameters")
        unknown = [k for k in data if k not in allowed]
        if unknown:
            raise ScenarioError(
                f"{where}: unknown key(s) {unknown} in samples; allowed: {', '.join(allowed)}."
            )
        method = data.get("method", "lhs")
        if method not in SAMPLE_METHODS:
            raise ScenarioError(
                f"{where}: unknown sampling method {method!r}; "
                f"choose one of {', '.join(SAMPLE_METHODS)}."
            )
        n = data.get("n")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ScenarioError(f"{where}: 'n' must be a positive integer, got {n!r}.")
        seed = data.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise ScenarioError(f"{where}: 'seed' must be a non-negative integer, got {seed!r}.")
        params = data.get("parameters")
        if not isinstance(params, Mapping) or not params:
            raise ScenarioError(f"{where}: 'parameters' must map parameter names to distributions.")
        dists = {
            str(k): v if isinstance(v, Distribution) else Distribution.from_spec(v, f"{where}: {k}")
            for k, v in params.items()
        }
        return cls(method=method, n=n, seed=seed, parameters=dists)

    def resolved(self) -> SampleSpec:
        """This spec with a seed: a fresh one (recorded, so the sample can be redrawn) if none."""
        if self.seed is not None:
            return self
        entropy = np.random.SeedSequence().entropy
        seed = int(entropy) % (2**63)  # type: ignore[arg-type]
        return SampleSpec(self.method, self.n, seed, self.parameters)

    def to_json(self) -> dict[str, Any]:
        """The spec as plain data (the seed included)."""
        return {
            "method": self.method,
            "n": self.n,
            "seed": self.seed,
            "parameters": {k: d.to_json() for k, d in self.parameters.items()},
        }


def _qmc_rng_kw(cls: Any) -> str:
    # SciPy >= 1.15 names the generator argument ``rng``; earlier versions ``seed``.
    return "rng" if "rng" in inspect.signature(cls.__init__).parameters else "seed"


def unit_sample(method: SampleMethod, n: int, d: int, seed: int) -> np.ndarray:
    """``n`` points in the unit hypercube ``[0, 1)^d``.

    Parameters
    ----------
    method : {"lhs", "sobol", "halton", "monte-carlo"}
        Latin hypercube (one point per stratum of width ``1/n`` in each coordinate),
        scrambled Sobol or Halton sequences, or independent uniform draws.
    n, d : int
        Number of points and dimensions.
    seed : int
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, d)``.

    Examples
    --------
    >>> u = unit_sample("lhs", 5, 2, seed=0)
    >>> sorted((u[:, 0] * 5).astype(int).tolist())
    [0, 1, 2, 3, 4]
    """
    rng = np.random.default_rng(seed)
    if method == "monte-carlo":
        return rng.random((n, d))
    engines = {"lhs": qmc.LatinHypercube, "sobol": qmc.Sobol, "halton": qmc.Halton}
    if method not in engines:
        raise ScenarioError(f"Unknown sampling method {method!r}; choose one of {SAMPLE_METHODS}.")
    cls = engines[method]
    engine = cls(d, **{_qmc_rng_kw(cls): rng})
    if method == "sobol":
        m = math.log2(n)
        if m != int(m):
            warnings.warn(
                f"Sobol samples are balanced only when n is a power of 2; n={n} is not "
                f"(use {2 ** math.ceil(m)} or {2 ** max(int(m), 0)}).",
                SDModelWarning,
                stacklevel=3,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return np.asarray(engine.random(n))
        return np.asarray(engine.random_base2(int(m)))
    return np.asarray(engine.random(n))


def draw(spec: SampleSpec) -> dict[str, np.ndarray]:
    """Draw the sample a spec describes.

    Parameters
    ----------
    spec : SampleSpec
        Method, size, seed and distributions; a spec without a seed is first given one
        with :meth:`SampleSpec.resolved` (so pass a resolved spec to record the seed).

    Returns
    -------
    dict
        Parameter name -> values, shape ``(n,)``, in the order of ``spec.parameters``.

    Examples
    --------
    >>> spec = SampleSpec.from_mapping(
    ...     {"method": "monte-carlo", "n": 3, "seed": 7,
    ...      "parameters": {"a": {"dist": "discrete", "values": [1, 2]}}})
    >>> set(draw(spec)["a"]) <= {1.0, 2.0}
    True
    """
    spec = spec.resolved()
    assert spec.seed is not None
    names = list(spec.parameters)
    u = unit_sample(spec.method, spec.n, len(names), spec.seed)
    return {name: spec.parameters[name].ppf(u[:, k]) for k, name in enumerate(names)}


def grid_axis(spec: Any, where: str = "grid") -> np.ndarray:
    """The values of one grid axis.

    Parameters
    ----------
    spec : list of numbers, number, or mapping
        A list of values; ``{linspace: [start, stop, num]}`` (evenly spaced, both ends
        included); or ``{logspace: [start, stop, num]}`` (evenly spaced in log scale
        between the *values* start and stop, like :func:`numpy.geomspace`).
    where : str
        Origin, for error messages.

    Returns
    -------
    numpy.ndarray
        1-D float array.

    Examples
    --------
    >>> grid_axis({"linspace": [0, 1, 3]}).tolist()
    [0.0, 0.5, 1.0]
    >>> grid_axis({"logspace": [0.01, 1, 3]}).round(6).tolist()
    [0.01, 0.1, 1.0]
    """
    if _is_number(spec):
        spec = [spec]
    if isinstance(spec, Mapping):
        if len(spec) != 1 or next(iter(spec)) not in ("linspace", "logspace"):
            raise ScenarioError(
                f"{where}: give a list of values, {{linspace: [start, stop, num]}} or "
                f"{{logspace: [start, stop, num]}}; got {dict(spec)!r}."
            )
        kind, args = next(iter(spec.items()))
        if (
            not isinstance(args, Sequence)
            or len(args) != 3
            or not all(map(_is_number, args))
            or not isinstance(args[2], int)
            or args[2] < 1
        ):
            raise ScenarioError(
                f"{where}: {kind} takes [start, stop, num] with num a positive integer; "
                f"got {args!r}."
            )
        start, stop, num = float(args[0]), float(args[1]), int(args[2])
        if kind == "linspace":
            return np.linspace(start, stop, num)
        if not (start > 0 and stop > 0):
            raise ScenarioError(
                f"{where}: logspace takes the start and stop values themselves (both > 0), "
                f"got {args!r}."
            )
        return np.geomspace(start, stop, num)
    if isinstance(spec, list | tuple | np.ndarray) and len(spec):
        if not all(_is_number(v) and math.isfinite(float(v)) for v in spec):
            raise ScenarioError(f"{where}: grid values must be finite numbers, got {spec!r}.")
        values = np.asarray(spec, dtype=float)
        if len(np.unique(values)) != len(values):
            raise ScenarioError(f"{where}: repeated values in {list(spec)!r}.")
        return values
    raise ScenarioError(f"{where}: give a non-empty list of values, linspace or logspace.")
