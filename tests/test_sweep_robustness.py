"""Sweeps too big to fit are refused at once, interrupts leave resumable stores, and
partial stores do not open silently."""

from __future__ import annotations

import json
import shutil
import time
import tracemalloc
from collections import namedtuple
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import sd_model
from sd_model import SDModelError, SDModelWarning
from sd_model.cli import main
from sd_model.sweeps import budget, execution, sweep
from sd_model.sweeps import store as sweep_store
from sd_model.sweeps.layout import ChunkGrid as _ChunkGrid
from sd_model.sweeps.layout import chunk_layout as _chunk_layout
from sd_model.sweeps.store import scan_status as _scan_status

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "models" / "example_regions.mdl"
BLOWUP = ROOT / "tests" / "models" / "sweep_blowup.mdl"

#: 1e8 scenarios: 10,000 x 10,000 grid points.
HUGE = {"growth rate": {"linspace": [0, 1, 10_000]}, "decay": {"linspace": [1, 2, 10_000]}}
#: 2,000 scenarios of the example model, 1,205 saved values each: 19 MB of results.
KW: dict[str, Any] = {
    "grid": {"transfer intensity": [0.0, 1.0]},
    "samples": {"n": 1000, "seed": 4, "parameters": {"mobility": [0, 0.03]}},
}
Usage = namedtuple("Usage", "total used free")


@pytest.fixture(scope="module")
def blowup() -> sd_model.Model:
    return sd_model.load(BLOWUP)


@pytest.fixture(scope="module")
def model() -> sd_model.Model:
    return sd_model.load(EXAMPLE)


def _no_template(*args: Any, **kwargs: Any) -> None:
    # A tripwire: building the result arrays of a refused sweep is what must not happen
    # (before the fix, this is where a 1e8 sweep began to take gigabytes).
    raise AssertionError("a sweep that does not fit reached its result arrays")


def _disk(free: int) -> Any:
    return lambda path: Usage(10 * free, 9 * free, free)


@pytest.mark.parametrize("where", ["memory", "store"])
def test_a_1e8_grid_is_refused_at_once_without_allocating(
    blowup: sd_model.Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    sweep(blowup, grid={"growth rate": [0.1]}, store=tmp_path / "warm.zarr")  # imports
    monkeypatch.setattr(sweep_store, "template", _no_template)
    monkeypatch.setattr(budget, "physical_memory", lambda: 16 * 2**30)
    monkeypatch.setattr(shutil, "disk_usage", _disk(2**30))
    store = tmp_path / "huge.zarr" if where == "store" else None
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(SDModelError) as info:
            sweep(blowup, grid=HUGE, store=store)
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The numbers: 1e8 scenarios x 9 saved times x 1 value x 8 bytes = 6.7 GiB, and in
    # memory an error string (300 characters) and a status byte per scenario too.
    message = str(info.value)
    assert "of computing" in message and "force=True" in message
    if where == "memory":
        assert "118.6 GiB, more than half of this machine's 16.0 GiB of memory" in message
        assert "100,000,000 scenarios x (9 values x 8 bytes + 1,201 bytes" in message
        assert "store=" in message
    else:
        assert "100,000,000 scenarios x 9 values (9 saved times) x 8 bytes = 6.7 GiB" in message
        assert "1.0 GiB free" in message and "--yes" in message
        assert store is not None and not store.exists()
        assert not list(tmp_path.glob(".huge.zarr*"))
    # A status byte per scenario alone would be 100 MB; a list of regions ~100 MB.
    assert peak < 20 * 2**20, peak
    assert seconds < 1.0, seconds


def test_a_store_that_would_not_fit_is_refused_unless_forced(
    model: sd_model.Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "disk_usage", _disk(10 * 2**20))
    store = tmp_path / "sub" / "out.zarr"
    with pytest.raises(SDModelError, match=r"out\.zarr would need about 18\.4 MiB.*10\.0 MiB"):
        sweep(model, store=store, **KW)
    assert not store.exists()
    # A netCDF output is written from a zarr store: it needs room for both.
    with pytest.raises(SDModelError, match=r"36\.8 MiB.*plus 18\.4 MiB for the netCDF"):
        sweep(model, store=tmp_path / "out.nc", **KW)
    ds = sweep(model, store=store, force=True, outputs=["population"], **KW)
    assert ds.attrs["sweep_complete"] == 1 and (ds["status"] == 0).all()


def test_cli_yes_runs_what_does_not_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "disk_usage", _disk(2**10))
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        f"model: {EXAMPLE}\ntime: {{final: 2025}}\nsweep:\n  grid:\n"
        "    transfer intensity: {linspace: [0, 1, 50]}\n    mobility: [0, 0.01]\n"
    )
    out = tmp_path / "out.zarr"
    assert main(["sweep", str(scenario), "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--yes" in err and len(err.splitlines()) == 1
    assert not out.exists()
    assert main(["sweep", str(scenario), "-o", str(out), "--quiet", "--yes"]) == 0
    assert "100 scenarios (0 failed)" in capsys.readouterr().out


def test_an_in_memory_sweep_bigger_than_half_the_memory_is_refused(
    model: sd_model.Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2,000 x (1,205 values x 8 bytes + 1,201 bytes of status and error) = 21.7 MB
    monkeypatch.setattr(budget, "physical_memory", lambda: 32 * 2**20)
    with pytest.raises(SDModelError, match=r"about 20\.7 MiB, more than half of .* 32\.0 MiB of"):
        sweep(model, **KW)
    ds = sweep(model, force=True, **KW)
    assert ds.sizes["scenario"] == 1000 and (ds["status"] == 0).all()


class _Interrupt:
    """``run_chunk`` that is interrupted (Ctrl-C) when it starts chunk ``after``."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.calls = 0
        self.run = execution.run_chunk

    def __call__(self, job: Any, model: Any = None) -> Any:
        self.calls += 1
        if self.calls > self.after:
            raise KeyboardInterrupt
        return self.run(job, model)


def _partial(
    model: sd_model.Model, store: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any
) -> None:
    with monkeypatch.context() as m:
        m.setattr(execution, "run_chunk", _Interrupt(after=3))
        with pytest.raises(KeyboardInterrupt):
            sweep(model, store=store, **kw)


def test_an_interrupted_store_opens_only_when_asked_and_resumes(
    model: sd_model.Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "out.zarr"
    kw = {**KW, "outputs": ["population"], "final_time": 2030, "chunk_size": 100}
    _partial(model, store, monkeypatch, **kw)
    with xr.open_zarr(store) as raw:
        assert raw.attrs["sweep_complete"] == 0
        status = raw["status"].values
    # 3 chunks of 100 finished, and nothing else
    assert np.count_nonzero(status == 0) == 300 and np.count_nonzero(status == -1) == 1700
    with pytest.raises(SDModelError, match=r"1700 of 2000 scenarios have not run.*-o .*out\.zarr"):
        sd_model.open_results(store)
    with pytest.warns(SDModelWarning, match=r"1700 of 2000 scenarios have not run"):
        partial = sd_model.open_results(store, allow_partial=True)
    assert np.isnan(partial["population"].values[status == -1]).all()
    partial.close()
    resumed = sweep(model, store=store, **kw)
    whole = sweep(model, **kw)
    np.testing.assert_array_equal(resumed["population"].values, whole["population"].values)
    assert resumed.attrs["sweep_complete"] == 1
    sd_model.open_results(store).close()  # complete: opens without a word


def test_resuming_with_another_chunk_size_keeps_the_stores_chunks(
    model: sd_model.Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RK45: an adaptive solver's steps depend on the batch, so only the store's own
    # chunks give exactly the numbers of a fresh sweep with its chunk size.
    store = tmp_path / "out.zarr"
    kw = {**KW, "outputs": ["population"], "final_time": 2030, "method": "RK45"}
    _partial(model, store, monkeypatch, chunk_size=150, **kw)
    with pytest.warns(SDModelWarning, match=r"started with chunk_size 150.*chunks of 70"):
        resumed = sweep(model, store=store, chunk_size=70, **kw)
    whole = sweep(model, chunk_size=150, **kw)
    np.testing.assert_array_equal(resumed["population"].values, whole["population"].values)
    assert resumed.attrs["sweep_chunk_size"] == 150
    # resumed without a chunk size: the store's, without a warning
    again = sweep(model, store=store, **kw)
    np.testing.assert_array_equal(again["population"].values, whole["population"].values)


def test_stores_of_the_previous_spec_hash_still_resume(
    model: sd_model.Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zarr

    from sd_model.sweeps.plan import hash_spec as _hash_spec

    store = tmp_path / "out.zarr"
    kw = {**KW, "outputs": ["population"], "final_time": 2026, "chunk_size": 100}
    _partial(model, store, monkeypatch, **kw)
    # Stores written before the chunk size left the spec hashed it in.
    group = zarr.open_group(str(store), mode="r+")
    spec = json.loads(str(group.attrs["sweep_spec"]))
    group.attrs["sweep_spec_sha256"] = _hash_spec({**spec, "chunk_size": 100})
    zarr.consolidate_metadata(str(store))
    resumed = sweep(model, store=store, **kw)
    whole = sweep(model, **kw)
    np.testing.assert_array_equal(resumed["population"].values, whole["population"].values)


def test_an_interrupt_while_creating_the_store_leaves_none(
    blowup: sd_model.Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "out.zarr"
    grid = {"growth rate": {"linspace": [0, 1, 40]}, "decay": [1.0, 2.0]}
    slabs = _ChunkGrid.slabs

    def interrupted(self: _ChunkGrid, limit: int) -> Any:
        for k, slab in enumerate(slabs(self, limit)):
            if k == 1:
                raise KeyboardInterrupt
            yield slab

    with monkeypatch.context() as m:
        m.setattr(sweep_store, "SLAB", 10)  # several slabs of status to write
        m.setattr(_ChunkGrid, "slabs", interrupted)
        with pytest.raises(KeyboardInterrupt):
            sweep(blowup, grid=grid, store=store, chunk_size=5)
    assert not store.exists()  # a half-made store is never in place
    assert not list(tmp_path.glob(".out.zarr.creating*"))
    ds = sweep(blowup, grid=grid, store=store, chunk_size=5)
    np.testing.assert_array_equal(ds["x"].values, sweep(blowup, grid=grid)["x"].values)


def test_cli_interrupts_say_one_thing_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        f"model: {EXAMPLE}\ntime: {{final: 2025}}\n"
        "sweep:\n  grid:\n    transfer intensity: {linspace: [0, 1, 20]}\n"
    )
    out = tmp_path / "out.zarr"
    args = ["sweep", str(scenario), "-o", str(out), "--chunk-size", "4", "--quiet"]

    def ctrl_c(path: Any) -> Any:
        raise KeyboardInterrupt

    # Ctrl-C while planning: nothing written, and the CLI says so
    with monkeypatch.context() as m:
        m.setattr(shutil, "disk_usage", ctrl_c)
        assert main(args) == 130
    err = capsys.readouterr().err.splitlines()
    assert err == [f"interrupted: stopped before anything was written to {out}."]
    assert not out.exists()
    # Ctrl-C while running: the finished chunks are kept and the same command resumes
    with monkeypatch.context() as m:
        m.setattr(execution, "run_chunk", _Interrupt(after=2))
        assert main(args) == 130
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("interrupted: the chunks finished"), err
    assert "run the same command again to resume" in err[0]
    with xr.open_zarr(out) as partial:
        assert np.count_nonzero(partial["status"].values == 0) == 8
    assert main(args) == 0
    assert "20 scenarios (0 failed)" in capsys.readouterr().out


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 7), min_size=1, max_size=3).map(tuple),
    chunk_size=st.integers(1, 20),
    limit=st.integers(1, 60),
    data=st.data(),
)
def test_status_scan_finds_the_chunks_left(
    shape: tuple[int, ...], chunk_size: int, limit: int, data: st.DataObject
) -> None:
    grid = _ChunkGrid(shape, _chunk_layout(shape, chunk_size))
    flat = data.draw(st.lists(st.sampled_from([-1, 0, 1]), min_size=grid.n, max_size=grid.n))
    status = np.empty(shape, dtype=np.int8)
    for k, value in enumerate(flat):
        status[grid.region(k)] = value  # a chunk's status is written whole
    pending, done, failed = _scan_status(status, grid, limit)
    assert pending.tolist() == [k for k, v in enumerate(flat) if v < 0]
    assert done == np.count_nonzero(status >= 0) and failed == np.count_nonzero(status == 1)
    # the slabs tile the sweep in whole chunks
    seen = np.zeros(shape, dtype=int)
    for slab in grid.slabs(limit):
        seen[slab] += 1
        for r, c, s in zip(slab, grid.chunks, shape, strict=True):
            assert r.start % c == 0 and (r.stop % c == 0 or r.stop == s)
    assert (seen == 1).all()
