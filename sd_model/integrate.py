"""Integrators: fixed-step Euler/RK4 and SciPy's adaptive methods, with breakpoints.

The integrators drive any :class:`System`: a flat state vector ``y``, a right-hand
side ``derivative(t, y)``, and an ``observe(t, y)`` hook called at each saved time.
Both backends (PySD's runtime and the compiled NumPy model) present themselves as a
``System``; a batch of scenarios is simply a longer ``y``.

Discontinuities (STEP, PULSE, RAMP, policy start times) are handled by integrating
piecewise between the breakpoints a system declares, so an adaptive method never
steps across a kink or jump it cannot see.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast, get_args

import numpy as np
from scipy.integrate import solve_ivp

from sd_model._errors import IntegrationError, SettingsError, UnsupportedFeatureError

Method = Literal["euler", "euler-numba", "rk4", "RK45", "DOP853", "LSODA", "BDF", "Radau", "RK23"]


@dataclass(frozen=True)
class MethodInfo:
    """What an integration method is, for the integrator and the checks before a run.

    Attributes
    ----------
    adaptive : bool
        A :func:`scipy.integrate.solve_ivp` method choosing its own steps, with output at
        the saved times; otherwise a fixed-step method stepping at the time step.
    scheme : str
        The fixed-step scheme (``"euler"`` or ``"rk4"``; ``""`` for adaptive methods).
    evals_per_step : int
        Right-hand-side evaluations per fixed step (for run-time estimates).
    per_step_updates : bool
        Whether elements updated once per time step (DELAY FIXED, SAMPLE IF TRUE) can be
        integrated: only the Euler methods step exactly as Vensim does.
    """

    adaptive: bool
    scheme: str = ""
    evals_per_step: int = 1
    per_step_updates: bool = False


#: The method table: every name a run, a sweep, a scenario file or the CLI accepts.
#: ``euler-numba`` is Euler run in one numba-compiled kernel when the system offers one
#: (the compiled backend with numba installed); other systems run it as ``euler``, with
#: the same results.
METHOD_TABLE: dict[str, MethodInfo] = {
    "euler": MethodInfo(adaptive=False, scheme="euler", per_step_updates=True),
    "euler-numba": MethodInfo(adaptive=False, scheme="euler", per_step_updates=True),
    "rk4": MethodInfo(adaptive=False, scheme="rk4", evals_per_step=4),
    **{m: MethodInfo(adaptive=True) for m in ("RK45", "DOP853", "LSODA", "BDF", "Radau", "RK23")},
}
METHODS: tuple[str, ...] = get_args(Method)
if set(METHODS) != set(METHOD_TABLE):  # pragma: no cover - a table edited on one side only
    raise ImportError("sd_model.integrate: Method and METHOD_TABLE name different methods.")

# Relative precision used to match step times to saved times (PySD uses the same
# 1e-5 of a time step in ``Time.in_return``).
_TIME_RPREC = 1e-5


@dataclass(frozen=True)
class SolverOptions:
    """How to integrate.

    Parameters
    ----------
    method : {"euler", "euler-numba", "rk4", "RK45", "DOP853", "LSODA", "BDF", "Radau", "RK23"}
        ``euler`` and ``rk4`` step at the time step (``euler-numba`` is Euler in one
        numba-compiled kernel, see :data:`METHOD_TABLE`); the others are
        :func:`scipy.integrate.solve_ivp` methods with output at the saved times.
    rtol, atol : float
        Tolerances of the adaptive methods (ignored by fixed-step methods).
    max_step : float or None
        Largest step of an adaptive method; ``None`` lets SciPy choose.
    first_step : float or None
        Initial step of an adaptive method.
    """

    method: Method = "euler"
    rtol: float = 1e-6
    atol: float = 1e-6
    max_step: float | None = None
    first_step: float | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SettingsError(
                f"Unknown integration method {self.method!r}; choose one of {', '.join(METHODS)}."
            )
        if not (self.rtol > 0 and math.isfinite(self.rtol)):
            raise SettingsError(f"rtol must be a positive number, got {self.rtol!r}.")
        if not (self.atol > 0 and math.isfinite(self.atol)):
            raise SettingsError(f"atol must be a positive number, got {self.atol!r}.")
        if self.max_step is not None and not self.max_step > 0:
            raise SettingsError(f"max_step must be positive, got {self.max_step!r}.")

    @property
    def adaptive(self) -> bool:
        """True for SciPy's adaptive methods."""
        return METHOD_TABLE[self.method].adaptive


@dataclass(frozen=True)
class TimeGrid:
    """The simulation's time axis.

    Parameters
    ----------
    initial_time, final_time : float
        Start and end of the simulation.
    time_step : float
        Step of the fixed-step methods (Vensim's TIME STEP).
    saveper : float
        Interval between saved times (Vensim's SAVEPER).
    """

    initial_time: float
    final_time: float
    time_step: float
    saveper: float

    def __post_init__(self) -> None:
        for name in ("initial_time", "final_time", "time_step", "saveper"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise SettingsError(f"{name} must be a finite number, got {value!r}.")
        if self.final_time < self.initial_time:
            raise SettingsError(
                f"final_time ({self.final_time}) is before initial_time ({self.initial_time})."
            )
        if self.time_step <= 0:
            raise SettingsError(f"time_step must be positive, got {self.time_step}.")
        if self.saveper <= 0:
            raise SettingsError(f"saveper must be positive, got {self.saveper}.")

    def save_times(self) -> np.ndarray:
        """Saved times: ``initial_time + k * saveper`` up to ``final_time`` (inclusive)."""
        span = self.final_time - self.initial_time
        n = math.floor(span / self.saveper + _TIME_RPREC)
        # A final time a hair below a multiple of SAVEPER still saves there (at the
        # final time itself), never past it.
        return np.minimum(self.initial_time + self.saveper * np.arange(n + 1), self.final_time)

    def n_steps(self) -> int:
        """Number of fixed steps from initial to final time."""
        span = self.final_time - self.initial_time
        return math.floor(span / self.time_step + _TIME_RPREC)

    def n_saves(self) -> int:
        """Number of saved times (``len(save_times())`` without building the array)."""
        span = self.final_time - self.initial_time
        return math.floor(span / self.saveper + _TIME_RPREC) + 1


#: Steps whose times are accumulated at once when matching saved times to steps.
_STEP_BLOCK = 1 << 20


@dataclass(frozen=True)
class FixedSaves:
    """Which steps of a fixed-step run are saved.

    Attributes
    ----------
    steps : numpy.ndarray
        Step numbers (0 is the initial time), increasing.
    times : numpy.ndarray
        The saved time of each of those steps (a value of ``grid.save_times()``).
    skipped : numpy.ndarray
        Saved times no step reaches (not multiples of the time step).
    """

    steps: np.ndarray
    times: np.ndarray
    skipped: np.ndarray


def fixed_step_saves(grid: TimeGrid) -> FixedSaves:
    """Match the saved times to the steps of a fixed-step run (Euler, RK4, the kernel).

    Step times accumulate as in PySD's and Vensim's loops (``t = t + dt``, so a model
    dividing by ``2 - Time`` sees 2.0000000000000004 where they do); a saved time is
    kept at the step within ``1e-5`` of a time step of it (PySD's ``Time.in_return``
    tolerance), and skipped when no step is. Every fixed-step path uses this one rule,
    so they save the same times.

    Parameters
    ----------
    grid : TimeGrid

    Returns
    -------
    FixedSaves

    Examples
    --------
    >>> fs = fixed_step_saves(TimeGrid(0.0, 1.0, 0.25, 0.5))
    >>> fs.steps.tolist(), fs.times.tolist()
    ([0, 2, 4], [0.0, 0.5, 1.0])
    >>> fixed_step_saves(TimeGrid(0.0, 1.0, 0.5, 0.25)).skipped.tolist()
    [0.25, 0.75]
    """
    save = grid.save_times()
    dt = grid.time_step
    tol = dt * _TIME_RPREC
    n_total = grid.n_steps() + 1
    steps: list[np.ndarray] = [np.zeros(0, np.int64)]
    kept: list[np.ndarray] = [np.zeros(0)]
    skipped: list[np.ndarray] = [np.zeros(0)]
    j = 0  # the next saved time to place
    last = -1  # the last saved step
    t_end = grid.initial_time
    for start in range(0, n_total, _STEP_BLOCK):
        t = np.full(min(_STEP_BLOCK, n_total - start), dt, dtype=float)
        t[0] = grid.initial_time if start == 0 else t_end + dt
        np.add.accumulate(t, out=t)  # sequential: the same roundings as the loops
        t_end = float(t[-1])
        # A saved time is placed at the first step with t >= s - tol: in this block for
        # those up to t_end + tol. Later ones wait for the next block; past the last
        # step they are never reached (as in the loops, which stop there).
        end = int(np.searchsorted(save, t_end + tol, side="right"))
        here = save[j:end]
        k = np.searchsorted(t, here - tol, side="left")
        hit = np.abs(t[k] - here) <= tol
        k += start
        # One saved time per step: a second one near the same step is not saved. The
        # steps k are nondecreasing, so a hit is kept when its step is past the previous
        # hit's (the one before this block for the first).
        idx = np.flatnonzero(hit)
        if idx.size:
            kk = k[idx]
            dup = np.empty(kk.size, dtype=bool)
            dup[0] = kk[0] <= last
            dup[1:] = kk[1:] <= kk[:-1]
            hit[idx[dup]] = False
            last = int(kk[-1])
        steps.append(k[hit].astype(np.int64))
        kept.append(here[hit])
        skipped.append(here[~hit])
        j = end
    return FixedSaves(np.concatenate(steps), np.concatenate(kept), np.concatenate(skipped))


class System(Protocol):
    """What an integrator needs from a model (a backend's runnable form).

    ``y`` is a flat float64 vector; batched systems stack scenarios in it.
    """

    @property
    def state_labels(self) -> Sequence[str]:
        """One label per entry of ``y`` (``"Stock[elem]"``), used in error messages."""
        ...

    @property
    def breakpoints(self) -> Sequence[float]:
        """Times at which the right-hand side jumps or kinks (STEP, PULSE, RAMP ends...)."""
        ...

    @property
    def discrete_elements(self) -> Sequence[str]:
        """Elements updated once per time step (DELAY FIXED, SAMPLE IF TRUE); euler only."""
        ...

    def initial_state(self) -> np.ndarray:
        """The state at the initial time."""
        ...

    def derivative(self, t: float, y: np.ndarray) -> np.ndarray:
        """``dy/dt`` at ``(t, y)``."""
        ...

    def euler_step(self, t: float, y: np.ndarray, dt: float) -> np.ndarray:
        """State after one Euler step of length ``dt`` from ``(t, y)``.

        Systems with discrete elements update them here; others return
        ``y + dt * derivative(t, y)``.
        """
        ...

    def observe(self, t: float, y: np.ndarray) -> Any:
        """Record the model's variables at a saved time; the value is collected as is."""
        ...


@dataclass
class IntegrationResult:
    """What an integration produced.

    Attributes
    ----------
    times : numpy.ndarray
        Saved times.
    states : numpy.ndarray
        State at each saved time, shape ``(n_times, n_state)``.
    observations : sequence
        ``system.observe(t, y)`` at each saved time (for a column result, a
        :class:`ColumnObservations` view of ``columns``).
    nfev : int
        Number of right-hand-side evaluations.
    method : str
        Method used.
    messages : list of str
        Solver warnings (saved times skipped...).
    columns : dict or None
        The same observations column-wise, py_name -> array shaped ``(T, B, *dims)``
        (constants as read-only broadcast views), when the path that ran produced
        them; callers read them instead of one dict per saved time.
    tier : str
        Which fixed-step implementation ran (see :func:`fixed_step_tiers`); ``""`` for
        adaptive methods.
    """

    times: np.ndarray
    states: np.ndarray
    observations: Sequence[Any]
    nfev: int
    method: str
    messages: list[str] = field(default_factory=list)
    columns: dict[str, np.ndarray] | None = None
    tier: str = ""


class ColumnObservations(Sequence[dict[str, np.ndarray]]):
    """Per-saved-time dicts of a column result, built only when someone asks for one.

    Parameters
    ----------
    columns : dict
        py_name -> array shaped ``(T, B, *dims)``.
    n_times : int
        ``T``.

    Examples
    --------
    >>> obs = ColumnObservations({"x": np.arange(3.0).reshape(3, 1)}, 3)
    >>> len(obs), obs[-1]["x"].tolist()
    (3, [2.0])
    """

    def __init__(self, columns: dict[str, np.ndarray], n_times: int) -> None:
        self._columns = columns
        self._n = n_times

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, k: Any) -> Any:
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(self._n))]
        k = range(self._n)[k]  # negative indices, and IndexError past the end
        return {name: col[k] for name, col in self._columns.items()}


def integrate(system: System, grid: TimeGrid, options: SolverOptions) -> IntegrationResult:
    """Integrate ``system`` over ``grid`` with ``options``.

    Parameters
    ----------
    system : System
        The model in runnable form.
    grid : TimeGrid
        Initial and final time, time step and saving interval.
    options : SolverOptions
        Method and tolerances.

    Returns
    -------
    IntegrationResult

    Raises
    ------
    IntegrationError
        When the state or its rate of change becomes NaN or infinite, or the solver
        fails; the message names the first offending state entry and the time.
    SettingsError
        When the saved results would not fit in memory or the run would take more than
        ``MAX_STEPS`` fixed steps (see :func:`check_run_size`); nothing is allocated.
    UnsupportedFeatureError
        When the system has discrete elements and the method is not ``euler``.

    Notes
    -----
    A system may have an ``observed_size`` attribute: the number of values
    ``observe`` returns at each saved time. The size check uses it to estimate the
    memory a run needs (without it, the state size is assumed). A system may also have
    whole-run fast paths for fixed-step methods (``run_euler()``, ``run_c(scheme)``,
    ``run_python(scheme)``) returning an :class:`IntegrationResult` or None when they
    cannot; :func:`fixed_step_tiers` says which are tried, in which order.

    Examples
    --------
    >>> class Decay:
    ...     state_labels = ["x"]; breakpoints = (); discrete_elements = ()
    ...     def initial_state(self): return np.array([1.0])
    ...     def derivative(self, t, y): return -y
    ...     def euler_step(self, t, y, dt): return y + dt * self.derivative(t, y)
    ...     def observe(self, t, y): return float(y[0])
    >>> opts = SolverOptions(method="RK45", rtol=1e-10, atol=1e-12)
    >>> res = integrate(Decay(), TimeGrid(0, 1, 0.01, 1), opts)
    >>> abs(res.observations[-1] - math.exp(-1)) < 1e-9
    True
    """
    discrete = list(system.discrete_elements)
    if discrete and not METHOD_TABLE[options.method].per_step_updates:
        raise UnsupportedFeatureError(
            f"Method {options.method!r} cannot integrate {', '.join(discrete)}: "
            "these elements (DELAY FIXED, SAMPLE IF TRUE, ...) update once per time step. "
            "Use method='euler'."
        )
    # The size, not the labels: a system may build its labels only for error messages.
    n_state = int(getattr(system, "n_state", -1))
    if n_state < 0:
        n_state = len(system.state_labels)
    check_run_size(
        grid,
        options,
        values_per_save=n_state + int(getattr(system, "observed_size", n_state)),
        system=system,
    )
    if options.adaptive:
        return _integrate_adaptive(system, grid, options)
    scheme = METHOD_TABLE[options.method].scheme
    for tier in fixed_step_tiers(system, options):
        # a tier returns None when it does not cover the model (or is not ready): the
        # next one gives the same numbers, only slower
        if tier == "numba":
            result = system.run_euler()  # type: ignore[attr-defined]
        elif tier == "c":
            result = system.run_c(scheme)  # type: ignore[attr-defined]
        elif tier == "python":
            result = system.run_python(scheme)  # type: ignore[attr-defined]
        else:
            result = _integrate_fixed(system, grid, options)
        if result is not None:
            result = cast(IntegrationResult, result)
            result.tier = tier
            return result
    raise AssertionError("the NumPy tier always runs")  # pragma: no cover


#: Environment variable restricting the fixed-step tiers (see :func:`fixed_step_tiers`).
TIER_ENV = "SD_MODEL_TIER"
_TIER_CHOICES = ("auto", "c", "python", "numpy")


def fixed_step_tiers(system: System, options: SolverOptions) -> list[str]:
    """The implementations a fixed-step run tries, in order: the one tier rule.

    1. ``numba``: the numba kernel (``system.run_euler()``), only when the method is
       ``euler-numba`` (an explicit request: its first compilation takes seconds to
       minutes);
    2. ``c``: compiled C (``system.run_c(scheme)``) when the system offers it;
    3. ``python``: the whole loop as generated plain-Python code
       (``system.run_python(scheme)``) for a batch of one scenario, where NumPy's
       per-operation cost dominates;
    4. ``numpy``: :func:`integrate`'s own loop over the system's NumPy right-hand side,
       which runs every system and batch.

    Each of the first three returns None when it does not cover the model (the
    system's ``*_note`` attribute says why), and the next is tried; all give the same
    numbers (to rounding). The environment variable ``SD_MODEL_TIER`` restricts the
    automatic tiers, for tests and debugging: ``numpy`` runs the NumPy loop only,
    ``python`` skips C, ``auto`` (the default) tries all, with C only when its library is
    built or a run is long enough to pay for compiling it, and ``c`` tries all and always
    compiles C first (see :mod:`sd_model.compiler._cbuild`).

    Parameters
    ----------
    system : System
        The model in runnable form (``batch``, ``run_c``, ``run_python`` and
        ``run_euler`` are optional attributes).
    options : SolverOptions
        A fixed-step method.

    Returns
    -------
    list of str
        Tier names, ending with ``"numpy"``.

    Raises
    ------
    SettingsError
        When ``SD_MODEL_TIER`` holds an unknown value.

    Examples
    --------
    >>> class Plain:  # a system offering no fast path
    ...     pass
    >>> fixed_step_tiers(Plain(), SolverOptions("euler"))
    ['numpy']
    """
    chosen = os.environ.get(TIER_ENV, "").strip().lower() or "auto"
    if chosen not in _TIER_CHOICES:
        raise SettingsError(
            f"{TIER_ENV}={chosen!r} is not a tier; use one of {', '.join(_TIER_CHOICES)}."
        )
    tiers: list[str] = []
    if options.method == "euler-numba" and getattr(system, "run_euler", None) is not None:
        tiers.append("numba")
    if chosen in ("auto", "c") and getattr(system, "run_c", None) is not None:
        tiers.append("c")
    if (
        chosen != "numpy"
        and getattr(system, "run_python", None) is not None
        and getattr(system, "batch", 1) == 1
    ):
        tiers.append("python")
    tiers.append("numpy")
    return tiers


#: Fixed-step runs with more steps than this are refused: even at a microsecond per
#: step they take a quarter of an hour, and a step this small is almost always a typo.
MAX_STEPS = 1_000_000_000

# The saved results are held about three times on their way into a Dataset (the
# integrator's list, the stacked arrays, the Dataset), and the machine needs memory for
# everything else: a run may use at most this share of physical memory for one copy.
_MEMORY_SHARE = 0.25


def _physical_memory() -> int | None:
    """Bytes of physical memory, or None where the platform does not say."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def memory_budget() -> int:
    """Bytes one run's saved results may take (a share of physical memory).

    Returns
    -------
    int
        A quarter of the machine's physical memory, or 4 GB where it is unknown.
    """
    phys = _physical_memory()
    return int(phys * _MEMORY_SHARE) if phys else 4_000_000_000


def check_run_size(
    grid: TimeGrid,
    options: SolverOptions,
    *,
    values_per_save: int,
    bytes_per_step: int = 0,
    system: System | None = None,
) -> None:
    """Refuse a run that would exhaust memory or take absurdly many steps.

    Called before anything is allocated, so a mistyped ``time_step=1e-9`` stops at
    once with the numbers instead of asking the operating system for terabytes.

    Parameters
    ----------
    grid : TimeGrid
        The run's time grid.
    options : SolverOptions
        The method (fixed-step methods take ``grid.n_steps()`` steps; adaptive ones
        choose their own).
    values_per_save : int
        Float64 values kept per saved time (state plus observed variables).
    bytes_per_step : int
        Memory a fixed-step run needs per step besides the saved results.
    system : System, optional
        The model; when a run is refused for its step count, one evaluation of its
        right-hand side is timed to say how long the run would take.

    Raises
    ------
    SettingsError
        When the saved results would exceed :func:`memory_budget`, or a fixed-step
        run would take more than ``MAX_STEPS`` steps.

    Examples
    --------
    >>> grid = TimeGrid(0.0, 100.0, 1e-9, 1e-9)
    >>> check_run_size(grid, SolverOptions(), values_per_save=40)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sd_model._errors.SettingsError: This run would save 100,000,000,001 time points x 40 ...
    """
    n_saves = grid.n_saves()
    n_steps = 0 if options.adaptive else grid.n_steps()
    saved = 8 * n_saves * max(values_per_save, 1)
    budget = memory_budget()
    share = f"a quarter of this machine's memory ({_fmt_bytes(budget)})"
    if saved > budget:
        raise SettingsError(
            f"This run would save {n_saves:,} time points x {values_per_save:,} values = "
            f"{_fmt_bytes(saved)}, more than {share}; raise saveper (now {grid.saveper:g}) "
            f"or time_step (now {grid.time_step:g}), or shorten the run."
        )
    if n_steps > MAX_STEPS:
        cost = _time_derivative(system, grid) if system is not None else None
        evals = METHOD_TABLE[options.method].evals_per_step
        eta = (
            f", about {_fmt_duration(n_steps * evals * cost)} at "
            f"{cost * 1e6:.3g} µs per evaluation of the model's equations"
            if cost
            else ""
        )
        raise SettingsError(
            f"This run would take {n_steps:,} {METHOD_TABLE[options.method].scheme} steps of "
            f"{grid.time_step:g}"
            f"{eta}; the limit is {MAX_STEPS:,}. Raise time_step, or use an adaptive "
            "method (method='RK45'), which chooses its own steps."
        )
    need = saved + bytes_per_step * n_steps
    if need > budget:
        raise SettingsError(
            f"This run would need {_fmt_bytes(need)} ({n_saves:,} time points x "
            f"{values_per_save:,} values, plus {bytes_per_step} byte(s) for each of "
            f"{n_steps:,} steps), more than {share}; raise time_step "
            f"(now {grid.time_step:g}) or shorten the run."
        )


def _fmt_bytes(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g} {unit}"
        n /= 1000
    raise AssertionError  # pragma: no cover


def _fmt_duration(seconds: float) -> str:
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds / 60:.3g} minutes" if seconds >= 60 else f"{seconds:.3g} seconds"


def _time_derivative(system: System, grid: TimeGrid) -> float | None:
    """Seconds per right-hand-side evaluation (best of three), None if it fails."""
    try:
        y0 = np.asarray(system.initial_state(), dtype=float)
        best = math.inf
        for _ in range(3):
            start = time.perf_counter()
            system.derivative(grid.initial_time, y0)
            best = min(best, time.perf_counter() - start)
        return best
    except Exception:  # an estimate only; the refusal does not depend on it
        return None


_HINT_FIXED = (
    "Check the model's equations near that time (division by zero, overflow), "
    "or use a smaller time step or an adaptive method."
)
_HINT_ADAPTIVE = (
    "Check the model's equations near that time (division by zero, overflow, a stock "
    "growing without bound)."
)
_HINT_DIVISION = "Use XIDZ or ZIDZ where a denominator can be zero."


def nonfinite_error(
    what: str, t: float, value: float | None = None, *, detail: str = "", adaptive: bool = False
) -> IntegrationError:
    """The error for a NaN or infinite value, naming what produced it and when.

    Every integrator (and the compiled backend's numba kernel) reports a blow-up with
    this one message, so a user sees the same words whatever the method or backend.

    Parameters
    ----------
    what : str
        The state entry (``"Stock[North]"``) or ``"the rate of change of Stock"``.
    t : float
        Time at which the value appeared.
    value : float, optional
        The value (``inf``, ``-inf``, ``nan``); unknown when None.
    detail : str
        Added in parentheses after the time (the stock's value, the method...).
    adaptive : bool
        Whether an adaptive method was integrating (changes the hint).

    Returns
    -------
    IntegrationError

    Examples
    --------
    >>> str(nonfinite_error("Stock", 1.5, float("inf")))[:47]
    'The integration produced inf for Stock at time '
    """
    shown = "a non-finite value" if value is None else f"{value}"
    extra = f" ({detail})" if detail else ""
    hint = _HINT_ADAPTIVE if adaptive else _HINT_FIXED
    return IntegrationError(
        f"The integration produced {shown} for {what} at time {t:g}{extra}. {hint}"
    )


def arithmetic_error(what: str, t: float, exc: BaseException) -> IntegrationError:
    """The error for a Python arithmetic exception raised while evaluating a model.

    Parameters
    ----------
    what : str
        What was being computed (``"'y'"``, ``"the rate of change of Stock"``).
    t : float
        Model time of the evaluation.
    exc : BaseException
        The ``ZeroDivisionError``, ``OverflowError``... raised.

    Returns
    -------
    IntegrationError

    Examples
    --------
    >>> str(arithmetic_error("'y'", 5.0, ZeroDivisionError("float division by zero")))[:40]
    "Division by zero computing 'y' at time 5"
    """
    if isinstance(exc, ZeroDivisionError):
        kind = "Division by zero"
    elif isinstance(exc, OverflowError):
        kind = "Overflow"
    else:
        kind = "Arithmetic error"
    hint = _HINT_DIVISION if isinstance(exc, ZeroDivisionError) else _HINT_ADAPTIVE
    text = " ".join(str(exc).split())[:200]
    return IntegrationError(
        f"{kind} computing {what} at time {t:g} ({type(exc).__name__}: {text}). {hint}"
    )


def _check_finite(system: System, t: float, y: np.ndarray) -> None:
    # Called at every step: the method call skips np.all's dispatch (a third of the cost).
    if np.isfinite(y).all():
        return
    bad = int(np.flatnonzero(~np.isfinite(y))[0])
    raise nonfinite_error(_label(system, bad), t, float(y[bad]))


def _label(system: System, i: int) -> str:
    labels = system.state_labels
    return labels[i] if i < len(labels) else f"state[{i}]"


def _fastest(
    system: System,
    fun: Callable[[float, np.ndarray], np.ndarray],
    t: float,
    y: np.ndarray,
    atol: float,
) -> str:
    """Name the state entry changing fastest (relative to its size): the likely culprit."""
    try:
        d = np.asarray(fun(t, y), dtype=float)
    except Exception:
        return ""
    if d.size == 0 or not np.any(np.isfinite(d)):
        return ""
    rate = np.where(np.isfinite(d), np.abs(d) / (np.abs(y) + atol), np.inf)
    i = int(np.argmax(rate))
    labels = system.state_labels
    label = labels[i] if i < len(labels) else f"state[{i}]"
    return f" The fastest-changing stock is {label} = {y[i]:.4g} (rate {d[i]:.4g} per time unit)."


def _integrate_fixed(system: System, grid: TimeGrid, options: SolverOptions) -> IntegrationResult:
    dt = grid.time_step
    saves = fixed_step_saves(grid)
    save_steps = saves.steps.tolist()
    n_steps = grid.n_steps()
    y = np.asarray(system.initial_state(), dtype=float)
    _check_finite(system, grid.initial_time, y)
    states: list[np.ndarray] = []
    observations: list[Any] = []
    messages: list[str] = []
    nfev = 0
    euler = METHOD_TABLE[options.method].scheme == "euler"
    i = 0
    next_save = save_steps[0] if save_steps else -1
    t = grid.initial_time
    # A system may set up its floating-point error handling once for the whole loop.
    stepping = getattr(system, "stepping", None)
    with stepping() if stepping is not None else contextlib.nullcontext():
        for k in range(n_steps + 1):
            # Time accumulates step by step exactly as in PySD's and Vensim's loops (a model
            # dividing by (2 - Time) sees 2.0000000000000004, not 2.0, as they do).
            if k:
                t = t + dt
            if k == next_save:
                states.append(y.copy())
                observations.append(system.observe(t, y))
                i += 1
                next_save = save_steps[i] if i < len(save_steps) else -1
            if k == n_steps:
                break
            if euler:
                y = np.asarray(system.euler_step(t, y, dt), dtype=float)
                nfev += 1
            else:
                y = _rk4_step(system.derivative, t, y, dt)
                nfev += 4
            _check_finite(system, t + dt, y)
    if saves.skipped.size:
        messages.append(_skipped_message(saves.skipped, dt))
    return IntegrationResult(
        times=saves.times,
        states=np.asarray(states),
        observations=observations,
        nfev=nfev,
        method=options.method,
        messages=messages,
    )


def _skipped_message(skipped: np.ndarray, dt: float) -> str:
    # One message for all of them: a long run would otherwise warn once per saved time.
    shown = ", ".join(f"{x:g}" for x in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
    return (
        f"{len(skipped)} saved time(s) ({shown}) are not multiples of the time step {dt:g} "
        f"and were skipped, as in PySD; use a SAVEPER that is a multiple of {dt:g} (or "
        "an adaptive method) to save them."
    )


def _rk4_step(
    f: Callable[[float, np.ndarray], np.ndarray], t: float, y: np.ndarray, dt: float
) -> np.ndarray:
    k1 = f(t, y)
    k2 = f(t + dt / 2, y + dt / 2 * k1)
    k3 = f(t + dt / 2, y + dt / 2 * k2)
    k4 = f(t + dt, y + dt * k3)
    return np.asarray(y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4), dtype=float)


def segment_edges(t0: float, t1: float, breakpoints: Sequence[float]) -> list[float]:
    """Split ``[t0, t1]`` at the breakpoints strictly inside it.

    Parameters
    ----------
    t0, t1 : float
        Interval ends.
    breakpoints : sequence of float
        Candidate breakpoints; those outside ``(t0, t1)`` or non-finite are ignored.

    Returns
    -------
    list of float
        Sorted edges starting with ``t0`` and ending with ``t1``.
    """
    span = t1 - t0
    eps = 1e-9 * max(1.0, abs(span))
    inner = sorted({float(b) for b in breakpoints if math.isfinite(b) and t0 + eps < b < t1 - eps})
    return [t0, *inner, t1]


class _RateWatch:
    """What the solver last evaluated, the first NaN or infinite rate it met, and stalls.

    An adaptive solver that meets an infinite rate rejects the step and retries with a
    smaller one; near an overflow RK45 and BDF give up with "step size too small", but
    LSODA creeps towards the overflow, then evaluates the same point for ever. Counting
    non-finite rates and repeated times bounds that, and lets every method report a
    blow-up the same way.
    """

    # A solver recovers from a few NaN trial points (it shrinks the step); this many
    # means the state itself is running away.
    BAD_LIMIT = 100

    def __init__(self, n_state: int) -> None:
        self.t = math.nan
        self.y: np.ndarray | None = None
        self.bad: tuple[float, np.ndarray, np.ndarray] | None = None
        self.n_bad = 0
        self.repeats = 0
        # Evaluations at one time are legitimate up to a finite-difference Jacobian
        # (one per state entry) plus Newton iterations; far more is a stall.
        self.repeat_limit = 2 * n_state + 1000

    def see(self, t: float, y: np.ndarray, d: np.ndarray) -> None:
        if t == self.t:
            self.repeats += 1
            if self.repeats > self.repeat_limit:
                raise _RunawayError
        else:
            self.repeats = 0
        self.t = t
        self.y = y
        if np.isfinite(d).all():
            return
        if self.bad is None:
            self.bad = (float(t), np.array(y, dtype=float), np.array(d, dtype=float))
        self.n_bad += 1
        if self.n_bad >= self.BAD_LIMIT:
            raise _RunawayError

    def error(self, system: System, method: str) -> IntegrationError | None:
        """The blow-up error, if a non-finite rate was met."""
        if self.bad is None:
            return None
        t, y, d = self.bad
        if not np.isfinite(y).all():
            i = int(np.flatnonzero(~np.isfinite(y))[0])
            return nonfinite_error(_label(system, i), t, float(y[i]), detail=method, adaptive=True)
        i = int(np.flatnonzero(~np.isfinite(d))[0])
        label = _label(system, i)
        return nonfinite_error(
            f"the rate of change of {label}",
            t,
            float(d[i]),
            detail=f"{label} = {y[i]:.4g}; {method}",
            adaptive=True,
        )


class _RunawayError(Exception):
    """Raised inside the solver's right-hand side to stop a run that cannot recover."""


def _integrate_adaptive(
    system: System, grid: TimeGrid, options: SolverOptions
) -> IntegrationResult:
    save_times = grid.save_times()
    y = np.asarray(system.initial_state(), dtype=float)
    _check_finite(system, grid.initial_time, y)
    edges = segment_edges(grid.initial_time, grid.final_time, system.breakpoints)
    states = np.empty((len(save_times), y.size))
    filled = np.zeros(len(save_times), dtype=bool)
    # Saved times at the initial time need no integration (and a run with
    # final_time == initial_time has nothing else).
    at_start = np.isclose(save_times, grid.initial_time, rtol=0.0, atol=1e-12)
    states[at_start] = y
    filled |= at_start
    nfev = 0
    tol = 1e-9 * max(1.0, abs(grid.final_time - grid.initial_time))

    for a, b in itertools.pairwise(edges):
        if b - a <= 0:
            continue
        # Per segment: non-finite trial points a solver recovered from are forgotten.
        watch = _RateWatch(y.size)
        # Within a segment the right-hand side is smooth; at its end the solver must see
        # the left limit, not the value after a jump that happens exactly there.
        b_left = float(np.nextafter(b, a))

        def rhs(t: float, yy: np.ndarray, _b: float = b, _bl: float = b_left) -> np.ndarray:
            return np.asarray(system.derivative(_bl if t >= _b else t, yy), dtype=float)

        def fun(t: float, yy: np.ndarray, _watch: _RateWatch = watch) -> np.ndarray:
            d = rhs(t, yy)
            _watch.see(t, yy, d)
            return d

        inside = np.flatnonzero((save_times >= a - tol) & (save_times <= b + tol) & ~filled)
        # Always ask for the segment's end: it is the next segment's start.
        t_eval = np.unique(np.append(np.clip(save_times[inside], a, b), b))
        kwargs: dict[str, Any] = {"rtol": options.rtol, "atol": options.atol}
        if options.max_step is not None:
            kwargs["max_step"] = options.max_step
        if options.first_step is not None:
            kwargs["first_step"] = min(options.first_step, b - a)
        try:
            # Near a blow-up SciPy's own algebra overflows; the error below says so once.
            with np.errstate(all="ignore"):
                sol = solve_ivp(fun, (a, b), y, method=options.method, t_eval=t_eval, **kwargs)
            message = sol.message
            failed = not sol.success or sol.status != 0 or sol.t.size != t_eval.size
            nfev += int(sol.nfev)
        except _RunawayError:
            message = f"it evaluated the model {watch.repeats} times there without advancing."
            failed = True
        except (ValueError, np.linalg.LinAlgError) as exc:
            # BDF and Radau factorize a Jacobian; an infinite rate makes it inf/NaN.
            message = f"{type(exc).__name__}: {exc}."
            failed = True
        if failed:
            runaway = watch.error(system, options.method)
            if runaway is not None:
                raise runaway from None
            # The solver's own last time: sol.t holds only the requested times reached
            # (and sol.y is an empty list when it reached none of them).
            last_t = float(watch.t) if math.isfinite(watch.t) else a
            last_y = np.array(watch.y, dtype=float) if watch.y is not None else y
            _check_finite(system, last_t, last_y)
            raise IntegrationError(
                f"The {options.method} solver failed at time {last_t:g}: {message}"
                f"{_fastest(system, rhs, last_t, last_y, options.atol)} "
                "Try a looser rtol/atol, another method (LSODA or Radau for stiff models), "
                "or method='euler'."
            )
        if inside.size:
            pos = np.searchsorted(t_eval, np.clip(save_times[inside], a, b))
            states[inside] = sol.y.T[pos]
            filled[inside] = True
        y = np.asarray(sol.y[:, -1], dtype=float)
        _check_finite(system, b, y)
    if not filled.all():  # pragma: no cover - defensive; every save time lies in a segment
        missing = save_times[~filled]
        raise IntegrationError(f"Internal error: no state computed at times {missing}.")
    for i, t in enumerate(save_times):
        _check_finite(system, float(t), states[i])
    observations = [system.observe(float(t), states[i]) for i, t in enumerate(save_times)]
    return IntegrationResult(
        times=save_times,
        states=states,
        observations=observations,
        nfev=nfev,
        method=options.method,
    )
