"""The lowered program: what the compiler hands to the emitters (typed, frozen data).

:func:`sd_model.compiler._build.build_program` resolves everything model-specific in
PySD's syntax trees (names, macro scopes, subscript alignment, external data, subscript
ranges used as numbers) and produces a :class:`Program` of elements whose components
are :data:`Expr` trees. The NumPy emitter (:mod:`sd_model.compiler._emit_numpy`) and the
numba emitter (:mod:`sd_model.compiler._kernel`) both walk these trees and nothing
else. Expressions are aligned to the subscript context (:class:`Ctx`) of the component
they belong to.

Constants (arrays read from data files, index arrays, shapes) live in
``Program.consts`` under generated names (``A3``, ``IX7``, ``CS2``) that expressions
refer to; no text from the model file reaches generated code.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CONTROL_NAMES = {
    "initial_time": "TI",
    "final_time": "TF",
    "time_step": "DT",
    "saveper": "SP",
}

# Vensim operators -> Python operators (both emitters)
BINARY = {
    "^": "**",
    "*": "*",
    "/": "/",
    "+": "+",
    "-": "-",
    "=": "==",
    "<>": "!=",
    ">=": ">=",
    ">": ">",
    "<=": "<=",
    "<": "<",
}
COMPARISONS = {"==", "!=", ">=", ">", "<=", "<"}


def num(x: float) -> str:
    """Source literal of a float (``inf``/``nan`` through names)."""
    x = float(x)
    if math.isnan(x):
        return "_NAN"
    if math.isinf(x):
        return "_INF" if x > 0 else "(-_INF)"
    return repr(x)


@dataclass(frozen=True)
class Ctx:
    """The subscript context of a component: dim names (as written) and coords."""

    names: tuple[str, ...] = ()
    coords: tuple[tuple[str, ...], ...] = ()

    @functools.cached_property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.coords)

    def extend(self, name: str, coords: Sequence[str]) -> Ctx:
        return Ctx((*self.names, name), (*self.coords, tuple(coords)))


# Per axis of a referenced variable: the context axis it follows (None: one element)
# and the positions it reads along its own coords.
Entries = tuple[tuple[int | None, tuple[int, ...]], ...]


# ---------------------------------------------------------------------------- expressions
@dataclass(frozen=True)
class Num:
    """A numeric literal."""

    value: float


@dataclass(frozen=True)
class Const:
    """A constant array of ``Program.consts``, shaped ``(1, *ctx axes or 1)``."""

    name: str


@dataclass(frozen=True)
class Time:
    """The simulation time."""


@dataclass(frozen=True)
class Control:
    """A control variable (``initial_time``, ``final_time``, ``time_step``, ``saveper``)."""

    py_name: str


@dataclass(frozen=True)
class Arith:
    """An operator chain (``ops`` Vensim operators; one op and one arg for unary)."""

    ops: tuple[str, ...]
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Logic:
    """:AND: / :OR: / :NOT: and comparisons in logical position."""

    ops: tuple[str, ...]
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Ref:
    """Element ``element`` aligned to the context.

    ``entries`` says how each of the element's axes maps onto the context;
    ``np_index`` is the same as a NumPy indexing suffix (``""``, ``"[:, None]"``,
    ``"[IX3]"``).
    """

    element: int
    entries: Entries
    np_index: str


@dataclass(frozen=True)
class Call:
    """An elementwise builtin by its PySD name (``"exp"``, ``"if_then_else"``, ``"pi"``)."""

    fn: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Lookup:
    """Lookup element ``element`` (aligned like :class:`Ref`) at ``x``."""

    element: int
    entries: Entries
    np_index: str
    x: Expr
    mode: str  # interpolate, extrapolate, hold_backward, look_forward


@dataclass(frozen=True)
class InlineLookup:
    """A WITH LOOKUP table (constant names of its x and y) at ``x``."""

    xs: str
    ys: str
    x: Expr


@dataclass(frozen=True)
class DataSeries:
    """GET DATA: a series of time (constant names shaped ``(1, *ctx, n)``)."""

    xs: str
    ys: str
    mode: str


@dataclass(frozen=True)
class Reduce:
    """SUM/PROD/VMIN/VMAX over the ``axes`` of ``inner`` (the context plus the reduced dims)."""

    fn: str  # sum, prod, vmin, vmax, vmin_xmile, vmax_xmile
    arg: Expr
    inner: Ctx
    axes: tuple[int, ...]
    shape: str  # constant name of inner.shape


@dataclass(frozen=True)
class TimeFunction:
    """STEP, PULSE, PULSE TRAIN, RAMP (and XMILE's forms) by PySD's function name."""

    fn: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class StatefulValue:
    """The value of stateful object ``index`` (see :mod:`sd_model.compiler._statefuls`)."""

    index: int


@dataclass(frozen=True)
class NumpyOnly:
    """A construct only the NumPy emitter writes (vector functions, allocation).

    ``template`` is NumPy source with ``{0}``, ``{1}``... for the sources of ``args``.
    """

    what: str
    template: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Random:
    """A random draw (RANDOM NORMAL, RANDOM UNIFORM...): one value per cell per time step.

    ``dist`` is a key of :data:`sd_model.compiler._builtins.RANDOM_PARAMS` and ``args``
    the distribution's parameters in that order. Each time step gives every scenario a
    block of ``Program.random_cells`` uniform numbers; this draw transforms (inverse
    distribution function) the ones at ``offset`` onwards, ``shape`` (a constant name)
    being its context's shape. So what a draw sees depends only on the scenario's stream
    and the step, not on how often or in which order the model's functions are called.
    """

    fn: str  # PySD name, for messages (random_normal)
    dist: str
    args: tuple[Expr, ...]
    offset: int
    shape: str


Expr = (
    Num
    | Const
    | Time
    | Control
    | Arith
    | Logic
    | Ref
    | Call
    | Lookup
    | InlineLookup
    | DataSeries
    | Reduce
    | TimeFunction
    | StatefulValue
    | NumpyOnly
    | Random
)


# ---------------------------------------------------------------------------- program
@dataclass(frozen=True)
class Stateful:
    """A stateful object (stock, SMOOTH, DELAY...) embedded in a component."""

    index: int
    kind: str  # a key of _statefuls.KINDS
    element: int
    ctx: Ctx
    args: Mapping[str, Expr]
    init_refs: frozenset[int]
    dyn_refs: frozenset[int]
    ddt_refs: frozenset[int]
    non_negative: bool = False
    label: str = ""


@dataclass(frozen=True)
class Component:
    """One equation of an element, over ``ctx``; ``cells`` maps it into the element
    (element indices, context indices) unless it covers the element ``direct``-ly."""

    ctx: Ctx
    expr: Expr
    cells: tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]] | None
    direct: bool


@dataclass(frozen=True)
class Element:
    """A model variable (or a hidden one: a macro's parameters and equations)."""

    index: int
    name: str
    py_name: str
    dims: tuple[str, ...]
    coords: tuple[tuple[str, ...], ...]
    units: str
    doc: str
    limits: tuple[Any, Any]
    kind: str  # stock, auxiliary, constant, lookup, data
    components: tuple[Component, ...]
    refs: frozenset[int]  # elements the value expressions read
    statefuls: tuple[int, ...]
    uses_time: bool
    lookup_tables: tuple[np.ndarray, np.ndarray] | None
    lookup_mode: str
    hidden: bool

    @functools.cached_property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.coords)


@dataclass(frozen=True)
class Breakpoint:
    """A STEP/PULSE/RAMP call: its arguments give the times where it switches."""

    kind: str
    args: tuple[Expr, ...]
    refs: frozenset[int]
    dynamic: bool


@dataclass(frozen=True)
class Program:
    """The lowered model, before it is bound to parameters and a time grid."""

    elements: tuple[Element, ...]
    statefuls: tuple[Stateful, ...]
    consts: Mapping[str, Any]
    breakpoints: tuple[Breakpoint, ...]
    control: Mapping[str, Expr]  # control variable -> its expression (init phase)
    control_refs: Mapping[str, frozenset[int]]
    subscripts: Mapping[str, list[str]]
    by_py_name: Mapping[str, int]
    time_units: str
    fancy: frozenset[int]  # elements read through index arrays (need their full shape)
    # uniform numbers each scenario draws per time step (see Random), and what draws them
    random_cells: int = 0
    randoms: tuple[str, ...] = ()


# ---------------------------------------------------------------------------- ordering
class Cycle(Exception):
    """A dependency cycle met by :func:`toposort` (element indices, first == last)."""

    def __init__(self, cycle: list[int]) -> None:
        super().__init__(cycle)
        self.cycle = cycle


def toposort(nodes: Sequence[int], deps: Mapping[int, set[int]]) -> list[int]:
    """Depth-first topological order; a cycle raises :class:`Cycle`."""
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
                raise Cycle([*path[path.index(nxt) :], nxt])
            if st == 0:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(sorted(deps.get(nxt, set()) & node_set))))
    return order


def dynamic_deps(prog: Program) -> dict[int, set[int]]:
    """What each element reads while the model runs (its own and its statefuls' reads)."""
    return {
        e.index: set(e.refs).union(*[prog.statefuls[j].dyn_refs for j in e.statefuls])
        for e in prog.elements
    }
