"""Calibration: recovery of known parameters, error models, intervals, bad input."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import sd_model
from sd_model import SDModelWarning
from sd_model.calibrate import CalibrationError, ErrorModel
from sd_model.integrate import SolverOptions
from sd_model.options import TimeSettings
from sd_model.overrides import ParameterError

MODELS = Path(__file__).parent / "models"


@pytest.fixture(scope="module")
def logistic() -> sd_model.Model:
    return sd_model.load(MODELS / "logistic.mdl")


@pytest.fixture(scope="module")
def linear() -> sd_model.Model:
    return sd_model.load(MODELS / "linear_trend.mdl")


@pytest.fixture(scope="module")
def regions() -> sd_model.Model:
    return sd_model.load(MODELS / "two_regions.mdl")


LOGISTIC_TRUTH = {"r": 0.7, "K": 800.0, "P0": 15.0}
LOGISTIC_BOUNDS = {"r": (0.1, 2.0), "K": (100.0, 5000.0), "P0": (1.0, 100.0)}


def _logistic_data(model: sd_model.Model, noise: float = 0.0, seed: int = 0) -> pd.Series:
    y = model.run(LOGISTIC_TRUTH)["p_1"].to_series()
    rng = np.random.default_rng(seed)
    return y + rng.normal(0.0, noise, len(y)) if noise else y


# --------------------------------------------------------------------------- recovery
def test_noise_free_data_recover_the_parameters_exactly(logistic: sd_model.Model) -> None:
    fit = sd_model.calibrate(logistic, {"P": _logistic_data(logistic)}, LOGISTIC_BOUNDS, seed=1)
    for name, value in LOGISTIC_TRUTH.items():
        assert fit.params[name] == pytest.approx(value, rel=1e-6), name
    assert fit.backend == "compiled"
    assert fit.n_failed == 0


def test_noisy_data_recover_the_parameters_within_three_standard_errors(
    logistic: sd_model.Model,
) -> None:
    # Stated tolerance: |estimate - truth| < 3 standard errors, and the standard errors
    # are small (the data pin r to about 2 %).
    fit = sd_model.calibrate(
        logistic, {"P": _logistic_data(logistic, noise=10.0, seed=4)}, LOGISTIC_BOUNDS, seed=1
    )
    for name, value in LOGISTIC_TRUTH.items():
        assert abs(fit.params[name] - value) < 3 * fit.stderr[name], name
    assert fit.stderr["r"] / fit.params["r"] < 0.05
    # sigma is estimated by maximum likelihood: close to the noise's 10.
    assert 5.0 < fit.scales["P"] < 15.0


def test_same_seed_gives_the_same_fit(logistic: sd_model.Model) -> None:
    data = {"P": _logistic_data(logistic, noise=10.0, seed=2)}
    a = sd_model.calibrate(logistic, data, LOGISTIC_BOUNDS, seed=7, polish=False)
    b = sd_model.calibrate(logistic, data, LOGISTIC_BOUNDS, seed=7, polish=False)
    c = sd_model.calibrate(logistic, data, LOGISTIC_BOUNDS, seed=8, polish=False)
    assert a.params == b.params
    assert a.params != c.params


def test_global_search_finds_the_frequency_of_an_oscillator_a_local_one_misses() -> None:
    model = sd_model.load(MODELS / "oscillator.mdl")
    data = {"x": model.run({"omega": 5.1})["x"].to_series()}
    # The model's own omega (2) is the local search's start; the payoff in omega has a
    # local minimum near every frequency that aliases with the data.
    local = sd_model.calibrate(model, data, {"omega": (0.5, 8.0)}, method="local")
    glob = sd_model.calibrate(model, data, {"omega": (0.5, 8.0)}, seed=1)
    assert glob.params["omega"] == pytest.approx(5.1, rel=1e-6)
    assert abs(local.params["omega"] - 5.1) > 0.5
    assert glob.payoff < local.payoff - 10


def test_multistart_also_finds_the_global_optimum(logistic: sd_model.Model) -> None:
    fit = sd_model.calibrate(
        logistic, {"P": _logistic_data(logistic)}, LOGISTIC_BOUNDS, method="multistart", seed=2
    )
    assert fit.params["r"] == pytest.approx(0.7, rel=1e-6)


def test_element_and_whole_subscripted_parameters(regions: sd_model.Model) -> None:
    truth = regions.run({"growth rate": {"North": 0.05, "South": 0.01}})
    tidy = truth["population"].to_dataframe().reset_index()
    tidy = tidy.rename(columns={"population": "value"}).assign(variable="Population")
    fit = sd_model.calibrate(
        regions,
        tidy,
        {"growth rate[North]": (0.0, 0.1), "growth rate[south]": (0.0, 0.1)},
        seed=1,
    )
    assert fit.params["growth rate[North]"] == pytest.approx(0.05, rel=1e-6)
    assert fit.params["growth rate[south]"] == pytest.approx(0.01, rel=1e-6)
    assert [s.label for s in fit.series] == ["Population[North]", "Population[South]"]
    # A whole subscripted constant is one value for every element.
    same = regions.run({"growth rate": 0.04})["population"]
    data = {"Population[South]": same.sel(Region="South").to_series()}
    whole = sd_model.calibrate(regions, data, {"growth rate": (0.0, 0.1)}, seed=1)
    assert whole.params["growth rate"] == pytest.approx(0.04, rel=1e-6)
    run = whole.dataset["growth_rate"]
    assert np.allclose(run.values, 0.04)


def test_fixed_overrides_hold_in_every_run(logistic: sd_model.Model) -> None:
    y = logistic.run({"r": 0.7, "K": 600, "P0": 15})["p_1"].to_series()
    fit = sd_model.calibrate(logistic, {"P": y}, {"r": (0.1, 2)}, fixed={"K": 600, "P0": 15})
    assert fit.params["r"] == pytest.approx(0.7, rel=1e-6)
    assert float(fit.dataset["k"]) == 600


# --------------------------------------------------------------------------- error models
@pytest.mark.parametrize(
    ("em", "frozen"),
    [
        (ErrorModel("normal", sigma=2.0), lambda mu: stats.norm(mu, 2.0)),
        (ErrorModel("lognormal", sigma=0.3), lambda mu: stats.lognorm(0.3, scale=mu)),
        (ErrorModel("absolute", sigma=1.5), lambda mu: stats.laplace(mu, 1.5)),
        (ErrorModel("poisson"), lambda mu: stats.poisson(mu)),
        (
            ErrorModel("negative_binomial", dispersion=4.0),
            lambda mu: stats.nbinom(4.0, 4.0 / (4.0 + mu)),
        ),
    ],
)
def test_error_models_are_the_textbook_likelihoods(em: ErrorModel, frozen: object) -> None:
    obs = np.array([1.0, 3.0, 7.0, 12.0])
    mu = np.array([[1.5, 2.5, 8.0, 11.0], [2.0, 4.0, 6.0, 13.0]])
    scale = em.fixed_scale if em.fixed_scale is not None else np.nan
    nll = em.nll(mu, obs, scale)
    for b in range(2):
        dist = frozen(mu[b])  # type: ignore[operator]
        lp = dist.logpmf(obs) if hasattr(dist, "logpmf") else dist.logpdf(obs)
        assert nll[b] == pytest.approx(-lp.sum(), rel=1e-10)
    # Deviance residuals: half their sum of squares is the excess over a perfect fit.
    r = em.residuals(mu, obs, scale)
    perfect = em.nll(obs[None, :], obs, scale)
    assert 0.5 * (r**2).sum(axis=1) == pytest.approx(nll - perfect, rel=1e-10)


def test_estimated_scales_are_maximum_likelihood() -> None:
    obs = np.array([1.0, 3.0, 7.0, 12.0, 4.0])
    mu = np.array([[1.5, 2.5, 8.0, 11.0, 5.0]])
    # Counts far more spread than Poisson, so the dispersion's optimum is interior.
    counts, mean = np.array([1.0, 30.0, 2.0, 45.0, 5.0]), np.full((1, 5), 15.0)
    cases = [
        ("normal", mu, obs),
        ("lognormal", mu, obs),
        ("absolute", mu, obs),
        ("negative_binomial", mean, counts),
    ]
    for kind, sim, data in cases:
        em = ErrorModel(kind)  # type: ignore[arg-type]
        best = float(em.estimate_scale(sim, data)[0])
        for factor in (0.95, 1.05):
            assert em.nll(sim, data, best)[0] < em.nll(sim, data, best * factor)[0], kind


def test_poisson_fit_of_counts_recovers_the_rates() -> None:
    model = sd_model.load(Path(__file__).parents[1] / "models" / "sir_boarding_school.mdl")
    mean = model.run({"contact rate": 2.0, "recovery rate": 0.5})["infected"].to_series()
    counts = pd.Series(
        np.random.default_rng(3).poisson(mean.values[1:] * 20.0), index=mean.index[1:]
    )
    fit = sd_model.calibrate(
        model,
        {"Infected": counts / 20.0 * 20.0},
        {"contact rate": (0.5, 5), "recovery rate": (0.1, 2)},
        fixed={"initial infected": 20, "population": 763 * 20},
        error="poisson",
        seed=1,
    )
    assert fit.params["contact rate"] == pytest.approx(2.0, rel=0.03)
    assert fit.params["recovery rate"] == pytest.approx(0.5, rel=0.03)
    assert fit.report()["error"].tolist() == ["poisson"]


# --------------------------------------------------------------------------- intervals
def _linear_data(seed: int = 0, sigma: float = 0.5) -> pd.Series:
    t = np.arange(11.0)
    return pd.Series(2.0 + 0.5 * t + np.random.default_rng(seed).normal(0, sigma, 11), index=t)


def test_intervals_of_a_linear_model_are_the_analytic_ones(linear: sd_model.Model) -> None:
    # y = a + b t with known sigma: the profile and Hessian intervals are the OLS ones,
    # est +- z sigma sqrt((X'X)^-1_jj); Vensim's one-at-a-time payoff bounds are
    # est +- z sigma / sqrt((X'X)_jj).
    sigma = 0.5
    y = _linear_data()
    fit = sd_model.calibrate(
        linear,
        {"y": y},
        {"intercept": (-10, 10), "slope": (-5, 5)},
        error=ErrorModel("normal", sigma=sigma),
        seed=1,
    )
    x = np.column_stack([np.ones(11), np.arange(11.0)])
    xtx = x.T @ x
    est = np.linalg.solve(xtx, x.T @ y.values)
    assert [fit.params["intercept"], fit.params["slope"]] == pytest.approx(est, rel=1e-7)
    z = stats.norm.ppf(0.975)
    half = z * sigma * np.sqrt(np.diag(np.linalg.inv(xtx)))
    one_at_a_time = z * sigma / np.sqrt(np.diag(xtx))
    for method, width in (("profile", half), ("hessian", half), ("payoff", one_at_a_time)):
        ci = fit.confidence(0.95, method)  # type: ignore[arg-type]
        assert ci["lower"].to_numpy() == pytest.approx(est - width, rel=1e-4), method
        assert ci["upper"].to_numpy() == pytest.approx(est + width, rel=1e-4), method
    assert fit.covariance.to_numpy() == pytest.approx(sigma**2 * np.linalg.inv(xtx), rel=1e-5)
    # Vensim's threshold for a 95 % bound of a Gaussian log-likelihood payoff: 1.92.
    from sd_model.calibrate.confidence import threshold

    assert threshold(0.95) == pytest.approx(1.92, abs=0.005)
    assert threshold(0.90) == pytest.approx(1.36, abs=0.01)


def test_interval_cut_at_a_bound_says_so(linear: sd_model.Model) -> None:
    y = _linear_data()
    em = ErrorModel("normal", sigma=0.5)
    free = sd_model.calibrate(
        linear, {"y": y}, {"intercept": (-10, 10), "slope": (-5, 5)}, error=em, seed=1
    )
    low = free.params["intercept"] - 0.1  # inside the 95 % interval
    fit = sd_model.calibrate(
        linear, {"y": y}, {"intercept": (low, 10), "slope": (-5, 5)}, error=em, seed=1
    )
    ci = fit.confidence(0.95, "payoff")
    assert bool(ci.loc["intercept", "lower_at_bound"])
    assert not bool(ci.loc["intercept", "upper_at_bound"])
    assert ci.loc["intercept", "lower"] == pytest.approx(low)


def test_priors_pull_the_estimate_as_the_analytic_posterior_mode(linear: sd_model.Model) -> None:
    sigma, prior_sd = 0.5, 0.05
    y = _linear_data(seed=5)
    fit = sd_model.calibrate(
        linear,
        {"y": y},
        {"intercept": (-10, 10), "slope": (-5, 5)},
        error=ErrorModel("normal", sigma=sigma),
        priors={"slope": stats.norm(0.3, prior_sd)},
        seed=1,
    )
    x = np.column_stack([np.ones(11), np.arange(11.0)])
    precision = x.T @ x / sigma**2 + np.diag([0.0, 1 / prior_sd**2])
    mode = np.linalg.solve(precision, x.T @ y.values / sigma**2 + np.array([0, 0.3 / prior_sd**2]))
    assert [fit.params["intercept"], fit.params["slope"]] == pytest.approx(mode, rel=1e-6)
    assert fit.covariance.to_numpy() == pytest.approx(np.linalg.inv(precision), rel=1e-4)


# --------------------------------------------------------------------------- report, files
def test_report_statistics_match_hand_computed_ones(logistic: sd_model.Model) -> None:
    data = _logistic_data(logistic, noise=10.0, seed=1)
    fit = sd_model.calibrate(logistic, {"P": data}, LOGISTIC_BOUNDS, seed=1)
    row = fit.report().iloc[0]
    sim = fit.dataset["p_1"].sel(time=data.index.values).values
    obs = data.values
    assert row["n"] == len(obs)
    assert row["mape_pct"] == pytest.approx(100 * np.mean(np.abs(sim - obs) / np.abs(obs)))
    assert row["r2"] == pytest.approx(
        1 - np.sum((obs - sim) ** 2) / np.sum((obs - obs.mean()) ** 2)
    )
    assert row["um"] + row["us"] + row["uc"] == pytest.approx(1.0)
    assert row["um"] == pytest.approx((sim.mean() - obs.mean()) ** 2 / np.mean((sim - obs) ** 2))
    res = fit.residuals
    assert res["residual"].to_numpy() == pytest.approx(obs - sim, abs=1e-9)
    assert "| P | p_1 |" in fit.summary(None)


def test_parameter_file_feeds_a_scenario(logistic: sd_model.Model, tmp_path: Path) -> None:
    fit = sd_model.calibrate(logistic, {"P": _logistic_data(logistic)}, LOGISTIC_BOUNDS, seed=1)
    params = fit.to_yaml(tmp_path / "params" / "fitted.yaml")
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        f"model: {MODELS / 'logistic.mdl'}\nparams_file: params/fitted.yaml\nset: {{P0: 20}}\n"
    )
    sc = sd_model.Scenario.from_yaml(scenario)
    ds = sc.run()
    assert float(ds["r"]) == pytest.approx(fit.params["r"], rel=1e-12)
    assert float(ds["k"]) == pytest.approx(fit.params["K"], rel=1e-12)
    assert float(ds["p0"]) == 20  # the scenario's own set: wins
    assert "contact" not in params.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"model: {MODELS / 'logistic.mdl'}\nparams_file: missing.yaml\n")
    with pytest.raises(sd_model.ScenarioError, match="missing.yaml"):
        sd_model.Scenario.from_yaml(bad)


def test_pysd_backend_gives_the_same_fit(linear: sd_model.Model) -> None:
    data = {"y": _linear_data()}
    bounds = {"intercept": (-10, 10), "slope": (-5, 5)}
    em = ErrorModel("normal", sigma=0.5)
    compiled = sd_model.calibrate(linear, data, bounds, error=em, method="local")
    pysd = sd_model.calibrate(linear, data, bounds, error=em, method="local", backend="pysd")
    assert pysd.backend == "pysd"
    for k in bounds:
        assert pysd.params[k] == pytest.approx(compiled.params[k], rel=1e-8)


def test_a_model_that_does_not_compile_falls_back_with_a_warning(
    linear: sd_model.Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = sd_model.load(MODELS / "linear_trend.mdl")

    def refuse() -> None:
        raise sd_model.UnsupportedFeatureError("a construct the compiler lacks")

    monkeypatch.setattr(model, "compiled", refuse)
    with pytest.warns(SDModelWarning, match="calibrating with the PySD backend, one scenario"):
        fit = sd_model.calibrate(
            model,
            {"y": _linear_data()},
            {"slope": (-5, 5)},
            fixed={"intercept": 2.0},
            method="local",
        )
    assert fit.backend == "pysd"
    assert fit.params["slope"] == pytest.approx(0.5, abs=0.1)


# --------------------------------------------------------------------------- failures
def test_runs_that_blow_up_are_penalised_recorded_and_reported() -> None:
    model = sd_model.load(MODELS / "sweep_blowup.mdl")
    data = {"x": model.run({"growth rate": 0.5})["x"].to_series()}
    # x' = r x**2 - d x blows up (inf) within the run for large r: such runs must not
    # stop the search.
    with pytest.warns(SDModelWarning, match=r"runs failed while calibrating and were penalised"):
        fit = sd_model.calibrate(
            model, data, {"growth rate": (0.0, 60.0), "decay": (0.1, 3)}, seed=1
        )
    assert fit.params["growth rate"] == pytest.approx(0.5, rel=1e-6)
    assert fit.n_failed > 0
    assert len(fit.failures) > 0
    # Every recorded failure blows up: growth well above decay.
    assert (fit.failures["growth rate"] > fit.failures["decay"]).all()
    assert fit.failures["reason"].str.contains("inf for x").all()


# --------------------------------------------------------------------------- bad input
def test_unknown_variable_is_named_with_a_suggestion(logistic: sd_model.Model) -> None:
    with pytest.raises(CalibrationError, match=r"unknown variable 'Pp'.*Did you mean 'P'"):
        sd_model.calibrate(logistic, {"Pp": pd.Series([1.0], index=[0])}, {"r": (0, 1)})
    with pytest.raises(CalibrationError, match="'r' is a constant"):
        sd_model.calibrate(logistic, {"r": pd.Series([1.0], index=[0])}, {"r": (0, 1)})


def test_unknown_element_and_range_are_named(regions: sd_model.Model) -> None:
    with pytest.raises(CalibrationError, match=r"'Nord' is not an element of 'Region'.*North"):
        sd_model.calibrate(
            regions, {"Population[Nord]": pd.Series([1.0], index=[0])}, {"growth rate": (0, 1)}
        )
    tidy = pd.DataFrame(
        {"time": [0], "variable": ["Population"], "Regio": ["North"], "value": [1.0]}
    )
    with pytest.raises(CalibrationError, match=r"column 'Regio'.*Did you mean 'Region'"):
        sd_model.calibrate(regions, tidy, {"growth rate": (0, 1)})


def test_times_the_run_does_not_have_are_named(logistic: sd_model.Model) -> None:
    late = pd.Series([10.0, 20.0], index=[0.0, 25.0])
    with pytest.raises(CalibrationError, match=r"P has an observation at time 25, outside"):
        sd_model.calibrate(logistic, {"P": late}, {"r": (0, 1)})
    between = pd.Series([10.0, 20.0], index=[0.0, 2.5])
    with pytest.raises(CalibrationError, match=r"time 2.5, which is not a saved time"):
        sd_model.calibrate(logistic, {"P": between}, {"r": (0, 1)})
    # A longer run covers it.
    fit = sd_model.calibrate(
        logistic, {"P": late}, {"r": (0.1, 1)}, method="local", time=TimeSettings(final_time=25)
    )
    assert fit.n_observations == 2


def test_empty_data_is_an_error(logistic: sd_model.Model) -> None:
    with pytest.raises(CalibrationError, match="no observations"):
        sd_model.calibrate(logistic, {"P": pd.Series([np.nan], index=[0.0])}, {"r": (0, 1)})
    with pytest.raises(CalibrationError, match="give data as"):
        sd_model.calibrate(logistic, [1, 2, 3], {"r": (0, 1)})


def test_data_an_error_model_cannot_produce_are_refused(logistic: sd_model.Model) -> None:
    y = pd.Series([10.0, 0.0], index=[0.0, 1.0])
    with pytest.raises(CalibrationError, match=r"lognormal error model needs positive data"):
        sd_model.calibrate(logistic, {"P": y}, {"r": (0, 1)}, error="lognormal")
    with pytest.raises(CalibrationError, match=r"poisson error model is for counts; found -1"):
        sd_model.calibrate(logistic, {"P": y - 1}, {"r": (0, 1)}, error="poisson")
    with pytest.raises(CalibrationError, match=r"whole counts; found 10.5"):
        sd_model.calibrate(logistic, {"P": y + 0.5}, {"r": (0, 1)}, error="poisson")
    with pytest.raises(CalibrationError, match="Unknown error model 'gaussian'"):
        sd_model.calibrate(logistic, {"P": y + 1}, {"r": (0, 1)}, error="gaussian")
    with pytest.raises(CalibrationError, match="'Q' names no observed series"):
        sd_model.calibrate(logistic, {"P": y + 1}, {"r": (0, 1)}, error={"Q": "normal"})


def test_bad_parameters_and_bounds_are_named(logistic: sd_model.Model) -> None:
    y = {"P": _logistic_data(logistic)}
    with pytest.raises(CalibrationError, match=r"'r': bounds are reversed \(low 2 > high 0.1\)"):
        sd_model.calibrate(logistic, y, {"r": (2.0, 0.1)})
    with pytest.raises(CalibrationError, match=r"'r': bounds must be two numbers"):
        sd_model.calibrate(logistic, y, {"r": 0.5})
    with pytest.raises(CalibrationError, match="both 0.5"):
        sd_model.calibrate(logistic, y, {"r": (0.5, 0.5)})
    with pytest.raises(ParameterError, match=r"unknown parameter 'rr'.*Did you mean 'r'"):
        sd_model.calibrate(logistic, y, {"rr": (0, 1)})
    with pytest.raises(CalibrationError, match="name the same parameter"):
        sd_model.calibrate(logistic, y, {"r": (0, 1), "R": (0, 1)})
    with pytest.raises(CalibrationError, match=r"priors: 'k' is not a fitted parameter"):
        sd_model.calibrate(logistic, y, {"r": (0, 1)}, priors={"k": stats.norm(1, 1)})
    with pytest.raises(CalibrationError, match="frozen scipy.stats distribution"):
        sd_model.calibrate(logistic, y, {"r": (0, 1)}, priors={"r": 0.5})
    with pytest.raises(CalibrationError, match="Unknown method 'powell'"):
        sd_model.calibrate(logistic, y, {"r": (0, 1)}, method="powell")  # type: ignore[arg-type]


def test_confidence_level_is_checked(linear: sd_model.Model) -> None:
    fit = sd_model.calibrate(
        linear,
        {"y": _linear_data()},
        {"slope": (-5, 5)},
        error=ErrorModel("normal", sigma=0.5),
        method="local",
        solver=SolverOptions("euler"),
    )
    with pytest.raises(CalibrationError, match="level must be between 0 and 1"):
        fit.confidence(95)
    assert math.isfinite(fit.confidence(0.9)["lower"].iloc[0])


def test_fit_plot_draws_data_and_run(logistic: sd_model.Model) -> None:
    import matplotlib

    matplotlib.use("Agg")
    fit = sd_model.calibrate(
        logistic,
        {"P": _logistic_data(logistic, 5.0)},
        {"r": (0.1, 2)},
        fixed={"K": 800, "P0": 15},
        method="local",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", SDModelWarning)
        fig = fit.plot()
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert len(lines) == 2
    assert len(lines[1].get_xdata()) == 21  # the data
    import matplotlib.pyplot as plt

    plt.close(fig)
