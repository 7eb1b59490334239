"""Bind a compiled :class:`Program` to overrides and a time grid: a runnable System.

The program is turned into three generated functions: ``_init`` (values at the
initial time, in initialisation order), ``_rhs`` (derivative or Euler step) and
``_obs`` (every variable at a saved time). Constants are computed once by ``_init``
and read by the other two as module globals.

Arithmetic follows NumPy everywhere, as in the numba kernel: time and the control
variables are NumPy floats, so an expression of time alone (``1 / (5 - Time)``)
gives ``inf`` at time 5 instead of raising Python's ``ZeroDivisionError``. What is
still computed on Python floats (numeric literals only, ``1 / 0``) and raises is
reported as an :class:`~sd_model.IntegrationError` naming the variable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from sd_model._errors import ModelLoadError, ParameterError, UnsupportedFeatureError
from sd_model.compiler import _runtime
from sd_model.compiler._build import CONTROL_NAMES, Program, Stateful
from sd_model.integrate import TimeGrid, arithmetic_error

# Filename of the generated code: tracebacks through it lead back to a variable.
_FILENAME = "<sd_model compiled model>"
# The first assignment target of a generated line: an element (v3), a stateful's value
# or parameter (z/o/d/n/w7), or a stateful's derivative or next state (_D/_N[:, SL7]).
_TARGET = re.compile(r"\s*(?:v(\d+)\b|[zodnw](\d+)\b|_([DN])\[:, SL(\d+)\])")

STATE_KINDS = {
    "integ",
    "smooth",
    "delay",
    "delayn",
    "delayfixed",
    "trend",
    "forecast",
    "sampleiftrue",
}
DISCRETE_KINDS = {"delayfixed", "sampleiftrue"}
_ORDERED = {"smooth", "delay", "delayn", "delayfixed"}


class _Cycle(Exception):
    """A dependency cycle met by :func:`_toposort` (element indices, first == last)."""

    def __init__(self, cycle: list[int]) -> None:
        super().__init__(cycle)
        self.cycle = cycle


def _toposort(nodes: Sequence[int], deps: Mapping[int, set[int]]) -> list[int]:
    """Depth-first topological order; a cycle raises :class:`_Cycle`."""
    order: list[int] = []
    state: dict[int, int] = {}
    node_set = set(nodes)
    for start in nodes:
        if state.get(start):
            continue
        stack: list[tuple[int, Any]] = [(start, iter(sorted(deps.get(start, set()) & node_set)))]
        state[start] = 1
        path = [start]
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[node] = 2
                order.append(node)
                continue
            st = state.get(nxt, 0)
            if st == 1:
                raise _Cycle([*path[path.index(nxt) :], nxt])
            if st == 0:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(sorted(deps.get(nxt, set()) & node_set))))
    return order


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


def _assembly(prog: Program, i: int, full: bool) -> list[str]:
    el = prog.elements[i]
    if len(el.components) == 1 and el.components[0].direct:
        src = el.components[0].src
        if (
            src.startswith("o")
            and src[1:].isdigit()
            and prog.statefuls[int(src[1:])].kind
            in ("integ", "sampleiftrue", "delayfixed", "initial", "active_initial")
        ):
            return [f"v{i} = {src}"]
        if full or i in prog.fancy or not (el.refs or el.statefuls):
            return [f"v{i} = _rt.bc({src}, E{i})"]
        # NumPy broadcasting aligns the (possibly size-1) axes where it is read
        return [f"v{i} = {src}"]
    lines = [f"v{i} = np.full(E{i}, _NAN)"]
    for k, comp in enumerate(el.components):
        if comp.direct:
            lines.append(f"v{i}[...] = {comp.src}")
        else:
            lines.append(f"v{i}[PE{i}_{k}] = _rt.bc({comp.src}, (_B,) + CS{i}_{k})[PC{i}_{k}]")
    return lines


def _pre_init(sf: Stateful) -> list[str]:
    j, a = sf.index, sf.args
    q = f"Q{j}"
    if sf.kind == "integ":
        return [f"z{j} = _rt.bc({a['initial']}, {q}).copy()", f"o{j} = z{j}"]
    if sf.kind == "smooth":
        return [
            f"n{j} = _order({a['order']})",
            f"o{j} = _rt.bc({a['initial']}, {q})",
            f"z{j} = _rt.stack(o{j}, n{j}, {q})",
        ]
    if sf.kind == "delayn":
        return [
            f"n{j} = _order({a['order']})",
            f"d{j} = _rt.bc({a['delay_time']}, {q})",
            f"o{j} = _rt.bc({a['initial']}, {q})",
            f"z{j} = _rt.stack(o{j} * d{j}, n{j}, {q})",
            f"w{j} = _rt.stack(d{j}, n{j}, {q})",
        ]
    if sf.kind == "delay":
        return [
            f"n{j} = _order({a['order']})",
            f"d{j} = _rt.bc({a['delay_time']}, {q})",
            f"o{j} = _rt.bc({a['initial']}, {q})",
            f"z{j} = _rt.stack(o{j} * d{j}, n{j}, {q})",
        ]
    if sf.kind == "delayfixed":
        return [
            f"d{j} = _rt.bc({a['delay_time']}, {q})",
            f"o{j} = _rt.bc({a['initial']}, {q})",
            f"z{j} = o{j}",
        ]
    if sf.kind == "trend":
        return [
            f"z{j} = _rt.bc(({a['input']}) / (1 + ({a['initial_trend']}) * "
            f"({a['average_time']})), {q})",
            f"o{j} = _rt.zidz(({a['input']}) - z{j}, ({a['average_time']}) * np.abs(z{j}))",
        ]
    if sf.kind == "forecast":
        return [
            f"z{j} = _rt.bc(({a['input']}) / (1 + ({a['initial_trend']})), {q})",
            f"o{j} = ({a['input']}) * (1 + _rt.zidz(({a['input']}) - z{j}, "
            f"({a['average_time']}) * z{j}) * ({a['horizon']}))",
        ]
    if sf.kind == "sampleiftrue":
        return [f"z{j} = _rt.bc({a['initial']}, {q}).copy()", f"o{j} = z{j}"]
    if sf.kind in ("initial", "active_initial"):
        return [f"o{j} = _rt.bc({a['initial']}, {q})"]
    raise AssertionError(sf.kind)


def _pre_dyn(sf: Stateful) -> list[str]:
    j, a = sf.index, sf.args
    if sf.kind == "integ":
        return [f"o{j} = s{j}"]
    if sf.kind == "smooth":
        return [f"o{j} = s{j}[:, -1]"]
    if sf.kind == "delay":
        return [f"o{j} = s{j}[:, -1] / ({a['delay_time']})"]
    if sf.kind == "delayn":
        return [f"o{j} = s{j}[:, N{j} - 1] / (({a['delay_time']}) if CONT else s{j}[:, N{j}])"]
    if sf.kind == "delayfixed":
        return [f"o{j} = s{j}[:, 0]"]
    if sf.kind == "trend":
        return [f"o{j} = _rt.zidz(({a['input']}) - s{j}, ({a['average_time']}) * np.abs(s{j}))"]
    if sf.kind == "forecast":
        return [
            f"o{j} = ({a['input']}) * (1 + _rt.zidz(({a['input']}) - s{j}, "
            f"({a['average_time']}) * s{j}) * ({a['horizon']}))"
        ]
    if sf.kind == "sampleiftrue":
        return [f"o{j} = _rt.where({a['condition']}, {a['input']}, s{j})"]
    if sf.kind == "initial":
        return []
    if sf.kind == "active_initial":
        return [f"o{j} = {a['active']}"]
    raise AssertionError(sf.kind)


def _ddt(sf: Stateful) -> list[str]:
    j, a = sf.index, sf.args
    d = f"_D[:, SL{j}]"
    if sf.kind == "integ":
        # a view of the block (splitting the contiguous last axis never copies)
        return [f"_D[:, SL{j}].reshape(Q{j})[...] = {a['flow']}"]
    if sf.kind == "smooth" and a["order"] == "1.0":
        # first order: no stage shifting needed
        return [
            f"_D[:, SL{j}].reshape(QS{j})[:, 0] = (({a['input']}) - s{j}[:, 0]) / "
            f"({a['smooth_time']})"
        ]
    if sf.kind == "smooth":
        return [
            f"{d} = _rt.smooth_ddt(s{j}, {a['input']}, {a['smooth_time']}, N{j}).reshape(_B, -1)"
        ]
    if sf.kind == "delayn":
        return [
            f"{d} = _rt.delayn_ddt(s{j}, {a['input']}, {a['delay_time']}, N{j}, CONT)"
            ".reshape(_B, -1)"
        ]
    if sf.kind == "delay":
        return [f"{d} = _rt.delay_ddt(s{j}, {a['input']}, {a['delay_time']}, N{j}).reshape(_B, -1)"]
    if sf.kind in ("trend", "forecast"):
        return [
            f"_D[:, SL{j}].reshape(Q{j})[...] = (({a['input']}) - s{j}) / ({a['average_time']})"
        ]
    return []


def _discrete(sf: Stateful) -> list[str]:
    j, a = sf.index, sf.args
    if sf.kind == "delayfixed":
        return [f"_N[:, SL{j}] = _rt.shift(s{j}, {a['input']}).reshape(_B, -1)"]
    if sf.kind == "delayn":
        return [
            f"_N[:, SL{j}] = _rt.delayn_times(_N[:, SL{j}].reshape(QS{j}), s{j}, "
            f"{a['delay_time']}, N{j}).reshape(_B, -1)"
        ]
    if sf.kind == "sampleiftrue":
        return [
            f"_N[:, SL{j}] = _rt.bc(_rt.where({a['condition']}, {a['input']}, s{j}), Q{j})"
            ".reshape(_B, -1)"
        ]
    return []


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
        and (e.uses_time or any(sfs[j].kind != "initial" for j in e.statefuls))
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
        init_order = _toposort(values, init_deps)
        dyn_nodes = [i for i in values if i in dynamic]
        phase = "model equations"
        dyn_order = _toposort(dyn_nodes, dyn_deps)
    except _Cycle as cycle:
        raise _cycle_error(prog, cycle.cycle, phase) from None
    state_sfs = [sf for sf in sfs if sf.kind in STATE_KINDS]
    # what the derivative needs
    roots: set[int] = set()
    for sf in state_sfs:
        roots |= sf.ddt_refs
        roots.add(sf.element)
    need: set[int] = set()
    todo = [r for r in roots if r in dynamic]
    while todo:
        r = todo.pop()
        if r in need:
            continue
        need.add(r)
        todo.extend(d for d in dyn_deps[r] if d in dynamic and d not in need)
    overridable = {e.index for e in els if e.kind != "lookup" and e.index not in dynamic}

    ind = "    "
    lines = ["def _init(_T):"]
    for i in init_order:
        for j in els[i].statefuls:
            lines += [ind + x for x in _pre_init(sfs[j])]
        lines += [ind + x for x in _assembly(prog, i, True)]
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
                out += [ind + x for x in _pre_dyn(sfs[j])]
            out += [ind + x for x in _assembly(prog, i, False)]
            if i in forced:
                # data replaced by a time series in some scenarios only
                out.append(f"{ind}v{i} = _TSM({i}, _T, v{i})")
        return out

    rhs = ["def _rhs(_T, _y, _dt):", *body([i for i in dyn_order if i in need])]
    rhs.append(ind + "_D = np.zeros((_B, NS))")
    for sf in state_sfs:
        rhs += [ind + x for x in _ddt(sf)]
    nonneg = [sf for sf in state_sfs if sf.kind == "integ" and sf.non_negative]
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
        rhs += [ind + x for x in _discrete(sf)]
    rhs.append(ind + "return _N.reshape(-1)")
    rhs_src = "\n".join(rhs) + "\n"

    obs = ["def _obs(_T, _y):", *body(dyn_order)]
    obs_names = tuple(i for i in dyn_order if not els[i].hidden)
    obs.append(ind + "return (" + "".join(f"v{i}, " for i in obs_names) + ")")
    obs_src = "\n".join(obs) + "\n"
    full = init_src + "\n" + rhs_src + "\n" + obs_src
    code = compile(full, _FILENAME, "exec")
    return Code(init_src, rhs_src, obs_src, code, frozenset(dynamic), obs_names)


def _order(x: Any) -> int:
    arr = np.asarray(x, dtype=float)
    first = float(arr.flat[0])
    if not np.all(arr == first):
        raise UnsupportedFeatureError(
            "The compiled backend needs the order of a SMOOTH N / DELAY N to be the same "
            "in every scenario and subscript."
        )
    return int(first)


class CompiledSystem:
    """A compiled model bound to a batch of overrides and a time grid.

    Implements :class:`sd_model.integrate.System`. The state vector is
    scenario-major: ``y.reshape(B, n_state)[b]`` is scenario ``b``.
    """

    def __init__(
        self,
        prog: Program,
        code_for: Any,
        overrides: Sequence[Mapping[str, object]],
        grid: TimeGrid,
        *,
        continuous: bool = False,
    ) -> None:
        if len(overrides) < 1:
            raise ParameterError("system() needs at least one overrides mapping (one scenario).")
        self._prog = prog
        self.grid = grid
        self.batch = B = len(overrides)
        els = prog.elements
        consts, series, tables = self._parse_overrides(overrides)
        base_dynamic = code_for(frozenset()).dynamic
        for i in [*consts, *series]:
            if i in base_dynamic and els[i].kind != "data":
                el = els[i]
                raise ParameterError(
                    f"'{el.py_name}' ({el.name}) depends on time or on stocks; only constants "
                    "and lookups can be overridden."
                )
        forced = frozenset(i for i, per in series.items() if per)
        self._forced = forced
        code: Code = code_for(forced)
        self.code = code
        ns: dict[str, Any] = {
            "np": np,
            "_rt": _runtime,
            "_NAN": math.nan,
            "_INF": math.inf,
            "_B": B,
            "_order": _order,
            "TI": np.float64(grid.initial_time),
            "TF": np.float64(grid.final_time),
            "DT": np.float64(grid.time_step),
            # Adaptive methods integrate the continuous STEP/PULSE/DELAY N (see _runtime).
            "CONT": continuous,
            "HS": 0.0 if continuous else float(grid.time_step) / 2,
            "EPS": 0.0 if continuous else _runtime.SMALL_VENSIM,
            "SP": np.float64(grid.saveper),
        }
        ns.update(prog.consts)
        for e in els:
            ns[f"E{e.index}"] = (B, *e.shape)
            for k, comp in enumerate(e.components):
                if not comp.direct and comp.cells is not None:
                    ns[f"PE{e.index}_{k}"] = (slice(None), *comp.cells[0])
                    ns[f"PC{e.index}_{k}"] = (slice(None), *comp.cells[1])
                    ns[f"CS{e.index}_{k}"] = comp.ctx.shape
            if e.kind == "lookup":
                assert e.lookup_tables is not None
                lx, ly = tables.get(e.index, e.lookup_tables)
                ns[f"LX{e.index}"], ns[f"LY{e.index}"] = _compress(lx), _compress(ly)
        for sf in prog.statefuls:
            ns[f"Q{sf.index}"] = (B, *sf.ctx.shape)

        def ov(i: int, default: np.ndarray) -> np.ndarray:
            out = np.array(np.broadcast_to(default, (B, *els[i].shape)), dtype=float)
            for b, val in consts.get(i, {}).items():
                out[b] = val
            for b, s in series.get(i, {}).items():
                out[b] = _interp_series(s, grid.initial_time)
            return out

        ns["_OV"] = ov
        exec(code.code, ns)  # generated only from the AST (see _build); no model text
        try:
            with np.errstate(all="ignore"):
                init = ns["_init"](np.float64(grid.initial_time))
        except ArithmeticError as exc:
            raise arithmetic_error(code.culprit(prog, exc), grid.initial_time, exc) from exc
        # constants become module globals of the dynamic functions
        for e in els:
            if e.kind != "lookup" and e.index not in code.dynamic:
                ns[f"v{e.index}"] = init[f"v{e.index}"]
        ts_base = {i: init[f"v{i}"] for i in forced}

        def ts(i: int, t: float) -> np.ndarray:
            out = ts_base[i].copy()
            for b, s in series[i].items():
                out[b] = _interp_series(s, t)
            return out

        ns["_TS"] = ts

        def ts_merge(i: int, t: float, default: np.ndarray) -> np.ndarray:
            out = np.array(np.broadcast_to(default, (B, *els[i].shape)), dtype=float)
            for b, s in series[i].items():
                out[b] = _interp_series(s, t)
            return out

        ns["_TSM"] = ts_merge
        # state layout
        offset = 0
        labels: list[str] = []
        self._discrete: list[str] = []
        blocks = []
        for sf in prog.statefuls:
            j = sf.index
            if sf.kind in ("initial", "active_initial"):
                if sf.kind == "initial":
                    ns[f"o{j}"] = init[f"o{j}"]
                continue
            z = init[f"z{j}"]
            if sf.kind in ("smooth", "delay", "delayn"):
                n = int(init[f"n{j}"])
                if sf.kind != "smooth":
                    dmin = float(np.min(init[f"d{j}"]))
                    while n > 1 and n * grid.time_step > dmin:
                        n -= 1
                    z = z[:, :n]
                ns[f"N{j}"] = n
                ns[f"QS{j}"] = (B, n, *sf.ctx.shape)
                if sf.kind == "delayn":
                    z = np.concatenate([z, init[f"w{j}"][:, :n]], axis=1)
                    ns[f"QS{j}"] = (B, 2 * n, *sf.ctx.shape)
            elif sf.kind == "delayfixed":
                d = np.asarray(init[f"d{j}"])
                first = float(d.flat[0])
                if not np.all(d == first):
                    raise UnsupportedFeatureError(
                        f"DELAY FIXED in element '{sf.label}' needs the same delay time in "
                        "every scenario and subscript in the compiled backend."
                    )
                n = round(max(first / grid.time_step, 1) + _runtime.SMALL_VENSIM)
                z = np.repeat(np.asarray(z)[:, None], n, axis=1)
                ns[f"N{j}"] = n
                ns[f"QS{j}"] = (B, n, *sf.ctx.shape)
                self._discrete.append(f"DELAY FIXED in '{sf.label}'")
            else:
                ns[f"QS{j}"] = (B, *sf.ctx.shape)
                if sf.kind == "sampleiftrue":
                    self._discrete.append(f"SAMPLE IF TRUE in '{sf.label}'")
            size = int(np.prod(ns[f"QS{j}"][1:], dtype=int))
            ns[f"SL{j}"] = slice(offset, offset + size)
            blocks.append((sf, offset, size, np.asarray(z, dtype=float).reshape(B, size)))
            labels += _labels(sf, ns[f"QS{j}"][1:])
            offset += size
        ns["NS"] = offset
        self._ns = ns
        self.n_state = offset
        y0 = np.empty((B, offset))
        for _sf, off, size, z in blocks:
            y0[:, off : off + size] = z
        self._y0 = y0.reshape(-1)
        if B == 1:
            self._labels = labels
        else:
            self._labels = [f"{b}:{lab}" for b in range(B) for lab in labels]
        self._rhs = ns["_rhs"]
        self._obs = ns["_obs"]
        self._init_values = init
        self._breakpoints = self._compute_breakpoints(init, code.dynamic)
        self._prepare_observe()

    # ------------------------------------------------------------------ overrides
    def _parse_overrides(
        self, overrides: Sequence[Mapping[str, object]]
    ) -> tuple[
        dict[int, dict[int, np.ndarray]],
        dict[int, dict[int, pd.Series]],
        dict[int, tuple[np.ndarray, np.ndarray]],
    ]:
        prog = self._prog
        consts: dict[int, dict[int, np.ndarray]] = {}
        series: dict[int, dict[int, pd.Series]] = {}
        lk: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
        for b, mapping in enumerate(overrides):
            for key, value in mapping.items():
                if key not in prog.by_py_name:
                    if key in CONTROL_NAMES:
                        raise ParameterError(
                            f"'{key}' is a control variable; set it through the time grid."
                        )
                    raise ParameterError(
                        f"Unknown parameter '{key}': the model has no constant or lookup with "
                        "that Python name."
                    )
                el = prog.elements[prog.by_py_name[key]]
                if el.kind == "lookup":
                    lk.setdefault(el.index, {})[b] = _lookup_override(el, value)
                    continue
                if el.kind == "data":
                    # data variables are time series already: any override replaces one
                    if not isinstance(value, pd.Series):
                        value = pd.Series([_const_override(el, value)], index=[0.0])
                    series.setdefault(el.index, {})[b] = value.sort_index()
                    continue
                if el.kind == "stock" or el.statefuls or el.uses_time:
                    raise ParameterError(
                        f"'{key}' ({el.name}) is not a constant and cannot be overridden."
                    )
                if isinstance(value, pd.Series):
                    series.setdefault(el.index, {})[b] = value.sort_index()
                else:
                    consts.setdefault(el.index, {})[b] = _const_override(el, value)
        # a constant that depends on something dynamic cannot be overridden either
        tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        B = len(overrides)
        for i, per in lk.items():
            el = prog.elements[i]
            assert el.lookup_tables is not None
            dx, dy = el.lookup_tables
            cand = [per.get(b, (dx[0], dy[0])) for b in range(B)]
            n = max(c[0].shape[-1] for c in cand)
            xs = np.empty((B, *el.shape, n))
            ys = np.empty((B, *el.shape, n))
            for b, (x, y) in enumerate(cand):
                x = np.broadcast_to(x, (*el.shape, x.shape[-1]))
                y = np.broadcast_to(y, (*el.shape, y.shape[-1]))
                pad = n - x.shape[-1]
                xs[b] = np.concatenate([x, np.repeat(x[..., -1:], pad, axis=-1)], axis=-1)
                ys[b] = np.concatenate([y, np.repeat(y[..., -1:], pad, axis=-1)], axis=-1)
            tables[i] = (xs, ys)
        return consts, series, tables

    # ------------------------------------------------------------------ protocol
    @property
    def state_labels(self) -> Sequence[str]:
        """One label per entry of ``y``."""
        return self._labels

    @property
    def breakpoints(self) -> Sequence[float]:
        """Times of STEP/PULSE/RAMP edges (union over the batch)."""
        return self._breakpoints

    @property
    def discrete_elements(self) -> Sequence[str]:
        """DELAY FIXED / SAMPLE IF TRUE elements (fixed-step Euler only)."""
        return self._discrete

    def initial_state(self) -> np.ndarray:
        """The state at the initial time, scenario-major."""
        return self._y0.copy()

    @property
    def observed_size(self) -> int:
        """Number of values :meth:`observe` returns at each saved time (all scenarios)."""
        return self.batch * sum(int(np.prod(e.shape, dtype=int)) for e in self._observed)

    def derivative(self, t: float, y: np.ndarray) -> np.ndarray:
        """``dy/dt`` at ``(t, y)``."""
        try:
            with np.errstate(all="ignore"):
                return np.asarray(self._rhs(np.float64(t), y, None))
        except ArithmeticError as exc:
            raise arithmetic_error(self.code.culprit(self._prog, exc), t, exc) from exc

    def euler_step(self, t: float, y: np.ndarray, dt: float) -> np.ndarray:
        """One Euler step, updating discrete elements as PySD does."""
        try:
            with np.errstate(all="ignore"):
                return np.asarray(self._rhs(np.float64(t), y, float(dt)))
        except ArithmeticError as exc:
            raise arithmetic_error(self.code.culprit(self._prog, exc), t, exc) from exc

    def observe(self, t: float, y: np.ndarray) -> dict[str, np.ndarray]:
        """Every variable at ``(t, y)``, each shaped ``(B, *dims)``."""
        try:
            with np.errstate(all="ignore"):
                dyn = self._obs(np.float64(t), y)
        except ArithmeticError as exc:
            raise arithmetic_error(self.code.culprit(self._prog, exc), t, exc) from exc
        out = dict(self._constant_outputs)
        for e, val in zip(self._observed, dyn, strict=True):
            full = (self.batch, *e.shape)
            if np.shape(val) == full:
                out[e.py_name] = np.array(val, dtype=float)  # a copy: values may view y
            else:
                out[e.py_name] = np.array(np.broadcast_to(val, full), dtype=float)
        return out

    def _prepare_observe(self) -> None:
        """Constants are observed once; their arrays are shared (read-only)."""
        prog = self._prog
        B = self.batch
        dynamic = set(self.code.obs_names)
        self._observed = [prog.elements[i] for i in self.code.obs_names]
        consts: dict[str, np.ndarray] = {}
        for e in prog.elements:
            if e.kind == "lookup" or e.hidden or e.index in dynamic:
                continue
            arr = np.array(np.broadcast_to(self._ns[f"v{e.index}"], (B, *e.shape)), dtype=float)
            arr.flags.writeable = False
            consts[e.py_name] = arr
        for py_name, short in CONTROL_NAMES.items():
            arr = np.full(B, float(self._ns[short]))
            arr.flags.writeable = False
            consts[py_name] = arr
        self._constant_outputs = consts

    # ------------------------------------------------------------------ numba kernel
    def run_euler(self) -> Any:
        """The whole Euler run in one numba-compiled kernel, or None when not possible.

        Gives the same result as ``integrate(system, grid, SolverOptions("euler"))``
        (an :class:`sd_model.integrate.IntegrationResult`) without a Python call per
        step. Returns None when numba is not installed or the model uses something the
        kernel does not cover (see :mod:`sd_model.compiler._kernel`).

        Raises
        ------
        sd_model.IntegrationError
            When the state becomes NaN or infinite.
        sd_model.SettingsError
            When the run is too large (see :func:`sd_model.integrate.check_run_size`).
        """
        from sd_model.compiler import _kernel
        from sd_model.integrate import (
            IntegrationResult,
            SolverOptions,
            check_run_size,
            nonfinite_error,
        )

        if self._forced or not _kernel.numba_available():
            return None
        # Before compiling (which can take minutes); the kernel takes a save flag per
        # step (one byte each).
        check_run_size(
            self.grid,
            SolverOptions(method="euler"),
            values_per_save=self.n_state + self.observed_size,
            bytes_per_step=1,
            system=self,
        )
        try:
            ks = _kernel.generate_kernel(self._prog, self.code.dynamic, self.code.obs_names)
        except _kernel.KernelUnsupported:
            return None
        fn = _kernel.compile_kernel(ks)
        if fn is None:
            return None
        ns = self._ns
        g = self.grid
        B = self.batch
        save_times = g.save_times()
        n_steps = g.n_steps()
        dt = g.time_step
        t0 = g.initial_time
        tol = dt * 1e-5
        save = np.zeros(n_steps + 1, dtype=np.bool_)
        saved: list[float] = []
        for ts in save_times:
            # The step nearest to ts (the first on a tie) lies next to the rounded
            # quotient; no array of all step times is needed.
            near = round((ts - t0) / dt)
            steps = range(max(near - 1, 0), min(near + 1, n_steps) + 1)
            k = min(steps, key=lambda k: abs(t0 + dt * k - ts), default=0)
            if abs(t0 + dt * k - ts) <= tol:
                save[k] = True
                saved.append(float(ts))
        n_save = int(save.sum())
        offs = np.zeros(len(self._prog.statefuls), dtype=np.int64)
        nord = np.ones(len(self._prog.statefuls), dtype=np.int64)
        for sf in self._prog.statefuls:
            if f"SL{sf.index}" in ns:
                offs[sf.index] = ns[f"SL{sf.index}"].start
            if f"N{sf.index}" in ns:
                nord[sf.index] = ns[f"N{sf.index}"]
        args = []
        for name in ks.args:
            value = ks.extra[name] if name in ks.extra else ns[name]
            if isinstance(value, np.ndarray):
                value = np.ascontiguousarray(value, dtype=value.dtype)
            elif isinstance(value, int | float):
                value = float(value)
            args.append(value)
        out = np.empty((n_save, B * self.n_state))
        els = self._prog.elements
        obs = tuple(np.empty((n_save, B, *els[i].shape)) for i in ks.observed)
        y0 = self._y0.copy()
        with np.errstate(all="ignore"):
            result = _kernel.call_kernel(
                ks,
                fn,
                y0,
                float(g.initial_time),
                float(dt),
                n_steps,
                save,
                out,
                obs,
                B,
                self.n_state,
                offs,
                nord,
                *args,
            )
        if result is None:
            return None
        status, where = result
        if status >= 0:
            t_bad = g.initial_time + status * dt
            label = self._labels[where] if where < len(self._labels) else f"state[{where}]"
            raise nonfinite_error(label, t_bad, float(y0[where]))
        observations = []
        for k in range(n_save):
            o = dict(self._constant_outputs)
            for m, i in enumerate(ks.observed):
                o[els[i].py_name] = obs[m][k]
            observations.append(o)
        return IntegrationResult(
            times=np.asarray(saved),
            states=out,
            observations=observations,
            nfev=n_steps,
            method="euler",
        )

    # ------------------------------------------------------------------ breakpoints
    def _compute_breakpoints(self, init: Mapping[str, Any], dynamic: frozenset[int]) -> list[float]:
        g = self.grid
        out: set[float] = set()
        env = dict(self._ns)
        env.update(init)
        env["_T"] = g.initial_time
        for bp in self._prog.breakpoints:
            if bp.dynamic or bp.refs & dynamic:
                continue
            try:
                with np.errstate(all="ignore"):
                    args = [
                        np.atleast_1d(np.asarray(eval(src, env), dtype=float)).ravel()
                        for src in bp.args
                    ]
            except Exception:
                continue
            times: list[float] = []
            if bp.kind == "step":
                times += [*args[1], *(args[1] - g.time_step / 2)]
            elif bp.kind == "pulse":
                for s in args[0]:
                    times += [s, *(s + args[1])]
            elif bp.kind == "Xpulse":
                times += [*args[0], *(args[0] + g.time_step / 2)]
            elif bp.kind in ("pulse_train", "Xpulse_train"):
                widths = args[2] if bp.kind == "pulse_train" else np.array([g.time_step / 2])
                end = args[3] if bp.kind == "pulse_train" else np.array([g.final_time])
                for s in args[0]:
                    for r in args[1]:
                        if r <= 0:
                            times += [s, *(s + widths)]
                            continue
                        k = np.arange(0, min(10_000, int((g.final_time - s) / r) + 2))
                        starts = s + k * r
                        starts = starts[starts < min(float(np.max(end)), g.final_time) + r]
                        times += list(starts)
                        for w in widths:
                            times += list(starts + w)
            elif bp.kind == "ramp":
                times += [*args[1], *args[2]]
            elif bp.kind == "Xramp":
                times += list(args[1])
            out.update(float(x) for x in times if np.isfinite(x))
        return sorted(x for x in out if g.initial_time < x < g.final_time)


def _compress(arr: np.ndarray) -> np.ndarray:
    """A table whose rows are all equal becomes a broadcast view of one row.

    The lookup helper recognises the zero strides and interpolates once.
    """
    flat = arr.reshape(-1, arr.shape[-1])
    if np.array_equal(flat, np.broadcast_to(flat[0], flat.shape), equal_nan=True):
        return np.broadcast_to(flat[0], arr.shape)
    return arr


def _labels(sf: Stateful, shape: tuple[int, ...]) -> list[str]:
    ctx = sf.ctx
    cells = [""]
    if ctx.coords:
        grids = np.meshgrid(*[np.arange(len(c)) for c in ctx.coords], indexing="ij")
        idx = [g.ravel() for g in grids]
        cells = [
            "[" + ",".join(ctx.coords[k][idx[k][m]] for k in range(len(ctx.coords))) + "]"
            for m in range(idx[0].size)
        ]
    if sf.kind == "integ":
        return [f"{sf.label}{c}" for c in cells]
    kind = sf.kind.upper()
    if len(shape) > len(ctx.coords):
        return [f"{kind}({sf.label}){c}#{stage}" for stage in range(shape[0]) for c in cells]
    return [f"{kind}({sf.label}){c}" for c in cells]


def _interp_series(s: pd.Series, t: float) -> Any:
    x = np.asarray(s.index, dtype=float)
    vals = s.values
    if len(vals) and isinstance(vals[0], np.ndarray | xr.DataArray | list):
        y = np.stack([np.asarray(v, dtype=float) for v in vals])
        out = np.empty(y.shape[1:])
        flat = y.reshape(len(x), -1)
        out.reshape(-1)[:] = [np.interp(t, x, flat[:, k]) for k in range(flat.shape[1])]
        return out
    return np.interp(t, x, np.asarray(vals, dtype=float))


def _const_override(el: Any, value: object) -> np.ndarray:
    shape = el.shape
    if isinstance(value, xr.DataArray):
        missing = [d for d in value.dims if d not in el.dims]
        if missing:
            raise ParameterError(
                f"Override of '{el.py_name}' has dims {missing} that the variable "
                f"({', '.join(el.dims) or 'scalar'}) does not have."
            )
        template = xr.DataArray(
            np.zeros(shape),
            dict(zip(el.dims, [list(c) for c in el.coords], strict=True)),
            list(el.dims),
        )
        try:
            value = value.broadcast_like(template).transpose(*el.dims)
            arr = np.asarray(
                value.sel({d: list(c) for d, c in zip(el.dims, el.coords, strict=True)}).values,
                dtype=float,
            )
        except (KeyError, ValueError) as exc:
            raise ParameterError(
                f"Override of '{el.py_name}' does not match its coords: {exc}"
            ) from exc
        return arr
    try:
        arr = np.asarray(value, dtype=float)
        return np.broadcast_to(arr, shape).copy()
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            f"Override of '{el.py_name}' must be a number or an array of shape {shape}, "
            f"got {type(value).__name__}."
        ) from exc


def _lookup_override(el: Any, value: object) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(value, pd.Series):
        s = value.sort_index()
        x = np.asarray(s.index, dtype=float)
        y = np.asarray([np.asarray(v, dtype=float) for v in s.values])
        y = np.moveaxis(y, 0, -1) if y.ndim > 1 else y
        return np.broadcast_to(x, (*el.shape, x.size)), np.broadcast_to(y, (*el.shape, x.size))
    if isinstance(value, int | float | np.number):
        return (np.zeros((*el.shape, 1)), np.full((*el.shape, 1), float(value)))
    if isinstance(value, tuple) and len(value) == 2:
        x = np.asarray(value[0], dtype=float)
        y = np.asarray(value[1], dtype=float)
        return np.broadcast_to(x, (*el.shape, x.size)), np.broadcast_to(y, (*el.shape, x.size))
    raise ParameterError(
        f"Override of lookup '{el.py_name}' must be a number, a pandas Series indexed by x, "
        f"or an (x, y) pair; got {type(value).__name__}."
    )
