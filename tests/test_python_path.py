"""The plain-Python tier (generated whole-run code for one scenario) gives the NumPy path's
results, fails the same way, falls back cleanly, and writes no model text into code.

Equality criterion: the Python tier performs the NumPy path's float operations in the
same order (``+ - * /``, comparisons, ``np.interp``'s formula, sequential sums), so its
results are compared bit for bit. The one exception is a model calling a transcendental
function (``exp``, ``log``, ``sin``, ``^``...): the Python tier calls the C library's
``math`` functions while NumPy may dispatch to its own SIMD implementations, which may
differ in the last bit on some CPUs; those models are compared to 1e-12 relative.
(On this machine every corpus model was bit-identical.)
"""

from __future__ import annotations

import dataclasses
import io
import pathlib
import tokenize
import warnings

import numpy as np
import pytest

from sd_model import IntegrationError
from sd_model.compiler import _emit_python, _lowered, compile_model
from sd_model.integrate import (
    SolverOptions,
    _integrate_fixed,
    fixed_step_tiers,
    integrate,
)
from tests._canonical import find_test_models
from tests.test_compiler_conformance import EXPECTED_FAILURES, MODELS

ROOT = find_test_models()

CONTROL = (
    "FINAL TIME = {final}\n\t~\tYear\n\t~\t|\n\nINITIAL TIME = 0\n\t~\tYear\n\t~\t|\n\n"
    "SAVEPER = {saveper}\n\t~\tYear\n\t~\t|\n\nTIME STEP = {dt}\n\t~\tYear\n\t~\t|\n"
)


def _parse(path: pathlib.Path):
    if path.suffix.lower() == ".mdl":
        from pysd.translators.vensim.vensim_file import VensimFile

        f = VensimFile(path)
    else:
        from pysd.translators.xmile.xmile_file import XmileFile

        f = XmileFile(path)
    f.parse()
    return f.get_abstract_model()


class _Compiled:
    """Each corpus model parsed and compiled once for the whole module (PySD's parser
    reads the shared folder; nothing is written there)."""

    def __init__(self) -> None:
        self._cache: dict[str, object] = {}

    def __call__(self, rel: str):
        if rel not in self._cache:
            assert ROOT is not None
            path = ROOT / rel
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._cache[rel] = compile_model(_parse(path), model_dir=path.parent)
        return self._cache[rel]


@pytest.fixture(scope="module")
def compiled() -> _Compiled:
    return _Compiled()


def compile_text(tmp_path: pathlib.Path, body: str, final=10, dt=0.25, saveper=0.25):
    path = tmp_path / "model.mdl"
    path.write_text("{UTF-8}\n" + body + CONTROL.format(final=final, dt=dt, saveper=saveper))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile_model(_parse(path), model_dir=tmp_path)


def _uses_libm(ps: _emit_python.PythonSource) -> bool:
    return "_m." in ps.src or "_pow(" in ps.src


def _assert_equal(fast, ref, exact: bool) -> int:
    """Compare two runs; returns the number of values compared."""
    np.testing.assert_array_equal(fast.times, ref.times)
    assert fast.nfev == ref.nfev
    assert fast.messages == ref.messages
    assert len(fast.observations) == len(ref.observations) > 0
    compare = (
        np.testing.assert_array_equal
        if exact
        else lambda a, b, err_msg="": np.testing.assert_allclose(
            a, b, rtol=1e-12, atol=0, err_msg=err_msg
        )
    )
    compare(fast.states, ref.states, err_msg="states")
    n = fast.states.size
    for got, want in zip(fast.observations, ref.observations, strict=True):
        assert got.keys() == want.keys()
        for name in want:
            assert np.shape(got[name]) == np.shape(want[name]), name
            compare(got[name], want[name], err_msg=name)
            n += np.size(want[name])
    return n


CORPUS = [m for m in MODELS if m not in EXPECTED_FAILURES]


@pytest.mark.skipif(ROOT is None, reason="shared test models not found (SD_MODEL_TEST_MODELS)")
@pytest.mark.parametrize("method", ["euler", "rk4"])
@pytest.mark.parametrize("model", CORPUS or ["none"])
def test_python_tier_equals_numpy_on_the_corpus(
    compiled, model: str, method: str, monkeypatch
) -> None:
    # the size rule is about speed, not results: test the subscripted models too
    monkeypatch.setattr(_emit_python, "CELLS_PER_VARIABLE", 10**6)
    monkeypatch.setattr(_emit_python, "CELL_LIMIT", 5000)
    cm = compiled(model)
    grid = cm.default_grid()
    system = cm.system([{}], grid)
    if method == "rk4" and system.discrete_elements:
        assert system.run_python("rk4") is None
        assert "once per time step" in system.python_note
        return
    fast = system.run_python(method)
    if fast is None:
        # only the NumPy-only constructs (vector functions, allocation) are not written,
        # and models too large for the limit above
        assert "NumpyOnly" in system.python_note or "cells" in system.python_note
        return
    assert fast.columns is not None
    ref = _integrate_fixed(cm.system([{}], grid), grid, SolverOptions(method=method))
    key = next(k for k in cm._python if k[0] == method)
    assert _assert_equal(fast, ref, exact=not _uses_libm(cm._python[key])) > 0


@pytest.mark.skipif(ROOT is None, reason="shared test models not found (SD_MODEL_TEST_MODELS)")
@pytest.mark.parametrize(
    "model",
    [
        "tests/non_negative_stocks/test_non_negative_stocks.xmile",
        "tests/delay_fixed/test_delay_fixed.mdl",
        "tests/delays/test_delays.mdl",
        "tests/subscripted_lookups/test_subscripted_lookups.mdl",
        "tests/forecast/test_forecast.mdl",
    ],
)
def test_the_constructs_named_run_on_the_python_tier(compiled, model: str) -> None:
    # the corpus test would pass vacuously if these fell back to NumPy
    if model not in CORPUS:
        pytest.skip(f"{model} is not in this corpus")
    cm = compiled(model)
    system = cm.system([{}], cm.default_grid())
    assert system.run_python("euler") is not None, system.python_note


def test_non_negative_stock_stops_at_zero(tmp_path, monkeypatch) -> None:
    # XMILE's non-negative stock through the IR: drains at 3 per year from 10
    cm = compile_text(tmp_path, "S = INTEG(-3, 10)\n\t~\t\n\t~\t|\n\n")
    prog = cm._program
    j = next(sf.index for sf in prog.statefuls if sf.kind == "integ")
    sfs = list(prog.statefuls)
    sfs[j] = dataclasses.replace(sfs[j], non_negative=True)
    cm._program = dataclasses.replace(prog, statefuls=tuple(sfs))
    cm._code.clear()
    for method in ("euler", "rk4"):
        grid = cm.default_grid()
        fast = cm.system([{}], grid).run_python(method)
        ref = _integrate_fixed(cm.system([{}], grid), grid, SolverOptions(method=method))
        _assert_equal(fast, ref, exact=True)
        s = np.array([o["s"][0] for o in fast.observations])
        assert s[4] == 10 - 3 * 1.0  # both schemes are exact on a straight line
        if method == "euler":  # an Euler step clamps the stock at zero
            assert s.min() == 0.0 and s[-1] == 0.0


def test_sample_if_true_and_delay_fixed(tmp_path) -> None:
    body = (
        "x = 1 + Time\n\t~\t\n\t~\t|\n\n"
        "s = SAMPLE IF TRUE(Time >= 2, x, -1)\n\t~\t\n\t~\t|\n\n"
        "d = DELAY FIXED(x, 1, 0)\n\t~\t\n\t~\t|\n\n"
        "acc = INTEG(s + d, 0)\n\t~\t\n\t~\t|\n\n"
    )
    cm = compile_text(tmp_path, body, final=4, dt=0.5, saveper=0.5)
    grid = cm.default_grid()
    fast = cm.system([{}], grid).run_python("euler")
    assert fast is not None
    ref = _integrate_fixed(cm.system([{}], grid), grid, SolverOptions(method="euler"))
    _assert_equal(fast, ref, exact=True)
    s = np.array([o["s"][0] for o in fast.observations])
    d = np.array([o["d"][0] for o in fast.observations])
    t = fast.times
    # sampled while Time >= 2 (x itself), held at the initial -1 before
    np.testing.assert_array_equal(s, np.where(t >= 2, 1 + t, -1.0))
    # the pipe holds the initial value for one delay time, then x one time unit late
    np.testing.assert_array_equal(d, np.where(t >= 1, t, 0.0))
    # RK4 refuses per-step updates, on every tier
    with pytest.raises(Exception, match="once per time step|euler"):
        integrate(cm.system([{}], grid), grid, SolverOptions(method="rk4"))


def test_nonfinite_state_names_the_stock_and_time(tmp_path, monkeypatch) -> None:
    body = (
        "g = 1\n\t~\t\n\t~\t|\n\n"
        "P = INTEG(g * P * P, 1)\n\t~\t\n\t~\t|\n\n"
        "other = INTEG(1, 0)\n\t~\t\n\t~\t|\n\n"
    )
    cm = compile_text(tmp_path, body, final=3, dt=0.125, saveper=0.125)
    grid = cm.default_grid()
    errors = {}
    for tier in ("python", "numpy"):
        monkeypatch.setenv("SD_MODEL_TIER", tier)
        system = cm.system([{}], grid)
        with pytest.raises(IntegrationError) as info:
            integrate(system, grid, SolverOptions(method="euler"))
        errors[tier] = str(info.value)
    assert "for P at time" in errors["python"]
    assert errors["python"] == errors["numpy"]


def test_python_exception_falls_back_to_numpy_values(tmp_path, monkeypatch) -> None:
    # 1 / (2 - Time) raises in Python at Time 2; NumPy gives inf there (not in a stock)
    body = (
        "r = 1 / (2 - Time)\n\t~\t\n\t~\t|\n\n"
        "S = INTEG(IF THEN ELSE(Time < 1, 1, 0), 0)\n\t~\t\n\t~\t|\n\n"
    )
    cm = compile_text(tmp_path, body, final=3, dt=0.5, saveper=0.5)
    grid = cm.default_grid()
    system = cm.system([{}], grid)
    assert system.run_python("euler") is None
    assert "arithmetic" in system.python_note
    monkeypatch.setenv("SD_MODEL_TIER", "python")
    res = integrate(cm.system([{}], grid), grid, SolverOptions(method="euler"))
    assert res.tier == "numpy"
    r = np.array([o["r"][0] for o in res.observations])
    assert np.isinf(r[4]) and r[0] == 0.5


def test_unknown_node_and_numpy_only_constructs_fall_back(tmp_path) -> None:
    cm = compile_text(tmp_path, "k = 2\n\t~\t\n\t~\t|\n\ny = INTEG(k * Time, 0)\n\t~\t\n\t~\t|\n\n")
    prog = cm._program
    code = cm._code_for(frozenset())
    system = cm.system([{}], cm.default_grid())
    blocks = _emit_python.blocks_of(prog, system._ns)

    @dataclasses.dataclass(frozen=True)
    class NewNode:  # a node added to the IR after this emitter was written
        value: float = 1.0

    i = prog.by_py_name["k"]
    el = prog.elements[i]
    comp = dataclasses.replace(el.components[0], expr=NewNode())
    els = list(prog.elements)
    els[i] = dataclasses.replace(el, components=(comp,), uses_time=True)
    odd = dataclasses.replace(prog, elements=tuple(els))
    dynamic = code.dynamic | {i}
    with pytest.raises(_emit_python.PythonUnsupported, match="NewNode"):
        _emit_python.generate_python(odd, dynamic, code.obs_names, blocks, 1, "euler")
    only = dataclasses.replace(el.components[0], expr=_lowered.NumpyOnly("VECTOR SORT", "{0}", ()))
    els[i] = dataclasses.replace(el, components=(only,), uses_time=True)
    odd = dataclasses.replace(prog, elements=tuple(els))
    with pytest.raises(_emit_python.PythonUnsupported, match="NumpyOnly"):
        _emit_python.generate_python(odd, dynamic, code.obs_names, blocks, 1, "euler")


def test_large_models_stay_on_numpy(tmp_path, monkeypatch) -> None:
    body = (
        "Region: r1, r2, r3, r4\n\t~\t\n\t~\t|\n\n"
        "P[Region] = INTEG(0.1 * P[Region], 1)\n\t~\t\n\t~\t|\n\n"
    )
    cm = compile_text(tmp_path, body)
    monkeypatch.setattr(_emit_python, "CELL_LIMIT", 3)
    system = cm.system([{}], cm.default_grid())
    assert system.run_python("euler") is None
    assert "more than 3" in system.python_note
    cm._python.clear()
    monkeypatch.setattr(_emit_python, "CELL_LIMIT", 2000)
    monkeypatch.setattr(_emit_python, "CELLS_PER_VARIABLE", 2)
    system = cm.system([{}], cm.default_grid())
    assert system.run_python("euler") is None
    assert "time-dependent variables" in system.python_note


def test_tier_rule(tmp_path, monkeypatch) -> None:
    cm = compile_text(tmp_path, "y = INTEG(1, 0)\n\t~\t\n\t~\t|\n\n")
    grid = cm.default_grid()
    euler = SolverOptions(method="euler")
    monkeypatch.delenv("SD_MODEL_TIER", raising=False)
    one, two = cm.system([{}], grid), cm.system([{}, {}], grid)
    tiers = fixed_step_tiers(one, euler)
    assert tiers[-2:] == ["python", "numpy"]
    assert "python" not in fixed_step_tiers(two, euler)
    assert fixed_step_tiers(one, SolverOptions(method="euler-numba"))[0] == "numba"
    monkeypatch.setenv("SD_MODEL_TIER", "numpy")
    assert fixed_step_tiers(one, euler) == ["numpy"]
    assert integrate(one, grid, euler).tier == "numpy"
    monkeypatch.setenv("SD_MODEL_TIER", "python")
    assert fixed_step_tiers(one, euler) == ["python", "numpy"]
    res = integrate(cm.system([{}], grid), grid, euler)
    assert res.tier == "python" and res.columns is not None
    np.testing.assert_array_equal(res.columns["y"][:, 0], res.times)
    monkeypatch.setenv("SD_MODEL_TIER", "fastest")
    with pytest.raises(Exception, match="SD_MODEL_TIER"):
        fixed_step_tiers(one, euler)


def test_model_run_is_the_same_on_every_tier(tmp_path, monkeypatch) -> None:
    import sd_model

    path = tmp_path / "m.mdl"
    path.write_text(
        "{UTF-8}\nRegion: north, south\n\t~\t\n\t~\t|\n\n"
        "g[Region] = 0.1, 0.2\n\t~\t1/Year\n\t~\t|\n\n"
        "pop[Region] = INTEG(g[Region] * pop[Region] - out[Region], 1)\n\t~\tpeople\n\t~\t|\n\n"
        "out[Region] = SMOOTH(pop[Region] * 0.05, 2)\n\t~\tpeople/Year\n\t~\t|\n\n"
        "total = SUM(pop[Region!])\n\t~\tpeople\n\t~\t|\n\n"
        "effect = WITH LOOKUP(total, ([(0,0)-(10,2)],(0,1),(2,1.5),(10,2)))\n\t~\t\n\t~\t|\n\n"
        + CONTROL.format(final=5, dt=0.25, saveper=0.5)
    )
    model = sd_model.load(path)
    runs = {}
    for tier in ("python", "numpy"):
        monkeypatch.setenv("SD_MODEL_TIER", tier)
        runs[tier] = model.run({"g[north]": 0.3})
    a, b = runs["python"], runs["numpy"]
    # the attrs say which tier ran (and why faster ones did not); all else is identical
    assert (a.attrs.pop("solver_tier"), b.attrs.pop("solver_tier")) == ("python", "numpy")
    for ds in (a, b):
        ds.attrs.pop("created", None)
        ds.attrs.pop("solver_tier_note", None)
    import xarray as xr

    xr.testing.assert_identical(a, b)
    assert a["pop"].dims == ("time", "Region")


def test_model_text_never_reaches_the_generated_source(tmp_path) -> None:
    hostile = "evil'); __import__('os').system('echo pwned') #"
    body = (
        f'"{hostile}" = 3\n\t~\t\n\t~\t__import__("os") comment """ \'\'\' \n\t|\n\n'
        f'y = INTEG("{hostile}" * Time, 0)\n\t~\t\n\t~\t|\n\n'
        "z = WITH LOOKUP(y, ([(0,0)-(10,10)],(0,0),(10,10)))\n\t~\t\n\t~\t|\n\n"
    )
    cm = compile_text(tmp_path, body, final=2, dt=0.5, saveper=0.5)
    grid = cm.default_grid()
    res = cm.system([{}], grid).run_python("euler")
    assert res is not None
    (ps,) = cm._python.values()
    assert "evil" not in ps.src and "import" not in ps.src and "os" not in ps.src.split()
    # every name in the source is generated (v3_0, y0, _w1...) or one of the helpers
    allowed = {
        "def", "for", "in", "if", "else", "return", "and", "or", "not", "None", "break",
        "range", "iter", "abs", "next", "t",
        "TI", "TF", "DT", "SP", "HS", "K", "S", "L", "Y0", "t0", "dt",
        "nan", "inf", "exp", "log", "sin", "cos", "tan", "asin", "acos", "atan",
        "sinh", "cosh", "tanh", "sqrt", "_draw",
    }  # fmt: skip
    import re

    generated = re.compile(r"^(_\w+|[vcoyandq]\d+(_\d+)?|q\d+_\d+|_L\d+[xym])$")
    for tok in tokenize.generate_tokens(io.StringIO(ps.src).readline):
        assert tok.type != tokenize.STRING, tok
        if tok.type == tokenize.NAME:
            assert tok.string in allowed or generated.match(tok.string), tok.string
    # and the run computes: y' = 3 * Time
    y = np.array([o["y"][0] for o in res.observations])
    np.testing.assert_allclose(y, 3 * np.array([0, 0, 0.5, 1.5, 3.0]) * 0.5)


def test_random_draws_are_the_numpy_paths(tmp_path) -> None:
    body = (
        "Region: north, south\n\t~\t\n\t~\t|\n\n"
        "u[Region] = RANDOM UNIFORM(0, 10, 1)\n\t~\t\n\t~\t|\n\n"
        "z = RANDOM NORMAL(-1, 1, 0, 0.5, 1)\n\t~\t\n\t~\t|\n\n"
        "acc[Region] = INTEG(u[Region] + z, 0)\n\t~\t\n\t~\t|\n\n"
    )
    cm = compile_text(tmp_path, body, final=5, dt=0.25, saveper=0.5)
    grid = cm.default_grid()
    fast = cm.system([{}], grid, seed=7).run_python("euler")
    assert fast is not None
    ref = _integrate_fixed(cm.system([{}], grid, seed=7), grid, SolverOptions(method="euler"))
    _assert_equal(fast, ref, exact=True)
    u = fast.columns["u"][:, 0]
    assert 0 <= u.min() and u.max() <= 10 and u.std() > 0
    other = cm.system([{}], grid, seed=8).run_python("euler")
    assert not np.array_equal(other.columns["u"], fast.columns["u"])


@pytest.mark.skipif(ROOT is None, reason="shared test models not found (SD_MODEL_TEST_MODELS)")
def test_query_file_runs_on_the_python_tier(compiled) -> None:
    # RANDOM UNIFORM and 58 PULSEs: NumPy pays ~50 us per PULSE call here
    cm = compiled("samples/Query_file/Query_file.mdl")
    grid = cm.default_grid()
    fast = cm.system([{}], grid, seed=3).run_python("euler")
    assert fast is not None, "the Python tier should cover Query_file"
    ref = _integrate_fixed(cm.system([{}], grid, seed=3), grid, SolverOptions(method="euler"))
    _assert_equal(fast, ref, exact=True)
