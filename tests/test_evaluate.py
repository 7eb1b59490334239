"""The single batched evaluation entry point, option objects and provenance."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import sd_model
from sd_model.evaluate import evaluate
from sd_model.integrate import SolverOptions
from sd_model.options import TimeSettings
from sd_model.provenance import overrides_json

EXAMPLE = Path(__file__).parents[1] / "models" / "example_regions.mdl"


@pytest.fixture(scope="module")
def model() -> sd_model.Model:
    return sd_model.load(EXAMPLE)


def test_a_batch_equals_its_runs_one_by_one(model: sd_model.Model) -> None:
    sets = [{}, {"transfer intensity": 0.5}, {"productivity[South]": 0.8, "mobility": 0.02}]
    grid = model.time_grid(final_time=2030)
    solver = SolverOptions("euler")
    ev = evaluate(model, sets, solver=solver, grid=grid, backend="compiled")
    assert ev.backend == "compiled"
    assert ev.values["population"].shape == (3, len(ev.times), 3)
    for b, params in enumerate(sets):
        ds = model.run(params, method="euler", final_time=2030, backend="compiled")
        np.testing.assert_array_equal(ev.values["population"][b], ds["population"].values)
    # the overrides act: transfers only where the lever is on
    assert np.all(ev.values["transfer"][0] == 0)
    assert np.any(ev.values["transfer"][1] != 0)


def test_pysd_backend_evaluates_the_same_batch(model: sd_model.Model) -> None:
    sets = [{}, {"transfer intensity": 0.5}]
    grid = model.time_grid(final_time=2026)
    solver = SolverOptions("euler")
    fast = evaluate(model, sets, solver=solver, grid=grid, backend="compiled")
    ref = evaluate(model, sets, solver=solver, grid=grid, backend="pysd")
    assert ref.backend == "pysd"
    np.testing.assert_allclose(ref.values["population"], fast.values["population"], rtol=1e-12)


def test_every_backend_is_reached_through_the_registry(
    model: sd_model.Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sd_model import backends
    from sd_model.evaluate import choose_backend

    assert backends.BACKENDS == ("auto", *backends.REGISTRY) == ("auto", "compiled", "pysd")
    for name, impl in backends.REGISTRY.items():
        assert impl.name == name and impl.label and isinstance(impl.batched, bool)
    grid = model.time_grid(final_time=2025)
    solver = SolverOptions("euler")
    sets = [{}, {"transfer intensity": 0.5}]

    class Counting(backends.CompiledBackend):
        """A third backend: one class and one registry entry."""

        name = "counting"  # type: ignore[assignment]
        label = "counting"
        batches = 0

        def run(self, *args: object, **kwargs: object) -> backends.BackendRun:
            Counting.batches += 1
            return super().run(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setitem(backends.REGISTRY, "counting", Counting())
    ev = evaluate(model, sets, solver=solver, grid=grid, backend="counting")  # type: ignore[arg-type]
    ref = evaluate(model, sets, solver=solver, grid=grid, backend="compiled")
    assert Counting.batches == 1  # a batch is one call of the backend
    assert ev.backend == "counting"
    np.testing.assert_array_equal(ev.values["population"], ref.values["population"])
    with pytest.raises(sd_model.SDModelError, match="choose one of auto, compiled, pysd, counting"):
        choose_backend(model, "fast")

    class Refusing(backends.CompiledBackend):
        def check(self, model: sd_model.Model) -> None:
            raise sd_model.UnsupportedFeatureError("no FOO here")

    # auto: the first registered backend that runs the model, with a warning naming why.
    monkeypatch.setitem(backends.REGISTRY, "compiled", Refusing())
    with pytest.warns(
        sd_model.SDModelWarning,
        match="sweeping with the PySD backend, one scenario at a time, because the "
        "compiled backend cannot run this model: no FOO here",
    ):
        assert choose_backend(model, "auto", what="sweeping") == ("pysd", "no FOO here")
    with pytest.raises(sd_model.UnsupportedFeatureError, match="no FOO"):
        choose_backend(model, "compiled")
    with pytest.warns(sd_model.SDModelWarning, match="running with the PySD backend because"):
        fell_back = evaluate(model, sets, solver=solver, grid=grid)
    assert fell_back.backend == "pysd" and fell_back.note == "no FOO here"
    np.testing.assert_allclose(fell_back.values["population"], ref.values["population"], rtol=1e-12)


def test_outputs_select_variables_and_unknown_ones_are_named(model: sd_model.Model) -> None:
    grid = model.time_grid(final_time=2025)
    ev = evaluate(model, [{}], solver=SolverOptions(), grid=grid, outputs=["population"])
    assert list(ev.values) == ["population"]
    with pytest.raises(sd_model.SDModelError, match="popluation"):
        evaluate(model, [{}], solver=SolverOptions(), grid=grid, outputs=["popluation"])
    with pytest.raises(sd_model.SDModelError, match="at least one parameter set"):
        evaluate(model, [], solver=SolverOptions(), grid=grid)


def test_option_objects_equal_keywords(model: sd_model.Model) -> None:
    by_kw = model.run(method="RK45", rtol=1e-8, final_time=2030, saveper=2)
    by_obj = model.run(
        solver=SolverOptions("RK45", rtol=1e-8), time=TimeSettings(final_time=2030, saveper=2)
    )
    np.testing.assert_array_equal(by_kw["population"].values, by_obj["population"].values)
    assert by_obj.attrs["solver_rtol"] == 1e-8 and by_obj.attrs["final_time"] == 2030
    with pytest.raises(sd_model.SettingsError, match="not both"):
        model.run(solver=SolverOptions("RK45"), method="euler")
    with pytest.raises(sd_model.SettingsError, match="not both"):
        model.run(time=TimeSettings(final_time=2030), final_time=2040)
    with pytest.raises(sd_model.SettingsError, match="time_step must be positive"):
        TimeSettings(time_step=0)


def test_run_records_overrides_in_the_one_encoding(model: sd_model.Model) -> None:
    import xarray as xr

    prod = xr.DataArray([1.0, 0.9, 0.8], dims=["Region"], coords={"Region": model.coords["Region"]})
    ds = model.run({"productivity": prod}, final_time=2023)
    recorded = json.loads(ds.attrs["overrides"])
    assert recorded == {"productivity": {"North": 1.0, "Centre": 0.9, "South": 0.8}}
    # the record is itself a valid override, giving the same run
    with warnings.catch_warnings():
        again = model.run(recorded, final_time=2023)
    np.testing.assert_array_equal(again["population"].values, ds["population"].values)
    assert overrides_json({"a": np.float64(1.5)}) == '{"a": 1.5}'


def test_a_run_and_a_sweep_record_the_same_overrides_identically(model: sd_model.Model) -> None:
    import pandas as pd
    import xarray as xr

    prod = xr.DataArray([1.0, 0.9, 0.8], dims=["Region"], coords={"Region": model.coords["Region"]})
    base = {
        "productivity": prod,
        "Initial Population": {"North": 2e6, "Centre": 3e6, "South": 4e6},
        "transfer intensity": pd.Series({2022.0: 0.0, 2025.0: 0.5}),
        "mobility": np.float64(0.02),
    }
    run = model.run(base, final_time=2024)
    sw = sd_model.sweep(model, base=base, grid={"birth rate": [0.02]}, final_time=2024)
    assert sw.attrs["overrides"] == run.attrs["overrides"]
    assert json.loads(run.attrs["overrides"])["productivity"] == {
        "North": 1.0,
        "Centre": 0.9,
        "South": 0.8,
    }
    # The rest of the provenance is the same too (what differs is the title and timestamp).
    same = {"model_sha256", "solver_method", "solver_rtol", "saveper", "final_time", "backend"}
    assert {k: sw.attrs[k] for k in same} == {k: run.attrs[k] for k in same}
    np.testing.assert_array_equal(
        sw["population"].sel(birth_rate=0.02).values,
        model.run({**base, "birth rate": 0.02}, final_time=2024)["population"].values,
    )


def test_sweep_takes_the_option_objects(model: sd_model.Model) -> None:
    grid = {"transfer intensity": [0.0, 0.5]}
    by_kw = sd_model.sweep(model, grid=grid, method="RK45", rtol=1e-8, final_time=2026, saveper=2)
    by_obj = sd_model.sweep(
        model,
        grid=grid,
        solver=SolverOptions("RK45", rtol=1e-8),
        time=TimeSettings(final_time=2026, saveper=2),
    )
    np.testing.assert_array_equal(by_kw["population"].values, by_obj["population"].values)
    assert by_obj.attrs["solver_rtol"] == 1e-8 and list(by_obj.time.values) == [2022, 2024, 2026]
    assert by_obj.attrs["sweep_spec_sha256"] == by_kw.attrs["sweep_spec_sha256"]
    with pytest.raises(sd_model.SettingsError, match="not both"):
        sd_model.sweep(model, grid=grid, solver=SolverOptions("RK45"), rtol=1e-3)
    with pytest.raises(sd_model.SettingsError, match="not both"):
        sd_model.sweep(model, grid=grid, time=TimeSettings(final_time=2030), saveper=1)
    with pytest.warns(DeprecationWarning, match="save_every"):
        old = sd_model.sweep(
            model, grid=grid, method="RK45", rtol=1e-8, final_time=2026, save_every=2
        )
    np.testing.assert_array_equal(old["population"].values, by_kw["population"].values)


def test_euler_numba_is_a_method_like_the_others(model: sd_model.Model) -> None:
    # Where there is no kernel (PySD's backend) it runs as Euler: the same numbers.
    plain = model.run(method="euler", final_time=2026, backend="pysd")
    numba = model.run(solver=SolverOptions("euler-numba"), final_time=2026, backend="pysd")
    np.testing.assert_array_equal(numba["population"].values, plain["population"].values)
    assert numba.attrs["solver_method"] == "euler-numba"
    # jit=True is shorthand for it (with Euler only).
    short = model.run(jit=True, method="euler", final_time=2023, backend="pysd")
    assert short.attrs["solver_method"] == "euler-numba"
    assert model.run(jit=True, method="rk4", final_time=2023).attrs["solver_method"] == "rk4"


@pytest.mark.slow
def test_euler_numba_runs_the_kernel_with_eulers_numbers(model: sd_model.Model) -> None:
    pytest.importorskip("numba")
    plain = model.run(method="euler", final_time=2030, backend="compiled")
    numba = model.run(method="euler-numba", final_time=2030, backend="compiled")
    np.testing.assert_allclose(numba["population"].values, plain["population"].values, rtol=1e-12)
    np.testing.assert_allclose(numba["capital"].values, plain["capital"].values, rtol=1e-12)
