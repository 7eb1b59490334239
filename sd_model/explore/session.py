"""What the explorer runs: a model, its levers, the base scenario, and runs at lever values.

:func:`load_setup` reads a scenario file (or a model file) once; :class:`Runner` runs the
model at lever values through :func:`sd_model.evaluate.evaluate`, the same batched entry
point ``Model.run`` uses, so a page's numbers are ``Model.run``'s numbers. Runs are
cached by lever values (the baseline is run once, when the server starts).

No Panel here: :mod:`sd_model.explore.app` draws what these objects compute.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sd_model._errors import ParameterError, ScenarioError, SDModelError, SDModelWarning
from sd_model.explore.levers import LeverSet, discover_levers
from sd_model.integrate import SolverOptions, TimeGrid
from sd_model.overrides import normalize_name

if TYPE_CHECKING:
    from sd_model.model import Model
    from sd_model.scenarios import Scenario

__all__ = [
    "BAND_QUANTILES",
    "ExplorerSetup",
    "Run",
    "Runner",
    "ViewSpec",
    "load_setup",
    "read_draws",
]

SCENARIO_SUFFIXES = (".yaml", ".yml")
# The band drawn around the current run when calibration draws are given: a 90 % interval.
BAND_QUANTILES = (0.05, 0.95)


@dataclass(frozen=True)
class ViewSpec:
    """Which variables the page can draw, found from the model's names and dims.

    Attributes
    ----------
    region_dim : str or None
        The subscript range most time-dependent variables use (``Region``).
    regions : tuple of str
        Its elements.
    regional : tuple of str
        py_names of variables over ``region_dim`` alone.
    national : tuple of str
        py_names of time-dependent variables without dims.
    population : str or None
        The regional variable weighting the disparity indices (a variable named
        ``Population``, else a regional stock in persons); ``None``: unweighted.
    per_capita : tuple of str
        Regional variables whose name says "per capita": candidates for disparity.
    names, units, descriptions : dict
        py_name -> the model's name, units and comment.
    """

    region_dim: str | None
    regions: tuple[str, ...]
    regional: tuple[str, ...]
    national: tuple[str, ...]
    population: str | None
    per_capita: tuple[str, ...]
    names: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)

    def default_regional(self) -> str | None:
        """Income per capita if the model has it, else the first per-capita variable."""
        return _prefer(self.per_capita or self.regional, ("income per capita",), self.names)

    def default_national(self) -> str | None:
        """GDP, else total population, else the first national variable."""
        return _prefer(self.national, ("gdp", "total population"), self.names)

    def default_disparity(self) -> str | None:
        """The per-capita variable disparity is measured on by default."""
        return _prefer(self.per_capita, ("income per capita",), self.names)

    def label(self, py_name: str) -> str:
        """``Name (units)`` for axes and menus."""
        units = self.units.get(py_name, "")
        return f"{self.names.get(py_name, py_name)} ({units})" if units else self.names[py_name]


def _prefer(candidates: Sequence[str], wanted: Sequence[str], names: Mapping[str, str]) -> Any:
    by_norm = {normalize_name(names.get(c, c)): c for c in candidates}
    for w in wanted:
        if w in by_norm:
            return by_norm[w]
    return candidates[0] if candidates else None


def view_spec(model: Model) -> ViewSpec:
    """The :class:`ViewSpec` of ``model``."""
    variables = [v for v in model.variables if v.time_dependent]
    counts: dict[str, int] = {}
    for v in variables:
        for d in v.dims:
            counts[d] = counts.get(d, 0) + 1
    region_dim = max(counts, key=lambda d: counts[d]) if counts else None
    regional = tuple(v.py_name for v in variables if region_dim and v.dims == (region_dim,))
    national = tuple(v.py_name for v in variables if not v.dims)
    names = {v.py_name: v.name for v in model.variables}
    units = {v.py_name: v.units for v in model.variables}
    stocks = {v.py_name for v in model.variables if v.sd_kind == "stock"}
    population = next((p for p in regional if normalize_name(names[p]) == "population"), None)
    if population is None:
        population = next(
            (p for p in regional if p in stocks and "person" in units[p].lower()), None
        )
    per_capita = tuple(p for p in regional if "per capita" in normalize_name(names[p]))
    return ViewSpec(
        region_dim=region_dim,
        regions=tuple(model.coords[region_dim]) if region_dim else (),
        regional=regional,
        national=national,
        population=population,
        per_capita=per_capita,
        names=names,
        units=units,
        descriptions={v.py_name: v.description for v in model.variables},
    )


@dataclass(frozen=True)
class ExplorerSetup:
    """Everything a page needs before its first run.

    Attributes
    ----------
    model : sd_model.Model
    levers : LeverSet
    base : dict
        The scenario's overrides of parameters that are not levers (as written in the
        file).
    start : dict
        Lever key -> value the page opens with (the scenario's ``set``, else the
        baseline).
    solver : SolverOptions
    grid : TimeGrid
    backend : {"compiled", "pysd"}
        The backend every run uses, chosen once.
    backend_note : str
        Why the compiled backend is not used ('' when it is).
    notices : tuple of str
        Other warnings met while setting up (a method the model file declares...).
    requested_backend : str
        The scenario's ``solver.backend`` (``auto`` by default), written to saved scenarios.
    name, description : str
        The scenario's.
    source : pathlib.Path or None
        The scenario file (None when a model file was opened).
    scenario_levers : dict
        The scenario's ``levers:`` section as read, written back to saved scenarios.
    draws : tuple of dict
        Calibration draws (parameter overrides), one per draw; empty: no bands.
    draws_source : str
        The draws file.
    view : ViewSpec
    jit : bool
        Runs use the numba kernel (Euler on the compiled backend only).
    seed : int or None
        Seed of the model's RANDOM functions: the scenario's ``seed:``, else 0, so that
        a lever move changes the levers only, not the noise (None for a model without
        RANDOM functions).
    """

    model: Model
    levers: LeverSet
    base: dict[str, Any]
    start: dict[str, float]
    solver: SolverOptions
    grid: TimeGrid
    backend: str
    backend_note: str
    notices: tuple[str, ...]
    requested_backend: str
    name: str
    description: str
    source: Path | None
    scenario_levers: dict[str, Any]
    draws: tuple[dict[str, Any], ...]
    draws_source: str
    view: ViewSpec
    jit: bool = False
    seed: int | None = None

    @property
    def title(self) -> str:
        """What the page is about: scenario name and model file."""
        what = f"scenario {self.name}" if self.source is not None else "model as written"
        return f"{self.model.path.name}, {what}"


def load_setup(
    target: str | Path,
    *,
    draws: str | Path | None = None,
    model: Model | None = None,
    method: str | None = None,
    time_step: float | None = None,
    jit: bool = False,
) -> ExplorerSetup:
    """Read a scenario file or a model file for the explorer.

    Parameters
    ----------
    target : path-like
        A scenario file (``.yaml``) or a model file (``.mdl``, ``.xmile``, ``.stmx``).
    draws : path-like, optional
        Calibration draws (see :func:`read_draws`); the page then draws a 90 % band.
    model : sd_model.Model, optional
        The already loaded model of ``target`` (saves loading it again).
    method : str, optional
        Replace the scenario's integration method (saved scenarios record it).
    time_step : float, optional
        Replace the scenario's time step.
    jit : bool
        With ``method="euler"``, run the numba kernel (about 10x faster per run on the
        Kazakhstan model; the first start on a machine compiles it, up to a minute or
        two, then it is cached).

    Returns
    -------
    ExplorerSetup

    Raises
    ------
    ScenarioError, ModelLoadError, ParameterError
        For a malformed scenario, model or lever section, naming file and line.

    Examples
    --------
    >>> setup = load_setup("scenarios/equalization.yaml")  # doctest: +SKIP
    >>> setup.start["equalization transfer intensity"]  # doctest: +SKIP
    0.8
    """
    from sd_model.model import load
    from sd_model.scenarios import Scenario

    path = Path(target)
    scenario: Scenario | None = None
    if path.suffix.lower() in SCENARIO_SUFFIXES:
        scenario = Scenario.from_yaml(path)
        model = model if model is not None else scenario.load_model()
    else:
        model = model if model is not None else load(path)
    levers = discover_levers(model, scenario)
    if not len(levers):
        raise SDModelError(
            f"{path}: no levers to show. Add a 'levers:' section to the scenario file "
            "(name: [min, max, step]) or give constants a units field with a range, like "
            "'Dmnl [0, 1, 0.05]'."
        )
    base, start = _split_set(model, levers, scenario)
    run_kw = scenario.run_kwargs() if scenario is not None else {}
    if method is not None:
        run_kw["method"] = method
    if time_step is not None:
        run_kw["time_step"] = time_step
    requested = str(run_kw.pop("backend", "auto"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SDModelWarning)
        method = model.resolve_method(run_kw.pop("method", None))
        from sd_model.evaluate import choose_backend

        backend, note = choose_backend(model, requested, what="exploring")  # type: ignore[arg-type]
    # choose_backend's own warning is the note; anything else is shown on the page.
    notices = tuple(
        str(w.message)
        for w in caught
        if issubclass(w.category, SDModelWarning) and (not note or note not in str(w.message))
    )
    solver = SolverOptions(
        method=method,
        rtol=float(run_kw.pop("rtol", 1e-6)),
        atol=float(run_kw.pop("atol", 1e-6)),
        max_step=run_kw.pop("max_step", None),
    )
    grid = model.time_grid(**{k: run_kw.get(k) for k in _TIME_KW})
    draw_sets: tuple[dict[str, Any], ...] = ()
    if draws is not None:
        draw_sets = tuple(read_draws(draws, model))
        lever_params = {normalize_name(lev.parameter) for lev in levers}
        for key in draw_sets[0]:
            if normalize_name(key.partition("[")[0]) in lever_params:
                raise ParameterError(
                    f"{draws}: {key!r} is a lever of the page; calibration draws may set only "
                    "other parameters."
                )
    return ExplorerSetup(
        model=model,
        levers=levers,
        base=base,
        start=start,
        solver=solver,
        grid=grid,
        backend=backend,
        backend_note=note,
        notices=notices,
        requested_backend=requested,
        name=scenario.name if scenario is not None else model.path.stem,
        description=scenario.description if scenario is not None else "",
        source=path.resolve() if scenario is not None else None,
        scenario_levers={k: dict(v) for k, v in scenario.levers.items()} if scenario else {},
        draws=draw_sets,
        draws_source=str(draws) if draws is not None else "",
        view=view_spec(model),
        jit=jit and solver.method == "euler" and backend == "compiled",
        seed=_seed(model, scenario),
    )


def _seed(model: Model, scenario: Scenario | None) -> int | None:
    from sd_model.evaluate import uses_random

    if not uses_random(model):
        return None
    return scenario.seed if scenario is not None and scenario.seed is not None else 0


_TIME_KW = ("initial_time", "final_time", "saveper", "time_step")


def _split_set(
    model: Model, levers: LeverSet, scenario: Scenario | None
) -> tuple[dict[str, Any], dict[str, float]]:
    """The scenario's ``set`` split into non-lever overrides and the levers' start values."""
    start = levers.baseline()
    base: dict[str, Any] = {}
    if scenario is None:
        return base, start
    lever_py = {lev.py_name for lev in levers}
    for key, value in scenario.set.items():
        where = f"{scenario._where('set.' + key)} (set)"
        resolved = model.normalize_params({key: value}, where=where)
        py_name = next(iter(resolved))
        if py_name not in lever_py:
            base[key] = value
            continue
        normalized = resolved[py_name]
        for lev in levers:
            if lev.py_name != py_name:
                continue
            if not _element_given(key, value, lev.element):
                continue
            number = _element_value(normalized, lev.element)
            if number is None:
                raise ScenarioError(
                    f"{where}: {key!r} is a lever of the explorer; give it a number (or a "
                    "number per element), not a time series."
                )
            start[lev.key] = lev.check(number, where=where)
    return base, start


def _element_given(key: str, value: Any, element: tuple[str, ...]) -> bool:
    """Whether the override ``key: value`` sets ``element`` (a partial mapping may not)."""
    _, bracket, subs = key.partition("[")
    if bracket:
        parts = tuple(normalize_name(s) for s in subs.rstrip().removesuffix("]").split(","))
        return parts == tuple(normalize_name(e) for e in element)
    if isinstance(value, Mapping) and element:
        wanted = ",".join(normalize_name(e) for e in element)
        return any(",".join(normalize_name(p) for p in str(k).split(",")) == wanted for k in value)
    return True


def _element_value(normalized: Any, element: tuple[str, ...]) -> float | None:
    import pandas as pd
    import xarray as xr

    if isinstance(normalized, pd.Series):
        return None
    if isinstance(normalized, xr.DataArray):
        if normalized.ndim == 0:
            return float(normalized)
        return float(normalized.sel(dict(zip(normalized.dims, element, strict=True))))
    return float(normalized)


def _aligned(model: Model, py_name: str, value: Any) -> Any:
    """A DataArray over all of a variable's dims as an array in the model's element
    order; anything else as it is."""
    import xarray as xr

    dims = _dims_of(model, py_name)
    if not isinstance(value, xr.DataArray) or not dims or set(value.dims) != set(dims):
        return value
    where = {d: list(model.coords[d]) for d in dims}
    return np.asarray(value.transpose(*dims).sel(where).values, dtype=float)


def _dims_of(model: Model, py_name: str) -> tuple[str, ...]:
    for v in model.variables:
        if v.py_name == py_name:
            return v.dims
    return ()


def _in_element_order(
    levers: Sequence[Any], dims: tuple[str, ...], coords: Mapping[str, Sequence[str]]
) -> list[str]:
    """Lever keys in the row-major order of the model's elements over ``dims``."""
    import itertools

    by_element = {tuple(lev.element): lev.key for lev in levers}
    if not dims:
        return [lev.key for lev in levers]
    order = list(itertools.product(*(list(coords[d]) for d in dims)))
    if sorted(by_element) != sorted(order):
        raise SDModelError(
            f"Levers of '{levers[0].parameter}' must cover each of its elements once "
            f"({len(order)}); found {len(by_element)}."
        )
    return [by_element[e] for e in order]


def read_draws(path: str | Path, model: Model) -> list[dict[str, Any]]:
    """Calibration draws: one set of parameter overrides per draw.

    Two layouts are read:

    - CSV, one row per draw, one column per parameter (``name`` or ``name[Element]``, as
      ``--set`` takes them); a column named ``draw`` is the draw's label and is skipped;
    - netCDF, one data variable per parameter (the model's or PySD's name) along a
      ``draw`` dimension, with the parameter's own subscript dims after it.

    Parameters
    ----------
    path : path-like
        The file.
    model : sd_model.Model
        Names and shapes are checked against it.

    Returns
    -------
    list of dict

    Raises
    ------
    ParameterError
        For an unknown parameter or a badly shaped value, naming the file.
    """
    p = Path(path)
    if not p.is_file():
        raise SDModelError(f"Draws file not found: {p}")
    out: list[dict[str, Any]] = []
    if p.suffix.lower() == ".csv":
        import pandas as pd

        table = pd.read_csv(p)
        table = table.drop(columns=[c for c in table.columns if str(c).strip() == "draw"])
        for _, row in table.iterrows():
            out.append({str(k): float(v) for k, v in row.items()})
    elif p.suffix.lower() in (".nc", ".nc4"):
        import xarray as xr

        with xr.open_dataset(p) as ds:
            if "draw" not in ds.dims:
                raise SDModelError(f"{p}: a draws file needs a 'draw' dimension.")
            for i in range(ds.sizes["draw"]):
                draw: dict[str, Any] = {}
                for name, da in ds.data_vars.items():
                    value = da.isel(draw=i).load()
                    draw[str(name)] = (
                        float(value)
                        if value.ndim == 0
                        else value.drop_vars([c for c in value.coords if c not in value.dims])
                    )
                out.append(draw)
    else:
        raise SDModelError(f"{p}: draws are read from .csv or .nc files.")
    if not out:
        raise SDModelError(f"{p}: the draws file has no draws.")
    for i, draw in enumerate(out):
        model.normalize_params(draw, where=f"{p} (draw {i})")
    return out


@dataclass(frozen=True)
class Run:
    """One run at lever values, reduced to arrays (no xarray: the page redraws from these).

    Attributes
    ----------
    values : dict
        Lever key -> value of every lever.
    times : numpy.ndarray
        Saved times, shape ``(T,)``.
    data : dict
        py_name -> array ``(T, *dims)`` of every time-dependent variable.
    backend : str
        The backend that ran.
    seconds : float
        Wall time of the run (the draws' runs included).
    messages : tuple of str
        Solver messages.
    bands : dict
        py_name -> array ``(2, T, *dims)``: the :data:`BAND_QUANTILES` over the
        calibration draws, at the same lever values; empty without draws.
    band_data : dict
        py_name -> array ``(B, T, *dims)``: every draw's run (for derived bands).
    derived : dict
        Numbers computed from this run once and kept with it (the disparity indices
        that both the graphs and the table show); filled by :mod:`sd_model.explore.views`.
    """

    values: dict[str, float]
    times: np.ndarray
    data: dict[str, np.ndarray]
    backend: str
    seconds: float
    messages: tuple[str, ...] = ()
    bands: dict[str, np.ndarray] = field(default_factory=dict)
    band_data: dict[str, np.ndarray] = field(default_factory=dict)
    derived: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


class Runner:
    """Runs the model of a setup at lever values; keeps recent runs (thread-safe).

    Parameters
    ----------
    setup : ExplorerSetup
    cache_size : int
        Runs kept, by lever values; the baseline is always kept.
    """

    def __init__(self, setup: ExplorerSetup, *, cache_size: int = 64) -> None:
        self.setup = setup
        self._cache: OrderedDict[tuple[float, ...], Run] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        model = setup.model
        # Overrides are resolved once here and handed to evaluate() ready for the backend:
        # resolving a 20-element mapping per run costs more than the run of the model.
        where = f"{setup.source or model.path.name} (set)"
        self._base = model.normalize_params(setup.base, where=where)
        if setup.backend == "compiled":
            # Subscripted values as arrays in the model's element order, aligned once:
            # aligning a DataArray costs the compiled backend milliseconds on every run.
            self._base = {k: _aligned(model, k, v) for k, v in self._base.items()}
        self._draws = [
            model.normalize_params({**setup.base, **draw}, where=setup.draws_source)
            for draw in setup.draws
        ]
        self._shapes = {
            parameter: (
                levers[0].py_name,
                _dims_of(model, levers[0].py_name),
                _in_element_order(levers, _dims_of(model, levers[0].py_name), model.coords),
            )
            for parameter, levers in setup.levers.by_parameter()
        }
        self._baseline_key = tuple(setup.levers.baseline().values())
        #: Why the runs do not use the compiled C tier ('' when they do, or when the
        #: method is adaptive or the backend PySD, where there is no such tier).
        self.c_note = self._prepare_c()
        self.baseline = self._compute(setup.levers.baseline())

    def _prepare_c(self) -> str:
        # A page runs the model on every lever move: compile the C tier once now (under
        # a second on the Kazakhstan model) rather than let the first moves run on the
        # slower tiers until they add up to the compile time.
        from sd_model.integrate import METHOD_TABLE

        setup = self.setup
        info = METHOD_TABLE[setup.solver.method]
        if setup.backend != "compiled" or info.adaptive or setup.jit:
            return ""
        system = setup.model.compiled().system([self._base], setup.grid)
        return str(system.prepare_c(info.scheme))

    def params(self, values: Mapping[str, float]) -> dict[str, Any]:
        """The overrides of a run: the scenario's other overrides plus every lever."""
        return {**self.setup.base, **self.setup.levers.overrides(values)}

    def run(self, values: Mapping[str, Any], *, where: str = "levers") -> Run:
        """Run at ``values`` (lever key -> number; missing levers at their baseline).

        Raises
        ------
        ParameterError
            For an unknown lever or a value outside its range.
        IntegrationError
            When the model fails at these values.

        Examples
        --------
        >>> runner = Runner(load_setup("scenarios/equalization.yaml"))  # doctest: +SKIP
        >>> run = runner.run({"equalization transfer intensity": 0.5})  # doctest: +SKIP
        >>> run.data["williamson_index"][-1]  # doctest: +SKIP
        """
        full = self.setup.levers.check(values, where=where)
        key = tuple(full[k] for k in self.setup.levers.keys)
        if key == self._baseline_key:
            return self.baseline
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        run = self._compute(full)
        with self._lock:
            self._cache[key] = run
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return run

    def _lever_overrides(self, full: Mapping[str, float]) -> dict[str, Any]:
        """Lever values as backend-ready overrides (what ``normalize_params`` returns).

        The compiled backend takes a per-element lever as a plain array in the model's
        element order (labelling it as a DataArray costs milliseconds per run for nothing);
        the reference backend gets a labelled DataArray.
        """
        coords = self.setup.model.coords
        labelled = self.setup.backend != "compiled"
        out: dict[str, Any] = {}
        for py_name, dims, keys in self._shapes.values():
            if not dims:
                out[py_name] = float(full[keys[0]])
                continue
            values = np.array([full[k] for k in keys], dtype=float)
            values = values.reshape([len(coords[d]) for d in dims])
            if labelled:
                import xarray as xr

                out[py_name] = xr.DataArray(
                    values, dims=list(dims), coords={d: list(coords[d]) for d in dims}
                )
            else:
                out[py_name] = values
        return out

    def _compute(self, full: dict[str, float]) -> Run:
        from sd_model.evaluate import evaluate

        setup = self.setup
        levers = self._lever_overrides(full)
        start = time.perf_counter()
        ev = evaluate(
            setup.model,
            [{**self._base, **levers}],
            normalized=True,
            solver=setup.solver,
            grid=setup.grid,
            backend=setup.backend,  # type: ignore[arg-type]
            jit=setup.jit,
            warn=False,
            seed=setup.seed,
        )
        timed = {v.py_name for v in ev.variables if v.time_dependent}
        data = {k: v[0] for k, v in ev.values.items() if k in timed}
        bands: dict[str, np.ndarray] = {}
        band_data: dict[str, np.ndarray] = {}
        if setup.draws:
            evd = evaluate(
                setup.model,
                [{**draw, **levers} for draw in self._draws],
                normalized=True,
                solver=setup.solver,
                grid=setup.grid,
                backend=setup.backend,  # type: ignore[arg-type]
                jit=setup.jit,
                warn=False,
                seed=setup.seed,
                stream_ids=[0] * len(self._draws),
            )
            band_data = {k: v for k, v in evd.values.items() if k in timed}
            bands = {k: np.quantile(v, BAND_QUANTILES, axis=0) for k, v in band_data.items()}
        return Run(
            values=full,
            times=np.asarray(ev.times, dtype=float),
            data=data,
            backend=ev.backend,
            seconds=time.perf_counter() - start,
            messages=tuple(ev.messages),
            bands=bands,
            band_data=band_data,
        )
