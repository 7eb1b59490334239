"""Sweeps: plans, unstacking, stores, failures, scenario files, the CLI, EMA export."""

from __future__ import annotations

import argparse
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import sd_model
from sd_model import ParameterError, ScenarioError, SDModelError, SDModelWarning
from sd_model.cli import add_sweep_parser, cmd_sweep
from sd_model.ema import to_ema
from sd_model.sampling import SampleSpec, draw
from sd_model.sweeps import sweep, sweep_scenario
from sd_model.sweeps.layout import ChunkGrid as _ChunkGrid
from sd_model.sweeps.layout import chunk_layout as _chunk_layout

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "models" / "example_regions.mdl"
BLOWUP = ROOT / "tests" / "models" / "sweep_blowup.mdl"
SWEEP_YAML = ROOT / "scenarios" / "example_sweep.yaml"


@pytest.fixture(scope="module")
def model() -> sd_model.Model:
    return sd_model.load(EXAMPLE)


@pytest.fixture(scope="module")
def blowup() -> sd_model.Model:
    return sd_model.load(BLOWUP)


GRID = {
    "transfer intensity": [0.0, 0.5, 1.0],
    "productivity[North]": {"linspace": [0.8, 1.2, 3]},
    "savings rate": {"logspace": [0.1, 0.4, 2]},
}


def test_grid_dims_coords_and_attrs_match_the_spec(model: sd_model.Model) -> None:
    ds = sweep(model, grid=GRID, outputs=["Population", "total population"], final_time=2030)
    assert ds["population"].dims == (
        "transfer_intensity",
        "productivity_North",
        "savings_rate",
        "time",
        "Region",
    )
    np.testing.assert_array_equal(ds["transfer_intensity"], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(ds["productivity_North"], [0.8, 1.0, 1.2])
    np.testing.assert_allclose(ds["savings_rate"], [0.1, 0.4])
    assert ds["productivity_North"].attrs["long_name"] == "productivity[North]"
    assert ds["productivity_North"].attrs["units"] == "Dmnl"
    assert ds["savings_rate"].attrs["units"] == "Dmnl"
    assert ds["total_population"].dims == (*ds["population"].dims[:4],)
    assert ds["population"].attrs["units"] == "Person"
    np.testing.assert_array_equal(ds["time"], np.arange(2022, 2031))
    assert (ds["status"] == 0).all()
    assert set(ds.data_vars) == {"population", "total_population", "status", "error"}
    spec = json.loads(ds.attrs["sweep_spec"])
    assert spec["model_sha256"] == model.sha256 == ds.attrs["model_sha256"]
    assert [g[0] for g in spec["grid"]] == list(GRID)


@pytest.mark.parametrize("point", [(0, 0, 0), (1, 2, 1), (2, 1, 0)])
def test_a_grid_point_equals_a_single_run(model: sd_model.Model, point: tuple) -> None:
    ds = sweep(model, grid=GRID, final_time=2030)
    sel = {d: ds[d].values[i] for d, i in zip(list(ds["status"].dims), point, strict=True)}
    params = {
        "transfer intensity": sel["transfer_intensity"],
        "productivity[North]": sel["productivity_North"],
        "savings rate": sel["savings_rate"],
    }
    single = model.run(params, final_time=2030)
    for name in ("population", "capital", "transfer", "income_per_capita", "productivity"):
        np.testing.assert_allclose(ds[name].sel(sel).values, single[name].values, rtol=1e-13)


def test_sweep_values_match_closed_form_solutions(blowup: sd_model.Model) -> None:
    # With growth rate 0 the model is x' = -d x, x(0) = 1: Euler's iterate at step k is
    # (1 - d dt)^k exactly, and the exact solution is exp(-d t).
    decays = [0.5, 1.0, 2.0]
    grid = {"growth rate": [0.0], "decay": decays}
    euler = sweep(blowup, grid=grid, method="euler")
    rk45 = sweep(blowup, grid=grid, method="RK45", rtol=1e-10, atol=1e-12)
    t = euler["time"].values
    np.testing.assert_allclose(t, np.arange(0, 2.25, 0.25))
    steps = np.round(t / 0.0625)
    for d in decays:
        x = euler["x"].sel(growth_rate=0.0, decay=d).values
        np.testing.assert_allclose(x, (1 - d * 0.0625) ** steps, rtol=1e-12)
        x = rk45["x"].sel(growth_rate=0.0, decay=d).values
        np.testing.assert_allclose(x, np.exp(-d * t), rtol=1e-8)


def test_samples_give_a_scenario_dim_with_parameter_coords(model: sd_model.Model) -> None:
    samples = {
        "method": "lhs",
        "n": 20,
        "seed": 7,
        "parameters": {
            "birth rate": [0.01, 0.03],
            "productivity[South]": {"dist": "normal", "mean": 0.7, "std": 0.1, "lower": 0.4},
        },
    }
    ds = sweep(model, samples=samples, outputs=["population"], final_time=2026, chunk_size=6)
    assert ds["population"].dims == ("scenario", "time", "Region")
    expected = draw(SampleSpec.from_mapping(samples))
    np.testing.assert_array_equal(ds["birth_rate"].values, expected["birth rate"])
    np.testing.assert_array_equal(ds["productivity_South"].values, expected["productivity[South]"])
    assert ds["productivity_South"].dims == ("scenario",)
    assert ds.attrs["sweep_seed"] == 7
    k = 13
    single = model.run(
        {
            "birth rate": expected["birth rate"][k],
            "productivity[South]": expected["productivity[South]"][k],
        },
        final_time=2026,
    )
    np.testing.assert_allclose(ds["population"][k].values, single["population"].values, rtol=1e-13)


def test_grid_crossed_with_samples_and_base(model: sd_model.Model) -> None:
    samples = {"method": "sobol", "n": 8, "seed": 1, "parameters": {"mobility": [0.0, 0.02]}}
    base = {"policy start year": 2023, "productivity": {"North": 1.1, "Centre": 0.9, "South": 0.6}}
    ds = sweep(
        model,
        grid={"transfer intensity": [0.2, 0.8]},
        samples=samples,
        base=base,
        outputs=["population"],
        final_time=2028,
        chunk_size=5,
    )
    assert ds["population"].dims[:2] == ("transfer_intensity", "scenario")
    m = float(ds["mobility"][3])
    single = model.run({**base, "transfer intensity": 0.8, "mobility": m}, final_time=2028)
    np.testing.assert_allclose(
        ds["population"].sel(transfer_intensity=0.8).isel(scenario=3).values,
        single["population"].values,
        rtol=1e-13,
    )
    assert json.loads(ds.attrs["overrides"])["policy start year"] == 2023


def test_chunking_does_not_change_fixed_step_results(model: sd_model.Model) -> None:
    kw = {"grid": {"mobility": {"linspace": [0, 0.03, 7]}}, "outputs": ["population"]}
    a = sweep(model, chunk_size=1, final_time=2030, **kw)
    b = sweep(model, chunk_size=3, final_time=2030, **kw)
    c = sweep(model, final_time=2030, **kw)
    np.testing.assert_array_equal(a["population"].values, b["population"].values)
    np.testing.assert_array_equal(a["population"].values, c["population"].values)


def test_on_error_record(blowup: sd_model.Model) -> None:
    rates = [0.1, 5.0, 0.5, 20.0, 0.9]
    ds = sweep(blowup, grid={"growth rate": rates}, on_error="record", chunk_size=10)
    np.testing.assert_array_equal(ds["status"].values, [0, 1, 0, 1, 0])
    assert np.isnan(ds["x"].sel(growth_rate=5.0)).all()
    assert "x" in str(ds["error"].sel(growth_rate=20.0).values) and "inf" in str(
        ds["error"].sel(growth_rate=20.0).values
    )
    assert str(ds["error"].sel(growth_rate=0.5).values) == ""
    assert ds.attrs["sweep_n_failed"] == 2
    for r in (0.1, 0.5, 0.9):
        single = blowup.run({"growth rate": r})
        np.testing.assert_allclose(
            ds["x"].sel(growth_rate=r).values, single["x"].values, rtol=1e-13
        )


def test_on_error_raise_names_the_scenario(blowup: sd_model.Model) -> None:
    with pytest.raises(SDModelError, match=r"growth rate=20.*inf for x"):
        sweep(blowup, grid={"growth rate": [0.1, 20.0]})


def test_pysd_backend_and_failures(blowup: sd_model.Model) -> None:
    ds = sweep(blowup, grid={"growth rate": [0.3, 20.0]}, backend="pysd", on_error="record")
    np.testing.assert_array_equal(ds["status"].values, [0, 1])
    assert ds.attrs["backend"] == "pysd"
    single = blowup.run({"growth rate": 0.3}, backend="pysd")
    np.testing.assert_allclose(ds["x"].sel(growth_rate=0.3).values, single["x"].values)


def test_auto_falls_back_to_pysd_with_one_warning(
    blowup: sd_model.Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = sd_model.load(BLOWUP)

    def refuse() -> None:
        raise sd_model.UnsupportedFeatureError("pretend the compiler lacks something")

    monkeypatch.setattr(fresh, "compiled", refuse)
    with pytest.warns(SDModelWarning, match="PySD backend") as record:
        ds = sweep(fresh, grid={"growth rate": [0.1, 0.2, 0.3]}, chunk_size=1)
    assert len([w for w in record if issubclass(w.category, SDModelWarning)]) == 1
    assert ds.attrs["backend"] == "pysd"
    ref = sweep(blowup, grid={"growth rate": [0.1, 0.2, 0.3]})
    np.testing.assert_allclose(ds["x"].values, ref["x"].values, rtol=1e-12)


def test_zarr_store_reopens_and_resumes(model: sd_model.Model, tmp_path: Path) -> None:
    store = tmp_path / "out.zarr"
    kw = {
        "samples": {"n": 30, "seed": 3, "parameters": {"death rate": [0.005, 0.01]}},
        "outputs": ["population"],
        "final_time": 2027,
        "chunk_size": 7,
    }
    first = sweep(model, store=store, **kw)
    for opened in (xr.open_zarr(store), sd_model.open_results(store)):
        np.testing.assert_array_equal(opened["population"].values, first["population"].values)
        assert opened.attrs["sweep_complete"] == 1
    # Pretend the last two chunks never finished: only they are recomputed.
    import zarr

    group = zarr.open_group(str(store), mode="r+")
    group["status"][14:] = -1
    group["population"][14:] = np.nan
    again = sweep(model, store=store, **kw)
    np.testing.assert_array_equal(again["population"].values, first["population"].values)
    assert (again["status"].values == 0).all()
    # another spec on the same store is refused
    with pytest.raises(SDModelError, match="different sweep.*delete"):
        sweep(model, store=store, **{**kw, "final_time": 2028})


def test_netcdf_output(model: sd_model.Model, tmp_path: Path) -> None:
    out = tmp_path / "sweep.nc"
    ds = sweep(model, grid={"mobility": [0.0, 0.01]}, outputs=["population"], store=out)
    assert out.is_file() and not (tmp_path / ".sweep.nc.sweep.zarr").exists()
    with xr.open_dataset(out) as nc, sd_model.open_results(out) as opened:
        np.testing.assert_array_equal(nc["population"].values, ds["population"].values)
        np.testing.assert_array_equal(opened["population"].values, ds["population"].values)
        assert nc["mobility"].attrs["units"] == "1/Year"
        assert nc.attrs["sweep_complete"] == 1 and nc.attrs["model_sha256"] == model.sha256
    ds.close()
    # same sweep: the file is reused; another sweep: refused
    sweep(model, grid={"mobility": [0.0, 0.01]}, outputs=["population"], store=out).close()
    with pytest.raises(SDModelError, match="different sweep"):
        sweep(model, grid={"mobility": [0.0, 0.02]}, outputs=["population"], store=out)


def test_errors_name_the_problem(model: sd_model.Model, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="Did you mean 'transfer intensity'"):
        sweep(model, grid={"transfer intensty": [0, 1]})
    with pytest.raises(ScenarioError, match="Did you mean 'Population'"):
        sweep(model, grid={"mobility": [0, 1]}, outputs=["Populaton"])
    with pytest.raises(ScenarioError, match="Nothing to sweep"):
        sweep(model)
    with pytest.raises(ScenarioError, match="swept twice"):
        sweep(
            model,
            grid={"mobility": [0, 1]},
            samples={"n": 2, "seed": 1, "parameters": {"mobility": [0, 1]}},
        )
    with pytest.raises(SDModelError, match=r"\.zarr store or a \.nc"):
        sweep(model, grid={"mobility": [0, 1]}, store=tmp_path / "x.csv")
    (tmp_path / "other.zarr").mkdir()
    (tmp_path / "other.zarr" / "junk").write_text("x")
    with pytest.raises(SDModelError, match="not an sd_model sweep"):
        sweep(model, grid={"mobility": [0, 1]}, store=tmp_path / "other.zarr")


def test_unseeded_samples_record_their_seed(model: sd_model.Model) -> None:
    samples = {"n": 4, "parameters": {"mobility": [0, 0.02]}}
    ds = sweep(model, samples=samples, outputs=["population"], final_time=2024)
    seed = ds.attrs["sweep_seed"]
    again = sweep(model, samples={**samples, "seed": seed}, outputs=["population"], final_time=2024)
    np.testing.assert_array_equal(ds["mobility"].values, again["mobility"].values)


def test_scenario_file_sweep(model: sd_model.Model, tmp_path: Path) -> None:
    ds = sweep_scenario(SWEEP_YAML, model=model)
    assert ds["population"].dims == (
        "transfer_intensity",
        "productivity_South",
        "scenario",
        "time",
        "Region",
    )
    assert ds.sizes["scenario"] == 64 and ds.attrs["scenario"] == "example-sweep"
    assert set(ds.data_vars) == {
        "population",
        "capital",
        "income_per_capita",
        "total_population",
        "status",
        "error",
    }
    assert json.loads(ds.attrs["overrides"]) == {"policy start year": 2025}
    assert ds.attrs["sweep_seed"] == 20261127
    # Values, against truths the sweep does not compute: total population is the SUM of
    # the regions in the model file; the drawn parameters lie within their distributions'
    # bounds, and a Latin hypercube puts exactly one uniform draw in each of n strata.
    np.testing.assert_allclose(
        ds["total_population"].values, ds["population"].sum("Region").values, rtol=1e-12
    )
    birth = ds["birth_rate"].values
    assert ((birth >= 0.012) & (birth <= 0.024)).all()
    assert sorted(np.floor((birth - 0.012) / (0.012 / 64)).astype(int)) == list(range(64))
    assert ((ds["death_rate"] >= 0.006) & (ds["death_rate"] <= 0.011)).all()
    assert ((ds["mobility"] > 0) & (ds["mobility"] <= 0.05)).all()
    # ... and a point of the sweep is the single run with the scenario's settings.
    for ti, ps, k in [(0, 0, 0), (3, 2, 41)]:
        point = ds.isel(transfer_intensity=ti, productivity_South=ps, scenario=k)
        params = {
            "policy start year": 2025,
            "transfer intensity": float(point["transfer_intensity"]),
            "productivity[South]": float(point["productivity_South"]),
            "birth rate": float(point["birth_rate"]),
            "death rate": float(point["death_rate"]),
            "mobility": float(point["mobility"]),
        }
        single = model.run(params, method="euler", initial_time=2022, final_time=2050)
        for name in ("population", "capital", "income_per_capita", "total_population"):
            np.testing.assert_allclose(point[name].values, single[name].values, rtol=1e-13)
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"model: {EXAMPLE}\nsweep:\n  grids: {{mobility: [0, 1]}}\n")
    with pytest.raises(ScenarioError, match="Did you mean 'grid'"):
        sweep_scenario(bad)


def test_cli_sweep(
    model: sd_model.Model, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        f"model: {EXAMPLE}\ntime: {{final: 2025}}\n"
        "sweep:\n  grid:\n    transfer intensity: [0, 1]\n"
        "  samples: {n: 4, seed: 2, parameters: {mobility: [0, 0.02]}}\n"
        "outputs: [population]\n"
    )
    parser = argparse.ArgumentParser()
    add_sweep_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "out.zarr"
    args = parser.parse_args(["sweep", str(scenario), "-o", str(out), "--chunk-size", "3"])
    assert cmd_sweep(args) == 0
    printed = capsys.readouterr()
    assert "8 scenarios (0 failed)" in printed.out
    assert "sweep: 8/8 scenarios" in printed.err  # plain log lines when not on a terminal
    ds = sd_model.open_results(out)
    assert ds["population"].sizes == {
        "transfer_intensity": 2,
        "scenario": 4,
        "time": 4,
        "Region": 3,
    }
    # What the CLI stored is what a run with the same parameters returns.
    point = ds.isel(transfer_intensity=1, scenario=3)
    single = model.run(
        {"transfer intensity": 1.0, "mobility": float(point["mobility"])}, final_time=2025
    )
    np.testing.assert_allclose(point["population"].values, single["population"].values, rtol=1e-13)


def test_to_ema_shapes(model: sd_model.Model, blowup: sd_model.Model) -> None:
    ds = sweep(
        model,
        grid={"transfer intensity": [0.0, 1.0]},
        samples={"n": 5, "seed": 1, "parameters": {"mobility": [0, 0.02]}},
        outputs=["population", "total population"],
        final_time=2030,
    )
    experiments, outcomes = to_ema(ds)
    assert list(experiments.columns) == ["transfer_intensity", "mobility"]
    assert len(experiments) == 10
    np.testing.assert_array_equal(experiments["transfer_intensity"], [0.0] * 5 + [1.0] * 5)
    np.testing.assert_array_equal(experiments["mobility"][5:], ds["mobility"].values)
    assert outcomes["total_population"].shape == (10, 9)
    assert outcomes["TIME"].shape == (10, 9)
    np.testing.assert_array_equal(
        outcomes["population[South]"][7],
        ds["population"].sel(transfer_intensity=1.0, Region="South").isel(scenario=2).values,
    )
    _, at_end = to_ema(ds, outcomes=["total_population"], at_time=2030)
    assert at_end["total_population"].shape == (10,) and "TIME" not in at_end
    # failed scenarios are left out (EMA's analyses take no NaN)
    failed = sweep(blowup, grid={"growth rate": [0.1, 20.0, 0.3]}, on_error="record")
    exp, out = to_ema(failed)
    np.testing.assert_array_equal(exp["growth_rate"], [0.1, 0.3])
    assert out["x"].shape == (2, failed.sizes["time"])
    with pytest.raises(SDModelError, match="Unknown outcome"):
        to_ema(ds, outcomes=["nope"])


def _peak(model: sd_model.Model, store: Path, n: int) -> tuple[int, int]:
    """Peak traced memory of a sweep into a store, and the bytes of its outputs."""
    tracemalloc.start()
    try:
        ds = sweep(
            model,
            samples={
                "method": "monte-carlo",
                "n": n,
                "seed": 1,
                "parameters": {"mobility": [0, 0.02]},
            },
            outputs=["population", "capital", "births", "deaths", "output"],
            store=store,
            chunk_size=50,
            final_time=2050,
            saveper=0.25,
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    size = sum(ds[v].nbytes for v in ("population", "capital", "births", "deaths", "output"))
    ds.close()
    return peak, size


def test_memory_is_bounded_by_the_chunk(model: sd_model.Model, tmp_path: Path) -> None:
    _peak(model, tmp_path / "warm.zarr", 100)  # imports and caches out of the way
    small, small_size = _peak(model, tmp_path / "a.zarr", 150)
    large, large_size = _peak(model, tmp_path / "b.zarr", 1000)
    # 3 chunks, then 20: the peak grows by a small fraction of the extra outputs (a byte
    # of status per scenario, the list of chunks), not by the outputs
    assert large - small < 0.1 * (large_size - small_size), (small, large, large_size)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=4).map(tuple),
    chunk_size=st.integers(1, 100),
)
def test_chunks_tile_the_sweep(shape: tuple[int, ...], chunk_size: int) -> None:
    chunks = _chunk_layout(shape, chunk_size)
    grid = _ChunkGrid(shape, chunks)
    regions = [grid.region(k) for k in range(grid.n)]
    seen = np.zeros(shape, dtype=int)
    for region in regions:
        seen[region] += 1
        size = int(np.prod([r.stop - r.start for r in region]))
        assert 1 <= size <= chunk_size
        # a region is exactly one store chunk (clipped at the array's edge)
        for r, c in zip(region, chunks, strict=True):
            assert r.start % c == 0 and r.stop - r.start <= c
    assert (seen == 1).all()


def test_failures_land_in_the_right_cells(blowup: sd_model.Model) -> None:
    # x' = r x^2 - d x from x = 1 blows up (in t = ln(r / (r - d)) / d) only when r > d
    ds = sweep(
        blowup,
        grid={"growth rate": [0.5, 5.0, 20.0], "decay": [1.0, 10.0, 30.0]},
        on_error="record",
        chunk_size=2,
    )
    np.testing.assert_array_equal(ds["status"].values, [[0, 0, 0], [1, 0, 0], [1, 1, 0]])
    for r, d in [(0.5, 30.0), (5.0, 10.0), (20.0, 30.0)]:
        single = blowup.run({"growth rate": r, "decay": d})
        np.testing.assert_array_equal(
            ds["x"].sel(growth_rate=r, decay=d).values, single["x"].values
        )
    assert np.isnan(ds["x"].sel(growth_rate=20.0, decay=10.0)).all()


@settings(max_examples=25, deadline=None)
@given(
    north=st.floats(0.1, 2.0),
    south=st.floats(0.1, 2.0),
    whole=st.one_of(st.none(), st.floats(0.1, 2.0)),
    base_element=st.booleans(),
)
def test_fast_element_overrides_equal_normalize_params(
    model: sd_model.Model, north: float, south: float, whole: float | None, base_element: bool
) -> None:
    from sd_model.sweeps.execution import compiled_overrides as _compiled_overrides
    from sd_model.sweeps.execution import compiled_value as _compiled_value

    scenario: dict[str, object] = {"mobility": 0.02}
    if base_element:
        scenario["productivity[Centre]"] = 0.5
        scenario["Initial Population[South]"] = 1e6
    if whole is not None:
        scenario["productivity"] = whole
    scenario["productivity[North]"] = north
    scenario["productivity[South]"] = south
    swept = ["productivity[North]", "productivity[South]", "mobility"]
    (fast,) = _compiled_overrides(model, [scenario], swept, 0)
    slow = {k: _compiled_value(v) for k, v in model.normalize_params(scenario).items()}
    assert fast.keys() == slow.keys()
    for key in slow:
        np.testing.assert_array_equal(np.asarray(fast[key]), np.asarray(slow[key]), err_msg=key)
