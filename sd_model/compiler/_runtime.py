"""NumPy helpers called by the generated right-hand side.

Every helper works on arrays with a leading batch axis (scenarios) and copies the
semantics of PySD's runtime (``pysd/py_backend/functions.py``, ``statefuls.py``,
``lookups.py``) so that the compiled backend reproduces PySD and Vensim.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# What Vensim considers zero (PySD's functions.SMALL_VENSIM).
SMALL_VENSIM = 1e-6


def bc(x: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Broadcast ``x`` to ``shape`` (a read-only view when possible)."""
    return np.broadcast_to(np.asarray(x, dtype=float), shape)


def stack(x: Any, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """Initial state of an ``n``-stage SMOOTH/DELAY: ``x`` repeated along axis 1."""
    full = bc(x, shape)
    return np.repeat(full[:, None], n, axis=1)


def reduce(ufunc: np.ufunc, x: Any, shape: tuple[int, ...], axes: tuple[int, ...]) -> Any:
    """SUM/PROD/VMIN/VMAX over ``axes`` of ``x`` broadcast to ``shape``."""
    x = np.asarray(x, dtype=float)
    if x.shape != shape:
        x = np.broadcast_to(x, shape)
    return ufunc.reduce(x, axis=axes)


def where(cond: Any, a: Any, b: Any) -> np.ndarray:
    """Vensim's IF THEN ELSE (both branches are evaluated, as NumPy does)."""
    return np.where(np.asarray(cond) != 0, a, b)


def xidz(num: Any, den: Any, x: Any) -> np.ndarray:
    """XIDZ: ``num / den`` or ``x`` where ``|den| < 1e-6``."""
    den = np.asarray(den, dtype=float)
    small = np.abs(den) < SMALL_VENSIM
    return np.where(small, x, num / np.where(small, 1.0, den))


def zidz(num: Any, den: Any) -> np.ndarray:
    """ZIDZ: ``num / den`` or 0 where ``|den| < 1e-6``."""
    return xidz(num, den, 0.0)


def integer(x: Any) -> np.ndarray:
    """INTEGER: truncation towards zero (PySD casts to int)."""
    return np.trunc(x)


def quantum(a: Any, b: Any) -> np.ndarray:
    """QUANTUM: ``b * integer(a / b)``, or ``a`` where ``b < 1e-6``."""
    b = np.asarray(b, dtype=float)
    small = b < SMALL_VENSIM
    return np.where(small, a, b * np.trunc(a / np.where(small, 1.0, b)))


def modulo(x: Any, m: Any) -> np.ndarray:
    """MODULO as PySD defines it: ``x - quantum(x, m)``."""
    return x - quantum(x, m)


def log(x: Any, base: Any) -> np.ndarray:
    """LOG(x, base)."""
    return np.log(x) / np.log(base)


def step(t: float, half: float, value: Any, tstep: Any) -> np.ndarray:
    """STEP: ``value`` from ``tstep`` on.

    ``half`` is half the time step for fixed-step methods (PySD and Vensim compare with
    ``t + dt/2`` so that Euler's grid never straddles the switch) and 0 for adaptive
    methods, which integrate up to the breakpoint and switch exactly there.
    """
    on = t + half > tstep if half > 0 else t >= tstep
    return value * (np.asarray(on, dtype=float))


def ramp(t: float, slope: Any, start: Any, finish: Any = None) -> np.ndarray:
    """RAMP: 0 before ``start``, then ``slope * (min(t, finish) - start)``."""
    final = t if finish is None else np.minimum(finish, t)
    return np.asarray(t + SMALL_VENSIM > start, dtype=float) * slope * (final - start)


def pulse(
    t: float,
    dt: float,
    start: Any,
    repeat_time: Any = 0.0,
    width: Any = None,
    magnitude: Any = None,
    end: Any = None,
    eps: float = SMALL_VENSIM,
) -> np.ndarray:
    """PULSE, PULSE TRAIN and XMILE's PULSE, vectorized copy of PySD's ``pulse``.

    ``eps`` is PySD's tolerance for Euler's grid; adaptive methods pass 0 so the pulse
    starts exactly at its breakpoint.
    """
    start = np.asarray(start, dtype=float)
    width = 0.5 * dt if width is None else np.asarray(width, dtype=float)
    out = 1.0 if magnitude is None else np.asarray(magnitude, dtype=float) / dt
    repeat = np.asarray(repeat_time, dtype=float)
    single = (start - eps <= t) & (t < start + width)
    safe_repeat = np.where(repeat == 0, 1.0, repeat)
    in_train = (start <= t) & ((t - start + eps) % safe_repeat < width)
    if end is not None:
        in_train = in_train & (t < np.asarray(end, dtype=float))
    on = np.where(repeat == 0, single, in_train)
    return np.where(on, out, 0.0)


def _stage(x: Any) -> np.ndarray:
    """Insert the stage axis (axis 1) into a per-cell argument of a SMOOTH/DELAY."""
    x = np.asarray(x, dtype=float)
    return x if x.ndim == 0 else np.expand_dims(x, 1)


def smooth_ddt(s: np.ndarray, inp: Any, stime: Any, n: int) -> np.ndarray:
    """Derivative of an ``n``-stage SMOOTH; ``s`` has the stage on axis 1."""
    targets = np.empty_like(s)
    targets[:, 0] = inp
    targets[:, 1:] = s[:, :-1]
    return (targets - s) * n / _stage(stime)


def delay_ddt(s: np.ndarray, inp: Any, dtime: Any, n: int) -> np.ndarray:
    """Derivative of an ``n``-stage material DELAY (stage contents times delay time)."""
    outflows = s / _stage(dtime)
    inflows = np.empty_like(s)
    inflows[:, 0] = inp
    inflows[:, 1:] = outflows[:, :-1]
    return (inflows - outflows) * n


def delayn_ddt(s: np.ndarray, inp: Any, dtime: Any, n: int, continuous: bool = False) -> np.ndarray:
    """Derivative of PySD's DELAY N: ``s`` holds ``n`` stages then ``n`` stage delay times.

    PySD shifts the remembered delay times by one stage at each (Euler) step and puts
    the current delay time first; the stage outflows use those times. That memory is a
    device of the fixed step: adaptive methods (``continuous``) use the current delay
    time in every stage, the limit of PySD's scheme as the step goes to zero.
    """
    st, times = s[:, :n], s[:, n:]
    new_times = np.empty_like(times)
    if continuous:
        new_times[...] = _stage(dtime)
    else:
        new_times[:, 0] = dtime
        new_times[:, 1:] = times[:, :-1]
    outflows = st / new_times
    inflows = np.empty_like(st)
    inflows[:, 0] = inp
    inflows[:, 1:] = outflows[:, :-1]
    out = np.zeros_like(s)
    out[:, :n] = (inflows - outflows) * n
    return out


def delayn_times(nxt: np.ndarray, s: np.ndarray, dtime: Any, n: int) -> np.ndarray:
    """DELAY N state after an Euler step: the remembered delay times shift by one."""
    out = np.array(nxt)
    out[:, n] = dtime
    out[:, n + 1 :] = s[:, n:-1]
    return out


def shift(s: np.ndarray, inp: Any) -> np.ndarray:
    """DELAY FIXED's pipe after one time step: drop the oldest value, append ``inp``."""
    out = np.empty_like(s)
    out[:, :-1] = s[:, 1:]
    out[:, -1] = inp
    return out


def lookup(xq: Any, xs: np.ndarray, ys: np.ndarray, mode: str = "interpolate") -> np.ndarray:
    """Evaluate lookup tables at ``xq``.

    Parameters
    ----------
    xq : array_like
        Query points, broadcastable to ``xs.shape[:-1]``.
    xs, ys : numpy.ndarray
        Table points along the last axis (padded tables repeat their last point).
    mode : {"interpolate", "extrapolate", "hold_backward"}
        Linear interpolation clamped at the ends (Vensim), linear extrapolation
        (XMILE), or step-wise holding of the previous point.
    """
    xq = np.asarray(xq, dtype=float)
    n = xs.shape[-1]
    shared_x = not any(xs.strides[:-1])  # one x row broadcast over the cells
    if shared_x and mode == "interpolate":
        x1 = xs[(0,) * (xs.ndim - 1)]
        if not any(ys.strides[:-1]):
            # one table for every cell: the result varies only where the query does
            return np.interp(xq, x1, ys[(0,) * (ys.ndim - 1)])
        if xq.ndim == 0:
            # one query (a year) into a table per cell (data by region): one position and
            # one weight for every cell, in the same arithmetic as the general case below
            x = float(xq)
            k = int(np.searchsorted(x1, x, side="right"))
            lo, hi = min(max(k - 1, 0), n - 1), min(k, n - 1)
            span = x1[hi] - x1[lo]
            w = (x - x1[lo]) / span if span > 0 else 0.0
            y0 = ys[..., lo]
            return np.asarray(y0 + w * (ys[..., hi] - y0))
        # same x for every cell, different y: one searchsorted, then a flat gather
        if (
            n >= 2
            and x1[-1] > x1[-2]  # no padding repeats at the end
            and ys.flags.c_contiguous
            and xq.ndim == ys.ndim - 1
            and xq.shape[1:] == ys.shape[1:-1]
            and ys.shape[0] in (1, xq.shape[0])
        ):
            # clamp first (Vensim holds the end values), then interpolate inside
            xc = np.minimum(np.maximum(xq, x1[0]), x1[-1])
            lo = np.minimum(np.searchsorted(x1, xc, side="right") - 1, n - 2)
            x0 = x1[lo]
            w = (xc - x0) / (x1[lo + 1] - x0)
            idx = np.arange(ys.size // n).reshape(ys.shape[:-1]) * n + lo
            flat = ys.reshape(-1)
            y0 = flat[idx]
            return np.asarray(y0 + w * (flat[idx + 1] - y0))
        shape = np.broadcast_shapes(xq.shape, xs.shape[:-1], ys.shape[:-1])
        k = np.searchsorted(x1, xq, side="right")
        lo = np.clip(k - 1, 0, n - 1)
        hi = np.clip(k, 0, n - 1)
        ys_b = np.broadcast_to(ys, (*shape, n))
        lo_b = np.broadcast_to(lo, shape)[..., None]
        hi_b = np.broadcast_to(hi, shape)[..., None]
        y0 = np.take_along_axis(ys_b, lo_b, -1)[..., 0]
        y1v = np.take_along_axis(ys_b, hi_b, -1)[..., 0]
        x0 = x1[lo]
        x1h = x1[hi]
        span = x1h - x0
        w = np.where(span > 0, (xq - x0) / np.where(span > 0, span, 1.0), 0.0)
        return np.asarray(y0 + w * (y1v - y0))
    q = xq[..., None]
    shape = np.broadcast_shapes(q.shape[:-1], xs.shape[:-1], ys.shape[:-1])
    xs_b = np.broadcast_to(xs, (*shape, n))
    ys_b = np.broadcast_to(ys, (*shape, ys.shape[-1]))
    k = np.sum(xs_b <= q, axis=-1, keepdims=True)
    lo = np.clip(k - 1, 0, n - 1)
    hi = np.clip(k, 0, n - 1)
    x0 = np.take_along_axis(xs_b, lo, -1)[..., 0]
    x1 = np.take_along_axis(xs_b, hi, -1)[..., 0]
    y0 = np.take_along_axis(ys_b, lo, -1)[..., 0]
    y1 = np.take_along_axis(ys_b, hi, -1)[..., 0]
    xqb = np.broadcast_to(xq, shape)
    if mode == "hold_backward":
        return np.asarray(y0)
    if mode in ("look_forward", "raw"):
        exact = x0 == xqb
        if mode == "raw":
            return np.where(exact, y0, np.nan)
        above = k[..., 0] >= n
        return np.where(exact | above, y0, y1)
    span = x1 - x0
    w = np.where(span > 0, (xqb - x0) / np.where(span > 0, span, 1.0), 0.0)
    out = y0 + w * (y1 - y0)
    if mode == "extrapolate" and n > 1:
        lo_slope = (ys_b[..., 1] - ys_b[..., 0]) / (xs_b[..., 1] - xs_b[..., 0])
        hi_slope = (ys_b[..., -1] - ys_b[..., -2]) / (xs_b[..., -1] - xs_b[..., -2])
        out = np.where(xqb < xs_b[..., 0], ys_b[..., 0] + lo_slope * (xqb - xs_b[..., 0]), out)
        out = np.where(xqb > xs_b[..., -1], ys_b[..., -1] + hi_slope * (xqb - xs_b[..., -1]), out)
    return np.asarray(out)


def vector_select(
    sel: Any, expr: Any, axes: tuple[int, ...], missing: Any, action: Any
) -> np.ndarray:
    """VECTOR SELECT over ``axes``, a copy of PySD's ``vector_select``."""
    sel_b, expr_b = np.broadcast_arrays(np.asarray(sel, dtype=float), np.asarray(expr, dtype=float))
    act = int(np.asarray(action).flat[0])
    chosen = sel_b != 0
    if act in range(5):
        arr = np.where(chosen, sel_b * expr_b, np.nan)
    elif act == 5:
        arr = np.where(chosen, expr_b**sel_b, np.nan)
    else:
        arr = np.where(chosen, expr_b, np.nan)
    with np.errstate(all="ignore"):
        if act in (0, 6):
            out = np.nansum(arr, axis=axes)
        elif act in (1, 5, 7):
            out = np.nanprod(arr, axis=axes)
        elif act in (2, 8):
            out = np.nanmin(np.where(chosen, arr, np.inf), axis=axes)
        elif act in (3, 9):
            out = np.nanmax(np.where(chosen, arr, -np.inf), axis=axes)
        else:
            count = np.sum(chosen, axis=axes)
            out = np.nansum(arr, axis=axes) / np.where(count > 0, count, 1)
    none = ~np.any(chosen, axis=axes)
    return np.where(none, missing, out)


def vector_sort_order(vec: Any, direction: Any, *, shape: tuple[int, ...]) -> np.ndarray:
    """VECTOR SORT ORDER along the last subscript (0-based positions, as PySD)."""
    order = np.argsort(bc(vec, shape), axis=-1)
    down = np.asarray(direction, dtype=float) <= 0
    return np.where(down, np.flip(order, axis=-1), order).astype(float)


def vector_rank(vec: Any, direction: Any, *, shape: tuple[int, ...]) -> np.ndarray:
    """VECTOR RANK along the last subscript (1 for the first in sort order)."""
    order = vector_sort_order(vec, direction, shape=shape).astype(np.intp)
    return np.argsort(order, axis=-1).astype(float) + 1.0


def vector_reorder(vec: Any, svec: Any, *, shape: tuple[int, ...]) -> np.ndarray:
    """VECTOR REORDER: ``vec`` taken at the positions ``svec`` along the last subscript."""
    idx = bc(svec, shape).astype(np.intp)
    return np.take_along_axis(np.array(bc(vec, shape)), idx, axis=-1)


def invert_matrix(mat: Any, *, shape: tuple[int, ...]) -> np.ndarray:
    """INVERT MATRIX over the last two subscripts."""
    return np.linalg.inv(bc(mat, shape))


def allocate_by_priority(
    request: Any, priority: Any, width: Any, supply: Any, *, shape: tuple[int, ...]
) -> np.ndarray:
    """ALLOCATE BY PRIORITY along the last subscript, cell by cell with PySD's algorithm."""
    from pysd.py_backend.allocation import _allocate_by_priority_1d

    req = bc(request, shape)
    pri = bc(priority, shape)
    wid = bc(width, shape[:-1])
    sup = bc(supply, shape[:-1])
    if np.any(req < 0) or np.any(wid <= 0) or np.any(sup < 0):
        raise ValueError(
            "ALLOCATE BY PRIORITY needs non-negative requests and supply and a positive width."
        )
    out = np.empty(shape)
    for idx in np.ndindex(*shape[:-1]):
        out[idx] = _allocate_by_priority_1d(req[idx], pri[idx], float(wid[idx]), float(sup[idx]))
    return out


def allocate_available(
    request: Any, pp: Any, avail: Any, *, shape: tuple[int, ...], n_profile: int
) -> np.ndarray:
    """ALLOCATE AVAILABLE along the last subscript, cell by cell with PySD's algorithm."""
    from pysd.py_backend.allocation import _allocate_available_1d

    req = bc(request, shape)
    prof = bc(pp, (*shape, n_profile))
    av = bc(avail, shape[:-1])
    if np.any(req < 0) or np.any(av < 0):
        raise ValueError("ALLOCATE AVAILABLE needs non-negative requests and availability.")
    out = np.empty(shape)
    for idx in np.ndindex(*shape[:-1]):
        out[idx] = _allocate_available_1d(req[idx], prof[idx], float(av[idx]))
    return out
