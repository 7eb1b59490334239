"""The rules of :mod:`sd_model.units` and the checker that applies them to a model.

One table per concept: :data:`FUNCTIONS` (built-in functions) and :data:`STATEFUL`
(PySD's stateful structures) say what units each argument needs and what the result
has; :class:`Checker` walks PySD's abstract model with them.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from sd_model.units import (
    DIMENSIONLESS,
    MAX_EXPONENT,
    MAX_NESTING,
    UNKNOWN_PREFIX,
    Severity,
    Units,
    equivalence_map,
    exact_fraction,
    parse_units,
    read_equivalents,
)

# ---------------------------------------------------------------------------- the rules
Dim = Units | None  # None: a number written in an equation, whose units fit any context

# Built-in functions: the role of each argument and the units of the result. Roles: "x"
# (every "x" argument has the same units, the result's basis), "a"/"b" (XIDZ/ZIDZ's
# numerator and denominator), "a/b" (XIDZ's fallback), "time" (the model's time unit),
# "dmnl" (dimensionless), "free" (anything). Arguments beyond the roles are free.
FUNCTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "abs": (("x",), "x"),
    "integer": (("x",), "x"),
    "quantum": (("x", "x"), "x"),
    "modulo": (("x", "x"), "x"),
    "min": (("x", "x"), "x"),
    "max": (("x", "x"), "x"),
    "sum": (("x",), "x"),
    "vmin": (("x",), "x"),
    "vmax": (("x",), "x"),
    "vmin_xmile": (("x",), "x"),
    "vmax_xmile": (("x",), "x"),
    "prod": (("free",), "any"),
    "exp": (("dmnl",), "dmnl"),
    "ln": (("dmnl",), "dmnl"),
    "log": (("dmnl", "dmnl"), "dmnl"),
    "sin": (("dmnl",), "dmnl"),
    "cos": (("dmnl",), "dmnl"),
    "tan": (("dmnl",), "dmnl"),
    "sinh": (("dmnl",), "dmnl"),
    "cosh": (("dmnl",), "dmnl"),
    "tanh": (("dmnl",), "dmnl"),
    "arcsin": (("dmnl",), "dmnl"),
    "arccos": (("dmnl",), "dmnl"),
    "arctan": (("dmnl",), "dmnl"),
    "sqrt": (("x",), "sqrt"),
    "power": (("x", "dmnl"), "power"),
    "if_then_else": (("free", "x", "x"), "x"),
    "active_initial": (("x", "x"), "x"),
    "step": (("x", "time"), "x"),
    "ramp": (("x", "time", "time"), "x*time"),
    "Xramp": (("x", "time"), "x*time"),
    "pulse": (("time", "time"), "dmnl"),
    "pulse_train": (("time", "time", "time", "time"), "dmnl"),
    "Xpulse": (("time", "x"), "x/time"),
    "Xpulse_train": (("time", "time", "x"), "x/time"),
    "xidz": (("a", "b", "a/b"), "a/b"),
    "zidz": (("a", "b"), "a/b"),
    "random_uniform": (("x", "x", "free"), "x"),
    "random_normal": (("x", "x", "x", "x", "free"), "x"),
    "random_exponential": (("x", "x", "x", "x", "free"), "x"),
    "vector_select": (("free", "x"), "x"),
    "vector_reorder": (("x", "free"), "x"),
    "invert_matrix": (("x",), "inverse"),
    # Counts, PI, random numbers and GET TIME VALUE (whose unit depends on its third
    # argument) behave like numbers written in the equation.
    "elmcount": ((), "any"),
    "pi": ((), "any"),
    "random_0_1": ((), "any"),
    "get_time_value": ((), "any"),
    "vector_sort_order": ((), "any"),
    "vector_rank": ((), "any"),
}

# Names Vensim users know the functions by, where they differ from PySD's.
_FUNCTION_NAMES = {
    "Xramp": "RAMP",
    "Xpulse": "PULSE",
    "Xpulse_train": "PULSE TRAIN",
    "vmin_xmile": "MIN",
    "vmax_xmile": "MAX",
    "integer": "INTEGER",
    "power": "POWER",
}

# PySD's stateful structures: (Vensim name, field giving the output's units or
# "per_time", {field: role}); role "output" means "the units of the output".
STATEFUL: dict[str, tuple[str, str, dict[str, str]]] = {
    "SmoothStructure": ("SMOOTH", "input", {"smooth_time": "time", "initial": "output"}),
    "SmoothNStructure": (
        "SMOOTH N",
        "input",
        {"smooth_time": "time", "initial": "output", "order": "free"},
    ),
    "DelayStructure": ("DELAY", "input", {"delay_time": "time", "initial": "output"}),
    "DelayNStructure": (
        "DELAY N",
        "input",
        {"delay_time": "time", "initial": "output", "order": "free"},
    ),
    "DelayFixedStructure": (
        "DELAY FIXED",
        "input",
        {"delay_time": "time", "initial": "output"},
    ),
    "TrendStructure": (
        "TREND",
        "per_time",
        {"input": "free", "average_time": "time", "initial_trend": "output"},
    ),
    "ForecastStructure": (
        "FORECAST",
        "input",
        {"average_time": "time", "horizon": "time", "initial_trend": "per_time"},
    ),
    "SampleIfTrueStructure": (
        "SAMPLE IF TRUE",
        "input",
        {"condition": "free", "initial": "output"},
    ),
    "InitialStructure": ("INITIAL", "initial", {}),
    "GameStructure": ("GAME", "expression", {}),
    "AllocateAvailableStructure": (
        "ALLOCATE AVAILABLE",
        "request",
        {"pp": "free", "avail": "output"},
    ),
    "AllocateByPriorityStructure": (
        "ALLOCATE BY PRIORITY",
        "request",
        {"priority": "free", "size": "free", "width": "free", "supply": "output"},
    ),
}
_LOOKUP_STRUCTURES = frozenset({"LookupsStructure", "GetLookupsStructure"})
_DATA_STRUCTURES = frozenset({"DataStructure", "GetDataStructure", "GetConstantsStructure"})
_CONTROL = ("time_step", "final_time", "initial_time", "saveper")
_LOGICAL = frozenset({":and:", ":or:", ":not:", "and", "or", "not"})


def _function_name(name: str) -> str:
    return _FUNCTION_NAMES.get(name, name.replace("_", " ").upper())


# ---------------------------------------------------------------------------- the checker
@dataclass
class _Var:
    name: str
    clean: str
    units: Units  # declared, or a stand-in symbol until inferred
    declared: bool
    kind: Literal["stock", "lookup", "data", "control", "auxiliary"]
    components: list[Any]


@dataclass(frozen=True)
class Problem:
    variable: str
    severity: Severity
    expected: str
    computed: str
    message: str
    hint: str


def _clean(name: str) -> str:
    # PySD's reference key (sd_model.compiler._build uses the same): ASTs reference it.
    return name.lower().replace(" ", "_")


class Checker:
    """Walks every equation; infers undeclared units (a fixed point), then reports."""

    def __init__(self, am: Any, path: Path) -> None:
        self.path = path
        self.equivalents = equivalence_map(read_equivalents(path))
        self.spellings: dict[str, str] = {}
        self.problems: list[Problem] = []
        self.solutions: dict[str, Units] = {}
        self.mode: Literal["own", "all", "check"] = "own"
        self.changed = False
        self.current: _Var | None = None
        self.vars: dict[str, _Var] = {}
        for el in am.sections[0].elements:
            self._add(el)
        declared = [self.vars[c] for c in _CONTROL if c in self.vars and self.vars[c].declared]
        if declared:
            self.time = declared[0].units
        else:
            self.time = Units({UNKNOWN_PREFIX + "TIME": 1})
            self.spellings[UNKNOWN_PREFIX + "TIME"] = "TIME"
        for c in _CONTROL:
            var = self.vars.get(c)
            if var is not None and not var.declared:
                var.units = self.time

    def _add(self, el: Any) -> None:
        clean = _clean(str(el.name))
        comps = list(el.components)
        kinds = {type(c.ast).__name__ for c in comps}
        kind: Literal["stock", "lookup", "data", "control", "auxiliary"]
        if kinds & _LOOKUP_STRUCTURES:
            kind = "lookup"
        elif "IntegStructure" in kinds:
            kind = "stock"
        elif kinds & _DATA_STRUCTURES:
            kind = "data"
        elif clean in _CONTROL:
            kind = "control"
        else:
            kind = "auxiliary"
        raw = str(el.units or "").strip()
        units: Units | None = None
        if raw:
            try:
                units = parse_units(raw, self.equivalents, spellings=self.spellings)
            except ValueError as exc:
                self.problems.append(
                    Problem(
                        str(el.name),
                        "warning",
                        "",
                        "",
                        f"Cannot read the units {raw!r} ({exc}); treated as not declared",
                        "Write units as names joined by *, / and ^, with parentheses, "
                        "e.g. Person/Year.",
                    )
                )
        symbol = UNKNOWN_PREFIX + clean
        self.spellings.setdefault(symbol, str(el.name))
        self.vars[clean] = _Var(
            str(el.name),
            clean,
            units if units is not None else Units({symbol: 1}),
            units is not None,
            kind,
            comps,
        )

    # ------------------------------------------------------------------ constraints
    def resolve(self, dim: Dim) -> Dim:
        """``dim`` with every inferred stand-in replaced by its units."""
        if dim is None:
            return None
        out = DIMENSIONLESS
        for name, exp in dim.items():
            out = out * (
                self.solutions[name] ** exp if name in self.solutions else Units({name: exp})
            )
        return out

    def show(self, dim: Dim) -> str:
        resolved = self.resolve(dim)
        return "any units" if resolved is None else resolved.format(self.spellings)

    def require(
        self,
        computed: Dim,
        expected: Dim,
        message: str,
        hint: str | None = None,
        *,
        variable: str | None = None,
        own: bool = False,
    ) -> bool:
        """``computed`` must equal ``expected``: infer a stand-in, or report a mismatch.

        ``hint`` None derives one from the two units; ``variable`` is the row's variable
        (default: the one being checked); ``own`` marks the equation of the variable being
        checked, which alone may fix its units in the first, forward phase. Returns False
        when the two units are known to differ.
        """
        rc, re_ = self.resolve(computed), self.resolve(expected)
        if rc is None or re_ is None:
            return True
        ratio = rc / re_
        unknown = [name for name in ratio if name.startswith(UNKNOWN_PREFIX)]
        if not unknown:
            if not ratio.dimensionless and self.mode == "check":
                name = variable or self.here()
                hint = self._diagnose(re_, rc) or hint or self._declare_hint(name, rc)
                # Vensim checks declared units only: a clash that rests on units inferred
                # for undeclared variables may be the inference's guess, so it warns.
                guessed = sorted(
                    {
                        self.spellings.get(n, n)
                        for dim in (computed, expected)
                        for n in dim or ()
                        if n in self.solutions
                    }
                )
                if guessed:
                    message += f" (with the units inferred for {', '.join(guessed)})"
                    hint += " Declaring the units of those variables makes this check exact."
                self.report(name, "warning" if guessed else "error", message, hint, re_, rc)
            return ratio.dimensionless
        if len(unknown) != 1 or self.mode == "check":
            return True
        symbol = unknown[0]
        if self.mode == "own" and not (
            own and self.current is not None and symbol == UNKNOWN_PREFIX + self.current.clean
        ):
            return True
        rest = Units((n, e) for n, e in ratio.items() if n != symbol)
        self.solutions[symbol] = rest ** (-1 / ratio[symbol])
        self.changed = True
        return True

    def report(
        self,
        variable: str,
        severity: Severity,
        message: str,
        hint: str,
        expected: Dim | str = "",
        computed: Dim | str = "",
    ) -> None:
        if self.mode != "check":
            return
        exp = expected if isinstance(expected, str) else self.show(expected)
        com = computed if isinstance(computed, str) else self.show(computed)
        problem = Problem(variable, severity, exp, com, message, hint)
        if problem not in self.problems:
            self.problems.append(problem)

    def here(self) -> str:
        return self.current.name if self.current is not None else "?"

    def same(self, a: Dim, b: Dim, message: str, hint: str) -> Dim:
        """``a`` and ``b`` must match (``+``, MIN, branches...); the better known one.

        After a mismatch the result may have any units, so that one slip in an equation is
        reported once, not again at every operator above it.
        """
        if not self.require(b, a, message, hint):
            return None
        if a is None:
            return b
        if b is None:
            return a
        ra = self.resolve(a)
        return a if ra is not None and not any(n.startswith(UNKNOWN_PREFIX) for n in ra) else b

    # ------------------------------------------------------------------ expressions
    def eval(self, node: Any) -> Dim:
        """The units of an expression (None where it may take any units)."""
        kind = type(node).__name__
        if kind == "ArithmeticStructure":
            return self._arithmetic(node)
        if kind == "LogicStructure":
            return self._logic(node)
        if kind == "ReferenceStructure":
            if node.reference == "time":
                return self.time
            var = self.vars.get(node.reference)
            # Anything else is a subscript range or element used as a number.
            return var.units if var is not None else None
        if kind == "CallStructure":
            return self._call(node)
        if kind == "IntegStructure":
            return self._integ(node, None)
        if kind == "InlineLookupsStructure":
            # WITH LOOKUP and XMILE graphical functions: the table has the variable's units.
            self._lookup_argument(node.argument, self.here())
            return None
        if kind in STATEFUL:
            return self._stateful(node, *STATEFUL[kind])
        return None  # numbers, constant arrays, data and external files

    def _arithmetic(self, node: Any) -> Dim:
        ops, args = list(node.operators), list(node.arguments)
        if ops == ["negative"]:
            return self.eval(args[0])
        acc = self.eval(args[0])
        left = self.text(args[0])
        for op, arg in zip(ops, args[1:], strict=True):
            if op == "^":
                acc = self._power(acc, left, arg)
            else:
                dim = self.eval(arg)
                if op in ("+", "-"):
                    acc = self.same(
                        acc,
                        dim,
                        f"'{left}' and '{self.text(arg)}' are added or subtracted but have "
                        "different units",
                        "Terms of a sum need the same units: fix a term, or convert it with "
                        "a conversion constant.",
                    )
                elif acc is None or dim is None:
                    acc = None
                else:
                    acc = acc * dim if op == "*" else acc / dim
            left = f"{left} {op} {self.text(arg)}"
        return acc

    def _power(self, base: Dim, base_text: str, exponent: Any) -> Dim:
        self.require(
            self.eval(exponent),
            DIMENSIONLESS,
            f"The exponent '{self.text(exponent)}' of '^' is not dimensionless",
            "Only a dimensionless number can be an exponent: divide it by a reference value "
            "with the same units.",
        )
        resolved = self.resolve(base)
        if resolved is None:
            return None
        if resolved.dimensionless:
            return DIMENSIONLESS
        value = self.constant(exponent)
        if value is None:
            if not any(n.startswith(UNKNOWN_PREFIX) for n in resolved):
                self.report(
                    self.here(),
                    "error",
                    f"'{base_text}' has units and is raised to '{self.text(exponent)}', "
                    "which is not a constant",
                    f"Raise a dimensionless ratio instead, e.g. ('{base_text}' / a reference "
                    f"value in {self.show(resolved)}) ^ ...",
                    "a constant exponent",
                    resolved,
                )
            return None
        return base**value if base is not None else None

    def _logic(self, node: Any) -> Dim:
        ops, args = list(node.operators), list(node.arguments)
        if ops and ops[0].lower() in _LOGICAL:
            for arg in args:
                self.eval(arg)
            return DIMENSIONLESS
        acc = self.eval(args[0])
        for op, arg in zip(ops, args[1:], strict=True):
            dim = self.eval(arg)
            self.same(
                acc,
                dim,
                f"'{self.text(node)}' compares quantities with different units",
                "Both sides of a comparison ('" + op + "') need the same units.",
            )
            acc = dim
        return DIMENSIONLESS

    def _call(self, node: Any) -> Dim:
        fname = str(node.function.reference)
        args = list(node.arguments)
        var = self.vars.get(fname)
        if var is not None and var.kind == "lookup":
            for arg in args:
                self._lookup_argument(arg, var.name)
            return var.units
        spec = FUNCTIONS.get(fname)
        if spec is None:  # a macro (its body is not checked): check its arguments only
            for arg in args:
                self.eval(arg)
            return None
        roles, result = spec
        shown = _function_name(fname)
        if result == "power" and len(args) == 2:
            return self._power(self.eval(args[0]), self.text(args[0]), args[1])
        x: Dim = None
        parts: dict[str, Dim] = {}
        for i, arg in enumerate(args):
            role = roles[i] if i < len(roles) else "free"
            dim = self.eval(arg)
            if role == "x":
                if i == roles.index("x"):
                    x = dim
                    continue
                what = (
                    "The two branches of IF THEN ELSE have"
                    if fname == "if_then_else"
                    else f"The arguments of {shown} have"
                )
                x = self.same(
                    x,
                    dim,
                    f"{what} different units ('{self.text(arg)}' is {self.show(dim)})",
                    f"{shown} chooses between or combines its arguments: give them the same units.",
                )
            elif role == "time":
                self._require_time(dim, f"argument {i + 1} ('{self.text(arg)}') of {shown}")
            elif role == "dmnl":
                self.require(
                    dim,
                    DIMENSIONLESS,
                    f"{shown} takes a dimensionless argument; '{self.text(arg)}' has units",
                    "Divide the argument by a reference value in the same units "
                    f"({self.show(dim)}).",
                )
            elif role in ("a", "b"):
                parts[role] = dim
            elif role == "a/b":
                a, b = parts.get("a"), parts.get("b")
                if a is not None and b is not None:
                    self.same(
                        a / b,
                        dim,
                        f"The fallback value '{self.text(arg)}' of {shown} does not have the "
                        "units of the quotient",
                        f"{shown}(a, b, x) returns a / b or x: x needs the units of a / b.",
                    )
        return self._function_result(result, x, parts.get("a"), parts.get("b"))

    def _function_result(self, result: str, x: Dim, a: Dim, b: Dim) -> Dim:
        """The units of a built-in function's value (see FUNCTIONS)."""
        if result == "dmnl":
            return DIMENSIONLESS
        if result == "a/b":
            return None if a is None or b is None else a / b
        if x is None or result == "any":
            return None
        if result == "x*time":
            return x * self.time
        if result == "x/time":
            return x / self.time
        if result == "sqrt":
            return x ** Fraction(1, 2)
        if result == "inverse":
            return x**-1
        return x

    def _require_time(self, dim: Dim, what: str) -> None:
        self.require(
            dim,
            self.time,
            f"The {what} must be a time, in the model's time unit",
            f"Times are in {self.show(self.time)} (the units of TIME STEP); give this "
            "argument those units.",
        )

    def _lookup_argument(self, node: Any, lookup: str) -> None:
        dim = self.resolve(self.eval(node))
        if self.mode != "check" or dim is None or dim.dimensionless:
            return
        if any(n.startswith(UNKNOWN_PREFIX) for n in dim):
            return
        self.report(
            self.here(),
            "warning",
            f"The argument '{self.text(node)}' of lookup '{lookup}' is not dimensionless",
            "Lookups are normally called with a ratio, e.g. f(price / reference price), so "
            "that the table's x axis is dimensionless.",
            DIMENSIONLESS,
            dim,
        )

    def _stateful(self, node: Any, shown: str, output: str, roles: dict[str, str]) -> Dim:
        result = (
            DIMENSIONLESS / self.time if output == "per_time" else self.eval(getattr(node, output))
        )
        for name, role in roles.items():
            arg = getattr(node, name, None)
            if arg is None:
                continue
            dim = self.eval(arg)
            what = name.replace("_", " ")
            if role == "time":
                self._require_time(dim, f"{what} of {shown}")
            elif role in ("output", "per_time"):
                want = result if role == "output" else DIMENSIONLESS / self.time
                self.same(
                    want,
                    dim,
                    f"The {what} of {shown} ('{self.text(arg)}') does not have the units "
                    + ("of its output" if role == "output" else "1/time"),
                    f"Give the {what} the units {self.show(want)}.",
                )
        return result

    def _integ(self, node: Any, stock: _Var | None) -> Dim:
        units = stock.units if stock is not None else self.eval(node.initial)
        name = stock.name if stock is not None else self.here()
        self.require(
            self.eval(node.initial),
            units,
            f"The initial value '{self.text(node.initial)}' of stock '{name}' does not have "
            "the stock's units",
            "A stock starts from a value in its own units.",
            own=stock is not None,
        )
        if units is None:
            return None
        rate = units / self.time
        for term in self._terms(node.flow):
            dim = self.eval(term)
            ref = (
                self.vars.get(term.reference)
                if type(term).__name__ == "ReferenceStructure"
                else None
            )
            if ref is not None and ref is not stock:
                owner = ref.name
                message = (
                    f"'{owner}' is a flow of stock '{name}', so it needs the stock's units "
                    "per time unit"
                )
            else:
                owner = name
                message = (
                    f"'{self.text(term)}' changes stock '{name}', so it needs the stock's "
                    "units per time unit"
                )
            self.require(
                dim,
                rate,
                message,
                f"A flow of '{name}' is in {self.show(rate)}: fix the units of "
                f"'{self.text(term)}' or its equation.",
                variable=owner,
            )
        return units

    def _terms(self, node: Any) -> list[Any]:
        """The terms of a stock's net flow (its inflows and outflows)."""
        if type(node).__name__ != "ArithmeticStructure":
            return [node]
        ops = list(node.operators)
        if ops == ["negative"]:
            return self._terms(node.arguments[0])
        if all(op in ("+", "-") for op in ops):
            return [t for arg in node.arguments for t in self._terms(arg)]
        return [node]

    # ------------------------------------------------------------------ helpers
    def constant(self, node: Any, depth: int = 0) -> Fraction | None:
        """The value of an expression of numbers and constants (an exponent), or None."""
        if depth > MAX_NESTING:
            return None
        if isinstance(node, numbers.Real) and not isinstance(node, bool):
            return exact_fraction(float(node))
        kind = type(node).__name__
        if kind == "ReferenceStructure":
            var = self.vars.get(node.reference)
            if var is None or len(var.components) != 1 or var.kind != "auxiliary":
                return None
            comp = var.components[0]
            if comp.subscripts and comp.subscripts[0]:
                return None
            return self.constant(comp.ast, depth + 1)
        if kind != "ArithmeticStructure":
            return None
        ops, args = list(node.operators), list(node.arguments)
        if ops == ["negative"]:
            value = self.constant(args[0], depth + 1)
            return None if value is None else -value
        acc = self.constant(args[0], depth + 1)
        for op, arg in zip(ops, args[1:], strict=True):
            value = self.constant(arg, depth + 1)
            if acc is None or value is None:
                return None
            if op == "+":
                acc += value
            elif op == "-":
                acc -= value
            elif op == "*":
                acc *= value
            elif op == "/" and value != 0:
                acc /= value
            elif op == "^" and value.denominator == 1 and abs(value) <= 64 and acc != 0:
                acc = acc ** int(value)
            else:
                return None
            # An exponent is a small number: refuse to grow huge ones (a hostile file).
            if max(acc.numerator.bit_length(), acc.denominator.bit_length()) > 256:
                return None
        if acc is not None and abs(acc) > MAX_EXPONENT:
            return None
        return acc

    def text(self, node: Any, depth: int = 0) -> str:
        """A short rendering of an expression for messages."""
        out = self._text(node, depth)
        return out if len(out) <= 80 else out[:77] + "..."

    def _text(self, node: Any, depth: int) -> str:
        if depth > 8:
            return "..."
        if isinstance(node, numbers.Real) and not isinstance(node, bool):
            return f"{float(node):g}"
        kind = type(node).__name__
        if kind == "ReferenceStructure":
            var = self.vars.get(node.reference)
            name = var.name if var is not None else str(node.reference).replace("_", " ")
            subs = getattr(node.subscripts, "subscripts", None)
            return f"{name}[{','.join(map(str, subs))}]" if subs else name
        if kind in ("ArithmeticStructure", "LogicStructure"):
            ops, args = list(node.operators), list(node.arguments)
            parts = [self._operand(a, depth) for a in args]
            if len(ops) == len(args):  # unary: negative, :NOT:
                op = "-" if ops[0] == "negative" else ops[0] + " "
                return op + parts[0]
            out = parts[0]
            for op, part in zip(ops, parts[1:], strict=True):
                out += f" {op} {part}"
            return out
        if kind == "CallStructure":
            fname = str(node.function.reference)
            var = self.vars.get(fname)
            shown = var.name if var is not None else _function_name(fname)
            return f"{shown}({', '.join(self._text(a, depth + 1) for a in node.arguments)})"
        if kind in STATEFUL:
            return f"{STATEFUL[kind][0]}(...)"
        return "..."

    def _operand(self, node: Any, depth: int) -> str:
        inner = self._text(node, depth + 1)
        nested = type(node).__name__ in ("ArithmeticStructure", "LogicStructure")
        return f"({inner})" if nested and list(node.operators) != ["negative"] else inner

    def _diagnose(self, expected: Units, computed: Units) -> str | None:
        """The likely slip when ``computed`` should have been ``expected``, if one shows."""
        ratio = computed / expected
        if not any(n.startswith(UNKNOWN_PREFIX) for n in self.time) and ratio in (
            self.time,
            DIMENSIONLESS / self.time,
        ):
            return (
                f"The two differ by the time unit ({self.show(self.time)}): a rate where a "
                "level is meant, or the reverse. Check for a missing or extra time constant."
            )
        over = [n for n, e in ratio.items() if e > 0]
        under = [n for n, e in ratio.items() if e < 0]
        for a in over:
            for b in under:
                if a.rstrip("s") == b.rstrip("s") or a.replace(" ", "") == b.replace(" ", ""):
                    return (
                        f"'{self.spellings.get(a, a)}' and '{self.spellings.get(b, b)}' are "
                        "different unit names: use one spelling, or declare them equivalent "
                        "(Vensim: Units Equiv; XMILE: a <model_units> alias)."
                    )
        return None

    def _declare_hint(self, variable: str, computed: Units) -> str:
        return (
            f"If the equation is right, declare '{variable}' in {self.show(computed)}; "
            "otherwise fix the equation (a missing conversion factor or variable?)."
        )

    # ------------------------------------------------------------------ driver
    def _pass(self) -> bool:
        self.changed = False
        for var in self.vars.values():
            self.current = var
            if var.kind in ("lookup", "data"):
                continue
            for comp in var.components:
                if type(comp.ast).__name__ == "IntegStructure":
                    self._integ(comp.ast, var)
                    continue
                rhs = self.eval(comp.ast)
                self.require(
                    rhs, var.units, "Right hand and left hand units do not match", own=True
                )
            if var.kind == "control" and var.declared:
                self.require(
                    var.units,
                    self.time,
                    f"'{var.name}' is a control variable and needs the model's time unit",
                    "INITIAL TIME, FINAL TIME, TIME STEP and SAVEPER share one time unit.",
                )
        self.current = None
        return self.changed

    def run(self) -> None:
        """Infer undeclared units to a fixed point, then check every equation."""
        # Each productive pass fixes at least one stand-in, so this ends.
        for _ in range(len(self.vars) + 2):
            self.mode = "own"  # a variable's own equation first: units flow forward
            while self._pass():
                pass
            self.mode = "all"
            if not self._pass():
                break
        self.mode = "check"
        self._pass()
        for var in self.vars.values():
            resolved = self.resolve(var.units)
            if not var.declared and resolved is not None:
                if any(n.startswith(UNKNOWN_PREFIX) for n in resolved):
                    self.report(
                        var.name,
                        "unknown",
                        "Units are not declared and the equations do not determine them",
                        "Declare them in the model file ('~ units ~' in Vensim, <units> in XMILE).",
                    )

    def inferred(self) -> dict[str, str]:
        out = {}
        for var in self.vars.values():
            resolved = self.resolve(var.units)
            if not var.declared and resolved is not None:
                if not any(n.startswith(UNKNOWN_PREFIX) for n in resolved):
                    out[var.name] = resolved.format(self.spellings)
        return out
