"""Constructs of published models: compiled equal to PySD's Euler run, or refused by name.

The models are in ``tests/models/compiler_constructs``; each is small enough to check
against PySD's own run (the reference backend) in a second or two.
"""

from __future__ import annotations

import pathlib
import warnings

import numpy as np
import pytest

import sd_model
from sd_model import UnsupportedFeatureError
from sd_model.compiler import _kernel, compile_model
from sd_model.integrate import SolverOptions, integrate

MODELS = pathlib.Path(__file__).resolve().parent / "models" / "compiler_constructs"


def _assert_compiled_equals_pysd(name: str) -> sd_model.Model:
    model = sd_model.load(MODELS / name)
    got = model.run(backend="compiled")
    want = model.run(backend="pysd")
    compared = 0
    for var in want.data_vars:
        if var not in got:
            continue
        a, b = np.asarray(got[var], dtype=float), np.asarray(want[var], dtype=float)
        assert a.shape == b.shape, var
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=var)
        compared += 1
    assert compared == len(want.data_vars), "every variable PySD returns is compared"
    return model


def _program(name: str):
    from pysd.translators.vensim.vensim_file import VensimFile

    path = MODELS / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vf = VensimFile(path)
        vf.parse()
        return compile_model(vf.get_abstract_model(), model_dir=path.parent)


# ---------------------------------------------------------------- subscripted macro calls
def test_subscripted_macro_call_equals_pysd() -> None:
    """``y[g] = ROUNDTO(z[g], k)`` and a macro holding a stock, called per region."""
    model = _assert_compiled_equals_pysd("macro_subscripted.mdl")
    res = model.run(backend="compiled")
    # ROUNDTO rounds to the nearest multiple of k = 0.5, cell by cell
    z = np.asarray(res["z"])
    np.testing.assert_array_equal(np.asarray(res["y"]), np.floor(z / 0.5 + 0.5) * 0.5)
    # the macro's stock starts at its input, one state per region (tau differs)
    s = np.asarray(res["s"])
    np.testing.assert_allclose(s[0], z[0], rtol=1e-15)
    assert len(set(np.round(s[-1] - z[-1], 9))) == 3


def test_macro_call_inside_a_reduction_equals_pysd() -> None:
    """``SUM(DOUBLE(z[g!]))``, and a macro holding a stock summed over one axis of two."""
    model = _assert_compiled_equals_pysd("macro_in_reduction.mdl")
    res = model.run(backend="compiled")
    # DOUBLE(z + Time) summed over g = 2 * (1 + 2 + 2 * Time)
    np.testing.assert_allclose(res["t"], 2 * (3 + 2 * res["time"]), rtol=1e-15)


# ---------------------------------------------------------------- subscript mappings
@pytest.mark.parametrize("name", ["mapping.mdl", "mapping_multi.mdl", "mapping_copy.mdl"])
def test_subscript_mapping_equals_pysd(name: str) -> None:
    _assert_compiled_equals_pysd(name)


def test_mapping_read_in_a_subrange_context_follows_positions() -> None:
    """``x[r1sub] = flow[r2]`` with ``r2 -> r1``: Vensim's positional correspondence.

    PySD 3.14 cannot run this model (xarray rejects the dims), so the truth is the
    mapping itself: a2 <-> a1, b2 <-> b1.
    """
    res = sd_model.load(MODELS / "mapping_subrange_context.mdl").run(backend="compiled")
    x = res["x"].isel(time=-1)
    assert list(x.coords["r1sub"].values) == ["a1", "b1"]
    np.testing.assert_array_equal(x.values, [1 + 10, 2 + 20])


# ---------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    ("name", "construct", "element"),
    [
        ("delay_material.mdl", "DELAY MATERIAL", "outflow"),
        ("sinteg.mdl", "SINTEG", "level"),
        ("sinteg.xmile", "SINTEG", "Room Temperature"),
    ],
)
def test_function_pysd_lacks_is_refused_by_name(name: str, construct: str, element: str) -> None:
    with pytest.raises(UnsupportedFeatureError) as info:
        sd_model.load(MODELS / name).run(backend="compiled")
    msg = str(info.value)
    assert f"the function {construct} in element '{element}'" in msg
    # PySD has no implementation either: do not send the user there
    assert "PySD does not implement it" in msg
    assert "backend='pysd'" not in msg


def test_random_times_zero_compiles_and_equals_pysd() -> None:
    # RANDOM NORMAL(...) * 0 is exactly 0 in every step: both backends give the
    # deterministic model (backlog' = 100 - backlog / 2).
    model = sd_model.load(MODELS / "random_zero.mdl")
    ours = model.run(backend="compiled", seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = model.run(backend="pysd", seed=3)
    assert ours.attrs["backend"] == "compiled"
    # a draw is never a constant, even when nothing else in its equation varies
    assert ours["noise"].dims == ("time",) and np.all(ours["noise"].values == 0.0)
    with pytest.raises(sd_model.ParameterError, match="cannot be overridden"):
        model.run({"noise": 1.0}, backend="compiled")
    np.testing.assert_allclose(ours["backlog"].values, ref["backlog"].values, rtol=1e-12)


# ---------------------------------------------------------------- numba kernel
@pytest.mark.slow
@pytest.mark.skipif(not _kernel.numba_available(), reason="numba is not installed")
# Each numba compile costs ~20 s of the suite: the two macro models are the new kernel
# paths (subscript mappings reach the kernel through the ordinary element loops).
@pytest.mark.parametrize("name", ["macro_subscripted.mdl", "macro_in_reduction.mdl"])
def test_kernel_covers_the_constructs(name: str) -> None:
    cm = _program(name)
    grid = cm.default_grid()
    system = cm.system([{}, {}], grid)
    fast = system.run_euler()
    assert fast is not None, system.kernel_note
    ref = integrate(system, grid, SolverOptions(method="euler"))
    np.testing.assert_allclose(fast.states, ref.states, rtol=1e-12, atol=1e-12)
    for got, want in zip(fast.observations, ref.observations, strict=True):
        for var in want:
            np.testing.assert_allclose(got[var], want[var], rtol=1e-12, atol=1e-12, err_msg=var)
