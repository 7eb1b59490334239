"""Sweeps: run a model over many scenarios, in batches, on Dask, into resumable stores.

A sweep is a *plan* (grid axes and/or a sample of parameters, on top of fixed base
overrides) cut into *chunks*. A chunk is one batched integration on the compiled backend
(or, when the compiler does not cover the model, a loop of PySD runs). Chunks run in
this process or on a Dask cluster, and each finished chunk is written at once into its
own region of a zarr store, so memory is bounded by the chunk and an interrupted sweep
resumes where it stopped.

Chunks are rectangular blocks of the sweep's leading dims that coincide with the zarr
chunks: every store chunk belongs to exactly one sweep chunk, and zarr writes each chunk
file atomically. The ``status`` variable (-1 not run, 0 ok, 1 failed) is written last,
so it is the record of which chunks are complete.

The chunking does not depend on the number of workers, so a sweep gives the same
numbers with one worker or many (an adaptive solver's step sizes depend on the whole
batch it integrates).

>>> import sd_model
>>> model = sd_model.load("models/example_regions.mdl")  # doctest: +SKIP
>>> ds = sweep(model, grid={"transfer intensity": [0, 0.5, 1]})  # doctest: +SKIP
>>> ds["population"].sel(transfer_intensity=0.5, Region="North")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import sys
import time as _time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import xarray as xr

from sd_model import _version
from sd_model._errors import (
    ScenarioError,
    SDModelError,
    SDModelWarning,
    UnsupportedFeatureError,
)
from sd_model._meta import VariableInfo
from sd_model.backends import BACKENDS, BackendName
from sd_model.integrate import Method, SolverOptions, TimeGrid, integrate
from sd_model.overrides import normalize_name
from sd_model.results import build_dataset, write_atomic
from sd_model.sampling import SampleSpec, draw, grid_axis

OnError = Literal["raise", "record"]
ON_ERROR: tuple[str, ...] = get_args(OnError)
ProgressMode = Literal["bar", "log"]

#: Most scenarios per chunk when none is given: enough that NumPy's per-call overhead is
#: amortised over the batch.
DEFAULT_CHUNK_COMPILED = 250
#: Bytes of saved values a default chunk may hold (a batch keeps every variable at every
#: saved time until it ends): big models get smaller chunks, so memory stays bounded.
CHUNK_BYTES = 128 * 2**20
#: With the PySD fallback a chunk is a loop of single runs; small chunks resume finely.
DEFAULT_CHUNK_PYSD = 4

_CONTROL = ("initial_time", "final_time", "time_step", "saveper")
_ERROR_WIDTH = 300
_STORE_FORMAT = 2  # zarr v2 layout: consolidated metadata and text arrays, read everywhere


# --------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class _Axis:
    """One swept parameter: a grid dim, or a coordinate along ``scenario``."""

    key: str  # as the user wrote it: "productivity[North]"
    dim: str  # Python-safe: "productivity_North"
    values: np.ndarray
    units: str
    long_name: str


@dataclass(frozen=True)
class _Plan:
    grid: tuple[_Axis, ...]
    samples: tuple[_Axis, ...]
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


_ELEMENT_KEY = re.compile(r"^\s*(?P<name>[^\[\]]+?)\s*\[(?P<subs>[^\[\]]*)\]\s*$")


def _describe(model: Any, key: str, where: str) -> tuple[str, str, str]:
    """(dim name, units, long name) of a swept key, checked by the model."""
    resolved = model.normalize_params({key: 0.0}, where=where)
    (py_name,) = resolved
    table = model.parameters
    row = table[table["py_name"] == py_name]
    units = str(row["units"].iloc[0]) if len(row) else ""
    name = str(row.index[0]) if len(row) else py_name
    m = _ELEMENT_KEY.match(key)
    if m:
        subs = [s.strip() for s in m.group("subs").split(",")]
        return f"{py_name}_{'_'.join(_safe(s) for s in subs)}", units, f"{name}[{','.join(subs)}]"
    return py_name, units, name


def _make_plan(model: Any, grid: Mapping[str, Any] | None, samples: SampleSpec | None) -> _Plan:
    axes: list[_Axis] = []
    for key, spec in (grid or {}).items():
        values = grid_axis(spec, where=f"grid: {key}")
        dim, units, long_name = _describe(model, str(key), f"grid: {key!r}")
        axes.append(_Axis(str(key), dim, values, units, long_name))
    sample_axes: list[_Axis] = []
    n = 0
    if samples is not None:
        drawn = draw(samples)
        n = samples.n
        for key, values in drawn.items():
            dim, units, long_name = _describe(model, key, f"samples: {key!r}")
            sample_axes.append(_Axis(key, dim, values, units, long_name))
    names = [a.dim for a in [*axes, *sample_axes]]
    dup = sorted({d for d in names if names.count(d) > 1} | ({"scenario"} & set(names)))
    if dup:
        raise ScenarioError(
            f"Parameter(s) {dup} are swept twice (in grid and samples, or under two "
            "spellings); sweep each parameter once."
        )
    if not axes and not n:
        raise ScenarioError("Nothing to sweep: give a grid and/or samples.")
    return _Plan(tuple(axes), tuple(sample_axes), n)


def _chunk_layout(shape: tuple[int, ...], chunk_size: int) -> tuple[int, ...]:
    """Store chunk shape over the leading dims holding at most ``chunk_size`` scenarios.

    Trailing dims are kept whole while they fit; the first dim that does not fit is cut
    into runs of ``m`` indices; the dims before it are cut into single indices.
    """
    k = len(shape)
    while k > 0 and math.prod(shape[k - 1 :]) <= chunk_size:
        k -= 1
    if k == 0:
        return tuple(shape)
    inner = math.prod(shape[k:])
    m = max(1, chunk_size // inner)
    return (*([1] * (k - 1)), min(m, shape[k - 1]), *shape[k:])


def _regions(shape: tuple[int, ...], chunks: tuple[int, ...]) -> list[tuple[slice, ...]]:
    """The chunk regions, in C order of the leading dims."""
    starts = [range(0, s, c) for s, c in zip(shape, chunks, strict=True)]
    return [
        tuple(slice(a, min(a + c, s)) for a, c, s in zip(combo, chunks, shape, strict=True))
        for combo in itertools.product(*starts)
    ]


def _region_indices(region: tuple[slice, ...]) -> list[tuple[int, ...]]:
    return list(itertools.product(*[range(r.start, r.stop) for r in region]))


# --------------------------------------------------------------------------- chunks
@dataclass(frozen=True)
class _Output:
    """A variable a sweep keeps."""

    py_name: str
    dims: tuple[str, ...]
    time_dependent: bool


@dataclass(frozen=True)
class _ChunkJob:
    """Everything a worker needs to run one chunk (picklable, small)."""

    number: int
    first: int  # flat index of the chunk's first scenario (for messages)
    model_path: str
    model_sha256: str
    scenarios: tuple[Mapping[str, Any], ...]  # user-level overrides, base included
    swept: tuple[str, ...]  # the swept keys (grid and samples), as the user wrote them
    labels: tuple[str, ...]  # "transfer_intensity=0.5, ..." per scenario
    backend: Literal["compiled", "pysd"]
    grid: TimeGrid
    options: SolverOptions
    outputs: tuple[_Output, ...]
    n_times: int
    on_error: OnError
    region: tuple[slice, ...]  # where the chunk goes in the leading dims
    store: str | None  # zarr store the worker writes into (None: return the values)
    store_key: str  # the sweep's spec hash: identifies the store's layout


@dataclass
class _ChunkResult:
    number: int
    values: dict[str, np.ndarray]  # py_name -> (B, [time], *dims); empty once written
    status: np.ndarray  # (B,) int8
    errors: list[str]
    messages: list[str] = field(default_factory=list)


class _ScenarioFailure(SDModelError):
    """A scenario of a sweep failed (its parameters named)."""


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, sha256: str) -> Any:
    # A worker process loads a model once and reuses it for its later chunks; the key
    # includes the hash so an edited file is never served from the cache.
    from sd_model.model import load

    model = load(path)
    if model.sha256 != sha256:
        raise SDModelError(
            f"{path} changed while the sweep was running (sha256 {model.sha256[:12]} "
            f"instead of {sha256[:12]}); re-run the sweep."
        )
    return model


def _run_chunk(job: _ChunkJob, model: Any = None) -> _ChunkResult:
    """Run one chunk; the function Dask workers call."""
    if model is None:
        model = _load_cached(job.model_path, job.model_sha256)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SDModelWarning)
        result = _run_batch(job, model, list(range(len(job.scenarios))))
        if result is None:
            # One failure fails a batch: run the scenarios one by one to isolate it.
            result = _run_singly(job, model)
    result.messages.extend(str(w.message) for w in caught if issubclass(w.category, SDModelWarning))
    if job.store is not None:
        # Workers write their own chunk: results do not travel back through the scheduler
        # (tens of megabytes per chunk), and each chunk owns whole zarr chunk files, so
        # concurrent writers never touch the same file.
        _write_region(_store_arrays(job.store, job.store_key), job.region, result)
        result.values = {}
    return result


@functools.lru_cache(maxsize=2)
def _store_arrays(store: str, key: str) -> dict[str, Any]:
    # Opened once per process and sweep (the spec hash is in the key: a store re-created
    # at the same path with another layout is opened afresh).
    del key
    import zarr

    group = zarr.open_group(store, mode="r+")
    return {str(name): arr for name, arr in group.arrays()}


def _write_region(
    arrays: Mapping[str, Any], region: tuple[slice, ...], result: _ChunkResult
) -> None:
    """Write a chunk's outputs, then its status, which marks it complete."""
    block = tuple(r.stop - r.start for r in region)
    for name, arr in result.values.items():
        arrays[name][region] = arr.reshape(block + arr.shape[1:])
    arrays["error"][region] = np.asarray(result.errors, dtype=f"<U{_ERROR_WIDTH}").reshape(block)
    arrays["status"][region] = result.status.reshape(block)


def _run_singly(job: _ChunkJob, model: Any) -> _ChunkResult:
    parts: list[_ChunkResult] = []
    for b in range(len(job.scenarios)):
        part = _run_batch(job, model, [b])
        assert part is not None
        parts.append(part)
    values = {name: np.concatenate([p.values[name] for p in parts]) for name in parts[0].values}
    return _ChunkResult(
        job.number,
        values,
        np.concatenate([p.status for p in parts]),
        [e for p in parts for e in p.errors],
        [m for p in parts for m in p.messages],
    )


def _empty(job: _ChunkJob, model: Any, n: int) -> dict[str, np.ndarray]:
    out = {}
    for o in job.outputs:
        shape = (n, *((job.n_times,) if o.time_dependent else ()))
        shape += tuple(len(model.coords[d]) for d in o.dims)
        out[o.py_name] = np.full(shape, np.nan)
    return out


def _run_batch(job: _ChunkJob, model: Any, members: list[int]) -> _ChunkResult | None:
    """Integrate ``members`` of the chunk together.

    Returns None when a batch of several fails (the caller isolates the culprit); a
    single scenario's failure is raised or recorded as ``job.on_error`` says.
    """
    try:
        if job.backend == "compiled":
            values, messages = _integrate_compiled(job, model, members)
        else:
            values, messages = _integrate_pysd(job, model, members)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        if len(members) > 1:
            return None
        b = members[0]
        text = f"{type(exc).__name__}: {exc}" if not isinstance(exc, SDModelError) else str(exc)
        if job.on_error == "raise":
            raise _ScenarioFailure(
                f"Scenario {job.first + b} ({job.labels[b]}) failed: {text} "
                "(on_error='record' keeps going and records failures in 'status')."
            ) from exc
        return _ChunkResult(
            job.number,
            _empty(job, model, 1),
            np.ones(1, dtype=np.int8),
            [" ".join(text.split())[:_ERROR_WIDTH]],
        )
    n = len(members)
    return _ChunkResult(job.number, values, np.zeros(n, dtype=np.int8), [""] * n, messages)


def _compiled_value(value: Any) -> Any:
    # The compiled backend takes NumPy arrays in the variable's dims order, which is what
    # normalize_params produces; skipping xarray here saves its per-call cost.
    if isinstance(value, xr.DataArray):
        return np.asarray(value.values, dtype=float)
    return value


@dataclass(frozen=True)
class _ElementEdit:
    """Where a swept ``"name[element]"`` key writes into its parameter's array."""

    py_name: str
    position: tuple[int, ...]
    start: np.ndarray  # the parameter's default array (the swept cell is overwritten)


def _element_edits(model: Any, keys: Sequence[str]) -> dict[str, _ElementEdit]:
    """Locate swept element keys by asking ``normalize_params`` itself.

    Two probe values differ in exactly the cell the key names; the rest of the array is
    the parameter's default. Done once per chunk, not once per scenario.
    """
    edits: dict[str, _ElementEdit] = {}
    for key in keys:
        if not _ELEMENT_KEY.match(key):
            continue
        ((py_name, one),) = model.normalize_params({key: 1.0}, where=f"sweep: {key!r}").items()
        ((_, two),) = model.normalize_params({key: 2.0}, where=f"sweep: {key!r}").items()
        a, b = np.asarray(one.values, dtype=float), np.asarray(two.values, dtype=float)
        (position,) = [tuple(int(i) for i in p) for p in np.argwhere(a != b)]
        edits[key] = _ElementEdit(py_name, position, a)
    return edits


def _compiled_overrides(
    model: Any, scenarios: Sequence[Mapping[str, Any]], swept: Sequence[str], first: int
) -> list[dict[str, Any]]:
    """Backend-ready overrides of scenarios: ``normalize_params`` of each, made faster.

    Swept element keys (``"productivity[North]"``) cost ~1 ms per scenario in
    ``normalize_params`` (xarray element assignment); they are applied here with NumPy
    on top of the normalized rest, as ``normalize_params`` applies element edits after
    whole values. ``tests/test_sweep.py`` checks both give the same overrides.
    """
    edits = _element_edits(model, swept)
    out: list[dict[str, Any]] = []
    for b, scenario in enumerate(scenarios):
        rest = {k: v for k, v in scenario.items() if k not in edits}
        normalized = model.normalize_params(rest, where=f"scenario {first + b}")
        overrides = {k: _compiled_value(v) for k, v in normalized.items()}
        for key, edit in edits.items():
            if key not in scenario:
                continue
            current = overrides.get(edit.py_name)
            if current is None:
                arr = edit.start.copy()
            else:
                # A whole value (a number or an array) set in the same scenario.
                arr = np.array(np.broadcast_to(current, edit.start.shape), dtype=float)
            arr[edit.position] = float(scenario[key])
            overrides[edit.py_name] = arr
        out.append(overrides)
    return out


def _integrate_compiled(
    job: _ChunkJob, model: Any, members: list[int]
) -> tuple[dict[str, np.ndarray], list[str]]:
    compiled = model.compiled()
    overrides = _compiled_overrides(
        model, [job.scenarios[b] for b in members], job.swept, job.first + members[0]
    )
    system = compiled.system(overrides, job.grid, continuous=job.options.adaptive)
    res = integrate(system, job.grid, job.options)
    if len(res.times) != job.n_times:
        raise SDModelError(
            f"Internal error: {len(res.times)} saved times instead of {job.n_times}."
        )
    obs = res.observations
    values: dict[str, np.ndarray] = {}
    for o in job.outputs:
        if o.time_dependent:
            values[o.py_name] = np.stack([np.asarray(ob[o.py_name]) for ob in obs], axis=1)
        else:
            values[o.py_name] = np.asarray(obs[0][o.py_name])
    return values, list(res.messages)


def _integrate_pysd(
    job: _ChunkJob, model: Any, members: list[int]
) -> tuple[dict[str, np.ndarray], list[str]]:
    g = job.grid
    per: list[dict[str, np.ndarray]] = []
    for b in members:
        ds = model.run(
            job.scenarios[b],
            backend="pysd",
            method=job.options.method,
            rtol=job.options.rtol,
            atol=job.options.atol,
            max_step=job.options.max_step,
            initial_time=g.initial_time,
            final_time=g.final_time,
            time_step=g.time_step,
            saveper=g.saveper,
        )
        if ds.sizes["time"] != job.n_times:
            raise SDModelError(
                f"Internal error: {ds.sizes['time']} saved times instead of {job.n_times}."
            )
        per.append({o.py_name: np.asarray(ds[o.py_name].values, float) for o in job.outputs})
    values = {o.py_name: np.stack([p[o.py_name] for p in per]) for o in job.outputs}
    return values, []


# --------------------------------------------------------------------------- the store
def _template(
    model_vars: Sequence[VariableInfo],
    plan: _Plan,
    times: np.ndarray,
    coords: Mapping[str, Sequence[str]],
    time_units: str,
    attrs: Mapping[str, Any],
) -> xr.Dataset:
    shape = plan.shape
    values: dict[str, np.ndarray] = {}
    for v in model_vars:
        full = (*shape, *((len(times),) if v.time_dependent else ()))
        full += tuple(len(coords[d]) for d in v.dims)
        # A broadcast view of one NaN: no memory until written (build_dataset keeps it).
        values[v.py_name] = np.broadcast_to(np.nan, full)
    lead_dims: list[tuple[str, Sequence[Any]]] = [(a.dim, a.values.tolist()) for a in plan.grid]
    if plan.n_samples:
        lead_dims.append(("scenario", list(range(plan.n_samples))))
    ds = build_dataset(
        times,
        values,
        model_vars,
        coords,
        time_units=time_units,
        attrs=attrs,
        lead_dims=lead_dims,
        diagnostics={
            "status": np.full(shape, -1, dtype=np.int8),
            "error": np.broadcast_to(np.array("", dtype=f"<U{_ERROR_WIDTH}"), shape),
        },
    )
    ds["status"].attrs = {
        "long_name": "scenario status",
        "description": "0 ok, 1 failed (see 'error'), -1 not run yet",
    }
    ds["error"].attrs = {"long_name": "error message of a failed scenario"}
    for a in plan.grid:
        ds[a.dim].attrs = {"units": a.units, "long_name": a.long_name, "sd_sweep": "grid"}
    for a in plan.samples:
        ds = ds.assign_coords({a.dim: ("scenario", a.values)})
        ds[a.dim].attrs = {"units": a.units, "long_name": a.long_name, "sd_sweep": "sample"}
    if plan.n_samples:
        ds["scenario"].attrs = {"long_name": "sampled scenario"}
    return ds


def _is_zarr(path: Path) -> bool:
    return path.suffix.lower() == ".zarr"


def _existing_attrs(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        if path.is_dir():
            with xr.open_zarr(path) as ds:
                return dict(ds.attrs)
        with xr.open_dataset(path) as ds:
            return dict(ds.attrs)
    except Exception:
        return {}


def _check_reuse(path: Path, attrs: dict[str, Any] | None, spec_hash: str, hint: str) -> bool:
    """True when ``path`` holds this very sweep; an error when it holds something else."""
    if attrs is None:
        return False
    if attrs.get("sweep_spec_sha256") == spec_hash:
        return True
    what = (
        "results of a different sweep (its spec, settings or model file differ)"
        if "sweep_spec_sha256" in attrs
        else "something that is not an sd_model sweep"
    )
    raise SDModelError(
        f"{path} already holds {what}. Pick another output path, or delete {path} to start "
        f"over.{hint}"
    )


# --------------------------------------------------------------------------- progress
class _Progress:
    def __init__(self, mode: ProgressMode | None, total: int, done: int) -> None:
        self.mode = mode
        self.total = total
        self.done = done
        self._start = _time.monotonic()
        self._start_done = done
        self._last = 0.0
        self._bar: Any = None
        if mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total, initial=done, unit="scenario", desc="sweep", dynamic_ncols=True
            )
        elif mode == "log" and done:
            print(f"sweep: resuming, {done}/{total} scenarios already done", file=sys.stderr)

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.mode == "log":
            now = _time.monotonic()
            if now - self._last >= 5.0 or self.done >= self.total:
                self._last = now
                elapsed = max(now - self._start, 1e-9)
                rate = (self.done - self._start_done) / elapsed
                left = (self.total - self.done) / rate if rate > 0 else math.inf
                eta = f"{left:.0f} s" if math.isfinite(left) else "?"
                print(
                    f"sweep: {self.done}/{self.total} scenarios "
                    f"({100 * self.done / self.total:.0f}%), {rate:.1f}/s, ETA {eta}",
                    file=sys.stderr,
                    flush=True,
                )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# --------------------------------------------------------------------------- sweep
def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, xr.DataArray):
        return {"dims": list(obj.dims), "values": _jsonable(obj.values.tolist())}
    if isinstance(obj, pd.Series):
        return {"index": _jsonable(obj.index.tolist()), "values": _jsonable(obj.tolist())}
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _resolve_outputs(
    variables: Sequence[VariableInfo], outputs: Sequence[str] | None, taken: set[str]
) -> list[VariableInfo]:
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


def _fixed_step_times(grid: TimeGrid) -> np.ndarray:
    # The saved times the fixed-step integrator reaches (integrate._integrate_fixed skips
    # saved times that are not multiples of the time step).
    save = grid.save_times()
    tol = grid.time_step * 1e-5
    kept: list[float] = []
    t = grid.initial_time
    j = 0
    for k in range(grid.n_steps() + 1):
        if k:
            t = t + grid.time_step
        while j < len(save) and save[j] < t - tol:
            j += 1
        if j < len(save) and abs(save[j] - t) <= tol:
            kept.append(float(save[j]))
            j += 1
    return np.asarray(kept)


def _choose_backend(model: Any, backend: BackendName) -> tuple[Literal["compiled", "pysd"], str]:
    if backend not in BACKENDS:
        raise SDModelError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    if backend == "pysd":
        return "pysd", ""
    try:
        model.compiled()
        return "compiled", ""
    except UnsupportedFeatureError as exc:
        if backend == "compiled":
            raise
        warnings.warn(
            f"{model.path.name}: sweeping with the PySD backend, one scenario at a time, "
            f"because the compiled backend cannot run this model: {exc}",
            SDModelWarning,
            stacklevel=3,
        )
        return "pysd", str(exc)


def _progress_mode(progress: bool | str | None) -> ProgressMode | None:
    if progress is None:
        return "bar" if sys.stderr.isatty() else None
    if progress is True:
        return "bar" if sys.stderr.isatty() else "log"
    if progress is False:
        return None
    if progress in ("bar", "log"):
        return progress  # type: ignore[return-value]
    raise SDModelError(f"progress must be None, True, False, 'bar' or 'log'; got {progress!r}.")


@dataclass(frozen=True)
class _Setup:
    """A sweep checked and resolved: what to run, and its identity."""

    plan: _Plan
    base: dict[str, Any]
    backend: Literal["compiled", "pysd"]
    options: SolverOptions
    grid: TimeGrid
    times: np.ndarray
    outputs: list[VariableInfo]
    coords: Mapping[str, Sequence[str]]
    chunk_size: int
    spec_hash: str
    attrs: dict[str, Any]
    resume_hint: str


def _prepare(
    model: Any,
    *,
    grid: Mapping[str, Any] | None,
    samples: Mapping[str, Any] | SampleSpec | None,
    base: Mapping[str, Any] | None,
    outputs: Sequence[str] | None,
    chunk_size: int | None,
    method: Method | None,
    backend: BackendName,
    options: Mapping[str, Any],
    times: Mapping[str, float | None],
    name: str,
) -> _Setup:
    """Check everything a sweep needs before anything runs; fix its spec and attrs."""
    solver = SolverOptions(method=model.resolve_method(method), **options)
    tgrid = model.time_grid(**times)
    saved = tgrid.save_times() if solver.adaptive else _fixed_step_times(tgrid)
    sample_spec = SampleSpec.from_mapping(samples).resolved() if samples is not None else None
    plan = _make_plan(model, grid, sample_spec)
    base = dict(base or {})
    normalized_base = model.normalize_params(base, where="base")
    used, note = _choose_backend(model, backend)
    source = model.compiled() if used == "compiled" else model
    # The same variables, dims and attributes as a single run on either backend.
    variables = model.output_variables(used)
    if chunk_size is None:
        chunk_size = _default_chunk_size(used, variables, source.coords, len(saved))
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise SDModelError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    # A constant given a time series in the base varies in time: give it a time axis.
    series = {k for k, v in normalized_base.items() if isinstance(v, pd.Series)}
    all_vars = [
        dataclasses.replace(v, time_dependent=True) if v.py_name in series else v for v in variables
    ]
    taken = {a.dim for a in (*plan.grid, *plan.samples)} | {"status", "error", "scenario"}
    out_vars = _resolve_outputs(all_vars, outputs, taken)
    time_settings = {
        "initial_time": tgrid.initial_time,
        "final_time": tgrid.final_time,
        "time_step": tgrid.time_step,
        "saveper": tgrid.saveper,
    }
    # Everything that changes the numbers is in the spec, and so in its hash: a store
    # is resumed only by the very same sweep.
    spec = {
        "model_file": model.path.name,
        "model_sha256": model.sha256,
        "grid": [[a.key, a.values.tolist()] for a in plan.grid],
        "samples": sample_spec.to_json() if sample_spec is not None else None,
        "base": _jsonable(base),
        "outputs": [v.py_name for v in out_vars],
        "backend": used,
        "method": solver.method,
        "rtol": solver.rtol,
        "atol": solver.atol,
        "max_step": solver.max_step,
        "time": time_settings,
        "chunk_size": chunk_size,
    }
    spec_text = json.dumps(spec, sort_keys=True, default=str)
    spec_hash = hashlib.sha256(spec_text.encode()).hexdigest()
    attrs: dict[str, Any] = {
        "title": f"sd_model sweep of {model.path.name}",
        "model_file": model.path.name,
        "model_path": str(model.path),
        "model_sha256": model.sha256,
        "sd_model_version": _version.version(),
        "pysd_version": _pysd_version(),
        "numpy_version": np.__version__,
        "xarray_version": xr.__version__,
        "scipy_version": _dist_version("scipy"),
        "zarr_version": _dist_version("zarr"),
        "backend": used,
        "backend_note": note,
        "solver_method": solver.method,
        "solver_rtol": solver.rtol,
        "solver_atol": solver.atol,
        "solver_max_step": solver.max_step if solver.max_step is not None else "",
        **time_settings,
        "time_units": model.time_units,
        "scenario": name,
        "overrides": json.dumps(_jsonable(base), sort_keys=True),
        "sweep_spec": spec_text,
        "sweep_spec_sha256": spec_hash,
        "sweep_seed": sample_spec.seed if sample_spec is not None else "",
        "sweep_chunk_size": chunk_size,
        "sweep_n_scenarios": plan.size,
        "sweep_complete": 0,
        "Conventions": "CF-1.8",
    }
    resume_hint = (
        " (A sweep whose samples have no seed draws new ones each time: set samples.seed "
        "to resume one.)"
        if samples is not None and not _given_seed(samples)
        else ""
    )
    return _Setup(
        plan=plan,
        base=base,
        backend=used,
        options=solver,
        grid=tgrid,
        times=saved,
        outputs=out_vars,
        coords=source.coords,
        chunk_size=chunk_size,
        spec_hash=spec_hash,
        attrs=attrs,
        resume_hint=resume_hint,
    )


def sweep(
    model: Any,
    *,
    grid: Mapping[str, Any] | None = None,
    samples: Mapping[str, Any] | SampleSpec | None = None,
    base: Mapping[str, Any] | None = None,
    outputs: Sequence[str] | None = None,
    chunk_size: int | None = None,
    workers: int = 1,
    client: Any = None,
    scheduler: str | None = None,
    store: str | os.PathLike[str] | None = None,
    on_error: OnError = "raise",
    method: Method | None = None,
    backend: BackendName = "auto",
    rtol: float = 1e-6,
    atol: float = 1e-6,
    max_step: float | None = None,
    initial_time: float | None = None,
    final_time: float | None = None,
    time_step: float | None = None,
    save_every: float | None = None,
    saveper: float | None = None,
    progress: bool | ProgressMode | None = None,
    name: str = "",
) -> xr.Dataset:
    """Run a model over a grid and/or a sample of parameter values.

    Parameters
    ----------
    model : sd_model.Model or path-like
        The model (a path is loaded with :func:`sd_model.load`).
    grid : mapping, optional
        Parameter -> values: a list, ``{"linspace": [start, stop, num]}`` or
        ``{"logspace": [start, stop, num]}``. ``"name[element]"`` sweeps one element of a
        subscripted parameter. Each entry becomes a dim named after the parameter's
        Python name (``"productivity[North]"`` -> ``productivity_North``), with the
        values as coords (attrs ``units``, ``long_name``); scenarios are the cartesian
        product.
    samples : mapping or SampleSpec, optional
        ``{"method": "lhs" | "sobol" | "halton" | "monte-carlo", "n": N, "seed": S,
        "parameters": {name: {"dist": ..., ...}}}`` (see :class:`~sd_model.sampling.
        Distribution`). Gives a ``scenario`` dim, with each sampled parameter as a
        coordinate along it. With a grid too, every grid point runs the whole sample.
    base : mapping, optional
        Overrides applied to every scenario (as :meth:`sd_model.Model.run` takes them);
        swept values replace them.
    outputs : sequence of str, optional
        Variables to keep (model or Python names); default all but the time settings.
        A swept constant is not repeated as a variable: its values are the coords.
    chunk_size : int, optional
        Scenarios per batched integration and per store chunk. Default: up to 250 on the
        compiled backend (fewer for models whose saved values would pass 128 MiB per
        chunk), 4 with PySD. Part of the sweep's identity: it changes an adaptive
        solver's steps, so resuming needs the same value.
    workers : int
        With more than one, chunks run on a ``dask.distributed.LocalCluster`` of that
        many single-threaded processes, created and closed here. (Dask starts worker
        processes by importing the main module: in a script, call ``sweep`` under
        ``if __name__ == "__main__":``.)
    client : dask.distributed.Client, optional
        Run the chunks on this client's cluster instead (it is left open).
    scheduler : str, optional
        Address of a running Dask scheduler to join (``tcp://host:8786``). Workers write
        their chunks into ``store`` themselves and load the model from its path, so on
        other machines both must be on a file system they share.
    store : path-like, optional
        ``*.zarr``: results stream into this zarr store, one chunk at a time, and an
        interrupted sweep resumes from it. ``*.nc``: the same, in a hidden
        ``.NAME.nc.sweep.zarr`` beside it, turned into the netCDF file at the end.
        Without a store the sweep is kept in memory.
    on_error : {"raise", "record"}
        On a failed scenario, raise (naming its parameters), or record it:
        ``status`` 1, NaN outputs and the message in ``error``.
    method : {"euler", "rk4", "RK45", "DOP853", "LSODA", "BDF", "Radau", "RK23"}, optional
        Integration method (default: the model file's, usually Euler).
    backend : {"auto", "compiled", "pysd"}
        ``auto`` uses the compiled backend and falls back to PySD, with a warning.
    rtol, atol, max_step : float
        Tolerances and largest step of adaptive methods.
    initial_time, final_time, time_step : float, optional
        Replace the model file's time settings.
    save_every, saveper : float, optional
        Interval of the saved times (the same setting; give one).
    progress : bool or {"bar", "log"}, optional
        A tqdm bar (scenarios done, rate, ETA) or plain log lines on stderr. Default:
        a bar when stderr is a terminal, nothing otherwise.
    name : str
        A name recorded in the attrs.

    Returns
    -------
    xarray.Dataset
        Dims: the grid parameters and/or ``scenario``, then ``time`` and the model's
        subscript ranges. Variables ``status`` and ``error`` per scenario. Attrs: the
        sweep spec (JSON), its sha256, the model's sha256, versions and the seed. Lazy
        (backed by the store) when a store is given.

    Raises
    ------
    ParameterError, ScenarioError
        Unknown parameters, bad values or bad sweep specs.
    SDModelError
        A failed scenario with ``on_error="raise"``; a store holding another sweep.

    Examples
    --------
    >>> ds = sweep("models/example_regions.mdl",
    ...            grid={"transfer intensity": {"linspace": [0, 1, 5]}},
    ...            samples={"method": "lhs", "n": 64, "seed": 1,
    ...                     "parameters": {"birth rate": [0.01, 0.03]}},
    ...            outputs=["Population"], store="out.zarr")  # doctest: +SKIP
    >>> ds["population"].sizes  # doctest: +SKIP
    Frozen({'transfer_intensity': 5, 'scenario': 64, 'time': 29, 'Region': 3})
    """
    from sd_model.model import Model, load

    if not isinstance(model, Model):
        model = load(model)
    if on_error not in ON_ERROR:
        raise SDModelError(f"on_error must be one of {ON_ERROR}; got {on_error!r}.")
    if save_every is not None and saveper is not None and save_every != saveper:
        raise SDModelError("Give save_every or saveper, not both.")
    if not isinstance(workers, int) or workers < 1:
        raise SDModelError(f"workers must be a positive integer, got {workers!r}.")
    mode = _progress_mode(progress)
    setup = _prepare(
        model,
        grid=grid,
        samples=samples,
        base=base,
        outputs=outputs,
        chunk_size=chunk_size,
        method=method,
        backend=backend,
        options={"rtol": rtol, "atol": atol, "max_step": max_step},
        times={
            "initial_time": initial_time,
            "final_time": final_time,
            "saveper": save_every if save_every is not None else saveper,
            "time_step": time_step,
        },
        name=name,
    )
    plan, spec_hash, resume_hint = setup.plan, setup.spec_hash, setup.resume_hint

    # ---- where results go
    out_path = Path(store) if store is not None else None
    zarr_path: Path | None = None
    if out_path is not None:
        suffix = out_path.suffix.lower()
        if suffix not in (".zarr", ".nc", ".nc4"):
            raise SDModelError(
                f"Cannot write a sweep to {out_path}: use a .zarr store or a .nc file."
            )
        if _is_zarr(out_path):
            zarr_path = out_path
        else:
            if _check_reuse(out_path, _existing_attrs(out_path), spec_hash, resume_hint):
                return xr.open_dataset(out_path)
            zarr_path = out_path.with_name(f".{out_path.name}.sweep.zarr")
    template = _template(
        setup.outputs, plan, setup.times, setup.coords, model.time_units, setup.attrs
    )
    lead = plan.dims
    chunks = _chunk_layout(plan.shape, setup.chunk_size)
    regions = _regions(plan.shape, chunks)
    if zarr_path is not None:
        reuse = _check_reuse(zarr_path, _existing_attrs(zarr_path), spec_hash, resume_hint)
        if not reuse:
            _create_store(template, zarr_path, lead, chunks)
        arrays = _store_arrays(str(zarr_path), spec_hash)
    else:
        template = template.copy(deep=False)
        for n in template.data_vars:
            template[n].data = np.array(template[n].data)  # writable, in memory
        arrays = {str(n): template[n].data for n in template.data_vars}

    status = np.asarray(arrays["status"][...])
    pending = [k for k, r in enumerate(regions) if np.any(status[r] < 0)]
    done = plan.size - sum(_region_size(regions[k]) for k in pending)

    def job(k: int) -> _ChunkJob:
        region = regions[k]
        idx = _region_indices(region)
        swept = [plan.scenario(i) for i in idx]
        return _ChunkJob(
            number=k,
            first=int(np.ravel_multi_index(idx[0], plan.shape)),
            model_path=str(model.path),
            model_sha256=model.sha256,
            scenarios=tuple({**setup.base, **s} for s in swept),
            swept=tuple(a.key for a in (*plan.grid, *plan.samples)),
            labels=tuple(", ".join(f"{key}={v:g}" for key, v in s.items()) for s in swept),
            backend=setup.backend,
            grid=setup.grid,
            options=setup.options,
            outputs=tuple(_Output(v.py_name, v.dims, v.time_dependent) for v in setup.outputs),
            n_times=len(setup.times),
            on_error=on_error,
            region=region,
            store=str(zarr_path) if zarr_path is not None else None,
            store_key=spec_hash,
        )

    # Check the first scenario here, so a bad name fails at once and not in a worker.
    if pending:
        model.normalize_params(job(pending[0]).scenarios[0], where="sweep")

    bar = _Progress(mode, plan.size, done)
    seen: set[str] = set()

    def write(result: _ChunkResult) -> None:
        if result.values:
            _write_region(arrays, regions[result.number], result)

    def report(result: _ChunkResult) -> None:
        for msg in result.messages:
            if msg not in seen:
                seen.add(msg)
                warnings.warn(msg, SDModelWarning, stacklevel=5)
        bar.update(len(result.status))

    def consume(result: _ChunkResult) -> None:
        write(result)
        report(result)

    try:
        if pending and client is None and scheduler is None and workers == 1:
            _run_here(pending, job, model, write, report)
        elif pending:
            _run_on_dask(pending, job, consume, workers, client, scheduler)
    finally:
        bar.close()

    final_status = np.asarray(arrays["status"][...])
    attrs_done = {"sweep_complete": 1, "sweep_n_failed": int(np.sum(final_status == 1))}
    if zarr_path is None:
        template.attrs.update(attrs_done)
        return template
    _finish_store(zarr_path, attrs_done)
    if out_path is not None and not _is_zarr(out_path):
        with xr.open_zarr(zarr_path) as ds:
            write_atomic(out_path, lambda tmp: ds.to_netcdf(tmp, engine="netcdf4"))
        shutil.rmtree(zarr_path)
        return xr.open_dataset(out_path)
    return xr.open_zarr(zarr_path)


def _default_chunk_size(
    backend: str,
    variables: Sequence[VariableInfo],
    coords: Mapping[str, Sequence[str]],
    n_times: int,
) -> int:
    """Scenarios per chunk: a function of the model and time grid only, never of the
    number of workers, so that the chunks (and an adaptive solver's steps) are the same
    however a sweep is run."""
    if backend != "compiled":
        return DEFAULT_CHUNK_PYSD
    per_scenario = 8 * sum(
        (n_times if v.time_dependent else 1) * math.prod(len(coords[d]) for d in v.dims)
        for v in variables
    )
    return max(1, min(DEFAULT_CHUNK_COMPILED, CHUNK_BYTES // max(per_scenario, 1)))


def _given_seed(samples: Mapping[str, Any] | SampleSpec) -> bool:
    if isinstance(samples, SampleSpec):
        return samples.seed is not None
    return isinstance(samples, Mapping) and samples.get("seed") is not None


def _pysd_version() -> str:
    import pysd

    return str(pysd.__version__)


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover - installed with sd_model
        return ""


def _region_size(region: tuple[slice, ...]) -> int:
    return math.prod(r.stop - r.start for r in region)


def _create_store(
    template: xr.Dataset, path: Path, lead: list[str], chunks: tuple[int, ...]
) -> None:
    import dask.array

    lead_chunks = dict(zip(lead, chunks, strict=True))
    encoding: dict[str, Any] = {}
    lazy = template.copy(deep=False)
    for n, da in template.data_vars.items():
        enc = tuple(lead_chunks.get(str(d), da.sizes[d]) for d in da.dims)
        encoding[str(n)] = {"chunks": enc}
        if n != "status":
            # Data is written chunk by chunk later; only the metadata is written now. One
            # dask chunk per variable keeps this graph small however many chunks a sweep has.
            # (dask.array.full: chunking the NaN view itself would hash, i.e. copy, it.)
            lazy[n] = xr.Variable(
                da.dims,
                dask.array.full(da.shape, da.values.flat[0], dtype=da.dtype, chunks=da.shape),
                da.attrs,
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    # Build the store beside its final path and rename it into place: a store that
    # exists is complete in its metadata and its status, even if we are killed here.
    tmp = path.with_name(f".{path.name}.creating")
    shutil.rmtree(tmp, ignore_errors=True)
    lazy.to_zarr(
        tmp,
        mode="w",
        compute=False,
        encoding=encoding,
        zarr_format=_STORE_FORMAT,
        consolidated=True,
    )
    os.replace(tmp, path)


def _finish_store(path: Path, attrs: Mapping[str, Any]) -> None:
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    group.attrs.update(dict(attrs))
    zarr.consolidate_metadata(str(path))


def _run_here(
    pending: list[int],
    job: Callable[[int], _ChunkJob],
    model: Any,
    write: Callable[[_ChunkResult], None],
    report: Callable[[_ChunkResult], None],
) -> None:
    """Run the chunks in this process, storing each while the next one computes.

    Compressing and writing a chunk releases the GIL, so a writer thread puts the second
    core to work; one write in flight keeps memory at two chunks.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    # On an interrupt, leaving the block waits for the write in flight: what was
    # computed is stored, and the store stays consistent.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sd_model-sweep-writer") as pool:
        previous: tuple[Future[None], _ChunkResult] | None = None
        for k in pending:
            result = _run_chunk(dataclasses.replace(job(k), store=None), model)
            if previous is not None:
                previous[0].result()
                report(previous[1])
            previous = (pool.submit(write, result), result)
        if previous is not None:
            previous[0].result()
            report(previous[1])


def _run_on_dask(
    pending: list[int],
    job: Callable[[int], _ChunkJob],
    consume: Callable[[_ChunkResult], None],
    workers: int,
    client: Any,
    scheduler: str | None,
) -> None:
    from distributed import Client, LocalCluster, as_completed

    own_cluster = None
    own_client = None
    if client is None:
        if scheduler is not None:
            own_client = client = Client(scheduler)
        else:
            own_cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=40,  # logging.ERROR: worker chatter is not the user's business
            )
            own_client = client = Client(own_cluster)
    outstanding: set[Any] = set()
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})) or workers)
        todo: Iterator[int] = iter(pending)

        def submit(k: int) -> Any:
            fut = client.submit(_run_chunk, job(k), pure=False)
            outstanding.add(fut)
            return fut

        # A bounded number of chunks in flight: memory stays bounded by the chunk.
        queue = as_completed([submit(k) for k in itertools.islice(todo, 2 * n_workers)])
        for fut in queue:
            outstanding.discard(fut)
            result = fut.result()  # a failed chunk raises here, with the worker's error
            fut.release()
            consume(result)
            nxt = next(todo, None)
            if nxt is not None:
                queue.add(submit(nxt))
    except BaseException:
        # Interrupted or failed: stop the chunks still queued; finished ones are stored.
        client.cancel(list(outstanding))
        raise
    finally:
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()


# --------------------------------------------------------------------------- scenarios + CLI
_SWEEP_KEYS = ("grid", "samples")


def sweep_scenario(
    scenario: Any,
    *,
    store: str | os.PathLike[str] | None = None,
    workers: int = 1,
    client: Any = None,
    scheduler: str | None = None,
    chunk_size: int | None = None,
    on_error: OnError = "raise",
    progress: bool | ProgressMode | None = None,
    model: Any = None,
) -> xr.Dataset:
    """Run the sweep a scenario file describes.

    Parameters
    ----------
    scenario : sd_model.Scenario or path-like
        A scenario with a ``sweep:`` section (``grid:`` and/or ``samples:``); its
        ``set:`` overrides are the base of every scenario, its ``time:`` and ``solver:``
        settings, ``outputs:`` and ``save_every:`` apply.
    store, workers, client, scheduler, chunk_size, on_error, progress
        As in :func:`sweep`.
    model : sd_model.Model, optional
        The already loaded model of the scenario.

    Returns
    -------
    xarray.Dataset

    Examples
    --------
    >>> ds = sweep_scenario("scenarios/example_sweep.yaml", store="out.zarr")  # doctest: +SKIP
    """
    from sd_model.scenarios import Scenario

    sc = scenario if isinstance(scenario, Scenario) else Scenario.from_yaml(scenario)
    spec = dict(sc.sweep)
    unknown = [k for k in spec if k not in _SWEEP_KEYS]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), _SWEEP_KEYS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ScenarioError(
            f"{sc._where('sweep')}: unknown key {unknown[0]!r} in 'sweep'.{hint} "
            f"Allowed: {', '.join(_SWEEP_KEYS)}."
        )
    if not spec.get("grid") and not spec.get("samples"):
        raise ScenarioError(
            f"{sc.source}: no 'sweep:' section with a grid or samples; "
            "`sd-model run` runs a single scenario."
        )
    grid = spec.get("grid")
    if grid is not None and not isinstance(grid, Mapping):
        raise ScenarioError(f"{sc._where('sweep')}: 'sweep.grid' maps parameters to values.")
    kwargs = sc.run_kwargs()
    if sc.save_every is not None:
        kwargs["saveper"] = sc.save_every
    if model is None:
        model = sc.load_model()
    for key, value in sc.set.items():
        model.normalize_params({key: value}, where=f"{sc._where('set.' + key)} (set)")
    samples = spec.get("samples")
    if samples is not None:
        samples = SampleSpec.from_mapping(samples, where=f"{sc._where('sweep')}: samples")
    return sweep(
        model,
        grid=grid,
        samples=samples,
        base=dict(sc.set),
        outputs=list(sc.outputs) or None,
        chunk_size=chunk_size,
        workers=workers,
        client=client,
        scheduler=scheduler,
        store=store,
        on_error=on_error,
        progress=progress,
        name=sc.name,
        **kwargs,
    )


def add_sweep_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sweep`` command to the ``sd-model`` parser's subparsers.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers()``.

    Returns
    -------
    argparse.ArgumentParser
        The ``sweep`` subparser; dispatch it to :func:`cmd_sweep`.

    Examples
    --------
    >>> p = argparse.ArgumentParser(); sub = p.add_subparsers(dest="command")
    >>> _ = add_sweep_parser(sub)
    >>> p.parse_args(["sweep", "s.yaml", "-o", "out.zarr", "--workers", "2"]).workers
    2
    """
    p = subparsers.add_parser(
        "sweep",
        help="run a scenario file's sweep (grid and/or samples) into a zarr store or netCDF",
        description="Run the sweep of a scenario file. Results stream into OUT.zarr chunk by "
        "chunk (re-running the same command resumes an interrupted sweep), or into OUT.nc "
        "written at the end.",
    )
    p.add_argument("scenario", help="scenario file (.yaml) with a sweep: section")
    p.add_argument("-o", "--output", required=True, help="OUT.zarr or OUT.nc")
    p.add_argument("--workers", type=int, default=1, help="local Dask worker processes")
    p.add_argument("--scheduler", metavar="ADDR", help="join a running Dask scheduler")
    p.add_argument(
        "--chunk-size", type=int, help="scenarios per batch (default: up to 250, by model size)"
    )
    p.add_argument(
        "--on-error",
        choices=ON_ERROR,
        default="raise",
        help="stop at a failed scenario (raise) or record it in 'status' (record)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run ``sd-model sweep``; returns the exit status.

    SDModelError and KeyboardInterrupt propagate to :func:`sd_model.cli.main`, which
    prints them as one line.
    """
    progress: bool | ProgressMode | None = False if args.quiet else True
    try:
        ds = sweep_scenario(
            args.scenario,
            store=args.output,
            workers=args.workers,
            scheduler=args.scheduler,
            chunk_size=args.chunk_size,
            on_error=args.on_error,
            progress=progress,
        )
    except KeyboardInterrupt:
        print(
            f"The chunks finished so far are kept for {args.output}; run the same command "
            "again to resume.",
            file=sys.stderr,
        )
        raise
    failed = int(ds.attrs.get("sweep_n_failed", 0))
    n = int(ds.attrs.get("sweep_n_scenarios", 0))
    print(
        f"wrote {args.output}: {n} scenarios ({failed} failed), "
        f"{ds.attrs.get('backend')} backend, {ds.attrs.get('solver_method')}"
    )
    ds.close()
    return 0
