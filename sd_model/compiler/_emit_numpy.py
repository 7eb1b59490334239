"""The NumPy emitter: a lowered :class:`Program` as three generated Python functions.

``_init`` computes every variable at the initial time (initialisation order), ``_rhs``
the derivative (or one Euler step) from only what the derivatives need, ``_obs`` every
time-dependent variable at a saved time. Expressions (:mod:`sd_model.compiler._lowered`)
become NumPy source over arrays with a leading batch axis; stateful objects are
written by their row of :data:`sd_model.compiler._statefuls.KINDS`; elementwise
builtins by :data:`sd_model.compiler._builtins.FUNCTIONS`.

Only generated identifiers and numeric literals appear in the source.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sd_model._errors import ModelLoadError, UnsupportedFeatureError
from sd_model.compiler._builtins import FUNCTIONS, REDUCERS
from sd_model.compiler._lowered import (
    BINARY,
    COMPARISONS,
    CONTROL_NAMES,
    Arith,
    Call,
    Const,
    Control,
    Cycle,
    DataSeries,
    Expr,
    InlineLookup,
    Logic,
    Lookup,
    Num,
    NumpyOnly,
    Program,
    Random,
    Reduce,
    Ref,
    StatefulValue,
    Time,
    TimeFunction,
    num,
    toposort,
)
from sd_model.compiler._statefuls import KINDS


def expr_src(e: Expr) -> str:
    """NumPy source of a lowered expression."""
    if isinstance(e, Num):
        return num(e.value)
    if isinstance(e, Const):
        return e.name
    if isinstance(e, Ref):
        return f"v{e.element}{e.np_index}"
    if isinstance(e, StatefulValue):
        return f"o{e.index}"
    if isinstance(e, Time):
        return "_T"
    if isinstance(e, Control):
        return CONTROL_NAMES[e.py_name]
    if isinstance(e, Arith):
        return _arith_src(e)
    if isinstance(e, Logic):
        return _logic_src(e)
    if isinstance(e, Call):
        if e.fn == "pi":
            return "np.pi"
        return f"{FUNCTIONS[e.fn].numpy}({', '.join(expr_src(a) for a in e.args)})"
    if isinstance(e, Lookup):
        i, idx = e.element, e.np_index
        return f"_rt.lookup({expr_src(e.x)}, LX{i}{idx}, LY{i}{idx}, {e.mode!r})"
    if isinstance(e, InlineLookup):
        return f"np.interp({expr_src(e.x)}, {e.xs}, {e.ys})"
    if isinstance(e, DataSeries):
        return f"_rt.lookup(_T, {e.xs}, {e.ys}, {e.mode!r})"
    if isinstance(e, Reduce):
        fn = REDUCERS[e.fn][0]
        return f"_rt.reduce({fn}, {expr_src(e.arg)}, (_B,) + {e.shape}, {e.axes!r})"
    if isinstance(e, TimeFunction):
        return _time_src(e.fn, [expr_src(a) for a in e.args])
    if isinstance(e, NumpyOnly):
        return e.template.format(*[expr_src(a) for a in e.args])
    if isinstance(e, Random):
        # _U: this step's uniforms of the call; _RND: sd_model.compiler._random
        params = "".join(f", {expr_src(a)}" for a in e.args)
        return f"_RND.{e.dist}(_U(_T, {e.offset}, {e.shape}){params})"
    raise AssertionError(e)


def _join(ops: tuple[str, ...], args: list[str]) -> str:
    parts = [f"({args[0]})"]
    for op, a in zip(ops, args[1:], strict=True):
        parts += [BINARY[op], f"({a})"]
    return " ".join(parts)


def _arith_src(e: Arith) -> str:
    ops = e.ops
    if len(e.args) == 1:
        a = expr_src(e.args[0])
        return f"(-(1.0*{a}))" if ops[0] == "negative" else a
    first = e.args[0]
    rest = [expr_src(a) for a in e.args[1:]]
    if ops[0] == "^" and isinstance(first, Num) and first.value < 0:
        # PySD writes the literal as "-2**2", which Python and Vensim read as -(2**2)
        return f"(-({_join(ops, [num(-first.value), *rest])}))"
    src = _join(ops, [expr_src(first), *rest])
    if any(BINARY[o] in COMPARISONS for o in ops):
        # Vensim's comparisons are numbers (1/0), NumPy's are booleans.
        src = f"(1.0*({src}))"
    return f"({src})"


def _logic_src(e: Logic) -> str:
    args = [expr_src(a) for a in e.args]
    if len(args) == 1:
        return f"(1.0*np.logical_not({args[0]}))"
    # Built right to left, as PySD's OperationBuilder does.
    right = args[-1]
    for op, left in zip(reversed(e.ops), reversed(args[:-1]), strict=True):
        if op == ":AND:":
            right = f"np.logical_and({left}, {right})"
        elif op == ":OR:":
            right = f"np.logical_or({left}, {right})"
        else:
            right = f"(({left}) {BINARY[op]} ({right}))"
    return f"(1.0*{right})"


def _time_src(fn: str, s: list[str]) -> str:
    if fn == "step":
        return f"_rt.step(_T, HS, {s[0]}, {s[1]})"
    if fn == "pulse":
        return f"_rt.pulse(_T, DT, {s[0]}, width={s[1]}, eps=EPS)"
    if fn == "Xpulse":
        return f"_rt.pulse(_T, DT, {s[0]}, magnitude={s[1]}, eps=EPS)"
    if fn == "pulse_train":
        return f"_rt.pulse(_T, DT, {s[0]}, repeat_time={s[1]}, width={s[2]}, end={s[3]}, eps=EPS)"
    if fn == "Xpulse_train":
        return f"_rt.pulse(_T, DT, {s[0]}, repeat_time={s[1]}, magnitude={s[2]}, eps=EPS)"
    if fn == "ramp":
        return f"_rt.ramp(_T, {s[0]}, {s[1]}, {s[2]})"
    return f"_rt.ramp(_T, {s[0]}, {s[1]})"


# Filename of the generated code: tracebacks through it lead back to a variable.
_FILENAME = "<sd_model compiled model>"
# The first assignment target of a generated line: an element (v3), a stateful's value
# or parameter (z/o/d/n/w7), or a stateful's derivative or next state (_D/_N[:, SL7]).
_TARGET = re.compile(r"\s*(?:v(\d+)\b|[zodnw](\d+)\b|_([DN])\[:, SL(\d+)\])")


def _cycle_error(prog: Program, cycle: list[int], phase: str) -> Exception:
    """A circular definition: the model's error, or the compiler's limit.

    Dependencies are tracked per variable, not per subscript element. When every
    variable on the cycle is one equation over all its elements, each element depends
    on some element of the next variable, so following them must return to where it
    started: the cells themselves are simultaneous, which Vensim rejects and PySD
    cannot evaluate either. Otherwise (``x[a] = 1``, ``x[b] = x[a] * 2``) the cells may
    well be ordered, and only this compiler cannot say so.
    """
    els = prog.elements
    path = " -> ".join(els[c].name for c in cycle)
    whole = all(len(els[c].components) == 1 and els[c].components[0].direct for c in cycle)
    if whole:
        return ModelLoadError(
            f"The model's equations are circular (simultaneous) in the {phase}: {path}. "
            "Vensim rejects simultaneous equations too; break the loop with a stock "
            "(INTEG) or an INITIAL."
        )
    return UnsupportedFeatureError(
        f"The compiled backend cannot order the subscript elements of the circular "
        f"definition {path} in the {phase}."
    )


@dataclass
class Code:
    """Generated sources (kept for inspection) and their compiled code objects."""

    init_src: str
    rhs_src: str
    obs_src: str
    code: Any
    dynamic: frozenset[int]
    obs_names: tuple[int, ...]
    # per Program.breakpoints entry: its arguments compiled for eval()
    breakpoint_args: tuple[tuple[Any, ...], ...] = ()

    def culprit(self, prog: Program, exc: BaseException) -> str:
        """What the generated line that raised ``exc`` computes (``"'y'"``)."""
        lineno = None
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == _FILENAME:
                lineno = tb.tb_lineno
            tb = tb.tb_next
        lines = (self.init_src + "\n" + self.rhs_src + "\n" + self.obs_src).splitlines()
        if lineno is None or not 0 < lineno <= len(lines):
            return "the model's equations"
        m = _TARGET.match(lines[lineno - 1])
        if m is None:
            return "the model's equations"
        if m.group(1) is not None:
            return f"'{prog.elements[int(m.group(1))].name}'"
        j = int(m.group(2) or m.group(4))
        name = prog.elements[prog.statefuls[j].element].name
        return f"the rate of change of {name}" if m.group(3) == "D" else f"'{name}'"


def _assembly(prog: Program, i: int, full: bool, srcs: list[str]) -> list[str]:
    """Statements computing element ``i`` (``srcs``: its components' sources)."""
    el = prog.elements[i]
    if len(el.components) == 1 and el.components[0].direct:
        src = srcs[0]
        e = el.components[0].expr
        if isinstance(e, StatefulValue) and KINDS[prog.statefuls[e.index].kind].full_value:
            return [f"v{i} = {src}"]
        if full or i in prog.fancy or not (el.refs or el.statefuls):
            return [f"v{i} = _rt.bc({src}, E{i})"]
        # NumPy broadcasting aligns the (possibly size-1) axes where it is read
        return [f"v{i} = {src}"]
    lines = [f"v{i} = np.full(E{i}, _NAN)"]
    for k, comp in enumerate(el.components):
        if comp.direct:
            lines.append(f"v{i}[...] = {srcs[k]}")
        else:
            lines.append(f"v{i}[PE{i}_{k}] = _rt.bc({srcs[k]}, (_B,) + CS{i}_{k})[PC{i}_{k}]")
    return lines


def generate(prog: Program, forced: frozenset[int]) -> Code:
    """Generate and compile the model functions.

    Parameters
    ----------
    prog : Program
        The compiled model.
    forced : frozenset of int
        Constant elements replaced by time series (evaluated at each call).
    """
    els = prog.elements
    sfs = prog.statefuls
    values = [e.index for e in els if e.kind != "lookup"]
    init_deps: dict[int, set[int]] = {}
    dyn_deps: dict[int, set[int]] = {}
    for e in els:
        init_deps[e.index] = set(e.refs)
        dyn_deps[e.index] = set(e.refs)
        for j in e.statefuls:
            init_deps[e.index] |= sfs[j].init_refs
            dyn_deps[e.index] |= sfs[j].dyn_refs
    for i in forced:
        if els[i].kind != "data":
            dyn_deps[i] = set()
    # dynamic elements: read time or state, or depend on something that does
    dynamic = {
        e.index
        for e in els
        if e.kind != "lookup"
        and (e.uses_time or any(KINDS[sfs[j].kind].time_dependent for j in e.statefuls))
    } | set(forced)
    changed = True
    while changed:
        changed = False
        for i in values:
            if i not in dynamic and dyn_deps[i] & dynamic:
                dynamic.add(i)
                changed = True
    phase = "initialisation"
    try:
        init_order = toposort(values, init_deps)
        dyn_nodes = [i for i in values if i in dynamic]
        phase = "model equations"
        dyn_order = toposort(dyn_nodes, dyn_deps)
    except Cycle as cycle:
        raise _cycle_error(prog, cycle.cycle, phase) from None
    state_sfs = [sf for sf in sfs if KINDS[sf.kind].has_state]
    need = derivative_needs(prog, frozenset(dynamic), dyn_deps)
    overridable = {e.index for e in els if e.kind != "lookup" and e.index not in dynamic}
    srcs = {e.index: [expr_src(c.expr) for c in e.components] for e in els}
    args = {sf.index: {role: expr_src(x) for role, x in sf.args.items()} for sf in sfs}

    ind = "    "
    lines = ["def _init(_T):"]
    for i in init_order:
        for j in els[i].statefuls:
            lines += [ind + x for x in KINDS[sfs[j].kind].np_init(j, args[j])]
        lines += [ind + x for x in _assembly(prog, i, True, srcs[i])]
        if i in overridable or i in forced:
            lines.append(f"{ind}v{i} = _OV({i}, v{i})")
    lines.append(ind + "return locals()")
    init_src = "\n".join(lines) + "\n"

    def body(order: list[int]) -> list[str]:
        out = [ind + "_Y = _y.reshape(_B, NS)"]
        for sf in state_sfs:
            out.append(f"{ind}s{sf.index} = _Y[:, SL{sf.index}].reshape(QS{sf.index})")
        for i in order:
            if i in forced and els[i].kind != "data":
                out.append(f"{ind}v{i} = _TS({i}, _T)")
                continue
            for j in els[i].statefuls:
                out += [ind + x for x in KINDS[sfs[j].kind].np_value(j, args[j])]
            out += [ind + x for x in _assembly(prog, i, False, srcs[i])]
            if i in forced:
                # data replaced by a time series in some scenarios only
                out.append(f"{ind}v{i} = _TSM({i}, _T, v{i})")
        return out

    rhs = ["def _rhs(_T, _y, _dt):", *body([i for i in dyn_order if i in need])]
    rhs.append(ind + "_D = np.zeros((_B, NS))")
    for sf in state_sfs:
        ddt = KINDS[sf.kind].np_ddt
        if ddt is not None:
            rhs += [ind + x for x in ddt(sf.index, args[sf.index])]
    nonneg = [sf for sf in state_sfs if sf.non_negative]
    rhs.append(ind + "if _dt is None:")
    for sf in nonneg:
        j = sf.index
        rhs.append(
            f"{ind}{ind}_D[:, SL{j}] = np.where((_Y[:, SL{j}] <= 0) & (_D[:, SL{j}] < 0), "
            f"0.0, _D[:, SL{j}])"
        )
    rhs.append(ind + ind + "return _D.reshape(-1)")
    rhs.append(ind + "_N = _Y + _dt * _D")
    for sf in nonneg:
        rhs.append(f"{ind}_N[:, SL{sf.index}] = np.maximum(_N[:, SL{sf.index}], 0.0)")
    for sf in state_sfs:
        step = KINDS[sf.kind].np_step
        if step is not None:
            rhs += [ind + x for x in step(sf.index, args[sf.index])]
    rhs.append(ind + "return _N.reshape(-1)")
    rhs_src = "\n".join(rhs) + "\n"

    obs = ["def _obs(_T, _y):", *body(dyn_order)]
    obs_names = tuple(i for i in dyn_order if not els[i].hidden)
    obs.append(ind + "return (" + "".join(f"v{i}, " for i in obs_names) + ")")
    obs_src = "\n".join(obs) + "\n"
    full = init_src + "\n" + rhs_src + "\n" + obs_src
    code = compile(full, _FILENAME, "exec")
    bp_args = tuple(
        tuple(compile(expr_src(a), "<sd_model breakpoint>", "eval") for a in bp.args)
        for bp in prog.breakpoints
    )
    return Code(init_src, rhs_src, obs_src, code, frozenset(dynamic), obs_names, bp_args)


def derivative_needs(
    prog: Program, dynamic: frozenset[int], deps: Mapping[int, set[int]]
) -> set[int]:
    """Time-dependent elements the derivatives (and Euler steps) read.

    The stocks' rates and the stocks themselves, with everything time-dependent they
    depend on: the elements a right-hand side computes (the others are only observed).
    Every emitter of a derivative or a whole run uses this one set.
    """
    roots: set[int] = set()
    for sf in prog.statefuls:
        if KINDS[sf.kind].has_state:
            roots |= sf.ddt_refs
            roots.add(sf.element)
    need: set[int] = set()
    todo = [r for r in roots if r in dynamic]
    while todo:
        r = todo.pop()
        if r in need:
            continue
        need.add(r)
        todo.extend(d for d in deps[r] if d in dynamic and d not in need)
    return need
