"""The single batched evaluation entry point: parameter sets in, arrays out.

``Model.run`` is a batch of one; sweeps, calibration, sensitivity analysis and the policy
explorer call :func:`evaluate` with many parameter sets. On the compiled backend a batch
is one vectorized integration; on the PySD reference backend it is a loop. The choice
between the two, and the warning when sd_model falls back, is made here only
(:func:`choose_backend`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from sd_model._errors import (
    IntegrationError,
    SDModelError,
    SDModelWarning,
    SettingsError,
    UnsupportedFeatureError,
)
from sd_model._meta import VariableInfo
from sd_model.backends import BACKENDS, BackendName
from sd_model.integrate import SolverOptions, TimeGrid, integrate

if TYPE_CHECKING:
    from sd_model.model import Model

UsedBackend = Literal["compiled", "pysd"]


@dataclass(frozen=True)
class Evaluation:
    """What a batch of runs produced, as plain arrays.

    Attributes
    ----------
    times : numpy.ndarray
        Saved times, shape ``(T,)``.
    values : dict
        py_name -> array of shape ``(B, T, *dims)`` for time-dependent variables and
        ``(B, *dims)`` for the others, ``B`` being the number of parameter sets.
    variables : list of VariableInfo
        The variables in ``values``, in output order, with their metadata.
    backend : {"compiled", "pysd"}
        The backend that ran.
    note : str
        Why the compiled backend was not used ('' when it was, or was not asked for).
    nfev : numpy.ndarray
        Right-hand-side evaluations per parameter set, shape ``(B,)``.
    messages : list of str
        Solver warnings (each also issued as an :class:`SDModelWarning` by
        :func:`evaluate` unless ``warn=False``).
    """

    times: np.ndarray
    values: dict[str, np.ndarray]
    variables: list[VariableInfo]
    backend: UsedBackend
    note: str = ""
    nfev: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    messages: list[str] = field(default_factory=list)


def choose_backend(
    model: Model, backend: BackendName, *, what: str = "running"
) -> tuple[UsedBackend, str]:
    """The backend a run uses, and the reason when it is not the compiled one.

    ``auto`` uses the compiled backend when it covers the model and otherwise warns
    (:class:`SDModelWarning`) and uses PySD's runtime; ``compiled`` raises instead.

    Parameters
    ----------
    model : Model
    backend : {"auto", "compiled", "pysd"}
    what : str
        What is being done, for the warning ("running", "sweeping"...).

    Returns
    -------
    (backend, note)

    Raises
    ------
    SDModelError
        For an unknown backend name.
    UnsupportedFeatureError
        With ``backend="compiled"`` when the compiler does not cover the model.
    """
    if backend not in BACKENDS:
        raise SDModelError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    if backend == "pysd":
        return "pysd", ""
    try:
        model.compiled()
        return "compiled", ""
    except UnsupportedFeatureError as exc:
        if backend == "compiled":
            raise
        one_at_a_time = ", one scenario at a time," if what != "running" else ""
        warnings.warn(
            f"{model.path.name}: {what} with the PySD backend{one_at_a_time} because the "
            f"compiled backend cannot run this model: {exc}",
            SDModelWarning,
            stacklevel=3,
        )
        return "pysd", str(exc)


def evaluate(
    model: Model,
    param_sets: Sequence[Mapping[str, Any]],
    *,
    solver: SolverOptions,
    grid: TimeGrid,
    backend: BackendName = "auto",
    outputs: Sequence[str] | None = None,
    normalized: bool = False,
    jit: bool = False,
    warn: bool = True,
) -> Evaluation:
    """Run ``model`` once per parameter set, as one batch where the backend allows.

    Parameters
    ----------
    model : Model
        A loaded model.
    param_sets : sequence of mapping
        One overrides mapping per run (model or PySD names, as :meth:`Model.run`
        accepts them); an empty mapping runs the model as written.
    solver : SolverOptions
        Method and tolerances.
    grid : TimeGrid
        Time axis (see :meth:`Model.time_grid`).
    backend : {"auto", "compiled", "pysd"}
        See :func:`choose_backend`.
    outputs : sequence of str, optional
        py_names of the variables to return (default: every variable a run reports).
    normalized : bool
        True when ``param_sets`` already went through :meth:`Model.normalize_params`
        (py_name keys, backend-ready values): sweeps and optimisers normalize once.
    jit : bool
        Shorthand for ``solver.method == "euler-numba"`` when the method is ``"euler"``
        (Euler in the numba kernel on the compiled backend; NumPy when it cannot).
    warn : bool
        Issue solver messages as warnings.

    Returns
    -------
    Evaluation

    Raises
    ------
    ParameterError
        For an unknown parameter or a badly shaped value.
    IntegrationError
        When a run fails (NaN/inf, solver failure), naming the model file, the variable
        and the time.

    Examples
    --------
    >>> ev = evaluate(model, [{"growth": 0.01}, {"growth": 0.02}],
    ...               solver=SolverOptions("RK45"), grid=model.time_grid())  # doctest: +SKIP
    >>> ev.values["population"].shape  # (2, T)  # doctest: +SKIP
    """
    if not param_sets:
        raise SDModelError(
            "evaluate needs at least one parameter set (give [{}] for the model as written)."
        )
    used, note = choose_backend(model, backend)
    if jit and solver.method == "euler":
        solver = dataclasses.replace(solver, method="euler-numba")
    overrides = (
        [dict(p) for p in param_sets]
        if normalized
        else [model.normalize_params(p, where="params") for p in param_sets]
    )
    variables = _with_time_series(model.output_variables(used), overrides)
    if outputs is not None:
        by_name = {v.py_name: v for v in variables}
        missing = [o for o in outputs if o not in by_name]
        if missing:
            raise SDModelError(f"{model.path.name}: no output variable(s) {missing} in this run.")
        variables = [by_name[o] for o in outputs]
    try:
        if used == "compiled":
            times, values, nfev, messages = _run_compiled(model, overrides, variables, grid, solver)
        else:
            times, values, nfev, messages = _run_pysd(model, overrides, variables, grid, solver)
    except (IntegrationError, UnsupportedFeatureError, SettingsError) as exc:
        # Name the model file: in a sweep or a CLI log several models may be in play.
        if model.path.name in str(exc):
            raise
        raise type(exc)(f"{model.path.name}: {exc}") from exc
    if warn:
        for msg in messages:
            warnings.warn(msg, SDModelWarning, stacklevel=2)
    return Evaluation(
        times=times,
        values=values,
        variables=[v for v in variables if v.py_name in values],
        backend=used,
        note=note,
        nfev=np.asarray(nfev, dtype=int),
        messages=messages,
    )


def _with_time_series(
    variables: list[VariableInfo], overrides: Sequence[Mapping[str, Any]]
) -> list[VariableInfo]:
    """A constant replaced by a time series varies in time: give it a time axis."""
    import pandas as pd

    series = {k for o in overrides for k, v in o.items() if isinstance(v, pd.Series)}
    return [
        dataclasses.replace(v, time_dependent=True)
        if not v.time_dependent and v.py_name in series
        else v
        for v in variables
    ]


def _run_compiled(
    model: Model,
    overrides: list[dict[str, Any]],
    variables: list[VariableInfo],
    grid: TimeGrid,
    solver: SolverOptions,
) -> tuple[np.ndarray, dict[str, np.ndarray], list[int], list[str]]:
    compiled = model.compiled()
    system = compiled.system(overrides, grid, continuous=solver.adaptive)
    result = integrate(system, grid, solver)
    messages = list(result.messages)
    note = getattr(system, "kernel_note", "")
    if solver.method == "euler-numba" and note and "could not compile" not in note:
        # A compile failure has warned already; the other reasons are said here, once.
        messages.append(f"euler-numba: {note}; ran fixed-step Euler in NumPy (same results).")
    obs = result.observations
    values: dict[str, np.ndarray] = {}
    if not obs:
        return np.asarray(result.times), values, [int(result.nfev)] * len(overrides), messages
    first = obs[0]
    n = len(obs)
    for var in variables:
        value = first.get(var.py_name)
        if value is None:
            continue
        if not var.time_dependent:
            values[var.py_name] = np.asarray(value)
            continue
        # (B, T, *dims), filled time by time: one allocation per variable.
        head = np.asarray(value)
        out = np.empty((head.shape[0], n, *head.shape[1:]), dtype=head.dtype)
        name = var.py_name
        for k, o in enumerate(obs):
            out[:, k] = o[name]
        values[name] = out
    # One integration for the batch: its evaluations are every run's.
    nfev = [int(result.nfev)] * len(overrides)
    return np.asarray(result.times), values, nfev, messages


def _run_pysd(
    model: Model,
    overrides: list[dict[str, Any]],
    variables: list[VariableInfo],
    grid: TimeGrid,
    solver: SolverOptions,
) -> tuple[np.ndarray, dict[str, np.ndarray], list[int], list[str]]:
    from sd_model.backends import PySDSystem
    from sd_model.translate import load_runtime

    per_run: list[dict[str, np.ndarray]] = []
    nfev: list[int] = []
    messages: list[str] = []
    times: np.ndarray | None = None
    capture = model.variables
    for ov in overrides:
        runtime = load_runtime(model._py_file, model.path)
        system = PySDSystem(runtime, grid, capture, ov, continuous=solver.adaptive)
        result = integrate(system, grid, solver)
        messages.extend(m for m in result.messages if m not in messages)
        times = np.asarray(result.times)
        out: dict[str, np.ndarray] = {}
        for var in variables:
            arrs = [_as_array(o[var.py_name], var, model.coords) for o in result.observations]
            out[var.py_name] = np.stack(arrs) if var.time_dependent else arrs[0]
        per_run.append(out)
        nfev.append(int(result.nfev))
    assert times is not None
    values = {v.py_name: np.stack([r[v.py_name] for r in per_run]) for v in variables}
    return times, values, nfev, messages


def _as_array(value: Any, var: VariableInfo, coords: Mapping[str, list[str]]) -> np.ndarray:
    """PySD's value of one variable (a number or an xarray.DataArray) on the full dims."""
    import xarray as xr

    if isinstance(value, xr.DataArray):
        if tuple(str(d) for d in value.dims) != var.dims:
            value = value.transpose(*[d for d in var.dims if d in value.dims])
        # PySD names a dim after its range even when a variable covers only part of
        # it; place such values on the whole range (NaN elsewhere) so dims agree.
        for d in value.dims:
            full = coords.get(str(d))
            if full is not None and [str(c) for c in value.coords[d].values] != full:
                value = value.assign_coords({d: [str(c) for c in value.coords[d].values]})
                value = value.reindex({d: full})
        return np.asarray(value.values, dtype=float)
    arr = np.asarray(value, dtype=float)
    if var.dims:
        shape = tuple(len(coords[d]) for d in var.dims)
        arr = np.broadcast_to(arr, shape).copy()
    return arr
