"""The C tier: the whole fixed-step run compiled with the system C compiler.

Its results are compared with the NumPy path (the reference of the compiled backend,
itself checked against Vensim's canonical outputs) within 1e-12 relative; the tier's
fallbacks (no compiler, a compiler error, a construct it does not cover) are checked to
return None with a reason and to leave ``integrate`` on the next tier; and a model whose
names and comments are C source is checked not to reach the generated code.
"""

from __future__ import annotations

import os
import pathlib
import stat
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pytest

import sd_model
from sd_model.compiler import CompiledModel, _cbuild, _emit_c, _statefuls, compile_model
from sd_model.integrate import IntegrationResult, SolverOptions, integrate
from tests._canonical import find_test_models

ROOT = find_test_models()
HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent


def _have_compiler() -> bool:
    try:
        _cbuild.find_compiler()
    except _cbuild.NoCompiler:
        return False
    return True


needs_cc = pytest.mark.skipif(not _have_compiler(), reason="no C compiler on this machine")

# One model per family of constructs (the whole corpus: test_whole_corpus, slow).
REPRESENTATIVE = [
    "samples/teacup/teacup.mdl",
    "samples/Roessler_Chaos/roessler_chaos.mdl",  # chaotic: amplifies any rounding change
    "tests/delays/test_delays.mdl",
    "tests/delay_fixed/test_delay_fixed.mdl",
    "tests/forecast/test_forecast.mdl",
    "tests/subscripted_delays/test_subscripted_delays.mdl",
    "tests/subscript_aggregation/test_subscript_aggregation.mdl",
    "tests/subscript_mapping_vensim/test_subscript_mapping_vensim.mdl",
    "tests/lookups/test_lookups.mdl",
    "tests/get_lookups_subscripted_args/test_get_lookups_subscripted_args.mdl",
    "tests/macro_stock/test_macro_stock.mdl",
    "tests/non_negative_stocks/test_non_negative_stocks_behavior.xmile",
    "tests/subscript_logicals/test_subscript_logicals.mdl",
]

# Constructs the corpus lacks (TREND, SAMPLE IF TRUE, DELAY N, PULSE TRAIN, RAMP, STEP,
# INITIAL, reductions, logic) in one subscripted model; DISCRETE holds the ones that
# move once per Euler step (RK4 refuses them).
_KITCHEN = """{{UTF-8}}
region: north, south, east
\t~\t\n\t~\t\n\t|

gain[region] = 0.5, 0.75, 1.25
\t~\t1/Year\n\t~\t\t|

inflow[region] = gain[region] * (1 + STEP(2.5, 3) + RAMP(0.5, 2, 6) + PULSE(4, 1)
 + PULSE TRAIN(1, 0.5, 2, 8)) * (1 + 0.1 * SIN(Time))
\t~\tWidgets/Year\n\t~\t\t|

stock[region] = INTEG(inflow[region] - outflow[region], 1.5)
\t~\tWidgets\n\t~\t\t|

outflow[region] = stock[region] / 3.5 + MODULO(Time, 1.5) * QUANTUM(stock[region], 0.25) * 0.01
\t~\tWidgets/Year\n\t~\t\t|

smoothed[region] = SMOOTH3(stock[region], 2.5)
\t~\tWidgets\n\t~\t\t|

material[region] = DELAY3(inflow[region], 2.25)
\t~\tWidgets/Year\n\t~\t\t|

trend[region] = TREND(stock[region], 1.5, 0.05)
\t~\t1/Year\n\t~\t\t|

forecast[region] = FORECAST(stock[region], 2.5, 1.5)
\t~\tWidgets\n\t~\t\t|

total = SUM(stock[region!]) + VMAX(smoothed[region!]) - VMIN(material[region!])
 + PROD(gain[region!])
\t~\tWidgets\n\t~\t\t|

effect table(
\t[(0,0)-(10,2)],(0,0.5),(2,0.75),(4,1.5),(8,1.75),(10,2))
\t~\tDmnl\n\t~\t\t|

effect = effect table(total / 10) + XIDZ(total, Time - 3, 7) + ZIDZ(1, Time - 5)
 + INTEGER(total) * 0.001
\t~\tDmnl\n\t~\t\t|

logic = IF THEN ELSE(total > 5 :AND: Time <= 7 :OR: :NOT: (effect < 1), MIN(effect, 2),
 MAX(total, 0.5) ^ 0.5) + LN(1 + Time) + EXP(-Time) + ABS(-2) + LOG(100, 10) - 2 ^ 2
\t~\tDmnl\n\t~\t\t|

init total = INITIAL(total)
\t~\tWidgets\n\t~\t\t|

drain = INTEG(-2.5 - logic * 0.1, 5)
\t~\tWidgets\n\t~\t\t|
{discrete}
FINAL TIME = 10
\t~\tYear\n\t~\tThe final time.\n\t|

INITIAL TIME = 0
\t~\tYear\n\t~\tThe initial time.\n\t|

SAVEPER = 0.5
\t~\tYear [0,?]\n\t~\tThe saving interval.\n\t|

TIME STEP = 0.125
\t~\tYear [0,?]\n\t~\tThe time step.\n\t|

\\\\\\---/// Sketch information - do not modify anything except names
V300  Do not put anything below this section - it will be ignored
"""
_DISCRETE = """
delayed[region] = DELAY N(inflow[region], 1.75, 0.5, 3)
\t~\tWidgets/Year\n\t~\t\t|

sampled[region] = SAMPLE IF TRUE(MODULO(Time, 2) < 0.125, stock[region], 0.5)
\t~\tWidgets\n\t~\t\t|

fixed[region] = DELAY FIXED(inflow[region], 1.5, 0.25)
\t~\tWidgets/Year\n\t~\t\t|
"""

# A model whose names, units and comments are C source (and would break out of a C
# comment or string): none of it may reach the generated code.
_HOSTILE_NAME = '"evil */ }} int sd_abi(void) {{ return 99; }} /* {what}"'
_HOSTILE = """{{UTF-8}}
{rate} = 0.1
\t~\t1/Year */ #include <stdlib.h> /*
\t~\t*/ system("touch /tmp/sd_model_pwned"); /*
\t|

{stock} = INTEG({rate} * {stock}, 1)
\t~\tWidgets\n\t~\t*/ }}\n\t|

FINAL TIME = 10
\t~\tYear\n\t~\tThe final time.\n\t|

INITIAL TIME = 0
\t~\tYear\n\t~\tThe initial time.\n\t|

SAVEPER = 1
\t~\tYear [0,?]\n\t~\tThe saving interval.\n\t|

TIME STEP = 0.25
\t~\tYear [0,?]\n\t~\tThe time step.\n\t|

\\\\\\---/// Sketch information - do not modify anything except names
V300  Do not put anything below this section - it will be ignored
""".format(rate=_HOSTILE_NAME.format(what="rate"), stock=_HOSTILE_NAME.format(what="stock"))


# ---------------------------------------------------------------------------- helpers
@pytest.fixture(autouse=True)
def _c_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Compile synchronously (no tier policy) unless a test says otherwise."""
    monkeypatch.setenv("SD_MODEL_TIER", "c")
    monkeypatch.delenv("SD_MODEL_CC", raising=False)
    yield
    _cbuild.wait_for_background()


@pytest.fixture
def new_process(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """An empty cache folder and none of the tier's in-process memory; returns the folder."""
    _cbuild.wait_for_background()
    for name in ("_LIBS", "_HANDLES", "_FAILED", "_PENDING", "_SPENT", "_BUILT"):
        monkeypatch.setattr(_cbuild, name, {})
    cache = tmp_path / "cache"
    monkeypatch.setenv("SD_MODEL_CACHE", str(cache))
    return cache


def _compile(path: pathlib.Path) -> CompiledModel:
    from sd_model.translate import parse_abstract_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile_model(parse_abstract_model(path), model_dir=path.parent)


def _numpy_run(
    cm: CompiledModel,
    overrides: list[dict[str, float]],
    scheme: str,
    monkeypatch: pytest.MonkeyPatch,
) -> IntegrationResult:
    """The reference: integrate's own loop over the NumPy right-hand side."""
    grid = cm.default_grid()
    with monkeypatch.context() as m:
        m.setenv("SD_MODEL_TIER", "numpy")
        res = integrate(cm.system(overrides, grid), grid, SolverOptions(method=scheme))  # type: ignore[arg-type]
    assert res.tier == "numpy"
    return res


def _close(got: np.ndarray, want: np.ndarray, name: str) -> None:
    """Within 1e-12 of the variable's scale (its largest magnitude), NaN where NaN.

    Relative to the scale, not to each value: a value that cancels to ~1e-16 differs
    in its leading digit when any operand is rounded differently.
    """
    finite = np.isfinite(want)
    scale = float(np.max(np.abs(want[finite]), initial=0.0))
    np.testing.assert_allclose(
        got, want, rtol=1e-12, atol=1e-12 * scale, equal_nan=True, err_msg=name
    )


def _assert_same(got: IntegrationResult, want: IntegrationResult) -> int:
    """Equal within 1e-12 relative (see :func:`_close`); returns the values compared."""
    np.testing.assert_array_equal(got.times, want.times)
    states = np.asarray(want.states)
    for q in range(states.shape[1]):
        _close(np.asarray(got.states)[:, q], states[:, q], f"state {q}")
    assert len(got.observations) == len(want.observations)
    compared = states.size
    names = list(want.observations[0]) if len(want.observations) else []
    for name in names:
        a = np.asarray([np.asarray(g[name], dtype=float) for g in got.observations])
        b = np.asarray([np.asarray(w[name], dtype=float) for w in want.observations])
        assert a.shape == b.shape, name
        _close(a, b, name)
        compared += a.size
    for g, w in zip(got.observations, want.observations, strict=True):
        assert g.keys() == w.keys()
    return compared


def _check_model(
    cm: CompiledModel, scheme: str, monkeypatch: pytest.MonkeyPatch, overrides=None
) -> int:
    overrides = overrides or [{}]
    system = cm.system(overrides, cm.default_grid())
    got = system.run_c(scheme)
    assert got is not None, system.c_note
    return _assert_same(got, _numpy_run(cm, overrides, scheme, monkeypatch))


def _scaled_constants(cm: CompiledModel, factors: list[float]) -> list[dict[str, float]]:
    """One overrides mapping per factor: up to three scalar constants scaled by it."""
    system = cm.system([{}], cm.default_grid())
    names = [
        v.py_name
        for v in cm.variables
        if v.sd_kind == "constant"
        and not v.dims
        and v.py_name not in ("initial_time", "final_time", "time_step", "saveper")
    ][:3]
    base = {
        n: float(np.asarray(system.observe(0.0, system.initial_state())[n]).flat[0]) for n in names
    }
    return [{n: v * f for n, v in base.items()} for f in factors]


# ---------------------------------------------------------------------------- equality
@needs_cc
@pytest.mark.skipif(ROOT is None, reason="../shared/test-models is not on this machine")
@pytest.mark.parametrize("model", REPRESENTATIVE)
def test_representative_models_equal_numpy(model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ROOT is not None
    cm = _compile(ROOT / model)
    assert _check_model(cm, "euler", monkeypatch) > 0
    system = cm.system([{}], cm.default_grid())
    if system.discrete_elements:
        assert system.run_c("rk4") is None
        assert "method='euler'" in system.c_note
    else:
        assert _check_model(cm, "rk4", monkeypatch) > 0


@needs_cc
@pytest.mark.parametrize("scheme", ["euler", "rk4"])
def test_every_stateful_kind_and_time_function(
    scheme: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "kitchen.mdl"
    path.write_text(_KITCHEN.format(discrete=_DISCRETE if scheme == "euler" else ""))
    cm = _compile(path)
    kinds = {sf.kind for sf in cm._program.statefuls}
    expected = {"integ", "smooth", "delay", "trend", "forecast", "initial"}
    if scheme == "euler":
        expected |= {"delayn", "sampleiftrue", "delayfixed"}
    assert expected <= kinds
    overrides = [{}, {"gain": np.array([0.25, 1.5, 2.0])}, {"gain": 0.1}]
    assert _check_model(cm, scheme, monkeypatch, overrides) > 0


@needs_cc
def test_a_batch_of_parameter_sets_equals_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    cm = _compile(REPO / "benchmarks" / "models" / "regions20.mdl")
    overrides = _scaled_constants(cm, [0.9, 0.95, 1.0, 1.05, 1.1])
    assert len(overrides[0]) == 3
    for scheme in ("euler", "rk4"):
        system = cm.system(overrides, cm.default_grid())
        got = system.run_c(scheme)
        assert got is not None, system.c_note
        _assert_same(got, _numpy_run(cm, overrides, scheme, monkeypatch))
        # each scenario of the batch is that scenario's own run
        single = cm.system([overrides[3]], cm.default_grid()).run_c(scheme)
        assert single is not None
        np.testing.assert_array_equal(
            got.states.reshape(len(got.times), 5, -1)[:, 3], single.states
        )
        assert got.columns is not None and got.columns["total_population"].shape[1] == 5


@needs_cc
@pytest.mark.slow
@pytest.mark.skipif(ROOT is None, reason="../shared/test-models is not on this machine")
def test_whole_corpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every corpus model the compiler takes: C equals NumPy, or the tier says why not."""
    from tests.test_compiler_conformance import MODELS

    assert ROOT is not None
    covered = refused = 0
    for model in MODELS:
        try:
            cm = _compile(ROOT / model)
        except Exception:  # the conformance tests report models that do not load
            continue
        for scheme in ("euler", "rk4"):
            system = cm.system([{}], cm.default_grid())
            got = system.run_c(scheme)
            if got is None:
                assert system.c_note, model
                refused += 1
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _assert_same(got, _numpy_run(cm, [{}], scheme, monkeypatch))
            covered += 1
    assert covered > 250 and refused < 30, (covered, refused)


# ---------------------------------------------------------------------------- dispatch
@needs_cc
def test_integrate_runs_the_c_tier(monkeypatch: pytest.MonkeyPatch) -> None:
    cm = _compile(HERE / "models" / "decay.mdl")
    grid = cm.default_grid()
    res = integrate(cm.system([{}, {}], grid), grid, SolverOptions(method="rk4"))
    assert res.tier == "c"
    _assert_same(res, _numpy_run(cm, [{}, {}], "rk4", monkeypatch))


@needs_cc
def test_a_blow_up_is_the_same_error(monkeypatch: pytest.MonkeyPatch) -> None:
    cm = _compile(HERE / "models" / "blowup.mdl")
    grid = cm.default_grid()
    with pytest.raises(sd_model.IntegrationError) as fast:
        cm.system([{}], grid).run_c("euler")
    with monkeypatch.context() as m, pytest.raises(sd_model.IntegrationError) as slow:
        m.setenv("SD_MODEL_TIER", "numpy")
        integrate(cm.system([{}], grid), grid, SolverOptions(method="euler"))
    assert str(fast.value) == str(slow.value)


_BLOWUP = """{UTF-8}
z = INTEG(k * z * z, 1)
\t~\tUnit\n\t~\tBlows up near t = 1 / k.\n\t|

k = 1
\t~\t1/Year\n\t~\t\t|

FINAL TIME = 3
\t~\tYear\n\t~\tThe final time.\n\t|

INITIAL TIME = 0
\t~\tYear\n\t~\tThe initial time.\n\t|

SAVEPER = 0.125
\t~\tYear [0,?]\n\t~\tThe saving interval.\n\t|

TIME STEP = 0.125
\t~\tYear [0,?]\n\t~\tThe time step.\n\t|
"""


@needs_cc
@pytest.mark.parametrize("scheme", ["euler", "rk4"])
def test_a_blow_up_in_a_batch_names_the_earliest(
    scheme: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scenarios 1 and 2 blow up first (at the same step): scenario 1 is named."""
    path = tmp_path / "blowup_k.mdl"
    path.write_text(_BLOWUP)
    cm = _compile(path)
    grid = cm.default_grid()
    batch = [{"k": 0.5}, {"k": 2.0}, {"k": 2.0}]
    with pytest.raises(sd_model.IntegrationError) as fast:
        cm.system(batch, grid).run_c(scheme)
    with monkeypatch.context() as m, pytest.raises(sd_model.IntegrationError) as slow:
        m.setenv("SD_MODEL_TIER", "numpy")
        integrate(cm.system(batch, grid), grid, SolverOptions(method=scheme))  # type: ignore[arg-type]
    assert "1:z" in str(slow.value)
    assert str(fast.value) == str(slow.value)


# ---------------------------------------------------------------------------- fallbacks
def test_no_compiler_falls_back_with_a_reason(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SD_MODEL_CC", str(tmp_path / "no-such-cc"))
    cm = _compile(HERE / "models" / "decay.mdl")
    grid = cm.default_grid()
    system = cm.system([{}], grid)
    assert system.run_c("euler") is None
    assert "SD_MODEL_CC" in system.c_note and "not found" in system.c_note
    res = integrate(cm.system([{}], grid), grid, SolverOptions(method="euler"))
    assert res.tier in ("python", "numpy")  # the next tier, same numbers
    _assert_same(res, _numpy_run(cm, [{}], "euler", monkeypatch))


def test_the_tier_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SD_MODEL_TIER", "python")
    cm = _compile(HERE / "models" / "decay.mdl")
    system = cm.system([{}], cm.default_grid())
    assert system.run_c("euler") is None
    assert "SD_MODEL_TIER=python" in system.c_note


def _fake_compiler(folder: pathlib.Path, body: str) -> pathlib.Path:
    """An executable standing in for cc; it logs each compile to ``calls``."""
    script = folder / "fake-cc"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in --version) echo "fake-cc 1.0"; exit 0;; esac\n'
        f'echo call >> "{folder / "calls"}"\n' + body
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for cc")
def test_a_compiler_failure_warns_once_and_is_cached(
    new_process: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cc = _fake_compiler(tmp_path, 'echo "model.c:1: error: out of registers" >&2\nexit 1\n')
    monkeypatch.setenv("SD_MODEL_CC", str(cc))
    cm = _compile(HERE / "models" / "decay.mdl")
    grid = cm.default_grid()
    with pytest.warns(sd_model.SDModelWarning, match="out of registers"):
        assert cm.system([{}], grid).run_c("euler") is None
    notes = list((tmp_path / "cache" / "c").glob("sdc_*.failed"))
    assert len(notes) == 1 and "out of registers" in notes[0].read_text()
    assert (tmp_path / "calls").read_text().count("call") == 1
    # a new process: nothing in memory; the note is read from disk, cc is not called
    _cbuild._FAILED.clear()
    system = cm.system([{}], grid)
    with pytest.warns(sd_model.SDModelWarning, match="cached"):
        assert system.run_c("euler") is None
    assert "out of registers" in system.c_note
    assert (tmp_path / "calls").read_text().count("call") == 1
    # no temporary file is left behind
    assert sorted(p.suffix for p in (tmp_path / "cache" / "c").iterdir()) == [".failed"]


@needs_cc
def test_a_built_library_is_loaded_from_disk_without_compiling(
    new_process: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cm = _compile(HERE / "models" / "decay.mdl")
    grid = cm.default_grid()
    first = cm.system([{}], grid).run_c("euler")
    assert first is not None
    libs = list((tmp_path / "cache" / "c").glob("sdc_*.so"))
    assert len(libs) == 1
    # a new process with a compiler that would fail: the cached library is used
    key = libs[0].stem[4:]
    _cbuild._LIBS.pop(key)
    real = _cbuild.find_compiler()
    monkeypatch.setattr(_cbuild, "find_compiler", lambda: real)
    monkeypatch.setattr(_cbuild, "_build", lambda *a: pytest.fail("compiled again"))
    again = cm.system([{}], grid).run_c("euler")
    assert again is not None
    np.testing.assert_array_equal(again.states, first.states)


@needs_cc
def test_short_runs_compile_in_the_background_once_they_add_up(
    new_process: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SD_MODEL_TIER", "auto")
    cm = _compile(HERE / "models" / "decay.mdl")
    grid = cm.default_grid()
    system = cm.system([{}], grid)
    src = _cbuild.c_source(cm._program, system.code.dynamic, system.code.obs_names)
    assert isinstance(src, _emit_c.CSource)
    per_run = _cbuild.default_path_seconds(
        len(system.code.dynamic), src.work_cells, grid.n_steps(), 1, False
    )
    runs_to_pay = int(_cbuild.compile_seconds(src) / per_run) + 1
    assert runs_to_pay > 2  # a tiny model: no single run waits for the compiler
    for _ in range(runs_to_pay - 1):
        system = cm.system([{}], grid)
        assert system.run_c("euler") is None
        assert "too short" in system.c_note
    assert not list((tmp_path / "cache" / "c").glob("*.so"))
    system = cm.system([{}], grid)
    assert system.run_c("euler") is None  # this one starts the compiler...
    assert "background" in system.c_note
    _cbuild.wait_for_background()
    fast = cm.system([{}], grid).run_c("euler")  # ...and a later one uses it
    assert fast is not None
    _assert_same(fast, _numpy_run(cm, [{}], "euler", monkeypatch))


# ---------------------------------------------------------------------------- untrusted
@needs_cc
def test_model_text_never_reaches_the_c_source(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hostile.mdl"
    path.write_text(_HOSTILE)
    cm = _compile(path)
    assert any("sd_abi" in v.name for v in cm.variables)  # the names are as written
    system = cm.system([{}], cm.default_grid())
    src = _cbuild.c_source(cm._program, system.code.dynamic, system.code.obs_names)
    assert isinstance(src, _emit_c.CSource)
    for fragment in ("evil", "return 99", "stdlib", "system(", "pwned", "Widgets", "Year"):
        assert fragment not in src.src
    # identifiers are generated from indices: every word is C, a helper or an index name
    import re

    words = set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", src.src))
    generated = {w for w in words if re.fullmatch(r"(v|A|M|k|r|acc)\d+", w)}
    assert not {w for w in words - generated if re.search(r"evil|pwned|widget", w, re.I)}
    got = system.run_c("euler")
    assert got is not None
    assert not pathlib.Path("/tmp/sd_model_pwned").exists()
    _assert_same(got, _numpy_run(cm, [{}], "euler", monkeypatch))
    # the exact solution of y' = 0.1 y with Euler at dt 0.25: (1 + 0.025)^(4 t)
    stock = got.states[:, 0]
    np.testing.assert_allclose(stock, 1.025 ** (4 * got.times), rtol=1e-12)


@dataclass(frozen=True)
class _Unknown:
    """An IR node the C emitter has never heard of (a helper adding one concurrently)."""

    value: float = 1.0


def test_an_unknown_node_falls_back_instead_of_compiling() -> None:
    cm = _compile(HERE / "models" / "decay.mdl")
    prog = cm._program
    system = cm.system([{}], cm.default_grid())
    el = prog.elements[next(iter(system.code.dynamic))]
    comp = replace(el.components[0], expr=_Unknown())
    els = list(prog.elements)
    els[el.index] = replace(el, components=(comp, *el.components[1:]))
    bad = replace(prog, elements=tuple(els))
    with pytest.raises(_emit_c.CUnsupported, match="_Unknown"):
        _emit_c.generate_c(bad, system.code.dynamic, system.code.obs_names)
    # every stateful kind of the table has its C (a new kind raises CUnsupported)
    assert set(_emit_c.C_KINDS) == set(_statefuls.KINDS)


def test_random_functions_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    path = HERE / "models" / "random" / "noise.mdl"
    if not path.exists():
        pytest.skip("no RANDOM model in this checkout")
    cm = _compile(path)
    system = cm.system([{}], cm.default_grid())
    assert system.run_c("euler") is None
    assert "RANDOM" in system.c_note


def test_float_literals_round_trip() -> None:
    for x in (0.1, 1e-300, 5e-324, 1.7976931348623157e308, -2.5, 3.0):
        assert float(_emit_c.cnum(x)) == x
    assert _emit_c.cnum(float("nan")) == "NAN"
    assert _emit_c.cnum(float("-inf")) == "(-INFINITY)"


# ---------------------------------------------------------------------------- cache trust
_PLANTED_C = """
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen("%s", "w");
    if (f) { fputs("ran", f); fclose(f); }
}
long long sd_abi(void) { return %d; }
"""


def _plant(path: pathlib.Path, marker: pathlib.Path) -> None:
    """A library at ``path`` whose loading writes ``marker`` (what an attacker would plant)."""
    src = path.with_name("planted.c")
    src.write_text(_PLANTED_C % (marker, _emit_c.SD_ABI))
    cc, _ = _cbuild.find_compiler()
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(path), str(src)], check=True)
    src.unlink()


def _library_path(cm: CompiledModel, cache: pathlib.Path) -> pathlib.Path:
    system = cm.system([{}], cm.default_grid())
    src = _cbuild.c_source(cm._program, system.code.dynamic, system.code.obs_names)
    assert isinstance(src, _emit_c.CSource)
    key = _cbuild.library_key(src, _cbuild.find_compiler())
    return cache / "c" / f"sdc_{key}.so"


needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="giving files away needs root"
)


def _planted_cache(
    cache: pathlib.Path, tmp_path: pathlib.Path, folder_mode: int
) -> tuple[CompiledModel, pathlib.Path, pathlib.Path]:
    """A model, a planted library where its own would be cached, and the planted code's
    marker file."""
    cm = _compile(HERE / "models" / "decay.mdl")
    path = _library_path(cm, cache)
    path.parent.mkdir(parents=True)
    path.parent.chmod(folder_mode)
    marker = tmp_path / "planted-code-ran"
    _plant(path, marker)
    return cm, path, marker


def _runs_its_own_code(
    cm: CompiledModel, marker: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    got = cm.system([{}], cm.default_grid()).run_c("euler")
    assert not marker.exists(), "the planted library was loaded"
    assert got is not None  # the user's own build, which gives NumPy's numbers
    _assert_same(got, _numpy_run(cm, [{}], "euler", monkeypatch))


@needs_cc
@needs_root
def test_a_library_of_another_user_is_never_loaded(
    new_process: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cm, path, marker = _planted_cache(new_process, tmp_path, 0o700)
    os.chown(path, 4321, 4321)
    _runs_its_own_code(cm, marker, monkeypatch)
    assert path.stat().st_uid == os.geteuid()  # replaced by the user's own build


@needs_cc
def test_a_cache_folder_others_could_write_is_emptied_and_made_private(
    new_process: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the user's own file, but in a folder anyone could have written it to
    cm, path, marker = _planted_cache(new_process, tmp_path, 0o777)
    _runs_its_own_code(cm, marker, monkeypatch)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # the user's own build


@needs_cc
@needs_root
def test_a_cache_folder_of_another_user_is_not_used(
    new_process: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sd_model import translate

    monkeypatch.setattr(translate, "_WARNED_UNTRUSTED", set())
    cm, path, marker = _planted_cache(new_process, tmp_path, 0o700)
    os.chown(path, 4321, 4321)
    os.chown(path.parent, 4321, 4321)
    with pytest.warns(UserWarning, match=r"does not load compiled code from .*another user"):
        _runs_its_own_code(cm, marker, monkeypatch)  # built in a private temporary folder
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # left alone


@needs_cc
def test_a_killed_compile_leaves_no_files_behind_for_long(
    new_process: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = new_process / "c"
    folder.mkdir(parents=True, mode=0o700)
    old = [folder / "sdc_0123.77.88.c", folder / "sdc_0123.77.88.so.tmp"]
    fresh = folder / "sdc_4567.99.11.so.tmp"  # another process compiling right now
    for p in (*old, fresh):
        p.write_text("partial")
    two_hours_ago = time.time() - 7200
    for p in old:
        os.utime(p, (two_hours_ago, two_hours_ago))
    cm = _compile(HERE / "models" / "decay.mdl")
    assert cm.system([{}], cm.default_grid()).run_c("euler") is not None
    assert not any(p.exists() for p in old)
    assert fresh.exists()
