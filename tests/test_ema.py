"""`to_ema` against the EMA Workbench itself: PRIM and feature scoring on a real sweep.

The sweep is of tests/models/screening.mdl, whose stocks are known in closed form:
with Euler steps of one year from 0, ``total[r](t) = t * (rate[r] + bonus^2)``. So at
t = 10, ``total[North] > 15`` exactly when ``rate[North] > 1.5 - bonus^2``, which for
``bonus`` in [0, 0.1] is ``rate[North]`` above 1.49 to 1.5, whatever the other
parameters; and ``inert`` enters no equation at all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from ema_workbench.analysis import feature_scoring, prim

import sd_model
from sd_model.ema import to_ema

SCREENING = Path(__file__).resolve().parent / "models" / "screening.mdl"
SAMPLES = {
    "method": "lhs",
    "n": 400,
    "seed": 3,
    "parameters": {
        "rate[North]": [0, 2],
        "rate[South]": [0, 2],
        "bonus": [0, 0.1],
        "inert": [0, 1],
    },
}
COLUMNS = ["bonus", "inert", "rate_North", "rate_South"]  # sampled parameters: by name


@pytest.fixture(scope="module")
def swept() -> xr.Dataset:
    model = sd_model.load(SCREENING)
    return sd_model.sweep(model, samples=SAMPLES, outputs=["total", "grand total"])


def test_experiments_and_outcomes_are_what_the_model_computes(swept: xr.Dataset) -> None:
    experiments, outcomes = to_ema(swept, at_time=10)
    assert list(experiments.columns) == COLUMNS
    assert (experiments.dtypes == np.float64).all() and len(experiments) == 400
    expected = 10 * (experiments["rate_North"] + experiments["bonus"] ** 2)
    np.testing.assert_allclose(outcomes["total[North]"], expected, rtol=1e-12)
    np.testing.assert_allclose(
        outcomes["grand_total"], outcomes["total[North]"] + outcomes["total[South]"]
    )


def test_prim_finds_the_box_of_the_known_rule(swept: xr.Dataset) -> None:
    experiments, outcomes = to_ema(swept, at_time=10)
    y = outcomes["total[North]"] > 15
    box = prim.Prim(experiments, y, threshold=0.8).find_box()
    lims = box.box_lim
    # Only rate[North] is restricted, from below, near 1.49-1.5 (PRIM peels 5 % of the
    # points at a time, so the edge lands on a sample point within a peel of the truth).
    assert 1.45 <= lims.loc[0, "rate_North"] <= 1.56
    assert lims.loc[1, "rate_North"] == experiments["rate_North"].max()
    for col in ("rate_South", "bonus", "inert"):
        assert lims.loc[0, col] == experiments[col].min()
        assert lims.loc[1, col] == experiments[col].max()
    stats = box.peeling_trajectory.iloc[box._cur_box]
    assert stats["res_dim"] == 1
    assert stats["density"] == 1.0  # every point of the box is of interest
    assert stats["coverage"] >= 0.9


def test_prim_on_time_series_outcomes_through_setup_prim(swept: xr.Dataset) -> None:
    # EMA's own entry point: results as (experiments, outcomes), a classify function
    # over the time series (here the last saved time, t = 10).
    experiments, outcomes = to_ema(swept)
    assert outcomes["total[South]"].shape == (400, 11)
    np.testing.assert_array_equal(outcomes["TIME"][0], np.arange(11.0))

    def classify(out: dict[str, np.ndarray]) -> np.ndarray:
        return out["total[South]"][:, -1] > 15

    box = prim.setup_prim((experiments, outcomes), classify, threshold=0.8).find_box()
    assert 1.45 <= box.box_lim.loc[0, "rate_South"] <= 1.56
    assert box.box_lim.loc[0, "rate_North"] == experiments["rate_North"].min()


def test_feature_scores_rank_the_parameters_each_outcome_depends_on(swept: xr.Dataset) -> None:
    experiments, outcomes = to_ema(swept, at_time=10)
    scores = feature_scoring.get_feature_scores_all(experiments, outcomes, random_state=1)
    assert set(scores.index) == set(COLUMNS)
    assert set(scores.columns) == set(outcomes)
    north, south = scores["total[North]"], scores["total[South]"]
    # Each region's stock is all its own rate (bonus adds at most 0.1 of 20).
    assert north.idxmax() == "rate_North" and north["rate_North"] > north.drop("rate_North").sum()
    assert south.idxmax() == "rate_South" and south["rate_South"] > south.drop("rate_South").sum()
    # The grand total depends on both rates equally, and on 'inert' not at all.
    grand = scores["grand_total"]
    assert set(grand.nlargest(2).index) == {"rate_North", "rate_South"}
    assert grand["inert"] < grand["rate_North"] / 4
    np.testing.assert_allclose(grand["rate_North"], grand["rate_South"], rtol=0.25)


def test_a_sweep_read_back_from_its_store_gives_the_same_analysis(
    swept: xr.Dataset, tmp_path: Path
) -> None:
    store = tmp_path / "sweep.zarr"
    sd_model.sweep(SCREENING, samples=SAMPLES, outputs=["total"], store=store, progress=False)
    lazy = sd_model.open_results(store)
    experiments, outcomes = to_ema(lazy, at_time=10)
    ref_exp, ref_out = to_ema(swept, outcomes=["total"], at_time=10)
    np.testing.assert_array_equal(experiments.values, ref_exp.values)
    np.testing.assert_array_equal(outcomes["total[North]"], ref_out["total[North]"])
    box = prim.Prim(experiments, outcomes["total[North]"] > 15, threshold=0.8).find_box()
    ref = prim.Prim(ref_exp, ref_out["total[North]"] > 15, threshold=0.8).find_box()
    np.testing.assert_array_equal(box.box_lim.values, ref.box_lim.values)
