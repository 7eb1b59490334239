"""Accuracy against exact solutions, and the convergence order of the fixed-step methods."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sd_model

MODELS = Path(__file__).parent / "models"
ADAPTIVE = ["RK45", "DOP853", "LSODA", "BDF", "Radau"]


def _decay_exact(t: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * t)


def _logistic_exact(t: np.ndarray) -> np.ndarray:
    return 1000.0 / (1.0 + (1000.0 / 10.0 - 1.0) * np.exp(-0.5 * t))


@pytest.fixture(scope="module")
def decay() -> sd_model.Model:
    return sd_model.load(MODELS / "decay.mdl")


@pytest.mark.parametrize("method", ADAPTIVE)
def test_adaptive_exponential_decay(decay: sd_model.Model, method: str) -> None:
    ds = decay.run(method=method, backend="pysd", rtol=1e-10, atol=1e-12)
    t = ds["time"].values
    err = np.max(np.abs(ds["x"].values - _decay_exact(t)) / _decay_exact(t))
    assert err < 1e-6, f"{method}: relative error {err:.2e}"
    assert ds.attrs["solver_method"] == method


@pytest.mark.parametrize("method", ["RK45", "DOP853", "LSODA"])
def test_adaptive_logistic_growth(method: str) -> None:
    model = sd_model.load(MODELS / "logistic.mdl")
    ds = model.run(method=method, backend="pysd", rtol=1e-10, atol=1e-10)
    t = ds["time"].values
    stock = next(n for n, v in ds.data_vars.items() if v.attrs.get("long_name") == "P")
    err = np.max(np.abs(ds[stock].values - _logistic_exact(t)) / _logistic_exact(t))
    assert err < 1e-6, f"{method}: relative error {err:.2e}"


@pytest.mark.parametrize("method", ["RK45", "DOP853", "Radau"])
def test_adaptive_harmonic_oscillator(method: str) -> None:
    model = sd_model.load(MODELS / "oscillator.mdl")
    ds = model.run(method=method, backend="pysd", rtol=1e-11, atol=1e-12)
    t = ds["time"].values
    assert np.max(np.abs(ds["x"].values - np.cos(2.0 * t))) < 1e-6
    assert np.max(np.abs(ds["v"].values + 2.0 * np.sin(2.0 * t))) < 2e-6


def test_breakpoints_keep_adaptive_methods_exact() -> None:
    # STEP at 2.5, RAMP from 4 to 6 and PULSE over [7, 8): the exact integral is
    # piecewise polynomial, so an integrator that stops at the breakpoints is exact.
    model = sd_model.load(MODELS / "step_ramp.mdl")
    ds = model.run(method="RK45", backend="pysd", rtol=1e-6, atol=1e-6)
    t = ds["time"].values
    exact = (
        np.where(t > 2.5, 2 * (t - 2.5), 0)
        + np.where(t > 4, np.where(t < 6, (t - 4) ** 2 / 2, 2 + 2 * (t - 6)), 0)
        + np.clip(t - 7, 0, 1)
    )
    assert np.max(np.abs(ds["y"].values - exact)) < 1e-9
    # ... and cheaply: far fewer evaluations than Euler's 40 steps x many tolerances.
    assert int(ds["solver_nfev"]) < 400


def _order(model: sd_model.Model, method: str, steps: list[float]) -> float:
    errors = []
    for dt in steps:
        ds = model.run(method=method, backend="pysd", time_step=dt, saveper=1.0, final_time=4)
        errors.append(abs(float(ds["x"].sel(time=4.0)) - float(_decay_exact(np.array(4.0)))))
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    return float(slope)


def test_euler_converges_at_order_one(decay: sd_model.Model) -> None:
    assert _order(decay, "euler", [0.25, 0.125, 0.0625]) == pytest.approx(1.0, abs=0.1)


def test_rk4_converges_at_order_four(decay: sd_model.Model) -> None:
    assert _order(decay, "rk4", [0.5, 0.25, 0.125]) == pytest.approx(4.0, abs=0.2)


def test_euler_matches_the_explicit_recurrence(decay: sd_model.Model) -> None:
    # Euler on x' = -k x is x_{n+1} = (1 - k dt) x_n: check the numbers exactly.
    ds = decay.run(method="euler", backend="pysd")
    t = ds["time"].values
    expected = (1 - 0.5 * 0.125) ** (t / 0.125)
    np.testing.assert_allclose(ds["x"].values, expected, rtol=1e-12)


# (model, refinement of the Euler reference step, tolerance as a fraction of each
# column's scale: Euler's error is O(dt), so coarser references get looser tolerances;
# saved times where an input steps: there an output jumps, and Euler's output lags the
# jump by a step while the continuous solution jumps at the instant; backend).
# PySD evaluates subscripted equations through xarray at ~0.1-0.2 s per right-hand
# side, so its RK45 runs of the subscripted models take minutes: those are checked
# on the compiled backend, tied to PySD under Euler by the conformance suites and
# under RK45 (on models/example_regions.mdl) by test_backends_agree.
STATEFUL_MODELS = [
    ("tests/smooth/test_smooth.mdl", 64, 5e-3, (), "pysd"),
    ("tests/delays/test_delays.mdl", 16, 2e-2, (5.0, 10.0, 15.0), "pysd"),
    ("tests/subscripted_smooth/test_subscripted_smooth.mdl", 8, 2e-2, (), "compiled"),
    ("tests/subscripted_delays/test_subscripted_delays.mdl", 4, 4e-2, (), "compiled"),
    ("samples/SIR/SIR.mdl", 16, 5e-3, (), "pysd"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("relpath", "refine", "tol", "jumps", "backend"), STATEFUL_MODELS)
def test_stateful_elements_under_adaptive_methods(
    corpus: Path, relpath: str, refine: int, tol: float, jumps: tuple[float, ...], backend: str
) -> None:
    # SMOOTH/DELAY hide stocks; RK45 must integrate them as ODEs. The reference is
    # Euler at a much finer step (an independent method), not our own solver.
    model = sd_model.load(corpus / relpath)
    fine = model.control["time_step"] / refine
    saveper = model.control["saveper"]
    ref = model.run(method="euler", backend=backend, time_step=fine, saveper=saveper)
    # rtol 1e-6 is ample against tolerances of 5e-3 and more, and keeps PySD's slow
    # right-hand side affordable.
    ds = model.run(method="RK45", backend=backend, rtol=1e-6, atol=1e-6)
    assert ds.attrs["backend"] == backend
    keep = ~np.isin(ds["time"].values, jumps)
    compared = 0
    for name, da in ds.data_vars.items():
        if da.attrs.get("sd_kind") in (None, "constant") or "time" not in da.dims:
            continue
        a, b = da.values[keep], ref[name].values[keep]
        scale = max(float(np.nanmax(np.abs(b))), 1e-9)
        assert np.nanmax(np.abs(a - b)) <= tol * scale, name
        compared += 1
    assert compared > 0


def test_delay_fixed_models_refuse_adaptive_methods(corpus: Path) -> None:
    model = sd_model.load(corpus / "tests" / "forecast" / "test_forecast.mdl")
    with pytest.raises(sd_model.UnsupportedFeatureError, match="R Delayed.*method='euler'"):
        model.run(method="RK45", backend="pysd")
