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
    assert bt.readme_block(text) == bt.markdown(table), (
        "models/README.md backtest table is stale: run python models/kazakhstan_backtest.py"
    )
