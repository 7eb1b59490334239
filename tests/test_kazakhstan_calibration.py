"""The Kazakhstan model's calibration files, and re-basing on newer data (a data update).

Truths are set by the tests: a synthetic year appended to the data files must become the
model's initial state when the model starts in that year, and the unmodified calibration and
scenario files must move to it (the fitting window ends in it, the scenario starts in it).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import sd_model
from sd_model.calibrate.config import CalibrationFile, cmd_calibrate

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
SYNTHETIC = 2023  # the data end in 2022


@pytest.mark.parametrize("name", ["kazakhstan_calibration", "kazakhstan_hindcast_calibration"])
def test_calibration_files_name_the_models_constants(name):
    cfg = CalibrationFile.from_yaml(MODELS / f"{name}.yaml")
    model = sd_model.load(cfg.model)
    assert isinstance(cfg.data, dict)
    # Six observed series for each of the 20 regions, all of them model variables.
    assert len(cfg.data) == 6 * 20
    resolved = model.normalize_params({k: 0.0 for k in cfg.params})
    assert len(resolved) == len({k.split("[")[0] for k in cfg.params})
    first, last = cfg.time["initial_time"], cfg.time["final_time"]
    for series in cfg.data.values():
        assert series.index.min() >= first and series.index.max() <= last


@pytest.fixture(scope="module")
def rebased(tmp_path_factory) -> Path:
    """A copy of models/ with a synthetic 2023 appended to every data series."""
    folder = tmp_path_factory.mktemp("rebase") / "models"
    shutil.copytree(MODELS, folder, ignore=shutil.ignore_patterns("params", "__pycache__"))
    for path in (folder / "data").glob("series_*.csv"):
        df = pd.read_csv(path, index_col="year")
        new = df.loc[[2022]].copy()
        new.index = [SYNTHETIC]
        numeric = [c for c in df.columns if c not in ("unit", "source")]
        new[numeric] = new[numeric] * 1.02  # every series 2 % above 2022
        if path.name == "series_population.csv":
            new["Astana"] = df.loc[2022, "Astana"] * 1.10  # and a jump in Astana
        pd.concat([df, new]).rename_axis("year").to_csv(path)
    return folder


def test_appending_a_year_moves_the_initial_state(rebased):
    model = sd_model.load(rebased / "kazakhstan_regions.mdl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = model.run(initial_time=SYNTHETIC, final_time=SYNTHETIC + 2, backend="compiled")
    start = ds.sel(time=SYNTHETIC)
    data = {
        f: pd.read_csv(rebased / "data" / f"series_{f}.csv", index_col="year").loc[SYNTHETIC]
        for f in ("population", "grp_real", "employment", "emissions")
    }
    data["capital"] = perpetual_inventory(rebased).loc[SYNTHETIC]
    regions = list(ds.Region.values)
    np.testing.assert_allclose(start.population, data["population"][regions].astype(float))
    np.testing.assert_allclose(start.grp, data["grp_real"][regions].astype(float))
    np.testing.assert_allclose(start.employment, data["employment"][regions].astype(float))
    np.testing.assert_allclose(start.capital, data["capital"][regions].astype(float))
    np.testing.assert_allclose(start.emissions, data["emissions"][regions].astype(float))
    assert float(start.base_year) == SYNTHETIC


def perpetual_inventory(folder: Path) -> pd.DataFrame:
    """Capital by the rule the model documents, computed here year by year: K_2010 =
    mean(I_2010..2012) / (0.04 + 0.045) (Harberger), then K_t = 0.955 K_t-1 + I_t."""
    inv = pd.read_csv(folder / "data" / "series_investment_nonresource.csv", index_col="year")
    inv = inv.drop(columns=["unit", "source"]).astype(float)
    rows = {2010: inv.loc[2010:2012].mean() / (0.04 + 0.045)}
    for year in inv.index[inv.index > 2010]:
        rows[year] = 0.955 * rows[year - 1] + inv.loc[year]
    return pd.DataFrame(rows).T


def test_capital_is_the_perpetual_inventory_of_the_investment_data(rebased):
    # No capital data: the initial capital of any base year, the appended one included,
    # is the perpetual inventory of the investment series.
    model = sd_model.load(rebased / "kazakhstan_regions.mdl")
    expected = perpetual_inventory(rebased)
    for year in (2010, 2015, 2022, SYNTHETIC):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = model.run(initial_time=year, final_time=year + 1, backend="compiled")
        capital = ds.capital.isel(time=0).to_pandas()
        np.testing.assert_allclose(capital, expected.loc[year, capital.index], rtol=1e-12)


def test_the_migration_trend_follows_the_new_year(rebased):
    # Re-based on 2023, the migration window is 2022-2023 (the last year's change; it never
    # spans the census re-basing of 2022), so net migration plus natural increase is the
    # growth written into the new year: ln 1.10 in Astana, ln 1.02 elsewhere (demographic
    # balancing equation).
    model = sd_model.load(rebased / "kazakhstan_regions.mdl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = model.run(initial_time=SYNTHETIC, final_time=SYNTHETIC + 1, backend="compiled")
    start = ds.isel(time=0)
    assert (float(start.migration_window_start), float(start.trend_window_end)) == (
        SYNTHETIC - 1,
        SYNTHETIC,
    )
    growth = (
        start.recent_net_migration_rate
        + start.crude_birth_rate * start.window_birth_ratio
        - start.crude_death_rate * start.window_death_ratio
    ).to_pandas()
    expected = pd.Series(np.log(1.02), index=growth.index)
    expected["Astana"] = np.log(1.10)
    np.testing.assert_allclose(growth, expected, rtol=1e-9)


def test_a_scenario_file_starts_in_the_new_year(rebased):
    # An unmodified copy of the baseline scenario, beside the copy of models/: its
    # `time: initial` follows the data to the synthetic year.
    scenarios = rebased.parent / "scenarios"
    scenarios.mkdir(exist_ok=True)
    shutil.copy(ROOT / "scenarios" / "baseline.yaml", scenarios / "baseline.yaml")
    params = rebased / "params" / "forecast"
    if not params.exists():
        shutil.copytree(MODELS / "params" / "forecast", params)
    scenario = sd_model.Scenario.from_yaml(scenarios / "baseline.yaml")
    assert scenario.time["initial_time"] == SYNTHETIC
    assert scenario.time["final_time"] == 2050
    # and today's file starts in the last year of today's data
    today = sd_model.Scenario.from_yaml(ROOT / "scenarios" / "baseline.yaml")
    last = pd.read_csv(MODELS / "data" / "series_population.csv")["year"].max()
    assert today.time["initial_time"] == last == SYNTHETIC - 1


def test_the_fitting_window_follows_the_data(rebased):
    # Today's data end in 2022, the census re-basing year: a window ending there would
    # hold 2022 alone, so it ends in 2021 (the file's `breaks: [2022]`). With 2023 appended
    # the window ends in 2023 and starts at the break, never spanning it.
    today = CalibrationFile.from_yaml(MODELS / "kazakhstan_calibration.yaml")
    assert (today.time["initial_time"], today.time["final_time"]) == (2015, 2021)
    moved = CalibrationFile.from_yaml(rebased / "kazakhstan_calibration.yaml")
    assert (moved.time["initial_time"], moved.time["final_time"]) == (2022, SYNTHETIC)
    assert isinstance(moved.data, dict)
    for series in moved.data.values():
        assert list(series.index) == [2022, SYNTHETIC]


@pytest.mark.slow
def test_one_command_refits_on_the_moved_window(rebased, tmp_path):
    # The forecast's calibration file as it is (only the data have a new year): the one
    # command fits on the window that ends in the new year and writes the parameter file
    # for the re-based model.
    path = rebased / "kazakhstan_calibration.yaml"
    assert path.read_text(encoding="utf-8") == (MODELS / path.name).read_text(encoding="utf-8")
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))

    class Args:
        file = str(path)
        output = str(tmp_path / "fit")
        posterior = bands = False
        quiet = True
        seed = None

    assert cmd_calibrate(Args()) == 0
    fitted = yaml.safe_load((tmp_path / "fit" / "params.yaml").read_text())
    assert set(fitted["set"]) == set(doc["params"])
    report = pd.read_csv(tmp_path / "fit" / "fit_report.csv")
    # The synthetic year is in the fit: the window is 2022-2023 (it starts at the census
    # break), so every series of every region has its two points.
    assert (report["n"] == 2).all()
    assert len(report) == 6 * 20
