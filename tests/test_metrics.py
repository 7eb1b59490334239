"""Tests of sd_model.metrics against hand-computed values and known identities."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from sd_model import metrics


def test_equal_incomes_give_zero_disparity():
    y = np.full(20, 3.7)
    pop = np.arange(1.0, 21.0)
    assert metrics.coefficient_of_variation(y) == pytest.approx(0.0, abs=1e-15)
    assert metrics.williamson_index(y, pop) == pytest.approx(0.0, abs=1e-15)
    assert metrics.theil_index(y, pop) == pytest.approx(0.0, abs=1e-15)
    assert metrics.theil_l(y, pop) == pytest.approx(0.0, abs=1e-15)
    assert metrics.gini(y, pop) == pytest.approx(0.0, abs=1e-15)
    assert metrics.max_min_ratio(y) == pytest.approx(1.0)


def test_hand_computed_two_region_values():
    # y = (1, 3), populations (3, 1): weights (3/4, 1/4), weighted mean 3/2,
    # weighted variance 3/4*1/4 + 1/4*9/4 = 3/4, so V_w = sqrt(3)/2 / (3/2) = 1/sqrt(3).
    y = np.array([1.0, 3.0])
    pop = np.array([3.0, 1.0])
    assert metrics.williamson_index(y, pop) == pytest.approx(1.0 / np.sqrt(3.0))
    # Theil T = 3/4 * (2/3) ln(2/3) + 1/4 * 2 ln 2
    expected_t = 0.75 * (2 / 3) * np.log(2 / 3) + 0.25 * 2 * np.log(2.0)
    assert metrics.theil_index(y, pop) == pytest.approx(expected_t)
    # Theil L = 3/4 ln(3/2) + 1/4 ln(1/2)
    assert metrics.theil_l(y, pop) == pytest.approx(0.75 * np.log(1.5) + 0.25 * np.log(0.5))
    # Gini = 2 * (3/4)(1/4) * 2 / (2 * 3/2) = 1/4
    assert metrics.gini(y, pop) == pytest.approx(0.25)
    # Unweighted CV with the population (ddof=0) std: std = 1, mean = 2.
    assert metrics.coefficient_of_variation(y) == pytest.approx(0.5)
    assert metrics.coefficient_of_variation(y, ddof=1) == pytest.approx(np.sqrt(2.0) / 2.0)


def test_gini_of_known_two_point_distribution():
    # A share p has everything, the rest nothing: Gini = 1 - p.
    for p in (0.1, 0.25, 0.5):
        assert metrics.gini(np.array([0.0, 1.0]), np.array([1 - p, p])) == pytest.approx(1 - p)


def test_theil_t_upper_bound_and_equivalent_share_form():
    rng = np.random.default_rng(1)
    y = rng.lognormal(size=20)
    pop = rng.uniform(1.0, 5.0, size=20)
    pi = pop / pop.sum()
    s = pi * y / (pi * y).sum()
    # T = sum s_i ln(s_i / pi_i) and L = sum pi_i ln(pi_i / s_i) (design notes, section 5).
    assert metrics.theil_index(y, pop) == pytest.approx(np.sum(s * np.log(s / pi)))
    assert metrics.theil_l(y, pop) == pytest.approx(np.sum(pi * np.log(pi / s)))
    assert 0.0 < metrics.theil_index(y, pop) < np.log(1.0 / pi.min())


def test_indices_are_scale_invariant():
    rng = np.random.default_rng(2)
    y = rng.lognormal(size=20)
    pop = rng.uniform(1.0, 5.0, size=20)
    for f in (metrics.williamson_index, metrics.theil_index, metrics.theil_l, metrics.gini):
        assert f(7.5 * y, pop) == pytest.approx(f(y, pop))
        assert f(y, 3.0 * pop) == pytest.approx(f(y, pop))


def test_vectorized_over_time_and_xarray_dims():
    rng = np.random.default_rng(3)
    y = rng.lognormal(size=(5, 20))
    pop = rng.uniform(1.0, 5.0, size=(5, 20))
    rows = np.array([metrics.williamson_index(y[t], pop[t]) for t in range(5)])
    assert np.allclose(metrics.williamson_index(y, pop, axis=1), rows)
    da_y = xr.DataArray(y, dims=("time", "Region"), coords={"time": np.arange(2020, 2025)})
    da_p = xr.DataArray(pop.T, dims=("Region", "time"), coords={"time": np.arange(2020, 2025)})
    w = metrics.williamson_index(da_y, da_p, dim="Region")
    assert w.dims == ("time",)
    assert np.allclose(w.values, rows)
    g = metrics.gini(da_y, da_p, dim="Region")
    assert np.allclose(g.values, [metrics.gini(y[t], pop[t]) for t in range(5)])


def test_mape_and_rmspe_hand_values():
    s = np.array([110.0, 90.0, 100.0, 130.0])
    a = np.array([100.0, 100.0, 100.0, 100.0])
    assert metrics.mape(s, a) == pytest.approx((10 + 10 + 0 + 30) / 4)
    assert metrics.rmspe(s, a) == pytest.approx(100 * np.sqrt((0.01 + 0.01 + 0 + 0.09) / 4))


def test_fit_statistics_skip_missing_years():
    s = np.array([110.0, 999.0, 90.0])
    a = np.array([100.0, np.nan, 100.0])
    assert metrics.mape(s, a) == pytest.approx(10.0)


def test_theil_decomposition_sums_to_one_and_matches_mse():
    rng = np.random.default_rng(4)
    a = rng.normal(10.0, 2.0, size=(3, 13))
    s = 0.8 * a + rng.normal(1.0, 0.5, size=(3, 13))
    d = metrics.theil_u_decomposition(s, a, axis=1)
    assert np.allclose(d["um"] + d["us"] + d["uc"], 1.0)
    assert np.allclose(d["mse"], np.mean((s - a) ** 2, axis=1))
    # Pure bias, pure amplitude and pure phase errors land in um, us and uc respectively.
    t = np.linspace(0.0, 2 * np.pi, 200, endpoint=False)
    base = np.sin(t)
    assert metrics.theil_u_decomposition(base + 1.0, base)["um"] == pytest.approx(1.0)
    assert metrics.theil_u_decomposition(2.0 * base, base)["us"] == pytest.approx(1.0)
    assert metrics.theil_u_decomposition(-base, base)["uc"] == pytest.approx(1.0)


def test_theil_u1_bounds():
    a = np.array([1.0, 2.0, 3.0])
    assert metrics.theil_u1(a, a) == 0.0
    assert metrics.theil_u1(-a, a) == pytest.approx(1.0)
    # S = (2, 2, 2), A = (1, 2, 3): RMSE = sqrt(2/3), sqrt(mean S^2) = 2,
    # sqrt(mean A^2) = sqrt(14/3).
    s = np.full(3, 2.0)
    expected = np.sqrt(2 / 3) / (2.0 + np.sqrt(14 / 3))
    assert metrics.theil_u1(s, a) == pytest.approx(expected)


def test_unweighted_indices_of_one_to_four():
    # y = (1, 2, 3, 4), equal weights: mean 5/2, population std sqrt(5/4).
    y = np.array([1.0, 2.0, 3.0, 4.0])
    # Gini = sum_ij |y_i - y_j| / (2 n^2 mean): the ordered pairs' differences sum to 20.
    assert metrics.gini(y) == pytest.approx(20.0 / (2 * 16 * 2.5))
    assert metrics.coefficient_of_variation(y) == pytest.approx(np.sqrt(1.25) / 2.5)
    # With equal populations the Williamson index is that CV.
    assert metrics.williamson_index(y, np.ones(4)) == pytest.approx(np.sqrt(1.25) / 2.5)
    # Theil T = (1/n) sum r ln r and L = (1/n) sum ln(1/r), r = y / mean.
    t = (0.4 * np.log(0.4) + 0.8 * np.log(0.8) + 1.2 * np.log(1.2) + 1.6 * np.log(1.6)) / 4
    assert metrics.theil_index(y) == pytest.approx(t)
    el = -(np.log(0.4) + np.log(0.8) + np.log(1.2) + np.log(1.6)) / 4
    assert metrics.theil_l(y) == pytest.approx(el)


def test_xarray_fit_statistics_align_on_time():
    years = np.arange(2010, 2015)
    # Simulated: region a overshoots by 10 %, 20 %, 30 %, 40 %, 50 % of 100; b is exact.
    sim_a = 100.0 * (1.0 + 0.1 * np.arange(1, 6))
    sim = xr.DataArray(
        np.stack([sim_a, np.full(5, 100.0)], axis=1),
        dims=("time", "Zone"),
        coords={"time": years, "Zone": ["a", "b"]},
    )
    # Observed only in 2011-2013 and with the dims the other way round.
    act = xr.DataArray(
        np.full((2, 3), 100.0),
        dims=("Zone", "time"),
        coords={"time": years[1:4], "Zone": ["a", "b"]},
    )
    out = metrics.mape(sim, act, dim="time")
    assert out.dims == ("Zone",)
    # 2011-2013 only: errors of 20, 30 and 40 % in a, none in b.
    assert np.allclose(out.values, [30.0, 0.0])
    rmspe = metrics.rmspe(sim, act, dim="time")
    assert np.allclose(rmspe.values, [100 * np.sqrt((0.04 + 0.09 + 0.16) / 3), 0.0])


def test_xarray_requires_dim():
    with pytest.raises(ValueError, match=r"dim= is required.*dims are 'time'"):
        metrics.mape(xr.DataArray([1.0], dims="time"), xr.DataArray([1.0], dims="time"))
    with pytest.raises(ValueError, match=r"No dim 'Region'.*dims are 'time', 'Zone'"):
        metrics.gini(xr.DataArray(np.ones((2, 3)), dims=("time", "Zone")), dim="Region")
