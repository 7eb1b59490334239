"""The single batched evaluation entry point: parameter sets in, arrays out.

``Model.run`` is a batch of one; sweeps, calibration, sensitivity analysis and the policy
explorer call :func:`evaluate` with many parameter sets. Each backend is an
implementation of :class:`sd_model.backends.Backend` listed in
:data:`sd_model.backends.REGISTRY`: on the compiled backend a batch is one vectorized
integration; on the PySD reference backend it is a loop. The choice between them, and the
warning when sd_model falls back, is made here only (:func:`choose_backend`).
"""

from __future__ import annotations

import dataclasses
import warnings
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sd_model._errors import (
    IntegrationError,
    SDModelError,
    SDModelWarning,
    SettingsError,
    UnsupportedFeatureError,
)
from sd_model._meta import VariableInfo
from sd_model.backends import REGISTRY, BackendName, UsedBackend
from sd_model.compiler._random import calls_random, fresh_seed
from sd_model.integrate import SolverOptions, TimeGrid

if TYPE_CHECKING:
    from sd_model.model import Model

__all__ = ["BackendName", "Evaluation", "UsedBackend", "choose_backend", "evaluate"]


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
    seed : int or None
        The seed the model's RANDOM functions drew from (None: the model has none).
    tier : str
        The fixed-step implementation that ran on the compiled backend (``c``,
        ``python``, ``numpy`` or ``numba``; see
        :func:`sd_model.integrate.fixed_step_tiers`); '' for adaptive methods and PySD.
    tier_note : str
        Why faster tiers did not run ('' when none was passed over).
    """

    times: np.ndarray
    values: dict[str, np.ndarray]
    variables: list[VariableInfo]
    backend: UsedBackend
    note: str = ""
    nfev: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    messages: list[str] = field(default_factory=list)
    seed: int | None = None
    tier: str = ""
    tier_note: str = ""


def choose_backend(
    model: Model, backend: BackendName, *, what: str = "running"
) -> tuple[UsedBackend, str]:
    """The backend a run uses, and the reason when it is not the preferred one.

    ``auto`` uses the first backend of :data:`sd_model.backends.REGISTRY` (the compiled
    one) when it covers the model, and otherwise warns (:class:`SDModelWarning`) and uses
    the next that does (PySD's runtime); a named backend (``compiled``) raises instead.

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
    if backend != "auto" and backend not in REGISTRY:
        names = ", ".join(["auto", *REGISTRY])
        raise SDModelError(f"Unknown backend {backend!r}; choose one of {names}.")
    if backend != "auto":
        REGISTRY[backend].check(model)
        return REGISTRY[backend].name, ""
    preferred, *others = REGISTRY.values()
    try:
        preferred.check(model)
        return preferred.name, ""
    except UnsupportedFeatureError as exc:
        reason: UnsupportedFeatureError = exc
    for fallback in others:
        try:
            fallback.check(model)
        except UnsupportedFeatureError:
            continue
        one_at_a_time = (
            ", one scenario at a time," if what != "running" and not fallback.batched else ""
        )
        warnings.warn(
            f"{model.path.name}: {what} with the {fallback.label} backend{one_at_a_time} because "
            f"the {preferred.label} backend cannot run this model: {reason}",
            SDModelWarning,
            stacklevel=3,
        )
        return fallback.name, str(reason)
    raise reason


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
    seed: int | None = None,
    stream_ids: Sequence[int] | None = None,
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
    seed : int, optional
        Seed of the RANDOM functions (non-negative). Each parameter set draws from its
        own stream, derived from ``(seed, stream id)``, one value per cell per time step
        (see :mod:`sd_model.compiler._random`). None: fresh entropy, returned as
        ``Evaluation.seed`` so the runs can be repeated. Ignored by models without
        RANDOM functions.
    stream_ids : sequence of int, optional
        The stream identity of each parameter set (default ``0 .. B-1``). A parameter
        set draws the same numbers in any batch as long as it keeps its identity: a
        sweep gives scenario ``k`` the identity ``k``, :meth:`Model.run` the identity 0.

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
    if stream_ids is not None and len(stream_ids) != len(overrides):
        raise SDModelError(
            f"stream_ids has {len(stream_ids)} entries for {len(overrides)} parameter sets."
        )
    if _calls_random(model.abstract_model):
        if seed is None:
            seed = fresh_seed()
        elif isinstance(seed, bool) or not (isinstance(seed, int | np.integer) and seed >= 0):
            raise SDModelError(f"seed must be a non-negative integer, got {seed!r}.")
        seed = int(seed)
    else:
        seed = None
    try:
        done = REGISTRY[used].run(
            model, overrides, variables, grid, solver, seed=seed, stream_ids=stream_ids
        )
        times, values, nfev, messages = done.times, done.values, done.nfev, done.messages
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
        seed=seed,
        tier=done.tier,
        tier_note=done.tier_note,
    )


# A model's abstract syntax does not change: scan it once (by identity; PySD's
# dataclasses are not hashable, and a dead entry is recognised by its weak reference).
_RANDOM_CALLS: dict[int, tuple[weakref.ref[Any], bool]] = {}


def uses_random(model: Model) -> bool:
    """Whether ``model`` calls RANDOM functions (its runs then depend on a seed).

    Parameters
    ----------
    model : Model
        A loaded model.
    """
    return _calls_random(model.abstract_model)


def _calls_random(abstract_model: Any) -> bool:
    hit = _RANDOM_CALLS.get(id(abstract_model))
    if hit is not None and hit[0]() is abstract_model:
        return hit[1]
    found = calls_random(abstract_model)
    for key in [k for k, (ref, _) in _RANDOM_CALLS.items() if ref() is None]:
        del _RANDOM_CALLS[key]
    _RANDOM_CALLS[id(abstract_model)] = (weakref.ref(abstract_model), found)
    return found


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
