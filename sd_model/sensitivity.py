"""Global sensitivity analysis: SALib's methods on batched evaluations of a model.

A sensitivity analysis asks which parameters a model's outputs depend on, over given
ranges. SALib draws the parameter sets (Saltelli's extension of Sobol' sequences,
Morris trajectories, FAST search curves), :func:`sd_model.evaluate.evaluate` runs them
as a few large batches on the compiled backend (a loop on PySD's, with a warning), and
SALib computes the indices at every saved time and subscript element of each output.

>>> import sd_model
>>> model = sd_model.load("tests/models/ishigami.mdl")  # doctest: +SKIP
>>> bounds = {name: (-3.14159265, 3.14159265) for name in ("x1", "x2", "x3")}
>>> si = sd_model.sensitivity(model, bounds, outputs="y", n=1024, seed=1, times=0)  # doctest: +SKIP
>>> si["S1"].round(2).values.tolist()  # doctest: +SKIP
[0.31, 0.44, 0.0]
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import xarray as xr

from sd_model._errors import ParameterError, SDModelError, SettingsError, import_optional
from sd_model._meta import VariableInfo
from sd_model.backends import BackendName
from sd_model.evaluate import choose_backend, evaluate
from sd_model.integrate import SolverOptions, TimeGrid
from sd_model.options import TimeSettings
from sd_model.overrides import normalize_name

if TYPE_CHECKING:
    from sd_model.model import Model

__all__ = [
    "SENSITIVITY_METHODS",
    "STATISTICS",
    "SensitivityMethod",
    "sensitivity",
]

SensitivityMethod = Literal["sobol", "morris", "fast"]
SENSITIVITY_METHODS: tuple[str, ...] = get_args(SensitivityMethod)

# n when none is given: Sobol' base samples (a power of two), Morris trajectories, FAST
# runs per parameter.
_DEFAULT_N = {"sobol": 1024, "morris": 64, "fast": 1024}

# The data variables each method gives, with their long names (one table for the
# analysis, the files, the summary and the plot).
STATISTICS: dict[str, dict[str, str]] = {
    "sobol": {
        "S1": "first-order Sobol' index",
        "S1_conf": "half-width of the confidence interval of S1",
        "ST": "total-order Sobol' index",
        "ST_conf": "half-width of the confidence interval of ST",
    },
    "morris": {
        "mu": "mean elementary effect",
        "mu_star": "mean absolute elementary effect",
        "sigma": "standard deviation of the elementary effects",
        "mu_star_conf": "half-width of the confidence interval of mu_star",
    },
    "fast": {
        "S1": "first-order sensitivity index (FAST)",
        "S1_conf": "half-width of the bootstrap interval of S1 (indicative only)",
        "ST": "total-order sensitivity index (extended FAST)",
        "ST_conf": "half-width of the bootstrap interval of ST (indicative only)",
    },
}

# Saved values of one chunk of runs on the compiled backend stay below this.
_CHUNK_BYTES = 128 * 2**20
_MAX_CHUNK = 4096


# --------------------------------------------------------------------------- design
@dataclass(frozen=True)
class _Design:
    """The varied parameters and how a row of a SALib sample becomes overrides.

    ``slots[j]`` is the py_name parameter ``j`` sets and, for a subscripted constant,
    the flat positions (C order) of the elements it sets: every element for a bare name,
    one for ``"name[element]"``.
    """

    names: list[str]
    lower: np.ndarray
    upper: np.ndarray
    fixed: dict[str, Any]  # normalized overrides every run starts from
    slots: list[tuple[str, np.ndarray | None]]

    @property
    def problem(self) -> dict[str, Any]:
        """SALib's problem definition."""
        return {
            "num_vars": len(self.names),
            "names": list(self.names),
            "bounds": [
                [float(lo), float(hi)] for lo, hi in zip(self.lower, self.upper, strict=True)
            ],
        }

    def param_sets(self, rows: np.ndarray, *, plain: bool = False) -> list[dict[str, Any]]:
        """Normalized overrides, one mapping per row of ``rows`` (shape ``(B, D)``).

        With ``plain``, subscripted values are NumPy arrays in the layout of their
        DataArrays (see :func:`_plain_arrays_fit`) instead of DataArrays.
        """
        arrays = {py: self.fixed[py] for py, pos in self.slots if pos is not None}
        out: list[dict[str, Any]] = []
        for row in rows:
            params = dict(self.fixed)
            values = {py: np.array(arr.values, dtype=float) for py, arr in arrays.items()}
            for (py, pos), x in zip(self.slots, row, strict=True):
                if pos is None:
                    params[py] = float(x)
                else:
                    values[py].flat[pos] = x
            for py, data in values.items():
                params[py] = data if plain else arrays[py].copy(data=data)
            out.append(params)
        return out


def _plain_arrays_fit(model: Model, design: _Design) -> bool:
    """Whether the compiled backend can take the varied subscripted values as arrays.

    It reads an array in the layout of its own element (dims in its order), which spares
    aligning one DataArray per run: most of the time of a run of a small model.
    """
    dims = {v.py_name: tuple(v.dims) for v in model.compiled().variables}
    return all(
        dims.get(py) == tuple(design.fixed[py].dims) for py, pos in design.slots if pos is not None
    )


def _bounds(name: Any, spec: Any) -> tuple[float, float]:
    if not isinstance(name, str):
        raise ParameterError(f"params: parameter names must be text, got {name!r}.")
    if isinstance(spec, Mapping) and set(spec) == {"lower", "upper"}:
        spec = (spec["lower"], spec["upper"])
    if (
        isinstance(spec, str | bytes)
        or not isinstance(spec, Sequence | np.ndarray)
        or len(spec) != 2
        or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in spec)
    ):
        raise ParameterError(
            f"params: give the bounds of {name!r} as [lower, upper] (two numbers); got {spec!r}."
        )
    lo, hi = float(spec[0]), float(spec[1])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ParameterError(f"params: the bounds of {name!r} must be finite; got {spec!r}.")
    if lo > hi:
        raise ParameterError(
            f"params: the bounds of {name!r} are reversed ({lo:g} > {hi:g}); "
            f"give [lower, upper] = [{hi:g}, {lo:g}]."
        )
    if lo == hi:
        raise ParameterError(
            f"params: the bounds of {name!r} are equal ({lo:g}); there is nothing to vary. "
            "Give a range, or set the value with base= instead."
        )
    return lo, hi


def _design(model: Model, params: Mapping[str, Any], base: Mapping[str, Any] | None) -> _Design:
    """Check the parameters and their bounds, and find what each one sets."""
    if not isinstance(params, Mapping) or not params:
        raise ParameterError(
            "params: give at least one parameter with its bounds, e.g. {'growth rate': [0, 0.1]}."
        )
    names = list(params)
    bounds = np.array([_bounds(k, v) for k, v in params.items()], dtype=float)
    base = dict(base or {})
    for name in names:
        if name in base:
            raise ParameterError(
                f"params: {name!r} is both varied and set in base; give it in one of them."
            )
    at_lower = {**base, **{k: float(lo) for k, lo in zip(names, bounds[:, 0], strict=True)}}
    fixed = model.normalize_params(at_lower, where="params")
    kinds = {str(row.py_name): str(row.kind) for row in model.parameters.itertuples()}
    # What a parameter sets is where the overrides differ when it alone moves between
    # its bounds: one value, every element of a subscripted constant, or one element.
    # Each is looked at apart from the others, so that 'p' and 'p[North]' overlap.
    slots: list[tuple[str, np.ndarray | None]] = []
    taken: dict[tuple[str, int], str] = {}
    for j, name in enumerate(names):
        low = model.normalize_params({**base, name: float(bounds[j, 0])}, where="params")
        moved = model.normalize_params({**base, name: float(bounds[j, 1])}, where="params")
        changed = [py for py in moved if not _same(moved[py], low.get(py))]
        if len(changed) != 1:
            raise ParameterError(
                f"params: {name!r} changes {'nothing' if not changed else changed} when it "
                "moves between its bounds; is it overridden by another entry of base?"
            )
        py = changed[0]
        if kinds.get(py) != "constant":
            raise ParameterError(
                f"params: {name!r} is a {kinds.get(py, 'time series')}; sensitivity analysis "
                "varies constants (a number, or one element of a subscripted constant)."
            )
        value = moved[py]
        if isinstance(value, xr.DataArray):
            pos = np.flatnonzero(np.asarray(value.values) != np.asarray(low[py].values))
            for p in pos.tolist():
                other = taken.setdefault((py, p), name)
                if other != name:
                    raise ParameterError(
                        f"params: {other!r} and {name!r} both set the same element of "
                        f"{py!r}; vary each element once."
                    )
            slots.append((py, pos))
        elif isinstance(value, int | float):
            slots.append((py, None))
        else:
            raise ParameterError(f"params: {name!r} must be set by a number, got {value!r}.")
    return _Design(names, bounds[:, 0].copy(), bounds[:, 1].copy(), fixed, slots)


def _same(a: Any, b: Any) -> bool:
    import pandas as pd

    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        return bool(a.equals(b))
    if isinstance(a, xr.DataArray) and isinstance(b, xr.DataArray):
        return bool(np.array_equal(a.values, b.values))
    if isinstance(a, xr.DataArray | pd.Series) or isinstance(b, xr.DataArray | pd.Series):
        return False
    return bool(a == b)


# --------------------------------------------------------------------------- outputs
def _outputs(model: Model, outputs: str | Sequence[str]) -> list[VariableInfo]:
    """The variables named in ``outputs`` (model or Python names), in order."""
    import difflib

    wanted = [outputs] if isinstance(outputs, str) else list(outputs)
    if not wanted:
        raise SDModelError("outputs: name at least one variable to analyse.")
    by_norm: dict[str, VariableInfo] = {}
    for v in model.variables:
        by_norm.setdefault(normalize_name(v.name), v)
        by_norm.setdefault(normalize_name(v.py_name), v)
    chosen: list[VariableInfo] = []
    for name in wanted:
        if not isinstance(name, str):
            raise SDModelError(f"outputs: variable names must be text, got {name!r}.")
        found = by_norm.get(normalize_name(name))
        if found is None:
            close = difflib.get_close_matches(
                name, sorted({v.name for v in model.variables}), n=3, cutoff=0.5
            )
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise SDModelError(f"outputs: unknown variable {name!r} in {model.path.name}.{hint}")
        if found in chosen:
            raise SDModelError(f"outputs: {name!r} is given twice; give each variable once.")
        chosen.append(found)
    return chosen


def _time_index(saved: np.ndarray, times: float | Sequence[float] | None) -> np.ndarray:
    """Positions of ``times`` among the saved times (all of them for ``None``)."""
    if times is None:
        return np.arange(len(saved))
    wanted = np.atleast_1d(np.asarray(times, dtype=float))
    scale = max(1.0, float(np.max(np.abs(saved)))) if len(saved) else 1.0
    index = []
    for t in wanted:
        hit = np.flatnonzero(np.abs(saved - t) <= 1e-9 * scale)
        if not len(hit):
            raise SettingsError(
                f"times: {t:g} is not a saved time; the run saves {len(saved)} times from "
                f"{saved[0]:g} to {saved[-1]:g}. Pick saved times, or change saveper."
            )
        index.append(int(hit[0]))
    return np.asarray(index)


# --------------------------------------------------------------------------- methods
@dataclass(frozen=True)
class _Options:
    """A method and its settings, checked; the seeds of sampling and of the intervals."""

    method: str
    n: int
    levels: int
    harmonics: int
    conf_level: float
    num_resamples: int
    seed: int
    sample_seed: int
    analysis_seed: int

    def sample(self, problem: dict[str, Any]) -> np.ndarray:
        """SALib's parameter sets, shape ``(runs, D)``."""
        if self.method == "sobol":
            sobol_sample = import_optional(
                "SALib.sample.sobol", "sensitivity", "sd_model.sensitivity"
            )

            return np.asarray(
                sobol_sample.sample(
                    problem, self.n, calc_second_order=False, scramble=True, seed=self.sample_seed
                )
            )
        if self.method == "morris":
            morris_sample = import_optional(
                "SALib.sample.morris", "sensitivity", "sd_model.sensitivity"
            )

            return np.asarray(
                morris_sample.sample(problem, self.n, num_levels=self.levels, seed=self.sample_seed)
            )
        fast_sampler = import_optional(
            "SALib.sample.fast_sampler", "sensitivity", "sd_model.sensitivity"
        )

        return np.asarray(
            fast_sampler.sample(problem, self.n, M=self.harmonics, seed=self.sample_seed)
        )

    def attrs(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sensitivity_method": self.method,
            "n": self.n,
            "seed": self.seed,
            "conf_level": self.conf_level,
            "num_resamples": self.num_resamples,
        }
        if self.method == "morris":
            out["levels"] = self.levels
        if self.method == "fast":
            out["harmonics"] = self.harmonics
        return out


def _whole(label: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        what = {0: "a non-negative whole number", 1: "a positive whole number"}.get(
            least, f"a whole number >= {least}"
        )
        raise SettingsError(f"{label} must be {what}, got {value!r}.")
    return int(value)


def _options(
    method: str,
    n: int | None,
    levels: int | None,
    harmonics: int | None,
    conf_level: float,
    num_resamples: int,
    seed: int | None,
) -> _Options:
    if method not in SENSITIVITY_METHODS:
        raise SettingsError(
            f"Unknown sensitivity method {method!r}; choose one of "
            f"{', '.join(SENSITIVITY_METHODS)}."
        )
    if levels is not None and method != "morris":
        raise SettingsError(f"levels is an option of method='morris', not {method!r}.")
    if harmonics is not None and method != "fast":
        raise SettingsError(f"harmonics is an option of method='fast', not {method!r}.")
    n = _whole("n", _DEFAULT_N[method] if n is None else n, 1)
    levels = _whole("levels", 4 if levels is None else levels, 1)
    harmonics = _whole("harmonics", 4 if harmonics is None else harmonics, 1)
    if method == "sobol" and (n < 2 or n & (n - 1)):
        below = 1 << max(1, n.bit_length() - 1)
        raise SettingsError(
            f"n={n}: Sobol' sampling needs n to be a power of two (e.g. {below} or "
            f"{2 * below}); other sizes break the balance of the Sobol' sequence."
        )
    if method == "morris":
        if n < 2:
            raise SettingsError(f"n={n}: Morris needs at least 2 trajectories.")
        if levels < 2 or levels % 2:
            raise SettingsError(f"levels={levels}: Morris needs an even number of levels.")
    if method == "fast" and n <= 4 * harmonics**2:
        raise SettingsError(
            f"n={n}: FAST with harmonics={harmonics} needs n > 4 * harmonics^2 = "
            f"{4 * harmonics**2} runs per parameter."
        )
    if isinstance(conf_level, bool) or not (
        isinstance(conf_level, numbers.Real) and 0 < conf_level < 1
    ):
        raise SettingsError(f"conf_level must be between 0 and 1, got {conf_level!r}.")
    num_resamples = _whole("num_resamples", num_resamples, 2)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
    seed = _whole("seed", seed, 0)
    states = np.random.SeedSequence(seed).generate_state(2)
    # SALib's Sobol' and FAST analyses fall back to NumPy's global generator for a seed
    # of 0, and FAST's calls np.random.seed: give them a positive 32-bit seed.
    return _Options(
        method=method,
        n=n,
        levels=levels,
        harmonics=harmonics,
        conf_level=float(conf_level),
        num_resamples=num_resamples,
        seed=seed,
        sample_seed=int(states[0]),
        analysis_seed=int(states[1]) % (2**32 - 1) + 1,
    )


@contextlib.contextmanager
def _numpy_global_state_kept() -> Iterator[None]:
    # SALib's FAST analysis seeds NumPy's global generator; leave the caller's as it was.
    state = np.random.get_state()  # noqa: NPY002 - the global generator is what SALib seeds
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def _analyze_column(
    opts: _Options, problem: dict[str, Any], x: np.ndarray, y: np.ndarray
) -> dict[str, np.ndarray]:
    """The statistics of one output value (one time, one element), one per parameter."""
    method, seed = opts.method, opts.analysis_seed
    names = STATISTICS[method]
    d = problem["num_vars"]
    if method != "morris" and np.ptp(y) <= 1e-12 * max(1.0, float(np.max(np.abs(y)))):
        # A variance-based index of an output that does not vary is 0/0.
        return {k: np.full(d, np.nan) for k in names}
    if method == "sobol":
        sobol_analyze = import_optional(
            "SALib.analyze.sobol", "sensitivity", "sd_model.sensitivity"
        )

        res = sobol_analyze.analyze(
            problem,
            y,
            calc_second_order=False,
            num_resamples=opts.num_resamples,
            conf_level=opts.conf_level,
            seed=seed,
        )
    elif method == "morris":
        morris_analyze = import_optional(
            "SALib.analyze.morris", "sensitivity", "sd_model.sensitivity"
        )

        res = morris_analyze.analyze(
            problem,
            x,
            y,
            num_resamples=opts.num_resamples,
            conf_level=opts.conf_level,
            num_levels=opts.levels,
            seed=seed,
        )
    else:
        fast_analyze = import_optional("SALib.analyze.fast", "sensitivity", "sd_model.sensitivity")

        with _numpy_global_state_kept(), warnings.catch_warnings():
            # Said once in our docs instead of once per output value.
            warnings.filterwarnings("ignore", message="FAST confidence intervals")
            res = fast_analyze.analyze(
                problem,
                y,
                M=opts.harmonics,
                num_resamples=opts.num_resamples,
                conf_level=opts.conf_level,
                seed=seed,
            )
    return {k: np.asarray(res[k], dtype=float) for k in names}


# --------------------------------------------------------------------------- running
def _chunk_size(model: Model, used: str, n_times: int, chunk_size: int | None) -> int:
    if chunk_size is not None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
            raise SettingsError(f"chunk_size must be a whole number, got {chunk_size!r}.")
        if chunk_size < 1:
            raise SettingsError(f"chunk_size must be at least 1, got {chunk_size}.")
        return int(chunk_size)
    if used != "compiled":
        return 16  # a loop either way: small chunks only make the progress bar move
    elements = sum(math.prod(len(model.coords[d]) for d in v.dims) for v in model.variables)
    per_run = 8 * max(n_times, 1) * max(elements, 1)
    return max(1, min(_MAX_CHUNK, _CHUNK_BYTES // per_run))


def _progress_shown(progress: bool | None) -> bool:
    if progress is None:
        return sys.stderr.isatty()
    if not isinstance(progress, bool):
        raise SettingsError(f"progress must be None, True or False; got {progress!r}.")
    return progress


def _run(
    model: Model,
    design: _Design,
    x: np.ndarray,
    variables: list[VariableInfo],
    *,
    used: Literal["compiled", "pysd"],
    solver: SolverOptions,
    grid: TimeGrid,
    chunk: int,
    show: bool,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every row of ``x`` run, in chunks of ``chunk`` parameter sets per evaluation."""
    tqdm = import_optional("tqdm.auto", "sensitivity", "sd_model.sensitivity").tqdm

    plain = used == "compiled" and _plain_arrays_fit(model, design)
    parts: dict[str, list[np.ndarray]] = {v.py_name: [] for v in variables}
    times = np.zeros(0)
    with tqdm(
        total=len(x), unit="run", desc="sensitivity runs", disable=not show, file=sys.stderr
    ) as bar:
        for start in range(0, len(x), chunk):
            rows = x[start : start + chunk]
            ev = evaluate(
                model,
                design.param_sets(rows, plain=plain),
                solver=solver,
                grid=grid,
                backend=used,
                outputs=[v.py_name for v in variables],
                normalized=True,
            )
            times = ev.times
            for v in variables:
                parts[v.py_name].append(np.asarray(ev.values[v.py_name], dtype=float))
            bar.update(len(rows))
    return times, {k: np.concatenate(v, axis=0) for k, v in parts.items()}


def sensitivity(
    model: Model | str | Path,
    params: Mapping[str, Any],
    *,
    outputs: str | Sequence[str],
    method: SensitivityMethod = "sobol",
    n: int | None = None,
    seed: int | None = None,
    times: float | Sequence[float] | None = None,
    base: Mapping[str, Any] | None = None,
    solver: SolverOptions | None = None,
    time: TimeSettings | None = None,
    backend: BackendName = "auto",
    levels: int | None = None,
    harmonics: int | None = None,
    conf_level: float = 0.95,
    num_resamples: int = 100,
    chunk_size: int | None = None,
    progress: bool | None = None,
) -> xr.Dataset:
    """Global sensitivity indices of model outputs to parameters varied within bounds.

    Each parameter is uniform on its bounds, independently of the others. SALib draws
    the parameter sets and computes the indices; the runs are evaluated as batches on
    the compiled backend (or one at a time on PySD's, with a warning when ``backend``
    is ``"auto"`` and the compiler does not cover the model).

    Parameters
    ----------
    model : sd_model.Model or path-like
        The model (a path is loaded with :func:`sd_model.load`).
    params : mapping
        Parameter -> ``[lower, upper]``. Names as :meth:`sd_model.Model.run` takes them
        (the model's or Python's); ``"name[element]"`` varies one element of a
        subscripted constant, a bare subscripted name varies all its elements together.
    outputs : str or sequence of str
        Variables to analyse (model or Python names). One name gives indices with the
        variable's own dims; a list adds a leading ``output`` dim (variables without one
        of the dims of the others repeat along it).
    method : {"sobol", "morris", "fast"}
        ``sobol``: first and total Sobol' indices from Saltelli's sampling scheme, with
        the estimators of Saltelli et al. (2010) for S1 and Jansen (1999) for ST, and
        bootstrap confidence intervals. ``morris``: elementary effects (Morris 1991)
        with ``mu_star`` (Campolongo et al. 2007); effects are per unit of the
        *normalised* range, so ``mu_star`` of a linear term ``c * p`` is
        ``|c| * (upper - lower)``. ``fast``: extended Fourier amplitude sensitivity test
        (Saltelli, Tarantola & Chan 1999); its bootstrap intervals are indicative only
        (SALib issue 649).
    n : int, optional
        ``sobol``: base sample size, a power of two (default 1024; ``n * (D + 2)``
        runs for ``D`` parameters). ``morris``: trajectories (default 64;
        ``n * (D + 1)`` runs). ``fast``: runs per parameter, more than
        ``4 * harmonics**2`` (default 1024; ``n * D`` runs).
    seed : int, optional
        Seeds the sample and the bootstrap intervals: the same seed gives the same
        result. Default: a fresh one, recorded in the ``seed`` attr.
    times : float or sequence of float, optional
        Saved times at which to compute the indices (default: every saved time). One
        number drops the ``time`` dim.
    base : mapping, optional
        Overrides applied to every run (as :meth:`sd_model.Model.run` takes them).
    solver : SolverOptions, optional
        Integration method and tolerances (default: the model file's method).
    time : TimeSettings, optional
        Replace the model file's time settings.
    backend : {"auto", "compiled", "pysd"}
        See :func:`sd_model.evaluate.choose_backend`.
    levels : int, optional
        ``morris`` only: levels of the grid (even; default 4).
    harmonics : int, optional
        ``fast`` only: the interference factor M (default 4).
    conf_level : float
        Level of the bootstrap confidence intervals.
    num_resamples : int
        Bootstrap resamples for the intervals.
    chunk_size : int, optional
        Parameter sets per batched evaluation (default: up to 4096, fewer for models
        whose saved values would pass 128 MiB per chunk).
    progress : bool, optional
        Progress bars on stderr (default: when stderr is a terminal).

    Returns
    -------
    xarray.Dataset
        ``sobol`` and ``fast``: ``S1``, ``S1_conf``, ``ST``, ``ST_conf``; ``morris``:
        ``mu``, ``mu_star``, ``sigma``, ``mu_star_conf`` (``*_conf`` are half-widths of
        the ``conf_level`` interval). Dims ``[output,] parameter[, time], *subscripts``;
        coords ``lower`` and ``upper`` along ``parameter``. Where an output does not vary
        over the sample (a stock at the initial time), variance-based indices are NaN.
        Attrs: method, n, seed, number of runs, backend, and the provenance of a run.

    Raises
    ------
    ParameterError
        Unknown parameter, bounds reversed, equal or not two numbers, a lookup.
    SettingsError
        Unknown method, ``n`` not a power of two for ``sobol`` (or too small), an option
        of another method, a time that is not saved.
    SDModelError
        Unknown output variable.

    References
    ----------
    Saltelli, A., Annoni, P., Azzini, I., Campolongo, F., Ratto, M., Tarantola, S. (2010).
    Variance based sensitivity analysis of model output. Design and estimator for the
    total sensitivity index. Computer Physics Communications 181(2), 259-270.

    Jansen, M. J. W. (1999). Analysis of variance designs for model output. Computer
    Physics Communications 117(1-2), 35-43.

    Morris, M. D. (1991). Factorial sampling plans for preliminary computational
    experiments. Technometrics 33(2), 161-174.

    Campolongo, F., Cariboni, J., Saltelli, A. (2007). An effective screening design for
    sensitivity analysis of large models. Environmental Modelling & Software 22(10),
    1509-1518.

    Saltelli, A., Tarantola, S., Chan, K. P.-S. (1999). A quantitative model-independent
    method for global sensitivity analysis of model output. Technometrics 41(1), 39-56.

    Herman, J., Usher, W. (2017). SALib: An open-source Python library for sensitivity
    analysis. Journal of Open Source Software 2(9), 97.

    Examples
    --------
    >>> si = sensitivity(model, {"contact rate": [0.5, 2], "recovery time": [3, 10]},
    ...                  outputs="infected", method="sobol", n=1024, seed=1)  # doctest: +SKIP
    >>> si["ST"].sel(time=30).to_series()  # doctest: +SKIP
    """
    from sd_model.model import Model, load
    from sd_model.provenance import provenance

    if not isinstance(model, Model):
        model = load(model)
    opts = _options(method, n, levels, harmonics, conf_level, num_resamples, seed)
    show = _progress_shown(progress)
    design = _design(model, params, base)
    variables = _outputs(model, outputs)
    solver = solver if solver is not None else SolverOptions(model.resolve_method(None))
    grid = model.time_grid(**(time or TimeSettings()).as_kwargs())
    used, note = choose_backend(model, backend, what="running a sensitivity analysis")
    saved = grid.save_times()
    wanted = saved[_time_index(saved, times)]
    chunk = _chunk_size(model, used, len(saved), chunk_size)

    x = opts.sample(design.problem)
    run_times, values = _run(
        model, design, x, variables, used=used, solver=solver, grid=grid, chunk=chunk, show=show
    )
    # Fixed-step runs may save fewer times than asked (not multiples of the step).
    index = _time_index(run_times, wanted if times is not None else None)
    per_output = [
        _indices(model, opts, design, x, values[v.py_name], v, run_times, index, show=show)
        for v in variables
    ]
    if isinstance(outputs, str):
        ds = per_output[0]
    else:
        label = xr.DataArray(np.array([v.py_name for v in variables]), dims="output")
        ds = xr.concat(per_output, dim=label, coords="minimal", compat="override", join="outer")
        ds = ds.transpose("output", "parameter", *(["time"] if "time" in ds.dims else []), ...)
        ds["output"].attrs["long_name"] = "output variable"
        for k in ds.data_vars:
            for key in ("units", "output", "output_long_name"):
                ds[k].attrs.pop(key, None)  # they differ between the outputs
    if times is not None and np.ndim(times) == 0 and "time" in ds.dims:
        ds = ds.squeeze("time")
    ds.attrs = {
        **provenance(
            model,
            solver=solver,
            grid=grid,
            backend=used,
            note=note,
            scenario="",
            overrides=base,
            title=f"sd_model {method} sensitivity analysis of {model.path.name}",
        ),
        **opts.attrs(),
        "n_runs": len(x),
        "parameters": json.dumps(
            {
                k: [lo, hi]
                for k, lo, hi in zip(
                    design.names, design.lower.tolist(), design.upper.tolist(), strict=True
                )
            }
        ),
        "outputs": json.dumps([v.py_name for v in variables]),
        # Each output's own subscript dims: with several outputs, the indices of one
        # repeat along the dims only the others have.
        "output_dims": json.dumps({v.py_name: list(v.dims) for v in variables}),
    }
    return ds


def _indices(
    model: Model,
    opts: _Options,
    design: _Design,
    x: np.ndarray,
    y: np.ndarray,
    var: VariableInfo,
    times: np.ndarray,
    index: np.ndarray,
    *,
    show: bool,
) -> xr.Dataset:
    """The indices of one output variable at the chosen times, as a Dataset."""
    tqdm = import_optional("tqdm.auto", "sensitivity", "sd_model.sensitivity").tqdm

    timed = var.time_dependent and y.ndim >= 2 and y.shape[1] == len(times)
    if timed:
        y = y[:, index]
    shape = y.shape[1:]
    columns = y.reshape(len(y), -1)
    method, problem = opts.method, design.problem
    stats = {k: np.empty((problem["num_vars"], columns.shape[1])) for k in STATISTICS[method]}
    for c in tqdm(
        range(columns.shape[1]),
        unit="value",
        desc=f"indices of {var.py_name}",
        disable=not show or columns.shape[1] < 2,
        file=sys.stderr,
    ):
        res = _analyze_column(opts, problem, x, columns[:, c])
        for k, arr in res.items():
            stats[k][:, c] = arr
    dims = ["parameter", *(["time"] if timed else []), *var.dims]
    coords: dict[str, Any] = {
        "parameter": np.array(design.names),
        "lower": ("parameter", design.lower, {"long_name": "lower bound of the range"}),
        "upper": ("parameter", design.upper, {"long_name": "upper bound of the range"}),
    }
    if timed:
        coords["time"] = ("time", times[index], {"units": model.time_units})
    for d in var.dims:
        coords[d] = np.array(model.coords[d])
    ds = xr.Dataset(coords=coords)
    ds["parameter"].attrs["long_name"] = "varied parameter"
    for k, arr in stats.items():
        attrs = {
            "long_name": STATISTICS[method][k],
            "output": var.py_name,
            "output_long_name": var.name,
        }
        if method == "morris":
            attrs["units"] = var.units  # effects of a change of one normalised range
        ds[k] = (dims, arr.reshape(problem["num_vars"], *shape), attrs)
    return ds
