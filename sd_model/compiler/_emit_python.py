"""The plain-Python emitter: a whole fixed-step run of one scenario as one Python function.

The NumPy right-hand side (:mod:`sd_model.compiler._emit_numpy`) pays about a
microsecond of dispatch per array operation whatever the array's size; a scalar model
is hundreds of size-1 operations per step, where plain Python floats cost tens of
nanoseconds each (PySD's own runtime is plain Python). For a batch of one, this module
writes the whole Euler or RK4 loop as one generated function over local float variables:
every subscripted variable is unrolled cell by cell (``v3_0``, ``v3_1``...), the state
is one local per entry (``y0``, ``y1``...), elementwise functions are :mod:`math`
calls or inline conditionals, and the results are appended as one tuple per saved time.

It walks the same lowered program (:mod:`sd_model.compiler._lowered`) as the other
emitters and writes the same semantics: the stateful kinds of
:data:`sd_model.compiler._statefuls.KINDS` (their Python source is written here, in
:data:`PY_KINDS`), the save-time rule :func:`sd_model.integrate.fixed_step_saves`, time
accumulated as ``t = t + dt``, non-negative stocks, the discrete updates of DELAY FIXED,
SAMPLE IF TRUE and DELAY N in Euler steps, and the NaN/inf check after every step.

Anything it does not know (an expression node, a builtin, a stateful kind added later,
vector functions) raises :class:`PythonUnsupported`, and the caller uses the NumPy path.
Python raises where NumPy returns inf or NaN (``1 / 0``, ``math.exp(1000)``,
``math.log(0)``); the generated function lets those exceptions out,
:func:`sd_model.compiler._run_python.execute` returns None, and the caller re-runs the
model on the NumPy path, which gives NumPy's values or its error naming the stock.
:mod:`sd_model.compiler._run_python` binds, runs and collects the generated function.

Only generated identifiers, numeric literals and fixed templates reach the source: no
name, comment or string from the model file (constants, tables and initial values are
passed in as data).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import CodeType
from typing import Any

import numpy as np

from sd_model.compiler import _lowered as lw
from sd_model.compiler._emit_numpy import derivative_needs
from sd_model.compiler._lowered import BINARY, COMPARISONS, Ctx, Expr, Program, num

#: When the Python path pays (measured on this repository's 2-core machine, warm runs,
#: Python tier against the NumPy loop, one scenario): its cost grows with the number of
#: unrolled cells (state entries plus cells of time-dependent variables), NumPy's with
#: the number of array operations whatever their size. On one 8-variable model with N
#: regions the two cross at about 55 cells per time-dependent variable (N = 50: 451
#: cells, 1.06x; N = 20: 2.8x faster; N = 100: 0.6x); the Kazakhstan model (2,627 cells,
#: 29 per variable) is 1.4x faster in Python, the 20-region benchmark model (302 cells)
#: 1.7x, scalar models 10-50x. Hence at most CELLS_PER_VARIABLE cells per time-dependent
#: variable, with a margin. CELL_LIMIT bounds the one-time cost of generating and
#: compiling the function (about 0.1 ms per cell: 140 ms at 1,800 cells, 380 ms at
#: 2,600), paid on a model's first run in a process.
CELL_LIMIT = 2000
CELLS_PER_VARIABLE = 40

_FILENAME = "<sd_model python run>"


class PythonUnsupported(Exception):
    """The model uses something the Python emitter does not write (the NumPy path runs)."""


@dataclass(frozen=True)
class Block:
    """A stateful object's block of the state vector (as the bound system lays it out)."""

    offset: int
    stages: int  # leading stage axis of the block (1: one value per cell)
    order: int  # N<j>: SMOOTH/DELAY stages, DELAY FIXED pipe length (1 when none)


@dataclass(frozen=True)
class PythonSource:
    """Generated source of a whole fixed-step run, its code object and its inputs.

    Attributes
    ----------
    src : str
        The generated function ``_run`` (kept for inspection).
    code : CodeType
        ``src`` compiled once.
    scheme : str
        ``"euler"`` or ``"rk4"``.
    n_state : int
        Entries of the state vector.
    consts : tuple of (int, int)
        (element, flat cell) of each constant the function reads, in the order of its
        ``K`` argument.
    saved : tuple of (int, int)
        (stateful object, flat cell) of each INITIAL value, in the order of ``S``.
    tables : tuple
        One table spec per lookup cell read, in the order of ``L`` (see :func:`bind`).
    observed : tuple of int
        Elements saved after the state in each row, in order (all their cells).
    row_width : int
        Values per saved row (state entries, then the observed cells).
    """

    src: str
    code: CodeType
    scheme: str
    n_state: int
    consts: tuple[tuple[int, int], ...]
    saved: tuple[tuple[int, int], ...]
    tables: tuple[tuple[Any, ...], ...]
    observed: tuple[int, ...]
    row_width: int


def _flat(cell: Sequence[int], shape: Sequence[int]) -> int:
    out = 0
    for c, n in zip(cell, shape, strict=True):
        out = out * n + c
    return out


def _cells(shape: Sequence[int]) -> list[tuple[int, ...]]:
    return [tuple(int(x) for x in c) for c in np.ndindex(*shape)]


# --------------------------------------------------------------------------- statefuls
@dataclass(frozen=True)
class PySlot:
    """One cell of a stateful object for the Python templates.

    ``state(stage)`` is the local holding that stage of the cell (in the current RK4
    stage), ``d(stage)`` the local its derivative goes to, ``new(stage)`` the local of
    the next Euler state, ``arg(role)`` the source of an argument at this cell,
    ``saved()`` the INITIAL value, ``order`` the block's order (N<j>).
    """

    state: Callable[[int], str]
    d: Callable[[int], str]
    new: Callable[[int], str]
    old: Callable[[int], str]
    arg: Callable[[str], str]
    saved: Callable[[], str]
    order: int
    tmp: Callable[[], str]


@dataclass(frozen=True)
class PyKind:
    """The Python source of one stateful kind (value; derivative lines; Euler-step lines).

    ``step`` lines run after ``new(stage) = state + dt * d`` and overwrite what a
    discrete kind updates per time step.
    """

    value: Callable[[PySlot], str] | None
    ddt: Callable[[PySlot], list[str]] | None = None
    step: Callable[[PySlot], list[str]] | None = None


def _zidz(s: PySlot, num_src: str, den_src: str) -> str:
    w = s.tmp()
    return f"(0.0 if _abs({w} := {den_src}) < 1e-06 else ({num_src}) / {w})"


def _staged_ddt(kind: str) -> Callable[[PySlot], list[str]]:
    def emit(s: PySlot) -> list[str]:
        n = s.order
        inp, tm = s.tmp(), s.tmp()
        lines = [f"{inp} = {s.arg('input')}"]
        lines.append(f"{tm} = {s.arg('smooth_time' if kind == 'smooth' else 'delay_time')}")
        for st in range(n):
            if kind == "smooth":
                # PySD: (targets - stages) * n / smooth_time
                tgt = inp if st == 0 else s.state(st - 1)
                lines.append(f"{s.d(st)} = (({tgt}) - {s.state(st)}) * {n} / {tm}")
            else:
                # PySD: (inflows - outflows) * n, outflows = stages / delay_time
                inflow = inp if st == 0 else f"({s.state(st - 1)} / {tm})"
                lines.append(f"{s.d(st)} = ({inflow} - {s.state(st)} / {tm}) * {n}")
        return lines

    return emit


def _delayn_ddt(s: PySlot) -> list[str]:
    # PySD's DELAY N: stages, then the delay time each stage remembers (shifted per step)
    n = s.order
    inp, tm = s.tmp(), s.tmp()
    lines = [f"{inp} = {s.arg('input')}", f"{tm} = {s.arg('delay_time')}"]
    prev = inp
    for st in range(n):
        ts = tm if st == 0 else s.state(n + st - 1)
        out = s.tmp()
        lines.append(f"{out} = {s.state(st)} / {ts}")
        lines.append(f"{s.d(st)} = ({prev} - {out}) * {n}")
        prev = out
    lines += [f"{s.d(n + st)} = 0.0" for st in range(n)]
    return lines


def _delayn_step(s: PySlot) -> list[str]:
    n = s.order
    lines = [f"{s.new(n)} = {s.arg('delay_time')}"]
    lines += [f"{s.new(n + st)} = {s.old(n + st - 1)}" for st in range(1, n)]
    return lines


def _delayfixed_step(s: PySlot) -> list[str]:
    n = s.order
    lines = [f"{s.new(st)} = {s.old(st + 1)}" for st in range(n - 1)]
    return [*lines, f"{s.new(n - 1)} = {s.arg('input')}"]


def _average_ddt(s: PySlot) -> list[str]:
    return [f"{s.d(0)} = (({s.arg('input')}) - {s.state(0)}) / ({s.arg('average_time')})"]


def _zero_ddt(s: PySlot) -> list[str]:
    return [f"{s.d(st)} = 0.0" for st in range(s.order)]


def _trend_value(s: PySlot) -> str:
    y = s.state(0)
    return _zidz(s, f"({s.arg('input')}) - {y}", f"({s.arg('average_time')}) * _abs({y})")


def _forecast_value(s: PySlot) -> str:
    y, inp = s.state(0), s.tmp()
    z = _zidz(s, f"{inp} - {y}", f"({s.arg('average_time')}) * {y}")
    return f"(({inp} := {s.arg('input')}) * (1 + {z} * ({s.arg('horizon')})))"


#: Python source per stateful kind (keys of ``_statefuls.KINDS``); a kind missing here
#: makes the model take the NumPy path.
PY_KINDS: dict[str, PyKind] = {
    "integ": PyKind(value=lambda s: s.state(0), ddt=lambda s: [f"{s.d(0)} = {s.arg('flow')}"]),
    "smooth": PyKind(value=lambda s: s.state(s.order - 1), ddt=_staged_ddt("smooth")),
    "delay": PyKind(
        value=lambda s: f"({s.state(s.order - 1)} / ({s.arg('delay_time')}))",
        ddt=_staged_ddt("delay"),
    ),
    "delayn": PyKind(
        value=lambda s: f"({s.state(s.order - 1)} / {s.state(s.order)})",
        ddt=_delayn_ddt,
        step=_delayn_step,
    ),
    "delayfixed": PyKind(value=lambda s: s.state(0), ddt=_zero_ddt, step=_delayfixed_step),
    "trend": PyKind(value=_trend_value, ddt=_average_ddt),
    "forecast": PyKind(value=_forecast_value, ddt=_average_ddt),
    "sampleiftrue": PyKind(
        value=lambda s: f"(({s.arg('input')}) if ({s.arg('condition')}) != 0 else {s.state(0)})",
        ddt=_zero_ddt,
        step=lambda s: [
            f"{s.new(0)} = (({s.arg('input')}) if ({s.arg('condition')}) != 0 else {s.old(0)})"
        ],
    ),
    "initial": PyKind(value=lambda s: s.saved()),
    "active_initial": PyKind(value=lambda s: s.arg("active")),
}

# Elementwise builtins (keys of _builtins.FUNCTIONS): a template over the argument
# sources; ``{w}`` is a fresh temporary. Semantics of sd_model.compiler._runtime.
_FUNCTIONS: dict[str, str] = {
    "abs": "_abs({0})",
    "exp": "_m.exp({0})",
    "sin": "_m.sin({0})",
    "cos": "_m.cos({0})",
    "tan": "_m.tan({0})",
    "arcsin": "_m.asin({0})",
    "arccos": "_m.acos({0})",
    "arctan": "_m.atan({0})",
    "sinh": "_m.sinh({0})",
    "cosh": "_m.cosh({0})",
    "tanh": "_m.tanh({0})",
    "sqrt": "_m.sqrt({0})",
    "ln": "_m.log({0})",
    "log": "(_m.log({0}) / _m.log({1}))",
    "power": "_pow({0}, {1})",
    # np.minimum/np.maximum: NaN if either is NaN
    "min": "({w1} if ({w1} := {0}) <= ({w2} := {1}) else ({w2} if {w2} < {w1} else {w1} + {w2}))",
    "max": "({w1} if ({w1} := {0}) >= ({w2} := {1}) else ({w2} if {w2} > {w1} else {w1} + {w2}))",
    "integer": "_trunc({0})",
    "quantum": "_quantum({0}, {1})",
    "modulo": "_modulo({0}, {1})",
    "xidz": "({2} if _abs({w1} := {1}) < 1e-06 else ({0}) / {w1})",
    "zidz": "(0.0 if _abs({w1} := {1}) < 1e-06 else ({0}) / {w1})",
    "if_then_else": "(({1}) if ({0}) != 0 else ({2}))",
}

# sums and products stay flat (left-associative): deep nesting would hit the parser's limit
_REDUCE_STEP = {
    "sum": "{a} + ({x})",
    "prod": "{a} * ({x})",
    "vmin": _FUNCTIONS["min"].replace("{0}", "{a}").replace("{1}", "{x}"),
    "vmax": _FUNCTIONS["max"].replace("{0}", "{a}").replace("{1}", "{x}"),
}
_REDUCE_STEP["vmin_xmile"] = _REDUCE_STEP["vmin"]
_REDUCE_STEP["vmax_xmile"] = _REDUCE_STEP["vmax"]

# lookup modes passed to _lookup (bound per table: the formula follows _runtime.lookup's
# branch for that table's layout)
NP_INTERP, GENERAL, CLAMPED = 0, 5, 6
LOOKUP_MODES = {"interpolate": GENERAL, "extrapolate": 1, "hold_backward": 2, "look_forward": 3}
LOOKUP_MODES["raw"] = 4


# --------------------------------------------------------------------------- emitter
class _Emitter:
    def __init__(self, prog: Program, dynamic: frozenset[int], blocks: Mapping[int, Block]):
        self.prog = prog
        self.dynamic = dynamic
        self.blocks = blocks
        self.consts: dict[tuple[int, int], str] = {}
        self.saved: dict[tuple[int, int], str] = {}
        self.tables: dict[tuple[Any, ...], str] = {}
        self._n = 0
        self.sp = "y"  # state locals of the current (RK4) stage
        self.dp = "d"  # derivative locals of the current stage
        self.tn = "t"  # time of the current stage

    def tmp(self) -> str:
        self._n += 1
        return f"_w{self._n}"

    # ------------------------------------------------------------------ names
    def var(self, i: int, cell: int) -> str:
        el = self.prog.elements[i]
        if el.kind == "lookup":
            raise PythonUnsupported("a lookup read as a value")
        if i in self.dynamic:
            return f"v{i}_{cell}"
        key = (i, cell)
        if key not in self.consts:
            self.consts[key] = f"c{i}_{cell}"
        return self.consts[key]

    def table(self, spec: tuple[Any, ...]) -> str:
        if spec not in self.tables:
            self.tables[spec] = f"_L{len(self.tables)}"
        return self.tables[spec]

    def position(self, j: int, stage: int, cell: int) -> int:
        sf = self.prog.statefuls[j]
        b = self.blocks[j]
        size = math.prod(sf.ctx.shape)
        return b.offset + stage * size + cell

    def slot(self, j: int, ctx: Ctx, kv: tuple[int, ...]) -> PySlot:
        sf = self.prog.statefuls[j]
        scell = _flat(kv[: len(sf.ctx.names)], sf.ctx.shape)
        b = self.blocks.get(j)
        order = b.order if b is not None else 1

        def pos(stage: int) -> int:
            if b is None:
                raise PythonUnsupported("state of a stateful object without a block")
            return self.position(j, stage, scell)

        def saved() -> str:
            key = (j, scell)
            if key not in self.saved:
                self.saved[key] = f"o{j}_{scell}"
            return self.saved[key]

        return PySlot(
            state=lambda st: f"{self.sp}{pos(st)}",
            d=lambda st: f"{self.dp}{pos(st)}",
            new=lambda st: f"n{pos(st)}",
            old=lambda st: f"y{pos(st)}",
            arg=lambda role: self.x(sf.args[role], ctx, kv),
            saved=saved,
            order=order,
            tmp=self.tmp,
        )

    # ------------------------------------------------------------------ expressions
    def x(self, e: Expr, ctx: Ctx, kv: tuple[int, ...]) -> str:
        """Python source of ``e`` at cell ``kv`` of ``ctx``."""
        if isinstance(e, lw.Num):
            return num(e.value)
        if isinstance(e, lw.Const):
            arr = np.asarray(self.prog.consts[e.name], dtype=float)
            if arr.ndim == 0 or arr.ndim - 1 > len(kv):
                raise PythonUnsupported("a constant array not aligned to its context")
            idx = [0] + [0 if n == 1 else kv[q] for q, n in enumerate(arr.shape[1:])]
            return num(float(arr[tuple(idx)]))
        if isinstance(e, lw.Ref):
            el = self.prog.elements[e.element]
            return self.var(e.element, _flat(self.index(e.entries, kv), el.shape))
        if isinstance(e, lw.StatefulValue):
            sf = self.prog.statefuls[e.index]
            kind = PY_KINDS.get(sf.kind)
            if kind is None or kind.value is None:
                raise PythonUnsupported(f"the stateful kind {sf.kind!r}")
            return kind.value(self.slot(e.index, ctx, kv))
        if isinstance(e, lw.Time):
            return self.tn
        if isinstance(e, lw.Control):
            names = {"initial_time": "TI", "final_time": "TF", "time_step": "DT", "saveper": "SP"}
            if e.py_name not in names:
                raise PythonUnsupported(f"the control variable {e.py_name!r}")
            return names[e.py_name]
        if isinstance(e, lw.Arith):
            return self._arith(e, ctx, kv)
        if isinstance(e, lw.Logic):
            return self._logic(e, ctx, kv)
        if isinstance(e, lw.Call):
            return self._call(e, ctx, kv)
        if isinstance(e, lw.Lookup):
            if e.mode not in LOOKUP_MODES:
                raise PythonUnsupported(f"lookup mode {e.mode!r}")
            el = self.prog.elements[e.element]
            cell = tuple(self.index(e.entries, kv))
            if len(cell) != len(el.shape):
                raise PythonUnsupported("a lookup indexed across its dims")
            name = self.table(("lookup", e.element, cell, e.mode))
            return f"_lookup({self.x(e.x, ctx, kv)}, {name}x, {name}y, {name}m)"
        if isinstance(e, lw.InlineLookup):
            name = self.table(("inline", e.xs, e.ys))
            return f"_lookup({self.x(e.x, ctx, kv)}, {name}x, {name}y, {name}m)"
        if isinstance(e, lw.DataSeries):
            if e.mode not in LOOKUP_MODES:
                raise PythonUnsupported(f"data mode {e.mode!r}")
            name = self.table(("data", e.xs, e.ys, kv[: len(ctx.names)], e.mode))
            return f"_lookup({self.tn}, {name}x, {name}y, {name}m)"
        if isinstance(e, lw.Reduce):
            return self._reduce(e, ctx, kv)
        if isinstance(e, lw.TimeFunction):
            return self._time_function(e, ctx, kv)
        if isinstance(e, lw.Random):
            return self._random(e, ctx, kv)
        # NumpyOnly (vector functions, allocation) and any node added after this emitter
        raise PythonUnsupported(type(e).__name__)

    @staticmethod
    def index(entries: lw.Entries, kv: tuple[int, ...]) -> list[int]:
        return [pos[0] if ax is None else pos[kv[ax]] for ax, pos in entries]

    def _chain(self, ops: Sequence[str], args: list[str]) -> str:
        """Join an operator chain; ``^`` runs become right-associative ``_pow`` calls."""
        for op in ops:
            if op not in BINARY:
                raise PythonUnsupported(f"the operator {op!r}")
        parts = [args[0]]
        joined: list[str] = []
        for op, a in zip(ops, args[1:], strict=True):
            if op == "^":
                parts.append(a)
                continue
            joined += [self._pow_run(parts), BINARY[op]]
            parts = [a]
        joined.append(self._pow_run(parts))
        return " ".join(joined)

    @staticmethod
    def _pow_run(parts: list[str]) -> str:
        src = f"({parts[-1]})"
        for p in reversed(parts[:-1]):
            src = f"_pow({p}, {src})"
        return src

    def _arith(self, e: lw.Arith, ctx: Ctx, kv: tuple[int, ...]) -> str:
        ops = e.ops
        if len(e.args) == 1:
            a = self.x(e.args[0], ctx, kv)
            return f"(-({a}))" if ops[0] == "negative" else a
        first = e.args[0]
        rest = [self.x(a, ctx, kv) for a in e.args[1:]]
        if ops[0] == "^" and isinstance(first, lw.Num) and first.value < 0:
            # PySD writes the literal as "-2**2", which Python and Vensim read as -(2**2)
            return f"(-({self._chain(ops, [num(-first.value), *rest])}))"
        src = self._chain(ops, [self.x(first, ctx, kv), *rest])
        if any(BINARY[o] in COMPARISONS for o in ops):
            # Vensim's comparisons are numbers (1/0)
            return f"(1.0 if ({src}) else 0.0)"
        return f"({src})"

    def _logic(self, e: lw.Logic, ctx: Ctx, kv: tuple[int, ...]) -> str:
        args = [self.x(a, ctx, kv) for a in e.args]
        if len(args) == 1:  # :NOT:
            return f"(1.0 if ({args[0]}) == 0 else 0.0)"
        # built right to left, as PySD's OperationBuilder does
        right = args[-1]
        for op, left in zip(reversed(e.ops), reversed(args[:-1]), strict=True):
            if op == ":AND:":
                right = f"(1.0 if (({left}) != 0 and ({right}) != 0) else 0.0)"
            elif op == ":OR:":
                right = f"(1.0 if (({left}) != 0 or ({right}) != 0) else 0.0)"
            elif op in BINARY and BINARY[op] in COMPARISONS:
                right = f"(1.0 if (({left}) {BINARY[op]} ({right})) else 0.0)"
            else:
                raise PythonUnsupported(f"the logical operator {op!r}")
        return right

    def _call(self, e: lw.Call, ctx: Ctx, kv: tuple[int, ...]) -> str:
        if e.fn == "pi":
            return num(math.pi)
        template = _FUNCTIONS.get(e.fn)
        if template is None:
            raise PythonUnsupported(f"the function {e.fn!r}")
        srcs = [self.x(a, ctx, kv) for a in e.args]
        return template.format(*srcs, w1=self.tmp(), w2=self.tmp())

    def _time_function(self, e: lw.TimeFunction, ctx: Ctx, kv: tuple[int, ...]) -> str:
        s = [self.x(a, ctx, kv) for a in e.args]
        t = self.tn
        if e.fn == "step":
            # PySD and Vensim switch half a step early so Euler's grid never straddles it
            return f"(({s[0]}) * (1.0 if {t} + HS > ({s[1]}) else 0.0))"
        if e.fn == "pulse":
            return f"_pulse({t}, DT, {s[0]}, 0.0, {s[1]}, None, None)"
        if e.fn == "Xpulse":
            return f"_pulse({t}, DT, {s[0]}, 0.0, None, {s[1]}, None)"
        if e.fn == "pulse_train":
            return f"_pulse({t}, DT, {s[0]}, {s[1]}, {s[2]}, None, {s[3]})"
        if e.fn == "Xpulse_train":
            return f"_pulse({t}, DT, {s[0]}, {s[1]}, None, {s[2]}, None)"
        if e.fn == "ramp":
            return f"_ramp({t}, {s[0]}, {s[1]}, {s[2]})"
        if e.fn == "Xramp":
            return f"_ramp({t}, {s[0]}, {s[1]}, None)"
        raise PythonUnsupported(f"the time function {e.fn!r}")

    def _random(self, e: Any, ctx: Ctx, kv: tuple[int, ...]) -> str:
        """A RANDOM draw at one cell: the NumPy draw function on this cell's uniform."""
        from sd_model.compiler._random import DRAWS

        dists = list(DRAWS)
        shape = tuple(self.prog.consts.get(e.shape, (None,)))
        if e.dist not in dists or len(shape) != len(kv) or None in shape:
            raise PythonUnsupported(f"the random draw {e.fn!r}")
        params = "".join(f", {self.x(a, ctx, kv)}" for a in e.args)
        pos = int(e.offset) + _flat(kv, shape)
        return f"_draw({dists.index(e.dist)}, {self.tn}, {pos}{params})"

    def _reduce(self, e: lw.Reduce, ctx: Ctx, kv: tuple[int, ...]) -> str:
        step = _REDUCE_STEP.get(e.fn)
        if step is None:
            raise PythonUnsupported(f"the reduction {e.fn!r}")
        inner = e.inner
        n_ctx = len(ctx.names)
        if inner.names[:n_ctx] != ctx.names or e.axes != tuple(
            range(n_ctx + 1, len(inner.names) + 1)
        ):
            raise PythonUnsupported("a reduction over leading axes")
        extra = [len(c) for c in inner.coords[n_ctx:]]
        if not all(n > 0 for n in extra):
            raise PythonUnsupported("a reduction over an empty range")
        acc = ""
        # sequential in row-major order, as NumPy's reduce for fewer than 8 values
        for sub in _cells(extra):
            val = self.x(e.arg, inner, (*kv[: len(ctx.names)], *sub))
            acc = val if not acc else step.format(a=acc, x=val, w1=self.tmp(), w2=self.tmp())
        return f"({acc})"


# --------------------------------------------------------------------------- generation
def _dynamic_order(prog: Program, dynamic: frozenset[int]) -> list[int]:
    return lw.toposort(
        [e.index for e in prog.elements if e.index in dynamic], lw.dynamic_deps(prog)
    )


def count_cells(prog: Program, dynamic: frozenset[int], n_state: int) -> int:
    """State entries plus cells of time-dependent variables: what the function unrolls."""
    return n_state + sum(math.prod(e.shape) for e in prog.elements if e.index in dynamic)


def _element_lines(em: _Emitter, i: int, uncovered: list[str] | None) -> list[str]:
    el = em.prog.elements[i]
    lines: list[str] = []
    covered: set[int] = set()
    for comp in el.components:
        ctx = comp.ctx
        if comp.direct:
            if tuple(ctx.shape) != tuple(el.shape):
                raise PythonUnsupported("a component broadcast over its element")
            pairs = [(c, c) for c in _cells(ctx.shape)]
        else:
            if comp.cells is None:
                raise PythonUnsupported("a component without its cells")
            eidx, cidx = comp.cells
            n = len(cidx[0]) if cidx else (len(eidx[0]) if eidx else 1)
            pairs = [
                (tuple(int(a[m]) for a in eidx), tuple(int(a[m]) for a in cidx)) for m in range(n)
            ]
        for ecell, ccell in pairs:
            flat = _flat(ecell, el.shape)
            covered.add(flat)
            lines.append(f"v{i}_{flat} = {em.x(comp.expr, ctx, ccell)}")
    if uncovered is not None:
        # cells no equation covers are NaN, as in the NumPy path
        uncovered += [f"v{i}_{c} = _NAN" for c in range(math.prod(el.shape)) if c not in covered]
    return lines


def generate_python(
    prog: Program,
    dynamic: frozenset[int],
    observed: tuple[int, ...],
    blocks: Mapping[int, Block],
    n_state: int,
    scheme: str,
) -> PythonSource:
    """Source and code of the whole fixed-step run (raises :class:`PythonUnsupported`).

    Parameters
    ----------
    prog : Program
        The lowered model.
    dynamic : frozenset of int
        Time-dependent elements (``Code.dynamic`` of the NumPy emitter).
    observed : tuple of int
        Elements saved at each saved time (``Code.obs_names``).
    blocks : mapping
        Stateful object -> its :class:`Block` of the state vector.
    n_state : int
        Entries of the state vector.
    scheme : {"euler", "rk4"}
    """
    from sd_model.compiler._statefuls import KINDS

    if scheme not in ("euler", "rk4"):
        raise PythonUnsupported(f"the scheme {scheme!r}")
    cells = count_cells(prog, dynamic, n_state)
    if cells > CELL_LIMIT:
        raise PythonUnsupported(
            f"{cells} cells (more than {CELL_LIMIT}; generating the code would cost more "
            "than it saves)"
        )
    if cells > CELLS_PER_VARIABLE * max(len(dynamic), 1):
        raise PythonUnsupported(
            f"{cells} cells over {len(dynamic)} time-dependent variables (more than "
            f"{CELLS_PER_VARIABLE} each: NumPy's array operations are as fast)"
        )
    for sf in prog.statefuls:
        if sf.kind not in PY_KINDS or sf.kind not in KINDS:
            raise PythonUnsupported(f"the stateful kind {sf.kind!r}")
        if KINDS[sf.kind].has_state != (sf.index in blocks):
            raise PythonUnsupported(f"the state layout of {sf.kind!r}")
    em = _Emitter(prog, dynamic, blocks)
    deps = lw.dynamic_deps(prog)
    order = _dynamic_order(prog, dynamic)
    need = derivative_needs(prog, dynamic, deps)
    state_sfs = [sf for sf in prog.statefuls if sf.index in blocks]
    ind = "        "
    uncovered: list[str] = []
    seen: set[int] = set()

    def elements(which: list[int]) -> list[str]:
        out: list[str] = []
        for i in which:
            first = i not in seen
            seen.add(i)
            out += _element_lines(em, i, uncovered if first else None)
        return out

    def derivatives(nonneg_mask: bool) -> list[str]:
        out: list[str] = []
        for sf in state_sfs:
            kind = PY_KINDS[sf.kind]
            if kind.ddt is None:
                raise PythonUnsupported(f"the derivative of {sf.kind!r}")
            for cell in _cells(sf.ctx.shape):
                out += kind.ddt(em.slot(sf.index, sf.ctx, cell))
        if nonneg_mask:
            # a non-negative stock at or below zero does not fall further (NumPy path)
            for sf in state_sfs:
                if not sf.non_negative:
                    continue
                for p in _positions(em, sf):
                    d = f"{em.dp}{p}"
                    out.append(f"if {em.sp}{p} <= 0 and {d} < 0: {d} = 0.0")
        return out

    needed = [i for i in order if i in need]
    rest = [i for i in order if i not in need]
    body: list[str] = []
    # stage 1 (Euler's only stage): values at (t, y)
    em.sp, em.dp, em.tn = "y", "d" if scheme == "euler" else "q1_", "t"
    body += elements(needed)
    save = ["if _k == _next_save:"]
    save += ["    " + line for line in elements(rest)]
    row = [f"y{p}" for p in range(n_state)]
    for i in observed:
        row += [f"v{i}_{c}" for c in range(math.prod(prog.elements[i].shape))]
    save.append(f"    _extend(({', '.join(row)}{',' if len(row) == 1 else ''}))")
    save += ["    _next_save = _next(_saves, -1)", "if _k == _n_steps:", "    break"]
    body += save
    if scheme == "euler":
        body += derivatives(False)
        body += [f"n{p} = y{p} + dt * d{p}" for p in range(n_state)]
        for sf in state_sfs:
            if sf.non_negative:
                body += [f"if n{p} < 0.0: n{p} = 0.0" for p in _positions(em, sf)]
        for sf in state_sfs:
            kind = PY_KINDS[sf.kind]
            if kind.step is not None:
                for cell in _cells(sf.ctx.shape):
                    body += kind.step(em.slot(sf.index, sf.ctx, cell))
    else:
        if any(KINDS[sf.kind].discrete for sf in state_sfs):
            raise PythonUnsupported("per-step updates in an RK4 run")
        body += derivatives(True)
        # the stages of integrate._rk4_step, in the same operation order
        for m, (h, tt) in enumerate((("_h2", "_t2"), ("_h2", "_t2"), ("dt", "_t4")), start=2):
            body.append(f"{tt} = t + {h}")
            body += [f"a{p} = y{p} + {h} * q{m - 1}_{p}" for p in range(n_state)]
            em.sp, em.dp, em.tn = "a", f"q{m}_", tt
            body += elements(needed)
            body += derivatives(True)
        body += [
            f"n{p} = y{p} + _h6 * (q1_{p} + 2 * q2_{p} + 2 * q3_{p} + q4_{p})"
            for p in range(n_state)
        ]
    # NaN/inf: x - x is 0.0 for a finite x and NaN otherwise
    if n_state:
        check = " + ".join(f"(n{p} - n{p})" for p in range(n_state))
        new = ", ".join(f"n{p}" for p in range(n_state))
        body += [
            f"if ({check}) != 0.0:",
            f"    return _k + 1, ({new}{',' if n_state == 1 else ''})",
        ]
        body += [f"y{p} = n{p}" for p in range(n_state)]

    def unpack(names: list[str], arg: str) -> list[str]:
        if not names:
            return []
        return [f"    ({', '.join(names)}{',' if len(names) == 1 else ''}) = {arg}"]

    const_names = list(em.consts.values())
    saved_names = list(em.saved.values())
    table_lines = []
    for k, name in enumerate(em.tables.values()):
        table_lines.append(f"    {name}x, {name}y, {name}m = L[{k}]")
    head = [
        "def _run(Y0, K, S, L, t0, dt, _n_steps, _save_steps, TI, TF, DT, SP, HS, _extend):",
        "    _m = _math",
        "    _abs = abs",
        "    _next = next",
        "    _NAN = _math.nan",
        "    _INF = _math.inf",
        "    _h2 = dt / 2",
        "    _h6 = dt / 6",
        *unpack([f"y{p}" for p in range(n_state)], "Y0"),
        *unpack(const_names, "K"),
        *unpack(saved_names, "S"),
        *table_lines,
        *["    " + line for line in uncovered],
        "    _saves = iter(_save_steps)",
        "    _next_save = _next(_saves, -1)",
        "    t = t0",
        "    for _k in range(_n_steps + 1):",
        "        if _k:",
        "            t = t + dt",
    ]
    src = "\n".join([*head, *[ind + line for line in body], "    return -1, None"]) + "\n"
    try:
        code = compile(src, _FILENAME, "exec")
    except (SyntaxError, RecursionError, MemoryError) as exc:  # nesting beyond the parser
        raise PythonUnsupported(f"source Python cannot compile ({type(exc).__name__})") from None
    return PythonSource(
        src=src,
        code=code,
        scheme=scheme,
        n_state=n_state,
        consts=tuple(em.consts),
        saved=tuple(em.saved),
        tables=tuple(em.tables),
        observed=tuple(observed),
        row_width=len(row),
    )


def _positions(em: _Emitter, sf: lw.Stateful) -> list[int]:
    b = em.blocks[sf.index]
    size = math.prod(sf.ctx.shape)
    return list(range(b.offset, b.offset + b.stages * size))


def blocks_of(prog: Program, ns: Mapping[str, Any]) -> dict[int, Block]:
    """The state blocks of a bound system, from its namespace (``SL<j>``, ``QS<j>``, ``N<j>``)."""
    out: dict[int, Block] = {}
    for sf in prog.statefuls:
        sl = ns.get(f"SL{sf.index}")
        if sl is None:
            continue
        qs = ns[f"QS{sf.index}"]
        stages = int(qs[1]) if len(qs) - 1 > len(sf.ctx.shape) else 1
        out[sf.index] = Block(int(sl.start), stages, int(ns.get(f"N{sf.index}", 1)))
    return out


def source_or_reason(
    prog: Program, code: Any, blocks: Mapping[int, Block], n_state: int, scheme: str
) -> PythonSource | PythonUnsupported:
    """:func:`generate_python` for a NumPy emitter's ``Code``, or why it cannot."""
    try:
        return generate_python(prog, code.dynamic, code.obs_names, blocks, n_state, scheme)
    except PythonUnsupported as exc:
        return exc
