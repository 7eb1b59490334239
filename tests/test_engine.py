"""The Model API: parameters, overrides, errors, results and their files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import sd_model

ROOT = Path(__file__).resolve().parents[1]
MODELS = Path(__file__).parent / "models"
EXAMPLE = ROOT / "models" / "example_regions.mdl"


@pytest.fixture(scope="module")
def example() -> sd_model.Model:
    return sd_model.load(EXAMPLE)


@pytest.fixture(scope="module")
def base_run(example: sd_model.Model) -> xr.Dataset:
    return example.run(backend="pysd", method="RK45", final_time=2030)


def test_parameters_table(example: sd_model.Model) -> None:
    params = example.parameters
    assert params.loc["birth rate", "default"] == pytest.approx(0.018)
    assert params.loc["birth rate", "units"] == "1/Year"
    assert params.loc["productivity", "dims"] == "Region"
    assert params.loc["productivity", "default"] == {"North": 0.9, "Centre": 1.2, "South": 0.7}
    assert params.loc["attractiveness lookup", "kind"] == "lookup"
    assert "Population" not in params.index  # stocks are not parameters
    assert "FINAL TIME" not in params.index  # control variables go through run()


def test_dataset_conventions(base_run: xr.Dataset) -> None:
    ds = base_run
    assert ds["population"].dims == ("time", "Region")
    assert list(ds["Region"].values) == ["North", "Centre", "South"]
    assert ds["time"].attrs["units"] == "Year"
    pop = ds["population"].attrs
    assert pop["long_name"] == "Population"
    assert pop["units"] == "Person"
    assert pop["sd_kind"] == "stock"
    assert pop["description"] == "Residents of each region."
    assert ds["births"].attrs["sd_kind"] == "flow"
    assert ds["birth_rate"].attrs["sd_kind"] == "constant"
    assert "time" not in ds["birth_rate"].dims  # constants carry no time axis
    assert ds.attrs["model_sha256"] == sd_model.translate.file_sha256(EXAMPLE)
    assert ds.attrs["solver_method"] == "RK45"
    assert ds.attrs["pysd_version"]
    assert int(ds["solver_nfev"]) > 0
    np.testing.assert_array_equal(ds["time"].values, np.arange(2022.0, 2031.0))
    for value in ds.attrs.values():
        assert isinstance(value, str | int | float)


def test_migration_is_conserved(base_run: xr.Dataset) -> None:
    total = base_run["net_migration"].sum("Region")
    scale = float(base_run["population"].sum("Region").max())
    assert float(np.abs(total).max()) < 1e-9 * scale


def test_scalar_override(example: sd_model.Model, base_run: xr.Dataset) -> None:
    ds = example.run({"birth rate": 0.03}, backend="pysd", method="RK45", final_time=2030)
    assert float(ds["birth_rate"]) == 0.03
    assert (ds["population"].isel(time=-1) > base_run["population"].isel(time=-1)).all()
    assert json.loads(ds.attrs["overrides"]) == {"birth rate": 0.03}


def test_python_name_and_case_insensitive_override(example: sd_model.Model) -> None:
    a = example.run({"birth_rate": 0.02}, backend="pysd", method="RK45", final_time=2024)
    b = example.run({"Birth  Rate": 0.02}, backend="pysd", method="RK45", final_time=2024)
    xr.testing.assert_identical(a["population"], b["population"])


def test_element_overrides_three_ways(example: sd_model.Model) -> None:
    kw = dict(backend="pysd", method="RK45", final_time=2024)
    a = example.run({"productivity[South]": 1.5}, **kw)
    b = example.run({"productivity": {"South": 1.5}}, **kw)
    c = example.run(
        {"productivity": xr.DataArray([1.5], dims=["Region"], coords={"Region": ["South"]})}, **kw
    )
    d = example.run({"productivity": pd.Series({"North": 0.9, "Centre": 1.2, "South": 1.5})}, **kw)
    expected = [0.9, 1.2, 1.5]  # untouched elements keep the model's values
    for ds in (a, b, c, d):
        np.testing.assert_allclose(ds["productivity"].values, expected)
    xr.testing.assert_allclose(a["output"], b["output"])
    xr.testing.assert_allclose(a["output"], d["output"])


def test_time_series_override(example: sd_model.Model) -> None:
    ds = example.run(
        {"birth rate": {2022: 0.01, 2026: 0.03}},
        backend="pysd",
        method="euler",
        final_time=2026,
    )
    # A constant replaced by a time series varies linearly between its points.
    np.testing.assert_allclose(ds["birth_rate"].values, [0.01, 0.015, 0.02, 0.025, 0.03])


def test_lookup_override(example: sd_model.Model) -> None:
    flat = {0: 1.0, 3: 1.0}  # no attractiveness differences -> equal shares of migrants
    ds = example.run(
        {"attractiveness lookup": flat}, backend="pysd", method="RK45", final_time=2023
    )
    np.testing.assert_allclose(ds["attractiveness_effect"].values, 1.0)


def test_unknown_parameter_suggests(example: sd_model.Model) -> None:
    with pytest.raises(sd_model.ParameterError, match=r"'brith rate'.*Did you mean 'birth rate'"):
        example.run({"brith rate": 0.02}, backend="pysd")


def test_stock_is_not_a_parameter(example: sd_model.Model) -> None:
    with pytest.raises(sd_model.ParameterError, match="stock"):
        example.run({"Population": 5}, backend="pysd")


def test_wrong_shape_names_dims(example: sd_model.Model) -> None:
    with pytest.raises(sd_model.ParameterError, match=r"dims \['Region'\].*shape \(3,\)"):
        example.run({"productivity": [1.0, 2.0]}, backend="pysd")
    with pytest.raises(sd_model.ParameterError, match="not subscripted"):
        example.run({"birth rate": {"North": 1.0}}, backend="pysd")


def test_unknown_element(example: sd_model.Model) -> None:
    with pytest.raises(sd_model.ParameterError, match=r"'West' is not an element of 'Region'"):
        example.run({"productivity[West]": 1.0}, backend="pysd")


def test_element_names_are_case_insensitive(example: sd_model.Model) -> None:
    # Vensim names, element names included, ignore case and spacing.
    base = example.run({"birth rate": 0.02}, backend="pysd", final_time=2023)
    exact = example.run(
        {"productivity[South]": 2.0, "birth rate": 0.02}, backend="pysd", final_time=2023
    )
    for spelling in (
        {"productivity[ south ]": 2.0},
        {"productivity": {"SOUTH": 2.0}},
        {"productivity": xr.DataArray([2.0], dims=["Region"], coords={"Region": ["south"]})},
    ):
        ds = example.run({**spelling, "birth rate": 0.02}, backend="pysd", final_time=2023)
        xr.testing.assert_identical(ds["output"], exact["output"])
    assert not np.allclose(exact["output"].sel(Region="South"), base["output"].sel(Region="South"))
    with pytest.raises(sd_model.ParameterError, match=r"'Souht'.*Did you mean 'South'"):
        example.run({"productivity[Souht]": 1.0}, backend="pysd")
    # Two spellings of one element are refused, not resolved silently to the last one.
    for twice in (
        {"productivity[South]": 1.0, "productivity[south]": 3.0},
        {"productivity": {"SOUTH": 2.0, "South": 3.0}},
        {
            "productivity": xr.DataArray(
                [1.0, 2.0], dims=["Region"], coords={"Region": ["south", "South"]}
            )
        },
    ):
        with pytest.raises(sd_model.ParameterError, match="same element|more than once"):
            example.run(twice, backend="pysd", final_time=2023)


def test_initial_time_override_initializes_there(example: sd_model.Model) -> None:
    ds = example.run(backend="pysd", method="RK45", initial_time=2030, final_time=2032)
    assert float(ds["time"][0]) == 2030
    # Stocks start from their initial values at the new initial time.
    np.testing.assert_allclose(ds["population"].isel(time=0).values, [1.2e6, 2.5e6, 1.8e6])


def test_integration_failure_names_stock_and_time() -> None:
    model = sd_model.load(MODELS / "blowup.mdl")
    with pytest.raises(sd_model.IntegrationError, match=r"'?z'?.*time|time.*\bz\b"):
        model.run(method="RK45", backend="pysd")
    with pytest.raises(sd_model.IntegrationError, match=r"^blowup\.mdl: .*for z at time"):
        model.run(method="euler", backend="pysd", time_step=0.25, final_time=6)


def test_malformed_model_names_file() -> None:
    with pytest.raises(sd_model.ModelLoadError, match="bad_syntax.mdl"):
        sd_model.load(MODELS / "bad_syntax.mdl")


def test_missing_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(sd_model.ModelLoadError, match="not found"):
        sd_model.load(tmp_path / "nope.mdl")
    other = tmp_path / "model.txt"
    other.write_text("x")
    with pytest.raises(sd_model.ModelLoadError, match="unknown extension"):
        sd_model.load(other)


def test_discrete_elements_refuse_adaptive_methods() -> None:
    model = sd_model.load(MODELS / "delay_fixed.mdl")
    with pytest.raises(sd_model.UnsupportedFeatureError, match="DELAY FIXED.*euler"):
        model.run(method="RK45", backend="pysd")
    ds = model.run(method="euler", backend="pysd")
    # Input steps to 1 at t=2 (PySD switches half a step early, like Vensim); the
    # fixed delay of 1 year passes it on at t=3.
    out = ds["out"].to_series()
    assert out.loc[2.75] == 0 and out.loc[3.0] == 1


def test_model_folder_is_left_untouched(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    shutil.copy(MODELS / "decay.mdl", folder / "decay.mdl")
    folder.chmod(0o555)
    try:
        ds = sd_model.load(folder / "decay.mdl").run(backend="pysd")
        assert sorted(p.name for p in folder.iterdir()) == ["decay.mdl"]
        assert ds.sizes["time"] == 11
    finally:
        folder.chmod(0o755)


def test_declared_method_warns_when_overridden(corpus: Path) -> None:
    model = sd_model.load(corpus / "tests" / "min_max_1arg" / "test_min_max_1arg.xmile")
    assert model.declared_method == "rk4"
    with pytest.warns(sd_model.SDModelWarning, match="declares integration method 'rk4'"):
        model.run(method="euler", backend="pysd")


def test_netcdf_round_trip(base_run: xr.Dataset, tmp_path: Path) -> None:
    out = sd_model.write_results(base_run, tmp_path / "run.nc")
    back = xr.open_dataset(out)
    xr.testing.assert_allclose(back["population"], base_run["population"])
    assert back["population"].attrs["units"] == "Person"
    assert back["population"].attrs["long_name"] == "Population"
    assert back.attrs["model_sha256"] == base_run.attrs["model_sha256"]
    assert sd_model.open_results(out)["time"].attrs["units"] == "Year"


def test_table_matches_pysd_naming(base_run: xr.Dataset, tmp_path: Path) -> None:
    out = sd_model.write_results(base_run, tmp_path / "run.tab")
    table = pd.read_csv(out, sep="\t")
    assert table.columns[0] == "Time"
    assert "Population[North]" in table.columns
    assert "birth rate" in table.columns
    np.testing.assert_allclose(
        table["Population[South]"], base_run["population"].sel(Region="South").values
    )
    csv = pd.read_csv(sd_model.write_results(base_run, tmp_path / "run.csv"))
    assert list(csv.columns) == list(table.columns)


def test_interrupted_write_leaves_no_file(base_run: xr.Dataset, tmp_path: Path) -> None:
    target = tmp_path / "out.nc"
    target.write_text("previous results")

    def failing(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sd_model.results.write_atomic(target, failing)
    assert target.read_text() == "previous results"
    assert [p.name for p in tmp_path.iterdir()] == ["out.nc"]


def test_numpy_array_override(example: sd_model.Model) -> None:
    ds = example.run(
        {"productivity": np.array([0.5, 0.6, 0.7])}, backend="pysd", method="RK45", final_time=2023
    )
    np.testing.assert_allclose(ds["productivity"].values, [0.5, 0.6, 0.7])
    assert json.loads(ds.attrs["overrides"]) == {"productivity": [0.5, 0.6, 0.7]}


def test_unlabelled_dataarray_override(example: sd_model.Model) -> None:
    whole = xr.DataArray([0.5, 0.6, 0.7], dims=["Region"])
    ds = example.run({"productivity": whole}, backend="pysd", method="RK45", final_time=2023)
    np.testing.assert_allclose(ds["productivity"].values, [0.5, 0.6, 0.7])
    with pytest.raises(sd_model.ParameterError, match="without element labels"):
        example.run({"productivity": xr.DataArray([0.5, 0.6], dims=["Region"])})
    with pytest.raises(sd_model.ParameterError, match="expected numbers"):
        example.run({"productivity": [1, 2, "x"]})


@pytest.mark.parametrize("backend", ["pysd", "compiled"])
def test_adaptive_run_of_zero_length_and_off_grid_final_time(
    example: sd_model.Model, backend: str
) -> None:
    ds = example.run(backend=backend, method="RK45", final_time=2022)
    assert list(ds["time"].values) == [2022.0]
    np.testing.assert_allclose(ds["population"].values[0], [1.2e6, 2.5e6, 1.8e6])
    ds = example.run(backend=backend, method="RK45", final_time=2024.9999999)
    assert ds["time"].values[-1] == pytest.approx(2025, abs=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rtol": 0},
        {"max_step": 0},
        {"saveper": -1},
        {"final_time": 2000},
        {"time_step": 0},
    ],
)
def test_bad_settings_are_user_errors(example: sd_model.Model, kwargs: dict) -> None:
    with pytest.raises(sd_model.SettingsError):
        example.run(backend="pysd", method="RK45", **kwargs)


def test_compiled_backend_refuses_changing_control_variables(corpus: Path) -> None:
    model = sd_model.load(corpus / "tests" / "dynamic_final_time" / "test_dynamic_final_time.mdl")
    with pytest.raises(sd_model.UnsupportedFeatureError, match="FINAL TIME change during"):
        model.run(backend="compiled")


def test_written_files_get_ordinary_permissions(base_run: xr.Dataset, tmp_path: Path) -> None:
    import os

    mask = os.umask(0o022)
    try:
        out = sd_model.write_results(base_run, tmp_path / "run.csv")
    finally:
        os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o644


def test_saved_times_off_the_euler_grid_warn_once(example: sd_model.Model) -> None:
    # dt 0.3 from 2022 reaches 2023.5, 2025, ... but never 2022.5 or 2023: PySD skips those
    # saved times; one warning lists them instead of one warning per time.
    with pytest.warns(sd_model.SDModelWarning, match=r"10 saved time\(s\) \(2022\.5, 2023,") as rec:
        ds = example.run(method="euler", time_step=0.3, saveper=0.5, final_time=2030)
    assert len([w for w in rec if "saved time" in str(w.message)]) == 1
    np.testing.assert_allclose(ds["time"].values, [2022, 2023.5, 2025, 2026.5, 2028, 2029.5])


def _saves_by_stepping(grid: sd_model.TimeGrid) -> tuple[list[int], list[float], list[float]]:
    """The rule of PySD's loop, step by step: what fixed_step_saves must reproduce."""
    save = grid.save_times()
    tol = grid.time_step * 1e-5
    steps: list[int] = []
    kept: list[float] = []
    skipped: list[float] = []
    t = grid.initial_time
    j = 0
    for k in range(grid.n_steps() + 1):
        if k:
            t = t + grid.time_step
        while j < len(save) and save[j] < t - tol:
            skipped.append(float(save[j]))
            j += 1
        if j < len(save) and abs(save[j] - t) <= tol:
            steps.append(k)
            kept.append(float(save[j]))
            j += 1
    return steps, kept, skipped


@pytest.mark.parametrize("block", [1, 3, 1 << 20])
@pytest.mark.parametrize(
    "grid",
    [
        (2022, 2050, 0.25, 1),
        (0, 10, 0.1, 0.3),
        (0, 7.3, 1 / 3, 0.5),
        (-3, 2, 0.7, 0.7),
        (0, 1, 0.5, 0.25),
        (1.5, 1.5, 1, 0.33),
        (0, 100, 0.0625, 2.5),
    ],
)
def test_fixed_step_saves_follow_the_stepping_rule(
    grid: tuple[float, float, float, float], block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sd_model import integrate

    monkeypatch.setattr(integrate, "_STEP_BLOCK", block)
    g = sd_model.TimeGrid(*grid)
    fs = integrate.fixed_step_saves(g)
    assert (fs.steps.tolist(), fs.times.tolist(), fs.skipped.tolist()) == _saves_by_stepping(g)


def test_scenario_time_keys_are_the_run_keywords(tmp_path: Path) -> None:
    def scenario(time: str) -> sd_model.Scenario:
        path = tmp_path / "s.yaml"
        path.write_text(f"model: {EXAMPLE}\ntime: {time}\nsolver: {{method: euler}}\n")
        return sd_model.Scenario.from_yaml(path)

    new = scenario("{initial_time: 2023, final_time: 2026, saveper: 0.5, time_step: 0.25}")
    assert new.time_settings() == sd_model.TimeSettings(2023, 2026, 0.25, 0.5)
    assert new.run_kwargs() == {
        "initial_time": 2023,
        "final_time": 2026,
        "time_step": 0.25,
        "saveper": 0.5,
        "method": "euler",
    }
    # Older files' short spellings read the same.
    old = scenario("{initial: 2023, final: 2026, saveper: 0.5, time_step: 0.25}")
    assert old.time == new.time
    with pytest.raises(sd_model.ScenarioError, match="same setting"):
        scenario("{initial: 2023, initial_time: 2023}")
    with pytest.raises(sd_model.ScenarioError, match=r"s\.yaml:2: time.final_time is before"):
        scenario("{initial: 2023, final: 2020}")
    # An object given to run() replaces the whole section: the rest is the model file's.
    ds = new.run(time=sd_model.TimeSettings(final_time=2024))
    control = sd_model.load(EXAMPLE).control
    assert float(ds.time[0]) == control["initial_time"] != 2023
    assert float(ds.time[-1]) == 2024


def test_scenario_save_every_is_time_saveper(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(f"model: {EXAMPLE}\ntime: {{final: 2025}}\nsave_every: 0.5\n")
    with pytest.warns(DeprecationWarning, match="save_every"):
        sc = sd_model.Scenario.from_yaml(path)
    assert sc.time == {"final_time": 2025.0, "saveper": 0.5}
    path.write_text(f"model: {EXAMPLE}\ntime: {{saveper: 1}}\nsave_every: 0.5\n")
    with pytest.raises(sd_model.ScenarioError, match="differ"), pytest.warns(DeprecationWarning):
        sd_model.Scenario.from_yaml(path)
