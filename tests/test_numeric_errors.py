"""Numeric trouble ends in one clear error naming the variable and the time, alike on
every method and backend: stocks that blow up, divisions by zero, circular equations,
and runs too large for the machine."""

from __future__ import annotations

import math
import pathlib
import re
import warnings

import numpy as np
import pytest

import sd_model
from sd_model import IntegrationError, ModelLoadError, SettingsError, UnsupportedFeatureError
from sd_model.compiler import _kernel, compile_model
from sd_model.integrate import METHODS, SolverOptions, TimeGrid, check_run_size

CONTROL = (
    "FINAL TIME = {final}\n\t~\tYear\n\t~\t|\n\nINITIAL TIME = 0\n\t~\tYear\n\t~\t|\n\n"
    "SAVEPER = {saveper}\n\t~\tYear\n\t~\t|\n\nTIME STEP = {dt}\n\t~\tYear\n\t~\t|\n"
)
BACKENDS = ("compiled", "pysd")
FIXED = ("euler", "euler-numba", "rk4")
needs_numba = pytest.mark.skipif(not _kernel.numba_available(), reason="numba is not installed")


def write_model(
    tmp_path: pathlib.Path, body: str, *, final: float = 10, dt: float = 0.25, saveper: float = 1
) -> pathlib.Path:
    path = tmp_path / "model.mdl"
    path.write_text("{UTF-8}\n" + body + CONTROL.format(final=final, dt=dt, saveper=saveper))
    return path


def eq(text: str) -> str:
    return f"{text}\n\t~\t\n\t~\t|\n\n"


def reported_time(message: str) -> float:
    found = re.search(r"at time (-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)", message)
    assert found, message
    return float(found.group(1))


# --------------------------------------------------------------------- blow-ups
EXPONENTIAL = eq("Stock = INTEG(Stock * 50, 1)")
SQUARE = eq("Stock = INTEG(Stock ^ 2, 1)")


def _fixed_step_overflow_time(method: str, dt: float = 0.25, rate: float = 50.0) -> float:
    """When y' = rate*y, y(0) = 1 first overflows under Euler or RK4 steps of dt.

    Each step multiplies the state by the method's stability polynomial at z = rate*dt,
    so it overflows after ceil(log(max float) / log(growth)) steps.
    """
    z = rate * dt
    growth = (
        1 + z if method in ("euler", "euler-numba") else 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24
    )
    return math.ceil(math.log(np.finfo(float).max) / math.log(growth)) * dt


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", METHODS)
def test_exponential_blow_up_names_the_stock_and_time(
    tmp_path: pathlib.Path, method: str, backend: str
) -> None:
    # Saving every 20 years: the solvers fail before reaching a saved time.
    model = sd_model.load(write_model(tmp_path, EXPONENTIAL, final=100, saveper=20))
    with pytest.raises(IntegrationError) as info:
        model.run(method=method, backend=backend)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(r"\bStock\b", message), message
    t = reported_time(message)
    if method in FIXED:
        assert re.search(r"produced (inf|nan) for Stock at time", message), message
        assert t == _fixed_step_overflow_time(method)
    else:
        # exp(50 t) passes the largest float (and its rate 50 exp(50 t) does) near 14.1-14.2.
        t_overflow = math.log(np.finfo(float).max) / 50
        assert t_overflow - 0.2 < t <= t_overflow, message


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", sorted(set(METHODS) - set(FIXED)))
def test_finite_time_singularity_names_the_stock_and_time(
    tmp_path: pathlib.Path, method: str, backend: str
) -> None:
    # y' = y^2, y(0) = 1 is 1 / (1 - t): no method can pass t = 1.
    model = sd_model.load(write_model(tmp_path, SQUARE, final=100))
    with pytest.raises(IntegrationError) as info:
        model.run(method=method, backend=backend)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(r"\bStock\b", message), message
    assert 0.99 < reported_time(message) <= 1.0, message


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", FIXED)
def test_fixed_step_overflow_of_a_power_names_the_stock(
    tmp_path: pathlib.Path, method: str, backend: str
) -> None:
    # PySD computes Stock ^ 2 on Python floats, which raise OverflowError instead of
    # giving inf: the same kind of one-line error must come out.
    model = sd_model.load(write_model(tmp_path, SQUARE, final=100))
    with pytest.raises(IntegrationError, match=r"Stock at time \d") as info:
        model.run(method=method, backend=backend)
    assert "\n" not in str(info.value)


@needs_numba
@pytest.mark.slow
def test_numba_kernel_reports_a_blow_up_like_the_integrators(tmp_path: pathlib.Path) -> None:
    model = sd_model.load(write_model(tmp_path, EXPONENTIAL, final=100))
    with pytest.raises(IntegrationError) as plain:
        model.run(method="euler", backend="compiled")
    with pytest.raises(IntegrationError) as fused:
        model.run(method="euler", backend="compiled", jit=True)
    assert str(fused.value) == str(plain.value)


# --------------------------------------------------------------------- division by zero
RECIPROCAL = eq("y = 1 / (5 - Time)")


def _compiled_runs() -> list[dict]:
    return [{}, {"jit": True}] if _kernel.numba_available() else [{}]


@pytest.mark.parametrize("method", ["euler", "RK45"])
def test_compiled_division_by_zero_follows_numpy(tmp_path: pathlib.Path, method: str) -> None:
    # The compiled backend computes time as a NumPy float, like its numba kernel: an
    # auxiliary may be infinite at an instant (Vensim shows it); only stocks may not.
    model = sd_model.load(write_model(tmp_path, RECIPROCAL))
    for extra in _compiled_runs() if method == "euler" else [{}]:
        ds = model.run(method=method, backend="compiled", **extra)
        assert ds["y"].sel(time=[4.0, 5.0, 6.0]).values.tolist() == [1.0, math.inf, -1.0]


def test_pysd_division_by_zero_names_the_variable_and_time(tmp_path: pathlib.Path) -> None:
    # PySD divides Python floats, which raise: one line naming what and when.
    model = sd_model.load(write_model(tmp_path, RECIPROCAL))
    with pytest.raises(IntegrationError, match=r"Division by zero computing 'y' at time 5\b"):
        model.run(backend="pysd")


def test_guarded_division_runs_alike_on_every_backend(tmp_path: pathlib.Path) -> None:
    # Vensim's idiom: IF THEN ELSE evaluates both branches in NumPy, so the unused
    # 1 / 0 must not raise (it did when time was a Python float).
    path = write_model(tmp_path, eq("y = IF THEN ELSE(Time = 5, 0, 1 / (5 - Time))"))
    model = sd_model.load(path)
    runs = [("pysd", {})] + [("compiled", extra) for extra in _compiled_runs()]
    for backend, extra in runs:
        ds = model.run(backend=backend, **extra)
        assert ds["y"].sel(time=[4.0, 5.0, 6.0]).values.tolist() == [1.0, 0.0, -1.0]


def test_division_by_zero_reaching_a_stock_names_it_and_the_time(tmp_path: pathlib.Path) -> None:
    path = write_model(tmp_path, RECIPROCAL + eq("S = INTEG(y, 0)"))
    model = sd_model.load(path)
    messages = []
    for extra in _compiled_runs():
        with pytest.raises(IntegrationError) as info:
            model.run(method="euler", backend="compiled", **extra)
        messages.append(str(info.value))
    # y is infinite at t = 5, so the Euler step from 5 makes S infinite at 5.25.
    assert re.search(r"produced inf for S at time 5\.25\b", messages[0]), messages[0]
    assert len(set(messages)) == 1, messages
    with pytest.raises(IntegrationError, match=r"computing 'y' at time 5\b"):
        model.run(method="euler", backend="pysd")


def test_python_division_by_zero_names_the_variable(tmp_path: pathlib.Path) -> None:
    # Literals alone are Python floats in the generated code, and PySD's numbers always
    # are: their ZeroDivisionError becomes the run's error, naming the variable.
    model = sd_model.load(write_model(tmp_path, eq("x = 1 / 0") + eq("S = INTEG(x, 0)")))
    for backend in BACKENDS:
        with pytest.raises(IntegrationError, match=r"Division by zero computing 'x' at time 0"):
            model.run(backend=backend)


def test_python_division_by_zero_inside_a_flow_names_the_stock(tmp_path: pathlib.Path) -> None:
    body = eq("k = 0") + eq("S = INTEG(1 / k, 0)")
    model = sd_model.load(write_model(tmp_path, body))
    with pytest.raises(IntegrationError, match=r"computing the rate of change of S at time 0"):
        model.run(backend="pysd")


# --------------------------------------------------------------------- circular equations
CIRCULAR = eq("a = b + 1") + eq("b = a * 2")


def _compile(tmp_path: pathlib.Path, body: str):
    from pysd.translators.vensim.vensim_file import VensimFile

    path = write_model(tmp_path, body)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vf = VensimFile(path)
        vf.parse()
        return compile_model(vf.get_abstract_model(), model_dir=tmp_path)


def test_compiler_rejects_simultaneous_equations_naming_the_cycle(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ModelLoadError, match=r"circular.*: a -> b -> a\."):
        _compile(tmp_path, CIRCULAR)


def test_compiler_rejects_a_circular_initial_value(tmp_path: pathlib.Path) -> None:
    body = eq("S = INTEG(f, S0)") + eq("f = S * 0.1") + eq("S0 = f * 2")
    with pytest.raises(ModelLoadError, match=r"circular.*initialisation: S -> S0 -> f -> S"):
        _compile(tmp_path, body)


def test_element_level_self_reference_is_not_called_circular(tmp_path: pathlib.Path) -> None:
    # x[r2] depends on x[r1] only: Vensim orders the cells; this compiler cannot, so it
    # hands the model to PySD (UnsupportedFeatureError) instead of rejecting it.
    body = eq("R: r1, r2") + eq("x[r1] = 1") + eq("x[r2] = x[r1] * 2")
    with pytest.raises(UnsupportedFeatureError) as info:
        _compile(tmp_path, body)
    assert not isinstance(info.value, ModelLoadError)


def test_run_of_circular_model_is_one_clear_error(tmp_path: pathlib.Path) -> None:
    model = sd_model.load(write_model(tmp_path, CIRCULAR))
    with pytest.raises(ModelLoadError, match="circular") as info:
        model.run()
    message = str(info.value)
    assert "a -> b -> a" in message
    assert "\n" not in message


# --------------------------------------------------------------------- run size
DECAY = eq("S = INTEG(-k * S, 1)") + eq("k = 0.5")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ["euler", "RK45"])
def test_tiny_time_step_is_refused_before_allocating(
    tmp_path: pathlib.Path, backend: str, method: str
) -> None:
    # 100 years at 1e-9 would save 1e11 time points (the saving period follows the step).
    model = sd_model.load(write_model(tmp_path, DECAY, final=100))
    with pytest.raises(SettingsError, match=r"100,000,000,001 time points x \d+ values") as info:
        model.run(method=method, backend=backend, time_step=1e-9)
    assert re.search(r"raise saveper .* or time_step", str(info.value))


@pytest.mark.parametrize("backend", BACKENDS)
def test_absurd_step_count_is_refused_with_an_estimated_time(
    tmp_path: pathlib.Path, backend: str
) -> None:
    model = sd_model.load(write_model(tmp_path, DECAY, final=100))
    with pytest.raises(SettingsError, match=r"100,000,000,000 euler steps .* about [0-9.]+ \w+"):
        model.run(backend=backend, time_step=1e-9, saveper=1)


@needs_numba
def test_numba_path_refuses_absurd_runs_before_allocating(tmp_path: pathlib.Path) -> None:
    model = sd_model.load(write_model(tmp_path, DECAY, final=100))
    with pytest.raises(SettingsError, match="euler steps"):
        model.run(backend="compiled", jit=True, time_step=1e-9, saveper=1)


def test_run_size_follows_the_machine_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    grid = TimeGrid(0.0, 100.0, 0.25, 0.25)  # 401 saved times
    check_run_size(grid, SolverOptions(), values_per_save=1000)  # 3.2 MB: fine
    monkeypatch.setattr("sd_model.integrate._physical_memory", lambda: 4 * 3_000_000)
    with pytest.raises(SettingsError, match=r"401 time points x 1,000 values = 3\.21 MB"):
        check_run_size(grid, SolverOptions(), values_per_save=1000)


def test_time_grid_counts_saved_times_without_building_them() -> None:
    # 0..10 by 1; 0..9.5 by 0.5 plus the final time a hair below 10; the start alone.
    cases = [(TimeGrid(0, 10, 0.25, 1), 11), (TimeGrid(0, 9.9999999, 0.1, 0.5), 21)]
    cases.append((TimeGrid(3, 3, 1, 1), 1))
    for grid, expected in cases:
        assert grid.n_saves() == expected == len(grid.save_times())
