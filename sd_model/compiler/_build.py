"""Lower PySD's AbstractModel into the typed program of :mod:`sd_model.compiler._lowered`.

The compiler walks each component's abstract syntax tree and resolves everything
model-specific: names (and macro scopes), subscript alignment, subscript ranges used
as numbers, external data (read here, at compile time), lookups, stateful objects
(described by :data:`sd_model.compiler._statefuls.KINDS`). Every value carries a
leading batch axis (scenarios); the remaining axes are aligned with the *context* of
the component being compiled (its subscript ranges, in order), with size-1 axes where
a value does not vary, so plain broadcasting implements Vensim's subscript semantics.
References to other variables are re-indexed into the context with precomputed index
arrays (subranges, mappings, transposition, single elements).

Only generated identifiers (``v3``, ``o7``, ``IX12``...) and numeric literals reach
the emitters' source; names and strings from the model file never do, so a model
cannot inject code.
"""

from __future__ import annotations

import pathlib
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pysd.translators.structures import abstract_expressions as ae
from pysd.translators.structures.abstract_model import (
    AbstractControlElement,
    AbstractElement,
    AbstractModel,
)

from sd_model._errors import UnsupportedFeatureError
from sd_model.compiler import _lowered as lw
from sd_model.compiler._builtins import (
    FUNCTIONS,
    RANDOM_FUNCTIONS,
    RANDOM_PARAMS,
    REDUCERS,
    TIME_FUNCTIONS,
)
from sd_model.compiler._lowered import BINARY, CONTROL_NAMES, Ctx, Expr, Program
from sd_model.compiler._statefuls import BY_STRUCTURE, KINDS


@dataclass
class Collector:
    """What an expression reads: element indices, and whether it reads time or state."""

    refs: set[int] = field(default_factory=set)
    dynamic: bool = False


@dataclass
class Element:
    """An element while it is being lowered (frozen into a :class:`_lowered.Element`)."""

    index: int
    name: str
    py_name: str
    dims: tuple[str, ...]
    coords: tuple[tuple[str, ...], ...]
    units: str
    doc: str
    limits: tuple[Any, Any]
    kind: str = "auxiliary"  # stock, auxiliary, constant, lookup, data
    components: list[lw.Component] = field(default_factory=list)
    refs: set[int] = field(default_factory=set)  # element refs of the value expressions
    statefuls: list[int] = field(default_factory=list)
    uses_time: bool = False
    lookup_tables: tuple[np.ndarray, np.ndarray] | None = None
    lookup_mode: str = "interpolate"
    hidden: bool = False
    scope: dict[str, int] | None = None  # name resolution of macro elements

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.coords)

    def freeze(self) -> lw.Element:
        return lw.Element(
            index=self.index,
            name=self.name,
            py_name=self.py_name,
            dims=self.dims,
            coords=self.coords,
            units=self.units,
            doc=self.doc,
            limits=self.limits,
            kind=self.kind,
            components=tuple(self.components),
            refs=frozenset(self.refs),
            statefuls=tuple(self.statefuls),
            uses_time=self.uses_time,
            lookup_tables=self.lookup_tables,
            lookup_mode=self.lookup_mode,
            hidden=self.hidden,
        )


class _Compiler:
    def __init__(self, am: AbstractModel, model_dir: pathlib.Path) -> None:
        from pysd.builders.python.python_model_builder import SectionBuilder

        self.macros = {sec.name: sec for sec in am.sections[1:]}
        self._scope: dict[str, int] | None = None
        self._macro_ctx: Ctx | None = None  # context of the subscripted macro call being inlined
        self._n_calls = 0
        self.model_dir = model_dir
        section = am.sections[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.sb = SectionBuilder(section)
        self.sm = self.sb.subscripts
        self.ns = self.sb.namespace
        for eb in self.sb.elements:
            self.ns.add_to_namespace(eb.name)
            eb.identifier = self.ns.namespace[eb.name]
            self.sm.elements[eb.identifier] = eb.subscripts
        self.subs: dict[str, list[str]] = {k: list(v) for k, v in self.sm.subscripts.items()}
        self.all_elements = {e for v in self.subs.values() for e in v}
        self.consts: dict[str, Any] = {}
        self._const_keys: dict[Any, str] = {}
        self.elements: list[Element] = []
        self.by_clean: dict[str, int] = {}
        self.control: dict[str, Expr] = {}
        self.control_refs: dict[str, set[int]] = {}
        self.control_elements: dict[str, Any] = {}
        self.statefuls: list[lw.Stateful] = []
        self.fancy: set[int] = set()
        self.breakpoints: list[lw.Breakpoint] = []
        self.random_cells = 0
        self.randoms: list[str] = []
        self.time_units = ""
        self._col: list[Collector] = []
        self._element: Element | None = None
        self._subnum = self._subscript_numbers()
        for eb in self.sb.elements:
            py_name = eb.identifier
            if isinstance(eb, AbstractControlElement) or getattr(eb, "control_var", False):
                self.control_elements[py_name] = eb
                if py_name == "time_step" or py_name == "final_time":
                    self.time_units = self.time_units or (eb.units or "").split(",")[0].strip()
                continue
            subs_dict = eb.subs_dict
            self.by_clean[self._clean(eb.name)] = len(self.elements)
            self.elements.append(
                Element(
                    index=len(self.elements),
                    name=eb.name,
                    py_name=py_name,
                    dims=tuple(eb.subscripts),
                    coords=tuple(tuple(c) for c in subs_dict.values()),
                    units=eb.units or "",
                    doc=eb.documentation or "",
                    limits=tuple(eb.limits) if eb.limits else (None, None),
                )
            )
        self.abstract = {self._clean(el.name): el for el in section.elements}

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _clean(name: str) -> str:
        # PySD's NamespaceManager keys its cleanspace this way; ASTs reference it.
        return name.lower().replace(" ", "_")

    def const(self, value: Any, prefix: str = "C", key: Any = None) -> str:
        """Register a constant object in the generated module's namespace."""
        if key is not None and key in self._const_keys:
            return self._const_keys[key]
        name = f"{prefix}{len(self.consts)}"
        self.consts[name] = value
        if key is not None:
            self._const_keys[key] = name
        return name

    def unsupported(self, what: str, *, pysd_runs: bool = True) -> UnsupportedFeatureError:
        el = self._element.name if self._element is not None else "?"
        fix = (
            "use backend='pysd' for this model."
            if pysd_runs
            else "PySD does not implement it either: replace it in the model "
            "(for example by stocks and flows that do the same)."
        )
        return UnsupportedFeatureError(
            f"The compiled backend does not support {what} in element '{el}'; {fix}"
        )

    def _subscript_numbers(self) -> dict[str, tuple[str | None, list[float]]]:
        """Subscript names used as values: ranges give positions in their main range."""
        out: dict[str, tuple[str | None, list[float]]] = {}
        for main, subranges in self.sm.subranges.items():
            elems = self.subs[main]
            out[main.replace(" ", "_").lower()] = (main, [float(i + 1) for i in range(len(elems))])
            for i, e in enumerate(elems, start=1):
                out.setdefault(e.replace(" ", "_").lower(), (None, [float(i)]))
            for sub in subranges:
                out[sub.replace(" ", "_").lower()] = (
                    sub,
                    [float(elems.index(e) + 1) for e in self.subs[sub]],
                )
        return out

    # ------------------------------------------------------------------ driver
    def compile(self) -> Program:
        for el in list(self.elements):  # macro calls append hidden elements
            self._element = el
            ael = self.abstract[self._clean(el.name)]
            self._compile_element(el, ael)
        self._element = None
        for py_name, eb in self.control_elements.items():
            comp = eb.components[0]
            col = Collector()
            self._col.append(col)
            self._element = None
            expr = self.expr(comp.ast, Ctx())
            self._col.pop()
            self.control[py_name] = expr
            self.control_refs[py_name] = col.refs
        return Program(
            elements=tuple(e.freeze() for e in self.elements),
            statefuls=tuple(self.statefuls),
            consts=self.consts,
            breakpoints=tuple(self.breakpoints),
            control=self.control,
            control_refs={k: frozenset(v) for k, v in self.control_refs.items()},
            subscripts=self.subs,
            by_py_name={e.py_name: e.index for e in self.elements if not e.hidden},
            time_units=self.time_units,
            fancy=frozenset(self.fancy),
            random_cells=self.random_cells,
            randoms=tuple(self.randoms),
        )

    def _compile_element(self, el: Element, ael: AbstractElement) -> None:
        comps = ael.components
        asts = [c.ast for c in comps]
        if all(isinstance(a, ae.LookupsStructure) for a in asts):
            self._compile_lookup(el, comps)
            return
        if any(isinstance(a, ae.GetLookupsStructure) for a in asts):
            self._compile_ext_lookup(el, comps)
            return
        if any(isinstance(a, ae.LookupsStructure) for a in asts):
            raise self.unsupported("a mix of lookup tables and expressions")
        if all(isinstance(a, ae.IntegStructure) for a in asts):
            el.kind = "stock"
        elif any(isinstance(a, ae.DataStructure) for a in asts):
            raise self.unsupported("DATA variables read from other runs' output files")
        elif any(isinstance(a, ae.GetDataStructure) for a in asts):
            el.kind = "data"
        col = Collector()
        self._col.append(col)
        for comp in comps:
            ctx = self._ctx(comp.subscripts[0])
            expr: Expr
            if isinstance(comp.ast, ae.GetConstantsStructure):
                expr = self._ext_constant(comp, ctx)
            elif isinstance(comp.ast, ae.GetDataStructure):
                expr = self._ext_data(comp, ctx)
            else:
                expr = self.expr(comp.ast, ctx)
            el.components.append(self._place(el, ctx, comp.subscripts[1], expr))
        self._col.pop()
        el.refs = col.refs
        el.uses_time = col.dynamic
        if el.kind != "stock" and not col.refs and not col.dynamic and not el.statefuls:
            el.kind = "constant"

    def _ctx(self, subs: list[str]) -> Ctx:
        if not subs and self._macro_ctx is not None:
            # a macro's (scalar) equations, inlined into a subscripted call
            return self._macro_ctx
        d = self.sm.make_coord_dict(list(subs))
        return Ctx(tuple(d), tuple(tuple(v) for v in d.values()))

    def _place(self, el: Element, ctx: Ctx, excepts: list[list[str]], expr: Expr) -> lw.Component:
        """Where a component's cells go in the element's array."""
        if len(ctx.names) != len(el.dims):
            raise self.unsupported("a component with a different number of subscripts")
        positions = []
        for k, coords in enumerate(ctx.coords):
            full = el.coords[k]
            try:
                positions.append([full.index(c) for c in coords])
            except ValueError as exc:
                raise self.unsupported("a subscript outside the variable's range") from exc
        if not excepts:
            direct = all(list(p) == list(range(len(el.coords[k]))) for k, p in enumerate(positions))
            if direct:
                return lw.Component(ctx, expr, None, True)
        grids = np.meshgrid(*[np.arange(len(c)) for c in ctx.coords], indexing="ij")
        ctx_idx = [g.ravel() for g in grids]
        keep = np.ones(ctx_idx[0].size if ctx_idx else 1, dtype=bool)
        for exc_subs in excepts:
            d = self.sm.make_coord_dict(list(exc_subs))
            sets = list(d.values())
            if len(sets) != len(ctx.names):
                raise self.unsupported("an EXCEPT with a different number of subscripts")
            hit = np.ones_like(keep)
            for k, allowed in enumerate(sets):
                names = np.array(ctx.coords[k], dtype=object)[ctx_idx[k]]
                hit &= np.isin(names, np.array(allowed, dtype=object))
            keep &= ~hit
        cidx = tuple(i[keep] for i in ctx_idx)
        eidx = tuple(np.asarray(positions[k])[cidx[k]] for k in range(len(cidx)))
        return lw.Component(ctx, expr, (eidx, cidx), False)

    # ------------------------------------------------------------------ lookups
    def _compile_lookup(self, el: Element, comps: list[Any]) -> None:
        el.kind = "lookup"
        n = max(len(c.ast.x) for c in comps)
        shape = el.shape
        xs = np.full((1, *shape, n), np.nan)
        ys = np.full((1, *shape, n), np.nan)
        modes = {c.ast.type for c in comps}
        for comp in comps:
            x = np.asarray(comp.ast.x, dtype=float)
            y = np.asarray(comp.ast.y, dtype=float)
            x = np.concatenate([x, np.repeat(x[-1:], n - len(x))])
            y = np.concatenate([y, np.repeat(y[-1:], n - len(y))])
            ctx = self._ctx(comp.subscripts[0])
            placed = self._place(el, ctx, comp.subscripts[1], lw.Num(0.0))
            if placed.direct:
                xs[0, ...] = x
                ys[0, ...] = y
            else:
                assert placed.cells is not None
                where: tuple[Any, ...] = (0, *placed.cells[0])
                xs[where] = x
                ys[where] = y
        el.lookup_tables = (xs, ys)
        mode = modes.pop() if len(modes) == 1 else "interpolate"
        el.lookup_mode = {"extrapolate": "extrapolate", "hold_backward": "hold_backward"}.get(
            mode or "", "interpolate"
        )

    def _compile_ext_lookup(self, el: Element, comps: list[Any]) -> None:
        from pysd.py_backend.external import ExtLookup

        el.kind = "lookup"
        obj = None
        final = dict(zip(el.dims, [list(c) for c in el.coords], strict=True))
        for comp in comps:
            a = comp.ast
            if not isinstance(a, ae.GetLookupsStructure):
                raise self.unsupported("a mix of GET LOOKUPS and other definitions")
            coords = self.sm.make_coord_dict(list(comp.subscripts[0]))
            if obj is None:
                obj = ExtLookup(
                    a.file,
                    a.tab,
                    a.x_row_or_col,
                    a.cell,
                    coords,
                    self.model_dir,
                    final,
                    el.py_name,
                )
            else:
                obj.add(a.file, a.tab, a.x_row_or_col, a.cell, coords)
        assert obj is not None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj.initialize()
        data = obj.data
        x = np.asarray(data.coords["lookup_dim"].values, dtype=float)
        if el.dims:
            data = data.transpose(*el.dims, "lookup_dim")
        y = np.asarray(data.values, dtype=float)
        xs = np.broadcast_to(x, y.shape)[None].copy()
        el.lookup_tables = (xs, y[None].copy())

    def _ext_data(self, comp: Any, ctx: Ctx) -> Expr:
        from pysd.py_backend.external import ExtData

        a = comp.ast
        coords = dict(zip(ctx.names, [list(c) for c in ctx.coords], strict=True))
        interp = (getattr(comp, "keyword", None) or "interpolate").replace(" ", "_")
        obj = ExtData(
            a.file,
            a.tab,
            a.time_row_or_col,
            a.cell,
            interp,
            coords,
            self.model_dir,
            coords,
            "x",
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj.initialize()
        data = obj.data
        x = np.asarray(data.coords["time"].values, dtype=float)
        if ctx.names:
            data = data.transpose(*ctx.names, "time")
        y = np.asarray(data.values, dtype=float)
        xs = self.const(np.broadcast_to(x, y.shape)[None].copy(), "A")
        ys = self.const(y[None].copy(), "A")
        self._mark_dynamic()
        return lw.DataSeries(xs, ys, str(obj.interp))

    def _ext_constant(self, comp: Any, ctx: Ctx) -> Expr:
        from pysd.py_backend.external import ExtConstant

        a = comp.ast
        coords = dict(zip(ctx.names, [list(c) for c in ctx.coords], strict=True))
        obj = ExtConstant(a.file, a.tab, a.cell, coords, self.model_dir, coords, "x")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj.initialize()
        data = obj.data
        if ctx.names:
            arr = np.asarray(data.transpose(*ctx.names).values, dtype=float)
        else:
            arr = np.asarray(float(data))
        return lw.Const(self.const(arr[None], "A"))

    # ------------------------------------------------------------------ expressions
    def expr(self, ast: Any, ctx: Ctx) -> Expr:
        """``ast`` lowered and aligned to ``ctx``."""
        if isinstance(ast, bool | int | float | np.integer | np.floating):
            return lw.Num(float(ast))
        if isinstance(ast, np.ndarray):
            arr = np.asarray(ast, dtype=float).reshape(ctx.shape)
            return lw.Const(self.const(arr[None], "A"))
        name = type(ast).__name__
        if name in BY_STRUCTURE:
            spec = BY_STRUCTURE[name]
            return self._stateful(
                spec.name,
                ctx,
                non_negative=bool(getattr(ast, "non_negative", False)),
                **{f: getattr(ast, f) for f in spec.fields},
            )
        method = getattr(self, "_x_" + name, None)
        if method is None:
            raise self.unsupported(name)
        out: Expr = method(ast, ctx)
        return out

    def _x_ArithmeticStructure(self, ast: ae.ArithmeticStructure, ctx: Ctx) -> Expr:
        args = tuple(self.expr(a, ctx) for a in ast.arguments)
        ops = tuple(ast.operators)
        if len(args) == 1:
            op = ops[0]
            if op == "+":
                return args[0]
            if op != "negative":
                raise self.unsupported(f"the unary operator {op!r}")
            return lw.Arith(ops, args)
        for op in ops:
            if op not in BINARY:
                raise self.unsupported(f"the operator {op!r}")
        return lw.Arith(ops, args)

    def _x_LogicStructure(self, ast: ae.LogicStructure, ctx: Ctx) -> Expr:
        args = tuple(self.expr(a, ctx) for a in ast.arguments)
        ops = tuple(ast.operators)
        if len(args) == 1:
            if ops[0] != ":NOT:":
                raise self.unsupported(f"the logical operator {ops[0]!r}")
            return lw.Logic(ops, args)
        for op in ops:
            if op not in (":AND:", ":OR:") and op not in BINARY:
                raise self.unsupported(f"the logical operator {op!r}")
        return lw.Logic(ops, args)

    def _mark_dynamic(self) -> None:
        if self._col:
            self._col[-1].dynamic = True

    def _add_ref(self, i: int) -> None:
        if self._col:
            self._col[-1].refs.add(i)

    def _x_ReferenceStructure(self, ast: ae.ReferenceStructure, ctx: Ctx) -> Expr:
        ref = ast.reference
        subs = list(ast.subscripts.subscripts) if ast.subscripts else []
        if ref == "time":
            self._mark_dynamic()
            return lw.Time()
        if ref in CONTROL_NAMES:
            return lw.Control(ref)
        if self._scope is not None:
            if ref not in self._scope:
                raise self.unsupported(f"the reference '{ref}' inside a macro")
            i = self._scope[ref]
            self._add_ref(i)
            return self._ref_src(i, subs, ctx)
        if ref in self.by_clean:
            i = self.by_clean[ref]
            el = self.elements[i]
            if el.kind == "lookup" and el.lookup_tables is not None:
                raise self.unsupported(f"a lookup ({el.name}) used without an argument")
            self._add_ref(i)
            return self._ref_src(i, subs, ctx)
        if ref in self.ns.cleanspace:
            # declared after this point in the abstract model (forward reference)
            clean = self.ns.cleanspace[ref]
            for el in self.elements:
                if el.py_name == clean:
                    self._add_ref(el.index)
                    return self._ref_src(el.index, subs, ctx)
            if clean in CONTROL_NAMES:
                return lw.Control(clean)
        if ref in self._subnum:
            rng, values = self._subnum[ref]
            if rng is None:
                return lw.Num(values[0])
            arr = np.asarray(values)
            name = self._find_ctx_dim(rng, ctx)
            if name is None:
                raise self.unsupported(f"the subscript range {rng} used as a value here")
            p = ctx.names.index(name)
            idx = [self.subs[rng].index(c) for c in ctx.coords[p]]
            shape = [1] * len(ctx.names)
            shape[p] = len(idx)
            return lw.Const(self.const(arr[idx].reshape([1, *shape]), "A"))
        raise self.unsupported(f"the unknown reference '{ref}'")

    def _ref_src(self, i: int, subs: list[str], ctx: Ctx) -> lw.Ref:
        el = self.elements[i]
        entries, idx = self._index(el.dims, el.coords, subs, ctx)
        if idx.startswith("[IX"):
            # gathered with index arrays: the value must have its full shape
            self.fancy.add(i)
        return lw.Ref(i, entries, idx)

    def _find_ctx_dim(self, rng: str, ctx: Ctx) -> str | None:
        if rng in ctx.names:
            return rng
        if rng + "!" in ctx.names:
            return rng + "!"
        rset = set(self.subs.get(rng, []))
        for n, c in zip(ctx.names, ctx.coords, strict=True):
            if set(c) <= rset:
                return n
        return None

    def _index(
        self,
        dims: tuple[str, ...],
        coords: tuple[tuple[str, ...], ...],
        subs: list[str],
        ctx: Ctx,
    ) -> tuple[lw.Entries, str]:
        """How a variable's array ``(B, *dims)`` aligns to ``ctx``: entries and NumPy suffix."""
        n = len(ctx.names)
        if not dims:
            return (), ("" if n == 0 else "[:" + ", None" * n + "]")
        entries = self.entries(dims, coords, subs, ctx)
        frozen = tuple((ax, tuple(pos)) for ax, pos in entries)
        return frozen, self._index_src(entries, coords, n)

    def entries(
        self,
        dims: tuple[str, ...],
        coords: tuple[tuple[str, ...], ...],
        subs: list[str],
        ctx: Ctx,
    ) -> list[tuple[int | None, list[int]]]:
        """Per variable axis: the context axis it follows (or None) and the positions read."""
        if not subs:
            subs = list(dims)
        if len(subs) != len(dims):
            raise self.unsupported("a reference with the wrong number of subscripts")
        entries: list[tuple[int | None, list[int]]] = []
        used: set[int] = set()
        for k, sub in enumerate(subs):
            vco = list(coords[k])
            if sub in self.all_elements and sub not in self.subs:
                if sub not in vco:
                    raise self.unsupported(f"the subscript element {sub} outside the range")
                entries.append((None, [vco.index(sub)]))
                continue
            p, cc = self._match_dim(sub, ctx, used, vco)
            used.add(p)
            try:
                entries.append((p, [vco.index(c) for c in cc]))
            except ValueError as exc:
                raise self.unsupported(f"a reference with subscript {sub}") from exc
        return entries

    def _index_src(
        self,
        entries: list[tuple[int | None, list[int]]],
        coords: tuple[tuple[str, ...], ...],
        n: int,
    ) -> str:
        axes = [p for p, _ in entries if p is not None]
        simple = len(axes) == len(entries) and all(
            pos == list(range(len(coords[k]))) for k, (_, pos) in enumerate(entries)
        )
        if simple and axes == sorted(axes) and len(set(axes)) == len(axes):
            parts = [":" if q in axes else "None" for q in range(n)]
            if all(x == ":" for x in parts):
                return ""
            return "[:, " + ", ".join(parts) + "]"
        index: list[Any] = [slice(None)]
        for ax, pos in entries:
            shape = [1] * n
            if ax is None:
                index.append(np.full(shape, pos[0], dtype=np.intp))
            else:
                shape[ax] = len(pos)
                index.append(np.asarray(pos, dtype=np.intp).reshape(shape))
        key = ("IX", tuple((ax, tuple(pos)) for ax, pos in entries), n)
        return "[" + self.const(tuple(index), "IX", key) + "]"

    def _match_dim(
        self, sub: str, ctx: Ctx, used: set[int], vco: list[str]
    ) -> tuple[int, tuple[str, ...]]:
        """Context axis matched by a reference subscript, and the coords it reads."""
        if sub in ctx.names:
            p = ctx.names.index(sub)
            return p, ctx.coords[p]
        base = sub.rstrip("!")
        # subscript mapping: positional correspondence between ranges
        for mapped in self.sm.mapping.get(base, []) or []:
            if isinstance(mapped, str) and mapped in ctx.names:
                p = ctx.names.index(mapped)
                full_m = self.subs[mapped]
                src = self.subs[base]
                if len(full_m) != len(src):
                    raise self.unsupported(f"a subscript mapping of {base} to {mapped}")
                return p, tuple(src[full_m.index(c)] for c in ctx.coords[p])
        for other, maps in self.sm.mapping.items():
            if base in (maps or []) and other in ctx.names:
                p = ctx.names.index(other)
                full_o = self.subs[other]
                src = self.subs[base]
                if len(full_o) != len(src):
                    raise self.unsupported(f"a subscript mapping of {other} to {base}")
                return p, tuple(src[full_o.index(c)] for c in ctx.coords[p])
        # same family (subrange or parent range, or a single element of it)
        rset = set(self.subs.get(base, []))
        for p, (n, c) in enumerate(zip(ctx.names, ctx.coords, strict=True)):
            if p in used or n.endswith("!"):
                continue
            if set(c) <= rset and set(c) <= set(vco):
                return p, c
        # mapping onto a range whose subrange is the context (`x[r1sub] = y[r2]`, r2 -> r1):
        # the positional correspondence of the whole ranges, read at the context's cells
        for mapped in self.sm.mapping.get(base, []) or []:
            if not isinstance(mapped, str) or mapped not in self.subs:
                continue
            full_m, src = self.subs[mapped], self.subs[base]
            for p, (n, c) in enumerate(zip(ctx.names, ctx.coords, strict=True)):
                if p in used or n.endswith("!") or not set(c) <= set(full_m):
                    continue
                if len(full_m) != len(src):
                    raise self.unsupported(f"a subscript mapping of {base} to {mapped}")
                return p, tuple(src[full_m.index(x)] for x in c)
        raise self.unsupported(f"the subscript range {sub} in a reference")

    # ------------------------------------------------------------------ calls
    def _x_CallStructure(self, ast: ae.CallStructure, ctx: Ctx) -> Expr:
        fname = ast.function.reference
        args = list(ast.arguments)
        if fname in self.macros:
            return self._macro_call(fname, args, ctx)
        if fname in self.by_clean and self.elements[self.by_clean[fname]].kind == "lookup":
            return self._lookup_call(self.by_clean[fname], ast, ctx)
        if fname in self.by_clean:
            el = self.elements[self.by_clean[fname]]
            if not el.components and el.lookup_tables is None:
                # lookup element not compiled yet: compile it now (declared later)
                ael = self.abstract[self._clean(el.name)]
                saved, saved_ctx = self._element, self._macro_ctx
                self._element, self._macro_ctx = el, None
                if all(isinstance(c.ast, ae.LookupsStructure) for c in ael.components):
                    self._compile_lookup(el, ael.components)
                elif any(isinstance(c.ast, ae.GetLookupsStructure) for c in ael.components):
                    self._compile_ext_lookup(el, ael.components)
                self._element, self._macro_ctx = saved, saved_ctx
                if el.kind == "lookup":
                    return self._lookup_call(el.index, ast, ctx)
            raise self.unsupported(f"a call to the variable '{el.name}'")
        if fname in FUNCTIONS:
            if len(args) != FUNCTIONS[fname].arity:
                raise self.unsupported(f"{fname.upper()} with {len(args)} arguments")
            return lw.Call(fname, tuple(self.expr(a, ctx) for a in args))
        if fname == "pi":
            return lw.Call("pi", ())
        if fname in REDUCERS:
            return self._reduce(fname, args[0], ctx, xmile=fname.endswith("_xmile"))
        if fname == "elmcount":
            a = args[0]
            name = a.reference if isinstance(a, ae.ReferenceStructure) else str(a)
            for rng, elems in self.subs.items():
                if rng.replace(" ", "_").lower() == name.replace(" ", "_").lower():
                    return lw.Num(len(elems))
            raise self.unsupported(f"ELMCOUNT of '{name}'")
        if fname in TIME_FUNCTIONS:
            return self._time_function(fname, args, ctx)
        if fname in RANDOM_FUNCTIONS:
            return self._random(fname, args, ctx)
        if fname == "active_initial":
            roles = KINDS["active_initial"].fields
            return self._stateful("active_initial", ctx, **dict(zip(roles, args, strict=True)))
        if fname == "vector_select":
            return self._vector_select(args, ctx)
        if fname in ("vector_sort_order", "vector_rank", "vector_reorder", "invert_matrix"):
            if not ctx.names or (fname == "invert_matrix" and len(ctx.names) < 2):
                raise self.unsupported(f"{fname.upper().replace('_', ' ')} without subscripts")
            full = self.const(ctx.shape, "CS")
            if fname == "invert_matrix":
                args = args[:1]  # the second argument (the size) is implied by the dims
            slots = ", ".join(f"{{{k}}}" for k in range(len(args)))
            return lw.NumpyOnly(
                fname,
                f"_rt.{fname}({slots}, shape=(_B,) + {full})",
                tuple(self.expr(a, ctx) for a in args),
            )
        if fname == "get_time_value":
            # only the simulation-time form; the others read the computer's clock
            if (
                len(args) == 3
                and isinstance(args[0], int | float)
                and isinstance(args[2], int | float)
                and float(args[0]) == 0.0
                and float(args[2]) == 0.0
            ):
                self._mark_dynamic()
                return lw.Arith(("+",), (lw.Time(), self.expr(args[1], ctx)))
            raise self.unsupported("GET TIME VALUE other than (0, offset, 0)")
        from pysd.builders.python.python_functions import functionspace

        # e.g. SINTEG, DELAY MATERIAL, DELAY CONVEYOR: PySD parses them as plain calls
        raise self.unsupported(
            f"the function {fname.upper().replace('_', ' ')}", pysd_runs=fname in functionspace
        )

    def _macro_call(self, fname: str, args: list[Any], ctx: Ctx) -> Expr:
        """Inline a macro: fresh hidden elements for its parameters and equations."""
        sec = self.macros[fname]
        if len(args) != len(sec.params):
            raise self.unsupported(f"macro {fname} called with {len(args)} arguments")
        if ctx.names:
            # A subscripted call (``y[g] = MACRO(z[g], k)``) applies the macro to every
            # cell of the context: its hidden elements take the caller's subscripts, and
            # its scalar equations are lowered in that context (one state per cell).
            for mel in sec.elements:
                if any(c.subscripts[0] for c in mel.components):
                    raise self.unsupported(
                        f"the subscripted call of macro {fname}, whose equations have subscripts"
                    )
        dims, coords = ctx.names, ctx.coords
        self._n_calls += 1
        tag = f"_macro{self._n_calls}_{fname}"
        scope: dict[str, int] = {}
        saved_element = self._element
        for param, arg in zip(sec.params, args, strict=True):
            # the argument is evaluated in the caller's scope, as its own hidden element
            el = self._hidden(f"{tag}_{param}", dims, coords)
            el.scope = self._scope
            col = Collector()
            self._col.append(col)
            self._element = el
            try:
                expr = self.expr(arg, ctx)
            finally:
                self._col.pop()
                self._element = saved_element
            el.components.append(lw.Component(ctx, expr, None, True))
            el.refs = col.refs
            el.uses_time = col.dynamic
            scope[self._clean(param)] = el.index
        pending = []
        for ael in sec.elements:
            el = self._hidden(f"{tag}_{self._clean(ael.name)}", dims, coords)
            el.scope = scope
            scope[self._clean(ael.name)] = el.index
            pending.append((el, ael))
        saved_scope, saved_cols, saved_ctx = self._scope, self._col, self._macro_ctx
        self._scope, self._col, self._macro_ctx = scope, [], (ctx if ctx.names else None)
        try:
            for el, ael in pending:
                self._element = el
                self._compile_element(el, ael)
        finally:
            self._scope, self._col, self._element = saved_scope, saved_cols, saved_element
            self._macro_ctx = saved_ctx
        ret = scope.get(self._clean(fname))
        if ret is None:
            raise self.unsupported(f"macro {fname} without an output named like the macro")
        self._add_ref(ret)
        return self._ref_src(ret, [], ctx)

    def _hidden(
        self,
        py_name: str,
        dims: tuple[str, ...],
        coords: tuple[tuple[str, ...], ...] = (),
    ) -> Element:
        el = Element(
            index=len(self.elements),
            name=py_name,
            py_name=py_name,
            dims=dims,
            coords=coords,
            units="",
            doc="",
            limits=(None, None),
            hidden=True,
        )
        self.elements.append(el)
        return el

    def _bang_dims(self, ast: Any, out: list[str], ranges: bool = False) -> list[str]:
        if isinstance(ast, ae.ReferenceStructure):
            if ast.subscripts:
                for s in ast.subscripts.subscripts:
                    if (s.endswith("!") or (ranges and s in self.subs)) and s not in out:
                        out.append(s)
        elif hasattr(ast, "__dataclass_fields__"):
            for f in ast.__dataclass_fields__:
                self._bang_dims(getattr(ast, f), out, ranges)
        elif isinstance(ast, list | tuple):
            for a in ast:
                self._bang_dims(a, out, ranges)
        return out

    def _extend_bang(self, ast: Any, ctx: Ctx, ranges: bool = False) -> tuple[Ctx, tuple[int, ...]]:
        bangs = [b for b in self._bang_dims(ast, [], ranges) if b not in ctx.names]
        inner = ctx
        for b in bangs:
            inner = inner.extend(b, self.subs[b.rstrip("!")])
        axes = tuple(range(1 + len(ctx.names), 1 + len(inner.names)))
        return inner, axes

    def _reduce(self, fn: str, arg: Any, ctx: Ctx, xmile: bool = False) -> Expr:
        inner, axes = self._extend_bang(arg, ctx, ranges=xmile)
        expr = self.expr(arg, inner)
        if not axes:
            return expr
        return lw.Reduce(fn, expr, inner, axes, self.const(inner.shape, "CS"))

    def _vector_select(self, args: list[Any], ctx: Ctx) -> Expr:
        inner, axes = self._extend_bang(args[0:2], ctx)
        sel = self.expr(args[0], inner)
        exp = self.expr(args[1], inner)
        rest = [self.expr(a, ctx) for a in args[2:4]]
        return lw.NumpyOnly(
            "vector_select",
            "_rt.vector_select({0}, {1}, " + repr(axes) + ", {2}, {3})",
            (sel, exp, *rest),
        )

    def _time_function(self, fname: str, args: list[Any], ctx: Ctx) -> Expr:
        col = Collector()
        self._col.append(col)
        exprs = tuple(self.expr(a, ctx) for a in args)
        self._col.pop()
        if self._col:
            self._col[-1].refs |= col.refs
        self._mark_dynamic()
        self.breakpoints.append(lw.Breakpoint(fname, exprs, frozenset(col.refs), col.dynamic))
        return lw.TimeFunction(fname, exprs)

    def _random(self, fname: str, args: list[Any], ctx: Ctx) -> Expr:
        spec = RANDOM_FUNCTIONS[fname]
        without_seed = spec.roles[-1:] == ("seed",) and len(args) == len(spec.roles) - 1
        if len(args) != len(spec.roles) and not without_seed:
            raise self.unsupported(f"{spec.label} with {len(args)} arguments")
        given = dict(zip(spec.roles[: len(args)], args, strict=True))
        defaults = dict(spec.defaults)
        params = tuple(
            self.expr(given[p], ctx) if p in given else lw.Num(defaults[p])
            for p in RANDOM_PARAMS[spec.dist]
        )
        # A draw changes every time step: never a constant, even when nothing else in
        # the equation does (``RANDOM NORMAL(...) * 0`` included).
        self._mark_dynamic()
        offset = self.random_cells
        self.random_cells += int(np.prod(ctx.shape, dtype=int))
        el = self._element.name if self._element is not None else "?"
        self.randoms.append(f"{spec.label} in '{el}'")
        shape = self.const(ctx.shape, "CS", key=("random shape", ctx.shape))
        return lw.Random(fname, spec.dist, params, offset, shape)

    def _lookup_call(self, i: int, ast: ae.CallStructure, ctx: Ctx) -> Expr:
        el = self.elements[i]
        subs = list(ast.function.subscripts.subscripts) if ast.function.subscripts else []
        entries, idx = self._index(el.dims, el.coords, subs, ctx)
        x = self.expr(ast.arguments[0], ctx)
        return lw.Lookup(i, entries, idx, x, el.lookup_mode)

    def _x_InlineLookupsStructure(self, ast: ae.InlineLookupsStructure, ctx: Ctx) -> Expr:
        x = self.expr(ast.argument, ctx)
        xs = self.const(np.asarray(ast.lookups.x, dtype=float), "A")
        ys = self.const(np.asarray(ast.lookups.y, dtype=float), "A")
        return lw.InlineLookup(xs, ys, x)

    def _x_AllocateByPriorityStructure(self, ast: ae.AllocateByPriorityStructure, ctx: Ctx) -> Expr:
        # PySD allocates along the last subscript of the request (the component's last)
        if not ctx.names:
            raise self.unsupported("ALLOCATE BY PRIORITY without subscripts")
        outer = Ctx(ctx.names[:-1], ctx.coords[:-1])
        req = self.expr(ast.request, ctx)
        pri = self.expr(ast.priority, ctx)
        width = self.expr(ast.width, outer)
        supply = self.expr(ast.supply, outer)
        full = self.const(ctx.shape, "CS")
        return lw.NumpyOnly(
            "allocate_by_priority",
            "_rt.allocate_by_priority({0}, {1}, {2}, {3}, shape=(_B,) + " + full + ")",
            (req, pri, width, supply),
        )

    def _x_AllocateAvailableStructure(self, ast: ae.AllocateAvailableStructure, ctx: Ctx) -> Expr:
        # PySD allocates along the request's last subscript; the priority profile's
        # last subscript is its own (pprofile) dim, whatever the equation calls it
        if not ctx.names or not isinstance(ast.pp, ae.ReferenceStructure):
            raise self.unsupported("ALLOCATE AVAILABLE without subscripts")
        pp_el = self.elements[self.by_clean[ast.pp.reference]]
        subs = list(ast.pp.subscripts.subscripts) if ast.pp.subscripts else []
        profile_dim = pp_el.dims[-1]
        pp_ref = ae.ReferenceStructure(
            ast.pp.reference, ae.SubscriptsReferenceStructure([*subs[:-1], profile_dim])
        )
        inner = ctx.extend(profile_dim, list(pp_el.coords[-1]))
        outer = Ctx(ctx.names[:-1], ctx.coords[:-1])
        req = self.expr(ast.request, ctx)
        pp = self.expr(pp_ref, inner)
        avail = self.expr(ast.avail, outer)
        full = self.const(ctx.shape, "CS")
        n_pp = len(pp_el.coords[-1])
        return lw.NumpyOnly(
            "allocate_available",
            "_rt.allocate_available({0}, {1}, {2}, shape=(_B,) + " + full + f", n_profile={n_pp})",
            (req, pp, avail),
        )

    def _x_GameStructure(self, ast: ae.GameStructure, ctx: Ctx) -> Expr:
        return self.expr(ast.expression, ctx)

    # ------------------------------------------------------------------ statefuls
    def _stateful(self, kind: str, ctx: Ctx, non_negative: bool = False, **args: Any) -> Expr:
        assert self._element is not None
        exprs: dict[str, Expr] = {}
        refs: dict[str, set[int]] = {}
        for role, a in args.items():
            col = Collector()
            self._col.append(col)
            exprs[role] = self.expr(a, ctx)
            self._col.pop()
            refs[role] = col.refs
        j = len(self.statefuls)

        def union(roles: tuple[str, ...]) -> frozenset[int]:
            out: set[int] = set()
            for r in roles:
                out |= refs.get(r, set())
            return frozenset(out)

        spec = KINDS[kind]
        sf = lw.Stateful(
            index=j,
            kind=kind,
            element=self._element.index,
            ctx=ctx,
            args=exprs,
            init_refs=union(spec.init_roles),
            dyn_refs=union(spec.dyn_roles),
            ddt_refs=union(spec.ddt_roles),
            non_negative=non_negative,
            label=self._element.name,
        )
        self.statefuls.append(sf)
        self._element.statefuls.append(j)
        if spec.time_dependent:
            self._mark_dynamic()
        return lw.StatefulValue(j)


def build_program(am: AbstractModel, model_dir: pathlib.Path) -> Program:
    """Lower an abstract model into a :class:`~sd_model.compiler._lowered.Program`."""
    return _Compiler(am, model_dir).compile()
