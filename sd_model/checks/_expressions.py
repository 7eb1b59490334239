"""Variables of a check: expressions in Vensim's notation, resolved against a model.

``SUM(Net Migration[Region!])``, ``Population[Almaty city] / Total Population``,
``MAX(ABS(x), 1)``: model names in any case (or PySD's names), ``name[Element]`` (an element,
a subrange, or the dim itself), numbers, ``+ - * / ^``, parentheses, the functions below,
and ``SUM``, ``PROD``, ``VMIN``, ``VMAX`` over the dims marked with ``!``, and ``Time``.
Names with operator characters are written in double quotes.

An expression is parsed and resolved when the check file is read, so an unknown name or
element is an error naming the file and line before anything runs; it is evaluated on the
batch's arrays (xarray: dims are matched by name) when the results are judged.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from sd_model.overrides import normalize_name

if TYPE_CHECKING:
    from sd_model.model import Model

Fail = Callable[[str], Exception]
# A parsed expression is a tree of tuples: ("num", value), ("var", name, subscripts) before
# resolution and ("var", py_name, selection) after it, ("neg", x), ("op", symbol, a, b),
# ("call", FUNCTION, [args]).
Node = tuple[Any, ...]
Dims = dict[str, tuple[str, ...]]  # dim (ending in "!" when marked) -> the elements covered

_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_NAME = re.compile(r"[^-+*/^(),\[\]\"]+")
REDUCERS = {"SUM": "sum", "PROD": "prod", "VMIN": "min", "VMAX": "max"}
UNARY: dict[str, Callable[[Any], Any]] = {
    "ABS": np.abs,
    "SQRT": np.sqrt,
    "EXP": np.exp,
    "LN": np.log,
}
BINARY: dict[str, Callable[[Any, Any], Any]] = {"MIN": np.minimum, "MAX": np.maximum}
FUNCTIONS = (*REDUCERS, *UNARY, *BINARY)


@dataclass(frozen=True)
class Expression:
    """A resolved expression: its text, its tree and the dims of its value (time aside)."""

    text: str
    node: Node
    dims: Dims

    def evaluate(self, data: Mapping[str, xr.DataArray]) -> xr.DataArray:
        """The value on ``data``: py_name -> DataArray with the model's dim names, and
        ``time`` -> the saved times (a DataArray on dim ``time``)."""
        return _evaluate(self.node, data)


def _tokens(text: str, fail: Fail) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "+-*/^(),":
            out.append(("op", c))
            i += 1
        elif c in '["':
            close = "]" if c == "[" else '"'
            j = text.find(close, i + 1)
            if j < 0:
                raise fail(f"{c!r} without {close!r} in {text!r}.")
            out.append(("subs" if c == "[" else "name", text[i + 1 : j]))
            i = j + 1
        elif (c.isdigit() or c == ".") and (m := _NUMBER.match(text, i)):
            out.append(("num", float(m.group())))
            i = m.end()
        elif m := _NAME.match(text, i):
            out.append(("name", m.group().strip()))
            i = m.end()
        else:
            raise fail(f"unexpected {c!r} in {text!r}.")
    return out


class _Parser:
    """Recursive descent with Vensim's precedence: ``+ -`` < ``* /`` < unary ``-`` < ``^``."""

    def __init__(self, text: str, fail: Fail) -> None:
        self.text, self.fail = text, fail
        self.toks = _tokens(text, fail)
        self.i = 0

    def parse(self) -> Node:
        if not self.toks:
            raise self.fail("the variable is empty.")
        node = self.sum()
        if self.i < len(self.toks):
            raise self.fail(f"unexpected {self.toks[self.i][1]!r} in {self.text!r}.")
        return node

    def take(self, *ops: str) -> str | None:
        if self.i < len(self.toks) and self.toks[self.i][0] == "op" and self.toks[self.i][1] in ops:
            self.i += 1
            return str(self.toks[self.i - 1][1])
        return None

    def sum(self) -> Node:
        node = self.product()
        while op := self.take("+", "-"):
            node = ("op", op, node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while op := self.take("*", "/"):
            node = ("op", op, node, self.unary())
        return node

    def unary(self) -> Node:
        if op := self.take("-", "+"):
            node = self.unary()
            return ("neg", node) if op == "-" else node
        node = self.atom()
        if self.take("^"):
            node = ("op", "^", node, self.unary())
        return node

    def atom(self) -> Node:
        if self.i >= len(self.toks):
            raise self.fail(f"{self.text!r} ends too early.")
        kind, value = self.toks[self.i]
        self.i += 1
        if kind == "num":
            return ("num", value)
        if (kind, value) == ("op", "("):
            node = self.sum()
            if not self.take(")"):
                raise self.fail(f"missing ')' in {self.text!r}.")
            return node
        if kind != "name":
            raise self.fail(f"unexpected {value!r} in {self.text!r}.")
        if self.take("("):
            return self.call(value)
        subs = None
        if self.i < len(self.toks) and self.toks[self.i][0] == "subs":
            subs = self.toks[self.i][1]
            self.i += 1
        return ("var", value, subs)

    def call(self, name: str) -> Node:
        fname = name.upper()
        if fname not in FUNCTIONS:
            raise self.fail(
                f"unknown function {name!r} in {self.text!r}; available: {', '.join(FUNCTIONS)}."
            )
        args = [self.sum()]
        while self.take(","):
            args.append(self.sum())
        if not self.take(")"):
            raise self.fail(f"missing ')' after the arguments of {fname} in {self.text!r}.")
        wanted = 2 if fname in BINARY else 1
        if len(args) != wanted:
            raise self.fail(f"{fname} takes {wanted} argument(s), got {len(args)}.")
        return ("call", fname, args)


class Names:
    """A model's variables and subscripts, to resolve expressions against.

    ``used`` collects the py_names the resolved expressions read (the batch's outputs).
    """

    def __init__(self, model: Model) -> None:
        self.coords = model.coords
        self.by_norm: dict[str, Any] = {}
        for v in model.variables:
            self.by_norm.setdefault(normalize_name(v.name), v)
            self.by_norm.setdefault(normalize_name(v.py_name), v)
        self.names = sorted({v.name for v in model.variables})
        self.used: set[str] = set()

    def parse(self, text: str, fail: Fail) -> Expression:
        """Parse and resolve ``text``; marked dims must be reduced by SUM, PROD, VMIN, VMAX."""
        node, dims = self._resolve(_Parser(text, fail).parse(), fail)
        if any(d.endswith("!") for d in dims):
            raise fail(f"{text!r}: a dim marked with '!' must be inside SUM, PROD, VMIN or VMAX.")
        return Expression(text.strip(), node, dims)

    def variable(self, name: str, fail: Fail) -> Any:
        v = self.by_norm.get(normalize_name(name))
        if v is None:
            lowered = {n.lower(): n for n in self.names}
            close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(repr(lowered[c]) for c in close)}?" if close else ""
            raise fail(f"unknown variable {name!r}.{hint} (sd-model info MODEL lists them.)")
        return v

    def elements(self, dim: str, sub: str, fail: Fail) -> list[str] | None:
        """What ``sub`` picks from ``dim``: [element], a subrange's elements, or None (all)."""
        wanted = normalize_name(sub)
        if wanted == normalize_name(dim):
            return None
        for e in self.coords[dim]:
            if normalize_name(e) == wanted:
                return [e]
        for rng, elements in self.coords.items():
            if normalize_name(rng) == wanted and set(elements) <= set(self.coords[dim]):
                return list(elements)
        close = difflib.get_close_matches(sub, self.coords[dim], n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise fail(
            f"{sub!r} is not an element of {dim!r}; elements: {', '.join(self.coords[dim])}.{hint}"
        )

    def _resolve(self, node: Node, fail: Fail) -> tuple[Node, Dims]:
        kind = node[0]
        if kind == "num":
            return node, {}
        if kind == "neg":
            inner, dims = self._resolve(node[1], fail)
            return ("neg", inner), dims
        if kind in ("op", "call"):
            parts = node[2:] if kind == "op" else node[2]
            resolved = [self._resolve(p, fail) for p in parts]
            dims = {}
            for _, d in resolved:
                dims = _merge_dims(dims, d, fail)
            args = [r for r, _ in resolved]
            if kind == "op":
                return ("op", node[1], *args), dims
            if node[1] in REDUCERS:
                if not any(d.endswith("!") for d in dims):
                    raise fail(
                        f"{node[1]} needs a dim marked with '!' to reduce over, as in "
                        f"{node[1]}(Population[Region!])."
                    )
                dims = {d: e for d, e in dims.items() if not d.endswith("!")}
            return ("call", node[1], args), dims
        return self._resolve_variable(node, fail)

    def _resolve_variable(self, node: Node, fail: Fail) -> tuple[Node, Dims]:
        if normalize_name(node[1]) == "time" and node[2] is None:
            return ("var", "time", ()), {}
        var = self.variable(node[1], fail)
        self.used.add(var.py_name)
        subs = [s.strip() for s in node[2].split(",")] if node[2] is not None else []
        if subs and len(subs) != len(var.dims):
            raise fail(
                f"{var.name!r} has dims {list(var.dims) or 'none'}; give {len(var.dims)} "
                "subscript(s) in brackets, or none for all elements."
            )
        selection = []
        dims: Dims = {}
        for i, dim in enumerate(var.dims):
            sub = subs[i] if subs else dim
            marked = sub.endswith("!")
            picked = self.elements(dim, sub.rstrip("!").strip(), fail)
            one = (
                picked is not None
                and len(picked) == 1
                and normalize_name(sub.rstrip("!")) == normalize_name(picked[0])
            )
            if marked and one:
                raise fail(f"{sub!r}: '!' marks a dim or subrange, not one element.")
            selection.append((dim, picked, marked, one))
            if not one:
                dims[dim + "!" if marked else dim] = tuple(picked or self.coords[dim])
        return ("var", var.py_name, tuple(selection)), dims


def _merge_dims(a: Dims, b: Dims, fail: Fail) -> Dims:
    out = dict(a)
    for dim, elements in b.items():
        if dim in out and out[dim] != elements:
            raise fail(
                f"two terms cover different elements of {dim.rstrip('!')!r}; an element-wise "
                "operation needs the same elements on both sides."
            )
        out[dim] = elements
    return out


def _evaluate(node: Node, data: Mapping[str, xr.DataArray]) -> xr.DataArray:
    kind = node[0]
    if kind == "num":
        return xr.DataArray(float(node[1]))
    if kind == "var":
        da = data[node[1]]
        for dim, picked, marked, one in node[2]:
            if picked is not None:
                da = da.sel({dim: picked[0] if one else picked})
            if marked:
                da = da.rename({dim: dim + "!"})
        return da
    if kind == "neg":
        return -_evaluate(node[1], data)
    args = [_evaluate(a, data) for a in (node[2:] if kind == "op" else node[2])]
    # Division by zero and the like give inf/NaN, which the predicates then fail on.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if kind == "op":
            a, b = args
            ops = {"+": a.__add__, "-": a.__sub__, "*": a.__mul__, "/": a.__truediv__}
            return ops[node[1]](b) if node[1] in ops else a**b
        if node[1] in REDUCERS:
            marked = [d for d in args[0].dims if str(d).endswith("!")]
            return getattr(args[0], REDUCERS[node[1]])(dim=marked, skipna=False)
        if node[1] in BINARY:
            return xr.apply_ufunc(BINARY[node[1]], *xr.broadcast(*args))
        return xr.apply_ufunc(UNARY[node[1]], args[0])
