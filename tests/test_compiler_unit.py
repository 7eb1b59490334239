"""Unit tests of the compiler: exact solutions, safety, errors, layout."""

from __future__ import annotations

import math
import pathlib
import warnings

import numpy as np
import pytest

from sd_model import ParameterError, UnsupportedFeatureError
from sd_model.compiler import compile_model
from sd_model.integrate import SolverOptions, TimeGrid, integrate

CONTROL = (
    "FINAL TIME = {final}\n\t~\tYear\n\t~\t|\n\nINITIAL TIME = 0\n\t~\tYear\n\t~\t|\n\n"
    "SAVEPER = {saveper}\n\t~\tYear\n\t~\t|\n\nTIME STEP = {dt}\n\t~\tYear\n\t~\t|\n"
)


def compile_text(tmp_path: pathlib.Path, body: str, final=10, dt=0.25, saveper=1):
    from pysd.translators.vensim.vensim_file import VensimFile

    path = tmp_path / "model.mdl"
    path.write_text("{UTF-8}\n" + body + CONTROL.format(final=final, dt=dt, saveper=saveper))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vf = VensimFile(path)
        vf.parse()
        return compile_model(vf.get_abstract_model(), model_dir=tmp_path)


DECAY = "S = INTEG(-k * S, 1)\n\t~\t\n\t~\t|\n\nk = 0.5\n\t~\t\n\t~\t|\n\n"


def test_euler_is_exactly_the_discrete_recursion(tmp_path):
    cm = compile_text(tmp_path, DECAY)
    grid = cm.default_grid()
    res = integrate(cm.system([{}], grid), grid, SolverOptions(method="euler"))
    n = np.round(res.times / grid.time_step)
    np.testing.assert_allclose(res.states[:, 0], (1 - 0.5 * 0.25) ** n, rtol=1e-13)


def test_adaptive_reaches_the_exact_solution(tmp_path):
    cm = compile_text(tmp_path, DECAY)
    grid = cm.default_grid()
    res = integrate(
        cm.system([{"k": 0.5}, {"k": 1.0}], grid),
        grid,
        SolverOptions(method="DOP853", rtol=1e-11, atol=1e-13),
    )
    exact = np.exp(-np.outer(res.times, [0.5, 1.0]))
    np.testing.assert_allclose(res.states, exact, rtol=1e-8)
    assert res.observations[-1]["s"].shape == (2,)


def test_model_names_never_reach_the_generated_source(tmp_path):
    body = (
        "\"__import__('os').system('echo pwned')\" = INTEG(1, 0)\n\t~\t\n\t~\t|\n\n"
        "\"x; import os\" = \"__import__('os').system('echo pwned')\" * 2\n\t~\t\n\t~\t|\n\n"
    )
    cm = compile_text(tmp_path, body)
    assert "import" not in cm.source and "pwned" not in cm.source
    grid = cm.default_grid()
    res = integrate(cm.system([{}], grid), grid, SolverOptions(method="euler"))
    names = {v.name: v.py_name for v in cm.variables}
    assert res.observations[-1][names['"x; import os"']][0] == pytest.approx(20.0)


def test_unsupported_construct_names_the_function_and_element(tmp_path):
    # RANDOM BETA: a Vensim function neither the compiler nor PySD implements
    with pytest.raises(UnsupportedFeatureError, match=r"RANDOM BETA.*'noisy'"):
        compile_text(tmp_path, "noisy = RANDOM BETA(0, 1, 2, 3, 0, 1, 3)\n\t~\t\n\t~\t|\n\n")


def test_state_labels_breakpoints_and_discrete_elements(tmp_path):
    body = (
        "Region: north, south\n\t~\t\n\t~\t|\n\n"
        "P[Region] = INTEG(STEP(1, 3) + RAMP(1, 2, 4), 1)\n\t~\t\n\t~\t|\n\n"
        "late = DELAY FIXED(P[north], 1, 0)\n\t~\t\n\t~\t|\n\n"
        "sm = SMOOTH3(P[south], 2)\n\t~\t\n\t~\t|\n\n"
    )
    cm = compile_text(tmp_path, body)
    grid = cm.default_grid()
    system = cm.system([{}, {}], grid)
    labels = list(system.state_labels)
    assert labels[:2] == ["0:P[north]", "0:P[south]"]
    assert len(labels) == 2 * system.n_state
    assert {2.0, 3.0, 4.0} <= set(system.breakpoints)
    assert any("DELAY FIXED" in d for d in system.discrete_elements)
    with pytest.raises(UnsupportedFeatureError, match="euler"):
        integrate(system, grid, SolverOptions(method="RK45"))
    res = integrate(system, grid, SolverOptions(method="euler"))
    # DELAY FIXED shifts by exactly one time unit (4 Euler steps of 0.25)
    late = np.array([o["late"][0] for o in res.observations])
    p_name = next(v.py_name for v in cm.variables if v.name == "P")
    north = np.array([o[p_name][0, 0] for o in res.observations])
    np.testing.assert_allclose(late[1:], north[:-1])


def test_dataarray_override_with_unknown_dim_is_rejected(tmp_path):
    import xarray as xr

    body = "Region: a, b\n\t~\t\n\t~\t|\n\nc[Region] = 1, 2\n\t~\t\n\t~\t|\n\n"
    cm = compile_text(tmp_path, body)
    bad = xr.DataArray([1.0, 2.0], {"Other": ["x", "y"]}, ["Other"])
    with pytest.raises(ParameterError, match="Other"):
        cm.system([{"c": bad}], cm.default_grid())


def test_dataarray_overrides_are_placed_by_their_labels(tmp_path):
    import xarray as xr

    body = (
        "Region: a, b, c\n\t~\t\n\t~\t|\n\nk[Region] = 1, 2, 3\n\t~\t\n\t~\t|\n\n"
        "s[Region] = INTEG(k[Region], 0)\n\t~\t\n\t~\t|\n\n"
    )
    cm = compile_text(tmp_path, body, final=1, dt=1)
    grid = cm.default_grid()
    in_order = xr.DataArray([10.0, 20.0, 30.0], {"Region": ["a", "b", "c"]}, ["Region"])
    shuffled = xr.DataArray([30.0, 10.0, 20.0], {"Region": ["c", "a", "b"]}, ["Region"])
    for value in (in_order, shuffled):
        res = integrate(cm.system([{"k": value}], grid), grid, SolverOptions(method="euler"))
        np.testing.assert_array_equal(np.asarray(res.states)[-1].ravel(), [10.0, 20.0, 30.0])


def test_control_values_and_time_units(tmp_path):
    cm = compile_text(tmp_path, DECAY, final=7, dt=0.5, saveper=0.5)
    assert cm.control == {
        "initial_time": 0.0,
        "final_time": 7.0,
        "time_step": 0.5,
        "saveper": 0.5,
    }
    assert cm.time_units == "Year"
    kinds = {v.py_name: v.sd_kind for v in cm.variables}
    assert kinds["s"] == "stock" and kinds["k"] == "constant"


def test_batch_of_lookups_overrides(tmp_path):
    body = "tbl(\n\t(0,0),(10,10))\n\t~\t\n\t~\t|\n\ny = tbl(Time)\n\t~\t\n\t~\t|\n\n"
    cm = compile_text(tmp_path, body)
    grid = TimeGrid(0, 10, 1, 5)
    res = integrate(
        cm.system([{}, {"tbl": ([0.0, 10.0], [0.0, 20.0])}], grid),
        grid,
        SolverOptions(method="euler"),
    )
    np.testing.assert_allclose(res.observations[1]["y"], [5.0, 10.0])
    assert math.isclose(res.observations[2]["y"][1], 20.0)


def test_get_direct_data_and_its_overrides(tmp_path):
    import pandas as pd

    (tmp_path / "data.csv").write_text("time,val\n0,0\n10,10\n")
    cm = compile_text(
        tmp_path, "d := GET DIRECT DATA('data.csv', ',', 'A', 'B2')\n\t~\t\n\t~\t|\n\n"
    )
    grid = TimeGrid(0, 10, 1, 5)
    overrides = [{}, {"d": pd.Series([0.0, 20.0], index=[0.0, 10.0])}, {"d": 3.0}]
    res = integrate(cm.system(overrides, grid), grid, SolverOptions(method="euler"))
    np.testing.assert_allclose(res.observations[1]["d"], [5.0, 10.0, 3.0])
    assert next(v for v in cm.variables if v.py_name == "d").time_dependent
