"""Sweep designs: the defining properties of each sampler, seeds, distributions, grid axes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from sd_model import ScenarioError, SDModelWarning
from sd_model.sampling import SAMPLE_METHODS, Distribution, SampleSpec, draw, grid_axis, unit_sample


@pytest.mark.parametrize(("n", "d"), [(1, 1), (7, 3), (50, 5), (256, 2)])
def test_lhs_one_point_per_stratum(n: int, d: int) -> None:
    u = unit_sample("lhs", n, d, seed=11)
    assert u.shape == (n, d)
    for k in range(d):
        strata = np.floor(u[:, k] * n).astype(int)
        assert sorted(strata.tolist()) == list(range(n)), f"column {k}"


def test_lhs_stratification_survives_the_distribution() -> None:
    # The inverse CDF is monotone, so strata of probability stay strata.
    n = 40
    spec = SampleSpec.from_mapping(
        {
            "method": "lhs",
            "n": n,
            "seed": 5,
            "parameters": {
                "a": {"dist": "normal", "mean": 2.0, "std": 0.5},
                "b": {"dist": "triangular", "lower": 0, "mode": 1, "upper": 4},
                "c": {"dist": "lognormal", "mu": 0.0, "sigma": 1.0, "lower": 0.5, "upper": 3},
            },
        }
    )
    values = draw(spec)
    probs = {
        "a": stats.norm(2.0, 0.5).cdf(values["a"]),
        "b": stats.triang(c=0.25, loc=0, scale=4).cdf(values["b"]),
    }
    ln = stats.lognorm(s=1.0)
    lo, hi = ln.cdf(0.5), ln.cdf(3)
    probs["c"] = (ln.cdf(values["c"]) - lo) / (hi - lo)
    for name, p in probs.items():
        strata = np.floor(np.clip(p, 0, 1 - 1e-12) * n).astype(int)
        assert sorted(strata.tolist()) == list(range(n)), name


@pytest.mark.parametrize("m", [3, 6, 8])
def test_sobol_balance(m: int) -> None:
    n = 2**m
    u = unit_sample("sobol", n, 4, seed=3)
    # every coordinate: exactly n / 2^k points in each dyadic interval of width 2^-k
    for k in range(m + 1):
        for col in range(4):
            counts = np.bincount(np.floor(u[:, col] * 2**k).astype(int), minlength=2**k)
            assert np.all(counts == n // 2**k), (k, col)
    # the first two coordinates form a (0, m, 2)-net: one point per elementary box of area 1/n
    for a in range(m + 1):
        boxes = np.floor(u[:, 0] * 2**a).astype(int) * 2 ** (m - a) + np.floor(
            u[:, 1] * 2 ** (m - a)
        ).astype(int)
        assert sorted(boxes.tolist()) == list(range(n)), a


def test_sobol_size_not_power_of_two_warns() -> None:
    with pytest.warns(SDModelWarning, match="power of 2"):
        u = unit_sample("sobol", 10, 2, seed=0)
    assert u.shape == (10, 2)


@pytest.mark.parametrize("method", SAMPLE_METHODS)
def test_seeds_reproduce_and_differ(method: str) -> None:
    a = unit_sample(method, 32, 3, seed=42)  # type: ignore[arg-type]
    b = unit_sample(method, 32, 3, seed=42)  # type: ignore[arg-type]
    c = unit_sample(method, 32, 3, seed=43)  # type: ignore[arg-type]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all((a >= 0) & (a < 1))


def test_unseeded_spec_gets_a_recorded_seed() -> None:
    spec = SampleSpec.from_mapping({"n": 4, "parameters": {"x": [0, 1]}})
    assert spec.seed is None
    r1, r2 = spec.resolved(), spec.resolved()
    assert r1.seed is not None and r1.seed != r2.seed
    np.testing.assert_array_equal(draw(r1)["x"], draw(r1)["x"])
    assert r1.to_json()["seed"] == r1.seed


@settings(max_examples=40, deadline=None)
@given(
    lo=st.floats(-1e3, 1e3),
    width=st.floats(1e-3, 1e3),
    mean_shift=st.floats(-3, 3),
    seed=st.integers(0, 2**32),
    method=st.sampled_from(SAMPLE_METHODS),
)
def test_bounds_are_respected(
    lo: float, width: float, mean_shift: float, seed: int, method: str
) -> None:
    hi = lo + width
    params = {
        "u": {"dist": "uniform", "lower": lo, "upper": hi},
        "t": {"dist": "triangular", "lower": lo, "mode": lo + width / 3, "upper": hi},
        "n": {
            "dist": "normal",
            "mean": lo + width / 2 + mean_shift * width / 4,
            "std": width / 4,
            "lower": lo,
            "upper": hi,
        },
        "l": {"dist": "lognormal", "mu": 0.0, "sigma": 1.0, "upper": 5.0},
        "d": {"dist": "discrete", "values": [lo, hi, lo + width / 2], "weights": [1, 0, 2]},
    }
    spec = SampleSpec.from_mapping({"method": method, "n": 16, "seed": seed, "parameters": params})
    v = draw(spec)
    for name in ("u", "t", "n"):
        assert np.all((v[name] >= lo) & (v[name] <= hi)), name
    assert np.all((v["l"] > 0) & (v["l"] <= 5.0))
    assert set(v["d"].tolist()) <= {lo, lo + width / 2}  # weight 0 never drawn


def test_discrete_frequencies_follow_weights() -> None:
    spec = SampleSpec.from_mapping(
        {
            "method": "lhs",
            "n": 1000,
            "seed": 1,
            "parameters": {"x": {"dist": "discrete", "values": [1, 2, 3], "weights": [1, 2, 7]}},
        }
    )
    counts = {k: int(np.sum(draw(spec)["x"] == k)) for k in (1, 2, 3)}
    # LHS puts exactly n * weight of its strata in each value (up to one stratum)
    assert abs(counts[1] - 100) <= 1 and abs(counts[2] - 200) <= 1 and abs(counts[3] - 700) <= 1


def test_monte_carlo_mean_of_uniform() -> None:
    spec = SampleSpec.from_mapping(
        {"method": "monte-carlo", "n": 20000, "seed": 2, "parameters": {"x": [2, 4]}}
    )
    x = draw(spec)["x"]
    assert abs(x.mean() - 3.0) < 4 * (2 / np.sqrt(12)) / np.sqrt(len(x))


def test_halton_first_coordinate_is_van_der_corput_like() -> None:
    # scrambled Halton in base 2: the first 2^k points hit every dyadic interval once
    u = unit_sample("halton", 16, 2, seed=9)
    assert sorted(np.floor(u[:, 0] * 16).astype(int).tolist()) == list(range(16))
    assert sorted(np.floor(u[:9, 1] * 9).astype(int).tolist()) == list(range(9))  # base 3


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"n": 4, "method": "latin", "parameters": {"x": [0, 1]}}, "unknown sampling method"),
        ({"n": 0, "parameters": {"x": [0, 1]}}, "positive integer"),
        ({"n": 4, "seed": -1, "parameters": {"x": [0, 1]}}, "seed"),
        ({"n": 4, "parameters": {}}, "parameters"),
        ({"n": 4, "parameters": {"x": {"dist": "beta"}}}, "unknown distribution"),
        ({"n": 4, "parameters": {"x": {"dist": "normal", "mean": 1}}}, "missing"),
        (
            {"n": 4, "parameters": {"x": {"dist": "uniform", "lower": 1, "upper": 0}}},
            "lower < upper",
        ),
        ({"n": 4, "parameters": {"x": {"dist": "uniform", "low": 0, "upper": 1}}}, "unknown key"),
        ({"n": 4, "parameters": {"x": {"dist": "discrete", "values": []}}}, "non-empty"),
        ({"n": 4, "sample": 3, "parameters": {"x": [0, 1]}}, "unknown key"),
    ],
)
def test_spec_errors_say_what_is_wrong(spec: dict, match: str) -> None:
    with pytest.raises(ScenarioError, match=match):
        SampleSpec.from_mapping(spec)


def test_distribution_shorthand_is_uniform() -> None:
    assert Distribution.from_spec([1, 3], "x") == Distribution("uniform", {"lower": 1, "upper": 3})


def test_grid_axes() -> None:
    np.testing.assert_allclose(grid_axis({"linspace": [0, 1, 5]}), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(grid_axis({"logspace": [1, 1000, 4]}), [1, 10, 100, 1000])
    np.testing.assert_array_equal(grid_axis([3, 1, 2]), [3.0, 1.0, 2.0])
    np.testing.assert_array_equal(grid_axis(0.5), [0.5])
    for bad, match in [
        ({"linspace": [0, 1]}, "start, stop, num"),
        ({"logspace": [0, 1, 3]}, "both > 0"),
        ({"arange": [0, 1, 3]}, "linspace"),
        ([], "non-empty"),
        ([1, 1], "repeated"),
        (["a"], "numbers"),
    ]:
        with pytest.raises(ScenarioError, match=match):
            grid_axis(bad)


def test_lhs_pairs_are_not_aligned() -> None:
    # A Latin hypercube pairs strata at random: columns are not the same permutation.
    u = unit_sample("lhs", 64, 3, seed=4)
    ranks = [np.argsort(u[:, k]) for k in range(3)]
    for a, b in itertools.combinations(ranks, 2):
        assert not np.array_equal(a, b)
