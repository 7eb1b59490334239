"""The cheaper run path (lazy labels, one errstate per loop, stacked observations)
gives exactly what the plain path gives, and errors still name the element."""

from __future__ import annotations

import pathlib
import warnings

import numpy as np
import pytest

from sd_model import IntegrationError
from sd_model.compiler import compile_model
from sd_model.integrate import SolverOptions, integrate

CONTROL = (
    "FINAL TIME = {final}\n\t~\tYear\n\t~\t|\n\nINITIAL TIME = 0\n\t~\tYear\n\t~\t|\n\n"
    "SAVEPER = {saveper}\n\t~\tYear\n\t~\t|\n\nTIME STEP = {dt}\n\t~\tYear\n\t~\t|\n"
)

SCALAR = (
    "S = INTEG(inflow - k * S, 1)\n\t~\t\n\t~\t|\n\n"
    "inflow = 0.3 + STEP(1, 2) + 0.1 * SIN(Time)\n\t~\t\n\t~\t|\n\n"
    "k = 0.5\n\t~\t\n\t~\t|\n\n"
    "doubled = 2 * k\n\t~\t\n\t~\t|\n\n"
    "sm = SMOOTH(S, 2)\n\t~\t\n\t~\t|\n\n"
)

SUBSCRIPTED = (
    "Region: north, south\n\t~\t\n\t~\t|\n\n"
    "g[Region] = 0.1, 0.4\n\t~\t\n\t~\t|\n\n"
    "P[Region] = INTEG(g[Region] * P[Region], 1)\n\t~\t\n\t~\t|\n\n"
    "total = SUM(P[Region!])\n\t~\t\n\t~\t|\n\n"
)


def compile_text(tmp_path: pathlib.Path, body: str, final=10, dt=0.25, saveper=0.25):
    from pysd.translators.vensim.vensim_file import VensimFile

    path = tmp_path / "model.mdl"
    path.write_text("{UTF-8}\n" + body + CONTROL.format(final=final, dt=dt, saveper=saveper))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vf = VensimFile(path)
        vf.parse()
        return compile_model(vf.get_abstract_model(), model_dir=tmp_path)


class _Plain:
    """The system without its ``stepping`` context: every call enters its own errstate."""

    def __init__(self, system):
        self._s = system

    def __getattr__(self, name):
        if name == "stepping":
            raise AttributeError(name)
        return getattr(self._s, name)


def _assert_same(a, b):
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.states, b.states)
    assert a.nfev == b.nfev
    assert len(a.observations) == len(b.observations)
    for oa, ob in zip(a.observations, b.observations, strict=True):
        assert oa.keys() == ob.keys()
        for k in oa:
            np.testing.assert_array_equal(oa[k], ob[k], err_msg=k)


@pytest.mark.parametrize("body", [SCALAR, SUBSCRIPTED], ids=["scalar", "subscripted"])
@pytest.mark.parametrize("method", ["euler", "rk4"])
@pytest.mark.parametrize("batch", [1, 3])
def test_one_errstate_per_loop_gives_the_same_run(tmp_path, body, method, batch):
    cm = compile_text(tmp_path, body)
    grid = cm.default_grid()
    overrides = [{}] * batch
    fast = integrate(cm.system(overrides, grid), grid, SolverOptions(method=method))
    plain = integrate(_Plain(cm.system(overrides, grid)), grid, SolverOptions(method=method))
    _assert_same(fast, plain)
    # S after one step of the scalar model is the Euler recursion itself.
    if body is SCALAR and method == "euler":
        s1 = 1 + 0.25 * (0.3 + 0.1 * np.sin(0.0) - 0.5 * 1)
        assert fast.observations[1]["s"][0] == s1


def test_stacked_observation_equals_the_general_path(tmp_path):
    cm = compile_text(tmp_path, SCALAR)
    grid = cm.default_grid()
    system = cm.system([{}, {"k": 0.25}], grid)
    assert system._all_scalar
    y = system.initial_state() * 1.5
    stacked = system.observe(1.0, y)
    system._all_scalar = False
    general = system.observe(1.0, y)
    assert stacked.keys() == general.keys()
    for k in stacked:
        assert stacked[k].shape == general[k].shape, k
        np.testing.assert_array_equal(stacked[k], general[k], err_msg=k)
    # observed values are copies: changing y afterwards leaves them alone
    before = stacked["s"].copy()
    y[:] = 0.0
    np.testing.assert_array_equal(stacked["s"], before)
    np.testing.assert_array_equal(stacked["k"], [0.5, 0.25])


def test_lazy_labels_still_name_the_element(tmp_path):
    body = (
        "Region: north, south\n\t~\t\n\t~\t|\n\n"
        "g[Region] = 0, 1\n\t~\t\n\t~\t|\n\n"
        "P[Region] = INTEG(g[Region] * P[Region] * P[Region], 1)\n\t~\t\n\t~\t|\n\n"
    )
    cm = compile_text(tmp_path, body, final=3, dt=0.125, saveper=0.125)
    grid = cm.default_grid()
    system = cm.system([{}], grid)
    assert system._labels_cache is None  # not built for a run that does not fail
    errstate = np.geterr()
    with pytest.raises(IntegrationError, match=r"P\[south\]"):
        integrate(system, grid, SolverOptions(method="euler"))
    assert np.geterr() == errstate  # the loop's errstate was left on the way out
    assert list(system.state_labels) == ["P[north]", "P[south]"]
    batch = cm.system([{}, {}], grid)
    assert list(batch.state_labels) == ["0:P[north]", "0:P[south]", "1:P[north]", "1:P[south]"]


def test_dataset_assembly_equals_xarrays_constructor():
    import xarray as xr

    from sd_model.results import _assemble

    rng = np.random.default_rng(0)
    data_vars = {
        "stock": (["scenario", "time", "Region"], rng.random((2, 4, 3)), {"units": "Person"}),
        "rate": (["scenario", "Region"], rng.random((2, 3)), {"units": "1/Year"}),
        "solver_nfev": (["scenario"], np.array([4, 4])),
    }
    coords = {
        "scenario": ["a", "b"],
        "time": ("time", np.arange(4.0), {"units": "Year"}),
        "Region": ["north", "south", "east"],
    }
    fast = _assemble(dict(data_vars), dict(coords))
    ref = xr.Dataset(data_vars, coords=coords)
    xr.testing.assert_identical(fast, ref)
    assert list(fast.dims) == list(ref.dims)
    assert list(fast.variables) == list(ref.variables)
    assert fast.xindexes.keys() == ref.xindexes.keys()
    # a size that disagrees with the coords is refused as xarray refuses it
    bad = dict(data_vars, rate=(["scenario", "Region"], np.zeros((2, 2))))
    with pytest.raises(ValueError):
        _assemble(bad, dict(coords))
