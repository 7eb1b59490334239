"""Policy levers: which model constants the explorer shows as sliders, and their ranges.

A lever is one slider: a scalar constant, or one element of a subscripted constant
(``abatement investment[Pavlodar]``). Levers come from a scenario file's ``levers:``
section or, when it has none, from the constants whose units field carries a range, the
Vensim convention ``~ Dmnl [0, 1, 0.05] ~`` that Vensim's own sliders read.

Nothing here imports Panel: the web page (:mod:`sd_model.explore.app`) is one user of
these objects, the tests another.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sd_model._errors import ParameterError, ScenarioError
from sd_model.overrides import normalize_name

if TYPE_CHECKING:
    from sd_model.model import Model
    from sd_model.scenarios import Scenario

__all__ = ["Lever", "LeverSet", "discover_levers", "nice_step"]

DEFAULT_GROUP = "Levers"


@dataclass(frozen=True)
class Lever:
    """One slider of the explorer.

    Attributes
    ----------
    parameter : str
        The model's name of the constant (``abatement investment``).
    py_name : str
        PySD's name of the constant (``abatement_investment``).
    element : tuple of str
        The subscript elements this slider sets; ``()`` for a scalar constant.
    min, max, step : float
        The slider's range and step.
    baseline : float
        The value in the baseline run (the lever section's ``baseline:``, else the
        model file's value).
    default : float
        The model file's value.
    group : str
        Heading the lever is shown under.
    label : str
        Text shown for the parameter (the model's name unless the scenario gives one).
    units : str
        The model's units of the constant.
    description : str
        The model's comment (or the scenario's ``description:``), shown as a tooltip.
    """

    parameter: str
    py_name: str
    element: tuple[str, ...]
    min: float
    max: float
    step: float
    baseline: float
    default: float
    group: str = DEFAULT_GROUP
    label: str = ""
    units: str = ""
    description: str = ""

    @property
    def key(self) -> str:
        """The override key :meth:`sd_model.Model.run` takes (``name[Element]``)."""
        return f"{self.parameter}[{','.join(self.element)}]" if self.element else self.parameter

    @property
    def url_key(self) -> str:
        """The key in the page's address (PySD's name, no spaces: ``name[Element]``)."""
        return f"{self.py_name}[{','.join(self.element)}]" if self.element else self.py_name

    def check(self, value: Any, *, where: str = "levers") -> float:
        """``value`` as a float inside the lever's range.

        Raises
        ------
        ParameterError
            When ``value`` is not a finite number or lies outside ``[min, max]``; the
            message names the lever, the value and the range.
        """
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ParameterError(
                f"{where}: lever {self.key!r} needs a number, got {value!r}."
            ) from None
        if not math.isfinite(number):
            raise ParameterError(f"{where}: lever {self.key!r} needs a finite number, got {value}.")
        # A slider that stepped 0.1 seven times reports 0.7000000000000001; allow that much.
        slack = 1e-9 * max(1.0, abs(self.min), abs(self.max))
        if not self.min - slack <= number <= self.max + slack:
            raise ParameterError(
                f"{where}: lever {self.key!r} = {number:g} is outside its range "
                f"{self.min:g} to {self.max:g} {self.units}".rstrip()
                + "; choose a value in the range (or widen it in the scenario's 'levers:')."
            )
        return min(max(number, self.min), self.max)


@dataclass(frozen=True)
class LeverSet:
    """The explorer's levers, in display order.

    Parameters
    ----------
    levers : sequence of Lever
        One per slider; the elements of one parameter are consecutive.
    source : str
        Where the ranges came from, for the page and error messages.
    """

    levers: tuple[Lever, ...]
    source: str = ""
    _by_key: dict[str, Lever] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_key: dict[str, Lever] = {}
        for lever in self.levers:
            for key in (lever.key, lever.url_key):
                by_key[_norm_key(key)] = lever
        object.__setattr__(self, "_by_key", by_key)

    def __iter__(self) -> Iterator[Lever]:
        return iter(self.levers)

    def __len__(self) -> int:
        return len(self.levers)

    def __getitem__(self, key: str) -> Lever:
        """The lever named ``key``: ``name``, ``name[Element]``, or PySD's names."""
        lever = self._by_key.get(_norm_key(key))
        if lever is None:
            known = [lev.key for lev in self.levers]
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ParameterError(f"unknown lever {key!r}.{hint}")
        return lever

    @property
    def keys(self) -> list[str]:
        """Every lever's :attr:`Lever.key`, in order."""
        return [lever.key for lever in self.levers]

    def baseline(self) -> dict[str, float]:
        """Lever key -> baseline value."""
        return {lever.key: lever.baseline for lever in self.levers}

    def check(self, values: Mapping[str, Any], *, where: str = "levers") -> dict[str, float]:
        """Every lever's value: the given ones checked, the others at their baseline.

        Parameters
        ----------
        values : mapping
            Lever key (any spelling :meth:`__getitem__` accepts) -> number.
        where : str
            Origin of the values, for error messages.

        Returns
        -------
        dict
            Lever key -> float, for every lever.

        Raises
        ------
        ParameterError
            For an unknown lever or a value outside its range.
        """
        out = self.baseline()
        for key, value in values.items():
            lever = self[key]
            out[lever.key] = lever.check(value, where=where)
        return out

    def overrides(self, values: Mapping[str, float]) -> dict[str, Any]:
        """Overrides for :meth:`sd_model.Model.run` from lever values (all levers).

        A subscripted parameter becomes one mapping ``{element: value}``; scalars stay
        numbers.
        """
        full = self.check(values)
        out: dict[str, Any] = {}
        for parameter, levers in self.by_parameter():
            if levers[0].element:
                out[parameter] = {",".join(lev.element): full[lev.key] for lev in levers}
            else:
                out[parameter] = full[levers[0].key]
        return out

    def by_parameter(self) -> list[tuple[str, list[Lever]]]:
        """``(parameter, its levers)`` in display order."""
        return [
            (name, list(group))
            for name, group in itertools.groupby(self.levers, key=lambda lev: lev.parameter)
        ]

    def groups(self) -> dict[str, list[tuple[str, list[Lever]]]]:
        """Group heading -> ``(parameter, its levers)``, both in display order."""
        out: dict[str, list[tuple[str, list[Lever]]]] = {}
        for name, levers in self.by_parameter():
            out.setdefault(levers[0].group, []).append((name, levers))
        return out


def _norm_key(key: str) -> str:
    name, bracket, rest = key.partition("[")
    if not bracket:
        return normalize_name(name)
    elements = ",".join(normalize_name(e) for e in rest.rstrip().removesuffix("]").split(","))
    return f"{normalize_name(name)}[{elements}]"


def nice_step(span: float) -> float:
    """A round slider step giving about 100 positions over ``span`` (1, 2 or 5 x 10^k).

    Examples
    --------
    >>> nice_step(1.0), nice_step(3000.0), nice_step(0.05)
    (0.01, 50.0, 0.0005)
    """
    raw = span / 100.0
    exponent = math.floor(math.log10(raw))
    for mantissa in (1.0, 2.0, 5.0, 10.0):
        if mantissa * 10.0**exponent >= raw * (1 - 1e-9):
            return float(f"{mantissa * 10.0**exponent:.12g}")
    return raw  # pragma: no cover - the loop always returns


def _model_ranges(model: Model) -> dict[str, tuple[float | None, float | None, float | None]]:
    """Normalized constant name -> (min, max, step) from the model's units fields.

    PySD's translator keeps every number of Vensim's ``[min, max, step]`` (``?`` as None);
    sd_model's metadata table keeps only min and max, so the step is read here.
    """
    out: dict[str, tuple[float | None, float | None, float | None]] = {}
    for section in model.abstract_model.sections[:1]:
        for element in section.elements:
            raw = tuple(element.limits or ())
            if not raw:
                continue
            numbers: list[float | None] = []
            for value in (*raw, None, None, None)[:3]:
                try:
                    number = float(value) if value is not None else None
                except (TypeError, ValueError):
                    number = None
                numbers.append(number if number is not None and math.isfinite(number) else None)
            out[normalize_name(str(element.name))] = (numbers[0], numbers[1], numbers[2])
    return out


def _elements(model: Model, dims: Sequence[str]) -> list[tuple[str, ...]]:
    return [tuple(e) for e in itertools.product(*(model.coords[d] for d in dims))] if dims else [()]


def _defaults(default: Any, elements: list[tuple[str, ...]]) -> dict[tuple[str, ...], float]:
    """The model file's value of each element (``Model.parameters``' default column)."""
    if isinstance(default, Mapping):
        return {e: float(default[",".join(e)]) for e in elements}
    return {e: float(default) for e in elements}


def discover_levers(model: Model, scenario: Scenario | None = None) -> LeverSet:
    """The levers of ``model``: the scenario's ``levers:`` section, else the units fields.

    Parameters
    ----------
    model : sd_model.Model
        The loaded model.
    scenario : sd_model.Scenario, optional
        A scenario whose ``levers:`` section (if any) lists the levers. Without one, every
        constant whose units field gives both a minimum and a maximum is a lever
        (``~ Dmnl [0, 1, 0.05] ~``), in the model file's order.

    Returns
    -------
    LeverSet

    Raises
    ------
    ScenarioError
        When a lever of the scenario names no constant of the model, has no range, or its
        baseline lies outside its range; the message names the file and line.

    Examples
    --------
    >>> levers = discover_levers(model, Scenario.from_yaml("scenarios/baseline.yaml"))
    ... # doctest: +SKIP
    >>> levers["equalization transfer intensity"].max  # doctest: +SKIP
    1.0
    """
    params = model.parameters
    ranges = _model_ranges(model)
    by_norm: dict[str, str] = {}
    for name, row in params.iterrows():
        by_norm[normalize_name(str(name))] = str(name)
        by_norm[normalize_name(str(row["py_name"]))] = str(name)
    specs: list[tuple[str, Mapping[str, Any], str]] = []  # (model name, spec, where)
    if scenario is not None and scenario.levers:
        source = f"{Path(scenario.source).name} (levers:)"
        for written, spec in scenario.levers.items():
            where = scenario._where(f"levers.{written}")
            name = by_norm.get(normalize_name(written))
            if name is None:
                close = difflib.get_close_matches(written, list(params.index), n=3, cutoff=0.5)
                hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
                raise ScenarioError(
                    f"{where}: lever {written!r} is not a constant of {model.path.name}.{hint}"
                )
            if params.loc[name, "kind"] != "constant":
                raise ScenarioError(
                    f"{where}: lever {written!r} is a {params.loc[name, 'kind']}; a lever sets "
                    "a constant (a number per element)."
                )
            specs.append((name, spec, where))
    else:
        source = f"{model.path.name} (units field [min, max, step])"
        for name, row in params.iterrows():
            lo, hi, _ = ranges.get(normalize_name(str(name)), (None, None, None))
            if row["kind"] == "constant" and lo is not None and hi is not None:
                specs.append((str(name), {}, f"{model.path.name}: {name}"))
        order = {normalize_name(str(e.name)): i for i, e in enumerate(_file_order(model))}
        specs.sort(key=lambda s: order.get(normalize_name(s[0]), len(order)))
    levers: list[Lever] = []
    for name, spec, where in specs:
        levers.extend(_levers_of(model, params.loc[name], name, spec, ranges, where))
    return LeverSet(tuple(levers), source=source)


def _file_order(model: Model) -> list[Any]:
    return list(model.abstract_model.sections[0].elements)


def _levers_of(
    model: Model,
    row: Any,
    name: str,
    spec: Mapping[str, Any],
    ranges: Mapping[str, tuple[float | None, float | None, float | None]],
    where: str,
) -> list[Lever]:
    """The sliders of one parameter (one per element)."""
    m_lo, m_hi, m_step = ranges.get(normalize_name(name), (None, None, None))
    lo = spec.get("min", m_lo)
    hi = spec.get("max", m_hi)
    if lo is None or hi is None:
        raise ScenarioError(
            f"{where}: lever {name!r} has no range: write it as '{name}: [min, max, step]' "
            "under 'levers:', or give the constant a units field like 'Dmnl [0, 1, 0.05]'."
        )
    if not lo < hi:
        raise ScenarioError(f"{where}: lever {name!r}: min ({lo:g}) must be below max ({hi:g}).")
    step = spec.get("step") or (m_step if "min" not in spec and m_step else None)
    step = float(step) if step else nice_step(hi - lo)
    dims = tuple(d.strip() for d in str(row["dims"]).split(",") if d.strip())
    elements = _elements(model, dims)
    if row["default"] == "" or row["default"] is None:
        raise ScenarioError(
            f"{where}: lever {name!r}: the model's value cannot be read alone (it is computed "
            "from other elements); give 'baseline:' in the lever section."
        )
    defaults = _defaults(row["default"], elements)
    baseline = _baseline(spec.get("baseline"), defaults, model, dims, name, where)
    label = spec.get("label") or name
    description = spec.get("description") or str(row["description"] or "")
    out = []
    for element in elements:
        value = baseline[element]
        if not lo <= value <= hi:
            what = f"{name}[{','.join(element)}]" if element else name
            raise ScenarioError(
                f"{where}: lever {name!r}: the baseline of {what} ({value:g}) is outside the "
                f"range {lo:g} to {hi:g}; widen the range or give 'baseline:'."
            )
        out.append(
            Lever(
                parameter=name,
                py_name=str(row["py_name"]),
                element=element,
                min=float(lo),
                max=float(hi),
                step=step,
                baseline=value,
                default=defaults[element],
                group=spec.get("group") or DEFAULT_GROUP,
                label=label,
                units=str(row["units"] or ""),
                description=description,
            )
        )
    return out


def _baseline(
    given: Any,
    defaults: Mapping[tuple[str, ...], float],
    model: Model,
    dims: Sequence[str],
    name: str,
    where: str,
) -> dict[tuple[str, ...], float]:
    out = dict(defaults)
    if given is None:
        return out
    if not isinstance(given, Mapping):
        return {e: float(given) for e in out}
    if not dims:
        raise ScenarioError(
            f"{where}: lever {name!r} is not subscripted; its baseline is one number."
        )
    for key, value in given.items():
        parts = [p.strip() for p in str(key).split(",")]
        if len(parts) != len(dims):
            raise ScenarioError(
                f"{where}: lever {name!r}: baseline key {key!r} names {len(parts)} element(s); "
                f"the parameter has dims {list(dims)}."
            )
        element = []
        for dim, part in zip(dims, parts, strict=True):
            match = [e for e in model.coords[dim] if normalize_name(e) == normalize_name(part)]
            if not match:
                raise ScenarioError(
                    f"{where}: lever {name!r}: {part!r} is not an element of {dim!r}."
                )
            element.append(match[0])
        out[tuple(element)] = float(value)
    return out
