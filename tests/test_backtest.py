"""Rolling-origin backtests: layout, benchmarks computed by hand, a model that is right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sd_model
from sd_model.calibrate import CalibrationError

MODELS = Path(__file__).parent / "models"


@pytest.fixture(scope="module")
def setup() -> tuple[sd_model.Model, pd.Series, sd_model.Backtest]:
    model = sd_model.load(MODELS / "logistic.mdl")
    y = model.run({"r": 0.7, "K": 800, "P0": 15})["p_1"].to_series()
    bt = sd_model.backtest(
        model,
        {"P": y},
        {"r": (0.1, 2.0), "K": (100.0, 5000.0)},
        fixed={"P0": 15},
        origins=[8, 12],
        horizon=4,
        seed=1,
    )
    return model, y, bt


def test_forecasts_table_has_every_origin_method_and_step(setup: tuple) -> None:
    _, y, bt = setup
    f = bt.forecasts
    assert set(f["method"]) == {"model", "no_change", "trend"}
    for origin in (8.0, 12.0):
        part = f[(f["origin"] == origin) & (f["method"] == "model")]
        assert part["step"].tolist() == [1, 2, 3, 4]
        assert part["time"].tolist() == [origin + h for h in (1, 2, 3, 4)]
        assert part["observed"].to_numpy() == pytest.approx(y.loc[origin + 1 : origin + 4].values)


def test_benchmarks_are_the_naive_and_drift_forecasts(setup: tuple) -> None:
    _, y, bt = setup
    f = bt.forecasts
    origin = 8.0
    train = y.loc[:origin]
    naive = f[(f["origin"] == origin) & (f["method"] == "no_change")]["forecast"]
    assert (naive == train.iloc[-1]).all()
    drift = f[(f["origin"] == origin) & (f["method"] == "trend")]["forecast"].to_numpy()
    slope = (train.iloc[-1] - train.iloc[0]) / (train.index[-1] - train.index[0])
    assert drift == pytest.approx(train.iloc[-1] + slope * np.arange(1, 5))


def test_a_correct_model_beats_the_benchmarks(setup: tuple) -> None:
    _, y, bt = setup
    s = bt.scores
    model_rows = s[s["method"] == "model"]
    assert (model_rows["mase"] < 1e-4).all()  # noise-free data: the model is exact
    assert (s[s["method"] != "model"]["mase"] > 0.1).all()
    # MASE of the naive forecast by hand (Hyndman & Koehler 2006).
    origin = 12.0
    train = y.loc[:origin].to_numpy()
    test = y.loc[origin + 1 : origin + 4].to_numpy()
    expected = np.mean(np.abs(test - train[-1])) / np.mean(np.abs(np.diff(train)))
    row = s[(s["origin"] == origin) & (s["method"] == "no_change")]
    assert float(row["mase"].iloc[0]) == pytest.approx(expected)
    summary = bt.summary()
    assert set(summary.columns) == {"series", "method", "mape_pct", "mase"}
    assert bt.params["r"].to_numpy() == pytest.approx([0.7, 0.7], rel=1e-6)


def test_backtest_plot_and_bad_input(setup: tuple) -> None:
    import matplotlib

    matplotlib.use("Agg")
    model, y, bt = setup
    fig = bt.plot()
    assert len(fig.axes[0].get_lines()) >= 7  # data + 3 methods x 2 origins
    import matplotlib.pyplot as plt

    plt.close(fig)
    with pytest.raises(CalibrationError, match="no data after it"):
        sd_model.backtest(model, {"P": y}, {"r": (0.1, 2)}, origins=[20], horizon=2)
    with pytest.raises(CalibrationError, match="Unknown benchmark"):
        sd_model.backtest(
            model, {"P": y}, {"r": (0.1, 2)}, origins=[5], horizon=2, benchmarks=["arima"]
        )
    with pytest.raises(CalibrationError, match="horizon must be a positive integer"):
        sd_model.backtest(model, {"P": y}, {"r": (0.1, 2)}, origins=[5], horizon=0)
