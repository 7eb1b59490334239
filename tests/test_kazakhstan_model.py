"""Validation of the Kazakhstan regional model (issue #4; design notes section 6).

Truths come from outside the model code: the BNS source CSVs in models/data, conservation
laws, closed-form solutions of the extreme-condition runs (exp(-delta t), half-lives), and
the policy directions the issue fixes. Most runs use the compiled backend (sub-second); the
PySD runtime and the hindcast are in the slow tests. The model runs with the fitted values of
models/params/forecast/params.yaml, as the scenario files do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import spearmanr

import sd_model
from sd_model import metrics

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
DATA = MODELS / "data"
FORECAST = MODELS / "kazakhstan_regions.mdl"
PARAMS = {name: MODELS / "params" / name / "params.yaml" for name in ("forecast", "hindcast")}
CALIBRATIONS = {
    "forecast": MODELS / "kazakhstan_calibration.yaml",
    "hindcast": MODELS / "kazakhstan_hindcast_calibration.yaml",
}
FIT = yaml.safe_load(PARAMS["forecast"].read_text(encoding="utf-8"))["set"]

REGIONS = [
    "Astana", "Almaty city", "Shymkent", "Abai", "Akmola", "Aktobe", "Almaty region", "Atyrau",
    "West Kazakhstan", "Jambyl", "Jetisu", "Karaganda", "Kostanay", "Kyzylorda", "Mangystau",
    "Pavlodar", "North Kazakhstan", "Turkistan", "Ulytau", "East Kazakhstan",
]  # fmt: skip
CODES = [
    "AST", "ALA", "SHM", "ABY", "AKM", "AKT", "ALM", "ATY", "ZKO", "ZHM", "ZHT", "KRG", "KST",
    "KZL", "MNG", "PVL", "SKO", "TRK", "ULT", "VKO",
]  # fmt: skip
LEVERS = [
    "equalization transfer intensity",
    "special subsidy pool",
    "preferential loan rate discount",
    "investment incentive rate",
    "new industrial sites programme",
    "transport programme",
    "abatement investment",
    "clean technology rate",
]
STOCKS = [
    "population",
    "capital",
    "employment",
    "environmental_load",
    "public_infrastructure",
    "abatement_capital",
    "emission_intensity",
]
EVERYTHING_ON = {
    "equalization transfer intensity": 1.0,
    "special subsidy pool": 3000.0,
    "preferential loan rate discount": 0.05,
    "investment incentive rate": 0.3,
    "new industrial sites programme": 200.0,
    "transport programme": 3000.0,
    "abatement investment": 100.0,
    "clean technology rate": 0.05,
}


@pytest.fixture(scope="module")
def model() -> sd_model.Model:
    return sd_model.load(FORECAST)


def with_fit(params: dict | None = None, fit: dict | None = None) -> dict:
    """The fitted values with ``params`` on top (a whole value replaces a fit's elements)."""
    params = params or {}
    whole = {k.split("[")[0].strip().lower() for k in params if "[" not in k}
    base = {k: v for k, v in (FIT if fit is None else fit).items()}
    base = {k: v for k, v in base.items() if k.split("[")[0].strip().lower() not in whole}
    return {**base, **params}


def run(model: sd_model.Model, params: dict | None = None, **kw):
    opts: dict[str, Any] = {"method": "RK45", "backend": "compiled", "rtol": 1e-8, "atol": 1e-8}
    opts.update(kw)
    return model.run(with_fit(params), **opts)


@pytest.fixture(scope="module")
def baseline(model):
    return run(model)


def _source(name: str) -> pd.DataFrame:
    df = pd.read_csv(DATA / name)
    assert df["source"].notna().all(), f"{name}: every row needs a source"
    return df


def _regional(name: str, year: int, unit_contains: str | None = None) -> np.ndarray:
    df = _source(name)
    df = df[df.year.astype(str) == str(year)]
    if unit_contains:
        df = df[df.unit.str.contains(unit_contains)]
    if "source" in df and name.startswith("emissions"):
        df = df[df.source.str.startswith("open-data")]
    return df.set_index("region_code").loc[CODES, "value"].to_numpy(float)


# --------------------------------------------------------------------------- names and data
def test_region_range_and_required_names(model, baseline):
    assert model.coords["Region"] == REGIONS
    for var in (
        "population", "capital", "employment", "environmental_load", "grp", "grp_per_capita",
        "income_per_capita", "unemployment_rate", "net_migration", "emissions",
    ):  # fmt: skip
        assert baseline[var].dims == ("time", "Region"), var
    for var in (
        "total_population",
        "gdp",
        "national_unemployment_rate",
        "williamson_index",
        "theil_index",
    ):
        assert baseline[var].dims == ("time",), var
    assert baseline.time.values[0] == 2022 and baseline.time.values[-1] == 2050
    # The national figures, recomputed here from the regional ones: totals are sums; the
    # Williamson (1965) index is the population-weighted coefficient of variation of income
    # per capita; Theil's T index is sum_i s_i (y_i / m) ln(y_i / m), s_i population shares.
    pop = baseline.population.values
    np.testing.assert_allclose(baseline.total_population.values, pop.sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(baseline.gdp.values, baseline.grp.values.sum(axis=1), rtol=1e-12)
    share = pop / pop.sum(axis=1, keepdims=True)
    y = baseline.income_per_capita.values
    m = (share * y).sum(axis=1, keepdims=True)
    williamson = np.sqrt((share * (y - m) ** 2).sum(axis=1)) / m[:, 0]
    np.testing.assert_allclose(baseline.williamson_index.values, williamson, rtol=1e-10)
    theil = (share * y / m * np.log(y / m)).sum(axis=1)
    np.testing.assert_allclose(baseline.theil_index.values, theil, rtol=1e-8, atol=1e-14)
    assert (williamson > 0).all() and (theil > 0).all()  # the regions are unequal
    params = model.parameters
    for lever in [*LEVERS, "policy start year"]:
        assert lever in params.index, lever
    for lever in LEVERS:
        default = params.loc[lever, "default"]
        values = default.values() if isinstance(default, dict) else [default]
        assert all(v == 0 for v in values), f"{lever} must be off in the baseline"
        assert isinstance(params.loc[lever, "units"], str) and params.loc[lever, "units"]


def test_every_data_file_has_units_and_sources():
    for path in DATA.glob("*.csv"):
        df = pd.read_csv(path)
        assert "source" in df.columns, path.name
        assert df["source"].notna().all(), path.name
        if "value" in df.columns and path.name != "hindcast_fit.csv":
            assert "unit" in df.columns and df["unit"].notna().all(), path.name


def test_initial_values_are_the_2022_statistics(baseline):
    start = baseline.sel(time=2022)
    pop = _regional("population_avg_annual.csv", 2022)
    np.testing.assert_allclose(start.population.values, pop, rtol=1e-12)
    grp = _regional("grp_nominal.csv", 2022) / 1000.0  # million -> bn KZT, 2022 prices
    np.testing.assert_allclose(start.grp.values, grp, rtol=1e-8)
    emp = _regional("employment.csv", 2022) * 1000.0
    np.testing.assert_allclose(start.employment.values, emp, rtol=1e-8)
    em = _regional("emissions_stationary_sources.csv", 2022) * 1000.0
    np.testing.assert_allclose(start.emissions.values, em, rtol=1e-8)
    u = _regional("unemployment_rate.csv", 2022) / 100.0
    np.testing.assert_allclose(start.unemployment_rate.values, u, rtol=1e-8)
    net = _regional("internal_migration.csv", 2022, "net")
    np.testing.assert_allclose(start.net_migration.values, net, rtol=1e-7, atol=1e-4)


@pytest.mark.parametrize(
    "weights",
    [
        {"income utility weight": 1.5, "public service utility weight": 0.5},
        {"income utility weight": 0.0, "public service utility weight": 0.0},
        {"pollution utility weight": 1.0, "out migration push elasticity": 2.0},
    ],
)
def test_migration_weights_keep_the_2022_flows(model, weights):
    # The utility is written relative to the observed 2022 state, so the migration weights can
    # be swept (scenarios/equalization_sensitivity.yaml) without losing the calibration.
    start = run(model, weights, final_time=2023).sel(time=2022)
    net = _regional("internal_migration.csv", 2022, "net")
    np.testing.assert_allclose(start.net_migration.values, net, rtol=1e-7, atol=1e-4)
    departures = _regional("internal_migration.csv", 2022, "departures")
    np.testing.assert_allclose(start.out_migration.values, departures, rtol=1e-7)


def test_model_file_reads_its_data_instead_of_holding_it():
    # The model is source: no equation holds a list of numbers; every regional value comes
    # from models/data through GET DIRECT, or from an INITIAL equation over the data.
    text = FORECAST.read_text(encoding="utf-8")
    assert not re.search(r"=\s*\n\t-?[0-9.e+-]+\s*[,;]\s*-?[0-9.]", text)
    files = set(re.findall(r"GET DIRECT \w+\('([^']+)'", text))
    assert len(files) >= 8
    for name in files:
        assert (MODELS / name).is_file(), name


@pytest.mark.parametrize("name", ["forecast", "hindcast"])
def test_parameter_files_are_fits_of_the_current_model(name):
    # sd-model calibrate writes the model's sha256 into the parameter file: an edited model
    # needs a refit (sd-model calibrate models/kazakhstan_calibration.yaml -o ...).
    doc = yaml.safe_load(PARAMS[name].read_text(encoding="utf-8"))
    sha = hashlib.sha256(FORECAST.read_bytes()).hexdigest()
    assert doc["model_sha256"] == sha, f"refit: {CALIBRATIONS[name].name} is stale"
    cal = yaml.safe_load(CALIBRATIONS[name].read_text(encoding="utf-8"))
    # The fitted values and the calibration's fixed overrides, nothing else.
    assert set(doc["set"]) == set(cal["params"]) | set(cal.get("fixed") or {})
    for key, spec in cal["params"].items():
        low, high = spec["bounds"] if isinstance(spec, dict) else spec
        assert low <= doc["set"][key] <= high, key


# --------------------------------------------------------------------------- conservation
@pytest.mark.parametrize("params", [{}, EVERYTHING_ON], ids=["baseline", "all-levers"])
def test_conservation_and_national_totals(model, baseline, params):
    ds = baseline if not params else run(model, params)
    gross = ds.gross_internal_migration.values
    assert np.all(np.abs(ds.net_migration.sum("Region").values) < 1e-8 * gross)
    assert np.all(np.abs(ds.net_migration_sum.values) < 1e-8 * gross)
    np.testing.assert_allclose(ds.in_migration.sum("Region"), ds.out_migration.sum("Region"))
    np.testing.assert_allclose(ds.total_population, ds.population.sum("Region"), rtol=1e-12)
    np.testing.assert_allclose(ds.gdp, ds.grp.sum("Region"), rtol=1e-12)
    nat_u = 1 - ds.employment.sum("Region") / ds.labour_force.sum("Region")
    np.testing.assert_allclose(ds.national_unemployment_rate, nat_u, rtol=1e-10)
    # The model's disparity indices agree with sd_model.metrics (design notes section 5).
    w = metrics.williamson_index(ds.income_per_capita, ds.population, dim="Region")
    np.testing.assert_allclose(ds.williamson_index, w, rtol=1e-9)
    t = metrics.theil_index(ds.income_per_capita, ds.population, dim="Region")
    np.testing.assert_allclose(ds.theil_index, t, rtol=1e-9)


def test_budget_closes(model):
    ds = run(model, EVERYTHING_ON, saveper=0.25)
    sub, wdr = ds.subvention.sum("Region"), ds.budget_withdrawal.sum("Region")
    # Equalisation is self-financing: need and own revenue have the same national total.
    np.testing.assert_allclose(sub, wdr, rtol=1e-9, atol=1e-9)
    ramp = ds.policy_ramp
    programmes = (
        ds.special_subsidy.sum("Region")
        + EVERYTHING_ON["transport programme"] * ramp
        + 20 * EVERYTHING_ON["abatement investment"] * ramp
        + ds.industrial_site_investment.sum("Region")
        + ds.loan_interest_subsidy.sum("Region")
        + ds.investment_incentive_subsidy.sum("Region")
    )
    balance = ds.national_revenue + wdr - sub - ds.base_national_spending - programmes
    np.testing.assert_allclose(ds.national_budget_balance, balance, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(
        ds.special_subsidy.sum("Region"), EVERYTHING_ON["special subsidy pool"] * ramp, rtol=1e-9
    )
    local = ds.own_revenue + ds.subvention - ds.budget_withdrawal + ds.special_subsidy
    np.testing.assert_allclose(ds.local_budget_spending, local, rtol=1e-12)
    # The National Fund integrates the balance (trapezoid rule on a quarterly grid).
    t = ds.time.values
    b = balance.values
    nf = np.concatenate([[0.0], np.cumsum(np.diff(t) * 0.5 * (b[1:] + b[:-1]))])
    scale = float(np.abs(ds.national_fund).max())
    np.testing.assert_allclose(ds.national_fund, nf, atol=1e-3 * scale)
    assert float(ds.national_fund[-1]) < 0  # the levers cost money


@pytest.mark.parametrize("params", [{}, EVERYTHING_ON], ids=["baseline", "all-levers"])
def test_stocks_stay_non_negative(model, baseline, params):
    ds = baseline if not params else run(model, params)
    for stock in STOCKS:
        # Solver noise of order rtol x scale is allowed around zero-valued stocks.
        assert float(ds[stock].min()) >= -1e-6 * max(1.0, float(ds[stock].max())), stock
    assert float(ds.unemployment_rate.min()) > 0
    assert float(ds.unemployment_rate.max()) < 0.5
    for var in ds.data_vars:
        if np.issubdtype(ds[var].dtype, np.floating):
            assert np.isfinite(ds[var].values).all(), var


def test_levers_ramp_in_without_jumps(model):
    ds = run(
        model, {"equalization transfer intensity": 1.0, "policy start year": 2030}, saveper=0.25
    )
    ramp = ds.policy_ramp
    assert float(ramp.sel(time=2030)) == 0.0
    assert float(ramp.sel(time=2033)) == 1.0
    assert float(np.abs(ramp.diff("time")).max()) <= 1.5 / 3 * 0.25 + 1e-12
    assert float(ds.subvention.sel(time=2029.75).sum()) == 0.0


# --------------------------------------------------------------------------- family member
@pytest.fixture(scope="module")
def symmetric(tmp_path_factory):
    """The same equations with 20 identical regions at equal distances: every data file
    replaced by its regional mean, and the distances by one value."""
    folder = tmp_path_factory.mktemp("sym")
    shutil.copytree(DATA, folder / "data")
    for path in (folder / "data").glob("series_*.csv"):
        df = pd.read_csv(path, index_col=0)
        if set(REGIONS) <= set(df.columns):
            df[REGIONS] = np.repeat(df[REGIONS].mean(axis=1).to_numpy()[:, None], 20, axis=1)
            df.to_csv(path)
    rc = pd.read_csv(folder / "data" / "region_constants.csv")
    numeric = [c for c in rc.columns if c not in ("region", "source")]
    rc[numeric] = np.tile(rc[numeric].mean().to_numpy(), (len(rc), 1))
    rc.to_csv(folder / "data" / "region_constants.csv", index=False)
    text = FORECAST.read_text(encoding="utf-8")
    off = ";\n\t".join(", ".join("0" if i == j else "1" for j in range(20)) for i in range(20))
    for name, value in (("distance", "500 * minimum distance"), ("off diagonal", off)):
        start = text.index(f"\n{name}[Region, Destination] =") + 1
        end = text.index("\t~", start)
        text = f"{text[:start]}{name}[Region, Destination] =\n\t{value}\n{text[end:]}"
    text = text.replace("FINAL TIME =\n\t2050", "FINAL TIME =\n\t2040")
    (folder / "symmetric.mdl").write_text(text, encoding="utf-8")
    return sd_model.load(folder / "symmetric.mdl")


def test_identical_regions_stay_identical(symmetric):
    ds = symmetric.run(
        {"special subsidy pool": 500.0, "transport programme": 500.0},
        method="RK45", backend="compiled", rtol=1e-8, atol=1e-8,
    )  # fmt: skip
    np.testing.assert_allclose(ds.williamson_index, 0.0, atol=1e-9)
    np.testing.assert_allclose(ds.theil_index, 0.0, atol=1e-12)
    assert float(np.abs(ds.net_migration).max()) < 1e-6 * float(ds.gross_internal_migration.max())
    for var in ("population", "capital", "employment", "income_per_capita", "emissions"):
        spread = ds[var].max("Region") - ds[var].min("Region")
        assert float((spread / ds[var].mean("Region")).max()) < 1e-9, var


# --------------------------------------------------------------------------- extreme conditions
def test_no_investment_capital_decays_exponentially(model):
    ds = run(model, {"investment multiplier": 0.0})
    t = ds.time.values - 2022
    k0 = ds.capital.isel(time=0).values
    expected = k0[None, :] * np.exp(-0.045 * t)[:, None]
    np.testing.assert_allclose(ds.capital, expected, rtol=1e-6)


def test_no_emissions_load_halves_every_half_life(model):
    ds = run(model, {"emission multiplier": 0.0})
    assert float(ds.total_emissions.max()) == 0.0
    t = ds.time.values - 2022
    load0 = ds.environmental_load.isel(time=0).values
    expected = load0[None, :] * 0.5 ** (t / 1.5)[:, None]
    np.testing.assert_allclose(ds.environmental_load, expected, rtol=1e-6)


def test_no_births_no_migration_population_dies_out_at_crude_death_rate(model):
    params = {
        "fertility multiplier": 0.0,
        "internal migration multiplier": 0.0,
        "external migration rate": 0.0,
        "trend migration multiplier": 0.0,
        "pollution mortality sensitivity": 0.0,
    }
    ds = run(model, params)
    assert float(np.abs(ds.net_migration).max()) == 0.0
    assert float(ds.gross_internal_migration.max()) == 0.0
    t = ds.time.values - 2022
    rate = ds.crude_death_rate.isel(time=0).values  # an INITIAL equation: constant in time
    expected = ds.population.isel(time=0).values[None, :] * np.exp(-rate[None, :] * t[:, None])
    np.testing.assert_allclose(ds.population, expected, rtol=1e-6)


def test_no_migration_regions_are_closed(model):
    ds = run(model, {"internal migration multiplier": 0.0})
    assert float(np.abs(ds.in_migration).max()) == 0.0
    assert float(np.abs(ds.net_migration).max()) == 0.0


# --------------------------------------------------------------------------- policy direction
def test_more_equalization_lowers_williamson(model, baseline):
    half = run(model, {"equalization transfer intensity": 0.5})
    full = run(model, {"equalization transfer intensity": 1.0})
    for year in (2030, 2040, 2050):
        w0, w1, w2 = (float(d.williamson_index.sel(time=year)) for d in (baseline, half, full))
        assert w2 < w1 < w0, year


def test_abatement_and_clean_technology_lower_emissions(model, baseline):
    ab = run(model, {"abatement investment[Pavlodar]": 50.0})
    pav = {"Region": "Pavlodar", "time": 2040}
    assert float(ab.emissions.sel(pav)) < float(baseline.emissions.sel(pav))
    assert float(ab.capture_fraction.sel(pav)) > float(baseline.capture_fraction.sel(pav))
    ct = run(model, {"clean technology rate": 0.02})
    assert float(ct.total_emissions.sel(time=2040)) < float(baseline.total_emissions.sel(time=2040))


@pytest.mark.parametrize(
    "lever",
    [
        "preferential loan rate discount",
        "investment incentive rate",
        "new industrial sites programme",
    ],
)
def test_investment_levers_raise_the_targeted_regions_capital(model, baseline, lever):
    value = 100.0 if lever == "new industrial sites programme" else 0.03
    ds = run(model, {f"{lever}[Turkistan]": value})
    sel = {"Region": "Turkistan", "time": 2040}
    assert float(ds.capital.sel(sel)) > float(baseline.capital.sel(sel))
    assert float(ds.grp.sel(sel)) > float(baseline.grp.sel(sel))
    assert float(ds.national_fund.sel(time=2040)) < 0


def test_transport_programme_raises_gross_migration(model, baseline):
    ds = run(model, {"transport programme": 1000.0})
    for year in (2030, 2050):
        assert float(ds.gross_internal_migration.sel(time=year)) > float(
            baseline.gross_internal_migration.sel(time=year)
        )


def test_special_subsidies_reach_lagging_regions(model, baseline):
    ds = run(model, {"special subsidy pool": 1000.0})
    pc = baseline.sel(time=2030)
    lagging = pc.income_per_capita < pc.income_per_capita.mean()  # rough check of targeting
    got = ds.special_subsidy.sel(time=2030)
    assert float(got.where(~lagging, 0).sum()) < float(got.where(lagging, 0).sum())
    assert float(ds.williamson_index.sel(time=2030)) < float(
        baseline.williamson_index.sel(time=2030)
    )


# --------------------------------------------------------------------------- numerics
def test_integration_error_between_solvers(model):
    ref = run(model, {}, method="RK45", rtol=1e-10, atol=1e-10, max_step=0.1)
    for kw in (
        {"method": "RK45", "rtol": 1e-6, "atol": 1e-6},
        {"method": "LSODA", "rtol": 1e-6, "atol": 1e-6},
        # The forecast scenarios' and fit's method (models/README.md, Fixed-step methods).
        {"method": "rk4", "time_step": 0.25},
    ):
        ds = run(model, {}, **kw)
        for stock in ("population", "capital", "employment", "environmental_load"):
            rel = np.abs(ds[stock] - ref[stock]) / np.abs(ref[stock])
            assert float(rel.max()) < 1e-3, (kw["method"], stock)


@pytest.mark.slow
def test_pysd_runtime_matches_compiled_backend(model, baseline, tmp_path):
    # The .mdl must translate and run in plain PySD (Vensim compatibility).
    import pysd

    shutil.copy(FORECAST, tmp_path / FORECAST.name)
    shutil.copytree(DATA, tmp_path / "data")  # GET DIRECT paths are relative to the model
    # PySD evaluates the subscripted equations through xarray (~0.1 s a right-hand side):
    # both comparisons stop at 2030, which exercises every equation at a third of the cost.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = pysd.read_vensim(str(tmp_path / FORECAST.name)).run(
            return_columns=["Total Population", "GDP", "Williamson Index"],
            final_time=2030,
        )
    assert out.index[-1] == 2030
    # Euler with dt = 0.25 vs RK45: close, not equal.
    np.testing.assert_allclose(
        out["Total Population"].loc[2030],
        float(baseline.total_population.sel(time=2030)),
        rtol=5e-3,
    )
    # Compare the backends at rtol 1e-6, where both take the same steps.
    kw: dict[str, Any] = {"method": "RK45", "rtol": 1e-6, "atol": 1e-6, "final_time": 2030}
    ds = model.run(with_fit(), backend="pysd", **kw)
    ref = model.run(with_fit(), backend="compiled", **kw)
    for var in ("population", "capital", "employment", "environmental_load", "net_migration"):
        scale = np.abs(ref[var]).max()
        assert float((np.abs(ds[var] - ref[var]) / scale).max()) < 1e-5, var


# --------------------------------------------------------------------------- scenarios
@pytest.mark.parametrize(
    "name",
    [
        "baseline",
        "equalization",
        "loans_incentives",
        "industrial_sites",
        "transport",
        "green",
        "hindcast",
    ],
)
def test_scenario_files_run(name):
    sc = sd_model.Scenario.from_yaml(ROOT / "scenarios" / f"{name}.yaml")
    assert sc.description
    ds = sc.run(backend="compiled")
    assert ds.time.values[-1] == (2022 if name == "hindcast" else 2050)
    assert np.isfinite(ds.population.values).all()
    np.testing.assert_allclose(
        ds.total_population.values, ds.population.values.sum(axis=1), rtol=1e-12
    )
    if name != "hindcast":
        # Every forecast starts from the 2022 statistics (levers act from the policy year).
        pop = _regional("population_avg_annual.csv", 2022)
        np.testing.assert_allclose(ds.population.sel(time=2022).values, pop, rtol=1e-12)


POLICY_SCENARIOS = (
    "baseline",
    "equalization",
    "loans_incentives",
    "industrial_sites",
    "transport",
    "green",
)


def test_every_forecast_scenario_declares_bands_over_draws_of_the_current_fit():
    # sd-model run writes bands for the baseline and every policy package, over the draws
    # sd-model calibrate wrote for the current model file (the forecast's draws.csv).
    specs = [
        sd_model.Scenario.from_yaml(ROOT / "scenarios" / f"{n}.yaml").uncertainty
        for n in POLICY_SCENARIOS
    ]
    assert all(spec == specs[0] for spec in specs)
    draws = pd.read_csv(specs[0]["draws"], index_col="draw")
    doc = yaml.safe_load(PARAMS["forecast"].read_text(encoding="utf-8"))
    assert specs[0]["draws"] == PARAMS["forecast"].parent.resolve() / doc["draws"]["file"]
    assert doc["draws"]["model_sha256"] == hashlib.sha256(FORECAST.read_bytes()).hexdigest()
    assert set(doc["draws"]["fitted"]) == set(doc["set"])
    assert set(draws.columns) == set(doc["set"]) | set(doc["draws"]["unfitted"])
    assert len(draws) == doc["draws"]["n"] >= specs[0]["n"]


def test_baseline_bands_start_from_the_data_and_widen(tmp_path):
    # The initial state is the 2022 statistics whatever the parameters, so every quantile of
    # population starts at the data; later the draws spread (TFP growth, birth trend, ...).
    sc = sd_model.Scenario.from_yaml(ROOT / "scenarios" / "baseline.yaml")
    sc = dataclasses.replace(sc, uncertainty={**sc.uncertainty, "n": 24})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = sc.run_with_bands(backend="compiled")
    pop = _regional("population_avg_annual.csv", 2022)
    band = ds.population_band.transpose("quantile", "time", "Region")
    np.testing.assert_allclose(band.sel(time=2022).values, np.tile(pop, (5, 1)), rtol=1e-12)
    assert np.all(np.diff(band.values, axis=0) >= 0)  # quantiles in order
    gdp = ds.gdp_band.sel(time=2050)
    assert float(gdp.sel(quantile=0.95) - gdp.sel(quantile=0.05)) > 0.1 * float(ds.gdp[-1])
    for name in sc.uncertainty["outputs"]:
        key = name.lower().replace(" ", "_") + "_band"
        assert key in ds and ds[key].sizes["quantile"] == 5, key


def test_sensitivity_sweep_reproduces_the_baseline_in_its_default_cell():
    sens = sd_model.sweep_scenario(ROOT / "scenarios" / "equalization_sensitivity.yaml")
    assert dict(sens["williamson_index"].sizes) == {
        "equalization_transfer_intensity": 3,
        "public_service_utility_weight": 4,
        "income_utility_weight": 3,
        "time": 29,
    }
    assert (sens["status"] == 0).all()
    default = sens.sel(
        equalization_transfer_intensity=0.0,
        public_service_utility_weight=0.1,
        income_utility_weight=0.5,
    )
    base = sd_model.Scenario.from_yaml(ROOT / "scenarios" / "baseline.yaml").run(backend="compiled")
    # One batched fixed-step (RK4) integration against a single run: the same steps, so equal
    # to rounding.
    np.testing.assert_allclose(default["williamson_index"], base["williamson_index"], rtol=1e-12)
    np.testing.assert_allclose(default["population"], base["population"], rtol=1e-12)


# --------------------------------------------------------------------------- hindcast
@pytest.fixture(scope="module")
def hindcast():
    sc = sd_model.Scenario.from_yaml(ROOT / "scenarios" / "hindcast.yaml")
    return sc.run(backend="compiled", method="RK45", rtol=1e-8, atol=1e-8)


def _observed(var: str) -> np.ndarray:
    """The series the model reads (year x region, 2010-2022), as the calibration uses them."""
    t = pd.read_csv(DATA / f"series_{var}.csv", index_col="year")[REGIONS]
    return t.reindex(index=range(2010, 2023)).to_numpy()


def _test_window_mape(ds, var: str, series: str) -> float:
    """Median over regions of the MAPE in the test window 2019-2022 (calibrated 2010-2018)."""
    sim = ds[var].sel(time=slice(2019, 2022)).values
    return float(np.median(metrics.mape(sim, _observed(series)[-4:], axis=0)))


@pytest.mark.slow
def test_hindcast_reproduces_history(hindcast):
    # The targets, in the window 2019-2022 left out of the calibration.
    assert _test_window_mape(hindcast, "population", "population") < 2.0
    assert _test_window_mape(hindcast, "employment", "employment") < 5.0
    assert _test_window_mape(hindcast, "grp", "grp_real") < 10.0
    # The issue: the sign of 2022 net migration right for most regions (here at least 15 of
    # 20). 2022 is the only migration year, so this is a consistency check, not a test.
    net = _regional("internal_migration.csv", 2022, "net")
    right = np.sign(hindcast.net_migration.sel(time=2022).values) == np.sign(net)
    assert right.sum() >= 15


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="documented shortfall against the design notes' suggested targets (models/README.md, "
    "Hindcast fit); if this passes, update the README",
)
@pytest.mark.parametrize("target", ["emissions MAPE < 15 %", "17 of 20 signs", "rank corr > 0.8"])
def test_hindcast_design_note_targets(hindcast, target):
    net = _regional("internal_migration.csv", 2022, "net")
    sim_net = hindcast.net_migration.sel(time=2022).values
    if target == "emissions MAPE < 15 %":
        assert _test_window_mape(hindcast, "emissions", "emissions") < 15.0
    elif target == "17 of 20 signs":
        assert (np.sign(sim_net) == np.sign(net)).sum() >= 17
    else:
        assert spearmanr(sim_net, net).statistic > 0.8
