"""Tests of sd_model.compare: stacking runs, disparity tables, fit tables, ``sd-model compare``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import sd_model
from sd_model import _errors
from sd_model.compare import (
    CompareError,
    add_compare_parser,
    compare,
    disparity_indices,
    disparity_table,
    fit_table,
    infer_dim,
    observed_dataset,
)

ROOT = Path(__file__).resolve().parents[1]
REGIONS = ["North", "Centre", "South"]
TIMES = [2022.0, 2023.0, 2024.0, 2025.0]
INCOME_UNITS = "thousand KZT/(person*Year)"


def _run(
    income: np.ndarray,
    population: np.ndarray,
    *,
    scenario: str = "base",
    sha: str | None = "abc123",
    times: list[float] = TIMES,
    regions: list[str] = REGIONS,
) -> xr.Dataset:
    """A hand-built run shaped like the Kazakhstan model's results."""
    ds = xr.Dataset(
        {
            "income_per_capita": (
                ("time", "Region"),
                np.asarray(income, dtype=float),
                {"long_name": "Income per Capita", "units": INCOME_UNITS, "sd_kind": "auxiliary"},
            ),
            "population": (
                ("time", "Region"),
                np.asarray(population, dtype=float),
                {"long_name": "Population", "units": "persons", "sd_kind": "stock"},
            ),
            "gdp": (
                ("time",),
                np.arange(len(times), dtype=float) + 100.0,
                {"long_name": "GDP", "units": "bn KZT/Year", "sd_kind": "auxiliary"},
            ),
        },
        coords={"time": ("time", times, {"units": "Year"}), "Region": regions},
    )
    ds.attrs = {"scenario": scenario, "model_file": "toy.mdl", "solver_method": "RK45"}
    if sha is not None:
        ds.attrs["model_sha256"] = sha
    return ds


def _random_run(seed: int, **kw: object) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    shape = (len(TIMES), len(REGIONS))
    return _run(rng.uniform(1, 10, shape), rng.uniform(1e5, 1e6, shape), **kw)  # type: ignore[arg-type]


def _williamson(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Williamson (1965) index along the last axis, written out from its definition."""
    mean = np.sum(p * y, axis=-1) / np.sum(p, axis=-1)
    var = np.sum(p * (y - mean[..., None]) ** 2, axis=-1) / np.sum(p, axis=-1)
    return np.sqrt(var) / mean


# --------------------------------------------------------------------------- compare
def test_compare_keeps_each_runs_values_exactly() -> None:
    a, b = _random_run(1, scenario="a"), _random_run(2, scenario="b")
    both = compare({"baseline": a, "policy": b})
    assert list(both["scenario"].values) == ["baseline", "policy"]
    assert both["income_per_capita"].dims == ("scenario", "time", "Region")
    for name, run in (("baseline", a), ("policy", b)):
        for var in ("income_per_capita", "population", "gdp"):
            got = both[var].sel(scenario=name).values
            assert np.array_equal(got, run[var].values), (name, var)
    assert both["income_per_capita"].attrs["units"] == INCOME_UNITS
    assert both["income_per_capita"].attrs["long_name"] == "Income per Capita"
    assert both["time"].attrs["units"] == "Year"


def test_compare_attrs_keep_what_runs_share_and_record_the_rest() -> None:
    both = compare({"x": _random_run(1, scenario="a"), "y": _random_run(2, scenario="b")})
    assert both.attrs["model_sha256"] == "abc123"
    assert both.attrs["solver_method"] == "RK45"
    assert "scenario" not in both.attrs
    runs = json.loads(both.attrs["runs"])
    assert runs["x"]["scenario"] == "a" and runs["y"]["scenario"] == "b"


def test_compared_runs_round_trip_through_netcdf(tmp_path: Path) -> None:
    both = compare({"baseline": _random_run(1, scenario="a"), "policy": _random_run(2)})
    both.to_netcdf(tmp_path / "both.nc", engine="netcdf4")
    with xr.open_dataset(tmp_path / "both.nc") as back:
        xr.testing.assert_identical(back.load(), both)


def test_compare_selects_variables() -> None:
    a, b = _random_run(1), _random_run(2)
    both = compare({"a": a, "b": b}, ["gdp", "population"])
    assert list(both.data_vars) == ["gdp", "population"]
    assert np.array_equal(both["population"].sel(scenario="b").values, b.population.values)
    assert both["gdp"].sel(scenario="a").values.tolist() == [100.0, 101.0, 102.0, 103.0]


def test_compare_refuses_runs_of_different_models() -> None:
    a = _random_run(1, sha="aaaaaaaaaaaaaaaa")
    b = _random_run(2, sha="bbbbbbbbbbbbbbbb")
    with pytest.raises(CompareError, match=r"different models.*'a'.*'b'.*check_model=False"):
        compare({"a": a, "b": b})
    both = compare({"a": a, "b": b}, check_model=False)
    assert np.array_equal(both["income_per_capita"].sel(scenario="b").values, b.income_per_capita)
    assert "model_sha256" not in both.attrs  # not shared: recorded per run instead
    assert json.loads(both.attrs["runs"])["b"]["model_sha256"] == "bbbbbbbbbbbbbbbb"
    with pytest.raises(CompareError, match="different models"):
        compare({"a": a, "b": _random_run(3, sha=None)})


def test_compare_refuses_different_time_grids_unless_asked() -> None:
    a = _random_run(1)
    b = _run(np.ones((3, 3)), np.ones((3, 3)), times=TIMES[1:])
    with pytest.raises(CompareError, match=r"different 'time' coordinates.*join='inner'"):
        compare({"a": a, "b": b})
    inner = compare({"a": a, "b": b}, join="inner")
    assert inner["time"].values.tolist() == TIMES[1:]
    assert np.array_equal(inner["population"].sel(scenario="a").values, a.population.values[1:])


def test_compare_user_errors_are_clear() -> None:
    with pytest.raises(CompareError, match="at least one run"):
        compare({})
    with pytest.raises(CompareError, match=r"no variable 'incme_per_capita'.*'income_per_capita'"):
        compare({"a": _random_run(1)}, ["incme_per_capita"])
    stacked = compare({"a": _random_run(1)})
    with pytest.raises(CompareError, match="already has a 'scenario' dimension"):
        compare({"a": stacked})
    with pytest.raises(CompareError, match="not an xarray.Dataset"):
        compare({"a": _random_run(1).population})


# --------------------------------------------------------------------------- disparity
def test_errors_live_in_one_module_and_stay_importable_where_they_were() -> None:
    # `from sd_model.compare import CompareError` (as users write it) is the class that
    # sd_model._errors defines, so `except` clauses written either way catch the same error.
    assert CompareError is _errors.CompareError
    assert CompareError.__module__ == "sd_model._errors"
    with pytest.raises(_errors.CompareError):
        compare({})


def test_disparity_of_identical_regions_is_zero() -> None:
    ds = _run(np.full((4, 3), 7.5), np.array([[1.0, 2.0, 3.0]] * 4))
    table = disparity_table(ds, "income_per_capita", "population")
    for col in ("cv", "williamson", "theil_t", "theil_l", "gini"):
        assert np.allclose(table[col], 0.0, atol=1e-15), col
    assert np.allclose(table["max_min"], 1.0)


def test_disparity_table_matches_hand_computed_three_regions() -> None:
    # y = (1, 2, 4), populations (1, 2, 1): weights (1/4, 1/2, 1/4), weighted mean 9/4.
    ds = _run(np.array([[1.0, 2.0, 4.0]] * 4), np.array([[1.0, 2.0, 1.0]] * 4))
    row = disparity_table(ds, "income_per_capita", "population", dim="Region").iloc[0]
    var_w = 0.25 * 1.25**2 + 0.5 * 0.25**2 + 0.25 * 1.75**2  # = 1.1875
    assert row["williamson"] == pytest.approx(np.sqrt(1.1875) / 2.25)
    assert var_w == pytest.approx(1.1875)
    # Unweighted CV (population std): mean 7/3, std sqrt(14)/3.
    assert row["cv"] == pytest.approx(np.sqrt(14.0) / 7.0)
    # Gini: ordered pairs 2 * (1/8 * 1 + 1/16 * 3 + 1/8 * 2) / (2 * 9/4) = 1/4.
    assert row["gini"] == pytest.approx(0.25)
    r = np.array([1.0, 2.0, 4.0]) / 2.25
    pi = np.array([0.25, 0.5, 0.25])
    assert row["theil_t"] == pytest.approx(np.sum(pi * r * np.log(r)))
    assert row["theil_l"] == pytest.approx(np.sum(pi * np.log(1 / r)))
    assert row["max_min"] == pytest.approx(4.0)


def test_disparity_table_per_scenario_and_time() -> None:
    a, b = _random_run(1), _random_run(2)
    table = disparity_table(
        compare({"a": a, "b": b}), "income_per_capita", "population", times=[2023, 2025]
    )
    assert table.index.names == ["scenario", "time"]
    assert list(table.columns) == ["cv", "williamson", "theil_t", "theil_l", "gini", "max_min"]
    assert len(table) == 4
    for name, run in (("a", a), ("b", b)):
        alone = disparity_table(run, "income_per_capita", "population", times=[2023, 2025])
        assert np.allclose(table.loc[name].to_numpy(), alone.to_numpy(), rtol=1e-14)
    # Williamson by hand for one cell.
    y = b.income_per_capita.sel(time=2025).values
    p = b.population.sel(time=2025).values
    mean = np.sum(p * y) / p.sum()
    expected = np.sqrt(np.sum(p * (y - mean) ** 2) / p.sum()) / mean
    assert table.loc[("b", 2025.0), "williamson"] == pytest.approx(expected)


def test_disparity_without_weights_is_unweighted() -> None:
    run = _random_run(3)
    table = disparity_table(run, "income_per_capita", None)
    # Equal weights: the Williamson index is the (population-std) CV.
    assert np.allclose(table["williamson"], table["cv"])
    # y = (1, 2, 3, 4) with equal weights: Gini = sum_ij |y_i - y_j| / (2 n^2 mean)
    # = 20 / (2 * 16 * 2.5) = 1/4; Theil T = mean(r ln r), r = y / 2.5.
    four = xr.Dataset({"y": ("Zone", [1.0, 2.0, 3.0, 4.0])}, coords={"Zone": list("abcd")})
    row = disparity_table(four, "y", None).iloc[0]
    r = np.array([1.0, 2.0, 3.0, 4.0]) / 2.5
    assert row["gini"] == pytest.approx(0.25)
    assert row["theil_t"] == pytest.approx(np.mean(r * np.log(r)))
    assert row["theil_l"] == pytest.approx(np.mean(np.log(1.0 / r)))
    assert row["max_min"] == pytest.approx(4.0)


def test_the_dimension_is_the_callers_or_the_only_candidate() -> None:
    run = _random_run(4)
    # Inferred: income_per_capita has one dim besides time (and scenario, once stacked).
    both = compare({"a": run, "b": _random_run(5)})
    assert infer_dim(both["income_per_capita"]) == "Region"
    assert infer_dim(run["income_per_capita"], "Region") == "Region"
    inferred = disparity_indices(both, "income_per_capita", "population")
    named = disparity_indices(both, "income_per_capita", "population", dim="Region")
    xr.testing.assert_identical(inferred, named)
    expected = _williamson(run.income_per_capita.values, run.population.values)
    assert np.allclose(inferred["williamson"].sel(scenario="a").values, expected, rtol=1e-14)
    assert inferred.attrs == {
        "variable": "income_per_capita",
        "weight": "population",
        "dim": "Region",
    }
    assert inferred["williamson"].attrs["description"] == (
        "weighted Williamson index of income_per_capita across Region, weighted by population"
    )
    assert (
        inferred["cv"].attrs["description"]
        == "coefficient of variation of income_per_capita across Region"
    )
    # A variable by region and age: the caller must say which; the error lists both.
    ages = xr.DataArray(
        np.ones((4, 3, 2)), dims=("time", "Region", "Age"), coords={"time": TIMES}, name="x"
    )
    with pytest.raises(CompareError, match=r"several dims.*'Region', 'Age'.*dim='Region'"):
        infer_dim(ages)
    assert infer_dim(ages, "Age") == "Age"
    with pytest.raises(CompareError, match=r"not 'Zone'; pass dim= one of 'time', 'Region'"):
        infer_dim(ages, "Zone")
    with pytest.raises(CompareError, match="none besides time and scenario"):
        disparity_table(run, "gdp", None)
    assert infer_dim(run["gdp"], required=False) is None


def test_disparity_errors_name_the_fix() -> None:
    run = _random_run(1)
    with pytest.raises(CompareError, match=r"No saved time 2030.*2022 to 2025"):
        disparity_table(run, "income_per_capita", "population", times=[2030])
    with pytest.raises(CompareError, match="not 'Region'"):
        disparity_table(run, "gdp", None, dim="Region")
    with pytest.raises(CompareError, match="did you mean 'income_per_capita'"):
        disparity_table(run, "income_per_capta", "population")
    with pytest.raises(CompareError, match="did you mean 'population'"):
        disparity_table(run, "income_per_capita", "populaton")
    bad = _run(np.array([[0.0, 1.0, 2.0]] * 4), np.ones((4, 3)))
    with pytest.raises(CompareError, match="values <= 0"):
        disparity_table(bad, "income_per_capita", "population")


# --------------------------------------------------------------------------- fit
def _observed_long(values: np.ndarray, variable: str = "population") -> pd.DataFrame:
    rows = []
    for i, year in enumerate(TIMES):
        for j, region in enumerate(REGIONS):
            rows.append(
                {"region": region, "year": int(year), "variable": variable, "value": values[i, j]}
            )
    return pd.DataFrame(rows)


def test_fit_table_pure_bias_is_all_um() -> None:
    obs = np.arange(12.0).reshape(4, 3) * 1000.0 + 5000.0
    sim = _run(np.ones((4, 3)), obs + 10.0)
    fit = fit_table(sim, _observed_long(obs))  # region_dim: population's only dim, Region
    assert list(fit["region"]) == REGIONS
    assert (fit["series"] == "population").all()
    assert np.allclose(fit["mse"], 100.0)
    assert np.allclose(fit["um"], 1.0)
    assert np.allclose(fit["us"], 0.0, atol=1e-12)
    assert np.allclose(fit["uc"], 0.0, atol=1e-12)
    assert (fit["n"] == 4).all()


def test_fit_table_mape_of_a_ten_percent_error() -> None:
    obs = np.arange(1.0, 13.0).reshape(4, 3)
    sim = _run(np.ones((4, 3)), obs * 1.1)
    fit = fit_table(sim, _observed_long(obs), ["population"])
    assert np.allclose(fit["mape_pct"], 10.0)
    assert np.allclose(fit["rmspe_pct"], 10.0)
    # um + us + uc = 1 (Sterman 1984).
    assert np.allclose(fit[["um", "us", "uc"]].sum(axis=1), 1.0)


def test_fit_table_window_renames_and_national_series() -> None:
    obs = np.arange(1.0, 13.0).reshape(4, 3)
    sim = _run(np.ones((4, 3)), obs * 1.1)
    long = _observed_long(obs, variable="pop_obs")
    fit = fit_table(sim, long, {"pop_obs": "population"}, times=slice(2022, 2023))
    assert (fit["n"] == 2).all()
    assert (fit["variable"] == "population").all()
    # The window's two years only: MSE = mean((0.1 * obs)^2) over 2022-2023, per region.
    expected_mse = np.mean((0.1 * obs[:2]) ** 2, axis=0)
    assert np.allclose(fit["mse"], expected_mse, rtol=1e-12)
    same = fit_table(sim, long, {"pop_obs": "population"}, region_dim="Region", times=[2022, 2023])
    pd.testing.assert_frame_equal(same, fit)
    wide = pd.DataFrame({"gdp": sim.gdp.values - 1.0}, index=[int(t) for t in TIMES])
    national = fit_table(sim, wide)
    assert national["region"].tolist() == [""]
    assert national["mse"].iloc[0] == pytest.approx(1.0)
    with pytest.raises(CompareError, match="same name"):
        fit_table(sim, _observed_long(obs, variable="unrelated"))
    with pytest.raises(CompareError, match="duplicate rows"):
        observed_dataset(pd.concat([long, long.iloc[:1]]), region_dim="Region")


def test_observed_regions_need_the_simulations_dimension() -> None:
    obs = np.arange(1.0, 13.0).reshape(4, 3)
    long = _observed_long(obs)
    with pytest.raises(CompareError, match=r"'region' column.*region_dim='Region'"):
        observed_dataset(long)
    ds = observed_dataset(long, region_dim="Zone")
    assert ds["population"].sel(Zone="South").values.tolist() == obs[:, 2].tolist()
    # Two regional dims among the compared variables: fit_table() cannot guess.
    sim = _run(np.ones((4, 3)), obs)
    sim["by_age"] = xr.DataArray(np.ones((4, 2)), dims=("time", "Age"), coords={"time": TIMES})
    both = pd.concat([long, _observed_long(obs, variable="by_age")])
    with pytest.raises(CompareError, match=r"several regional dims \('Region', 'Age'\)"):
        fit_table(sim, both, ["population", "by_age"])


# --------------------------------------------------------------------------- CLI
def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sd-model")
    add_compare_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def _write(tmp_path: Path, name: str, ds: xr.Dataset) -> str:
    path = tmp_path / f"{name}.nc"
    ds.to_netcdf(path)
    return str(path)


def test_cli_prints_and_writes_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _write(tmp_path, "a", _random_run(1, scenario="baseline"))
    b = _write(tmp_path, "b", _random_run(2, scenario="policy"))
    var = ["--var", "income_per_capita", "--weight", "population"]
    assert _cli(["compare", a, b, *var, "--time", "2025"]) == 0
    out = capsys.readouterr().out
    assert "Income per Capita [thousand KZT/(person*Year)] across Region, weighted by" in out
    assert "baseline" in out and "policy" in out and "williamson" in out
    csv = tmp_path / "table.csv"
    assert _cli(["compare", a, b, *var, "-o", str(csv)]) == 0
    table = pd.read_csv(csv)
    assert list(table.columns[:2]) == ["scenario", "time"]
    assert len(table) == 2 * len(TIMES)
    policy = _random_run(2)
    expected = _williamson(policy.income_per_capita.values, policy.population.values)
    got = table[table["scenario"] == "policy"].sort_values("time")["williamson"].to_numpy()
    assert np.allclose(got, expected, rtol=1e-12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nc", "b.nc", "table.csv"]


def test_cli_infers_only_an_unambiguous_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _write(tmp_path, "a", _random_run(1))
    with pytest.raises(CompareError, match=r"--var NAME.*income_per_capita, population\."):
        _cli(["compare", a, "--weight", "none"])
    with pytest.raises(CompareError, match=r"--weight VARIABLE.*--weight none"):
        _cli(["compare", a, "--var", "income_per_capita"])
    alone = _random_run(1).drop_vars("population")
    single = _write(tmp_path, "single", alone)
    csv = tmp_path / "t.csv"
    assert _cli(["compare", single, "--weight", "none", "-o", str(csv)]) == 0
    y = alone.income_per_capita.values
    cv = y.std(axis=1) / y.mean(axis=1)
    assert np.allclose(pd.read_csv(csv)["cv"], cv, rtol=1e-12)


def test_cli_user_errors(tmp_path: Path) -> None:
    a = _write(tmp_path, "a", _random_run(1, sha="one"))
    b = _write(tmp_path, "b", _random_run(2, sha="two"))
    var = ["--var", "income_per_capita", "--weight", "population"]
    with pytest.raises(sd_model.SDModelError, match="different models"):
        _cli(["compare", a, b, *var])
    assert _cli(["compare", a, b, *var, "--any-model", "-o", str(tmp_path / "t.tab")]) == 0
    with pytest.raises(sd_model.SDModelError, match="unknown extension '.xlsx'"):
        _cli(["compare", a, "-o", str(tmp_path / "t.xlsx")])
    with pytest.raises(sd_model.SDModelError, match="No results"):
        _cli(["compare", str(tmp_path / "missing.nc")])
    # An empty -o (an unset shell variable) is not "no file": nothing printed, an error.
    with pytest.raises(sd_model.SDModelError, match="unknown extension ''"):
        _cli(["compare", a, "-o", ""])


# --------------------------------------------------------------------------- real model
@pytest.fixture(scope="module")
def kazakhstan_runs() -> dict[str, xr.Dataset]:
    model = sd_model.load(ROOT / "models" / "kazakhstan_regions.mdl")
    runs = {}
    for name in ("baseline", "equalization"):
        sc = sd_model.Scenario.from_yaml(ROOT / "scenarios" / f"{name}.yaml")
        runs[name] = sc.run(model, backend="compiled", method="RK45", final_time=2035)
    return runs


def test_disparity_table_reproduces_the_models_own_indices(
    kazakhstan_runs: dict[str, xr.Dataset],
) -> None:
    # The model computes its Williamson and Theil indices in its own equations
    # (models/README.md, "Disparity indicators"); ours must agree at every time.
    both = compare(kazakhstan_runs)
    table = disparity_table(both, "income_per_capita", "population", dim="Region")
    assert both.sizes["Region"] == 20
    model_w = both["williamson_index"].to_series().reorder_levels(table.index.names)
    model_t = both["theil_index"].to_series().reorder_levels(table.index.names)
    assert np.allclose(table["williamson"], model_w.loc[table.index], rtol=1e-9)
    assert np.allclose(table["theil_t"], model_t.loc[table.index], rtol=1e-9)
    # Equalisation transfers lower the disparity after they start (2025).
    w = table["williamson"]
    assert w.loc[("equalization", 2035.0)] < w.loc[("baseline", 2035.0)]
    assert w.loc[("equalization", 2022.0)] == pytest.approx(w.loc[("baseline", 2022.0)])


def test_compare_refuses_the_hindcast_with_the_forecast(
    kazakhstan_runs: dict[str, xr.Dataset],
) -> None:
    hindcast = kazakhstan_runs["baseline"].copy()
    hindcast.attrs = {**hindcast.attrs, "model_sha256": "0" * 64, "model_file": "other.mdl"}
    with pytest.raises(CompareError, match=r"kazakhstan_regions\.mdl.*other\.mdl"):
        compare({"forecast": kazakhstan_runs["baseline"], "hindcast": hindcast})


def test_fit_table_reproduces_the_calibration_report() -> None:
    # models/data/hindcast_fit.csv is written by models/kazakhstan_hindcast.py from a
    # compiled Euler run of the hindcast scenario; fit_table() on a fresh run must give
    # the same statistics for the calibration window.
    sc = sd_model.Scenario.from_yaml(ROOT / "scenarios" / "hindcast.yaml")
    hindcast = sc.run(backend="compiled", method="euler")
    observed = pd.read_csv(ROOT / "models" / "data" / "harmonised_series.csv")
    series = {"population": "population", "employment": "employment", "grp_real": "grp"}
    series["emissions"] = "emissions"
    fit = fit_table(hindcast, observed, series, times=slice(2010, 2018))
    report = pd.read_csv(ROOT / "models" / "data" / "hindcast_fit.csv")
    report = report[report["window"] == "calibration 2010-2018"]
    both = fit.merge(report, on=["series", "region"], suffixes=("", "_report"))
    assert len(both) == len(fit) == 4 * 20
    window = observed[(observed["year"] <= 2018) & observed["variable"].isin(list(series))]
    counts = window.groupby(["variable", "region"]).size()
    expected_n = [counts[(s, r)] for s, r in zip(both["series"], both["region"], strict=True)]
    assert both["n"].tolist() == expected_n
    for col in ("mape_pct", "rmspe_pct", "theil_u1", "mse"):
        assert np.allclose(both[col], both[f"{col}_report"], rtol=1e-4), col
    for col in ("um", "us", "uc"):
        assert np.allclose(both[col], both[f"{col}_report"], rtol=1e-3, atol=1e-5), col
