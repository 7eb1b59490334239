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

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

import numpy as np
from scipy.integrate import solve_ivp

from sd_model._errors import IntegrationError, SettingsError, UnsupportedFeatureError

Method = Literal["euler", "rk4", "RK45", "DOP853", "LSODA", "BDF", "Radau", "RK23"]
FIXED_STEP_METHODS: frozenset[str] = frozenset({"euler", "rk4"})
ADAPTIVE_METHODS: frozenset[str] = frozenset({"RK45", "DOP853", "LSODA", "BDF", "Radau", "RK23"})
METHODS: tuple[str, ...] = get_args(Method)

# Relative precision used to match step times to saved times (PySD uses the same
# 1e-5 of a time step in ``Time.in_return``).
_TIME_RPREC = 1e-5


@dataclass(frozen=True)
class SolverOptions:
    """How to integrate.

    Parameters
    ----------
    method : {"euler", "rk4", "RK45", "DOP853", "LSODA", "BDF", "Radau", "RK23"}
        ``euler`` and ``rk4`` step at the time step; the others are
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
        return self.method in ADAPTIVE_METHODS


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
    observations : list
        ``system.observe(t, y)`` at each saved time.
    nfev : int
        Number of right-hand-side evaluations.
    method : str
        Method used.
    """

    times: np.ndarray
    states: np.ndarray
    observations: list[Any]
    nfev: int
    method: str
    messages: list[str] = field(default_factory=list)


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
        When the state becomes NaN or infinite, or the solver fails; the message names
        the first offending state entry and the time.
    UnsupportedFeatureError
        When the system has discrete elements and the method is not ``euler``.

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
    if discrete and options.method != "euler":
        raise UnsupportedFeatureError(
            f"Method {options.method!r} cannot integrate {', '.join(discrete)}: "
            "these elements (DELAY FIXED, SAMPLE IF TRUE, ...) update once per time step. "
            "Use method='euler'."
        )
    if options.adaptive:
        return _integrate_adaptive(system, grid, options)
    return _integrate_fixed(system, grid, options)


def _check_finite(system: System, t: float, y: np.ndarray) -> None:
    if np.all(np.isfinite(y)):
        return
    bad = int(np.flatnonzero(~np.isfinite(y))[0])
    labels = system.state_labels
    label = labels[bad] if bad < len(labels) else f"state[{bad}]"
    raise IntegrationError(
        f"The integration produced {y[bad]} for {label} at time {t:g}. "
        "Check the model's equations near that time (division by zero, overflow), "
        "or use a smaller time step or an adaptive method."
    )


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
    save_times = grid.save_times()
    n_steps = grid.n_steps()
    y = np.asarray(system.initial_state(), dtype=float)
    _check_finite(system, grid.initial_time, y)
    times: list[float] = []
    states: list[np.ndarray] = []
    observations: list[Any] = []
    messages: list[str] = []
    next_save = 0
    nfev = 0
    skipped: list[float] = []
    tol = dt * _TIME_RPREC
    t = grid.initial_time
    for k in range(n_steps + 1):
        # Time accumulates step by step exactly as in PySD's and Vensim's loops (a model
        # dividing by (2 - Time) sees 2.0000000000000004, not 2.0, as they do).
        if k:
            t = t + dt
        while next_save < len(save_times) and save_times[next_save] < t - tol:
            skipped.append(float(save_times[next_save]))
            next_save += 1
        if next_save < len(save_times) and abs(save_times[next_save] - t) <= tol:
            times.append(float(save_times[next_save]))
            states.append(y.copy())
            observations.append(system.observe(t, y))
            next_save += 1
        if k == n_steps:
            break
        if options.method == "euler":
            y = np.asarray(system.euler_step(t, y, dt), dtype=float)
            nfev += 1
        else:
            y = _rk4_step(system.derivative, t, y, dt)
            nfev += 4
        _check_finite(system, t + dt, y)
    if skipped:
        # One message for all of them: a long run would otherwise warn once per saved time.
        shown = ", ".join(f"{x:g}" for x in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        messages.append(
            f"{len(skipped)} saved time(s) ({shown}) are not multiples of the time step {dt:g} "
            f"and were skipped, as in PySD; use a SAVEPER that is a multiple of {dt:g} (or "
            "an adaptive method) to save them."
        )
    return IntegrationResult(
        times=np.asarray(times),
        states=np.asarray(states),
        observations=observations,
        nfev=nfev,
        method=options.method,
        messages=messages,
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
        # Within a segment the right-hand side is smooth; at its end the solver must see
        # the left limit, not the value after a jump that happens exactly there.
        b_left = float(np.nextafter(b, a))

        def fun(t: float, yy: np.ndarray, _b: float = b, _bl: float = b_left) -> np.ndarray:
            return np.asarray(system.derivative(_bl if t >= _b else t, yy), dtype=float)

        inside = np.flatnonzero((save_times >= a - tol) & (save_times <= b + tol) & ~filled)
        # Always ask for the segment's end: it is the next segment's start.
        t_eval = np.unique(np.append(np.clip(save_times[inside], a, b), b))
        kwargs: dict[str, Any] = {"rtol": options.rtol, "atol": options.atol}
        if options.max_step is not None:
            kwargs["max_step"] = options.max_step
        if options.first_step is not None:
            kwargs["first_step"] = min(options.first_step, b - a)
        sol = solve_ivp(fun, (a, b), y, method=options.method, t_eval=t_eval, **kwargs)
        nfev += int(sol.nfev)
        if not sol.success or sol.status != 0 or sol.t.size != t_eval.size:
            last_t = float(sol.t[-1]) if sol.t.size else a
            last_y = sol.y[:, -1] if sol.y.size else y
            _check_finite(system, last_t, last_y)
            raise IntegrationError(
                f"The {options.method} solver failed at time {last_t:g}: {sol.message}"
                f"{_fastest(system, fun, last_t, last_y, options.atol)} "
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
