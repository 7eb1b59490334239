"""The backtest table of models/README.md is what the current model and stored fits give.

``models/kazakhstan_backtest.py`` fits the model at each origin (minutes) and stores the
fits; this test re-runs the forecasts from them with the current model file and data,
re-scores them and compares the README table, so the table cannot go stale silently.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bt():
    spec = importlib.util.spec_from_file_location(
        "kazakhstan_backtest", ROOT / "models" / "kazakhstan_backtest.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["kazakhstan_backtest"] = module
    spec.loader.exec_module(module)
    return module


def test_naive_forecasts_follow_their_definitions(bt):
    # Linear and compound three-year trends, by hand.
    hist = pd.Series([100.0, 110.0, 120.0, 130.0], index=[2014, 2015, 2016, 2017])
    assert bt._trend(hist, 2017, 1, "level") == pytest.approx(140.0)
    assert bt._trend(hist, 2017, 3, "level") == pytest.approx(160.0)
    assert bt._trend(hist, 2017, 3, "growth") == pytest.approx(130.0 * 1.3)
    # A missing year (employment 2015 is not published): the trend spans what exists.
    gap = hist.drop(2014)
    assert bt._trend(gap, 2017, 2, "level") == pytest.approx(150.0)
    scored = bt.scores(
        pd.DataFrame(
            {
                "origin": [2018, 2018],
                "series": ["population", "population"],
                "region": ["Astana", "Astana"],
                "step": [1, 2],
                "method": ["no change", "no change"],
                "forecast": [1.0e6, 1.0e6],
            }
        )
    )
    pop = pd.read_csv(ROOT / "models" / "data" / "series_population.csv", index_col="year")
    actual = pop.loc[2019, "Astana"]
    first = scored[scored.step == 1].iloc[0]
    assert first.mape_pct == pytest.approx(100 * abs(actual - 1.0e6) / actual)
    changes = np.abs(np.diff(pop.loc[:2018, "Astana"].to_numpy()))
    assert first.mase == pytest.approx(abs(actual - 1.0e6) / changes.mean())


def test_readme_table_is_regenerated_from_the_current_model(bt):
    table = bt.backtest_table()
    text = (ROOT / "models" / "README.md").read_text(encoding="utf-8")
    assert bt.readme_block(text) == bt.markdown(table, bt.window_choices()), (
        "models/README.md backtest table is stale: run python models/kazakhstan_backtest.py"
    )


def test_inner_window_choice_follows_the_data(bt):
    # Growth rates that wander (a random walk): the last year's growth forecasts best.
    # Growth that is steady under year-to-year noise in the level: a longer span does.
    rng = np.random.default_rng(3)
    years = np.arange(2010, 2023)
    walk = 0.02 + np.cumsum(rng.normal(0, 0.01, (len(years), 8)), axis=0)
    wandering = pd.DataFrame(1e6 * np.exp(np.cumsum(walk, axis=0)), index=years)
    steady = pd.DataFrame(
        1e6 * np.exp(0.02 * (years - 2010)[:, None] + rng.normal(0, 0.01, (len(years), 8))),
        index=years,
    )
    assert bt.inner_window_choice(2021, population=wandering)[0] == 1
    assert bt.inner_window_choice(2021, population=steady)[0] == 3
    # Only data to the last year is used: a change after it does not move the choice.
    later = wandering.copy()
    later.loc[2020:] *= 5.0
    assert bt.inner_window_choice(2019, population=later) == bt.inner_window_choice(
        2019, population=wandering
    )
    # Nothing to score before the longest window has an inner origin.
    with pytest.raises(ValueError, match="no inner forecast"):
        bt.inner_window_choice(2013, population=steady)


def test_the_model_uses_the_migration_window_the_inner_backtest_chooses(bt):
    # At every backtest origin and for the forecast (its window ends the year before the
    # census re-basing of the base year 2022), the data to the window's end choose the span
    # the model's migration trend uses.
    import warnings

    import sd_model

    model = sd_model.load(ROOT / "models" / "kazakhstan_regions.mdl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = model.run(initial_time=2022, final_time=2023, backend="compiled")
    start = ds.isel(time=0)
    assert float(start.trend_window_end) == bt.CENSUS_YEAR - 1
    used = int(start.migration_trend_years)
    for last_year in (*bt.ORIGINS, int(start.trend_window_end)):
        chosen, mape = bt.inner_window_choice(last_year)
        assert chosen == used, (last_year, mape)
