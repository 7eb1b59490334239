"""Reading a check file: YAML with line numbers, validated against the model it names.

Everything a check file can get wrong (keys, names, elements, lever ranges, times) is found
here, before any simulation, and reported with the file and line.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from sd_model._errors import CheckFileError
from sd_model.checks._expressions import Expression, Fail, Names
from sd_model.overrides import normalize_name

if TYPE_CHECKING:
    from sd_model.integrate import SolverOptions, TimeGrid
    from sd_model.model import Model

FILE_KEYS = (
    "name",
    "description",
    "model",
    "base_scenario",
    "time",
    "solver",
    "levers",
    "scenarios",
    "checks",
)
GROUP_KEYS = ("describe", "tests")
PREDICATES = ("gt", "gte", "lt", "lte", "approx")
TOLERANCES = ("tolerance", "rel_tolerance")
TEST_KEYS = ("it", "scenarios", "variable", "variables", *PREDICATES, *TOLERANCES, "at", "for_each")
SCENARIO_KINDS = ("set", "file", "lever", "each_lever", "all_levers", "preset")
SCENARIO_KEYS = ("name", *SCENARIO_KINDS, "at")
BASELINE = "baseline"
SYMBOLS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "approx": "~="}
_TIME_ARGS = ("initial_time", "final_time", "saveper", "time_step")

Key = tuple[Any, ...]  # where a value sits in the YAML: ("checks", 0, "tests", 2, "at")


@dataclass(frozen=True)
class Run:
    """One simulation: overrides as written (layers merged), in the file's order."""

    params: Mapping[str, Any]


@dataclass(frozen=True)
class Ref:
    """What a predicate compares with: a number, or an expression in a scenario."""

    number: float | None = None
    scenario: str | None = None  # None: the test's own scenario
    expr: Expression | None = None  # None: the test's own variable

    def text(self) -> str:
        if self.number is not None:
            return f"{self.number:g}"
        if self.expr is None:
            return str(self.scenario)
        return self.expr.text + (f" in {self.scenario}" if self.scenario else "")


@dataclass(frozen=True)
class Predicate:
    """``op`` in gt, gte, lt, lte, approx; tolerances apply to approx only."""

    op: str
    ref: Ref
    tolerance: float = 0.0
    rel_tolerance: float = 0.0

    def text(self) -> str:
        out = f"{SYMBOLS[self.op]} {self.ref.text()}"
        if self.op == "approx":
            tol = [f"± {self.tolerance:g}"] if self.tolerance else []
            tol += [f"± {self.rel_tolerance:g} relative"] if self.rel_tolerance else []
            out += f" ({', '.join(tol)})"
        return out


@dataclass(frozen=True)
class Test:
    """One ``it``: its scenarios as (run index, label), variables and predicates."""

    group: str
    it: str
    line: str
    scenarios: tuple[tuple[int, str], ...]
    variables: tuple[Expression, ...]
    predicates: tuple[Predicate, ...]
    times: tuple[float, ...] | None  # None: every saved time
    for_each: str | None


@dataclass
class CheckFile:
    """A validated check file: what to run and what to judge."""

    source: str
    model: Model
    grid: TimeGrid
    solver: SolverOptions
    backend: str
    runs: list[Run] = field(default_factory=list)
    named: dict[str, int] = field(default_factory=dict)
    tests: list[Test] = field(default_factory=list)
    outputs: tuple[str, ...] = ()


# --------------------------------------------------------------------------- YAML with lines
@dataclass(frozen=True)
class Doc:
    """Where each mapping key and sequence item of a YAML file is (1-based lines)."""

    source: str
    lines: Mapping[Key, int]

    def at(self, key: Key) -> str:
        """``file:line`` of ``key``, or of its nearest enclosing key with a line."""
        for n in range(len(key), -1, -1):
            line = self.lines.get(tuple(key[:n]))
            if line:
                return f"{self.source}:{line}"
        return self.source

    def error(self, key: Key, message: str) -> CheckFileError:
        return CheckFileError(f"{self.at(key)}: {message}")

    def fail(self, key: Key) -> Fail:
        return lambda message: self.error(key, message)


def read_yaml(path: Path) -> tuple[Any, Doc]:
    """The parsed file and its line numbers; YAML errors name the file and line."""
    # The safety rules of scenario files: repeated keys, recursive aliases and alias bombs
    # are refused on the node graph before anything is built from it.
    from sd_model.scenarios import _check_nodes

    if not path.is_file():
        raise CheckFileError(f"Check file not found: {path}")
    loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
    try:
        node = loader.get_single_node()
        _check_nodes(node, str(path))
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or exc
        if "flow" in str(getattr(exc, "context", "")):
            # `{variable: SUM(x[Region!])}`: brackets and commas end YAML's inline {} and [].
            problem = f"{problem}. Inside {{...}} or [...], quote text that has brackets or commas"
        raise CheckFileError(f"{where}: invalid YAML: {problem}") from exc
    except RecursionError as exc:
        raise CheckFileError(f"{path}: invalid YAML: nested too deeply.") from exc
    finally:
        loader.dispose()
    lines: dict[Key, int] = {}
    stack: list[tuple[Any, Key]] = [(node, ())] if node is not None else []
    while stack:  # an alias repeats its subtree here; _check_nodes bounds the repetition
        n, key = stack.pop()
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                lines[(*key, k.value)] = k.start_mark.line + 1
                stack.append((v, (*key, k.value)))
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                lines[(*key, i)] = v.start_mark.line + 1
                stack.append((v, (*key, i)))
    return data, Doc(str(path), lines)


def _keys(doc: Doc, data: Any, allowed: Sequence[str], key: Key, what: str) -> None:
    if not isinstance(data, Mapping):
        raise doc.error(key, f"{what} must be a mapping, got {_show(data)}.")
    for k in data:
        if k not in allowed:
            close = difflib.get_close_matches(str(k), allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise doc.error(
                (*key, k), f"unknown key {k!r} in {what}.{hint} Allowed: {', '.join(allowed)}."
            )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def number(value: Any) -> float | None:
    """A float from a YAML value; YAML 1.1 reads ``1e-8`` (no dot) as text, so accept it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


# --------------------------------------------------------------------------- overrides
def lever_key(name: str) -> str:
    """Normalized ``name`` or ``name[element,...]`` (Vensim's case and space rule)."""
    base, bracket, subs = name.partition("[")
    if not bracket:
        return normalize_name(base)
    elements = ",".join(normalize_name(s) for s in subs.rstrip().removesuffix("]").split(","))
    return f"{normalize_name(base)}[{elements}]"


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides layered in order: a later whole value replaces the earlier value and its
    element edits; a later element edit replaces the same element's earlier edit."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            new = lever_key(key)
            for old in list(out):
                old_key = lever_key(old)
                if old_key == new or ("[" not in new and old_key.partition("[")[0] == new):
                    del out[old]
            out[key] = value
    return out


def _label(params: Mapping[str, Any]) -> str:
    def short(value: Any) -> str:
        text = json.dumps(value, default=str) if not isinstance(value, str) else value
        return text if len(text) <= 30 else text[:27] + "..."

    return "set " + ", ".join(f"{k}={short(v)}" for k, v in params.items())


# --------------------------------------------------------------------------- the reader
class Reader:
    """Reads a check file and validates it against its model (see :mod:`sd_model.checks`).

    Parameters
    ----------
    path : pathlib.Path
        The check file.
    backend, method : str, optional
        Replace the file's solver settings.
    model : Model, optional
        The model the file names, already loaded.
    """

    def __init__(
        self,
        path: Path,
        *,
        backend: str | None = None,
        method: str | None = None,
        model: Model | None = None,
    ) -> None:
        from sd_model.integrate import SolverOptions
        from sd_model.model import load

        data, self.doc = read_yaml(path)
        self.dir = path.parent
        data = {} if data is None else data
        _keys(self.doc, data, FILE_KEYS, (), "a check file (top level)")
        model_path, base_set, run_kw, lever_sections = self._base(data)
        solver_kw = {k: v for k, v in run_kw.items() if k not in _TIME_ARGS}
        solver_kw |= {k: v for k, v in (("backend", backend), ("method", method)) if v}
        if model is not None and Path(model.path).resolve() != model_path:
            raise self.doc.error((), f"the file checks {model_path}, not {model.path}.")
        self.model = model if model is not None else load(model_path)
        self.names = Names(self.model)
        grid = self.model.time_grid(**{k: run_kw[k] for k in _TIME_ARGS if k in run_kw})
        solver = SolverOptions(
            method=self.model.resolve_method(solver_kw.get("method")),
            **{k: float(solver_kw[k]) for k in ("rtol", "atol", "max_step") if k in solver_kw},
        )
        self.file = CheckFile(
            self.doc.source, self.model, grid, solver, solver_kw.get("backend", "auto")
        )
        self.saved = grid.save_times()
        self.index: dict[str, int] = {}  # canonical overrides -> run
        self.checked: set[tuple[str, float]] = set()  # lever values found valid
        self.expanded: dict[str, list[tuple[int, str]]] = {}  # scenario entry -> runs
        self.base_set = dict(base_set)
        self.ranges = self._ranges(lever_sections)
        self.file.named[BASELINE] = self._add(self.base_set, ("base_scenario",))
        self._named(data.get("scenarios"))
        groups = data.get("checks")
        if not isinstance(groups, list) or not groups:
            raise self.doc.error(
                ("checks",), "'checks' must be a list of groups ({describe: ..., tests: [...]})."
            )
        for g, group in enumerate(groups):
            _keys(self.doc, group, GROUP_KEYS, ("checks", g), "a group of checks")
            describe, tests = group.get("describe", ""), group.get("tests")
            if not isinstance(describe, str) or not isinstance(tests, list) or not tests:
                raise self.doc.error(
                    ("checks", g), "a group has 'describe' (text) and 'tests' (a list of tests)."
                )
            for t, test in enumerate(tests):
                self.file.tests.append(self._test(describe, test, ("checks", g, "tests", t)))
        self.file.outputs = tuple(sorted(self.names.used))
        self._prune()

    def _prune(self) -> None:
        """Keep only the runs a test judges or compares with, renumbered in order."""
        f = self.file
        used = {r for t in f.tests for r, _ in t.scenarios}
        used |= {f.named[p.ref.scenario] for t in f.tests for p in t.predicates if p.ref.scenario}
        new = {old: i for i, old in enumerate(sorted(used))}
        f.runs = [f.runs[old] for old in sorted(used)]
        f.named = {name: new[old] for name, old in f.named.items() if old in new}
        f.tests = [
            dataclasses.replace(t, scenarios=tuple((new[r], label) for r, label in t.scenarios))
            for t in f.tests
        ]

    def _base(self, data: Mapping[str, Any]) -> tuple[Path, Mapping[str, Any], dict, list]:
        """Model file, base overrides, run settings, and the levers sections with where
        they are written (check file last): the check file's settings replace the base
        scenario's."""
        from sd_model.scenarios import Scenario

        if ("model" in data) == ("base_scenario" in data):
            raise self.doc.error(
                (), "give either 'model' (a model file) or 'base_scenario' (a scenario file)."
            )
        base_set: Mapping[str, Any] = {}
        run_kw: dict[str, Any] = {}
        levers: list[tuple[Mapping[str, Any], Callable[[str], str]]] = []
        if "base_scenario" in data:
            base = Scenario.from_yaml(self._path(data["base_scenario"], ("base_scenario",)))
            model_path = Path(base.model).resolve()
            base_set, run_kw = base.set, base.run_kwargs()
            line = base.lines.get
            levers.append((base.levers, lambda n: f"{base.source}:{line('levers.' + n, '')}"))
        else:
            model_path = self._path(data["model"], ("model",))
        # The time, solver and levers sections are those of scenario files, read by them.
        own = {k: data[k] for k in ("time", "solver", "levers") if k in data}
        settings = Scenario.from_dict(
            {"model": str(model_path), **own},
            source=self.doc.source,
            lines={".".join(map(str, k)): v for k, v in self.doc.lines.items()},
        )
        levers.append((settings.levers, lambda n: self.doc.at(("levers", n))))
        return model_path, base_set, run_kw | settings.run_kwargs(), levers

    def _path(self, value: Any, key: Key) -> Path:
        if not isinstance(value, str) or not value.strip():
            raise self.doc.error(key, f"'{key[-1]}' must be a path.")
        p = (self.dir / value).expanduser()
        if not p.is_file():
            raise self.doc.error(
                key,
                f"{value!r} not found (looked for {p.resolve()}; paths are relative to the "
                "check file).",
            )
        return p.resolve()

    def _check_params(self, params: Any, key: Key) -> None:
        if not isinstance(params, Mapping):
            raise self.doc.error(key, "'set' must be a mapping of parameter -> value.")
        self.model.normalize_params(params, where=self.doc.at(key))

    def _add(self, params: Mapping[str, Any], key: Key) -> int:
        """The index of the run with these overrides (checked and added once)."""
        canonical = json.dumps(
            {lever_key(k): v for k, v in params.items()}, sort_keys=True, default=str
        )
        if canonical not in self.index:
            self._check_params(params, key)
            self.index[canonical] = len(self.file.runs)
            self.file.runs.append(Run(dict(params)))
        return self.index[canonical]

    # ---------------------------------------------------------------- levers
    def _ranges(
        self, sections: list[tuple[Mapping[str, Any], Callable[[str], str]]]
    ) -> dict[str, tuple[str, float, float]]:
        """normalized lever -> (name, min, max): the model's ``[min, max]`` units field, then
        the ``levers:`` sections (base scenario, check file), each replacing the earlier."""
        from sd_model.metadata import model_metadata

        ranges: dict[str, tuple[str, float, float]] = {}
        for e in model_metadata(self.model.abstract_model, self.model.path).elements:
            lo, hi = e.limits
            if e.type == "Constant" and not e.control and lo is not None and hi is not None:
                ranges[lever_key(e.name)] = (e.name, lo, hi)
        for section, where in sections:
            for name, spec in section.items():
                self.model.normalize_params({name: 0.0}, where=where(name))
                if "min" in spec:  # else the range is the model's (scenario files' rule)
                    ranges[lever_key(name)] = (name, float(spec["min"]), float(spec["max"]))
                elif lever_key(name) not in ranges:
                    raise CheckFileError(
                        f"{where(name)}: lever {name!r} has no range: give [min, max] here or "
                        "in the model's units field."
                    )
        return ranges

    def _lever(self, name: Any, at: Any, key: Key) -> dict[str, float]:
        """``{name: value}`` for lever ``name`` at min, max or a number."""
        if not isinstance(name, str):
            raise self.doc.error(key, f"a lever is a parameter name, got {_show(name)}.")
        value = number(at)
        if value is None:
            if at not in ("min", "max"):
                raise self.doc.error(key, f"'at' must be min, max or a number, got {_show(at)}.")
            found = self.ranges.get(lever_key(name)) or self.ranges.get(
                lever_key(name.partition("[")[0])
            )
            if found is None:
                raise self.doc.error(
                    key,
                    f"no range for lever {name!r}: give it under 'levers:' in the check file "
                    "(name: [min, max]), in the base scenario's 'levers:', or as [min, max] in "
                    "the model's units field.",
                )
            value = found[1] if at == "min" else found[2]
        if (lever_key(name), value) not in self.checked:
            self._check_params({name: value}, key)
            self.checked.add((lever_key(name), value))
        return {name: value}

    def _levers(self, which: Any, key: Key) -> list[str]:
        if which == "all":
            if not self.ranges:
                raise self.doc.error(
                    key, "no lever has a range: list them under 'levers:' (name: [min, max])."
                )
            return [name for name, _, _ in self.ranges.values()]
        if not isinstance(which, list) or not which:
            raise self.doc.error(key, "'each_lever' is 'all' or a list of lever names.")
        return which

    # ---------------------------------------------------------------- scenarios
    def _named(self, section: Any) -> None:
        if section is None:
            return
        if not isinstance(section, Mapping):
            raise self.doc.error(("scenarios",), "'scenarios' must map names to scenarios.")
        for name, spec in section.items():
            key = ("scenarios", name)
            if not isinstance(name, str) or name == BASELINE:
                raise self.doc.error(key, f"{name!r}: a scenario name is text other than baseline.")
            runs = self._scenario(spec, key)
            if len(runs) != 1:
                raise self.doc.error(key, f"{name!r} must be one scenario, not {len(runs)}.")
            self.file.named[name] = runs[0][0]

    def _scenario(self, spec: Any, key: Key) -> list[tuple[int, str]]:
        """The runs a scenario entry stands for, as (run index, label)."""
        if isinstance(spec, str):
            if spec not in self.file.named:
                raise self.doc.error(key, self._unknown_scenario(spec))
            return [(self.file.named[spec], spec)]
        # The same entry (a YAML alias, say) stands for the same runs: expand it once.
        memo = json.dumps(spec, sort_keys=True, default=str)
        if memo not in self.expanded:
            self.expanded[memo] = self._expand(spec, key)
        return self.expanded[memo]

    def _expand(self, spec: Any, key: Key) -> list[tuple[int, str]]:
        _keys(self.doc, spec, SCENARIO_KEYS, key, "a scenario")
        kinds = [k for k in SCENARIO_KINDS if k in spec and k != "set"] or ["set"]
        kind = kinds[0]
        if len(kinds) > 1 or (kind == "set" and "set" not in spec):
            raise self.doc.error(
                key,
                f"a scenario is one of {', '.join(SCENARIO_KINDS)} (with 'set' allowed beside "
                f"the others); got {kinds if len(kinds) > 1 else 'none'}.",
            )
        extra = spec.get("set") or {}
        self._check_params(extra, (*key, "set"))
        if ("at" in spec) != (kind in ("lever", "each_lever")):
            raise self.doc.error(key, "'at' (min, max or a number) goes with lever/each_lever.")
        single = kind in ("set", "file", "lever", "all_levers")
        if "name" in spec and not (single and isinstance(spec["name"], str)):
            raise self.doc.error((*key, "name"), "'name' labels a single scenario (text).")
        base = self.base_set
        variants: list[tuple[str, dict[str, Any]]] = []  # (label, lever values)
        if kind == "set":
            variants.append((_label(extra) if extra else BASELINE, {}))
        elif kind == "file":
            label, file_set = self._file(spec["file"], (*key, "file"))
            base = merge(base, file_set)
            variants.append((label, {}))
        elif kind == "lever":
            at = spec["at"]
            variants.append((f"{spec['lever']} at {at}", self._lever(spec["lever"], at, key)))
        elif kind == "each_lever":
            names = self._levers(spec["each_lever"], (*key, "each_lever"))
            at = spec["at"]
            variants += [(f"{n} at {at}", self._lever(n, at, (*key, "each_lever"))) for n in names]
        elif kind == "all_levers":
            variants.append(self._all_at(spec["all_levers"], (*key, "all_levers")))
        else:
            if spec["preset"] != "matrix":
                raise self.doc.error((*key, "preset"), "the only preset is 'matrix'.")
            names = self._levers("all", key)
            variants.append((BASELINE, {}))
            for at in ("min", "max"):
                variants += [(f"{n} at {at}", self._lever(n, at, key)) for n in names]
            variants += [self._all_at(at, key) for at in ("min", "max")]
        extra_label = f" + {_label(extra)}" if extra and kind != "set" else ""
        out = []
        for label, values in variants:
            name = spec["name"] if single and "name" in spec else label + extra_label
            out.append((self._add(merge(base, values, extra), key), name))
        return out

    def _all_at(self, at: Any, key: Key) -> tuple[str, dict[str, Any]]:
        if at not in ("min", "max"):
            raise self.doc.error(key, f"all_levers is min or max, got {_show(at)}.")
        values: dict[str, Any] = {}
        for name in self._levers("all", key):
            values = merge(values, self._lever(name, at, key))
        return f"all levers at {at}", values

    def _file(self, value: Any, key: Key) -> tuple[str, dict[str, Any]]:
        from sd_model.scenarios import Scenario

        sc = Scenario.from_yaml(self._path(value, key))
        if Path(sc.model).resolve() != Path(self.model.path).resolve():
            raise self.doc.error(key, f"{value} runs {sc.model}, not {self.model.path}.")
        if sc.sweep:
            raise self.doc.error(key, f"{value} is a sweep; a check scenario is one run.")
        self._check_params(sc.set, key)
        return sc.name, dict(sc.set)

    def _unknown_scenario(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self.file.named), n=2, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        return (
            f"unknown scenario {name!r}.{hint} Named scenarios: {', '.join(self.file.named)} "
            "(define more under 'scenarios:')."
        )

    # ---------------------------------------------------------------- tests
    def _expr(self, text: Any, key: Key) -> Expression:
        if number(text) is not None and not isinstance(text, str):
            text = str(text)
        if not isinstance(text, str):
            raise self.doc.error(key, f"a variable is a name or an expression, got {_show(text)}.")
        return self.names.parse(text, self.doc.fail(key))

    def _test(self, group: str, test: Any, key: Key) -> Test:
        _keys(self.doc, test, TEST_KEYS, key, "a test")
        it = test.get("it")
        if not isinstance(it, str) or not it.strip():
            raise self.doc.error(key, "a test needs 'it': what is expected, in words.")
        if ("variable" in test) == ("variables" in test):
            raise self.doc.error(key, "give 'variable' (one) or 'variables' (a list).")
        if "variable" in test:
            var_keys: list[Key] = [(*key, "variable")]
            texts = [test["variable"]]
        else:
            texts = test["variables"]
            if not isinstance(texts, list) or not texts:
                raise self.doc.error((*key, "variables"), "'variables' must be a list.")
            var_keys = [(*key, "variables", i) for i in range(len(texts))]
        variables = [self._expr(t, k) for t, k in zip(texts, var_keys, strict=True)]
        specs = test.get("scenarios", [BASELINE])
        if not isinstance(specs, list) or not specs:
            raise self.doc.error((*key, "scenarios"), "'scenarios' must be a list.")
        scenarios = [
            s for i, spec in enumerate(specs) for s in self._scenario(spec, (*key, "scenarios", i))
        ]
        for_each = test.get("for_each")
        if for_each is not None:
            dims = {normalize_name(d): d for d in self.names.coords}
            if not isinstance(for_each, str) or normalize_name(for_each) not in dims:
                raise self.doc.error(
                    (*key, "for_each"),
                    f"{for_each!r} is not a dim; dims: {', '.join(self.names.coords)}.",
                )
            for_each = dims[normalize_name(for_each)]
            for v, k in zip(variables, var_keys, strict=True):
                if for_each not in v.dims:
                    raise self.doc.error(k, f"for_each: {v.text!r} has no dim {for_each!r}.")
        predicates = self._predicates(test, key)
        for v in variables:
            for p in predicates:
                self._compatible(v, p, (*key, p.op))
        return Test(
            group=group,
            it=" ".join(it.split()),
            line=self.doc.at(key),
            scenarios=tuple(dict.fromkeys(scenarios)),
            variables=tuple(variables),
            predicates=predicates,
            times=self._times(test["at"], (*key, "at")) if "at" in test else None,
            for_each=for_each,
        )

    def _predicates(self, test: Mapping[str, Any], key: Key) -> tuple[Predicate, ...]:
        ops = [k for k in PREDICATES if k in test]
        if not ops:
            raise self.doc.error(key, f"a test needs a predicate: {', '.join(PREDICATES)}.")
        tolerances = {}
        for name in TOLERANCES:
            if name in test:
                value = number(test[name])
                if value is None or not (value >= 0 and math.isfinite(value)):
                    raise self.doc.error((*key, name), f"{name} must be a number >= 0.")
                tolerances[name] = value
        if tolerances and "approx" not in ops:
            raise self.doc.error(key, "tolerance and rel_tolerance go with 'approx'.")
        if "approx" in ops and not tolerances:
            raise self.doc.error(
                (*key, "approx"),
                "approx needs 'tolerance' (absolute) and/or 'rel_tolerance' (relative to the "
                "expected value).",
            )
        return tuple(
            Predicate(op, self._ref(test[op], (*key, op)), **(tolerances if op == "approx" else {}))
            for op in ops
        )

    def _compatible(self, variable: Expression, pred: Predicate, key: Key) -> None:
        """An expected value varies over the variable's dims (or fewer), on its elements."""
        ref = pred.ref.expr
        if ref is None:
            return
        extra = [d for d in ref.dims if d not in variable.dims]
        if extra:
            raise self.doc.error(
                key,
                f"the expected value {ref.text!r} has dims {extra} that {variable.text!r} has "
                "not; select elements or reduce them (SUM(x[Dim!])).",
            )
        for dim, elements in ref.dims.items():
            if variable.dims[dim] != elements:
                raise self.doc.error(
                    key,
                    f"{ref.text!r} and {variable.text!r} cover different elements of {dim!r}.",
                )

    def _ref(self, value: Any, key: Key) -> Ref:
        as_number = number(value)
        if as_number is not None:
            if math.isnan(as_number):
                raise self.doc.error(key, "NaN is not a value to compare with.")
            return Ref(number=as_number)
        if isinstance(value, str):
            if value not in self.file.named:
                raise self.doc.error(
                    key,
                    self._unknown_scenario(value) + " A number or a scenario name goes here; "
                    "{variable: EXPR} compares with another variable.",
                )
            return Ref(scenario=value)
        if isinstance(value, Mapping) and value and set(value) <= {"scenario", "variable"}:
            scenario = value.get("scenario")
            if scenario is not None and scenario not in self.file.named:
                raise self.doc.error(key, self._unknown_scenario(str(scenario)))
            expr = self._expr(value["variable"], key) if "variable" in value else None
            return Ref(scenario=scenario, expr=expr)
        raise self.doc.error(
            key,
            "compare with a number, a scenario name or {scenario: NAME, variable: EXPR}; "
            f"got {_show(value)}.",
        )

    def _times(self, value: Any, key: Key) -> tuple[float, ...]:
        saved = self.saved
        span = f"saved times: {saved[0]:g} to {saved[-1]:g} every {self.file.grid.saveper:g}"
        if value in ("initial", "final"):
            return (float(saved[0] if value == "initial" else saved[-1]),)
        if isinstance(value, Mapping):
            if not value or not set(value) <= {"from", "to"}:
                raise self.doc.error(key, "a time range is {from: T1, to: T2} (both inclusive).")
            lo, hi = number(value.get("from", saved[0])), number(value.get("to", saved[-1]))
            if lo is None or hi is None:
                raise self.doc.error(key, "'from' and 'to' must be numbers.")
            eps = 1e-9 * max(1.0, abs(lo), abs(hi))
            picked = tuple(float(t) for t in saved if lo - eps <= t <= hi + eps)
            if not picked:
                raise self.doc.error(key, f"no saved time from {lo:g} to {hi:g} ({span}).")
            return picked
        out = []
        for item in value if isinstance(value, list) else [value]:
            t = number(item)
            if t is None:
                raise self.doc.error(
                    key,
                    "'at' is a time, a list of times, {from: T1, to: T2}, initial or final; "
                    f"got {_show(item)}.",
                )
            near = np.flatnonzero(np.abs(saved - t) <= 1e-9 * max(1.0, abs(t)))
            if not near.size:
                raise self.doc.error(key, f"{t:g} is not a saved time ({span}).")
            out.append(float(saved[near[0]]))
        return tuple(out)
