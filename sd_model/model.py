"""A loaded model file: metadata, parameters, and ``run``."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import warnings
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from sd_model._errors import (
    ModelLoadError,
    SDModelError,
    SDModelWarning,
    SettingsError,
    UnsupportedFeatureError,
)
from sd_model._meta import SDKind, VariableInfo
from sd_model.evaluate import BackendName, evaluate
from sd_model.integrate import METHODS, Method, SolverOptions, TimeGrid
from sd_model.metadata import model_metadata
from sd_model.options import TimeSettings, resolve_solver, resolve_time
from sd_model.overrides import ParameterInfo, ParameterSpace, normalize_name
from sd_model.provenance import provenance
from sd_model.results import build_dataset
from sd_model.translate import (
    XMILE_SUFFIXES,
    check_model_path,
    file_sha256,
    load_runtime,
    parse_abstract_model,
    translate,
)

if TYPE_CHECKING:
    from sd_model.compiler import CompiledModel

_CONTROL = ("initial_time", "final_time", "time_step", "saveper")


def load(
    path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    file_aliases: Mapping[str, str] | None = None,
) -> Model:
    """Load a Vensim (.mdl) or XMILE (.xmile, .stmx) model.

    Parameters
    ----------
    path : path-like
        The model file.
    cache_dir : path-like, optional
        Where PySD's translation is cached (default ``$SD_MODEL_CACHE`` or
        ``~/.cache/sd_model``). Nothing is written next to the model file.
    file_aliases : mapping, optional
        What Vensim's indirect file references stand for, e.g.
        ``{"?inputs": "inputs.xlsx"}`` (relative paths are read from the model's folder);
        Vensim keeps them in its own settings, not in the model file.

    Returns
    -------
    Model

    Raises
    ------
    ModelLoadError
        When the file is missing, has an unknown extension, or cannot be translated.

    Examples
    --------
    >>> import sd_model
    >>> model = sd_model.load("models/example_regions.mdl")  # doctest: +SKIP
    >>> ds = model.run(method="RK45")  # doctest: +SKIP
    """
    p = check_model_path(path)
    return Model(
        p,
        cache_dir=Path(cache_dir) if cache_dir is not None else None,
        file_aliases=file_aliases,
    )


class Model:
    """A model file translated by PySD, ready to run.

    Use :func:`load` to create one. A ``Model`` holds no run state: every ``run`` starts
    from the model file's equations plus the overrides given to it.
    """

    def __init__(
        self,
        path: Path,
        *,
        cache_dir: Path | None = None,
        file_aliases: Mapping[str, str] | None = None,
    ) -> None:
        self.path = path
        self.sha256 = file_sha256(path)
        self._cache_dir = cache_dir
        self.abstract_model = parse_abstract_model(path, file_aliases=file_aliases)
        self._meta = model_metadata(self.abstract_model, path)
        self._compiled: CompiledModel | None = None
        self._compile_error: str | None = None
        self._compile_exc: SDModelError | None = None
        self._outputs_cache: tuple[CompiledModel, tuple[VariableInfo, ...]] | None = None

    def __repr__(self) -> str:
        return f"<sd_model.Model {self.path.name}: {len(self.variables)} variables>"

    # ------------------------------------------------------------------ metadata
    # Names, units, comments and dims come from the abstract model; values (defaults,
    # time settings) from the compiled model. PySD's generated module is built (from a
    # checked abstract model) only for the PySD backend, or for the values of a model
    # the compiler does not cover.
    @cached_property
    def _py_file(self) -> Path:
        return translate(self.path, self.sha256, self.abstract_model, self._cache_dir)

    @cached_property
    def _template(self) -> Any:
        return load_runtime(self._py_file, self.path)

    @cached_property
    def _doc(self) -> pd.DataFrame:
        return self._meta.doc()

    @cached_property
    def coords(self) -> dict[str, list[str]]:
        """Subscript range name -> element names."""
        return {k: list(v) for k, v in self._meta.coords.items()}

    @cached_property
    def time_units(self) -> str:
        """Units of the model's time axis (e.g. ``Year``)."""
        by_py = {e.py_name: e for e in self._meta.elements}
        for py in ("time_step", "initial_time", "final_time"):
            e = by_py.get(py)
            if e is not None and e.units:
                return e.units
        return ""

    def _compiled_or_none(self) -> CompiledModel | None:
        try:
            return self.compiled()
        except UnsupportedFeatureError:
            return None

    @cached_property
    def control(self) -> dict[str, float]:
        """The model file's INITIAL TIME, FINAL TIME, TIME STEP and SAVEPER."""
        compiled = self._compiled_or_none()
        if compiled is not None:
            return dict(compiled.control)
        comps = self._template.components
        out: dict[str, float] = {}
        for name in _CONTROL:
            try:
                out[name] = float(getattr(comps, name)())
            except Exception as exc:
                raise ModelLoadError(f"{self.path}: cannot evaluate {name}: {exc}") from exc
        return out

    @cached_property
    def _defaults(self) -> dict[str, float | xr.DataArray | None]:
        """Constants' values in the model file, by py_name (None where unknown)."""
        names = [
            e.py_name
            for e in self._meta.elements
            if e.type == "Constant" and not e.control and e.py_name != "time"
        ]
        compiled = self._compiled_or_none()
        if compiled is None:
            comps = self._template.components
            return {py: _default_value(comps, py) for py in names}
        # The compiled model's initial pass evaluates every constant of the file.
        system = compiled.system([{}], compiled.default_grid())
        init = system._init_values
        index = compiled._program.by_py_name
        values = {
            py: np.asarray(init[f"v{index[py]}"])[0]
            for py in names
            if py in index and f"v{index[py]}" in init
        }
        out: dict[str, float | xr.DataArray | None] = {}
        by_py = {e.py_name: e for e in self._meta.elements}
        for py in names:
            v = values.get(py)
            if v is None:
                out[py] = None
            elif by_py[py].dims:
                dims = list(by_py[py].dims)
                out[py] = xr.DataArray(
                    np.asarray(v, dtype=float).reshape([len(self.coords[d]) for d in dims]),
                    coords={d: self.coords[d] for d in dims},
                    dims=dims,
                )
            else:
                out[py] = float(np.asarray(v, dtype=float).ravel()[0])
        return out

    @cached_property
    def _flow_names(self) -> set[str]:
        """Normalized names of variables that appear directly in a stock's flow equation."""
        from pysd.translators.structures import abstract_expressions as ae

        flows: set[str] = set()

        def refs(node: Any) -> None:
            if isinstance(node, ae.ReferenceStructure):
                flows.add(normalize_name(str(node.reference)))
            elif isinstance(node, ae.ArithmeticStructure):
                for arg in node.arguments:
                    refs(arg)

        for section in self.abstract_model.sections[:1]:
            for el in section.elements:
                for comp in el.components:
                    if isinstance(comp.ast, ae.IntegStructure):
                        refs(comp.ast.flow)
        return flows

    @cached_property
    def variables(self) -> list[VariableInfo]:
        """Every variable a run returns, with its metadata."""
        out: list[VariableInfo] = []
        has_args = {e.py_name for e in self._meta.elements if e.has_args}
        for row in self._doc.itertuples(index=False):
            py_name = str(row[1])
            kind_raw = row[5]
            if not isinstance(kind_raw, str) or py_name == "time":
                continue
            if kind_raw == "Lookup" or py_name in has_args:
                continue
            subtype = str(row[6])
            kind: SDKind
            if kind_raw == "Stateful" and subtype in {"Integ", "NonNegativeInteg"}:
                kind = "stock"
            elif kind_raw == "Constant":
                kind = "constant"
            elif kind_raw == "Data":
                kind = "data"
            elif normalize_name(str(row[0])) in self._flow_names:
                kind = "flow"
            else:
                kind = "auxiliary"
            dims = tuple(str(d) for d in row[2]) if isinstance(row[2], list) else ()
            out.append(
                VariableInfo(
                    py_name=py_name,
                    name=str(row[0]),
                    dims=dims,
                    units=_text(row[3]),
                    description=_text(row[7]),
                    sd_kind=kind,
                    time_dependent=kind != "constant",
                )
            )
        return out

    @cached_property
    def _space(self) -> ParameterSpace:
        infos: list[ParameterInfo] = []
        other: dict[str, str] = {}
        has_args = {e.py_name for e in self._meta.elements if e.has_args}
        defaults = self._defaults
        for row in self._doc.itertuples(index=False):
            name, py_name, subs, units, _lim, kind, subtype, comment = row[:8]
            if not isinstance(kind, str) or py_name == "time":
                continue
            dims = tuple(str(d) for d in subs) if isinstance(subs, list) else ()
            if py_name in _CONTROL:
                other[normalize_name(str(name))] = (
                    "control variable (use initial_time/final_time/time_step/saveper)"
                )
                continue
            settable = kind in ("Constant", "Lookup") or (
                kind == "Data" and py_name not in has_args
            )
            if not settable:
                what = "stock" if subtype in {"Integ", "NonNegativeInteg"} else "computed variable"
                other[normalize_name(str(name))] = what
                other[normalize_name(str(py_name))] = what
                continue
            infos.append(
                ParameterInfo(
                    py_name=str(py_name),
                    name=str(name),
                    kind="lookup" if kind == "Lookup" else "constant",
                    dims=dims,
                    units=_text(units),
                    description=_text(comment),
                    default=None if kind == "Lookup" else defaults.get(str(py_name)),
                )
            )
        return ParameterSpace(infos, self.coords, other)

    @property
    def parameters(self) -> pd.DataFrame:
        """The constants and lookups a user can set.

        Returns
        -------
        pandas.DataFrame
            Indexed by the model's name, with columns ``py_name``, ``kind``
            (constant or lookup), ``default`` (a number, a dict of element -> value for
            subscripted constants, or '' for lookups), ``units``, ``dims`` and
            ``description``.
        """
        rows = []
        for info in self._space.parameters.values():
            default: Any = info.default
            if isinstance(default, xr.DataArray):
                default = _dataarray_to_dict(default)
            elif default is None:
                default = ""
            rows.append(
                {
                    "name": info.name,
                    "py_name": info.py_name,
                    "kind": info.kind,
                    "default": default,
                    "units": info.units,
                    "dims": ", ".join(info.dims),
                    "description": info.description,
                }
            )
        columns = ["name", "py_name", "kind", "default", "units", "dims", "description"]
        return pd.DataFrame(rows, columns=columns).set_index("name")

    @property
    def stocks(self) -> list[VariableInfo]:
        """The model's stocks (INTEG elements)."""
        return [v for v in self.variables if v.sd_kind == "stock"]

    @cached_property
    def declared_method(self) -> str | None:
        """The integration method the model file declares, if any (``"euler"``, ``"rk4"``...)."""
        try:
            text = self.path.read_text(errors="replace")
        except OSError:
            return None
        if self.path.suffix.lower() in XMILE_SUFFIXES:
            m = re.search(r"<sim_specs[^>]*\bmethod\s*=\s*\"([^\"]+)\"", text, re.IGNORECASE)
            if not m:
                return None
            value = m.group(1).strip().lower()
            return {"euler": "euler", "rk4": "rk4"}.get(value, value)
        # Vensim settings block: "15:a,b,c,d,..." where d is the integration type code
        # (0 = Euler; other codes are Runge-Kutta variants or Difference).
        m = re.search(r"^15:\s*([-\d]+),([-\d]+),([-\d]+),([-\d]+)", text, re.MULTILINE)
        if not m:
            return None
        code = int(m.group(4))
        return {0: "euler", 1: "rk4", 3: "rk4"}.get(code, f"vensim-integration-type-{code}")

    # ------------------------------------------------------------------ running
    def normalize_params(self, params: Mapping[str, Any] | None, where: str = "params") -> dict:
        """Resolve and check overrides (see :class:`~sd_model.overrides.ParameterSpace`)."""
        return self._space.normalize(params, where)

    def time_grid(
        self,
        *,
        initial_time: float | None = None,
        final_time: float | None = None,
        saveper: float | None = None,
        time_step: float | None = None,
    ) -> TimeGrid:
        """The model's time settings with the given ones replacing them."""
        c = self.control
        ts = float(time_step) if time_step is not None else c["time_step"]
        if not ts > 0:
            raise SettingsError(f"time_step must be positive, got {ts!r}.")
        sp = saveper if saveper is not None else (c["saveper"] if time_step is None else None)
        if sp is None:
            # Vensim's SAVEPER defaults to TIME STEP; keep the file's SAVEPER unless it
            # is no longer a multiple of the new step.
            ratio = c["saveper"] / ts
            sp = c["saveper"] if abs(ratio - round(ratio)) < 1e-9 and ratio >= 1 else ts
        return TimeGrid(
            initial_time=float(initial_time) if initial_time is not None else c["initial_time"],
            final_time=float(final_time) if final_time is not None else c["final_time"],
            time_step=ts,
            saveper=float(sp),
        )

    def resolve_method(self, method: str | None) -> Method:
        """The integration method a run uses: ``method``, or the model file's declared one.

        Warns (:class:`SDModelWarning`) when the file declares a method sd_model lacks,
        or a non-Euler method other than the one chosen.
        """
        declared = self.declared_method
        if method is None:
            if declared in METHODS:
                return declared  # type: ignore[return-value]
            if declared is not None:
                warnings.warn(
                    f"{self.path.name} declares integration method {declared!r}, which "
                    "sd_model does not have; using 'euler'. Pass method= to choose.",
                    SDModelWarning,
                    stacklevel=3,
                )
            return "euler"
        if method not in METHODS:
            raise SDModelError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
        if declared is not None and declared != "euler" and declared != method:
            warnings.warn(
                f"{self.path.name} declares integration method {declared!r}; "
                f"running with {method!r} as requested.",
                SDModelWarning,
                stacklevel=3,
            )
        return method  # type: ignore[return-value]

    def output_variables(self, backend: str) -> list[VariableInfo]:
        """The variables a run on ``backend`` returns, with the reference metadata.

        Both backends return the same variables, in the same order, with the same dims and
        attributes: PySD's classification is the reference. A constant-valued auxiliary
        (``a = b * 2``) is an ``auxiliary`` with a time axis on both, although the compiled
        backend evaluates it once. A variable only the compiled backend reports would come
        last (none is known: its hidden helper states are not reported).

        Parameters
        ----------
        backend : {"pysd", "compiled"}

        Returns
        -------
        list of VariableInfo
        """
        if backend != "compiled":
            return self.variables
        compiled = self.compiled()
        # Depends only on the model: built once per compiled model (a copy is returned,
        # callers may extend it); on a large model this is most of a run's fixed cost.
        cached = self._outputs_cache
        if cached is not None and cached[0] is compiled:
            return list(cached[1])
        own = {v.py_name: v for v in compiled.variables}
        out = []
        for ref in self.variables:
            mine = own.pop(ref.py_name, None)
            if mine is not None:
                out.append(
                    dataclasses.replace(
                        ref,
                        time_dependent=ref.time_dependent or mine.time_dependent,
                        limits=mine.limits,
                    )
                )
        out += list(own.values())
        self._outputs_cache = (compiled, tuple(out))
        return list(out)

    def compiled(self) -> CompiledModel:
        """The model compiled to NumPy (``backend='compiled'``).

        Raises
        ------
        UnsupportedFeatureError
            When the model uses a construct the compiler does not cover, or the
            compiler is not available.
        """
        if self._compiled is not None:
            return self._compiled
        if self._compile_error is not None:
            raise UnsupportedFeatureError(self._compile_error)
        if self._compile_exc is not None:
            raise self._compile_exc
        try:
            from sd_model.compiler import compile_model
        except ImportError as exc:
            self._compile_error = f"the compiled backend is not available ({exc})"
            raise UnsupportedFeatureError(self._compile_error) from exc
        try:
            self._compiled = compile_model(self.abstract_model, model_dir=self.path.parent)
        except UnsupportedFeatureError as exc:
            self._compile_error = str(exc)
            raise
        except SDModelError as exc:
            # A defect of the model itself (a circular definition, a missing data file):
            # the PySD backend would fail on it too, so there is nothing to fall back to.
            named = exc if self.path.name in str(exc) else type(exc)(f"{self.path.name}: {exc}")
            self._compile_exc = named
            raise named from exc
        except Exception as exc:
            # A compiler defect must not make a model unrunnable: report it, and let
            # backend="auto" fall back to the reference backend.
            self._compile_error = (
                f"the compiler failed on this model ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:300]}); please report it"
            )
            raise UnsupportedFeatureError(self._compile_error) from exc
        return self._compiled

    def run(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        solver: SolverOptions | None = None,
        time: TimeSettings | None = None,
        backend: BackendName = "auto",
        scenario: str = "",
        method: Method | None = None,
        rtol: float | None = None,
        atol: float | None = None,
        max_step: float | None = None,
        initial_time: float | None = None,
        final_time: float | None = None,
        time_step: float | None = None,
        saveper: float | None = None,
        jit: bool = False,
        seed: int | None = None,
    ) -> xr.Dataset:
        """Simulate the model and return the results as a Dataset.

        Parameters
        ----------
        params : mapping, optional
            Overrides by the model's names or PySD's: numbers, mappings of subscript
            elements (or ``"name[element]"`` keys), ``xarray.DataArray`` /
            ``pandas.Series`` keyed by elements, and time series (a mapping or Series
            keyed by time) for constants and lookups.
        solver : SolverOptions, optional
            Method and tolerances. Default: the method the model file declares (usually
            Euler, which reproduces Vensim and PySD), ``rtol=atol=1e-6``.
        time : TimeSettings, optional
            Replace the model file's INITIAL TIME, FINAL TIME, TIME STEP or SAVEPER.
        backend : {"auto", "compiled", "pysd"}
            ``auto`` uses the compiled backend when it covers the model and falls back
            to PySD's runtime with a warning saying why.
        scenario : str
            A name recorded in the attrs.
        method : {"euler", "euler-numba", "rk4", "RK45", "DOP853", "LSODA", "BDF", \
"Radau", "RK23"}, optional
            Shorthand for ``solver=SolverOptions(method=...)``, as are ``rtol``, ``atol``
            and ``max_step`` (give these or ``solver``, not both). ``euler-numba`` runs
            all Euler steps in one numba-compiled kernel on the compiled backend (needs
            numba: ``pip install sd_model[fast]``); the first compilation of a model
            takes seconds to a minute and is cached in ``$SD_MODEL_CACHE/kernels``.
            Without numba, or for a model the kernel does not cover, it runs as Euler.
        initial_time, final_time, time_step, saveper : float, optional
            Shorthand for ``time=TimeSettings(...)`` (give these or ``time``, not both).
        jit : bool
            Shorthand for ``method="euler-numba"`` when the method is Euler.
        seed : int, optional
            Seed of the model's RANDOM functions (a non-negative integer): the run
            draws from the stream of ``(seed, 0)``, as scenario 0 of a sweep with the
            same seed does. None: fresh entropy. Either way the seed is recorded in the
            ``random_seed`` attr (models with RANDOM functions only). RANDOM values
            are drawn once per time step, so these models run with Euler only.

        Returns
        -------
        xarray.Dataset
            Dims ``time`` plus the model's subscript ranges; attrs with provenance
            (:func:`sd_model.provenance.provenance`). Data variables ``solver_nfev``
            (right-hand-side evaluations) and ``solver_status`` (0: the integration
            succeeded, the code a sweep's ``status`` uses; a failed run raises instead
            of returning).

        Raises
        ------
        ParameterError
            Unknown parameter or wrong shape.
        IntegrationError
            NaN/inf or solver failure, naming the variable and time.
        SettingsError
            Invalid solver or time settings, or an option object and its shorthand
            keywords given together.

        Examples
        --------
        >>> ds = model.run({"growth rate": 0.03}, method="RK45", final_time=2050)  # doctest: +SKIP
        >>> ds = model.run(solver=SolverOptions("RK45", rtol=1e-8),
        ...                time=TimeSettings(final_time=2050))  # doctest: +SKIP
        """
        options = resolve_solver(
            self, solver, method=method, rtol=rtol, atol=atol, max_step=max_step, jit=jit
        )
        settings = resolve_time(
            time,
            initial_time=initial_time,
            final_time=final_time,
            time_step=time_step,
            saveper=saveper,
        )
        grid = self.time_grid(**settings.as_kwargs())
        ev = evaluate(self, [params or {}], solver=options, grid=grid, backend=backend, seed=seed)
        attrs = provenance(
            self,
            solver=options,
            grid=grid,
            backend=ev.backend,
            note=ev.note,
            scenario=scenario,
            overrides=params,
            title=f"sd_model run of {self.path.name}",
            seed=ev.seed,
            tier=ev.tier,
            tier_note=ev.tier_note,
        )
        return build_dataset(
            ev.times,
            {k: v[0] for k, v in ev.values.items()},
            ev.variables,
            self.coords,
            time_units=self.time_units,
            attrs=attrs,
            diagnostics={"solver_nfev": np.asarray(ev.nfev[0]), "solver_status": np.asarray(0)},
        )

    def _lookup_summary(self, name: str) -> str:
        """'(lookup of 6 points, x 0 to 3)': a table has no single value to print."""
        from pysd.translators.structures import abstract_expressions as ae

        for el in self.abstract_model.sections[0].elements:
            if el.name != name:
                continue
            xs: list[float] = []
            for comp in el.components:
                ast_ = comp.ast
                if isinstance(ast_, ae.InlineLookupsStructure):
                    ast_ = ast_.lookups
                if isinstance(ast_, ae.LookupsStructure):
                    xs.extend(float(x) for x in ast_.x)
                else:
                    return "(lookup from data)"
            if xs:
                n = len(xs) // max(len(el.components), 1)
                return f"(lookup of {n} points, x {min(xs):g} to {max(xs):g})"
        return "(lookup)"

    def check_units(self) -> Any:
        """Check that every equation's units balance; see :func:`sd_model.units.check_units`.

        Returns
        -------
        sd_model.units.UnitsReport

        Examples
        --------
        >>> sd_model.load("models/example_regions.mdl").check_units().ok  # doctest: +SKIP
        True
        """
        from sd_model.units import check_units

        return check_units(self)

    def info(self) -> str:
        """A text summary: time settings, dims, stocks and parameters."""
        c = self.control
        lines = [
            f"Model: {self.path}",
            f"sha256: {self.sha256}",
            f"Time: {c['initial_time']:g} to {c['final_time']:g} {self.time_units}, "
            f"time step {c['time_step']:g}, saveper {c['saveper']:g}",
        ]
        if self.declared_method:
            lines.append(f"Declared method: {self.declared_method}")
        lines.append("")
        lines.append("Dims:")
        for dim, elems in self.coords.items():
            lines.append(f"  {dim} ({len(elems)}): {', '.join(elems)}")
        if not self.coords:
            lines.append("  (none)")
        lines.append("")
        lines.append("Stocks:")
        for v in self.stocks:
            dims = f"[{', '.join(v.dims)}]" if v.dims else ""
            lines.append(f"  {v.name}{dims}  ({v.units or 'no units'})")
        lines.append("")
        lines.append("Parameters:")
        for name, row in self.parameters.iterrows():
            default = row["default"]
            if isinstance(default, dict):
                default = f"{{{len(default)} elements}}"
            elif row["kind"] == "lookup":
                default = self._lookup_summary(str(name))
            dims = f"[{row['dims']}]" if row["dims"] else ""
            lines.append(
                f"  {name}{dims} = {default} {row['units']}".rstrip()
                + (f"  ({row['kind']})" if row["kind"] not in ("constant", "lookup") else "")
            )
        return "\n".join(lines)


def _default_value(components: Any, py_name: str) -> float | xr.DataArray | None:
    """A constant's value in the model file (None when PySD cannot evaluate it alone)."""
    try:
        value = getattr(components, py_name)()
    except Exception:
        return None
    if isinstance(value, xr.DataArray):
        return value.astype(float)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _dataarray_to_dict(da: xr.DataArray) -> dict[str, float]:
    flat = da.stack(_all=list(da.dims)) if da.ndim > 1 else da
    out: dict[str, float] = {}
    if da.ndim == 1:
        for k, v in zip(da.coords[da.dims[0]].values, da.values, strict=True):
            out[str(k)] = float(v)
        return out
    for idx, v in zip(flat.indexes["_all"], flat.values, strict=True):
        out[",".join(str(x) for x in idx)] = float(v)
    return out
