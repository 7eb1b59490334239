"""Scenario files: a model, its time settings, solver and parameter overrides, in YAML.

```yaml
name: baseline
description: All policy levers off.
model: ../models/example_regions.mdl      # relative to this file
time: {initial_time: 2022, final_time: 2050, saveper: 1, time_step: 0.25}
solver: {method: RK45, backend: auto, rtol: 1.0e-6, atol: 1.0e-6}
set:
  growth rate: 0.02
  transfer share[North]: 0.1
params_file: ../params/fitted.yaml     # fitted values (Fit.to_yaml); `set:` wins over them
levers:                                   # sliders of the policy explorer (sd-model explore)
  growth rate: [0, 0.05, 0.005]           # [min, max] or [min, max, step]
  transfer share: {min: 0, max: 0.5, step: 0.05, group: Transfers, label: Transfer share}
uncertainty:                              # bands (sd-model run): the run once per draw
  draws: ../params/draws.csv              # parameter draws (sd-model calibrate writes them)
  n: 200                                  # use n of them, picked with seed (default all)
  seed: 1
  quantiles: [0.05, 0.25, 0.5, 0.75, 0.95]
  outputs: [Population, GDP]              # default: every variable that changes in time
```

Files are read with ``yaml.safe_load`` semantics; unknown keys and unknown parameters
are errors naming the file, the line and the key.

With ``uncertainty:``, ``sd-model run`` (and :meth:`Scenario.run_with_bands`) writes
the central run plus, for each output, a variable ``<name>_band`` with dims ``(quantile,
time, *subscripts)``: the quantiles of that output over the runs of the scenario with
each parameter draw (one batched evaluation). The draws replace the values the parameter
files give (the fitted values); what the scenario's own ``set:`` gives holds in every draw.

The keys of ``time:`` and ``solver:`` are the fields of :class:`~sd_model.options.
TimeSettings` and :class:`~sd_model.options.SolverOptions` (the keywords of
``Model.run``). Older files' spellings are still read: ``time: {initial, final}`` for
``initial_time`` and ``final_time``, and a top-level ``save_every:`` (deprecated) for
``time.saveper``.

The initial or final time may follow the data instead of naming a year:
``time: {initial: {latest_year_in: ../models/data/series_*.csv}, final: 2050}`` starts
the run in the latest year in which every value column of those files has a value (paths
relative to the scenario file; see :mod:`sd_model.data_years`), so appending a newer
year to the data re-bases the scenario without editing it.
"""

from __future__ import annotations

import difflib
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xarray as xr
import yaml

from sd_model._errors import ScenarioError
from sd_model.backends import BACKENDS, BackendName
from sd_model.data_years import DataYearError, is_year_reference, latest_complete_year
from sd_model.integrate import METHODS, SolverOptions
from sd_model.options import TimeSettings, resolve_solver
from sd_model.overrides import normalize_name

if TYPE_CHECKING:
    from sd_model.model import Model

TOP_KEYS = (
    "name",
    "description",
    "model",
    "time",
    "solver",
    "set",
    "sweep",
    "outputs",
    "save_every",
    "levers",
    "params_file",
    "uncertainty",
    "seed",
)
TIME_KEYS = ("initial_time", "final_time", "time_step", "saveper")
#: Short spellings of older scenario files (and of the policy explorer's saved files).
TIME_ALIASES = {"initial": "initial_time", "final": "final_time"}
SOLVER_KEYS = ("method", "backend", "rtol", "atol", "max_step")
UNCERTAINTY_KEYS = ("draws", "n", "quantiles", "outputs", "seed")
LEVER_KEYS = ("min", "max", "step", "group", "label", "description", "baseline")


@dataclass(frozen=True)
class Scenario:
    """A runnable scenario: model file, time settings, solver and overrides.

    Parameters
    ----------
    model : pathlib.Path
        The model file.
    name : str
        Scenario name (recorded in the results' attrs).
    description : str
        Free text.
    time : mapping
        Any of ``initial_time``, ``final_time``, ``time_step``, ``saveper`` (the
        fields of :class:`~sd_model.options.TimeSettings`).
    solver : mapping
        Any of ``method``, ``backend``, ``rtol``, ``atol``, ``max_step``.
    set : mapping
        Parameter overrides, as :meth:`sd_model.Model.run` takes them.
    sweep : mapping
        The ``sweep:`` section (``grid:`` and/or ``samples:``), read by the sweep
        runner; ignored by :meth:`run`.
    outputs : tuple of str
        Variables a sweep keeps (default all).
    levers : mapping
        The ``levers:`` section: parameter name -> ``{min, max, step, group, label,
        description, baseline}`` (each key optional here; a missing range is taken from
        the model's ``[min, max, step]`` units field). Read by the policy explorer
        (:mod:`sd_model.explore`) and model checks; ignored by :meth:`run`.
    uncertainty : mapping
        The ``uncertainty:`` section, checked: ``draws`` (absolute path of a parameter
        draws file: ``.csv`` with one row per draw and one column per parameter, as
        ``sd-model calibrate`` writes it, or a ``.nc`` posterior sample of
        :func:`sd_model.sample_posterior`), ``n``, ``quantiles``, ``outputs``, ``seed``.
        Read by :meth:`run_with_bands` (and ``sd-model run``); empty when the file has
        none.
    seed : int or None
        The ``seed:`` key: seed of the model's RANDOM functions (see
        :meth:`sd_model.Model.run`); None draws fresh entropy, recorded in the results.
    source : str
        Where the scenario came from (a file path), for error messages.
    """

    model: Path
    name: str = ""
    description: str = ""
    time: Mapping[str, float] = field(default_factory=dict)
    solver: Mapping[str, Any] = field(default_factory=dict)
    set: Mapping[str, Any] = field(default_factory=dict)
    sweep: Mapping[str, Any] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    levers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    uncertainty: Mapping[str, Any] = field(default_factory=dict)
    seed: int | None = None
    source: str = "<scenario>"
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)
    #: Normalised names the file's own ``set:`` gives (not its parameter files): the
    #: scenario's assumptions, which :meth:`run_with_bands` holds in every draw.
    own_set: frozenset[str] = field(default_factory=frozenset, compare=False, repr=False)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Scenario:
        """Read and validate a scenario file.

        Parameters
        ----------
        path : path-like
            The YAML file.

        Returns
        -------
        Scenario

        Raises
        ------
        ScenarioError
            Malformed YAML, unknown keys, wrong types or a missing model file; the
            message names the file, line and key.

        Examples
        --------
        >>> sc = Scenario.from_yaml("scenarios/baseline.yaml")  # doctest: +SKIP
        >>> ds = sc.run()  # doctest: +SKIP
        """
        p = Path(path)
        if not p.is_file():
            raise ScenarioError(f"Scenario file not found: {p}")
        text = p.read_text(encoding="utf-8")
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            # Checked on the node graph before anything is built from it: an alias is one
            # shared node there, while a walk over the built data would visit it once per use.
            _check_nodes(node, str(p))
            data = loader.construct_document(node) if node is not None else None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
            problem = getattr(exc, "problem", None) or str(exc)
            raise ScenarioError(f"{where}: invalid YAML: {problem}") from exc
        except RecursionError as exc:
            raise ScenarioError(f"{p}: invalid YAML: nested too deeply.") from exc
        finally:
            loader.dispose()
        lines = _key_lines(node)
        return cls.from_dict(data, base_dir=p.parent, source=str(p), lines=lines)

    @classmethod
    def from_dict(
        cls,
        data: Any,
        *,
        base_dir: str | os.PathLike[str] = ".",
        source: str = "<scenario>",
        lines: Mapping[str, int] | None = None,
    ) -> Scenario:
        """Validate a scenario given as a mapping (the parsed YAML)."""
        lines = dict(lines or {})
        # Errors about time.initial_time point at the line of an older file's time.initial.
        for short, canonical in TIME_ALIASES.items():
            if f"time.{short}" in lines:
                lines.setdefault(f"time.{canonical}", lines[f"time.{short}"])

        def where(key: str) -> str:
            line = lines.get(key)
            return f"{source}:{line}" if line else source

        if not isinstance(data, Mapping):
            raise ScenarioError(f"{source}: a scenario must be a mapping of keys to values.")
        _check_keys(data, TOP_KEYS, "", where)
        if "model" not in data:
            raise ScenarioError(f"{source}: missing key 'model' (path of the model file).")
        model_value = data["model"]
        if not isinstance(model_value, str) or not model_value.strip():
            raise ScenarioError(f"{where('model')}: 'model' must be a path.")
        model = (Path(base_dir) / model_value).expanduser()
        if not model.is_file():
            raise ScenarioError(
                f"{where('model')}: model file {model_value!r} not found "
                f"(looked for {model.resolve()}; paths are relative to the scenario file)."
            )
        time = _time_section(data, Path(base_dir), where)
        if "time_step" in time and time["time_step"] <= 0:
            raise ScenarioError(f"{where('time.time_step')}: time.time_step must be positive.")
        if "saveper" in time and time["saveper"] <= 0:
            raise ScenarioError(f"{where('time.saveper')}: time.saveper must be positive.")
        if "initial_time" in time and "final_time" in time:
            if time["final_time"] < time["initial_time"]:
                raise ScenarioError(
                    f"{where('time.final_time')}: time.final_time is before time.initial_time."
                )
        solver = _section(data, "solver", SOLVER_KEYS, where)
        for key in ("rtol", "atol", "max_step"):
            if key in solver and _number(solver[key]) is not None:
                solver[key] = _number(solver[key])
        if "method" in solver and solver["method"] not in METHODS:
            raise ScenarioError(
                f"{where('solver.method')}: unknown method {solver['method']!r}; "
                f"choose one of {', '.join(METHODS)}."
            )
        if "backend" in solver and solver["backend"] not in BACKENDS:
            raise ScenarioError(
                f"{where('solver.backend')}: unknown backend {solver['backend']!r}; "
                f"choose one of {', '.join(BACKENDS)}."
            )
        for key in ("rtol", "atol", "max_step"):
            if key in solver and not (_is_number(solver[key]) and solver[key] > 0):
                raise ScenarioError(f"{where('solver.' + key)}: solver.{key} must be positive.")
        overrides = data.get("set") or {}
        if not isinstance(overrides, Mapping):
            raise ScenarioError(f"{where('set')}: 'set' must be a mapping of parameter -> value.")
        own_set = list(overrides)
        if data.get("params_file"):
            overrides = _with_params_files(
                data["params_file"], overrides, Path(base_dir), where("params_file")
            )
        sweep = data.get("sweep") or {}
        if not isinstance(sweep, Mapping):
            raise ScenarioError(f"{where('sweep')}: 'sweep' must be a mapping (grid:, samples:).")
        outputs = data.get("outputs") or []
        if isinstance(outputs, str):
            outputs = [outputs]
        if not isinstance(outputs, list) or not all(isinstance(o, str) for o in outputs):
            raise ScenarioError(f"{where('outputs')}: 'outputs' must be a list of variable names.")
        save_every = data.get("save_every")
        if save_every is not None:
            if not (_is_number(save_every) and save_every > 0):
                raise ScenarioError(
                    f"{where('save_every')}: 'save_every' must be a positive number."
                )
            warnings.warn(
                f"{where('save_every')}: 'save_every' is deprecated; write it as "
                "time.saveper (which applies to runs and sweeps alike).",
                DeprecationWarning,
                stacklevel=3,
            )
            if "saveper" in time and time["saveper"] != float(save_every):
                raise ScenarioError(
                    f"{where('save_every')}: 'save_every' ({save_every:g}) and time.saveper "
                    f"({time['saveper']:g}) differ; give time.saveper only."
                )
            time["saveper"] = float(save_every)
        levers = _levers_section(data.get("levers"), where)
        uncertainty = _uncertainty_section(data.get("uncertainty"), Path(base_dir), where)
        seed = data.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ScenarioError(
                f"{where('seed')}: 'seed' must be a non-negative integer (the seed of the "
                f"model's RANDOM functions), got {seed!r}."
            )
        name = data.get("name") or Path(source).stem
        description = data.get("description") or ""
        if not isinstance(name, str) or not isinstance(description, str):
            raise ScenarioError(f"{source}: 'name' and 'description' must be text.")
        return cls(
            model=model.resolve(),
            name=name,
            description=description,
            time={k: float(v) for k, v in time.items()},
            solver=dict(solver),
            set=dict(overrides),
            sweep=dict(sweep),
            outputs=tuple(outputs),
            levers=levers,
            uncertainty=uncertainty,
            seed=seed,
            source=source,
            lines=lines,
            own_set=frozenset(normalize_name(str(k).split("[")[0]) for k in own_set),
        )

    def load_model(self) -> Model:
        """Load the scenario's model (:func:`sd_model.load`)."""
        from sd_model.model import load

        return load(self.model)

    def time_settings(self) -> TimeSettings:
        """The ``time:`` section as :class:`~sd_model.options.TimeSettings`."""
        return TimeSettings(**{k: self.time.get(k) for k in TIME_KEYS})

    def solver_options(self, model: Model) -> SolverOptions:
        """The ``solver:`` section (without ``backend``) as
        :class:`~sd_model.options.SolverOptions`; the method defaults to the one
        ``model``'s file declares."""
        kw = {k: v for k, v in self.solver.items() if k != "backend"}
        return resolve_solver(model, **kw)

    @property
    def backend(self) -> BackendName:
        """The ``solver.backend`` setting (default ``"auto"``)."""
        return self.solver.get("backend", "auto")

    def run_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :meth:`sd_model.Model.run` (without params): the
        ``time:`` and ``solver:`` sections as shorthand keywords."""
        kw: dict[str, Any] = {k: self.time[k] for k in TIME_KEYS if k in self.time}
        kw.update(self.solver)
        return kw

    def run(self, model: Model | None = None, **kwargs: Any) -> xr.Dataset:
        """Run the scenario.

        Parameters
        ----------
        model : sd_model.Model, optional
            An already loaded model (default: load ``self.model``).
        **kwargs
            Replace the scenario's time or solver settings (``method=``, ``final_time=``,
            ...); ``params=`` adds overrides on top of the scenario's ``set``.

        Returns
        -------
        xarray.Dataset
        """
        model = model if model is not None else self.load_model()
        params, run_kw = self._run_settings(kwargs)
        # Check the file's own overrides first so errors name the scenario file and line.
        for key, value in self.set.items():
            model.normalize_params({key: value}, where=f"{self._where('set.' + key)} (set)")
        ds = model.run(params, scenario=self.name, **run_kw)
        ds.attrs["scenario_file"] = self.source
        ds.attrs["scenario_description"] = self.description
        return ds

    def _run_settings(self, kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The overrides and ``Model.run`` keywords of a run given ``run``'s ``kwargs``."""
        kwargs = dict(kwargs)
        params = dict(self.set)
        extra = kwargs.pop("params", None) or {}
        # A value given at run time replaces the scenario's value of that parameter,
        # element edits included ("x[A]" in the file must not survive "x" given here).
        for key in extra:
            if "[" not in key:
                base = normalize_name(key)
                for old in [k for k in params if normalize_name(k.split("[")[0]) == base]:
                    del params[old]
        params.update(extra)
        run_kw = self.run_kwargs()
        if self.seed is not None:
            run_kw["seed"] = self.seed
        # An option object given here replaces the file's section it covers.
        if kwargs.get("solver") is not None:
            run_kw = {k: v for k, v in run_kw.items() if k not in SOLVER_KEYS or k == "backend"}
        if kwargs.get("time") is not None:
            run_kw = {k: v for k, v in run_kw.items() if k not in TIME_KEYS}
        run_kw.update(kwargs)
        return params, run_kw

    def run_with_bands(self, model: Model | None = None, **kwargs: Any) -> xr.Dataset:
        """Run the scenario and, when it declares ``uncertainty:``, its bands.

        The central run is :meth:`run`'s. The bands run the same scenario (its overrides,
        time and solver settings, and ``kwargs``) once per parameter draw of the
        ``uncertainty.draws`` file, as one batched evaluation, and add each output's
        quantiles as a variable ``<name>_band`` with dims ``(quantile, time, *subscripts)``
        (attrs ``band_of`` and the draws used). A drawn parameter takes its draws instead
        of the value of the scenario's parameter files (the fitted values), but is held
        at its value in every draw when the scenario's own ``set:`` or ``params=`` gives
        it (an assumption of the scenario); every other override holds in every draw.

        Parameters
        ----------
        model : sd_model.Model, optional
        **kwargs
            As :meth:`run`.

        Returns
        -------
        xarray.Dataset
            The central run, plus the ``*_band`` variables when the scenario declares
            uncertainty.

        Examples
        --------
        >>> ds = Scenario.from_yaml("scenarios/baseline.yaml").run_with_bands()  # doctest: +SKIP
        >>> ds.gdp_band.sel(quantile=0.95, time=2050)  # doctest: +SKIP
        """
        model = model if model is not None else self.load_model()
        ds = self.run(model, **kwargs)
        if not self.uncertainty:
            return ds
        from sd_model.calibrate.bands import add_bands, scenario_bands

        params, run_kw = self._run_settings(kwargs)
        given = {normalize_name(k.split("[")[0]) for k in kwargs.get("params") or {}}
        given |= self.own_set
        bands = scenario_bands(
            model,
            self.uncertainty,
            params,
            run_kw,
            held=given,
            where=self._where("uncertainty"),
        )
        return add_bands(ds, bands)

    def _where(self, key: str) -> str:
        line = self.lines.get(key)
        return f"{self.source}:{line}" if line else self.source


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Any) -> float | None:
    """A float from a YAML value; YAML 1.1 reads ``1e-8`` (no dot) as text, so accept it."""
    if _is_number(value):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _check_keys(data: Mapping[str, Any], allowed: tuple[str, ...], prefix: str, where: Any) -> None:
    for key in data:
        if key not in allowed:
            full = f"{prefix}{key}"
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            scope = f"in '{prefix[:-1]}'" if prefix else "at the top level"
            raise ScenarioError(
                f"{where(full)}: unknown key {key!r} {scope}.{hint} Allowed: {', '.join(allowed)}."
            )


def _time_section(data: Mapping[str, Any], base_dir: Path, where: Any) -> dict[str, float]:
    """The ``time:`` section as numbers, keyed by TimeSettings' field names; a year may be
    a ``{latest_year_in: ...}`` reference to data files (:mod:`sd_model.data_years`)."""
    raw = _section(data, "time", TIME_KEYS + tuple(TIME_ALIASES), where)
    out: dict[str, float] = {}
    for key, value in raw.items():
        canonical = TIME_ALIASES.get(key, key)
        if canonical in out:
            raise ScenarioError(
                f"{where('time.' + key)}: time.{key} and time.{canonical} are the same "
                "setting; give it once."
            )
        if canonical in ("initial_time", "final_time") and is_year_reference(value):
            try:
                value = latest_complete_year(value, base_dir, f"{where('time.' + key)}: time.{key}")
            except DataYearError as exc:
                raise ScenarioError(str(exc)) from exc
        number = _number(value)
        if number is None or not math.isfinite(number):
            raise ScenarioError(
                f"{where('time.' + key)}: time.{key} must be a number"
                + (
                    " or {latest_year_in: <csv file>}."
                    if canonical in ("initial_time", "final_time")
                    else "."
                )
            )
        out[canonical] = number
    return out


def _section(data: Mapping[str, Any], name: str, allowed: tuple[str, ...], where: Any) -> dict:
    value = data.get(name) or {}
    if not isinstance(value, Mapping):
        raise ScenarioError(f"{where(name)}: {name!r} must be a mapping.")
    _check_keys(value, allowed, f"{name}.", where)
    return dict(value)


def _with_params_files(
    value: Any, overrides: Mapping[str, Any], base_dir: Path, where: str
) -> dict[str, Any]:
    """``set:`` on top of the ``set:`` of parameter files (``sd_model.Fit.to_yaml``).

    Files are read in order, later ones winning; the scenario's own ``set:`` wins over
    them all, a whole value replacing a file's element values of that parameter.
    """
    files = [value] if isinstance(value, str) else value
    if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
        raise ScenarioError(f"{where}: 'params_file' must be a path or a list of paths.")
    merged: dict[str, Any] = {}
    for name in files:
        path = (base_dir / name).expanduser()
        if not path.is_file():
            raise ScenarioError(
                f"{where}: parameter file {name!r} not found (looked for {path.resolve()}; "
                "paths are relative to the scenario file)."
            )
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{path}: invalid YAML: {exc}") from exc
        values = doc.get("set") if isinstance(doc, Mapping) else None
        if not isinstance(values, Mapping):
            raise ScenarioError(f"{path}: a parameter file needs a 'set:' mapping.")
        merged.update(values)
    for key in overrides:
        if "[" not in key:
            base = normalize_name(key)
            for old in [k for k in merged if normalize_name(k.split("[")[0]) == base]:
                del merged[old]
    merged.update(overrides)
    return merged


def _levers_section(section: Any, where: Any) -> dict[str, dict[str, Any]]:
    """The ``levers:`` section, checked: name -> ``{min, max, step, group, label, ...}``.

    A lever is written ``name: [min, max]``, ``name: [min, max, step]``, ``name:`` (range
    from the model's units field) or ``name: {min: .., max: .., step: .., group: ..,
    label: .., description: .., baseline: ..}``. Names are checked against the model by
    the explorer, which has the model loaded.
    """
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ScenarioError(
            f"{where('levers')}: 'levers' must map parameter names to [min, max, step] or to "
            "{min:, max:, step:, group:, label:}."
        )
    out: dict[str, dict[str, Any]] = {}
    bare = where("")  # the file without a line: a key whose line is unknown
    for name, spec in section.items():
        key = f"levers.{name}"

        def at(field_: str, key: str = key) -> str:
            """The line of ``levers.NAME.FIELD``, else of the lever (``[min, max]`` form)."""
            line = where(f"{key}.{field_}")
            return where(key) if line == bare else line

        if not isinstance(name, str) or not name.strip():
            raise ScenarioError(f"{where('levers')}: lever names must be text, got {name!r}.")
        if spec is None:
            spec = {}
        elif isinstance(spec, list):
            if len(spec) not in (2, 3):
                raise ScenarioError(
                    f"{where(key)}: lever {name!r}: a list must be [min, max] or "
                    f"[min, max, step], got {len(spec)} values."
                )
            spec = dict(zip(("min", "max", "step"), spec, strict=False))
        elif isinstance(spec, Mapping):
            _check_keys(spec, LEVER_KEYS, f"{key}.", where)
            spec = dict(spec)
        else:
            raise ScenarioError(
                f"{where(key)}: lever {name!r} must be [min, max], [min, max, step] or a "
                "mapping with min, max, step, group, label, description, baseline."
            )
        lever: dict[str, Any] = {}
        for field_ in ("min", "max", "step"):
            if field_ in spec:
                number = _number(spec[field_])
                if number is None or not math.isfinite(number):
                    raise ScenarioError(
                        f"{at(field_)}: lever {name!r}: {field_} must be a "
                        f"number, got {spec[field_]!r}."
                    )
                lever[field_] = number
        if ("min" in lever) != ("max" in lever):
            raise ScenarioError(
                f"{where(key)}: lever {name!r}: give both min and max (or neither, to take "
                "the range from the model's units field)."
            )
        if "min" in lever and not lever["min"] < lever["max"]:
            raise ScenarioError(
                f"{where(key)}: lever {name!r}: min ({lever['min']:g}) must be below max "
                f"({lever['max']:g})."
            )
        if "step" in lever and not lever["step"] > 0:
            raise ScenarioError(f"{where(key)}: lever {name!r}: step must be positive.")
        if "step" in lever and "min" in lever and lever["step"] > lever["max"] - lever["min"]:
            raise ScenarioError(
                f"{where(key)}: lever {name!r}: step ({lever['step']:g}) is larger than the "
                f"range {lever['min']:g} to {lever['max']:g}."
            )
        for field_ in ("group", "label", "description"):
            if field_ in spec:
                if not isinstance(spec[field_], str):
                    raise ScenarioError(f"{at(field_)}: lever {name!r}: {field_} must be text.")
                lever[field_] = spec[field_]
        if "baseline" in spec:
            lever["baseline"] = _lever_baseline(name, spec["baseline"], at("baseline"))
        out[name] = lever
    return out


#: Quantiles of the bands when the file does not list them: the 90 % and 50 % bands and
#: the median, the nested bands of a fan chart.
DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _uncertainty_section(section: Any, base_dir: Path, where: Any) -> dict[str, Any]:
    """The ``uncertainty:`` section, checked; errors name the file, line and key.

    ```yaml
    uncertainty:
      draws: ../models/params/forecast/draws.csv  # parameter draws (sd-model calibrate)
      n: 200                # use 200 of them (default: all)
      quantiles: [0.05, 0.25, 0.5, 0.75, 0.95]
      outputs: [Population, GDP]                  # default: every variable that changes
      seed: 1               # picks the n draws
    ```
    """
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ScenarioError(
            f"{where('uncertainty')}: 'uncertainty' must be a mapping with draws: (a parameter "
            "draws file written by sd-model calibrate), n:, quantiles:, outputs:, seed:."
        )
    _check_keys(section, UNCERTAINTY_KEYS, "uncertainty.", where)

    def at(key: str) -> str:
        line = where(f"uncertainty.{key}")
        return where("uncertainty") if line == where("") else line

    draws = section.get("draws")
    if not isinstance(draws, str) or not draws.strip():
        raise ScenarioError(
            f"{at('draws')}: uncertainty.draws must be the path of a parameter draws file "
            "(draws.csv, written by sd-model calibrate), relative to the scenario file."
        )
    path = (base_dir / draws).expanduser()
    if not path.is_file():
        raise ScenarioError(
            f"{at('draws')}: uncertainty.draws: file {draws!r} not found (looked for "
            f"{path.resolve()}; paths are relative to the scenario file). sd-model calibrate "
            "writes it as draws.csv in its output folder."
        )
    out: dict[str, Any] = {"draws": path.resolve()}
    for key in ("n", "seed"):
        if key in section:
            value = section[key]
            low = 1 if key == "n" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                what = "a positive integer" if key == "n" else "a non-negative integer"
                raise ScenarioError(f"{at(key)}: uncertainty.{key} must be {what}, got {value!r}.")
            out[key] = value
    quantiles = section.get("quantiles", list(DEFAULT_QUANTILES))
    numbers = [_number(q) for q in quantiles] if isinstance(quantiles, list) else [None]
    if not numbers or any(q is None or not 0 < q < 1 for q in numbers):
        raise ScenarioError(
            f"{at('quantiles')}: uncertainty.quantiles must be a list of numbers between 0 "
            f"and 1 (exclusive), e.g. [0.05, 0.5, 0.95]; got {quantiles!r}."
        )
    if len(set(numbers)) != len(numbers):
        raise ScenarioError(f"{at('quantiles')}: uncertainty.quantiles lists a value twice.")
    out["quantiles"] = tuple(sorted(float(q) for q in numbers if q is not None))
    outputs = section.get("outputs")
    if outputs is not None:
        if isinstance(outputs, str):
            outputs = [outputs]
        if not isinstance(outputs, list) or not outputs:
            raise ScenarioError(
                f"{at('outputs')}: uncertainty.outputs must be a list of variable names."
            )
        if not all(isinstance(o, str) and o.strip() for o in outputs):
            raise ScenarioError(
                f"{at('outputs')}: uncertainty.outputs must be a list of variable names."
            )
        out["outputs"] = tuple(outputs)
    return out


def _lever_baseline(name: str, value: Any, where: str) -> float | dict[str, float]:
    """A lever's baseline: a number, or element -> number for a subscripted lever."""

    def number(raw: Any) -> float:
        out = _number(raw)
        if out is None or not math.isfinite(out):
            raise ScenarioError(
                f"{where}: lever {name!r}: baseline must be a number or a mapping of "
                f"elements to numbers, got {raw!r}."
            )
        return out

    if isinstance(value, Mapping):
        return {str(element): number(raw) for element, raw in value.items()}
    return number(value)


# A scenario file is a few dozen keys and values; aliases that expand it by more than this
# many nodes are a "billion laughs" document, not a scenario.
MAX_ALIAS_EXPANSION = 10_000


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_nodes(root: yaml.Node | None, source: str) -> None:
    """Refuse repeated keys, self-referring aliases and alias bombs, visiting each node once.

    An alias is the same node object as its anchor, so the graph has one node per node
    written in the file; counting the nodes each one would expand to (children first,
    memoised by identity) measures the expansion without performing it.
    """
    if root is None:
        return
    expanded: dict[int, int] = {}  # id(node) -> nodes it stands for, aliases expanded
    open_nodes: set[int] = set()  # on the current path: meeting one again is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            expanded[key] = 1 + sum(expanded[id(c)] for c in _children(node))
            if expanded[key] > len(expanded) + MAX_ALIAS_EXPANSION:
                line = node.start_mark.line + 1
                raise ScenarioError(
                    f"{source}:{line}: YAML aliases expand this value to {expanded[key]:,} "
                    f"nodes; a scenario file may repeat at most {MAX_ALIAS_EXPANSION:,} nodes "
                    "through aliases. Write the values out instead."
                )
            continue
        if key in expanded:
            continue
        if key in open_nodes:
            line = node.start_mark.line + 1
            raise ScenarioError(
                f"{source}:{line}: a YAML alias refers to a value that contains it; a "
                "scenario cannot be recursive."
            )
        open_nodes.add(key)
        stack.append((node, True))
        if isinstance(node, yaml.MappingNode):
            _check_unique_keys(node, source)
        stack.extend((c, False) for c in reversed(_children(node)) if id(c) not in expanded)


def _check_unique_keys(node: yaml.MappingNode, source: str) -> None:
    """YAML lets a later key silently replace an earlier one; in a scenario that loses work."""
    seen: dict[str, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue  # not text: refused when the mapping is built ("unhashable key")
        key = str(key_node.value)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise ScenarioError(
                f"{source}:{line}: key {key!r} repeats the one on line {seen[key]}; "
                "merge them into one."
            )
        seen[key] = line


def _key_lines(node: Any, prefix: str = "") -> dict[str, int]:
    """Line numbers (1-based) of mapping keys, as ``time.final`` -> line."""
    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            out[key] = key_node.start_mark.line + 1
            # levers.NAME.min gets a line too: lever errors point at the lever's own key.
            nested = prefix == "" or prefix == "levers."
            if nested and isinstance(value_node, yaml.MappingNode):
                out.update(_key_lines(value_node, prefix=f"{key}."))
    return out
