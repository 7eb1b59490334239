"""The fixed parts of the C tier's source: tables, stateful constructs, runtime helpers.

:mod:`sd_model.compiler._emit_c` walks the lowered program and writes each expression
through these tables: elementwise builtins (by PySD's name, as in
:data:`sd_model.compiler._builtins.FUNCTIONS`), reductions, lookup modes, the C source
of each stateful kind of :data:`sd_model.compiler._statefuls.KINDS` (:data:`C_KINDS`,
from the same PySD semantics as that table's NumPy templates), and the runtime helpers
every generated library starts with (:data:`C_RUNTIME`, scalar copies of
:mod:`sd_model.compiler._runtime`). A name missing from a table is not covered: the
emitter raises ``CUnsupported`` and the run stays on the NumPy path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


def cnum(x: float) -> str:
    """C literal of a float: ``repr`` (round-trips exactly), ``NAN``/``INFINITY`` otherwise.

    Examples
    --------
    >>> cnum(0.1), cnum(float("-inf")), cnum(3)
    ('0.1', '(-INFINITY)', '3.0')
    """
    x = float(x)
    if math.isnan(x):
        return "NAN"
    if math.isinf(x):
        return "INFINITY" if x > 0 else "(-INFINITY)"
    return repr(x)


# Elementwise builtins (lw.Call.fn, PySD's names) -> C helper or libm function.
C_FUNCTIONS: dict[str, str] = {
    "abs": "fabs",
    "exp": "exp",
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "arcsin": "asin",
    "arccos": "acos",
    "arctan": "atan",
    "sinh": "sinh",
    "cosh": "cosh",
    "tanh": "tanh",
    "sqrt": "sqrt",
    "ln": "log",
    "log": "sd_log",
    "power": "pow",
    "min": "sd_min",
    "max": "sd_max",
    "integer": "trunc",
    "quantum": "sd_quantum",
    "modulo": "sd_modulo",
    "xidz": "sd_xidz",
    "zidz": "sd_zidz",
}

# Reductions (lw.Reduce.fn) -> start value and step (NumPy's ufunc.reduce semantics).
C_REDUCERS: dict[str, tuple[str, str]] = {
    "sum": ("0.0", "{acc} + {x}"),
    "prod": ("1.0", "{acc} * {x}"),
    "vmin": ("INFINITY", "sd_min({acc}, {x})"),
    "vmax": ("(-INFINITY)", "sd_max({acc}, {x})"),
    "vmin_xmile": ("INFINITY", "sd_min({acc}, {x})"),
    "vmax_xmile": ("(-INFINITY)", "sd_max({acc}, {x})"),
}

# Lookup modes -> the mode argument of sd_interp; NP_INTERP is np.interp's formula.
C_MODES = {"interpolate": 0, "extrapolate": 1, "hold_backward": 2, "look_forward": 3, "raw": 4}
NP_INTERP = 5


@dataclass(frozen=True)
class CSlot:
    """One cell of a stateful object (the C counterpart of ``_statefuls.KernelSlot``)."""

    j: int
    base: str
    size: int
    arg: Callable[[str], str]
    saved: Callable[[], str]


# ---------------------------------------------------------------------------- statefuls
# C source of each stateful kind of _statefuls.KINDS: value (an expression), derivative
# lines (into D) and Euler-step lines (into yn), written from the same PySD semantics as
# the NumPy templates there. A kind missing here raises CUnsupported.
def _last(s: CSlot) -> str:
    return f"y[{s.base} + (NORD[{s.j}] - 1) * {s.size}]"


def _staged_ddt(smooth: bool) -> Callable[[CSlot], list[str]]:
    def emit(s: CSlot) -> list[str]:
        tm = s.arg("smooth_time" if smooth else "delay_time")
        head = [
            f"const double inp = {s.arg('input')};",
            f"const double tm = {tm};",
            f"const int64_t p0 = {s.base};",
            f"const int64_t n = NORD[{s.j}];",
            "for (int64_t s = 0; s < n; s++) {",
        ]
        if smooth:
            return [
                *head,
                f"    const double tgt = s == 0 ? inp : y[p0 + (s - 1) * {s.size}];",
                f"    D[p0 + s * {s.size}] = (tgt - y[p0 + s * {s.size}]) * (double)n / tm;",
                "}",
            ]
        return [
            *head,
            f"    const double inflow = s == 0 ? inp : y[p0 + (s - 1) * {s.size}] / tm;",
            f"    D[p0 + s * {s.size}] = (inflow - y[p0 + s * {s.size}] / tm) * (double)n;",
            "}",
        ]

    return emit


def _delayn_ddt(s: CSlot) -> list[str]:
    # PySD's DELAY N: stage contents, then the remembered stage delay times
    z = s.size
    return [
        f"const double inp = {s.arg('input')};",
        f"const double tm = {s.arg('delay_time')};",
        f"const int64_t p0 = {s.base};",
        f"const int64_t n = NORD[{s.j}];",
        "double prev = 0.0;",
        "for (int64_t s = 0; s < n; s++) {",
        f"    const double ts = s == 0 ? tm : y[p0 + (n + s - 1) * {z}];",
        f"    const double o = y[p0 + s * {z}] / ts;",
        f"    D[p0 + s * {z}] = ((s == 0 ? inp : prev) - o) * (double)n;",
        "    prev = o;",
        "}",
    ]


def _delayn_step(s: CSlot) -> list[str]:
    z = s.size
    return [
        f"const double tm = {s.arg('delay_time')};",
        f"const int64_t p0 = {s.base};",
        f"const int64_t n = NORD[{s.j}];",
        f"for (int64_t s = n - 1; s > 0; s--) yn[p0 + (n + s) * {z}] = y[p0 + (n + s - 1) * {z}];",
        f"yn[p0 + n * {z}] = tm;",
    ]


def _delayfixed_step(s: CSlot) -> list[str]:
    z = s.size
    return [
        f"const double inp = {s.arg('input')};",
        f"const int64_t p0 = {s.base};",
        f"const int64_t n = NORD[{s.j}];",
        f"for (int64_t s = 0; s < n - 1; s++) yn[p0 + s * {z}] = y[p0 + (s + 1) * {z}];",
        f"yn[p0 + (n - 1) * {z}] = inp;",
    ]


def _average_ddt(s: CSlot) -> list[str]:
    return [f"D[{s.base}] = (({s.arg('input')}) - y[{s.base}]) / ({s.arg('average_time')});"]


def _trend_value(s: CSlot) -> str:
    inp, at = s.arg("input"), s.arg("average_time")
    return f"sd_zidz(({inp}) - y[{s.base}], ({at}) * fabs(y[{s.base}]))"


def _forecast_value(s: CSlot) -> str:
    inp, at, hz = s.arg("input"), s.arg("average_time"), s.arg("horizon")
    return f"(({inp}) * (1.0 + sd_zidz(({inp}) - y[{s.base}], ({at}) * y[{s.base}]) * ({hz})))"


def _sample_value(s: CSlot) -> str:
    return f"((({s.arg('condition')}) != 0) ? ({s.arg('input')}) : y[{s.base}])"


@dataclass(frozen=True)
class CKind:
    """A stateful kind in C: its value (an expression), derivative and Euler-step lines."""

    value: Callable[[CSlot], str]
    ddt: Callable[[CSlot], list[str]] | None = None
    step: Callable[[CSlot], list[str]] | None = None


C_KINDS: dict[str, CKind] = {
    "integ": CKind(
        value=lambda s: f"y[{s.base}]", ddt=lambda s: [f"D[{s.base}] = {s.arg('flow')};"]
    ),
    "smooth": CKind(value=_last, ddt=_staged_ddt(True)),
    "delay": CKind(
        value=lambda s: f"({_last(s)} / ({s.arg('delay_time')}))", ddt=_staged_ddt(False)
    ),
    "delayn": CKind(
        value=lambda s: f"({_last(s)} / y[{s.base} + NORD[{s.j}] * {s.size}])",
        ddt=_delayn_ddt,
        step=_delayn_step,
    ),
    "delayfixed": CKind(value=lambda s: f"y[{s.base}]", step=_delayfixed_step),
    "trend": CKind(value=_trend_value, ddt=_average_ddt),
    "forecast": CKind(value=_forecast_value, ddt=_average_ddt),
    "sampleiftrue": CKind(
        value=_sample_value,
        step=lambda s: [
            f"yn[{s.base}] = (({s.arg('condition')}) != 0) ? ({s.arg('input')}) : y[{s.base}];"
        ],
    ),
    "initial": CKind(value=lambda s: s.saved()),
    "active_initial": CKind(value=lambda s: s.arg("active")),
}


# ---------------------------------------------------------------------------- runtime
C_RUNTIME = r"""
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Copies of sd_model.compiler._runtime's NumPy helpers, on scalars. */
static double sd_min(double a, double b) { return (a < b || a != a) ? a : b; }
static double sd_max(double a, double b) { return (a > b || a != a) ? a : b; }
static double sd_xidz(double a, double b, double x) { return fabs(b) < 1e-6 ? x : a / b; }
static double sd_zidz(double a, double b) { return fabs(b) < 1e-6 ? 0.0 : a / b; }
static double sd_quantum(double a, double b) { return b < 1e-6 ? a : b * trunc(a / b); }
static double sd_modulo(double x, double m) { return x - sd_quantum(x, m); }
static double sd_log(double x, double base) { return log(x) / log(base); }
/* NumPy's float remainder (the sign of the divisor), as in npy_divmod */
static double sd_fmod(double a, double b) {
    double m = fmod(a, b);
    if (b == 0.0) return m;
    if (m != 0.0) { if ((b < 0) != (m < 0)) m += b; }
    else m = copysign(0.0, b);
    return m;
}
static double sd_step(double t, double dt, double value, double tstep) {
    return value * ((t + dt / 2 > tstep) ? 1.0 : 0.0);
}
static double sd_ramp(double t, double slope, double start, double finish, int has_finish) {
    const double last = has_finish ? sd_min(finish, t) : t;
    return ((t + 1e-6 > start) ? 1.0 : 0.0) * slope * (last - start);
}
static double sd_pulse(double t, double dt, double start, double repeat, double width,
                       double magnitude, double end, int flags) {
    const double w = (flags & 1) ? width : 0.5 * dt;
    const double out = (flags & 2) ? magnitude / dt : 1.0;
    int on;
    if (repeat == 0) {
        on = (start - 1e-6 <= t) && (t < start + w);
    } else {
        on = (start <= t) && (sd_fmod(t - start + 1e-6, repeat) < w);
        if (flags & 4) on = on && (t < end);
    }
    return on ? out : 0.0;
}
/* np.interp (numpy/_core/src/multiarray/compiled_base.c, arr_interp) */
static double sd_npinterp(double x, const double *xs, const double *ys, int64_t n) {
    if (x < xs[0]) return ys[0];
    if (x > xs[n - 1]) return ys[n - 1];
    int64_t lo = 0, hi = n;  /* j: the last index with xs[j] <= x */
    while (lo < hi) { int64_t mid = (lo + hi) / 2; if (xs[mid] <= x) lo = mid + 1; else hi = mid; }
    const int64_t j = lo - 1;
    if (j >= n - 1) return ys[n - 1];
    if (xs[j] == x) return ys[j];
    const double slope = (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j]);
    double r = slope * (x - xs[j]) + ys[j];
    if (r != r) {
        r = slope * (x - xs[j + 1]) + ys[j + 1];
        if (r != r && ys[j] == ys[j + 1]) r = ys[j];
    }
    return r;
}
static double sd_interp(double x, const double *xs, const double *ys, int64_t n, int mode) {
    if (x != x) return NAN;
    if (mode == 5) return sd_npinterp(x, xs, ys, n);
    if (x <= xs[0]) {
        if (mode == 1 && n > 1 && x < xs[0])
            return ys[0] + (ys[1] - ys[0]) / (xs[1] - xs[0]) * (x - xs[0]);
        if (mode == 4 && x < xs[0]) return NAN;
        return ys[0];
    }
    if (x >= xs[n - 1]) {
        if (mode == 1 && n > 1 && x > xs[n - 1])
            return ys[n - 1] + (ys[n - 1] - ys[n - 2]) / (xs[n - 1] - xs[n - 2]) * (x - xs[n - 1]);
        if (mode == 4 && x > xs[n - 1]) return NAN;
        return ys[n - 1];
    }
    int64_t lo = 0, hi = n;  /* first k with xs[k] > x (searchsorted, side="right") */
    while (lo < hi) { int64_t mid = (lo + hi) / 2; if (xs[mid] <= x) lo = mid + 1; else hi = mid; }
    const int64_t k = lo;
    const double x0 = xs[k - 1], x1 = xs[k];
    if (mode == 2) return ys[k - 1];
    if (mode == 3 || mode == 4) {
        if (x == x0) return ys[k - 1];
        return mode == 3 ? ys[k] : NAN;
    }
    if (x1 <= x0) return ys[k - 1];
    return ys[k - 1] + (x - x0) / (x1 - x0) * (ys[k] - ys[k - 1]);
}
static int64_t sd_bad(const double *y, int64_t n) {
    for (int64_t p = 0; p < n; p++) if (!isfinite(y[p])) return p;
    return -1;
}

typedef struct {
    int64_t B, NS;
    double dt, TI, TF, SP;
    const int64_t *OFFS, *NORD, *DIMS;
    const void *const *A;
    double *W;
} sd_env;
"""
