"""The C emitter: a whole fixed-step run (Euler or RK4) over a batch, as C99 source.

SDEverywhere compiles Vensim models to C; this module does the same from the lowered
program (:mod:`sd_model.compiler._lowered`), so that the system C compiler can build a
shared library in about a second where numba needs tens of seconds (and gives up on
models of a few hundred variables). The generated library runs every step of the run,
records the state and the observed variables at the saved times
(:func:`sd_model.integrate.fixed_step_saves` decides which steps the caller marks) and
reports the first non-finite state entry, as :func:`sd_model.integrate.integrate`
does. Semantics are those of the NumPy emitter (:mod:`sd_model.compiler._emit_numpy`)
and its runtime helpers (:mod:`sd_model.compiler._runtime`), which the C runtime of
:mod:`sd_model.compiler._c_parts` copies: time accumulates step by step, STEP switches
at ``t + dt/2``, non-negative stocks are clamped after each Euler step and their
outflows stopped in RK4's derivatives, DELAY N remembers its stage delay times, DELAY
FIXED and SAMPLE IF TRUE move once per Euler step.

Model files are untrusted (:mod:`sd_model._untrusted`): the source holds only
identifiers made from indices (``v12`` for element 12, ``A3`` for the fourth array
argument, ``M5`` for an index map) and numbers written by :func:`cnum`. Names, units
and comments never reach it; function names, reduction names and lookup modes are
looked up in the tables of :mod:`sd_model.compiler._c_parts`, and anything else raises
:class:`CUnsupported` so that the caller stays on the NumPy path (a new IR node or
stateful kind is therefore never miscompiled, only not accelerated).

The C ABI (``SD_ABI`` below is its version) is one function::

    int64_t sd_run(int64_t scheme, int64_t B, int64_t NS, int64_t nsteps,
                   double t0, double dt, const double *ctl, const int64_t *offs,
                   const int64_t *nord, const int64_t *dims, const void *const *args,
                   double *work, const uint8_t *save, double *y, double *out,
                   double *const *obs, double *bad);

``scheme`` 0 is Euler, 1 RK4; ``ctl`` holds INITIAL TIME, FINAL TIME and SAVEPER;
``offs``/``nord`` give each stateful object's offset in a scenario's state and its
number of stages; ``args`` points at the arrays listed in :attr:`CSource.args`, whose
leading and last dimensions are ``dims[3k]`` and ``dims[3k+1]`` (``dims[3k+2]`` is 1 when
the array's rows are one row broadcast, as NumPy sees it); ``work`` is scratch
space of :meth:`CSource.work_size` doubles; ``y`` holds the initial state (``B * NS``,
scenario-major); ``out`` receives the state at each saved step and ``obs[m]`` the values
of :attr:`CSource.observed` ``[m]`` (shaped ``(n_saved, B, *cells)``). It returns -1, or
the index of the first non-finite state entry, with its time and value in ``bad``.
Scenarios run one after the other, each through the whole time loop, so that one
scenario's values stay in cache.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field

import numpy as np

from sd_model.compiler import _lowered as lw
from sd_model.compiler._c_parts import (
    C_FUNCTIONS,
    C_KINDS,
    C_MODES,
    C_REDUCERS,
    C_RUNTIME,
    NP_INTERP,
    CSlot,
    cnum,
)
from sd_model.compiler._lowered import Ctx, Expr, Program
from sd_model.compiler._statefuls import KINDS

#: Version of the calling convention of ``sd_run`` (checked when a library is loaded).
SD_ABI = 2


class CUnsupported(Exception):
    """The model uses something the C emitter does not cover (the NumPy path runs it)."""


# Loop variables of the generated code: cells (k0, c), reductions (r3).
_LOOP_VAR = re.compile(r"\b(k\d+|c|r\d+)\b")

# Python operator (lowered BINARY values) -> precedence, as Python parses the chain the
# NumPy emitter writes (comparisons chain, ``**`` binds right to left).
_PREC = {
    "**": 3,
    "*": 2,
    "/": 2,
    "+": 1,
    "-": 1,
    "==": 0,
    "!=": 0,
    ">=": 0,
    ">": 0,
    "<=": 0,
    "<": 0,
}


@dataclass(frozen=True)
class CArg:
    """An array the caller passes to ``sd_run`` (``args[k]``).

    ``kind`` is ``"v"`` (the values of a constant element, ``(B, *cells)``), ``"const"``
    (an entry of ``Program.consts``), ``"lx"``/``"ly"`` (a lookup element's tables,
    ``(1 or B, *cells, n)``) or ``"o"`` (the value an INITIAL fixed, ``(B, *cells)``).
    """

    kind: str
    key: int | str


@dataclass(frozen=True)
class CSource:
    """Generated C source and what the caller must pass to it."""

    src: str
    args: tuple[CArg, ...]
    observed: tuple[int, ...]  # elements recorded at saved times (obs[m])
    work_cells: int  # cells of the dynamic elements' buffers, per scenario
    digest: str = field(default="")

    def work_size(self, batch: int, n_state: int) -> int:
        """Doubles of scratch space ``sd_run`` needs for ``batch`` scenarios."""
        return batch * self.work_cells + 7 * batch * n_state + 1


# ---------------------------------------------------------------------------- expressions
def _flat(dims: tuple[int, ...], parts: list[str]) -> str:
    """Row-major flat index of ``parts`` within ``dims`` (size-1 axes read position 0)."""
    expr = ""
    for size, part in zip(dims, parts, strict=True):
        p = "0" if size == 1 else part
        expr = p if not expr else f"({expr}) * {size} + {p}"
    return expr or "0"


class _Emitter:
    """C source of lowered expressions at one cell (``kv``: its context indices)."""

    def __init__(self, prog: Program, dynamic: frozenset[int]) -> None:
        self.prog = prog
        self.dynamic = dynamic
        self.args: dict[CArg, int] = {}
        self.statics: list[str] = []
        self._maps: dict[tuple[int, ...], str] = {}
        self._n = 0
        #: Statements run once per scenario before the cell loops being emitted (None:
        #: no loops to hoist out of).
        self.hoist: list[str] | None = None

    def fresh(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def arg(self, kind: str, key: int | str) -> str:
        a = CArg(kind, key)
        if a not in self.args:
            self.args[a] = len(self.args)
        return f"A{self.args[a]}"

    def int_array(self, values: tuple[int, ...] | list[int]) -> str:
        """A static index array of the source (only integers derived from the program)."""
        key = tuple(int(v) for v in values)
        if key not in self._maps:
            name = f"M{len(self._maps)}"
            self._maps[key] = name
            body = ", ".join(str(v) for v in key) or "0"
            self.statics.append(f"static const int64_t {name}[] = {{{body}}};")
        return self._maps[key]

    def cells(self, i: int) -> int:
        return int(np.prod(self.prog.elements[i].shape, dtype=int))

    def var(self, i: int, parts: list[str]) -> str:
        """Cell ``parts`` of element ``i``, scenario ``b``."""
        el = self.prog.elements[i]
        flat = _flat(el.shape, parts)
        if i in self.dynamic:
            # scenario-major work space: one scenario's values are contiguous
            return f"v{i}[{flat}]"
        n = self.cells(i)
        name = self.arg("v", i)
        return f"{name}[b * {n} + {flat}]" if n > 1 else f"{name}[b]"

    def const_row(self, name: str, kv: list[str], rows: int) -> str:
        """Offset of cell ``kv`` in constant ``name`` shaped ``(1, *cells[, n])``."""
        shape = tuple(int(s) for s in np.shape(self.prog.consts[name]))
        cell_dims = shape[1 : len(shape) - rows] if rows else shape[1:]
        parts = [kv[q] if q < len(kv) else "0" for q in range(len(cell_dims))]
        return _flat(cell_dims, parts)

    def index(self, entries: lw.Entries, kv: list[str]) -> list[str]:
        parts = []
        for ax, pos in entries:
            if ax is None:
                parts.append(str(int(pos[0])))
            elif pos == tuple(range(len(pos))):
                parts.append(kv[ax])
            else:
                parts.append(f"{self.int_array(pos)}[{kv[ax]}]")
        return parts

    @staticmethod
    def cell(ctx: Ctx, kv: list[str]) -> str:
        return _flat(ctx.shape, kv[: len(ctx.names)]) if ctx.names else "0"

    # --------------------------------------------------------------- expressions
    def x(self, e: Expr, ctx: Ctx, kv: list[str], pre: list[str]) -> str:
        """C source of ``e`` at cell ``kv`` of ``ctx``; statements it needs go to ``pre``."""
        if isinstance(e, lw.Num):
            return cnum(e.value)
        if isinstance(e, lw.Const):
            arr = self.arg("const", e.name)
            return f"{arr}[{self.const_row(e.name, kv, 0)}]"
        if isinstance(e, lw.Ref):
            return self.var(e.element, self.index(e.entries, kv))
        if isinstance(e, lw.StatefulValue):
            return self._stateful_value(e.index, ctx, kv, pre)
        if isinstance(e, lw.Time):
            return "t"
        if isinstance(e, lw.Control):
            ctl = {"initial_time": "TI", "final_time": "TF", "time_step": "dt", "saveper": "SP"}
            if e.py_name not in ctl:
                raise CUnsupported("a control variable")
            return ctl[e.py_name]
        if isinstance(e, lw.Arith):
            return self._arith(e, ctx, kv, pre)
        if isinstance(e, lw.Logic):
            return self._logic(e, ctx, kv, pre)
        if isinstance(e, lw.Call):
            return self._call(e, ctx, kv, pre)
        if isinstance(e, lw.Lookup):
            return self._lookup(e, ctx, kv, pre)
        if isinstance(e, lw.InlineLookup):
            xq = self.x(e.x, ctx, kv, pre)
            n = int(np.size(self.prog.consts[e.xs]))
            xs, ys = self.arg("const", e.xs), self.arg("const", e.ys)
            return f"sd_interp({xq}, {xs}, {ys}, {n}, {NP_INTERP})"  # NumPy: np.interp
        if isinstance(e, lw.DataSeries):
            if e.mode not in C_MODES:
                raise CUnsupported("a data interpolation mode")
            n = int(np.shape(self.prog.consts[e.xs])[-1])
            xs, ys = self.arg("const", e.xs), self.arg("const", e.ys)
            rx = self.const_row(e.xs, kv[: len(ctx.names)], 1)
            ry = self.const_row(e.ys, kv[: len(ctx.names)], 1)
            mode = str(C_MODES[e.mode])
            if e.mode == "interpolate":  # as for lookups (below)
                kx, ky = self.args[CArg("const", e.xs)], self.args[CArg("const", e.ys)]
                mode = f"(DIMS[{3 * kx + 2}] && DIMS[{3 * ky + 2}] ? {NP_INTERP} : 0)"
            return f"sd_interp(t, {xs} + ({rx}) * {n}, {ys} + ({ry}) * {n}, {n}, {mode})"
        if isinstance(e, lw.Reduce):
            return self._reduce(e, ctx, kv, pre)
        if isinstance(e, lw.TimeFunction):
            return self._time_function(e, ctx, kv, pre)
        # NumpyOnly (vector functions, allocation) and any node added after this emitter
        raise CUnsupported(getattr(e, "what", type(e).__name__))

    def _arith(self, e: lw.Arith, ctx: Ctx, kv: list[str], pre: list[str]) -> str:
        if len(e.args) == 1:
            return f"(-({self.x(e.args[0], ctx, kv, pre)}))"  # the compiler keeps negation only
        first = e.args[0]
        # PySD writes a negative literal base as "-2**2", which Python reads as -(2**2)
        neg = e.ops[0] == "^" and isinstance(first, lw.Num) and first.value < 0
        head = cnum(-first.value) if neg and isinstance(first, lw.Num) else None
        args = [head or self.x(first, ctx, kv, pre)] + [self.x(a, ctx, kv, pre) for a in e.args[1:]]
        ops = []
        for op in e.ops:
            if op not in lw.BINARY:
                raise CUnsupported("an operator")
            ops.append(lw.BINARY[op])
        src = _chain(ops, [f"({a})" for a in args])
        if any(op in lw.COMPARISONS for op in ops):
            src = f"(({src}) ? 1.0 : 0.0)"
        return f"(-({src}))" if neg else f"({src})"

    def _logic(self, e: lw.Logic, ctx: Ctx, kv: list[str], pre: list[str]) -> str:
        args = [self.x(a, ctx, kv, pre) for a in e.args]
        if len(args) == 1:  # :NOT:
            return f"((({args[0]}) == 0) ? 1.0 : 0.0)"
        # built right to left, as PySD's OperationBuilder (and the NumPy emitter) does
        right = args[-1]
        for op, left in zip(reversed(e.ops), reversed(args[:-1]), strict=True):
            if op == ":AND:":
                right = f"((({left}) != 0 && ({right}) != 0) ? 1.0 : 0.0)"
            elif op == ":OR:":
                right = f"((({left}) != 0 || ({right}) != 0) ? 1.0 : 0.0)"
            elif op in lw.BINARY and lw.BINARY[op] in lw.COMPARISONS:
                right = f"((({left}) {lw.BINARY[op]} ({right})) ? 1.0 : 0.0)"
            else:
                raise CUnsupported("a logical operator")
        return right

    def _call(self, e: lw.Call, ctx: Ctx, kv: list[str], pre: list[str]) -> str:
        if e.fn == "pi":
            return cnum(math.pi)
        if e.fn != "if_then_else" and e.fn not in C_FUNCTIONS:
            raise CUnsupported(f"the function {e.fn!r}")
        srcs = [self.x(a, ctx, kv, pre) for a in e.args]
        if e.fn == "if_then_else":
            c, a, b = srcs
            return f"((({c}) != 0) ? ({a}) : ({b}))"
        return f"{C_FUNCTIONS[e.fn]}({', '.join(srcs)})"

    def _lookup(self, e: lw.Lookup, ctx: Ctx, kv: list[str], pre: list[str]) -> str:
        if e.mode not in C_MODES:
            raise CUnsupported("a lookup mode")
        i = e.element
        xq = self.x(e.x, ctx, kv, pre)
        lx, ly = self.arg("lx", i), self.arg("ly", i)
        kx, ky = self.args[CArg("lx", i)], self.args[CArg("ly", i)]
        cells = self.cells(i)
        flat = _flat(self.prog.elements[i].shape, self.index(e.entries, kv))
        # tables are (1 or B, *cells, n): DIMS gives the leading size and n at run time
        row_x = f"((b % DIMS[{3 * kx}]) * {cells} + {flat}) * DIMS[{3 * kx + 1}]"
        row_y = f"((b % DIMS[{3 * ky}]) * {cells} + {flat}) * DIMS[{3 * ky + 1}]"
        n = f"DIMS[{3 * kx + 1}]"
        mode = str(C_MODES[e.mode])
        fancy = any(ax is not None and pos != tuple(range(len(pos))) for ax, pos in e.entries)
        if e.mode == "interpolate" and not fancy:
            # NumPy interpolates one table shared by every cell with np.interp, whose
            # rounding differs in the last bit: the same formula where it would use it
            mode = f"(DIMS[{3 * kx + 2}] && DIMS[{3 * ky + 2}] ? {NP_INTERP} : 0)"
        return f"sd_interp({xq}, {lx} + {row_x}, {ly} + {row_y}, {n}, {mode})"

    def _time_function(self, e: lw.TimeFunction, ctx: Ctx, kv: list[str], pre: list[str]) -> str:
        s = [self.x(a, ctx, kv, pre) for a in e.args]
        if e.fn == "step":
            return f"sd_step(t, dt, {s[0]}, {s[1]})"
        # sd_pulse(t, dt, start, repeat, width, magnitude, end, flags): 1 width, 2 magnitude, 4 end
        if e.fn == "pulse":
            return f"sd_pulse(t, dt, {s[0]}, 0.0, {s[1]}, 0.0, 0.0, 1)"
        if e.fn == "Xpulse":
            return f"sd_pulse(t, dt, {s[0]}, 0.0, 0.0, {s[1]}, 0.0, 2)"
        if e.fn == "pulse_train":
            return f"sd_pulse(t, dt, {s[0]}, {s[1]}, {s[2]}, 0.0, {s[3]}, 5)"
        if e.fn == "Xpulse_train":
            return f"sd_pulse(t, dt, {s[0]}, {s[1]}, 0.0, {s[2]}, 0.0, 2)"
        if e.fn == "ramp":
            return f"sd_ramp(t, {s[0]}, {s[1]}, {s[2]}, 1)"
        if e.fn == "Xramp":
            return f"sd_ramp(t, {s[0]}, {s[1]}, 0.0, 0)"
        raise CUnsupported(f"the time function {e.fn!r}")

    def _reduce(self, e: lw.Reduce, ctx: Ctx, kv: list[str], pre: list[str]) -> str:
        if e.fn not in C_REDUCERS:
            raise CUnsupported(f"the reduction {e.fn!r}")
        init, step = C_REDUCERS[e.fn]
        inner = e.inner
        acc = self.fresh("acc")
        ikv = list(kv[: len(ctx.names)])
        opened = 0
        body: list[str] = []
        for q in range(len(ctx.names), len(inner.names)):
            r = self.fresh("r")
            ikv.append(r)
            body.append(
                "    " * opened + f"for (int64_t {r} = 0; {r} < {len(inner.coords[q])}; {r}++) {{"
            )
            opened += 1
        inner_pre: list[str] = []
        val = self.x(e.arg, inner, ikv, inner_pre)
        ind = "    " * opened
        body += [ind + line for line in inner_pre]
        body.append(ind + f"{acc} = " + step.format(acc=acc, x=val) + ";")
        for k in range(opened - 1, -1, -1):
            body.append("    " * k + "}")
        lines = [f"double {acc} = {init};", "{", *["    " + line for line in body], "}"]
        # A reduction that reads no loop variable but its own (SUM(x[region!]) inside a
        # per-region equation) is computed once per scenario, as NumPy's broadcasting
        # does, instead of once per cell.
        text = re.sub(r"\b(" + "|".join(ikv[len(ctx.names) :]) + r")\b", "", "\n".join(body))
        if self.hoist is not None and not _LOOP_VAR.search(text):
            self.hoist += lines
        else:
            pre += lines
        return acc

    # --------------------------------------------------------------- statefuls
    def slot(self, j: int, ctx: Ctx, kv: list[str], pre: list[str]) -> CSlot:
        sf = self.prog.statefuls[j]
        n = int(np.prod(sf.ctx.shape, dtype=int))
        part = _flat(sf.ctx.shape, kv[: len(sf.ctx.names)]) if sf.ctx.names else "0"
        saved_at = f"b * {n} + {part}" if n > 1 else "b"
        return CSlot(
            j=j,
            base=f"b * NS + OFFS[{j}] + {self.cell(sf.ctx, kv)}",
            size=n,
            arg=lambda role: self.x(sf.args[role], ctx, kv, pre),
            saved=lambda: f"{self.arg('o', j)}[{saved_at}]",
        )

    def _stateful_value(self, j: int, ctx: Ctx, kv: list[str], pre: list[str]) -> str:
        kind = self.prog.statefuls[j].kind
        if kind not in C_KINDS:
            raise CUnsupported(f"the stateful construct {kind!r}")
        return C_KINDS[kind].value(self.slot(j, ctx, kv, pre))


def _chain(ops: list[str], args: list[str]) -> str:
    """C for the Python operator chain ``args[0] ops[0] args[1] ...`` (Python's precedence)."""
    if not ops:
        return args[0]
    low = min(_PREC[o] for o in ops)
    if low == 3:  # only **: right to left
        out = args[-1]
        for a in reversed(args[:-1]):
            out = f"pow({a}, {out})"
        return out
    # split at the operators of the lowest precedence
    segs: list[str] = []
    seg_ops: list[str] = []
    cur_args = [args[0]]
    cur_ops: list[str] = []
    for op, a in zip(ops, args[1:], strict=True):
        if _PREC[op] == low:
            segs.append(_chain(cur_ops, cur_args))
            seg_ops.append(op)
            cur_args, cur_ops = [a], []
        else:
            cur_ops.append(op)
            cur_args.append(a)
    segs.append(_chain(cur_ops, cur_args))
    if low == 0:  # Python chains comparisons: a < b < c is (a < b) and (b < c)
        pairs = [f"(({segs[k]}) {op} ({segs[k + 1]}))" for k, op in enumerate(seg_ops)]
        return "(" + " && ".join(pairs) + ")"
    out = segs[0]
    for op, s in zip(seg_ops, segs[1:], strict=True):
        out = f"({out} {op} {s})"
    return out


# ---------------------------------------------------------------------------- the program
_DECL = (
    "    const int64_t B = E->B, NS = E->NS; (void)B; (void)NS;\n"
    "    const double dt = E->dt, TI = E->TI, TF = E->TF, SP = E->SP;"
    " (void)dt; (void)TI; (void)TF; (void)SP;\n"
    "    const int64_t *OFFS = E->OFFS, *NORD = E->NORD, *DIMS = E->DIMS;"
    " (void)OFFS; (void)NORD; (void)DIMS;\n"
)


def _block(ind: str, loops: list[str], lines: list[str]) -> list[str]:
    """``lines`` inside ``loops`` (each a ``for (...)`` header), braced."""
    out: list[str] = []
    depth = ind
    for loop in loops:
        out.append(f"{depth}{loop} {{")
        depth += "    "
    if not loops:
        out.append(f"{depth}{{")
        depth += "    "
    out += [depth + line for line in lines]
    for _ in range(max(len(loops), 1)):
        depth = depth[:-4]
        out.append(f"{depth}}}")
    return out


def _ctx_loops(ctx: Ctx) -> tuple[list[str], list[str]]:
    kv = [f"k{q}" for q in range(len(ctx.names))]
    loops = [f"for (int64_t k{q} = 0; k{q} < {len(c)}; k{q}++)" for q, c in enumerate(ctx.coords)]
    return kv, loops


def _state_lines(em: _Emitter, ind: str) -> tuple[list[str], list[str], list[str], list[str]]:
    """Derivative, Euler-step, RK4 clamp and Euler clamp lines of the stateful objects."""
    prog = em.prog
    ddt: list[str] = []
    step: list[str] = []
    clamp: list[str] = []
    for sf in prog.statefuls:
        if sf.kind not in C_KINDS:
            raise CUnsupported(f"the stateful construct {sf.kind!r}")
    state = [sf for sf in prog.statefuls if KINDS[sf.kind].has_state]
    nonneg: list[str] = []
    for sf in state:
        ck = C_KINDS[sf.kind]
        kv, loops = _ctx_loops(sf.ctx)
        if ck.ddt is not None:
            pre: list[str] = []
            lines = ck.ddt(em.slot(sf.index, sf.ctx, kv, pre))
            ddt += _block(ind, loops, [*pre, *lines])
        if ck.step is not None:
            pre_step: list[str] = []
            lines = ck.step(em.slot(sf.index, sf.ctx, kv, pre_step))
            step += _block(ind, loops, [*pre_step, *lines])
        if sf.non_negative:
            size = int(np.prod(sf.ctx.shape, dtype=int))
            loop = (
                f"{ind}for (int64_t q = b * NS + OFFS[{sf.index}]; "
                f"q < b * NS + OFFS[{sf.index}] + {size}; q++) "
            )
            clamp.append(loop + "if (y[q] <= 0 && D[q] < 0) D[q] = 0.0;")
            nonneg.append(loop + "if (yn[q] < 0) yn[q] = 0.0;")
    return ddt, step, clamp, nonneg


def generate_c(prog: Program, dynamic: frozenset[int], obs: tuple[int, ...]) -> CSource:
    """C source of the whole fixed-step run of ``prog`` (raises :class:`CUnsupported`).

    Parameters
    ----------
    prog : Program
        The lowered model.
    dynamic : frozenset of int
        Elements that change during the run (computed at every step); the others are
        passed in as arrays.
    obs : tuple of int
        Elements recorded at the saved times, in this order.

    Returns
    -------
    CSource
    """
    if getattr(prog, "random_cells", 0):
        # RANDOM draws come from per-scenario streams the NumPy path owns
        raise CUnsupported("RANDOM functions")
    em = _Emitter(prog, dynamic)
    els = prog.elements
    order = lw.toposort([e.index for e in els if e.index in dynamic], lw.dynamic_deps(prog))
    ind = "        "
    body: list[str] = []
    work: dict[int, int] = {}
    offset = 0
    for i in order:
        work[i] = offset
        offset += em.cells(i)
        for comp in els[i].components:
            ctx = comp.ctx
            pre: list[str] = []
            if comp.direct:
                kv, loops = _ctx_loops(ctx)
                target = em.var(i, kv) if ctx.names else em.var(i, ["0"] * len(els[i].shape))
            else:
                assert comp.cells is not None
                eidx, cidx = comp.cells
                n = len(cidx[0]) if cidx else 1
                cmaps = [em.int_array(list(np.asarray(c).tolist())) for c in cidx]
                emaps = [em.int_array(list(np.asarray(c).tolist())) for c in eidx]
                kv = [f"{m}[c]" for m in cmaps]
                loops = [f"for (int64_t c = 0; c < {n}; c++)"]
                target = em.var(i, [f"{m}[c]" for m in emaps])
            em.hoist = []
            val = em.x(comp.expr, ctx, kv, pre)
            body += [ind + line for line in em.hoist]
            em.hoist = None
            body += _block(ind, loops, [*pre, f"{target} = {val};"])
    ddt, step, clamp, nonneg = _state_lines(em, ind)
    decl_args = []
    for k in em.args.values():
        decl_args.append(f"    const double *A{k} = (const double *)E->A[{k}]; (void)A{k};")
    head = _DECL + "\n".join(decl_args) + "\n"
    loop = "    {\n" + "".join(
        f"        double *v{i} = E->W + b * {offset} + {work[i]}; (void)v{i};\n" for i in order
    )
    src: list[str] = [C_RUNTIME, *em.statics, ""]
    # the model's equations and derivatives at (t, y), scenario b
    src += [
        "static void sd_eval(const sd_env *E, int64_t b, double t, const double *y, double *D) {",
        head + loop,
        *body,
        "        for (int64_t q = b * NS; q < (b + 1) * NS; q++) D[q] = 0.0;",
        *ddt,
        "    }",
        "}",
        "",
        "/* RK4: the outflow of a non-negative stock at zero is stopped */",
        "static void sd_clamp(const sd_env *E, int64_t b, const double *y, double *D) {",
        head + loop,
        *clamp,
        "    }",
        "}",
        "",
        "/* The rest of an Euler step: non-negative stocks, then per-step updates */",
        "static void sd_euler(const sd_env *E, int64_t b, double t, const double *y, double *yn) {",
        head + loop,
        *nonneg,
        *step,
        "    }",
        "}",
        "",
    ]
    save = [
        f"                memcpy(obs[{m}] + (isave * B + b) * {em.cells(i)}, "
        f"work + b * {offset} + {work[i]}, sizeof(double) * {em.cells(i)});"
        for m, i in enumerate(obs)
    ]
    src += [
        f"int64_t sd_abi(void) {{ return {SD_ABI}; }}",
        "",
        "int64_t sd_run(int64_t scheme, int64_t B, int64_t NS, int64_t nsteps, double t0,",
        "               double dt, const double *ctl, const int64_t *offs, const int64_t *nord,",
        "               const int64_t *dims, const void *const *args, double *work,",
        "               const uint8_t *save, double *y, double *out, double *const *obs,",
        "               double *bad) {",
        "    sd_env E = {B, NS, dt, ctl[0], ctl[1], ctl[2], offs, nord, dims, args, work};",
        "    const int64_t n = B * NS;",
        f"    double *D = work + B * {offset};",
        "    double *yn = D + n, *k2 = yn + n, *k3 = k2 + n, *k4 = k3 + n, *yt = k4 + n;",
        "    int64_t p, bad_p = -1, bad_step = nsteps + 2;",
        "    (void)obs;",
        "    if ((p = sd_bad(y, n)) >= 0) { bad[0] = t0; bad[1] = y[p]; return p; }",
        # One scenario after the other, each through the whole run: its values stay in
        # cache (interleaving scenarios step by step streams all of them every step).
        "    for (int64_t b = 0; b < B; b++) {",
        "        const int64_t o = b * NS;",
        "        double t = t0;",
        "        int64_t isave = 0;",
        # after a blow-up, later scenarios only matter before that step (the first
        # non-finite entry at the earliest step is reported, as integrate does)
        "        for (int64_t step = 0; step <= nsteps && step + 1 < bad_step; step++) {",
        "            if (step) t = t + dt;",  # accumulated as in PySD's and Vensim's loops
        "            sd_eval(&E, b, t, y, D);",
        "            if (save[step]) {",
        "                memcpy(out + isave * n + o, y + o, sizeof(double) * NS);",
        *save,
        "                isave++;",
        "            }",
        "            if (step == nsteps) break;",
        "            if (scheme == 0) {",
        "                for (p = o; p < o + NS; p++) yn[p] = y[p] + dt * D[p];",
        "                sd_euler(&E, b, t, y, yn);",
        "            } else {",
        "                const double h2 = dt / 2, h6 = dt / 6;",
        "                sd_clamp(&E, b, y, D);",
        "                for (p = o; p < o + NS; p++) yt[p] = y[p] + h2 * D[p];",
        "                sd_eval(&E, b, t + dt / 2, yt, k2);",
        "                sd_clamp(&E, b, yt, k2);",
        "                for (p = o; p < o + NS; p++) yt[p] = y[p] + h2 * k2[p];",
        "                sd_eval(&E, b, t + dt / 2, yt, k3);",
        "                sd_clamp(&E, b, yt, k3);",
        "                for (p = o; p < o + NS; p++) yt[p] = y[p] + dt * k3[p];",
        "                sd_eval(&E, b, t + dt, yt, k4);",
        "                sd_clamp(&E, b, yt, k4);",
        "                for (p = o; p < o + NS; p++)",
        "                    yn[p] = y[p] + h6 * (D[p] + 2 * k2[p] + 2 * k3[p] + k4[p]);",
        "            }",
        "            if ((p = sd_bad(yn + o, NS)) >= 0) {",
        "                bad_step = step + 1;",
        "                bad_p = o + p;",
        "                bad[0] = t + dt;",
        "                bad[1] = yn[o + p];",
        "                break;",
        "            }",
        "            memcpy(y + o, yn + o, sizeof(double) * NS);",
        "        }",
        "    }",
        "    return bad_p;",
        "}",
    ]
    text = "\n".join(src) + "\n"
    digest = hashlib.sha256(text.encode()).hexdigest()
    return CSource(
        src=text,
        args=tuple(em.args),
        observed=tuple(obs),
        work_cells=offset,
        digest=digest,
    )
