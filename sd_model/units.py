"""Units checking, Vensim-style: every equation's units balanced, or named.

A model whose units do not balance is wrong in a way no test of its numbers reliably
finds. This module reads each variable's units (Vensim ``~ units ~``, XMILE ``<units>``)
into maps from base unit to exponent, walks every equation of PySD's abstract model from
the inside out, and reports each equation whose units do not balance, with the expected
and the computed units, the model file's line and a hint.

The rules are Vensim's (Vensim Reference Manual, "Units checking"; Simlin's units
inference for the treatment of literals and undeclared variables):

- ``+``, ``-``, MIN/MAX, the branches of IF THEN ELSE and both sides of a comparison need
  equal units; a comparison is dimensionless; ``*`` and ``/`` combine units; ``^`` needs a
  dimensionless exponent and, when its base has units, a constant one.
- Built-in functions have defined units: SMOOTH, DELAY and friends pass their input's
  through and take times; every flow of a stock has the stock's units per time unit;
  TIME and the control variables carry the time unit; a lookup returns its table's units
  and warns when its argument is not dimensionless; EXP, LN and the trigonometric
  functions take and return dimensionless numbers.
- Numbers written in equations take whatever units their context needs.
- ``Dmnl``, ``1``, ``fraction`` (and ``dimensionless``, ``unitless``) are dimensionless;
  names are compared without regard to case or spacing; unit equivalents declared in the
  model (Vensim's Units Equiv, XMILE ``<model_units>`` aliases) and the singular and plural
  of time units (``Year``/``Years``...) are the same unit.
- Variables without declared units get the units their equations determine (a fixed
  point over the model); those the equations leave open are reported as unknown.

>>> from sd_model.units import parse_units
>>> income = parse_units("thousand KZT/(Person*Years)")
>>> str(income), income == parse_units("thousand kzt / (year * person)")
('thousand kzt/(person*year)', True)
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DIMENSIONLESS", "Units", "UnitsReport", "check_units", "parse_units"]

Severity = Literal["error", "warning", "unknown"]
COLUMNS = ("variable", "file", "line", "severity", "expected", "computed", "message", "hint")

DIMENSIONLESS_NAMES = frozenset({"dmnl", "1", "fraction", "dimensionless", "unitless"})
# Vensim knows these time units in the singular and the plural without a declaration.
TIME_UNITS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")
# A model file is untrusted input: bound what a units string can ask of the parser.
MAX_UNITS_LENGTH = 1000
MAX_NESTING = 50
MAX_EXPONENT = 1000
# Prefix of a stand-in for units not yet known: "(" ends a name in a units string, so
# no parsed unit name can start with it.
UNKNOWN_PREFIX = "(?)"


class Units(Mapping[str, Fraction]):
    """Units as a frozen mapping from base-unit name to exponent.

    Exponents are integers in practice; they are :class:`fractions.Fraction` so that
    ``Capital ^ 0.4`` (Cobb-Douglas) and ``SQRT(area)`` keep exact units.

    Parameters
    ----------
    exponents : mapping or iterable of (name, exponent) pairs
        Zero exponents are dropped; names are used as given (see :func:`parse_units`).

    Examples
    --------
    >>> person, year = Units({"person": 1}), Units({"year": 1})
    >>> str(person / year), (person / year) * year == person
    ('person/year', True)
    """

    __slots__ = ("_hash", "_items")

    def __init__(
        self, exponents: Mapping[str, Fraction | int] | Iterable[tuple[str, Any]] = ()
    ) -> None:
        items: dict[str, Fraction] = {}
        pairs = exponents.items() if isinstance(exponents, Mapping) else exponents
        for name, exp in pairs:
            total = items.get(name, Fraction(0)) + Fraction(exp)
            items[name] = total
        self._items = tuple(sorted((k, v) for k, v in items.items() if v != 0))
        self._hash = hash(self._items)

    def __getitem__(self, key: str) -> Fraction:
        for name, exp in self._items:
            if name == key:
                return exp
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Units):
            return self._items == other._items
        return NotImplemented

    def __mul__(self, other: Units) -> Units:
        return Units([*self._items, *other._items])

    def __truediv__(self, other: Units) -> Units:
        return Units([*self._items, *((k, -v) for k, v in other._items)])

    def __pow__(self, exponent: Fraction | int) -> Units:
        return Units((k, v * exponent) for k, v in self._items)

    @property
    def dimensionless(self) -> bool:
        """True when no base unit is left (``Dmnl``)."""
        return not self._items

    def format(self, names: Mapping[str, str] | None = None) -> str:
        """Vensim's spelling: ``Person/Year``, ``1/Year``, ``bn KZT/(Person*Year)``, ``Dmnl``.

        Parameters
        ----------
        names : mapping, optional
            Display spelling of each base-unit name (default: the names themselves).
        """
        names = names or {}

        def term(name: str, exp: Fraction) -> str:
            shown = names.get(name, name)
            if name.startswith(UNKNOWN_PREFIX):
                shown = f"[units of {shown.removeprefix(UNKNOWN_PREFIX)}]"
            return shown if exp == 1 else f"{shown}^{_format_exponent(exp)}"

        num = [term(k, v) for k, v in self._items if v > 0]
        den = [term(k, -v) for k, v in self._items if v < 0]
        if not num and not den:
            return "Dmnl"
        top = "*".join(num) if num else "1"
        if not den:
            return top
        bottom = den[0] if len(den) == 1 else "(" + "*".join(den) + ")"
        return f"{top}/{bottom}"

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return f"Units({self.format()!r})"


DIMENSIONLESS = Units()


def _format_exponent(exp: Fraction) -> str:
    if exp.denominator == 1:
        return str(exp.numerator)
    # A terminating decimal is written as modellers write it (bn KZT^0.4), else (1/3).
    for digits in range(1, 12):
        scaled = exp * 10**digits
        if scaled.denominator == 1:
            sign = "-" if scaled < 0 else ""
            whole, frac = divmod(abs(scaled.numerator), 10**digits)
            return f"{sign}{whole}.{str(frac).rjust(digits, '0').rstrip('0')}"
    return f"({exp})"


def exact_fraction(value: float | int) -> Fraction | None:
    """The exact decimal a modeller wrote (0.35 -> 7/20), not the float's binary value."""
    if isinstance(value, bool) or not math.isfinite(value):
        return None
    if float(value).is_integer():
        return Fraction(int(value))
    return Fraction(str(float(value)))


def normalize_unit_name(name: str) -> str:
    """How unit names are compared: case- and spacing-insensitive (``bn  KZT`` = ``BN KZT``)."""
    return " ".join(name.split()).lower()


# ---------------------------------------------------------------------------- parsing
_TOKEN = re.compile(r"\s*([*/^()]|[^*/^()]+)")
# A units string is untrusted: a three-digit decimal exponent keeps Fraction() cheap.
_NUMBER = re.compile(r"[+-]?(\d{1,30}\.?\d{0,30}|\.\d{1,30})([eE][+-]?\d{1,3})?$")


def parse_units(
    text: str,
    equivalents: Mapping[str, str] | None = None,
    *,
    spellings: dict[str, str] | None = None,
) -> Units:
    """Parse a units string (``Person/Year``, ``bn KZT^0.4``, ``1/(Year*Year)``).

    Parameters
    ----------
    text : str
        Names joined by ``*``, ``/``, ``^`` (with a number, possibly in parentheses) and
        parentheses; ``/`` binds left to right (``m/s/s`` is ``m/s^2``). Pure numbers and
        the dimensionless names (``Dmnl``, ``1``, ``fraction``...) are dimensionless.
    equivalents : mapping, optional
        Normalized name -> the normalized name it stands for (see :func:`read_equivalents`);
        the singular/plural time units are always applied.
    spellings : dict, optional
        Filled with base-unit name -> the first spelling met (for messages).

    Returns
    -------
    Units

    Raises
    ------
    ValueError
        When the string is not a units expression (the message says where).

    Examples
    --------
    >>> str(parse_units("m/s/s")), str(parse_units("Dmnl")), str(parse_units("Months"))
    ('m/s^2', 'Dmnl', 'month')
    """
    if len(text) > MAX_UNITS_LENGTH:
        raise ValueError(f"the units string is longer than {MAX_UNITS_LENGTH} characters")
    tokens = [t.strip() for t in _TOKEN.findall(text) if t.strip()]
    if not tokens:
        return DIMENSIONLESS
    parser = _UnitsParser(tokens, equivalents or {}, spellings)
    units = parser.expression(0)
    if parser.pos != len(tokens):
        raise ValueError(f"unexpected {tokens[parser.pos]!r}")
    return units


class _UnitsParser:
    """Recursive descent over ``expr := power (('*'|'/') power)*``."""

    def __init__(
        self, tokens: list[str], equivalents: Mapping[str, str], spellings: dict[str, str] | None
    ) -> None:
        self.tokens = tokens
        self.pos = 0
        self.equivalents = equivalents
        self.spellings = spellings

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise ValueError("the units end too early")
        self.pos += 1
        return token

    def expression(self, depth: int) -> Units:
        if depth > MAX_NESTING:
            raise ValueError("parentheses nest too deeply")
        units = self.power(depth)
        while self.peek() in ("*", "/"):
            op = self.take()
            rhs = self.power(depth)
            units = units * rhs if op == "*" else units / rhs
        return units

    def power(self, depth: int) -> Units:
        base = self.atom(depth)
        if self.peek() == "^":
            self.take()
            base = base ** self.exponent()
        return base

    def exponent(self) -> Fraction:
        token = self.take()
        if token == "(":
            text = ""
            while self.peek() not in (")", None):
                text += self.take()
            self.take()
        else:
            text = token
            if text in ("+", "-") or text.endswith(("e", "E")):
                text += self.take()
        num, _, den = text.replace(" ", "").partition("/")
        if not _NUMBER.match(num) or (den and not _NUMBER.match(den)):
            raise ValueError(f"the exponent {text!r} is not a number")
        value = Fraction(num) / (Fraction(den) if den else 1)
        if abs(value) > MAX_EXPONENT:
            raise ValueError(f"the exponent {text!r} is too large")
        return value

    def atom(self, depth: int) -> Units:
        token = self.take()
        if token == "(":
            units = self.expression(depth + 1)
            if self.take() != ")":
                raise ValueError("a parenthesis is not closed")
            return units
        if token in ("*", "/", "^", ")"):
            raise ValueError(f"unexpected {token!r}")
        if _NUMBER.match(token.replace(" ", "")):
            return DIMENSIONLESS  # Vensim units carry no scale factors
        key = normalize_unit_name(token)
        key = self.equivalents.get(key, key)
        key = self.equivalents.get(_TIME_ALIASES.get(key, key), _TIME_ALIASES.get(key, key))
        if key in DIMENSIONLESS_NAMES:
            return DIMENSIONLESS
        if self.spellings is not None:
            self.spellings.setdefault(key, " ".join(token.split()))
        return Units({key: 1})


_TIME_ALIASES = {unit + "s": unit for unit in TIME_UNITS}


def read_equivalents(path: Path) -> list[list[str]]:
    """Groups of unit names the model declares equivalent.

    Vensim writes its Units Equiv list as ``22:`` records in the settings block after the
    sketch (``22:Person,People,Persons``); XMILE as ``<model_units><unit name=...>`` with
    ``<alias>`` children (and an ``<eqn>`` naming another unit). The file is read as text
    (XML without entities or network access); nothing in it is evaluated.

    Parameters
    ----------
    path : pathlib.Path
        The model file.

    Returns
    -------
    list of list of str
        Each group as written, its first name being the unit the others stand for.
    """
    try:
        data = path.read_bytes()
    except OSError:
        return []
    if path.suffix.lower() == ".mdl":
        text = data.decode("utf-8", errors="replace")
        # Vensim versions differ in the settings marker (some write a DEL inside it).
        marker = re.search(r"^:L.?<%\^E!@", text, flags=re.MULTILINE)
        if marker is None:
            return []
        groups = []
        for line in text[marker.end() :].splitlines():
            if line.startswith("22:"):
                names = [n.strip() for n in line[3:].split(",") if n.strip()]
                if len(names) > 1:
                    groups.append(names)
        return groups
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return []
    groups = []
    for unit in root.iter("{*}unit"):
        parent = unit.getparent()
        if parent is None or etree.QName(parent).localname != "model_units":
            continue
        name = (unit.get("name") or "").strip()
        others = [(a.text or "").strip() for a in unit.iter("{*}alias")]
        for eqn in unit.iter("{*}eqn"):
            text = (eqn.text or "").strip()
            # An <eqn> with a number converts (1000 m); only a plain name is an equivalent.
            if text and not re.search(r"[\d*/^()]", text):
                others.append(text)
        others = [o for o in others if o]
        if name and others:
            groups.append([name, *others])
    return groups


def equivalence_map(groups: Iterable[Iterable[str]]) -> dict[str, str]:
    """Normalized name -> the normalized first name of its (merged) group."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    order: list[str] = []
    for group in groups:
        keys = [normalize_unit_name(n) for n in group if normalize_unit_name(n)]
        for key in keys:
            if key not in parent:
                parent[key] = key
                order.append(key)
        for key in keys[1:]:
            a, b = find(keys[0]), find(key)
            if a != b:
                # The name declared first stays the group's name.
                first, second = sorted((a, b), key=order.index)
                parent[second] = first
    return {key: find(key) for key in parent if find(key) != key}


# ---------------------------------------------------------------------------- the report
@dataclass(frozen=True, eq=False)
class UnitsReport:
    """The result of :func:`check_units`.

    Attributes
    ----------
    model : str
        The model file.
    table : pandas.DataFrame
        One row per problem, with columns ``variable``, ``file``, ``line``, ``severity``
        (``"error"``, ``"warning"`` or ``"unknown"``), ``expected``, ``computed``,
        ``message`` and ``hint``.
    time_unit : str
        The model's time unit (the units of TIME STEP).
    inferred : mapping
        Variables without declared units -> the units their equations give them.
    checked : int
        How many variables were checked.
    """

    model: str
    table: pd.DataFrame
    time_unit: str
    inferred: Mapping[str, str] = field(default_factory=dict)
    checked: int = 0

    def _rows(self, severity: Severity) -> pd.DataFrame:
        return self.table[self.table["severity"] == severity].reset_index(drop=True)

    @property
    def errors(self) -> pd.DataFrame:
        """The equations whose units do not balance."""
        return self._rows("error")

    @property
    def warnings(self) -> pd.DataFrame:
        """Questionable but legal units (a lookup called with units, unreadable units)."""
        return self._rows("warning")

    @property
    def unknown(self) -> pd.DataFrame:
        """Variables whose units are neither declared nor determined by the equations."""
        return self._rows("unknown")

    @property
    def ok(self) -> bool:
        """True when every equation balances (warnings and unknown units allowed)."""
        return self.errors.empty

    def __str__(self) -> str:
        lines = []
        for row in self.table.itertuples(index=False):
            if row.severity == "unknown":
                continue
            where = f"{row.file}:{row.line}" if row.line else str(row.file)
            lines.append(f"{where}: {row.severity}: {row.variable}: {row.message}.")
            if row.expected or row.computed:
                lines.append(f"    expected: {row.expected}")
                lines.append(f"    computed: {row.computed}")
            if row.hint:
                lines.append(f"    hint: {row.hint}")
        unknown = list(self.unknown["variable"])
        if unknown:
            shown = ", ".join(unknown[:10]) + (
                f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            )
            lines.append(f"{self.model}: units not declared nor determined for {shown}.")
        n_err, n_warn = len(self.errors), len(self.warnings)
        verdict = "units balance" if self.ok else "units do not balance"
        lines.append(
            f"{self.model}: {verdict} ({self.checked} variables; {n_err} error"
            f"{'s' * (n_err != 1)}, {n_warn} warning{'s' * (n_warn != 1)}, "
            f"{len(unknown)} unknown)."
        )
        return "\n".join(lines)


def check_units(model: Any) -> UnitsReport:
    """Check that every equation of a model balances its units, as Vensim does.

    Parameters
    ----------
    model : sd_model.Model, path-like or AbstractModel
        A loaded model; a model file (.mdl, .xmile, .stmx), which is only parsed (nothing
        is translated or run); or PySD's abstract model of one (from
        :func:`sd_model.translate.parse_abstract_model`).

    Returns
    -------
    UnitsReport
        ``.ok`` is False when some equation does not balance; ``.table`` lists every
        problem; ``str(report)`` is the Vensim-style listing.

    Raises
    ------
    ModelLoadError
        When the model file cannot be read.

    Examples
    --------
    >>> import sd_model
    >>> report = sd_model.check_units("models/example_regions.mdl")  # doctest: +SKIP
    >>> report.ok, list(report.table.columns)  # doctest: +SKIP
    (True, ['variable', 'file', 'line', 'severity', 'expected', 'computed', 'message', 'hint'])
    """
    import pandas as pd

    from sd_model._units_check import Checker
    from sd_model.translate import _definition_line, check_model_path, parse_abstract_model

    if isinstance(model, str | os.PathLike):
        path = check_model_path(model)
        am = parse_abstract_model(path)
    elif hasattr(model, "sections") and hasattr(model, "original_path"):
        path, am = Path(model.original_path), model  # PySD's AbstractModel
    else:
        path, am = Path(model.path), model.abstract_model

    checker = Checker(am, path)
    checker.run()
    lines: dict[str, int | None] = {}
    rows = []
    order = {"error": 0, "warning": 1, "unknown": 2}
    for p in checker.problems:
        if p.variable not in lines:
            lines[p.variable] = _definition_line(path, p.variable)
        rows.append({**dataclasses.asdict(p), "file": str(path), "line": lines[p.variable]})
    rows.sort(key=lambda r: (order[r["severity"]], r["line"] or 0))
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table["line"] = table["line"].astype("Int64")
    return UnitsReport(
        model=str(path),
        table=table,
        time_unit=checker.show(checker.time),
        inferred=checker.inferred(),
        checked=len(checker.vars),
    )
