"""What a sweep will take (disk, memory, time), told and checked before it starts.

Before anything is written the results' size (scenarios x saved values x 8 bytes) is
checked against the free disk space of the store's folder, or half the memory without a
store; a sweep that does not fit is refused, with the numbers, unless forced.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import sys
import time as _time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sd_model._errors import SDModelError
from sd_model.model import Model
from sd_model.sweeps.execution import make_job, run_batch
from sd_model.sweeps.plan import Setup
from sd_model.sweeps.store import ERROR_WIDTH, is_zarr

__all__ = ["Estimate", "check_size", "physical_memory"]

#: Scenarios of the small batches timed to estimate a sweep's run time.
PROBE_BATCH = 8


@dataclass(frozen=True)
class Estimate:
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
        return self.n_scenarios * (self.values * 8 + 1 + 4 * ERROR_WIDTH)

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


def physical_memory() -> int | None:
    """Bytes of RAM, or None where the system does not tell (Windows)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


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


def _chunk_seconds(setup: Setup, model: Model, chunk: int) -> float | None:
    """Seconds one chunk of ``chunk`` scenarios takes, or None if the probe fails.

    A batch costs a fixed overhead plus a time per scenario: timing batches of one and
    of a few scenarios gives both. They run the first grid point, with the sampled
    parameters at the model's values (drawing a large sample is what must wait).
    """
    point = {a.key: float(a.values[0]) for a in setup.plan.grid}
    batch = 1 if setup.backend == "pysd" else min(chunk, PROBE_BATCH)
    job = make_job(
        setup, model, 0, (), [point] * batch, 0, on_error="record", store=None, store_key=""
    )

    def timed(members: list[int]) -> float | None:
        start = _time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the sweep itself reports them
                result = run_batch(job, model, members)
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


def _existing_folder(path: Path) -> Path:
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _check_room(
    estimate: Estimate,
    *,
    zarr_path: Path | None,
    out_path: Path | None,
    total_bytes: int,
    timed: Callable[[], Estimate],
) -> None:
    """Refuse a sweep whose results would not fit the disk, or memory without a store."""
    if zarr_path is None:
        ram = physical_memory()
        if ram is None or estimate.memory_bytes <= ram // 2:
            return
        raise SDModelError(
            f"An in-memory sweep would need about {_size(estimate.memory_bytes)}, more than "
            f"half of this machine's {_size(ram)} of memory: {estimate.n_scenarios:,} "
            f"scenarios x ({estimate.values:,} values x 8 bytes + {1 + 4 * ERROR_WIDTH:,} "
            f"bytes of status and error){timed().timing()}. Give a store (store='out.zarr') "
            "to stream the results to disk, or sweep fewer scenarios (a smaller grid, fewer "
            "samples); force=True runs it anyway."
        )
    assert out_path is not None
    # A netCDF output is written from the zarr store at the end: room for both.
    nc = not is_zarr(out_path)
    need = estimate.store_bytes + (total_bytes if nc else 0)
    folder = _existing_folder(zarr_path)
    free = shutil.disk_usage(folder).free
    if need <= free:
        return
    also = f", plus {_size(total_bytes)} for the netCDF file" if nc else ""
    raise SDModelError(
        f"{out_path} would need about {_size(need)}, more than the {_size(free)} free in "
        f"{folder}: {timed().describe()} (uncompressed){also}. Sweep fewer scenarios (a "
        "smaller grid, fewer samples), fewer outputs or saved times (saveper), or write "
        "elsewhere; force=True (sd-model sweep --yes) runs it anyway."
    )


def check_size(
    setup: Setup,
    model: Model,
    *,
    zarr_path: Path | None,
    out_path: Path | None,
    chunks: tuple[int, ...],
    n_chunks: int,
    done: int,
    workers: int,
    force: bool,
    verbose: bool,
) -> None:
    """Refuse a sweep that would not fit (unless forced); tell what it will take."""
    estimate = Estimate(
        n_scenarios=setup.plan.size - done,
        n_chunks=n_chunks,
        n_times=len(setup.times),
        values=setup.values_per_scenario,
        workers=workers,
    )

    def timed() -> Estimate:
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
    if verbose and n_chunks > 1:
        print(f"sweep: {timed().describe()}", file=sys.stderr, flush=True)
