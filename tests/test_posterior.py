"""Posterior sampling, bootstrap refits and forecast bands against analytic answers."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import sd_model
from sd_model import SDModelWarning
from sd_model.calibrate import CalibrationError, ErrorModel, bootstrap
from sd_model.options import TimeSettings

MODELS = Path(__file__).parent / "models"
SIGMA = 0.5
PRIOR_MEAN = np.array([1.0, 0.0])
PRIOR_SD = np.array([1.0, 1.0])
BOUNDS = {"intercept": (-20.0, 20.0), "slope": (-20.0, 20.0)}
PRIORS = {
    "intercept": stats.norm(PRIOR_MEAN[0], PRIOR_SD[0]),
    "slope": stats.norm(PRIOR_MEAN[1], PRIOR_SD[1]),
}


@pytest.fixture(scope="module")
def linear() -> sd_model.Model:
    return sd_model.load(MODELS / "linear_trend.mdl")


@pytest.fixture(scope="module")
def data() -> pd.Series:
    t = np.arange(11.0)
    return pd.Series(2.0 + 0.5 * t + np.random.default_rng(11).normal(0, SIGMA, 11), index=t)


def _analytic(y: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Posterior of (intercept, slope): y = a + b t + N(0, sigma), normal priors."""
    x = np.column_stack([np.ones(len(y)), y.index.to_numpy(float)])
    precision = x.T @ x / SIGMA**2 + np.diag(1 / PRIOR_SD**2)
    cov = np.linalg.inv(precision)
    mean = cov @ (x.T @ y.to_numpy() / SIGMA**2 + PRIOR_MEAN / PRIOR_SD**2)
    return mean, cov


@pytest.fixture(scope="module")
def posterior(linear: sd_model.Model, data: pd.Series) -> object:
    return sd_model.sample_posterior(
        linear,
        {"y": data},
        BOUNDS,
        error=ErrorModel("normal", sigma=SIGMA),
        priors=PRIORS,
        draws=1000,
        tune=300,
        walkers=64,
        seed=1,
    )


def test_mcmc_matches_the_analytic_linear_gaussian_posterior(
    posterior: object, data: pd.Series
) -> None:
    post = posterior
    mean, cov = _analytic(data)
    for j, name in enumerate(["intercept", "slope"]):
        x = post[name].values.ravel()  # type: ignore[index]
        ess = post[name].attrs["ess"]  # type: ignore[index]
        sd = np.sqrt(cov[j, j])
        # Monte Carlo error of the mean is sd / sqrt(ESS); allow 4 of them.
        assert abs(x.mean() - mean[j]) < 4 * sd / np.sqrt(ess), name
        assert x.var() == pytest.approx(cov[j, j], rel=0.12), name
    corr = np.corrcoef(post["intercept"].values.ravel(), post["slope"].values.ravel())[0, 1]  # type: ignore[index]
    assert corr == pytest.approx(cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]), abs=0.05)


def test_draws_are_an_arviz_style_dataset_with_diagnostics(posterior: object) -> None:
    post = posterior
    assert dict(post.sizes) == {"chain": 64, "draw": 1000}  # type: ignore[attr-defined]
    assert json.loads(post.attrs["parameters"]) == ["intercept", "slope"]  # type: ignore[attr-defined]
    for name in ("intercept", "slope"):
        assert post[name].dims == ("chain", "draw")  # type: ignore[index]
        assert 1.0 <= post[name].attrs["rhat"] < 1.1  # type: ignore[index]
        assert post[name].attrs["ess"] > 100  # type: ignore[index]
    attrs = post.attrs  # type: ignore[attr-defined]
    assert attrs["backend"] == "compiled"
    assert attrs["n_evaluations"] == 64 * 1301  # the walkers' start, then 1300 steps
    assert 0.2 < attrs["acceptance_fraction"] < 0.9


def test_split_rhat_detects_chains_that_disagree() -> None:
    from sd_model.calibrate.posterior import split_rhat

    rng = np.random.default_rng(0)
    same = rng.normal(size=(4, 1000))
    apart = same + np.arange(4)[:, None]
    assert split_rhat(same) == pytest.approx(1.0, abs=0.01)
    assert split_rhat(apart) > 1.5


def test_same_seed_gives_the_same_draws_and_short_runs_warn(
    linear: sd_model.Model, data: pd.Series
) -> None:
    kw = dict(error=ErrorModel("normal", sigma=SIGMA), priors=PRIORS, draws=30, tune=10, walkers=16)
    with pytest.warns(SDModelWarning, match="may not have converged"):
        a = sd_model.sample_posterior(linear, {"y": data}, BOUNDS, seed=5, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SDModelWarning)
        b = sd_model.sample_posterior(linear, {"y": data}, BOUNDS, seed=5, **kw)
        c = sd_model.sample_posterior(linear, {"y": data}, BOUNDS, seed=6, **kw)
    assert np.array_equal(a["slope"].values, b["slope"].values)
    assert not np.array_equal(a["slope"].values, c["slope"].values)


@pytest.mark.slow
def test_estimated_sigma_is_sampled(linear: sd_model.Model, data: pd.Series) -> None:
    post = sd_model.sample_posterior(
        linear, {"y": data}, BOUNDS, draws=600, tune=300, walkers=32, seed=2
    )
    sigma = post["sigma[y]"].values.ravel()
    assert "sigma[y]" not in json.loads(post.attrs["parameters"])
    # Residual sd of the data around the OLS line (the truth is 0.5).
    assert 0.3 < np.median(sigma) < 0.9


@pytest.mark.slow
def test_bootstrap_spread_matches_the_ols_standard_error(
    linear: sd_model.Model, data: pd.Series
) -> None:
    fit = sd_model.calibrate(linear, {"y": data}, BOUNDS, seed=1)
    boot = bootstrap(fit, n=80, kind="residual", seed=3)
    x = np.column_stack([np.ones(11), np.arange(11.0)])
    resid = data.to_numpy() - x @ np.linalg.lstsq(x, data.to_numpy(), rcond=None)[0]
    # The residual bootstrap's spread is the OLS standard error with sigma^2 = SSR / n.
    se = np.sqrt(np.mean(resid**2) * np.diag(np.linalg.inv(x.T @ x)))
    for j, name in enumerate(["intercept", "slope"]):
        # 80 replicates estimate a standard deviation to about 8 %: 0.3 is 3.8 of those.
        assert boot[name].values.std() == pytest.approx(se[j], rel=0.3), name
    assert dict(boot.sizes) == {"chain": 1, "draw": 80}
    again = bootstrap(fit, n=80, kind="residual", seed=3)
    assert np.array_equal(boot["slope"].values, again["slope"].values)
    blocks = bootstrap(fit, n=10, kind="block", block_length=3, seed=3)
    assert blocks.attrs["sampler"].startswith("bootstrap (block")
    with pytest.raises(CalibrationError, match="Unknown bootstrap 'jackknife'"):
        bootstrap(fit, kind="jackknife")  # type: ignore[arg-type]


def test_bands_are_the_analytic_predictive_quantiles(
    linear: sd_model.Model, posterior: object, data: pd.Series
) -> None:
    q = [0.05, 0.5, 0.95]
    bands = sd_model.forecast_bands(
        linear, posterior, quantiles=q, outputs=["y"], time=TimeSettings(final_time=15)
    )
    mean, cov = _analytic(data)
    assert bands["y"].dims == ("quantile", "time")
    assert bands["time"].values[-1] == 15
    for t in (0.0, 10.0, 15.0):
        v = np.array([1.0, t])
        m, s = v @ mean, np.sqrt(v @ cov @ v)
        expected = stats.norm(m, s).ppf(q)
        got = bands["y"].sel(time=t).values
        assert got == pytest.approx(expected, abs=0.08 * s + 1e-9), t
    assert bands.attrs["n_draws"] == 64000


def test_bands_from_a_fit_use_its_normal_approximation(
    linear: sd_model.Model, data: pd.Series
) -> None:
    fit = sd_model.calibrate(
        linear, {"y": data}, BOUNDS, error=ErrorModel("normal", sigma=SIGMA), seed=1
    )
    bands = sd_model.forecast_bands(
        linear, fit, quantiles=[0.025, 0.975], n=4000, seed=1, outputs=["y"]
    )
    v = np.array([1.0, 10.0])
    cov = fit.covariance.to_numpy()
    s = np.sqrt(v @ cov @ v)
    width = float(np.diff(bands["y"].sel(time=10.0).values)[0])
    assert width == pytest.approx(2 * 1.96 * s, rel=0.06)
    with pytest.raises(CalibrationError, match="quantiles must be numbers in"):
        sd_model.forecast_bands(linear, fit, quantiles=[5, 50])
    with pytest.raises(CalibrationError, match="'z' is not a variable"):
        sd_model.forecast_bands(linear, fit, outputs=["z"])
