"""Free parameters of a calibration, and batched runs of the model over many of them.

A free parameter is a constant of the model (``"contact rate"``), one element of a
subscripted constant (``"mobility[North]"``) or a whole subscripted constant
(``"mobility"``: one value for every element), with bounds ``(low, high)``. Names are
resolved by :meth:`sd_model.Model.normalize_params` once; afterwards the parameter sets
of an optimiser or sampler become backend-ready NumPy overrides directly (resolving each
set through xarray would cost about a millisecond per set).

:class:`Evaluator` runs a batch of parameter vectors as one integration on the compiled
backend (a loop on the PySD backend) and isolates failures: when a batch fails (a run
reaches NaN or infinity), it is split in halves until the failing runs are found; they
are recorded and returned as NaN, never raised.
"""

from __future__ import annotations

import math
import numbers
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from sd_model._errors import IntegrationError, SDModelWarning
from sd_model.backends import BackendName
from sd_model.calibrate.errors import CalibrationError
from sd_model.evaluate import choose_backend, evaluate
from sd_model.integrate import SolverOptions, TimeGrid

if TYPE_CHECKING:
    from sd_model.model import Model

_ELEMENT_KEY = re.compile(r"^\s*(?P<name>[^\[\]]+?)\s*\[(?P<subs>[^\[\]]*)\]\s*$")
# Failed runs kept for the record (the count is always exact).
_MAX_RECORDED_FAILURES = 50


@dataclass(frozen=True)
class ParamTarget:
    """A free parameter: where its value goes in the model, and its bounds.

    Attributes
    ----------
    key : str
        The name as the user gave it (``"mobility[North]"``).
    name : str
        The model's name of the constant.
    py_name : str
        PySD's name of the constant.
    position : tuple of int or None
        The element set, or None for the whole constant (every element).
    shape : tuple of int
        Shape of the constant's array (``()`` for a scalar constant).
    low, high : float
        Bounds.
    initial : float
        The model's value (the mean over the elements for a whole subscripted constant).
    """

    key: str
    name: str
    py_name: str
    position: tuple[int, ...] | None
    shape: tuple[int, ...]
    low: float
    high: float
    initial: float

    @property
    def initial_in_bounds(self) -> float:
        """The model's value, or the middle of the bounds when it lies outside them."""
        if math.isfinite(self.initial) and self.low <= self.initial <= self.high:
            return self.initial
        return 0.5 * (self.low + self.high)


def resolve_params(
    model: Model,
    params: Mapping[str, Any],
    *,
    fixed: Mapping[str, Any] | None = None,
    where: str = "params",
    need_bounds: bool = True,
) -> list[ParamTarget]:
    """Resolve free parameters and check their bounds.

    Parameters
    ----------
    model : Model
    params : mapping
        Name -> ``(low, high)`` (a sequence of two numbers). With ``need_bounds=False``
        any value is accepted and the bounds are infinite.
    fixed : mapping, optional
        Overrides held fixed (their values are the base of element parameters).
    where : str
        Origin, for error messages.
    need_bounds : bool
        Whether bounds are required.

    Returns
    -------
    list of ParamTarget

    Raises
    ------
    CalibrationError
        No parameters, malformed or reversed bounds, a lookup, a parameter given twice.
    ParameterError
        An unknown name (with close matches).
    """
    if not isinstance(params, Mapping) or not params:
        raise CalibrationError(
            f"{where}: give the parameters to fit as a mapping of name -> (low, high), e.g. "
            "{'contact rate': (0.1, 5.0)}."
        )
    base = model.normalize_params(dict(fixed or {}), where="fixed")
    kinds = model.parameters.set_index("py_name")["kind"].to_dict()
    targets: list[ParamTarget] = []
    seen: dict[tuple[str, tuple[int, ...] | None], str] = {}
    for key, bounds in params.items():
        if not isinstance(key, str):
            raise CalibrationError(f"{where}: parameter names must be text, got {key!r}.")
        low, high = _bounds(key, bounds, where) if need_bounds else (-math.inf, math.inf)
        target = _target(model, key, low, high, base, kinds, where)
        spot = (target.py_name, target.position)
        if spot in seen:
            raise CalibrationError(
                f"{where}: {seen[spot]!r} and {key!r} name the same parameter; give it once."
            )
        if target.position is None and target.py_name in base:
            raise CalibrationError(
                f"{where}: {key!r} is both fitted and fixed; remove it from fixed."
            )
        seen[spot] = key
        targets.append(target)
    return targets


def _bounds(key: str, bounds: Any, where: str) -> tuple[float, float]:
    ok = (
        isinstance(bounds, Sequence)
        and not isinstance(bounds, str)
        and len(bounds) == 2
        and all(isinstance(b, numbers.Real) and not isinstance(b, bool) for b in bounds)
    )
    if not ok:
        raise CalibrationError(
            f"{where}: {key!r}: bounds must be two numbers (low, high); got {bounds!r}."
        )
    low, high = float(bounds[0]), float(bounds[1])
    if not (math.isfinite(low) and math.isfinite(high)):
        raise CalibrationError(f"{where}: {key!r}: bounds must be finite; got {bounds!r}.")
    if low > high:
        raise CalibrationError(
            f"{where}: {key!r}: bounds are reversed (low {low:g} > high {high:g}); "
            f"give ({high:g}, {low:g})."
        )
    if low == high:
        raise CalibrationError(
            f"{where}: {key!r}: low and high are both {low:g}; hold it with fixed= instead."
        )
    return low, high


def _target(
    model: Model,
    key: str,
    low: float,
    high: float,
    base: Mapping[str, Any],
    kinds: Mapping[str, str],
    where: str,
) -> ParamTarget:
    label = f"{where}: {key!r}"
    # normalize_params resolves the name (with close-match suggestions) and the element;
    # two probe values differ in exactly the cell the key names.
    ((py_name, one),) = model.normalize_params({key: 1.0}, where=where).items()
    if kinds.get(py_name) == "lookup":
        raise CalibrationError(f"{label} is a lookup; fit the constants it depends on instead.")
    name = str(model.parameters.index[model.parameters["py_name"] == py_name][0])
    default = _default_array(model, py_name, base)
    if not isinstance(one, xr.DataArray):
        return ParamTarget(key, name, py_name, None, (), low, high, float(default))
    ((_, two),) = model.normalize_params({key: 2.0}, where=where).items()
    a, b = np.asarray(one.values, dtype=float), np.asarray(two.values, dtype=float)
    shape = a.shape
    if _ELEMENT_KEY.match(key):
        (position,) = [tuple(int(i) for i in p) for p in np.argwhere(a != b)]
        return ParamTarget(key, name, py_name, position, shape, low, high, float(default[position]))
    return ParamTarget(key, name, py_name, None, shape, low, high, float(np.nanmean(default)))


def _default_array(model: Model, py_name: str, base: Mapping[str, Any]) -> np.ndarray:
    """The constant's value in the run: the fixed override, else the model's."""
    value = base.get(py_name)
    if value is None:
        row = model.parameters[model.parameters["py_name"] == py_name].iloc[0]
        value = row["default"]
        if isinstance(value, dict):
            value = model.normalize_params({py_name: value}, where="defaults")[py_name]
    if isinstance(value, pd.Series):
        raise CalibrationError(
            f"fixed: {py_name!r} is a time series; an element of it cannot be fitted."
        )
    if isinstance(value, xr.DataArray):
        return np.asarray(value.values, dtype=float)
    try:
        return np.asarray(float(value))
    except (TypeError, ValueError):
        return np.asarray(np.nan)


# --------------------------------------------------------------------------- running
@dataclass
class Failure:
    """A run that failed during a search: its parameters and the reason."""

    params: dict[str, float]
    reason: str


class Evaluator:
    """Batched runs of a model over parameter vectors (one row per run).

    Parameters
    ----------
    model : Model
    targets : list of ParamTarget
        The free parameters, in the order of the vectors' columns.
    solver : SolverOptions
    grid : TimeGrid
    backend : {"auto", "compiled", "pysd"}
        ``auto`` warns and runs one at a time on PySD when the model does not compile.
    fixed : mapping, optional
        Overrides held fixed in every run.
    outputs : sequence of str, optional
        py_names of the variables to return.
    what : str
        What the runs are for, in the fallback warning ("calibrating", ...).
    random_seed : int
        Seed of the model's RANDOM functions. Every run draws the same numbers (common
        random numbers: one stream, whatever the parameters and the batch), so the
        payoff is a deterministic function of the parameters and an optimiser compares
        parameter sets, not noise. Ignored by models without RANDOM functions.
    """

    def __init__(
        self,
        model: Model,
        targets: Sequence[ParamTarget],
        *,
        solver: SolverOptions,
        grid: TimeGrid,
        backend: BackendName = "auto",
        fixed: Mapping[str, Any] | None = None,
        outputs: Sequence[str] | None = None,
        what: str = "calibrating",
        random_seed: int = 0,
    ) -> None:
        self.model = model
        self.random_seed = random_seed
        self.targets = list(targets)
        self.solver = solver
        self.grid = grid
        self.outputs = list(outputs) if outputs is not None else None
        self.fixed = dict(fixed or {})
        self.backend, self.note = choose_backend(model, backend, what=what)
        normalized = model.normalize_params(self.fixed, where="fixed")
        self._fixed_compiled = {
            k: np.asarray(v.values, dtype=float) if isinstance(v, xr.DataArray) else v
            for k, v in normalized.items()
        }
        self._bases = {
            t.py_name: _default_array(model, t.py_name, normalized) for t in self.targets
        }
        self.n_evaluations = 0
        self.n_failed = 0
        self.failures: list[Failure] = []
        self.messages: list[str] = []

    # ------------------------------------------------------------------ overrides
    def overrides(self, theta: np.ndarray) -> list[dict[str, Any]]:
        """Backend-ready overrides, one mapping per row of ``theta`` (B, k)."""
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        if self.backend != "compiled":
            return [self.user_overrides(row) for row in theta]
        arrays: dict[str, np.ndarray] = {}
        for j, t in enumerate(self.targets):
            if t.py_name not in arrays:
                base = np.asarray(self._bases[t.py_name], dtype=float)
                arrays[t.py_name] = np.broadcast_to(base, (len(theta), *base.shape)).copy()
            arr = arrays[t.py_name]
            if t.position is None:
                arr.reshape(len(theta), -1)[:] = theta[:, j : j + 1]
        for j, t in enumerate(self.targets):  # element values on top of whole ones
            if t.position is not None:
                index: tuple[Any, ...] = (slice(None), *t.position)
                arrays[t.py_name][index] = theta[:, j]
        out = []
        for b in range(len(theta)):
            o = dict(self._fixed_compiled)
            for py, arr in arrays.items():
                o[py] = float(arr[b]) if arr.ndim == 1 else arr[b]
            out.append(o)
        return out

    def user_overrides(self, row: Sequence[float]) -> dict[str, Any]:
        """Overrides by the user's names (for ``Model.run`` and parameter files)."""
        out = dict(self.fixed)
        whole = [(t, v) for t, v in zip(self.targets, row, strict=True) if t.position is None]
        parts = [(t, v) for t, v in zip(self.targets, row, strict=True) if t.position is not None]
        for t, v in whole + parts:
            out[t.key] = float(v)
        return out

    # ------------------------------------------------------------------ runs
    def run(
        self, theta: np.ndarray, *, grid: TimeGrid | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
        """Run every row of ``theta``; failed runs are NaN.

        Returns
        -------
        times : numpy.ndarray
        values : dict
            py_name -> (B, T, *dims).
        ok : numpy.ndarray of bool
            (B,): False where the run failed or gave NaN.
        """
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        grid = grid or self.grid
        self.n_evaluations += len(theta)
        values, reasons = self._isolated(theta, grid)
        if not values:  # every run failed
            values = self._nan_values(len(theta), grid)
        ok = np.array([r is None for r in reasons])
        for v in values.values():
            bad = ~np.isfinite(v.reshape(len(theta), -1)).all(axis=1)
            for b in np.nonzero(bad & ok)[0]:
                reasons[b] = "the run gave NaN or infinite values"
            ok &= ~bad
        for b in np.nonzero(~ok)[0]:
            self._record(theta[b], str(reasons[b]))
        return grid.save_times(), values, ok

    def _nan_values(self, n: int, grid: TimeGrid) -> dict[str, np.ndarray]:
        coords = self.model.coords
        wanted = self.outputs or [v.py_name for v in self.model.variables]
        by_name = {v.py_name: v for v in self.model.variables}
        out = {}
        for py in wanted:
            v = by_name[py]
            shape = (n, *((grid.n_saves(),) if v.time_dependent else ()))
            out[py] = np.full((*shape, *(len(coords[d]) for d in v.dims)), np.nan)
        return out

    def _isolated(
        self, theta: np.ndarray, grid: TimeGrid
    ) -> tuple[dict[str, np.ndarray], list[str | None]]:
        try:
            if self.backend == "compiled":
                ev = evaluate(
                    self.model,
                    self.overrides(theta),
                    solver=self.solver,
                    grid=grid,
                    backend="compiled",
                    outputs=self.outputs,
                    normalized=True,
                    warn=False,
                    seed=self.random_seed,
                    stream_ids=[0] * len(theta),
                )
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", SDModelWarning)
                    ev = evaluate(
                        self.model,
                        self.overrides(theta),
                        solver=self.solver,
                        grid=grid,
                        backend="pysd",
                        outputs=self.outputs,
                        warn=False,
                        seed=self.random_seed,
                        stream_ids=[0] * len(theta),
                    )
        except (IntegrationError, FloatingPointError, ZeroDivisionError, OverflowError) as exc:
            if len(theta) == 1:
                return {}, [" ".join(str(exc).split())]
            # One failing run fails the whole vectorized integration: halve the batch
            # until the failing runs are alone (about log2(B) extra batches per failure).
            half = len(theta) // 2
            v1, r1 = self._isolated(theta[:half], grid)
            v2, r2 = self._isolated(theta[half:], grid)
            return _join(v1, v2, half, len(theta) - half), r1 + r2
        for m in ev.messages:
            if m not in self.messages:
                self.messages.append(m)
        return {k: np.asarray(v, dtype=float) for k, v in ev.values.items()}, [None] * len(theta)

    def _record(self, row: np.ndarray, reason: str) -> None:
        self.n_failed += 1
        if len(self.failures) < _MAX_RECORDED_FAILURES:
            params = {t.key: float(v) for t, v in zip(self.targets, row, strict=True)}
            self.failures.append(Failure(params, reason))

    def failures_frame(self) -> pd.DataFrame:
        """The recorded failures: one row per failed run (parameters and reason)."""
        rows = [{**f.params, "reason": f.reason} for f in self.failures]
        return pd.DataFrame(rows, columns=[*(t.key for t in self.targets), "reason"])

    def warn_failures(self, what: str) -> None:
        """One warning summarising the runs that failed (none: no warning)."""
        if not self.n_failed:
            return
        example = self.failures[0]
        shown = ", ".join(f"{k}={v:.6g}" for k, v in example.params.items())
        warnings.warn(
            f"{self.model.path.name}: {self.n_failed} of {self.n_evaluations} runs failed "
            f"while {what} and were penalised (e.g. {shown}: {example.reason[:300]}). "
            "Narrow the bounds if the fit lies near them; the failures are listed in "
            "the result's `failures`.",
            SDModelWarning,
            stacklevel=3,
        )


def _join(
    a: dict[str, np.ndarray], b: dict[str, np.ndarray], na: int, nb: int
) -> dict[str, np.ndarray]:
    """Concatenate two halves' values; a half whose runs all failed is NaN."""
    keys = list(a or b)
    out = {}
    for k in keys:
        if k in a and k in b:
            out[k] = np.concatenate([a[k], b[k]])
        else:
            have = a.get(k, b.get(k))
            assert have is not None
            pad_a = a.get(k, np.full((na, *have.shape[1:]), np.nan))
            pad_b = b.get(k, np.full((nb, *have.shape[1:]), np.nan))
            out[k] = np.concatenate([pad_a, pad_b])
    return out
