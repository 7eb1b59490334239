"""Property tests of the compiled backend against PySD itself, and of batching.

Random small stock-flow models are written as Vensim text, run by PySD's own runtime
(``pysd.read_vensim(...).run()``, Euler) and by the compiled backend (Euler): the
trajectories must agree. A batch of B scenarios must equal B single runs.
"""

from __future__ import annotations

import pathlib
import tempfile
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sd_model import ParameterError
from sd_model.compiler import compile_model
from sd_model.integrate import SolverOptions, TimeGrid, integrate

_CONTROL = """
********************************************************
\t.Control
********************************************************~
\t\tSimulation Control Parameters
\t|

FINAL TIME  = {final}
\t~\tMonth
\t~\t|

INITIAL TIME  = 0
\t~\tMonth
\t~\t|

SAVEPER  = TIME STEP
\t~\tMonth
\t~\t|

TIME STEP  = {dt}
\t~\tMonth
\t~\t|
"""


def _eq(name: str, expr: str) -> str:
    return f"{name} = {expr}\n\t~\t\n\t~\t\t|\n\n"


@st.composite
def stock_flow_models(draw: st.DrawFn) -> str:
    """Vensim text of a random model with 1-3 stocks, constants, a lookup and builtins."""
    n_stocks = draw(st.integers(1, 3))
    n_consts = draw(st.integers(1, 3))
    val = st.floats(0.05, 2.0, allow_nan=False).map(lambda x: round(x, 3))
    text = "{UTF-8}\n"
    for k in range(n_consts):
        text += _eq(f"c{k}", repr(draw(val)))
    text += "tbl(\n\t(0,0),(1,0.5),(2,1.5),(4,2))\n\t~\t\n\t~\t\t|\n\n"
    templates = [
        "c{k} * S{j}",
        "c{k}",
        "STEP(c{k}, {t})",
        "SMOOTH(S{j}, c{k} + 1)",
        "SMOOTH3(S{j}, 2)",
        "DELAY1(S{j}, c{k} + 1)",
        "DELAY3(c{k} * S{j}, 3)",
        "MAX(S{j}, c{k})",
        "MIN(S{j}, c{k})",
        "tbl(S{j})",
        "IF THEN ELSE(S{j} > c{k}, 1, 0)",
        "XIDZ(S{j}, c{k} - 1, 2)",
        "PULSE({t}, 2)",
        "RAMP(c{k}, 1, {t})",
        "ABS(S{j} - c{k})",
        "SQRT(ABS(S{j}) + 1)",
        "EXP(-ABS(S{j}))",
        "INTEGER(S{j})",
        "MODULO(S{j}, c{k} + 0.5)",
        "QUANTUM(S{j}, 0.5)",
        "ZIDZ(S{j}, c{k} - 1)",
        "LN(ABS(S{j}) + 1)",
        "PULSE TRAIN(1, 0.5, 2, 6)",
        "TREND(S{j}, 2, 0.1)",
        "FORECAST(S{j}, 2, 1)",
        "DELAY N(S{j}, 2, S{j}, 2)",
        "SMOOTH N(S{j}, 2, S{j}, 3)",
        "SMOOTHI(S{j}, 2, c{k})",
        "DELAY1I(S{j}, 2, c{k})",
        "DELAY3I(S{j}, 3, c{k})",
        "INITIAL(S{j})",
        "ACTIVE INITIAL(S{j} * 0.5, c{k})",
        "SAMPLE IF TRUE(Time > {t}, S{j}, c{k})",
        "DELAY FIXED(S{j}, 1, c{k})",
        "Time * c{k} / 10",
    ]
    for i in range(n_stocks):
        n_terms = draw(st.integers(1, 3))
        terms = []
        for _ in range(n_terms):
            tpl = draw(st.sampled_from(templates))
            terms.append(
                tpl.format(
                    k=draw(st.integers(0, n_consts - 1)),
                    j=draw(st.integers(0, n_stocks - 1)),
                    t=draw(st.integers(1, 6)),
                )
            )
        text += _eq(f"f{i}", " + ".join(terms) + f" - 0.3 * S{i}")
        text += _eq(f"S{i}", f"INTEG(f{i}, {draw(val)})")
    if draw(st.booleans()):
        text += "Region: r1, r2, r3\n\t~\t\n\t~\t\t|\n\n"
        text += _eq("P[Region]", "INTEG(g[Region], init P[Region])")
        text += _eq("init P[Region]", "1, 2, 3")
        text += _eq("g[Region]", "c0 * P[Region] - mig[Region] + S0 * 0.01")
        text += _eq("mig[Region]", "0.2 * (P[Region] - SUM(P[Region!]) / ELMCOUNT(Region))")
        text += _eq("total P", "SUM(P[Region!])")
    return text + _CONTROL.format(final=8, dt=0.25)


_ARRAY_HEADER = (
    "Region: r1, r2, r3\n\t~\t\n\t~\t\t|\n\n"
    "South: r2, r3\n\t~\t\n\t~\t\t|\n\n"
    "Age: young, old\n\t~\t\n\t~\t\t|\n\n"
    "Zone: z1, z2, z3 -> Region\n\t~\t\n\t~\t\t|\n\n"
)

# Right-hand sides over [Region, Age]; each reads the 2-D stock X and other arrays
# through a different subscript construct.
_ARRAY_TERMS = [
    "0.1 * X[Region, Age]",
    "w[Region]",
    "v[Age]",
    "0.01 * SUM(X[Region!, Age])",
    "0.01 * SUM(X[Region, Age!])",
    "0.001 * SUM(X[Region!, Age!])",
    "0.05 * VMAX(X[Region!, Age])",
    "0.05 * VMIN(X[Region, Age!])",
    "0.01 * PROD(v[Age!])",
    "T[Age, Region]",
    "IF THEN ELSE(X[Region, Age] > w[Region], 0.1, -0.1)",
    "0.1 * X[r1, Age]",
    "0.1 * X[Region, old]",
    "zl[Region]",
    "0.2 * Region",
    "0.1 * ELMCOUNT(Age)",
    "MIN(X[Region, Age], v[Age])",
    "SMOOTH(0.1 * X[Region, Age], 2)",
    "tblA[Age](X[Region, Age] / 10)",
]


@st.composite
def array_models(draw: st.DrawFn) -> str:
    """Vensim text of a random model with a 2-D stock and subscript constructs."""
    val = st.floats(0.1, 2.0, allow_nan=False).map(lambda x: round(x, 3))
    text = "{UTF-8}\n" + _ARRAY_HEADER
    text += _eq("w[Region]", ", ".join(repr(draw(val)) for _ in range(3)))
    text += _eq("v[Age]", ", ".join(repr(draw(val)) for _ in range(2)))
    text += _eq(
        "T[Age, Region]",
        "; ".join(", ".join(repr(draw(val)) for _ in range(3)) for _ in range(2)) + ";",
    )
    # subrange definitions, an EXCEPT, a mapped range
    text += _eq("zl[Region]", "0")
    text = text.replace(_eq("zl[Region]", "0"), "")
    text += _eq("zl[r1]", repr(draw(val)))
    text += _eq("zl[South]", "w[South] * 2")
    text += _eq("zz[Zone]", "w[Region] + 1")
    text += _eq("ex[Region, Age] :EXCEPT: [r1, young]", "X[Region, Age] * 0.5")
    text += _eq("ex[r1, young]", "1")
    text += "tblA[young](\n\t(0,0),(1,1),(2,0.5))\n\t~\t\n\t~\t\t|\n\n"
    text += "tblA[old](\n\t(0,1),(2,2),(3,0))\n\t~\t\n\t~\t\t|\n\n"
    terms = draw(st.lists(st.sampled_from(_ARRAY_TERMS), min_size=1, max_size=4))
    text += _eq("g[Region, Age]", " + ".join(terms) + " - 0.2 * X[Region, Age]")
    text += _eq("X[Region, Age]", "INTEG(g[Region, Age], 1 + v[Age])")
    text += _eq("tr[Age, Region]", "X[Region, Age] + ex[Region, Age]")
    text += _eq("total", "SUM(X[Region!, Age!]) + SUM(zz[Zone!])")
    return text + _CONTROL.format(final=5, dt=0.25)


def _compile_text(text: str, folder: pathlib.Path):
    from pysd.translators.vensim.vensim_file import VensimFile

    path = folder / "m.mdl"
    path.write_text(text)
    vf = VensimFile(path)
    vf.parse()
    return compile_model(vf.get_abstract_model(), model_dir=folder), path


def _flat(cm, obs: list[dict[str, np.ndarray]], scenario: int = 0) -> dict[str, np.ndarray]:
    """Observations as columns named like PySD's (``Name`` or ``Name[elem]``)."""
    out: dict[str, np.ndarray] = {}
    for v in cm.variables:
        arr = np.stack([o[v.py_name][scenario] for o in obs])
        if not v.dims:
            out[v.name] = arr
            continue
        grids = np.meshgrid(*[np.arange(len(cm.coords[d])) for d in v.dims], indexing="ij")
        for cell in zip(*[g.ravel() for g in grids], strict=True):
            label = ",".join(cm.coords[d][c] for d, c in zip(v.dims, cell, strict=True))
            out[f"{v.name}[{label}]"] = arr[(slice(None), *cell)]
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("models", "min_compared"),
    [(stock_flow_models(), 3), (array_models(), 20)],
    ids=["stock_flow", "subscripted"],
)
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_random_models_match_pysd(
    models: st.SearchStrategy[str], min_compared: int, data: st.DataObject
) -> None:
    import pysd

    text = data.draw(models, label="model")
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = pathlib.Path(tmp)
        cm, path = _compile_text(text, folder)
        df = pysd.read_vensim(str(path)).run()
        # a model that overflows is not a useful comparison
        assume(bool(np.isfinite(df.to_numpy(dtype=float)).all()))
        grid = cm.default_grid()
        res = integrate(cm.system([{}], grid), grid, SolverOptions(method="euler"))
    ours = _flat(cm, res.observations)
    np.testing.assert_allclose(res.times, df.index.to_numpy(dtype=float))
    compared = 0
    for col in df.columns:
        if col not in ours:
            continue
        expected = df[col].to_numpy(dtype=float)
        np.testing.assert_allclose(ours[col], expected, rtol=1e-9, atol=1e-9, err_msg=col)
        compared += 1
    assert compared >= min_compared


@pytest.fixture(scope="module")
def region_model(tmp_path_factory: pytest.TempPathFactory):
    text = "{UTF-8}\n"
    text += _eq("growth", "0.02")
    text += _eq("mig rate", "0.1")
    text += "Region: r1, r2, r3\n\t~\t\n\t~\t\t|\n\n"
    text += _eq("init P[Region]", "1, 2, 3")
    text += _eq("P[Region]", "INTEG(growth * P[Region] - mig[Region] + push, init P[Region])")
    text += _eq("mig[Region]", "mig rate * (P[Region] - SUM(P[Region!]) / 3)")
    text += _eq("push", "STEP(0.5, 2) * effect(Time)")
    text += _eq("smoothed", "SMOOTH(SUM(P[Region!]), 2)")
    text += "effect(\n\t(0,1),(5,2),(10,1))\n\t~\t\n\t~\t\t|\n\n"
    text += _CONTROL.format(final=10, dt=0.125)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cm, _ = _compile_text(text, tmp_path_factory.mktemp("region"))
    return cm


@settings(max_examples=20, deadline=None)
@given(
    values=st.lists(st.tuples(st.floats(-0.1, 0.1), st.floats(0.0, 0.5)), min_size=1, max_size=5)
)
def test_batch_equals_single_runs(region_model, values: list[tuple[float, float]]) -> None:
    cm = region_model
    grid = cm.default_grid()
    overrides = [{"growth": g, "mig_rate": m} for g, m in values]
    batch = integrate(cm.system(overrides, grid), grid, SolverOptions(method="euler"))
    assert batch.states.shape[1] == len(values) * cm.system([{}], grid).n_state
    for b, ov in enumerate(overrides):
        single = integrate(cm.system([ov], grid), grid, SolverOptions(method="euler"))
        py = {v.name: v.py_name for v in cm.variables}
        for name in (py["P"], py["mig"], py["smoothed"], py["push"]):
            got = np.stack([o[name][b] for o in batch.observations])
            want = np.stack([o[name][0] for o in single.observations])
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=name)


def test_overrides_by_array_dataarray_and_series(region_model) -> None:
    cm = region_model
    grid = cm.default_grid()
    arr = np.array([1.0, 5.0, 9.0])
    da = xr.DataArray(arr, {"Region": ["r1", "r2", "r3"]}, ["Region"])
    init_p = next(v.py_name for v in cm.variables if v.name == "init P")
    s1 = cm.system([{init_p: arr}, {init_p: da}], grid)
    y0 = s1.initial_state().reshape(2, -1)
    np.testing.assert_allclose(y0[0][:3], arr)
    np.testing.assert_allclose(y0[1][:3], arr)
    # a constant replaced by a time series, interpolated linearly in time
    series = pd.Series([0.0, 0.1], index=[0.0, 10.0])
    res = integrate(cm.system([{"growth": series}], grid), grid, SolverOptions(method="euler"))
    mid = res.observations[int(5 / grid.time_step)]
    assert mid["growth"][0] == pytest.approx(0.05)
    # a lookup replaced by a constant
    res = integrate(cm.system([{"effect": 3.0}], grid), grid, SolverOptions(method="euler"))
    assert res.observations[-1]["push"][0] == pytest.approx(1.5)


def test_unknown_and_non_constant_overrides_raise(region_model) -> None:
    cm = region_model
    grid = cm.default_grid()
    with pytest.raises(ParameterError, match="growht"):
        cm.system([{"growht": 1.0}], grid)
    with pytest.raises(ParameterError, match="mig"):
        cm.system([{"mig": 1.0}], grid)


def test_adaptive_run_matches_fine_euler(region_model) -> None:
    cm = region_model
    grid = TimeGrid(0.0, 10.0, 1 / 256, 1.0)
    fine = integrate(cm.system([{}], grid), grid, SolverOptions(method="euler"))
    system = cm.system([{}], grid)
    assert 2.0 in system.breakpoints
    rk = integrate(system, grid, SolverOptions(method="RK45", rtol=1e-8, atol=1e-10))
    np.testing.assert_allclose(rk.states[-1], fine.states[-1], rtol=2e-3)
