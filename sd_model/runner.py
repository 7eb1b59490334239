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
batch it integrates); a store is always resumed in its own chunks, for the same reason.

Planning never lists the scenarios: the grid's product is indexed chunk by chunk, and
samples are drawn only once the sweep is known to fit. Before anything is written the
results' size (scenarios x saved values x 8 bytes) is checked against the free disk
space of the store's folder, or half the memory without a store; a sweep that does not
fit is refused, with the numbers, unless forced.

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
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
)
from sd_model._meta import VariableInfo
from sd_model.backends import BackendName
from sd_model.evaluate import choose_backend
from sd_model.integrate import Method, SolverOptions, TimeGrid, check_run_size, integrate
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
    """The sweep's scenarios, indexed on demand: the grid's product is never listed.

    Sample values are drawn after the sweep's size is checked (:func:`_drawn`); until
    then the sample axes have no values.
    """

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
    """The plan, with the sample axes named but not drawn yet."""
    axes: list[_Axis] = []
    for key, spec in (grid or {}).items():
        values = grid_axis(spec, where=f"grid: {key}")
        dim, units, long_name = _describe(model, str(key), f"grid: {key!r}")
        axes.append(_Axis(str(key), dim, values, units, long_name))
    sample_axes: list[_Axis] = []
    n = 0
    if samples is not None:
        n = samples.n
        for key in samples.parameters:
            dim, units, long_name = _describe(model, key, f"samples: {key!r}")
            sample_axes.append(_Axis(key, dim, np.empty(0), units, long_name))
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


def _drawn(plan: _Plan, samples: SampleSpec | None) -> _Plan:
    """The plan with its sample values drawn."""
    if samples is None:
        return plan
    drawn = draw(samples)
    axes = tuple(dataclasses.replace(a, values=drawn[a.key]) for a in plan.samples)
    return dataclasses.replace(plan, samples=axes)


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


@dataclass(frozen=True)
class _ChunkGrid:
    """The chunks of the leading dims, numbered in C order; regions computed on demand.

    A sweep of 1e8 scenarios has 4e5 chunks: listing their regions, or a Python object
    per scenario, would cost more memory than the sweep's status record itself.
    """

    shape: tuple[int, ...]
    chunks: tuple[int, ...]

    @property
    def counts(self) -> tuple[int, ...]:
        """Chunks along each dim."""
        return tuple(-(-s // c) for s, c in zip(self.shape, self.chunks, strict=True))

    @property
    def n(self) -> int:
        return math.prod(self.counts)

    def region(self, k: int) -> tuple[slice, ...]:
        """Where chunk ``k`` lies in the leading dims."""
        index = np.unravel_index(int(k), self.counts)
        return tuple(
            slice(int(i) * c, min((int(i) + 1) * c, s))
            for i, c, s in zip(index, self.chunks, self.shape, strict=True)
        )

    def chunk_index(self, region: tuple[slice, ...]) -> tuple[slice, ...]:
        """The chunk numbers along each dim that a chunk-aligned region covers."""
        return tuple(
            slice(r.start // c, -(-r.stop // c)) for r, c in zip(region, self.chunks, strict=True)
        )

    def slabs(self, limit: int) -> Iterator[tuple[slice, ...]]:
        """Chunk-aligned blocks of at most ``limit`` scenarios (or one chunk), in C order."""
        block = list(_chunk_layout(self.shape, limit))
        for d, (b, c, s) in enumerate(zip(block, self.chunks, self.shape, strict=True)):
            if b < s:  # cut dims: round to whole chunks
                block[d] = min(s, max(c, b // c * c))
        slab_grid = _ChunkGrid(self.shape, tuple(block))
        for k in range(slab_grid.n):
            yield slab_grid.region(k)


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
    # Arrays, not lists: a list of 1e8 sample numbers takes gigabytes.
    lead_dims: list[tuple[str, Sequence[Any] | np.ndarray]] = [(a.dim, a.values) for a in plan.grid]
    if plan.n_samples:
        lead_dims.append(("scenario", np.arange(plan.n_samples)))
    ds = build_dataset(
        times,
        values,
        model_vars,
        coords,
        time_units=time_units,
        attrs=attrs,
        lead_dims=lead_dims,
        diagnostics={
            # A view too: a store writes it slab by slab, an in-memory sweep copies it.
            "status": np.broadcast_to(np.int8(-1), shape),
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


def _check_reuse(path: Path, attrs: dict[str, Any] | None, accepted: set[str], hint: str) -> bool:
    """True when ``path`` holds this very sweep; an error when it holds something else."""
    if attrs is None:
        return False
    if attrs.get("sweep_spec_sha256") in accepted:
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

    plan: _Plan  # sample axes not drawn yet (see _drawn)
    sample_spec: SampleSpec | None
    base: dict[str, Any]
    backend: Literal["compiled", "pysd"]
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
            accepted.add(_hash_spec({**self.spec, "chunk_size": int(stored)}))
        return accepted


def _hash_spec(spec: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


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
    """Check everything a sweep needs before anything runs; fix its spec and attrs.

    Nothing here grows with the number of scenarios: samples are drawn later, once the
    sweep's size is known to fit.
    """
    solver = SolverOptions(method=model.resolve_method(method), **options)
    tgrid = model.time_grid(**times)
    # A lower bound (one value per saved time): refuse a 1e-9 time step before the saved
    # times are even listed; integrate() re-checks each batch with its real size.
    check_run_size(tgrid, solver, values_per_save=1)
    saved = tgrid.save_times() if solver.adaptive else _fixed_step_times(tgrid)
    sample_spec = SampleSpec.from_mapping(samples).resolved() if samples is not None else None
    plan = _make_plan(model, grid, sample_spec)
    base = dict(base or {})
    normalized_base = model.normalize_params(base, where="base")
    used, note = choose_backend(model, backend, what="sweeping")
    source = model.compiled() if used == "compiled" else model
    # The same variables, dims and attributes as a single run on either backend.
    variables = model.output_variables(used)
    requested = chunk_size
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
    # is resumed only by the very same sweep. The chunk size is not: a store is always
    # resumed in its own chunks, so it gets the numbers the run that started it would.
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
    }
    spec_text = json.dumps(spec, sort_keys=True, default=str)
    spec_hash = _hash_spec(spec)
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
        sample_spec=sample_spec,
        base=base,
        backend=used,
        options=solver,
        grid=tgrid,
        times=saved,
        outputs=out_vars,
        coords=source.coords,
        chunk_size=chunk_size,
        requested_chunk_size=requested,
        spec=spec,
        spec_hash=spec_hash,
        attrs=attrs,
        resume_hint=resume_hint,
    )


def _make_job(
    setup: _Setup,
    model: Any,
    number: int,
    region: tuple[slice, ...],
    swept: Sequence[Mapping[str, float]],
    first: int,
    *,
    on_error: OnError,
    store: str | None,
    store_key: str,
) -> _ChunkJob:
    return _ChunkJob(
        number=number,
        first=first,
        model_path=str(model.path),
        model_sha256=model.sha256,
        scenarios=tuple({**setup.base, **s} for s in swept),
        swept=tuple(a.key for a in (*setup.plan.grid, *setup.plan.samples)),
        labels=tuple(", ".join(f"{key}={v:g}" for key, v in s.items()) for s in swept),
        backend=setup.backend,
        grid=setup.grid,
        options=setup.options,
        outputs=tuple(_Output(v.py_name, v.dims, v.time_dependent) for v in setup.outputs),
        n_times=len(setup.times),
        on_error=on_error,
        region=region,
        store=store,
        store_key=store_key,
    )


# --------------------------------------------------------------------------- size and time
#: Scenarios of status read or written at once when a store is created or resumed.
_SLAB = 2**18
#: Scenarios of the small batches timed to estimate a sweep's run time.
_PROBE_BATCH = 8


@dataclass(frozen=True)
class _Estimate:
    """What the rest of a sweep will take, told before it starts."""

    n_scenarios: int  # still to run
    n_chunks: int  # still to run
    n_times: int
    values: int  # saved values per scenario, over all outputs and times
    workers: int
    chunk_seconds: float | None = None  # one chunk, timed on small batches

    @property
    def store_bytes(self) -> int:
        # Uncompressed: zarr's compression of model outputs is not to be counted on.
        return self.n_scenarios * self.values * 8

    @property
    def memory_bytes(self) -> int:
        # An in-memory sweep also holds a status byte and an error string per scenario.
        return self.n_scenarios * (self.values * 8 + 1 + 4 * _ERROR_WIDTH)

    @property
    def seconds(self) -> float | None:
        if self.chunk_seconds is None:
            return None
        return self.chunk_seconds * self.n_chunks / self.workers

    def describe(self) -> str:
        """``"1,000 scenarios x 36 values (9 saved times) x 8 bytes = 281.2 KiB; about
        2.0 s of computing"`` (the time when it was measured)."""
        return (
            f"{self.n_scenarios:,} scenarios x {self.values:,} values ({self.n_times} saved "
            f"times) x 8 bytes = {_size(self.store_bytes)}{self.timing()}"
        )

    def timing(self) -> str:
        if self.seconds is None:
            return ""
        workers = f" on {self.workers} workers" if self.workers > 1 else ""
        return f"; about {_duration(self.seconds)} of computing{workers}"


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def _duration(seconds: float) -> str:
    for unit, length in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= 2 * length:
            return f"{seconds / length:.1f} {unit}"
    return f"{seconds:.1f} s"


def _chunk_seconds(setup: _Setup, model: Any, chunk: int) -> float | None:
    """Seconds one chunk of ``chunk`` scenarios takes, or None if the probe fails.

    A batch costs a fixed overhead plus a time per scenario: timing batches of one and
    of a few scenarios gives both. They run the first grid point, with the sampled
    parameters at the model's values (drawing a large sample is what must wait).
    """
    point = {a.key: float(a.values[0]) for a in setup.plan.grid}
    batch = 1 if setup.backend == "pysd" else min(chunk, _PROBE_BATCH)
    job = _make_job(
        setup,
        model,
        0,
        (),
        [point] * batch,
        0,
        on_error="record",
        store=None,
        store_key="",
    )

    def timed(members: list[int]) -> float | None:
        start = _time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the sweep itself reports them
                result = _run_batch(job, model, members)
        except KeyboardInterrupt:
            raise
        except Exception:
            return None
        if result is None or np.any(result.status != 0):
            return None
        return _time.perf_counter() - start

    # The first run pays for lazy imports and caches: it is timed again afterwards.
    first = timed([0])
    if first is None:
        return None
    if batch == 1:
        again = timed([0])
        return min(first, again if again is not None else first) * chunk
    many = timed(list(range(batch)))
    one = timed([0])
    if many is None or one is None:
        return None
    per_scenario = max(0.0, (many - one) / (batch - 1))
    return one + per_scenario * (chunk - 1)


def _physical_memory() -> int | None:
    """Bytes of RAM, or None where the system does not tell (Windows)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def _existing_folder(path: Path) -> Path:
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _check_room(
    estimate: _Estimate,
    *,
    zarr_path: Path | None,
    out_path: Path | None,
    total_bytes: int,
    timed: Callable[[], _Estimate],
) -> None:
    """Refuse a sweep whose results would not fit the disk, or memory without a store."""
    if zarr_path is None:
        ram = _physical_memory()
        if ram is None or estimate.memory_bytes <= ram // 2:
            return
        raise SDModelError(
            f"An in-memory sweep would need about {_size(estimate.memory_bytes)}, more than "
            f"half of this machine's {_size(ram)} of memory: {estimate.n_scenarios:,} "
            f"scenarios x ({estimate.values:,} values x 8 bytes + {1 + 4 * _ERROR_WIDTH:,} "
            f"bytes of status and error){timed().timing()}. Give a store (store='out.zarr') "
            "to stream the results to disk, or sweep fewer scenarios (a smaller grid, fewer "
            "samples); force=True runs it anyway."
        )
    assert out_path is not None
    # A netCDF output is written from the zarr store at the end: room for both.
    nc = not _is_zarr(out_path)
    need = estimate.store_bytes + (total_bytes if nc else 0)
    folder = _existing_folder(zarr_path)
    free = shutil.disk_usage(folder).free
    if need <= free:
        return
    also = f", plus {_size(total_bytes)} for the netCDF file" if nc else ""
    raise SDModelError(
        f"{out_path} would need about {_size(need)}, more than the {_size(free)} free in "
        f"{folder}: {timed().describe()} (uncompressed){also}. Sweep fewer scenarios (a "
        "smaller grid, fewer samples), fewer outputs or saved times (save_every), or write "
        "elsewhere; force=True (sd-model sweep --yes) runs it anyway."
    )


def _stored_chunks(path: Path, setup: _Setup, attrs: Mapping[str, Any]) -> tuple[int, ...]:
    """The chunks of the store a sweep resumes; a warning if other ones were asked for."""
    import zarr

    chunks = tuple(int(c) for c in zarr.open_array(str(path / "status"), mode="r").chunks)
    stored = attrs.get("sweep_chunk_size")
    if setup.requested_chunk_size is not None and setup.requested_chunk_size != stored:
        warnings.warn(
            f"{path} was started with chunk_size {stored}: it is resumed in its own chunks, "
            f"not in chunks of {setup.requested_chunk_size} (results do not depend on it; "
            "it applies to new stores).",
            SDModelWarning,
            stacklevel=4,  # the caller of sweep()
        )
    return chunks


def _scan_status(
    status: Any, chunk_grid: _ChunkGrid, limit: int = _SLAB
) -> tuple[np.ndarray, int, int]:
    """(chunk numbers still to run, scenarios done, scenarios failed), slab by slab."""
    pending = np.zeros(chunk_grid.counts, dtype=bool)
    done = failed = 0
    for slab in chunk_grid.slabs(limit):
        block = np.asarray(status[slab])
        done += int(np.count_nonzero(block >= 0))
        failed += int(np.count_nonzero(block == 1))
        lowest = block
        for axis, c in enumerate(chunk_grid.chunks):
            starts = np.arange(0, lowest.shape[axis], c)
            lowest = np.minimum.reduceat(lowest, starts, axis=axis)
        pending[chunk_grid.chunk_index(slab)] = lowest < 0
    return np.flatnonzero(pending), done, failed


def _resume_layout(zarr_path: Path | None, setup: _Setup) -> tuple[bool, tuple[int, ...]]:
    """(whether ``zarr_path`` holds this very sweep, to resume; the chunks to run in)."""
    chunks = _chunk_layout(setup.plan.shape, setup.chunk_size)
    if zarr_path is None:
        return False, chunks
    attrs = _existing_attrs(zarr_path)
    if not _check_reuse(zarr_path, attrs, setup.accepts(attrs), setup.resume_hint):
        return False, chunks
    assert attrs is not None
    return True, _stored_chunks(zarr_path, setup, attrs)


def _check_size(
    setup: _Setup,
    model: Any,
    *,
    zarr_path: Path | None,
    out_path: Path | None,
    chunks: tuple[int, ...],
    n_chunks: int,
    done: int,
    workers: int,
    force: bool,
    mode: ProgressMode | None,
) -> None:
    """Refuse a sweep that would not fit (unless forced); tell what it will take."""
    estimate = _Estimate(
        n_scenarios=setup.plan.size - done,
        n_chunks=n_chunks,
        n_times=len(setup.times),
        values=setup.values_per_scenario,
        workers=workers,
    )

    def timed() -> _Estimate:
        seconds = _chunk_seconds(setup, model, math.prod(chunks))
        return dataclasses.replace(estimate, chunk_seconds=seconds)

    if not force:
        _check_room(
            estimate,
            zarr_path=zarr_path,
            out_path=out_path,
            total_bytes=setup.plan.size * setup.values_per_scenario * 8,
            timed=timed,
        )
    if mode is not None and n_chunks > 1:
        print(f"sweep: {timed().describe()}", file=sys.stderr, flush=True)


def _allocate(
    setup: _Setup,
    model: Any,
    zarr_path: Path | None,
    reuse: bool,
    chunk_grid: _ChunkGrid,
    store_key: str,
    mode: ProgressMode | None,
) -> tuple[dict[str, Any], xr.Dataset | None]:
    """The arrays results go into: a store's (created unless resumed), or the arrays of
    a Dataset in memory, returned too."""
    if zarr_path is not None and reuse:
        return _store_arrays(str(zarr_path), store_key), None
    template = _template(
        setup.outputs, setup.plan, setup.times, setup.coords, model.time_units, setup.attrs
    )
    if zarr_path is not None:
        if mode is not None and chunk_grid.n >= 10_000:
            # Each chunk's status file is written up front: minutes for a huge sweep.
            print(
                f"sweep: creating {zarr_path} ({chunk_grid.n:,} chunks)",
                file=sys.stderr,
                flush=True,
            )
        _create_store(template, zarr_path, setup.plan.dims, chunk_grid)
        return _store_arrays(str(zarr_path), store_key), None
    for n in template.data_vars:
        template[n].data = np.array(template[n].data)  # writable, in memory
    return {str(n): template[n].data for n in template.data_vars}, template


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
    force: bool = False,
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
        chunk), 4 with PySD. Not part of the sweep's identity: a store is resumed in its
        own chunks whatever is given here (with a warning when it differs), so it holds
        the numbers the run that started it would have given (an adaptive solver's
        steps depend on the batch).
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
        A tqdm bar (scenarios done, rate, ETA) or plain log lines on stderr, after a line
        with the estimated store size and run time. Default: a bar when stderr is a
        terminal, nothing otherwise.
    name : str
        A name recorded in the attrs.
    force : bool
        Run even when the results would not fit: a store bigger than the free space of
        its folder (scenarios x saved values x 8 bytes, uncompressed), or an in-memory
        sweep bigger than half of the machine's memory. Without it such sweeps are
        refused before anything is written.

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
        A failed scenario with ``on_error="raise"``; a store holding another sweep;
        results that would not fit the disk or memory (without ``force``).
    KeyboardInterrupt
        Passed on; the chunks finished so far stay in the store, which the same call
        resumes.

    Warns
    -----
    SDModelWarning
        A store resumed with another ``chunk_size`` than it was started with.

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
    plan = setup.plan

    # ---- where results go, and what is left to run
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
            attrs = _existing_attrs(out_path)
            if _check_reuse(out_path, attrs, setup.accepts(attrs), setup.resume_hint):
                return xr.open_dataset(out_path)
            zarr_path = out_path.with_name(f".{out_path.name}.sweep.zarr")
    reuse, chunks = _resume_layout(zarr_path, setup)
    chunk_grid = _ChunkGrid(plan.shape, chunks)
    # The layout is in the key: a store deleted and re-created at the same path with
    # other chunks must not be written through arrays cached for the old one.
    store_key = f"{setup.spec_hash}:{chunks}"
    pending: Sequence[int] | np.ndarray = range(chunk_grid.n)
    done = failed_before = 0
    if reuse:
        assert zarr_path is not None
        status = _store_arrays(str(zarr_path), store_key)["status"]
        pending, done, failed_before = _scan_status(status, chunk_grid)
    _check_size(
        setup,
        model,
        zarr_path=zarr_path,
        out_path=out_path,
        chunks=chunks,
        n_chunks=len(pending),
        done=done,
        workers=workers,
        force=force,
        mode=mode,
    )
    plan = _drawn(plan, setup.sample_spec)
    setup = dataclasses.replace(setup, plan=plan)
    arrays, in_memory = _allocate(setup, model, zarr_path, reuse, chunk_grid, store_key, mode)

    def job(k: int) -> _ChunkJob:
        region = chunk_grid.region(k)
        idx = _region_indices(region)
        return _make_job(
            setup,
            model,
            int(k),
            region,
            [plan.scenario(i) for i in idx],
            int(np.ravel_multi_index(idx[0], plan.shape)),
            on_error=on_error,
            store=str(zarr_path) if zarr_path is not None else None,
            store_key=store_key,
        )

    # Check the first scenario here, so a bad name fails at once and not in a worker.
    if len(pending):
        model.normalize_params(job(pending[0]).scenarios[0], where="sweep")

    bar = _Progress(mode, plan.size, done)
    seen: set[str] = set()
    failed = failed_before

    def write(result: _ChunkResult) -> None:
        if result.values:
            _write_region(arrays, chunk_grid.region(result.number), result)

    def report(result: _ChunkResult) -> None:
        nonlocal failed
        # Every pending chunk is reported once: failures are counted here, not by
        # reading the whole status back.
        failed += int(np.count_nonzero(result.status == 1))
        for msg in result.messages:
            if msg not in seen:
                seen.add(msg)
                warnings.warn(msg, SDModelWarning, stacklevel=5)
        bar.update(len(result.status))

    def consume(result: _ChunkResult) -> None:
        write(result)
        report(result)

    try:
        if len(pending) and client is None and scheduler is None and workers == 1:
            _run_here(pending, job, model, write, report)
        elif len(pending):
            _run_on_dask(pending, job, consume, workers, client, scheduler)
    finally:
        bar.close()

    attrs_done = {"sweep_complete": 1, "sweep_n_failed": failed}
    if in_memory is not None:
        in_memory.attrs.update(attrs_done)
        return in_memory
    assert zarr_path is not None
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


def _create_store(
    template: xr.Dataset, path: Path, lead: list[str], chunk_grid: _ChunkGrid
) -> None:
    import dask.array
    import zarr

    lead_chunks = dict(zip(lead, chunk_grid.chunks, strict=True))
    encoding: dict[str, Any] = {}
    lazy = template.copy(deep=False)
    for n, da in template.data_vars.items():
        enc = tuple(lead_chunks.get(str(d), da.sizes[d]) for d in da.dims)
        encoding[str(n)] = {"chunks": enc}
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
    # A fresh name each time: after an interrupt, zarr may still be finishing writes
    # into the previous attempt's folder.
    for old in path.parent.glob(f".{path.name}.creating*"):
        shutil.rmtree(old, ignore_errors=True)
    tmp = path.with_name(f".{path.name}.creating-{uuid.uuid4().hex[:12]}")
    try:
        lazy.to_zarr(
            tmp,
            mode="w",
            compute=False,
            encoding=encoding,
            zarr_format=_STORE_FORMAT,
            consolidated=True,
        )
        # An unwritten int8 chunk reads as 0, "ok": every status chunk is written as
        # "not run" before the store is renamed into place. Slab by slab, so memory
        # stays small and an interrupt is taken between slabs.
        status = zarr.open_array(str(tmp / "status"), mode="r+")
        for slab in chunk_grid.slabs(_SLAB):
            status[slab] = -1
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.replace(tmp, path)


def _finish_store(path: Path, attrs: Mapping[str, Any]) -> None:
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    group.attrs.update(dict(attrs))
    zarr.consolidate_metadata(str(path))


def _run_here(
    pending: Iterable[int],
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
    pending: Iterable[int],
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
    force: bool = False,
) -> xr.Dataset:
    """Run the sweep a scenario file describes.

    Parameters
    ----------
    scenario : sd_model.Scenario or path-like
        A scenario with a ``sweep:`` section (``grid:`` and/or ``samples:``); its
        ``set:`` overrides are the base of every scenario, its ``time:`` and ``solver:``
        settings, ``outputs:`` and ``save_every:`` apply.
    store, workers, client, scheduler, chunk_size, on_error, progress, force
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
        force=force,
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
    p.add_argument(
        "--yes",
        action="store_true",
        help="run even if the results (scenarios x saved values x 8 bytes) would not fit "
        "the free disk space",
    )
    return p


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run ``sd-model sweep``; returns the exit status.

    SDModelError and KeyboardInterrupt propagate to :func:`sd_model.cli.main`, which
    prints them as one line; on an interrupt a line before it says whether the store
    holds finished chunks to resume.
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
            force=args.yes,
        )
    except KeyboardInterrupt:
        out = Path(args.output)
        store = out if _is_zarr(out) else out.with_name(f".{out.name}.sweep.zarr")
        # One line, printed by sd_model.cli.main from the interrupt's message.
        if store.exists():
            raise KeyboardInterrupt(
                f"the chunks finished so far are kept for {args.output}; run the same "
                "command again to resume."
            ) from None
        raise KeyboardInterrupt(f"stopped before anything was written to {args.output}.") from None
    failed = int(ds.attrs.get("sweep_n_failed", 0))
    n = int(ds.attrs.get("sweep_n_scenarios", 0))
    print(
        f"wrote {args.output}: {n} scenarios ({failed} failed), "
        f"{ds.attrs.get('backend')} backend, {ds.attrs.get('solver_method')}"
    )
    ds.close()
    return 0
