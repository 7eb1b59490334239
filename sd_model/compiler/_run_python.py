"""Running the Python tier's generated function: helpers, binding, results.

:mod:`sd_model.compiler._emit_python` writes a whole fixed-step run as one Python
function (:class:`~sd_model.compiler._emit_python.PythonSource`); this module gives it
what a bound system holds (constants, INITIAL values, lookup tables, the random stream:
:func:`bind`), the scalar helpers it calls (lookups, PULSE, RAMP, QUANTUM, RANDOM draws,
each following :mod:`sd_model.compiler._runtime`), runs it (:func:`execute`) and turns its
rows into an :class:`sd_model.integrate.IntegrationResult` with column-wise observations
(:func:`run_system`).
"""

from __future__ import annotations

import array
import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sd_model.compiler._emit_python import (
    CLAMPED,
    GENERAL,
    LOOKUP_MODES,
    NP_INTERP,
    PythonSource,
    PythonUnsupported,
)
from sd_model.compiler._lowered import Program


def _trunc(x: float) -> float:
    # np.trunc on a float; math.trunc returns an int (exact for every finite float)
    return float(math.trunc(x))


def _quantum(a: float, b: float) -> float:
    return a if b < 1e-06 else b * _trunc(a / b)


def _modulo(x: float, m: float) -> float:
    return x - _quantum(x, m)


def _ramp(t: float, slope: float, start: float, finish: float | None) -> float:
    if finish is None:
        final = t
    else:  # np.minimum(finish, t)
        final = finish if finish <= t else (t if t < finish else finish + t)
    return (1.0 if t + 1e-06 > start else 0.0) * slope * (final - start)


def _make_pulse(eps: float) -> Callable[..., float]:
    def _pulse(
        t: float,
        dt: float,
        start: float,
        repeat: float,
        width: float | None,
        magnitude: float | None,
        end: float | None,
    ) -> float:
        w = 0.5 * dt if width is None else width
        out = 1.0 if magnitude is None else magnitude / dt
        if repeat == 0:
            on = start - eps <= t and t < start + w
        else:
            on = start <= t and (t - start + eps) % repeat < w
            if end is not None:
                on = on and t < end
        return out if on else 0.0

    return _pulse


def _make_draw(uniforms: Callable[..., Any] | None) -> Callable[..., float]:
    """``_draw(dist, t, position, *params)``: one cell of a RANDOM call at time ``t``.

    The same draw functions (:data:`sd_model.compiler._random.DRAWS`) and the same
    uniforms (``uniforms(t, position, ())``, the bound system's stream) as the NumPy
    path, on one value.
    """
    from sd_model.compiler._random import DRAWS

    fns: tuple[Any, ...] = tuple(DRAWS.values())

    def _draw(dist: int, t: float, pos: int, *params: float) -> float:
        if uniforms is None:
            raise ValueError("no random stream bound")  # the NumPy path reports it
        return float(np.asarray(fns[dist](uniforms(t, pos, ()), *params)).reshape(-1)[0])

    return _draw


def _lookup(x: float, xs: list[float], ys: list[float], mode: int) -> float:
    """A lookup table at ``x``, as :func:`sd_model.compiler._runtime.lookup` computes it.

    ``mode`` 0 is :func:`numpy.interp` (one table for every cell), 6 NumPy's clamped
    gather (shared x, a y row per cell), 5 the general interpolation; 1-4 extrapolate,
    hold backward, look forward, raw.
    """
    n = len(xs)
    if x != x:
        return x
    if mode == NP_INTERP:
        # numpy/core/src/multiarray/compiled_base.c: arr_interp
        if n == 1 or x < xs[0]:
            return ys[0]
        if x > xs[-1]:
            return ys[-1]
        j = bisect.bisect_right(xs, x) - 1
        if j == n - 1 or xs[j] == x:
            return ys[j]
        slope = (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j])
        r = slope * (x - xs[j]) + ys[j]
        if r != r:
            r = slope * (x - xs[j + 1]) + ys[j + 1]
            if r != r and ys[j] == ys[j + 1]:
                r = ys[j]
        return r
    if mode == CLAMPED:
        xc = x if x >= xs[0] else xs[0]
        xc = xc if xc <= xs[-1] else xs[-1]
        lo = min(bisect.bisect_right(xs, xc) - 1, n - 2)
        x0 = xs[lo]
        w = (xc - x0) / (xs[lo + 1] - x0)
        y0 = ys[lo]
        return y0 + w * (ys[lo + 1] - y0)
    k = bisect.bisect_right(xs, x)  # the number of points at or below x
    lo = min(max(k - 1, 0), n - 1)
    hi = min(k, n - 1)
    x0, x1, y0, y1 = xs[lo], xs[hi], ys[lo], ys[hi]
    if mode == 2:
        return y0
    if mode in (3, 4):
        if x0 == x:
            return y0
        if mode == 4:
            return math.nan
        return y0 if k >= n else y1
    span = x1 - x0
    w = (x - x0) / span if span > 0 else 0.0
    out = y0 + w * (y1 - y0)
    if mode == 1 and n > 1:
        if x < xs[0]:
            out = ys[0] + (ys[1] - ys[0]) / (xs[1] - xs[0]) * (x - xs[0])
        elif x > xs[-1]:
            out = ys[-1] + (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]) * (x - xs[-1])
    return out


def _table_mode(xs: np.ndarray, ys: np.ndarray, mode: str) -> int:
    """Which formula :func:`sd_model.compiler._runtime.lookup` uses for these tables."""
    if mode == "interpolate" and not any(xs.strides[:-1]):
        if not any(ys.strides[:-1]):
            return NP_INTERP
        n = xs.shape[-1]
        x1 = xs[(0,) * (xs.ndim - 1)]
        if n >= 2 and x1[-1] > x1[-2] and ys.flags.c_contiguous:
            return CLAMPED
        return GENERAL
    return LOOKUP_MODES[mode]


def bind(
    ps: PythonSource, prog: Program, ns: Mapping[str, Any]
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[tuple[Any, ...], ...]]:
    """The constants, INITIAL values and lookup tables of a bound system (scenario 0)."""
    els = prog.elements
    consts = []
    for i, cell in ps.consts:
        arr = np.asarray(ns[f"v{i}"], dtype=float)
        consts.append(float(np.broadcast_to(arr, (1, *els[i].shape)).reshape(-1)[cell]))
    saved = []
    for j, cell in ps.saved:
        shape = prog.statefuls[j].ctx.shape
        arr = np.asarray(ns[f"o{j}"], dtype=float)
        saved.append(float(np.broadcast_to(arr, (1, *shape)).reshape(-1)[cell]))
    tables: list[tuple[Any, ...]] = []
    for spec in ps.tables:
        if spec[0] == "lookup":
            _, i, cell, mode = spec
            lx, ly = ns[f"LX{i}"], ns[f"LY{i}"]
            xs, ys = lx[(0, *cell)], ly[(0, *cell)]
            tables.append((xs.tolist(), ys.tolist(), _table_mode(lx, ly, mode)))
        elif spec[0] == "inline":
            xs = np.asarray(prog.consts[spec[1]], dtype=float)
            ys = np.asarray(prog.consts[spec[2]], dtype=float)
            if xs.ndim != 1 or ys.ndim != 1:
                raise PythonUnsupported("a WITH LOOKUP table of more than one dimension")
            tables.append((xs.tolist(), ys.tolist(), NP_INTERP))
        else:
            _, xname, yname, kv, mode = spec
            lx = np.asarray(prog.consts[xname], dtype=float)
            ly = np.asarray(prog.consts[yname], dtype=float)
            row = [0] + [0 if n == 1 else kv[q] for q, n in enumerate(lx.shape[1:-1])]
            rowy = [0] + [0 if n == 1 else kv[q] for q, n in enumerate(ly.shape[1:-1])]
            tables.append(
                (lx[tuple(row)].tolist(), ly[tuple(rowy)].tolist(), _table_mode(lx, ly, mode))
            )
    return tuple(consts), tuple(saved), tuple(tables)


@dataclass(frozen=True)
class PythonRun:
    """What the generated function returned: rows, or where the state became non-finite.

    ``rows`` has shape ``(T, n_state + observed cells)``; ``bad_step`` is the step after
    which the state was NaN or infinite (-1 when it never was) and ``bad_state`` that
    state.
    """

    rows: np.ndarray
    bad_step: int
    bad_state: tuple[float, ...] | None


def execute(
    ps: PythonSource,
    *,
    y0: Sequence[float],
    bound: tuple[tuple[float, ...], tuple[float, ...], tuple[tuple[Any, ...], ...]],
    t0: float,
    dt: float,
    n_steps: int,
    save_steps: Sequence[int],
    control: tuple[float, float, float, float],
    eps: float,
    uniforms: Callable[..., Any] | None = None,
) -> PythonRun | None:
    """Run the generated function; None when Python raised where NumPy would not.

    Python raises ``ZeroDivisionError``, ``OverflowError`` (``math.exp(1000)``) or
    ``ValueError`` (``math.log(0)``, ``math.sqrt(-1)``) where NumPy returns inf or NaN;
    the caller then runs the NumPy path, which gives NumPy's values (or its error naming
    the stock).
    """
    ns: dict[str, Any] = {
        "_math": math,
        "_pow": math.pow,
        "_trunc": _trunc,
        "_quantum": _quantum,
        "_modulo": _modulo,
        "_ramp": _ramp,
        "_pulse": _make_pulse(eps),
        "_lookup": _lookup,
        "_draw": _make_draw(uniforms),
    }
    exec(ps.code, ns)  # generated from the lowered program only; no model text
    # one flat buffer of doubles: extending it with a row costs less than keeping tuples
    rows = array.array("d")
    consts, saved, tables = bound
    ti, tf, step, sp = control
    try:
        bad_step, bad_state = ns["_run"](
            tuple(float(v) for v in y0),
            consts,
            saved,
            tables,
            float(t0),
            float(dt),
            int(n_steps),
            list(save_steps),
            ti,
            tf,
            step,
            sp,
            float(dt) / 2,
            rows.extend,
        )
    except (ArithmeticError, ValueError):
        return None
    if ps.row_width:
        arr = np.frombuffer(rows, dtype=float).reshape(-1, ps.row_width)
    else:  # nothing time-dependent: one empty row per saved time
        arr = np.zeros((len(save_steps), 0))
    return PythonRun(arr, int(bad_step), bad_state)


def run_system(
    ps: PythonSource,
    *,
    prog: Program,
    ns: Mapping[str, Any],
    y0: np.ndarray,
    grid: Any,
    labels: Callable[[], Sequence[str]],
    constants: Mapping[str, np.ndarray],
) -> Any:
    """Run a bound single-scenario system through the generated function.

    Returns an :class:`sd_model.integrate.IntegrationResult` with column-wise
    observations, or None when Python raised where NumPy would not (see
    :func:`execute`).

    Raises
    ------
    sd_model.IntegrationError
        When the state becomes NaN or infinite (naming the entry and the time, as the
        NumPy path does).
    """
    from sd_model.integrate import (
        ColumnObservations,
        IntegrationResult,
        _skipped_message,
        fixed_step_saves,
        nonfinite_error,
    )

    y = np.asarray(y0, dtype=float)
    if not np.isfinite(y).all():
        bad = int(np.flatnonzero(~np.isfinite(y))[0])
        raise nonfinite_error(_label(labels, bad), grid.initial_time, float(y[bad]))
    fs = fixed_step_saves(grid)  # the one save-time rule of every fixed-step path
    n_steps = grid.n_steps()
    dt = float(grid.time_step)
    run = execute(
        ps,
        y0=y.tolist(),
        bound=bind(ps, prog, ns),
        t0=float(grid.initial_time),
        dt=dt,
        n_steps=n_steps,
        save_steps=fs.steps.tolist(),
        control=(float(ns["TI"]), float(ns["TF"]), float(ns["DT"]), float(ns["SP"])),
        eps=float(ns["EPS"]),
        uniforms=ns.get("_U"),
    )
    if run is None:
        return None
    if run.bad_step >= 0:
        assert run.bad_state is not None
        state = np.asarray(run.bad_state, dtype=float)
        bad = int(np.flatnonzero(~np.isfinite(state))[0])
        # the time as integrate's loop names it: the step's start time plus dt
        t = float(grid.initial_time)
        for _ in range(run.bad_step - 1):
            t = t + dt
        raise nonfinite_error(_label(labels, bad), t + dt, float(state[bad]))
    rows = run.rows
    n_times = rows.shape[0]
    states = rows[:, : ps.n_state]
    columns: dict[str, np.ndarray] = {}
    for name, arr in constants.items():
        columns[name] = np.broadcast_to(arr, (n_times, *arr.shape))
    col = ps.n_state
    for i in ps.observed:
        el = prog.elements[i]
        size = math.prod(el.shape)
        columns[el.py_name] = rows[:, col : col + size].reshape(n_times, 1, *el.shape)
        col += size
    nfev = n_steps * (1 if ps.scheme == "euler" else 4)
    return IntegrationResult(
        times=fs.times,
        states=states,
        observations=ColumnObservations(columns, n_times),
        nfev=nfev,
        method=ps.scheme,
        messages=[_skipped_message(fs.skipped, dt)] if fs.skipped.size else [],
        columns=columns,
    )


def _label(labels: Callable[[], Sequence[str]], i: int) -> str:
    names = labels()
    return names[i] if i < len(names) else f"state[{i}]"
