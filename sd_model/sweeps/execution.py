"""Running a sweep's chunks: one batched evaluation per chunk, here or on Dask.

A chunk is one call of :func:`sd_model.evaluate.evaluate` (a vectorized integration on
the compiled backend, a loop of runs on PySD's). When a batch fails, its scenarios are
run one by one to isolate the culprit, which is raised or recorded as the sweep asks.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import xarray as xr

from sd_model._errors import SDModelError, SDModelWarning, import_optional
from sd_model.evaluate import UsedBackend, evaluate
from sd_model.integrate import SolverOptions, TimeGrid
from sd_model.model import Model
from sd_model.sweeps.plan import ELEMENT_KEY, Setup
from sd_model.sweeps.store import ERROR_WIDTH, store_arrays, write_region

OnError = Literal["raise", "record"]
ON_ERROR: tuple[str, ...] = get_args(OnError)


@dataclass(frozen=True)
class Output:
    """A variable a sweep keeps."""

    py_name: str
    dims: tuple[str, ...]
    time_dependent: bool


@dataclass(frozen=True)
class ChunkJob:
    """Everything a worker needs to run one chunk (picklable, small)."""

    number: int
    first: int  # flat index of the chunk's first scenario (for messages)
    model_path: str
    model_sha256: str
    scenarios: tuple[Mapping[str, Any], ...]  # user-level overrides, base included
    swept: tuple[str, ...]  # the swept keys (grid and samples), as the user wrote them
    labels: tuple[str, ...]  # "transfer_intensity=0.5, ..." per scenario
    backend: UsedBackend
    grid: TimeGrid
    options: SolverOptions
    outputs: tuple[Output, ...]
    n_times: int
    on_error: OnError
    region: tuple[slice, ...]  # where the chunk goes in the leading dims
    store: str | None  # zarr store the worker writes into (None: return the values)
    store_key: str  # the sweep's spec hash: identifies the store's layout
    # RANDOM functions: the sweep's seed, and each scenario's flat index in the sweep
    # (its stream identity: the same whatever the chunks and workers)
    seed: int | None = None
    stream_ids: tuple[int, ...] = ()


@dataclass
class ChunkResult:
    """What a chunk produced."""

    number: int
    values: dict[str, np.ndarray]  # py_name -> (B, [time], *dims); empty once written
    status: np.ndarray  # (B,) int8
    errors: list[str]
    messages: list[str] = field(default_factory=list)


class ScenarioFailure(SDModelError):
    """A scenario of a sweep failed (its parameters named)."""


def make_job(
    setup: Setup,
    model: Model,
    number: int,
    region: tuple[slice, ...],
    swept: Sequence[Mapping[str, float]],
    first: int,
    *,
    on_error: OnError,
    store: str | None,
    store_key: str,
    stream_ids: Sequence[int] = (),
) -> ChunkJob:
    """The job of one chunk: its scenarios (base and swept values) and settings."""
    return ChunkJob(
        number=number,
        first=first,
        model_path=str(model.path),
        model_sha256=model.sha256,
        scenarios=tuple({**setup.base, **s} for s in swept),
        swept=setup.plan.keys,
        labels=tuple(", ".join(f"{key}={v:g}" for key, v in s.items()) for s in swept),
        backend=setup.backend,
        grid=setup.grid,
        options=setup.options,
        outputs=tuple(Output(v.py_name, v.dims, v.time_dependent) for v in setup.outputs),
        n_times=len(setup.times),
        on_error=on_error,
        region=region,
        store=store,
        store_key=store_key,
        seed=setup.random_seed,
        stream_ids=tuple(int(i) for i in stream_ids),
    )


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, sha256: str) -> Model:
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


def run_chunk(job: ChunkJob, model: Model | None = None) -> ChunkResult:
    """Run one chunk; the function Dask workers call."""
    if model is None:
        model = _load_cached(job.model_path, job.model_sha256)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SDModelWarning)
        result = run_batch(job, model, list(range(len(job.scenarios))))
        if result is None:
            # One failure fails a batch: run the scenarios one by one to isolate it.
            result = _run_singly(job, model)
    result.messages.extend(str(w.message) for w in caught if issubclass(w.category, SDModelWarning))
    if job.store is not None:
        # Workers write their own chunk: results do not travel back through the scheduler
        # (tens of megabytes per chunk), and each chunk owns whole zarr chunk files, so
        # concurrent writers never touch the same file.
        arrays = store_arrays(job.store, job.store_key)
        write_region(arrays, job.region, result.values, result.status, result.errors)
        result.values = {}
    return result


def _run_singly(job: ChunkJob, model: Model) -> ChunkResult:
    parts: list[ChunkResult] = []
    for b in range(len(job.scenarios)):
        part = run_batch(job, model, [b])
        assert part is not None
        parts.append(part)
    values = {name: np.concatenate([p.values[name] for p in parts]) for name in parts[0].values}
    return ChunkResult(
        job.number,
        values,
        np.concatenate([p.status for p in parts]),
        [e for p in parts for e in p.errors],
        [m for p in parts for m in p.messages],
    )


def _empty(job: ChunkJob, model: Model, n: int) -> dict[str, np.ndarray]:
    out = {}
    for o in job.outputs:
        shape = (n, *((job.n_times,) if o.time_dependent else ()))
        shape += tuple(len(model.coords[d]) for d in o.dims)
        out[o.py_name] = np.full(shape, np.nan)
    return out


def run_batch(job: ChunkJob, model: Model, members: list[int]) -> ChunkResult | None:
    """Integrate ``members`` of the chunk together.

    Returns None when a batch of several fails (the caller isolates the culprit); a
    single scenario's failure is raised or recorded as ``job.on_error`` says.
    """
    try:
        values, messages = _evaluate(job, model, members)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        if len(members) > 1:
            return None
        b = members[0]
        text = f"{type(exc).__name__}: {exc}" if not isinstance(exc, SDModelError) else str(exc)
        if job.on_error == "raise":
            raise ScenarioFailure(
                f"Scenario {job.first + b} ({job.labels[b]}) failed: {text} "
                "(on_error='record' keeps going and records failures in 'status')."
            ) from exc
        return ChunkResult(
            job.number,
            _empty(job, model, 1),
            np.ones(1, dtype=np.int8),
            [" ".join(text.split())[:ERROR_WIDTH]],
        )
    n = len(members)
    return ChunkResult(job.number, values, np.zeros(n, dtype=np.int8), [""] * n, messages)


def _evaluate(
    job: ChunkJob, model: Model, members: list[int]
) -> tuple[dict[str, np.ndarray], list[str]]:
    scenarios = [job.scenarios[b] for b in members]
    if job.backend == "compiled":
        param_sets = compiled_overrides(model, scenarios, job.swept, job.first + members[0])
    else:
        param_sets = [dict(s) for s in scenarios]
    ev = evaluate(
        model,
        param_sets,
        solver=job.options,
        grid=job.grid,
        backend=job.backend,
        outputs=[o.py_name for o in job.outputs],
        normalized=job.backend == "compiled",
        warn=False,
        seed=job.seed,
        stream_ids=[job.stream_ids[b] for b in members] if job.stream_ids else None,
    )
    if len(ev.times) != job.n_times:
        raise SDModelError(f"Internal error: {len(ev.times)} saved times instead of {job.n_times}.")
    return ev.values, list(ev.messages)


def compiled_value(value: Any) -> Any:
    """An override as the compiled backend takes it (NumPy, in the variable's dims order,
    which is what ``normalize_params`` produces; skipping xarray saves its per-call cost)."""
    if isinstance(value, xr.DataArray):
        return np.asarray(value.values, dtype=float)
    return value


@dataclass(frozen=True)
class _ElementEdit:
    """Where a swept ``"name[element]"`` key writes into its parameter's array."""

    py_name: str
    position: tuple[int, ...]
    start: np.ndarray  # the parameter's default array (the swept cell is overwritten)


def _element_edits(model: Model, keys: Sequence[str]) -> dict[str, _ElementEdit]:
    """Locate swept element keys by asking ``normalize_params`` itself.

    Two probe values differ in exactly the cell the key names; the rest of the array is
    the parameter's default. Done once per chunk, not once per scenario.
    """
    edits: dict[str, _ElementEdit] = {}
    for key in keys:
        if not ELEMENT_KEY.match(key):
            continue
        ((py_name, one),) = model.normalize_params({key: 1.0}, where=f"sweep: {key!r}").items()
        ((_, two),) = model.normalize_params({key: 2.0}, where=f"sweep: {key!r}").items()
        a, b = np.asarray(one.values, dtype=float), np.asarray(two.values, dtype=float)
        (position,) = [tuple(int(i) for i in p) for p in np.argwhere(a != b)]
        edits[key] = _ElementEdit(py_name, position, a)
    return edits


def compiled_overrides(
    model: Model, scenarios: Sequence[Mapping[str, Any]], swept: Sequence[str], first: int
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
        overrides = {k: compiled_value(v) for k, v in normalized.items()}
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


def run_here(
    pending: Iterable[int],
    job: Callable[[int], ChunkJob],
    model: Model,
    write: Callable[[ChunkResult], None],
    report: Callable[[ChunkResult], None],
) -> None:
    """Run the chunks in this process, storing each while the next one computes.

    Compressing and writing a chunk releases the GIL, so a writer thread puts the second
    core to work; one write in flight keeps memory at two chunks.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    # On an interrupt, leaving the block waits for the write in flight: what was
    # computed is stored, and the store stays consistent.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sd_model-sweep-writer") as pool:
        previous: tuple[Future[None], ChunkResult] | None = None
        for k in pending:
            result = run_chunk(dataclasses.replace(job(k), store=None), model)
            if previous is not None:
                previous[0].result()
                report(previous[1])
            previous = (pool.submit(write, result), result)
        if previous is not None:
            previous[0].result()
            report(previous[1])


def run_on_dask(
    pending: Iterable[int],
    job: Callable[[int], ChunkJob],
    consume: Callable[[ChunkResult], None],
    workers: int,
    client: Any,
    scheduler: str | None,
) -> None:
    """Run the chunks on a Dask cluster (``client``'s, one at ``scheduler``, or a local
    one of ``workers`` processes created and closed here); workers write their chunks."""
    distributed = import_optional("distributed", "sweep", "Sweeps on Dask")
    Client, LocalCluster = distributed.Client, distributed.LocalCluster
    as_completed = distributed.as_completed

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
            fut = client.submit(run_chunk, job(k), pure=False)
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
