"""The plan of a sweep: its scenarios (grid axes and samples on top of base overrides),
checked and resolved with the solver, time grid, outputs and identity before anything
runs.

Planning never lists the scenarios: the grid's product is indexed chunk by chunk, and
samples are drawn only once the sweep is known to fit.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sd_model._errors import ScenarioError, SDModelError
from sd_model._meta import VariableInfo
from sd_model.backends import BackendName
from sd_model.evaluate import UsedBackend, choose_backend
from sd_model.integrate import SolverOptions, TimeGrid, check_run_size, fixed_step_saves
from sd_model.model import Model
from sd_model.options import TimeSettings
from sd_model.overrides import normalize_name
from sd_model.provenance import jsonable, provenance
from sd_model.sampling import SampleSpec, draw, grid_axis
from sd_model.sweeps.layout import default_chunk_size

_CONTROL = ("initial_time", "final_time", "time_step", "saveper")

#: ``"name[element, ...]"``: a swept key naming one element of a subscripted parameter.
ELEMENT_KEY = re.compile(r"^\s*(?P<name>[^\[\]]+?)\s*\[(?P<subs>[^\[\]]*)\]\s*$")


@dataclass(frozen=True)
class Axis:
    """One swept parameter: a grid dim, or a coordinate along ``scenario``."""

    key: str  # as the user wrote it: "productivity[North]"
    dim: str  # Python-safe: "productivity_North"
    values: np.ndarray
    units: str
    long_name: str


@dataclass(frozen=True)
class Plan:
    """The sweep's scenarios, indexed on demand: the grid's product is never listed.

    Sample values are drawn after the sweep's size is checked (:func:`drawn`); until
    then the sample axes have no values.
    """

    grid: tuple[Axis, ...]
    samples: tuple[Axis, ...]
    n_samples: int

    @property
    def dims(self) -> list[str]:
        return [a.dim for a in self.grid] + (["scenario"] if self.n_samples else [])

    @property
    def shape(self) -> tuple[int, ...]:
        sizes = [len(a.values) for a in self.grid]
        return (*sizes, self.n_samples) if self.n_samples else tuple(sizes)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def keys(self) -> tuple[str, ...]:
        """The swept keys (grid and samples), as the user wrote them."""
        return tuple(a.key for a in (*self.grid, *self.samples))

    def scenario(self, index: tuple[int, ...]) -> dict[str, float]:
        """The swept values of the scenario at a multi-index of the leading dims."""
        point = index[: len(self.grid)]
        out = {a.key: float(a.values[i]) for a, i in zip(self.grid, point, strict=True)}
        if self.n_samples:
            j = index[-1]
            out.update({a.key: float(a.values[j]) for a in self.samples})
        return out


def _safe(text: str) -> str:
    return re.sub(r"\W+", "_", text).strip("_")


def _describe(model: Model, key: str, where: str) -> tuple[str, str, str]:
    """(dim name, units, long name) of a swept key, checked by the model."""
    resolved = model.normalize_params({key: 0.0}, where=where)
    (py_name,) = resolved
    table = model.parameters
    row = table[table["py_name"] == py_name]
    units = str(row["units"].iloc[0]) if len(row) else ""
    name = str(row.index[0]) if len(row) else py_name
    m = ELEMENT_KEY.match(key)
    if m:
        subs = [s.strip() for s in m.group("subs").split(",")]
        return f"{py_name}_{'_'.join(_safe(s) for s in subs)}", units, f"{name}[{','.join(subs)}]"
    return py_name, units, name


def make_plan(model: Model, grid: Mapping[str, Any] | None, samples: SampleSpec | None) -> Plan:
    """The plan, with the sample axes named but not drawn yet."""
    axes: list[Axis] = []
    for key, spec in (grid or {}).items():
        values = grid_axis(spec, where=f"grid: {key}")
        dim, units, long_name = _describe(model, str(key), f"grid: {key!r}")
        axes.append(Axis(str(key), dim, values, units, long_name))
    sample_axes: list[Axis] = []
    n = 0
    if samples is not None:
        n = samples.n
        for key in samples.parameters:
            dim, units, long_name = _describe(model, key, f"samples: {key!r}")
            sample_axes.append(Axis(key, dim, np.empty(0), units, long_name))
    names = [a.dim for a in [*axes, *sample_axes]]
    dup = sorted({d for d in names if names.count(d) > 1} | ({"scenario"} & set(names)))
    if dup:
        raise ScenarioError(
            f"Parameter(s) {dup} are swept twice (in grid and samples, or under two "
            "spellings); sweep each parameter once."
        )
    if not axes and not n:
        raise ScenarioError("Nothing to sweep: give a grid and/or samples.")
    return Plan(tuple(axes), tuple(sample_axes), n)


def drawn(plan: Plan, samples: SampleSpec | None) -> Plan:
    """The plan with its sample values drawn."""
    if samples is None:
        return plan
    values = draw(samples)
    axes = tuple(dataclasses.replace(a, values=values[a.key]) for a in plan.samples)
    return dataclasses.replace(plan, samples=axes)


def resolve_outputs(
    variables: Sequence[VariableInfo], outputs: Sequence[str] | None, taken: set[str]
) -> list[VariableInfo]:
    """The variables a sweep keeps: ``outputs`` by model or Python name (default all but
    the time settings), minus the swept ones (their values are coordinates)."""
    if not outputs:
        return [v for v in variables if v.py_name not in _CONTROL and v.py_name not in taken]
    by_norm: dict[str, VariableInfo] = {}
    for v in variables:
        by_norm[normalize_name(v.name)] = v
        by_norm[normalize_name(v.py_name)] = v
    chosen: list[VariableInfo] = []
    for name in outputs:
        found = by_norm.get(normalize_name(name))
        if found is None:
            close = difflib.get_close_matches(name, [x.name for x in variables], n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ScenarioError(f"outputs: unknown variable {name!r}.{hint}")
        if found.py_name in taken:
            continue  # the swept value is already a coordinate of the result
        if found not in chosen:
            chosen.append(found)
    return chosen


def saved_times(grid: TimeGrid, solver: SolverOptions) -> np.ndarray:
    """The times a run with ``solver`` saves (fixed-step runs skip saved times that are
    not multiples of the time step)."""
    return grid.save_times() if solver.adaptive else fixed_step_saves(grid).times


@dataclass(frozen=True)
class Setup:
    """A sweep checked and resolved: what to run, and its identity."""

    plan: Plan  # sample axes not drawn yet (see drawn)
    sample_spec: SampleSpec | None
    base: dict[str, Any]
    backend: UsedBackend
    options: SolverOptions
    grid: TimeGrid
    times: np.ndarray
    outputs: list[VariableInfo]
    coords: Mapping[str, Sequence[str]]
    chunk_size: int
    requested_chunk_size: int | None  # None: the default was taken
    spec: dict[str, Any]
    spec_hash: str
    attrs: dict[str, Any]
    resume_hint: str
    random_seed: int | None = None  # the seed of the model's RANDOM functions

    @property
    def values_per_scenario(self) -> int:
        """Saved values of one scenario, over all outputs and saved times."""
        return sum(
            (len(self.times) if v.time_dependent else 1)
            * math.prod(len(self.coords[d]) for d in v.dims)
            for v in self.outputs
        )

    def accepts(self, attrs: Mapping[str, Any] | None) -> set[str]:
        """The spec hashes under which a store holds this very sweep.

        Stores written before the chunk size left the sweep's identity hashed it in;
        they are recognised by hashing the spec with their own chunk size.
        """
        accepted = {self.spec_hash}
        stored = (attrs or {}).get("sweep_chunk_size")
        if stored is not None:
            accepted.add(hash_spec({**self.spec, "chunk_size": int(stored)}))
        return accepted


def hash_spec(spec: Mapping[str, Any]) -> str:
    """The sha256 identifying a sweep (and the store that holds it)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def prepare(
    model: Model,
    *,
    grid: Mapping[str, Any] | None,
    samples: Mapping[str, Any] | SampleSpec | None,
    base: Mapping[str, Any] | None,
    outputs: Sequence[str] | None,
    chunk_size: int | None,
    solver: SolverOptions,
    time: TimeSettings,
    backend: BackendName,
    name: str,
    seed: int | None = None,
) -> Setup:
    """Check everything a sweep needs before anything runs; fix its spec and attrs.

    Nothing here grows with the number of scenarios: samples are drawn later, once the
    sweep's size is known to fit.
    """
    tgrid = model.time_grid(**time.as_kwargs())
    # A lower bound (one value per saved time): refuse a 1e-9 time step before the saved
    # times are even listed; integrate() re-checks each batch with its real size.
    check_run_size(tgrid, solver, values_per_save=1)
    saved = saved_times(tgrid, solver)
    sample_spec = SampleSpec.from_mapping(samples).resolved() if samples is not None else None
    plan = make_plan(model, grid, sample_spec)
    base = dict(base or {})
    normalized_base = model.normalize_params(base, where="base")
    used, note = choose_backend(model, backend, what="sweeping")
    # One seed for the sweep's RANDOM functions; scenario k draws from (seed, k).
    random_seed = _random_seed(model, seed)
    coords = model.compiled().coords if used == "compiled" else model.coords
    # The same variables, dims and attributes as a single run on either backend.
    variables = model.output_variables(used)
    requested = chunk_size
    if chunk_size is None:
        chunk_size = default_chunk_size(used, variables, coords, len(saved))
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise SDModelError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    # A constant given a time series in the base varies in time: give it a time axis.
    series = {k for k, v in normalized_base.items() if isinstance(v, pd.Series)}
    all_vars = [
        dataclasses.replace(v, time_dependent=True) if v.py_name in series else v for v in variables
    ]
    taken = {a.dim for a in (*plan.grid, *plan.samples)} | {"status", "error", "scenario"}
    out_vars = resolve_outputs(all_vars, outputs, taken)
    # Everything that changes the numbers is in the spec, and so in its hash: a store
    # is resumed only by the very same sweep. The chunk size is not: a store is always
    # resumed in its own chunks, so it gets the numbers the run that started it would.
    spec = {
        "model_file": model.path.name,
        "model_sha256": model.sha256,
        "grid": [[a.key, a.values.tolist()] for a in plan.grid],
        "samples": sample_spec.to_json() if sample_spec is not None else None,
        "base": jsonable(base),
        "outputs": [v.py_name for v in out_vars],
        "backend": used,
        "method": solver.method,
        "rtol": solver.rtol,
        "atol": solver.atol,
        "max_step": solver.max_step,
        "time": {
            "initial_time": tgrid.initial_time,
            "final_time": tgrid.final_time,
            "time_step": tgrid.time_step,
            "saveper": tgrid.saveper,
        },
    }
    if random_seed is not None:
        spec["random_seed"] = random_seed  # only then: other sweeps keep their hash
    spec_hash = hash_spec(spec)
    attrs: dict[str, Any] = {
        **provenance(
            model,
            solver=solver,
            grid=tgrid,
            backend=used,
            note=note,
            scenario=name,
            overrides=base,
            title=f"sd_model sweep of {model.path.name}",
            seed=random_seed,
        ),
        "sweep_spec": json.dumps(spec, sort_keys=True, default=str),
        "sweep_spec_sha256": spec_hash,
        "sweep_seed": sample_spec.seed if sample_spec is not None else "",
        "sweep_chunk_size": chunk_size,
        "sweep_n_scenarios": plan.size,
        "sweep_complete": 0,
    }
    resume_hint = (
        " (A sweep whose samples have no seed draws new ones each time: set samples.seed "
        "to resume one.)"
        if samples is not None and not _given_seed(samples)
        else ""
    )
    if random_seed is not None and seed is None:
        resume_hint += (
            " (A sweep of a model with RANDOM functions and no seed draws new noise each "
            "time: give seed= to resume one.)"
        )
    return Setup(
        plan=plan,
        sample_spec=sample_spec,
        base=base,
        backend=used,
        options=solver,
        grid=tgrid,
        times=saved,
        outputs=out_vars,
        coords=coords,
        chunk_size=chunk_size,
        requested_chunk_size=requested,
        spec=spec,
        spec_hash=spec_hash,
        attrs=attrs,
        resume_hint=resume_hint,
        random_seed=random_seed,
    )


def _random_seed(model: Model, seed: int | None) -> int | None:
    """The seed of the model's RANDOM functions (fresh when not given); None without any."""
    from sd_model.compiler._random import calls_random, fresh_seed

    if not calls_random(model.abstract_model):
        return None
    if seed is None:
        return fresh_seed()
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise SDModelError(f"seed must be a non-negative integer, got {seed!r}.")
    return int(seed)


def _given_seed(samples: Mapping[str, Any] | SampleSpec) -> bool:
    if isinstance(samples, SampleSpec):
        return samples.seed is not None
    return isinstance(samples, Mapping) and samples.get("seed") is not None
