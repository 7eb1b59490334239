"""``sweep`` and ``sweep_scenario``: a sweep from its plan to its results."""

from __future__ import annotations

import dataclasses
import difflib
import os
import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from sd_model._errors import ScenarioError, SDModelError, SDModelWarning
from sd_model.backends import BackendName
from sd_model.integrate import Method, SolverOptions
from sd_model.model import Model, load
from sd_model.options import TimeSettings, resolve_solver, resolve_time
from sd_model.results import write_atomic
from sd_model.sampling import SampleSpec
from sd_model.scenarios import Scenario
from sd_model.sweeps.budget import check_size
from sd_model.sweeps.execution import (
    ON_ERROR,
    ChunkJob,
    ChunkResult,
    OnError,
    make_job,
    run_here,
    run_on_dask,
)
from sd_model.sweeps.layout import ChunkGrid, region_indices
from sd_model.sweeps.plan import Setup, drawn, prepare
from sd_model.sweeps.progress import Progress, ProgressMode, progress_mode
from sd_model.sweeps.store import (
    allocate,
    check_reuse,
    existing_attrs,
    finish_store,
    is_zarr,
    resume_layout,
    scan_status,
    store_arrays,
    write_region,
)

_SWEEP_KEYS = ("grid", "samples")


def sweep(
    model: Model | str | os.PathLike[str],
    *,
    grid: Mapping[str, Any] | None = None,
    samples: Mapping[str, Any] | SampleSpec | None = None,
    base: Mapping[str, Any] | None = None,
    outputs: Sequence[str] | None = None,
    solver: SolverOptions | None = None,
    time: TimeSettings | None = None,
    backend: BackendName = "auto",
    store: str | os.PathLike[str] | None = None,
    chunk_size: int | None = None,
    workers: int = 1,
    client: Any = None,
    scheduler: str | None = None,
    on_error: OnError = "raise",
    progress: bool | ProgressMode | None = None,
    name: str = "",
    force: bool = False,
    method: Method | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    max_step: float | None = None,
    initial_time: float | None = None,
    final_time: float | None = None,
    time_step: float | None = None,
    saveper: float | None = None,
    save_every: float | None = None,
    seed: int | None = None,
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
    solver : SolverOptions, optional
        Method and tolerances (default: the model file's method, usually Euler).
    time : TimeSettings, optional
        Replace the model file's time settings.
    backend : {"auto", "compiled", "pysd"}
        ``auto`` uses the compiled backend and falls back to PySD, with a warning.
    store : path-like, optional
        ``*.zarr``: results stream into this zarr store, one chunk at a time, and an
        interrupted sweep resumes from it. ``*.nc``: the same, in a hidden
        ``.NAME.nc.sweep.zarr`` beside it, turned into the netCDF file at the end.
        Without a store the sweep is kept in memory.
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
    on_error : {"raise", "record"}
        On a failed scenario, raise (naming its parameters), or record it:
        ``status`` 1, NaN outputs and the message in ``error``.
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
    method, rtol, atol, max_step : optional
        Shorthand for ``solver=SolverOptions(...)`` (give these or ``solver``).
    initial_time, final_time, time_step, saveper : float, optional
        Shorthand for ``time=TimeSettings(...)`` (give these or ``time``).
    save_every : float, optional
        Deprecated spelling of ``saveper``.
    seed : int, optional
        Seed of the model's RANDOM functions: scenario ``k`` (flat index, C order over
        the sweep's dims) draws from its own stream ``(seed, k)``, whatever the chunk
        size or number of workers; scenario 0 draws what :meth:`Model.run` with this
        seed draws. None: fresh entropy, recorded in the ``random_seed`` attr. Ignored
        (and not recorded) for models without RANDOM functions.

    Returns
    -------
    xarray.Dataset
        Dims: the grid parameters and/or ``scenario``, then ``time`` and the model's
        subscript ranges. Variables ``status`` and ``error`` per scenario. Attrs: the
        provenance of a run (:func:`sd_model.provenance.provenance`, recording ``base`` as
        a run records its overrides), the sweep spec (JSON), its sha256 and the seed.
        Lazy (backed by the store) when a store is given.

    Raises
    ------
    ParameterError, ScenarioError
        Unknown parameters, bad values or bad sweep specs.
    SettingsError
        Invalid solver or time settings, or an option object and its shorthand keywords
        given together.
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
    ...            outputs=["Population"], time=TimeSettings(saveper=1),
    ...            store="out.zarr")  # doctest: +SKIP
    >>> ds["population"].sizes  # doctest: +SKIP
    Frozen({'transfer_intensity': 5, 'scenario': 64, 'time': 29, 'Region': 3})
    """
    if not isinstance(model, Model):
        model = load(model)
    if on_error not in ON_ERROR:
        raise SDModelError(f"on_error must be one of {ON_ERROR}; got {on_error!r}.")
    if save_every is not None:
        warnings.warn(
            "sweep(save_every=...) is deprecated; give saveper= "
            "(or time=TimeSettings(saveper=...)).",
            DeprecationWarning,
            stacklevel=2,
        )
        if saveper is not None and saveper != save_every:
            raise SDModelError("Give save_every or saveper, not both.")
        saveper = save_every
    if not isinstance(workers, int) or workers < 1:
        raise SDModelError(f"workers must be a positive integer, got {workers!r}.")
    mode = progress_mode(progress)
    setup = prepare(
        model,
        grid=grid,
        samples=samples,
        base=base,
        outputs=outputs,
        chunk_size=chunk_size,
        solver=resolve_solver(
            model, solver, method=method, rtol=rtol, atol=atol, max_step=max_step
        ),
        time=resolve_time(
            time,
            initial_time=initial_time,
            final_time=final_time,
            time_step=time_step,
            saveper=saveper,
        ),
        backend=backend,
        name=name,
        seed=seed,
    )

    # ---- where results go, and what is left to run
    out_path = Path(store) if store is not None else None
    zarr_path = _zarr_path(out_path)
    if out_path is not None and zarr_path is not None and zarr_path != out_path:
        attrs = existing_attrs(out_path)
        if check_reuse(out_path, attrs, setup.accepts(attrs), setup.resume_hint):
            return xr.open_dataset(out_path)
    reuse, chunks = resume_layout(zarr_path, setup)
    chunk_grid = ChunkGrid(setup.plan.shape, chunks)
    # The layout is in the key: a store deleted and re-created at the same path with
    # other chunks must not be written through arrays cached for the old one.
    store_key = f"{setup.spec_hash}:{chunks}"
    pending: Sequence[int] | np.ndarray = range(chunk_grid.n)
    done = failed_before = 0
    if reuse:
        assert zarr_path is not None
        status = store_arrays(str(zarr_path), store_key)["status"]
        pending, done, failed_before = scan_status(status, chunk_grid)
    check_size(
        setup,
        model,
        zarr_path=zarr_path,
        out_path=out_path,
        chunks=chunks,
        n_chunks=len(pending),
        done=done,
        workers=workers,
        force=force,
        verbose=mode is not None,
    )
    setup = dataclasses.replace(setup, plan=drawn(setup.plan, setup.sample_spec))
    arrays, in_memory = allocate(
        setup, model.time_units, zarr_path, reuse, chunk_grid, store_key, mode is not None
    )

    def job(k: int) -> ChunkJob:
        region = chunk_grid.region(k)
        idx = region_indices(region)
        flat = [int(np.ravel_multi_index(i, setup.plan.shape)) for i in idx]
        return make_job(
            setup,
            model,
            int(k),
            region,
            [setup.plan.scenario(i) for i in idx],
            flat[0],
            on_error=on_error,
            store=str(zarr_path) if zarr_path is not None else None,
            store_key=store_key,
            stream_ids=flat,
        )

    # Check the first scenario here, so a bad name fails at once and not in a worker.
    if len(pending):
        model.normalize_params(job(pending[0]).scenarios[0], where="sweep")
    failed = failed_before + _run(
        setup, model, pending, job, arrays, chunk_grid, mode, done, workers, client, scheduler
    )
    attrs_done = {"sweep_complete": 1, "sweep_n_failed": failed}
    if in_memory is not None:
        in_memory.attrs.update(attrs_done)
        return in_memory
    assert zarr_path is not None
    finish_store(zarr_path, attrs_done)
    if out_path is not None and not is_zarr(out_path):
        with xr.open_zarr(zarr_path) as ds:
            write_atomic(out_path, lambda tmp: ds.to_netcdf(tmp, engine="netcdf4"))
        shutil.rmtree(zarr_path)
        return xr.open_dataset(out_path)
    return xr.open_zarr(zarr_path)


def _zarr_path(out_path: Path | None) -> Path | None:
    """The zarr store a sweep writes into (a hidden one beside a netCDF output)."""
    if out_path is None:
        return None
    if out_path.suffix.lower() not in (".zarr", ".nc", ".nc4"):
        raise SDModelError(f"Cannot write a sweep to {out_path}: use a .zarr store or a .nc file.")
    if is_zarr(out_path):
        return out_path
    return out_path.with_name(f".{out_path.name}.sweep.zarr")


def _run(
    setup: Setup,
    model: Model,
    pending: Sequence[int] | np.ndarray,
    job: Callable[[int], ChunkJob],
    arrays: Mapping[str, Any],
    chunk_grid: ChunkGrid,
    mode: ProgressMode | None,
    done: int,
    workers: int,
    client: Any,
    scheduler: str | None,
) -> int:
    """Run the pending chunks, here or on Dask; the number of scenarios that failed."""
    bar = Progress(mode, setup.plan.size, done)
    seen: set[str] = set()
    failed = 0

    def write(result: ChunkResult) -> None:
        if result.values:
            region = chunk_grid.region(result.number)
            write_region(arrays, region, result.values, result.status, result.errors)

    def report(result: ChunkResult) -> None:
        nonlocal failed
        # Every pending chunk is reported once: failures are counted here, not by
        # reading the whole status back.
        failed += int(np.count_nonzero(result.status == 1))
        for msg in result.messages:
            if msg not in seen:
                seen.add(msg)
                warnings.warn(msg, SDModelWarning, stacklevel=6)
        bar.update(len(result.status))

    def consume(result: ChunkResult) -> None:
        write(result)
        report(result)

    try:
        if len(pending) and client is None and scheduler is None and workers == 1:
            run_here(pending, job, model, write, report)
        elif len(pending):
            run_on_dask(pending, job, consume, workers, client, scheduler)
    finally:
        bar.close()
    return failed


def sweep_scenario(
    scenario: Scenario | str | os.PathLike[str],
    *,
    store: str | os.PathLike[str] | None = None,
    workers: int = 1,
    client: Any = None,
    scheduler: str | None = None,
    chunk_size: int | None = None,
    on_error: OnError = "raise",
    progress: bool | ProgressMode | None = None,
    model: Model | None = None,
    force: bool = False,
) -> xr.Dataset:
    """Run the sweep a scenario file describes.

    Parameters
    ----------
    scenario : sd_model.Scenario or path-like
        A scenario with a ``sweep:`` section (``grid:`` and/or ``samples:``); its
        ``set:`` overrides are the base of every scenario, its ``time:`` and ``solver:``
        settings and ``outputs:`` apply.
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
        solver=sc.solver_options(model),
        time=sc.time_settings(),
        backend=sc.backend,
        chunk_size=chunk_size,
        workers=workers,
        client=client,
        scheduler=scheduler,
        store=store,
        on_error=on_error,
        progress=progress,
        name=sc.name,
        force=force,
        seed=sc.seed,
    )
