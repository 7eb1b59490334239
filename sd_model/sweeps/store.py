"""Where a sweep's results go: a zarr store written chunk by chunk, resumable, or arrays
in memory.

Each finished chunk is written at once into its own region of the store, so memory is
bounded by the chunk and an interrupted sweep resumes where it stopped. The ``status``
variable (-1 not run, 0 ok, 1 failed) is written last, so it is the record of which
chunks are complete; a store is always resumed in its own chunks.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from sd_model._errors import SDModelError, SDModelWarning, import_optional
from sd_model._meta import VariableInfo
from sd_model.results import build_dataset
from sd_model.sweeps.layout import ChunkGrid, chunk_layout
from sd_model.sweeps.plan import Plan, Setup

#: Characters kept of a failed scenario's error message.
ERROR_WIDTH = 300
#: zarr v2 layout: consolidated metadata and text arrays, read everywhere.
STORE_FORMAT = 2
#: Scenarios of status read or written at once when a store is created or resumed.
SLAB = 2**18


def is_zarr(path: Path) -> bool:
    return path.suffix.lower() == ".zarr"


def template(
    model_vars: Sequence[VariableInfo],
    plan: Plan,
    times: np.ndarray,
    coords: Mapping[str, Sequence[str]],
    time_units: str,
    attrs: Mapping[str, Any],
) -> xr.Dataset:
    """The sweep's Dataset with every value missing (broadcast views: no memory yet)."""
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
            "error": np.broadcast_to(np.array("", dtype=f"<U{ERROR_WIDTH}"), shape),
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


def existing_attrs(path: Path) -> dict[str, Any] | None:
    """The attrs of what ``path`` holds: None when nothing, {} when not a Dataset."""
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


def check_reuse(path: Path, attrs: dict[str, Any] | None, accepted: set[str], hint: str) -> bool:
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


@functools.lru_cache(maxsize=2)
def store_arrays(store: str, key: str) -> dict[str, Any]:
    """The zarr arrays of ``store`` by name, opened once per process and sweep.

    The sweep's spec hash and layout are in ``key``: a store re-created at the same path
    with another layout is opened afresh.
    """
    del key
    zarr = import_optional("zarr", "sweep", "Sweeps")

    group = zarr.open_group(store, mode="r+")
    return {str(name): arr for name, arr in group.arrays()}


def write_region(
    arrays: Mapping[str, Any],
    region: tuple[slice, ...],
    values: Mapping[str, np.ndarray],
    status: np.ndarray,
    errors: Sequence[str],
) -> None:
    """Write a chunk's outputs, then its status, which marks it complete."""
    block = tuple(r.stop - r.start for r in region)
    for name, arr in values.items():
        arrays[name][region] = arr.reshape(block + arr.shape[1:])
    arrays["error"][region] = np.asarray(errors, dtype=f"<U{ERROR_WIDTH}").reshape(block)
    arrays["status"][region] = status.reshape(block)


def create_store(template: xr.Dataset, path: Path, lead: list[str], chunk_grid: ChunkGrid) -> None:
    """Write the store's metadata and a "not run" status for every chunk, atomically."""
    dask = import_optional("dask.array", "sweep", "Sweeps")  # dask.array.full below
    zarr = import_optional("zarr", "sweep", "Sweeps")

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
            dask.full(da.shape, da.values.flat[0], dtype=da.dtype, chunks=da.shape),
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
            zarr_format=STORE_FORMAT,
            consolidated=True,
        )
        # An unwritten int8 chunk reads as 0, "ok": every status chunk is written as
        # "not run" before the store is renamed into place. Slab by slab, so memory
        # stays small and an interrupt is taken between slabs.
        status = zarr.open_array(str(tmp / "status"), mode="r+")
        for slab in chunk_grid.slabs(SLAB):
            status[slab] = -1
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.replace(tmp, path)


def finish_store(path: Path, attrs: Mapping[str, Any]) -> None:
    """Record the sweep as complete in the store's attrs."""
    zarr = import_optional("zarr", "sweep", "Sweeps")

    group = zarr.open_group(str(path), mode="r+")
    group.attrs.update(dict(attrs))
    zarr.consolidate_metadata(str(path))


def _stored_chunks(path: Path, setup: Setup, attrs: Mapping[str, Any]) -> tuple[int, ...]:
    """The chunks of the store a sweep resumes; a warning if other ones were asked for."""
    zarr = import_optional("zarr", "sweep", "Sweeps")

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


def resume_layout(zarr_path: Path | None, setup: Setup) -> tuple[bool, tuple[int, ...]]:
    """(whether ``zarr_path`` holds this very sweep, to resume; the chunks to run in)."""
    chunks = chunk_layout(setup.plan.shape, setup.chunk_size)
    if zarr_path is None:
        return False, chunks
    attrs = existing_attrs(zarr_path)
    if not check_reuse(zarr_path, attrs, setup.accepts(attrs), setup.resume_hint):
        return False, chunks
    assert attrs is not None
    return True, _stored_chunks(zarr_path, setup, attrs)


def scan_status(
    status: Any, chunk_grid: ChunkGrid, limit: int | None = None
) -> tuple[np.ndarray, int, int]:
    """(chunk numbers still to run, scenarios done, scenarios failed), slab by slab."""
    pending = np.zeros(chunk_grid.counts, dtype=bool)
    done = failed = 0
    for slab in chunk_grid.slabs(SLAB if limit is None else limit):
        block = np.asarray(status[slab])
        done += int(np.count_nonzero(block >= 0))
        failed += int(np.count_nonzero(block == 1))
        lowest = block
        for axis, c in enumerate(chunk_grid.chunks):
            starts = np.arange(0, lowest.shape[axis], c)
            lowest = np.minimum.reduceat(lowest, starts, axis=axis)
        pending[chunk_grid.chunk_index(slab)] = lowest < 0
    return np.flatnonzero(pending), done, failed


def allocate(
    setup: Setup,
    time_units: str,
    zarr_path: Path | None,
    reuse: bool,
    chunk_grid: ChunkGrid,
    store_key: str,
    verbose: bool,
) -> tuple[dict[str, Any], xr.Dataset | None]:
    """The arrays results go into: a store's (created unless resumed), or the arrays of
    a Dataset in memory, returned too."""
    if zarr_path is not None and reuse:
        return store_arrays(str(zarr_path), store_key), None
    ds = template(setup.outputs, setup.plan, setup.times, setup.coords, time_units, setup.attrs)
    if zarr_path is not None:
        if verbose and chunk_grid.n >= 10_000:
            # Each chunk's status file is written up front: minutes for a huge sweep.
            print(
                f"sweep: creating {zarr_path} ({chunk_grid.n:,} chunks)",
                file=sys.stderr,
                flush=True,
            )
        create_store(ds, zarr_path, setup.plan.dims, chunk_grid)
        return store_arrays(str(zarr_path), store_key), None
    for n in ds.data_vars:
        ds[n].data = np.array(ds[n].data)  # writable, in memory
    return {str(n): ds[n].data for n in ds.data_vars}, ds
