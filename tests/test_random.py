"""RANDOM functions on the compiled backend: distributions, streams, seeds.

The expected statistics are the distributions' closed forms (truncated normal,
truncated exponential, Poisson, triangular), computed here from ``math`` only; sample
means and variances must fall within a few standard errors of them.
"""

from __future__ import annotations

import math
import pathlib
import warnings

import numpy as np
import pytest
import yaml

import sd_model
from sd_model import ScenarioError, UnsupportedFeatureError
from sd_model.evaluate import evaluate
from sd_model.integrate import SolverOptions
from sd_model.sweeps import sweep
from tests._canonical import compare, find_test_models, read_canonical

MODELS = pathlib.Path(__file__).resolve().parent / "models" / "random"


@pytest.fixture(scope="module")
def draws() -> dict[str, np.ndarray]:
    """21 steps x 1000 cells of every distribution (21,000 draws each), one run."""
    ds = sd_model.load(MODELS / "distributions.mdl").run(seed=20261201)
    return {name: ds[name].values.ravel() for name in ds.data_vars if "cell" in ds[name].dims}


def _phi(x: float) -> float:
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def _cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def _check_moments(x: np.ndarray, mean: float, var: float, fourth: float) -> None:
    """Sample mean and variance within 5 standard errors (``fourth``: 4th central moment)."""
    n = x.size
    assert abs(x.mean() - mean) < 5 * math.sqrt(var / n), (x.mean(), mean)
    assert abs(x.var(ddof=1) - var) < 5 * math.sqrt((fourth - var**2) / n), (x.var(), var)


def _moments(values: np.ndarray, probs: np.ndarray) -> tuple[float, float, float]:
    mean = float(np.sum(values * probs))
    var = float(np.sum((values - mean) ** 2 * probs))
    return mean, var, float(np.sum((values - mean) ** 4 * probs))


def test_uniform_moments(draws: dict[str, np.ndarray]) -> None:
    _check_moments(draws["u01"], 0.5, 1 / 12, 1 / 80)
    _check_moments(draws["uni"], 3.5, 9 / 12, 3**4 / 80)
    assert draws["uni"].min() >= 2 and draws["uni"].max() <= 5


def test_truncated_normal_moments(draws: dict[str, np.ndarray]) -> None:
    # N(1, 2) truncated to [-1, 3]: alpha = -1, beta = 1 (symmetric)
    z = _cdf(1) - _cdf(-1)
    var = 4 * (1 - 2 * _phi(1) / z)
    # 4th central moment of the standard normal truncated to [-1, 1], times sd**4
    m4 = 16 * (3 - (2 * (1 + 3) * _phi(1)) / z)
    _check_moments(draws["nor"], 1.0, var, m4)
    assert draws["nor"].min() >= -1 and draws["nor"].max() <= 3


def test_truncation_bounds_hold_far_from_the_mean(draws: dict[str, np.ndarray]) -> None:
    tight = draws["nor_tight"]
    assert tight.min() >= 0 and tight.max() <= 0.5
    # mean of N(1, 2) on [0, 0.5]: mu + sd * (phi(a) - phi(b)) / (Phi(b) - Phi(a))
    a, b = -0.5, -0.25
    mean = 1 + 2 * (_phi(a) - _phi(b)) / (_cdf(b) - _cdf(a))
    assert abs(tight.mean() - mean) < 5 * 0.5 / math.sqrt(12 * tight.size)
    # four standard deviations out: still the tail's distribution (mean of the
    # standard normal above 4 is phi(4) / (1 - Phi(4)) = 4.2256), not the bound
    tail = draws["nor_tail"]
    assert tail.min() >= 4
    assert abs(tail.mean() - _phi(4) / (1 - _cdf(4))) < 0.01


def test_truncated_exponential_moments(draws: dict[str, np.ndarray]) -> None:
    # 1 + 2 * Exp(1) truncated to [0, 10]: Exp(1) truncated at w = 4.5
    w = 4.5
    grid = np.linspace(0, w, 200_001)
    dens = np.exp(-grid) / (1 - math.exp(-w))
    probs = dens * (grid[1] - grid[0])
    probs /= probs.sum()
    mean, var, m4 = _moments(1 + 2 * grid, probs)
    assert abs(mean - (1 + 2 * (1 - w * math.exp(-w) / (1 - math.exp(-w))))) < 1e-4
    _check_moments(draws["expo"], mean, var, m4)
    assert draws["expo"].min() >= 1 and draws["expo"].max() <= 10


def test_poisson_moments_and_truncation(draws: dict[str, np.ndarray]) -> None:
    ks = np.arange(60.0)
    pmf = np.array([math.exp(-3) * 3**k / math.factorial(int(k)) for k in ks])
    _check_moments(draws["poi"], *_moments(ks, pmf / pmf.sum()))
    assert np.all(draws["poi"] == np.round(draws["poi"]))
    # truncated to [1, 4]: the Poisson conditioned on 1 <= k <= 4
    inside = (ks >= 1) & (ks <= 4)
    trunc = draws["poi_trunc"]
    assert set(np.unique(trunc)) <= {1.0, 2.0, 3.0, 4.0}
    _check_moments(trunc, *_moments(ks[inside], pmf[inside] / pmf[inside].sum()))


def test_triangular_moments_and_truncation(draws: dict[str, np.ndarray]) -> None:
    a, b, c = 1.0, 2.0, 6.0
    var = (a * a + b * b + c * c - a * b - a * c - b * c) / 18
    grid = np.linspace(a, c, 200_001)
    dens = np.where(
        grid <= b, 2 * (grid - a) / ((c - a) * (b - a)), 2 * (c - grid) / ((c - a) * (c - b))
    )
    _, var_num, m4 = _moments(grid, dens / dens.sum())
    assert abs(var_num - var) < 1e-6
    _check_moments(draws["tri"], (a + b + c) / 3, var, m4)
    trunc = draws["tri_trunc"]
    assert trunc.min() >= 1.5 and trunc.max() <= 3
    inside = (grid >= 1.5) & (grid <= 3)
    _check_moments(trunc, *_moments(grid[inside], dens[inside] / dens[inside].sum()))


def test_draws_are_independent_across_steps_and_cells(draws: dict[str, np.ndarray]) -> None:
    u = draws["u01"].reshape(21, 1000)
    n = u[1:].size
    lag_time = np.corrcoef(u[1:].ravel(), u[:-1].ravel())[0, 1]
    lag_cell = np.corrcoef(u[:, 1:].ravel(), u[:, :-1].ravel())[0, 1]
    assert abs(lag_time) < 5 / math.sqrt(n) and abs(lag_cell) < 5 / math.sqrt(n)
    # different functions draw different numbers
    assert abs(np.corrcoef(draws["u01"], draws["uni"])[0, 1]) < 5 / math.sqrt(u.size)


# ---------------------------------------------------------------- seeds and streams
def test_a_seed_reproduces_a_run_and_is_recorded() -> None:
    model = sd_model.load(MODELS / "noise.mdl")
    a, b = model.run(seed=7), model.run(seed=7)
    assert a.attrs["random_seed"] == 7
    np.testing.assert_array_equal(a["noise"].values, b["noise"].values)
    assert not np.array_equal(a["noise"].values, model.run(seed=8)["noise"].values)
    # no seed: fresh entropy, recorded, and giving it back repeats the run
    fresh = model.run()
    again = model.run(seed=int(fresh.attrs["random_seed"]))
    np.testing.assert_array_equal(fresh["level"].values, again["level"].values)


def test_the_integrated_value_is_the_saved_value() -> None:
    # one draw per step: the stock integrates exactly the values the run reports
    ds = sd_model.load(MODELS / "noise.mdl").run(seed=3)
    noise, level = ds["noise"].values, ds["level"].values
    np.testing.assert_allclose(np.diff(level), noise[:-1], rtol=0, atol=1e-12)
    assert np.all(np.abs(noise) <= 3)


def test_draws_do_not_depend_on_saveper() -> None:
    model = sd_model.load(MODELS / "noise.mdl")
    every = model.run(seed=11)
    sparse = model.run(seed=11, saveper=5)
    np.testing.assert_array_equal(
        every["noise"].sel(time=sparse.time).values, sparse["noise"].values
    )
    np.testing.assert_array_equal(
        every["level"].sel(time=sparse.time).values, sparse["level"].values
    )


def test_a_scenario_draws_the_same_in_any_batch() -> None:
    model = sd_model.load(MODELS / "noise.mdl")
    grid = model.time_grid()
    sets = [{"amp": 1.0}, {"amp": 2.0}, {"amp": 1.0}]
    batch = evaluate(model, sets, solver=SolverOptions("euler"), grid=grid, seed=5)
    assert batch.seed == 5
    noise = batch.values["noise"]
    for k, params in enumerate(sets):
        alone = evaluate(
            model, [params], solver=SolverOptions("euler"), grid=grid, seed=5, stream_ids=[k]
        )
        np.testing.assert_array_equal(alone.values["noise"][0], noise[k])
    # equal parameters, different streams: independent noise
    assert not np.array_equal(noise[0], noise[2])
    # the draw does not depend on the parameters: amp = 2 doubles stream 1's noise
    unit = evaluate(
        model, [{"amp": 1.0}], solver=SolverOptions("euler"), grid=grid, seed=5, stream_ids=[1]
    )
    np.testing.assert_allclose(noise[1], 2 * unit.values["noise"][0], rtol=1e-15)
    # Model.run is stream 0
    np.testing.assert_array_equal(model.run({"amp": 1.0}, seed=5)["noise"].values, noise[0])


def test_a_sweep_does_not_depend_on_chunk_size() -> None:
    model = sd_model.load(MODELS / "noise.mdl")
    spec = {"amp": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]}
    one = sweep(model, grid=spec, chunk_size=1, seed=9, progress=False)
    whole = sweep(model, grid=spec, chunk_size=6, seed=9, progress=False)
    assert one.attrs["random_seed"] == whole.attrs["random_seed"] == 9
    np.testing.assert_array_equal(one["noise"].values, whole["noise"].values)
    np.testing.assert_array_equal(one["level"].values, whole["level"].values)
    # scenario 0 of the sweep is Model.run with that seed
    first = model.run({"amp": 0.5}, seed=9)
    np.testing.assert_array_equal(whole["noise"].values[0], first["noise"].values)


def test_scenario_file_seed(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "noisy.yaml"
    path.write_text(yaml.safe_dump({"model": str(MODELS / "noise.mdl"), "seed": 13}))
    sc = sd_model.Scenario.from_yaml(path)
    a, b = sc.run(), sc.run()
    assert a.attrs["random_seed"] == 13
    np.testing.assert_array_equal(a["noise"].values, b["noise"].values)
    path.write_text(yaml.safe_dump({"model": str(MODELS / "noise.mdl"), "seed": -1}))
    with pytest.raises(ScenarioError, match="'seed' must be a non-negative integer"):
        sd_model.Scenario.from_yaml(path)


def test_models_without_random_record_no_seed() -> None:
    ds = sd_model.load(MODELS.parent / "decay.mdl").run(seed=4)
    assert "random_seed" not in ds.attrs


# ---------------------------------------------------------------- methods, kernel, PySD
@pytest.mark.parametrize("method", ["rk4", "RK45"])
def test_methods_evaluating_a_step_several_times_are_refused(method: str) -> None:
    with pytest.raises(UnsupportedFeatureError, match="RANDOM NORMAL in 'noise'.*method='euler'"):
        sd_model.load(MODELS / "noise.mdl").run(method=method, seed=1)


def test_numba_kernel_falls_back_to_the_same_numpy_numbers() -> None:
    model = sd_model.load(MODELS / "noise.mdl")
    with pytest.warns(
        sd_model.SDModelWarning,
        match="numba kernel does not cover RANDOM NORMAL|numba is not installed",
    ):
        jit = model.run(method="euler-numba", seed=2)
    np.testing.assert_array_equal(jit["level"].values, model.run(seed=2)["level"].values)


def test_deterministic_cases_equal_pysd() -> None:
    # min == max (uniform) and intervals of width 1e-9 (normal, exponential): PySD's
    # draws are determined to 1e-9 as ours are
    model = sd_model.load(MODELS / "degenerate.mdl")
    ours = model.run(backend="compiled", seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = model.run(backend="pysd", seed=1)
    assert np.all(ours["pinned"].values == 2.5) and np.all(ref["pinned"].values == 2.5)
    for name in ("narrow_normal", "narrow_exponential", "total"):
        np.testing.assert_allclose(ours[name].values, ref[name].values, rtol=1e-8)


def test_random_functions_no_backend_runs_are_refused_by_name() -> None:
    with pytest.raises(UnsupportedFeatureError) as info:
        sd_model.load(MODELS / "beta.mdl").run(backend="compiled")
    assert "the function RANDOM BETA in element 'b'" in str(info.value)
    assert "PySD does not implement it" in str(info.value)


def test_query_file_runs_compiled() -> None:
    root = find_test_models()
    if root is None:
        pytest.skip("../shared/test-models is not on this machine")
    folder = root / "samples" / "Query_file"
    with warnings.catch_warnings():
        warnings.simplefilter("error", sd_model.SDModelWarning)  # no fallback to PySD
        ds = sd_model.load(folder / "Query_file.mdl").run(seed=1)
    assert ds.attrs["backend"] == "compiled"
    kwh = ds["kwhperstoveperday"].values
    assert kwh.min() >= 0.23 and kwh.max() <= 0.53
    assert abs(kwh.mean() - 0.38) < 5 * 0.3 / math.sqrt(12 * kwh.size)
    # every column the random draw does not feed matches Vensim's output
    canon = read_canonical(folder / "output.tab")
    fed = ["kWhPerStovePerDay", "EnergyConsumptionRate", "TotalEnergyConsumption"]
    canon = canon.drop(columns=[c for c in canon.columns if c.strip() in fed])
    assert len(canon.columns) > 100
    assert compare(ds, canon) == []


def test_xmile_statistical_functions() -> None:
    # NORMAL(10, 2), EXPRND(3), POISSON(4), RANDOM(1, 2): 400 scenarios x 31 steps
    model = sd_model.load(MODELS / "xmile_functions.xmile")
    ev = evaluate(model, [{}] * 400, solver=SolverOptions("euler"), grid=model.time_grid(), seed=1)
    v = {k: a.ravel() for k, a in ev.values.items()}
    _check_moments(v["normal_draw"], 10.0, 4.0, 3 * 16.0)
    _check_moments(v["exponential_draw"], 3.0, 9.0, 9 * 3.0**4)
    _check_moments(v["poisson_draw"], 4.0, 4.0, 4.0 + 3 * 16.0)
    _check_moments(v["uniform_draw"], 1.5, 1 / 12, 1 / 80)
    assert v["exponential_draw"].min() >= 0 and v["poisson_draw"].min() >= 0
    # the stock integrates the saved draws, scenario by scenario
    np.testing.assert_allclose(
        np.diff(ev.values["s"], axis=1), ev.values["normal_draw"][:, :-1], atol=1e-12
    )


@pytest.mark.slow
def test_a_sweep_does_not_depend_on_the_number_of_workers(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("distributed")
    model = sd_model.load(MODELS / "noise.mdl")
    kw = {"grid": {"amp": [0.5, 1.0, 1.5, 2.0]}, "chunk_size": 1, "seed": 21, "progress": False}
    two = sweep(model, workers=2, store=tmp_path / "two.zarr", **kw)
    here = sweep(model, **kw)
    np.testing.assert_array_equal(two["noise"].values, here["noise"].values)


def test_calibration_sees_the_same_draws_in_every_run() -> None:
    # Data made with seed 0 are matched exactly by the fit's runs (common random numbers,
    # seed 0 by default): with fresh noise in every run the payoff would be noise too
    # and the fitted scale would not come back to 2 to six digits.
    model = sd_model.load(MODELS / "noise.mdl")
    data = model.run({"amp": 2.0}, seed=0)["level"].to_series()
    assert float(np.abs(data).max()) > 1  # the noise is there
    fit = sd_model.calibrate(model, {"level": data}, {"amp": (0.1, 5.0)}, method="local")
    assert fit.params["amp"] == pytest.approx(2.0, rel=1e-6)
