"""Backends: what runs a batch of parameter sets of a loaded model, behind one protocol.

A backend is anything with the :class:`Backend` protocol; :data:`REGISTRY` lists them in
order of preference, and :func:`sd_model.evaluate.choose_backend` (the one fallback rule)
and :func:`sd_model.evaluate.evaluate` (the one entry point) only ever go through it.

* ``compiled`` (:class:`CompiledBackend`): the model compiled to vectorized NumPy
  (``sd_model.compiler``), a whole batch in one integration.
* ``pysd`` (:class:`PySDBackend`, the reference): PySD's own runtime model, driven by our
  integrators instead of PySD's Euler loop (:class:`PySDSystem`). It runs every construct
  PySD runs, one scenario at a time.

A third backend is one class with the protocol, one entry in :data:`REGISTRY` and its
name in the two ``Literal`` types below (and in ``sd_model.cli._BACKENDS``, kept equal by
a test).
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

import numpy as np
import xarray as xr

from sd_model._errors import SDModelError, UnsupportedFeatureError
from sd_model._meta import VariableInfo
from sd_model.integrate import (
    TIER_ENV,
    SolverOptions,
    TimeGrid,
    arithmetic_error,
    integrate,
)

if TYPE_CHECKING:
    from sd_model.model import Model

#: A backend as users name it (``auto``: the first in :data:`REGISTRY` that runs the model).
BackendName = Literal["auto", "compiled", "pysd"]
#: A backend that actually ran.
UsedBackend = Literal["compiled", "pysd"]


class BackendRun(NamedTuple):
    """What a backend returns for a batch: plain arrays, no metadata.

    ``values`` maps py_name to ``(B, T, *dims)`` (time-dependent) or ``(B, *dims)``;
    ``nfev`` has one count per parameter set; ``messages`` are the solver's warnings;
    ``tier`` is the fixed-step implementation that ran (``c``, ``python``, ``numpy``,
    ``numba``; '' for adaptive methods and the PySD backend) and ``tier_note`` why the
    faster ones were passed over.
    """

    times: np.ndarray
    values: dict[str, np.ndarray]
    nfev: list[int]
    messages: list[str]
    tier: str = ""
    tier_note: str = ""


class Backend(Protocol):
    """How a model is run: the one interface :func:`sd_model.evaluate.evaluate` calls.

    Attributes
    ----------
    name : {"compiled", "pysd"}
        The name users give (``backend=``) and results record.
    label : str
        The name in messages ("the PySD backend").
    batched : bool
        True when a batch is one integration; False when it is a loop of single runs.
    """

    @property
    def name(self) -> UsedBackend: ...

    @property
    def label(self) -> str: ...

    @property
    def batched(self) -> bool: ...

    def check(self, model: Model) -> None:
        """Raise :class:`UnsupportedFeatureError` when this backend cannot run ``model``."""
        ...

    def run(
        self,
        model: Model,
        overrides: Sequence[Mapping[str, Any]],
        variables: Sequence[VariableInfo],
        grid: TimeGrid,
        solver: SolverOptions,
        *,
        seed: int | None = None,
        stream_ids: Sequence[int] | None = None,
    ) -> BackendRun:
        """Run ``model`` once per (normalized) overrides mapping, saving ``variables``.

        ``seed`` and ``stream_ids`` (one per mapping, default ``0 .. B-1``) seed the
        RANDOM functions: each run draws from its own stream (None when the model has
        no RANDOM function).
        """
        ...


class CompiledBackend:
    """The model compiled to vectorized NumPy: a batch is one integration."""

    name: UsedBackend = "compiled"
    label = "compiled"
    batched = True

    def check(self, model: Model) -> None:
        model.compiled()

    def run(
        self,
        model: Model,
        overrides: Sequence[Mapping[str, Any]],
        variables: Sequence[VariableInfo],
        grid: TimeGrid,
        solver: SolverOptions,
        *,
        seed: int | None = None,
        stream_ids: Sequence[int] | None = None,
    ) -> BackendRun:
        system = model.compiled().system(
            list(overrides),
            grid,
            continuous=solver.adaptive,
            seed=seed,
            stream_ids=stream_ids,
        )
        result = integrate(system, grid, solver)
        messages = list(result.messages)
        note = getattr(system, "kernel_note", "")
        if solver.method == "euler-numba" and note and "could not compile" not in note:
            # A compile failure has warned already; the other reasons are said here, once.
            messages.append(
                f"euler-numba: {note}; ran fixed-step Euler without the kernel "
                f"({result.tier or 'numpy'} tier, same results)."
            )
        tier, tier_note = result.tier, _passed_over(system, result.tier)
        if os.environ.get(TIER_ENV, "").strip().lower() == "c" and tier not in ("", "c"):
            # asked for explicitly: say why it did not run
            messages.append(f"{TIER_ENV}=c: the C tier did not run ({tier_note}).")
        # One integration for the batch: its evaluations are every run's.
        nfev = [int(result.nfev)] * len(overrides)
        times = np.asarray(result.times)
        if result.columns is not None and len(result.times):
            values = _from_columns(result.columns, variables)
            return BackendRun(times, values, nfev, messages, tier, tier_note)
        obs = result.observations
        values = {}
        if not obs:
            return BackendRun(times, values, nfev, messages, tier, tier_note)
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
        return BackendRun(times, values, nfev, messages, tier, tier_note)


#: The fixed-step tiers faster than each tier, and the system attribute saying why each
#: did not run.
_FASTER = {"python": ("c",), "numpy": ("c", "python"), "c": (), "numba": ()}
_NOTES = {"c": "c_note", "python": "python_note"}


def _passed_over(system: Any, tier: str) -> str:
    """Why the tiers faster than ``tier`` did not run ('' when none was passed over)."""
    parts = []
    for faster in _FASTER.get(tier, ()):
        note = getattr(system, _NOTES[faster], "")
        if note:
            parts.append(f"{faster}: {note}")
    return "; ".join(parts)


def _from_columns(
    columns: Mapping[str, np.ndarray], variables: Sequence[VariableInfo]
) -> dict[str, np.ndarray]:
    """Backend values from column results (``(T, B, *dims)`` each): no per-time dicts."""
    values: dict[str, np.ndarray] = {}
    for var in variables:
        col = columns.get(var.py_name)
        if col is None:
            continue
        if not var.time_dependent:
            values[var.py_name] = col[0]  # constants: a read-only (B, *dims) view
        else:
            values[var.py_name] = np.ascontiguousarray(np.moveaxis(col, 0, 1))
    return values


class PySDBackend:
    """PySD's runtime (the reference): one fresh runtime and integration per run."""

    name: UsedBackend = "pysd"
    label = "PySD"
    batched = False

    def check(self, model: Model) -> None:
        """PySD runs whatever it translated (its runtime errors surface during the run)."""

    def run(
        self,
        model: Model,
        overrides: Sequence[Mapping[str, Any]],
        variables: Sequence[VariableInfo],
        grid: TimeGrid,
        solver: SolverOptions,
        *,
        seed: int | None = None,
        stream_ids: Sequence[int] | None = None,
    ) -> BackendRun:
        from sd_model.translate import load_runtime

        per_run: list[dict[str, np.ndarray]] = []
        nfev: list[int] = []
        messages: list[str] = []
        times: np.ndarray | None = None
        capture = model.variables
        ids = range(len(overrides)) if stream_ids is None else stream_ids
        for ov, ident in zip(overrides, ids, strict=True):
            # PySD draws when it initialises the model, too
            with _pysd_random_state(seed, ident):
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
        return BackendRun(times, values, nfev, messages)


@contextlib.contextmanager
def _pysd_random_state(seed: int | None, ident: int) -> Iterator[None]:
    """Seed NumPy's global generator, which PySD's RANDOM functions draw from.

    Each run gets a state derived from ``(seed, ident)`` (reproducible, but not the
    compiled backend's numbers); the caller's global state is restored afterwards.
    """
    if seed is None:
        yield
        return
    # PySD calls np.random.uniform and scipy.stats' rvs, which use the legacy global state
    saved = np.random.get_state()  # noqa: NPY002
    ss = np.random.SeedSequence(seed, spawn_key=(int(ident),))
    np.random.seed(ss.generate_state(4))  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(saved)  # noqa: NPY002


#: The backends, in order of preference: ``auto`` runs the first whose ``check`` passes.
REGISTRY: dict[str, Backend] = {b.name: b for b in (CompiledBackend(), PySDBackend())}
BACKENDS: tuple[str, ...] = ("auto", *REGISTRY)


def _as_array(value: Any, var: VariableInfo, coords: Mapping[str, list[str]]) -> np.ndarray:
    """PySD's value of one variable (a number or an xarray.DataArray) on the full dims."""
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


class _Leaf:
    """One dynamic stateful object of PySD's runtime, flattened into ``y``."""

    __slots__ = ("delay_n", "dims_coords", "discrete", "label", "obj", "shape", "size", "start")

    def __init__(self, obj: Any, label: str, start: int) -> None:
        self.obj = obj
        self.label = label
        state = obj.state
        if isinstance(state, xr.DataArray):
            self.dims_coords: list[tuple[str, list[Any]]] | None = [
                (str(d), [str(v) for v in state.coords[d].values])
                if d in state.coords
                else (
                    str(d),
                    list(range(state.sizes[d])),
                )
                for d in state.dims
            ]
        else:
            self.dims_coords = None
        arr = np.asarray(_values(state), dtype=float)
        info = getattr(obj, "shape_info", None)
        if info and "dims" in info and "coords" in info:
            # The declared shape wins: PySD may hold a scalar state that its setter
            # broadcasts to these dims on the first update.
            self.shape = tuple(len(info["coords"][d]) for d in info["dims"])
            self.dims_coords = [
                (str(d), [str(v) for v in np.asarray(info["coords"][d]).ravel()])
                for d in info["dims"]
            ]
        else:
            self.shape = arr.shape
        self.size = int(np.prod(self.shape, dtype=int))
        self.start = start
        # DELAY FIXED and SAMPLE IF TRUE return NaN from ddt(): they update per step.
        self.discrete = type(obj).__name__ in {"DelayFixed", "SampleIfTrue"}
        # PySD's DELAY N remembers the delay time of each stage per time step; that
        # memory shifts on every ddt() call, so adaptive methods use the current delay
        # time in all stages (the continuous-time chain of first-order delays).
        self.delay_n = type(obj).__name__ == "DelayN"

    def labels(self) -> list[str]:
        if self.size == 1 and not self.dims_coords:
            return [self.label]
        if not self.dims_coords:
            return [f"{self.label}[{i}]" for i in range(self.size)]
        import itertools

        combos = itertools.product(*[c for _, c in self.dims_coords])
        return [f"{self.label}[{','.join(str(x) for x in combo)}]" for combo in combos]


def _values(value: Any) -> Any:
    if isinstance(value, xr.DataArray):
        return value.values
    return value


def _collect_leaves(elements: Sequence[Any], prefix: str = "") -> list[Any]:
    """Flatten PySD's dynamic statefuls, descending into macros."""
    out: list[Any] = []
    for el in elements:
        inner = getattr(el, "_dynamicstateful_elements", None)
        if inner is not None and type(el).__name__ in {"Macro", "Model"}:
            name = getattr(el, "py_name", "") or "macro"
            out.extend(_collect_leaves(inner, prefix=f"{prefix}{name}."))
        else:
            out.append((el, prefix + str(getattr(el, "py_name", "") or type(el).__name__)))
    return out


def _real_names(runtime: Any) -> dict[str, str]:
    """Map PySD's function names (``birth_rate``) to the model's names (``birth rate``)."""
    return {str(r["Py Name"]): str(r["Real Name"]) for _, r in runtime.doc.iterrows()}


def _stateful_names(runtime: Any) -> dict[str, str]:
    """Map PySD's hidden stateful objects (``_integ_z``) to the model's names (``z``)."""
    real = _real_names(runtime)
    out: dict[str, str] = {}
    for var, deps in runtime._dependencies.items():
        if not isinstance(deps, dict) or var not in real:
            continue
        for dep in deps:
            if not (isinstance(dep, str) and dep.startswith("_")) or dep in out:
                continue
            kind = dep[1:].split("_", 1)[0]
            name = real[var]
            out[dep] = name if kind == "integ" else f"{name} ({kind} stage)"
    return out


class _BreakpointRecorder:
    """Wraps PySD's STEP/PULSE/RAMP functions in a runtime module to record their times."""

    def __init__(self, module: Any, *, continuous: bool = False) -> None:
        self.times: set[float] = set()
        self._final = math.inf
        from pysd.py_backend import functions as f

        # PySD's STEP switches half a time step early and PULSE 1e-6 early: devices for
        # Euler's grid. Adaptive methods integrate the continuous functions, with the
        # switch exactly at the breakpoint they integrate up to.
        table: tuple[tuple[str, Callable[..., Any], Callable[..., Any]], ...] = (
            ("step", f.step, _continuous_step if continuous else f.step),
            ("pulse", f.pulse, _continuous_pulse if continuous else f.pulse),
            ("ramp", f.ramp, f.ramp),
        )
        for name, original, replacement in table:
            if getattr(module, name, None) is original:
                setattr(module, name, self._wrap(name, replacement))

    def set_final_time(self, final: float) -> None:
        self._final = final

    def _add(self, *values: Any) -> None:
        for v in values:
            if v is None:
                continue
            for x in np.unique(np.asarray(_values(v), dtype=float).ravel()):
                if math.isfinite(float(x)):
                    self.times.add(float(x))

    def _wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(time: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                self._record(name, time, args, kwargs)
            except Exception:  # recording is best effort; never break a run
                pass
            return fn(time, *args, **kwargs)

        return wrapper

    def _record(self, name: str, time: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if name == "step":
            self._add(args[1] if len(args) > 1 else kwargs.get("tstep"))
        elif name == "ramp":
            start = args[1] if len(args) > 1 else kwargs.get("start")
            finish = args[2] if len(args) > 2 else kwargs.get("finish")
            self._add(start, finish)
        else:
            names = ("start", "repeat_time", "width", "magnitude", "end")
            bound = dict(zip(names, args, strict=False)) | kwargs
            start = bound.get("start")
            width = bound.get("width")
            if width is None:
                width = 0.5 * time.time_step()
            repeat = bound.get("repeat_time") or 0
            end = bound.get("end")
            if start is None:
                return
            starts = np.unique(np.asarray(_values(start), dtype=float).ravel())
            widths = np.unique(np.asarray(_values(width), dtype=float).ravel())
            repeats = np.unique(np.asarray(_values(repeat), dtype=float).ravel())
            stop = self._final if end is None else float(np.max(_values(end)))
            for s in starts:
                for r in repeats:
                    k_max = 0 if r <= 0 else min(int((stop - s) / r) + 1, 10_000)
                    for k in range(k_max + 1):
                        t0 = s + k * r
                        self._add(t0, *(t0 + w for w in widths))


def _continuous_step(time: Any, value: Any, tstep: Any) -> Any:
    on = time() >= tstep
    if np.ndim(on) == 0:
        # Keep Python types as PySD does (an int order in SMOOTH N must stay an int;
        # DataArrays built from NumPy 0-d values do not broadcast).
        return value if on else value * 0
    return value * on


def _continuous_pulse(
    time: Any,
    start: Any,
    repeat_time: Any = 0,
    width: Any = None,
    magnitude: Any = None,
    end: Any = None,
) -> Any:
    t = time()
    width = 0.5 * time.time_step() if width is None else width
    out = magnitude / time.time_step() if magnitude is not None else 1
    if repeat_time == 0:
        return out if start <= t < start + width else 0
    if start <= t and (end is None or t < end):
        return out if (t - start) % repeat_time < width else 0
    return 0


class PySDSystem:
    """PySD's runtime model as an integrable :class:`~sd_model.integrate.System`.

    The runtime's own state is the truth for fixed-step Euler, so Euler reproduces
    PySD's ``run()`` exactly (including DELAY FIXED and non-negative stocks); adaptive
    methods set the stateful objects from ``y`` before each evaluation.

    PySD computes scalars with Python numbers, which raise where NumPy gives inf or NaN
    (``1 / (5 - Time)`` at time 5, ``Stock ^ 2`` past 1e154): such an exception stops
    the run with an :class:`~sd_model.IntegrationError` naming the variable and the
    time. (Handing PySD a NumPy time instead would change what its generated code
    builds: ``xr.DataArray(np.int64(2), coords, dims)`` is not broadcast as ``2`` is.)
    """

    def __init__(
        self,
        runtime: Any,
        grid: TimeGrid,
        capture: Sequence[VariableInfo],
        overrides: Mapping[str, Any],
        *,
        continuous: bool = False,
    ) -> None:
        self._m = runtime
        self._continuous = continuous
        self._capture = list(capture)
        recorder = _BreakpointRecorder(runtime.components._components, continuous=continuous)
        recorder.set_final_time(grid.final_time)
        self._real = _real_names(runtime)
        self._hidden = _stateful_names(runtime)
        self._module_globals = vars(runtime.components._components)
        self._flows: dict[Any, str] = {}
        # PySD re-reads INITIAL TIME from the components when it initializes; replacing
        # it there makes stocks initialize at the requested time, as in Vensim.
        t0 = float(grid.initial_time)
        runtime.components._control_vars["initial_time"] = lambda: t0
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                runtime._config_simulation(
                    dict(overrides) or None,
                    [v.py_name for v in self._capture],
                    None,
                    "original",
                    grid.final_time,
                    grid.time_step,
                    grid.saveper,
                    False,
                    progress=False,
                )
        except ArithmeticError as exc:
            raise arithmetic_error(self._culprit(exc), grid.initial_time, exc) from exc
        dynamic = [
            name
            for name in ("initial_time", "final_time", "time_step", "saveper")
            if runtime.cache_type.get(name) == "step"
        ]
        if dynamic:
            listed = ", ".join(n.upper().replace("_", " ") for n in dynamic)
            raise UnsupportedFeatureError(
                f"The control variable(s) {listed} "
                "change during the run; sd_model fixes the time grid when the run starts. "
                "Make them constants (or pass final_time=/time_step=/saveper= to run)."
            )
        self._leaves: list[_Leaf] = []
        start = 0
        for obj, label in _collect_leaves(runtime._dynamicstateful_elements):
            leaf = _Leaf(obj, self._hidden.get(label, label), start)
            if not leaf.discrete:
                start += leaf.size
            self._leaves.append(leaf)
        self._n = start
        self._labels = [lab for leaf in self._leaves if not leaf.discrete for lab in leaf.labels()]
        # A stock's flow is a lambda PySD stores as the Integ's ddt (no frame of its own).
        self._flows = {
            leaf.obj.ddt.__code__: leaf.label
            for leaf in self._leaves
            if hasattr(getattr(leaf.obj, "ddt", None), "__code__")
        }
        self._recorder = recorder
        self._synced: tuple[float, np.ndarray] | None = None
        # Evaluate every captured variable once at the initial time: this records
        # the breakpoints and surfaces evaluation errors before integrating.
        self._y0 = self._flatten()
        self._t0 = grid.initial_time
        self._synced = (self._t0, self._y0.copy())
        self._first = self._evaluate()
        if self._n:
            # Flows are evaluated only inside the stocks' ddt(): call it once so their
            # STEP/PULSE/RAMP breakpoints are recorded too.
            self.derivative(self._t0, self._y0)

    # --- System protocol -------------------------------------------------
    @property
    def state_labels(self) -> Sequence[str]:
        return self._labels

    @property
    def breakpoints(self) -> Sequence[float]:
        return sorted(self._recorder.times)

    @property
    def discrete_elements(self) -> Sequence[str]:
        return [leaf.label for leaf in self._leaves if leaf.discrete]

    def initial_state(self) -> np.ndarray:
        return self._y0.copy()

    @property
    def observed_size(self) -> int:
        """Number of values :meth:`observe` returns at each saved time."""
        return sum(int(np.size(_values(v))) for v in self._first.values())

    def derivative(self, t: float, y: np.ndarray) -> np.ndarray:
        try:
            with np.errstate(all="ignore"):
                self._set(t, y)
                out = np.empty(self._n)
                for leaf in self._leaves:
                    if leaf.discrete:
                        continue
                    d = np.asarray(_values(leaf.obj.ddt()), dtype=float)
                    block = np.broadcast_to(d, leaf.shape).ravel()
                    out[leaf.start : leaf.start + leaf.size] = block
            return out
        except SDModelError:
            raise
        except ArithmeticError as exc:
            raise arithmetic_error(self._culprit(exc), t, exc) from exc
        except Exception as exc:
            raise _runtime_error(t, exc) from exc

    def euler_step(self, t: float, y: np.ndarray, dt: float) -> np.ndarray:
        try:
            with np.errstate(all="ignore"):
                self._set(t, y)
                m = self._m
                # Exactly PySD's Model._euler_step and _integrate_step.
                m.state = m.state + m.ddt() * dt
                m.time.update(t + dt)
                m.clean_caches()
                y_new = self._flatten()
        except SDModelError:
            raise
        except ArithmeticError as exc:
            raise arithmetic_error(self._culprit(exc), t, exc) from exc
        except Exception as exc:
            raise _runtime_error(t, exc) from exc
        self._synced = (t + dt, y_new.copy())
        return y_new

    def observe(self, t: float, y: np.ndarray) -> dict[str, Any]:
        if self._synced is not None and self._synced[0] == self._t0 and t == self._t0:
            if np.array_equal(self._synced[1], y):
                return self._first
        self._set(t, y)
        return self._evaluate()

    # --- internals ---------------------------------------------------------
    def _flatten(self) -> np.ndarray:
        y = np.empty(self._n)
        for leaf in self._leaves:
            if leaf.discrete:
                continue
            v = np.asarray(_values(leaf.obj.state), dtype=float)
            y[leaf.start : leaf.start + leaf.size] = np.broadcast_to(v, leaf.shape).ravel()
        return y

    def _set(self, t: float, y: np.ndarray) -> None:
        synced = self._synced
        if synced is not None and synced[0] == t and np.array_equal(synced[1], y):
            return
        m = self._m
        m.time.update(float(t))  # SciPy passes NumPy scalars; PySD expects floats
        for leaf in self._leaves:
            if leaf.discrete:
                continue
            block = y[leaf.start : leaf.start + leaf.size]
            value: Any = block.reshape(leaf.shape) if leaf.shape else float(block[0])
            leaf.obj.update(value)
        m.clean_caches()
        if self._continuous:
            for leaf in self._leaves:
                if leaf.delay_n:
                    times = leaf.obj.times
                    if not isinstance(times, xr.DataArray):
                        times = np.asarray(times, dtype=float)
                    leaf.obj.times = times * 0 + leaf.obj.delay_time_func()
        self._synced = (t, np.array(y, copy=True))

    def _culprit(self, exc: BaseException, default: str = "the model's equations") -> str:
        """What PySD was computing when ``exc`` was raised: the innermost model function."""
        frames = []
        tb = exc.__traceback__
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        for frame in reversed(frames):
            name = frame.f_code.co_name
            if frame.f_globals is self._module_globals and name in self._real:
                return f"'{self._real[name]}'"
            if frame.f_code in self._flows:
                return f"the rate of change of {self._flows[frame.f_code]}"
            py_name = getattr(frame.f_locals.get("self"), "py_name", None)
            if isinstance(py_name, str) and py_name in self._hidden:
                real = self._hidden[py_name]
                return f"the rate of change of {real}" if name == "ddt" else f"'{real}'"
        return default

    def _evaluate(self) -> dict[str, Any]:
        comps = self._m.components
        out: dict[str, Any] = {}
        for var in self._capture:
            try:
                with np.errstate(all="ignore"):
                    value = getattr(comps, var.py_name)()
            except ArithmeticError as exc:
                what = self._culprit(exc, default=f"'{var.name}'")
                raise arithmetic_error(what, float(self._m.time()), exc) from exc
            except Exception as exc:
                raise UnsupportedFeatureError(
                    f"PySD could not evaluate {var.name!r} at time {self._m.time():g}: "
                    f"{' '.join(str(exc).split())[:400]}"
                ) from exc
            out[var.py_name] = value
        return out


def _runtime_error(t: float, exc: BaseException) -> UnsupportedFeatureError:
    text = " ".join(str(exc).split())[:400]
    return UnsupportedFeatureError(
        f"PySD's runtime failed at time {t:g}: {type(exc).__name__}: {text}"
    )
