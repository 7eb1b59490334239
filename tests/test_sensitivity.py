"""Global sensitivity analysis: known indices, batching, fallback, errors, files, CLI, plots."""

from __future__ import annotations

import importlib
import json
import math
import re
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
import xarray as xr

import sd_model
from sd_model import ParameterError, SDModelError, SDModelWarning, SettingsError
from sd_model.cli import main
from sd_model.plots import PlotError, plot_sensitivity
from sd_model.sensitivity import sensitivity
from sd_model.sensitivity_io import read_sensitivity_file, write_sensitivity

matplotlib.use("Agg")

# The module, not the function of the same name that `sd_model.sensitivity` gives.
sensitivity_module = importlib.import_module("sd_model.sensitivity")

MODELS = Path(__file__).resolve().parent / "models"
ISHIGAMI = MODELS / "ishigami.mdl"
SCREENING = MODELS / "screening.mdl"
PI = math.pi
CUBE = {"x1": (-PI, PI), "x2": (-PI, PI), "x3": (-PI, PI)}


def ishigami_indices(a: float = 7.0, b: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Analytic first and total Sobol' indices of the Ishigami function.

    f = sin x1 + a sin^2 x2 + b x3^4 sin x1, x_i ~ U(-pi, pi) (Ishigami & Homma 1990);
    the partial variances are from Sobol' & Levitan (1999), also in Saltelli et al.
    (2008), Global Sensitivity Analysis: The Primer, section 4.7.
    """
    v1 = 0.5 * (1 + b * PI**4 / 5) ** 2
    v2 = a**2 / 8
    v13 = 8 * b**2 * PI**8 / 225
    total = v1 + v2 + v13
    return np.array([v1, v2, 0.0]) / total, np.array([v1 + v13, v2, v13]) / total


@pytest.fixture(scope="module")
def ishigami() -> sd_model.Model:
    return sd_model.load(ISHIGAMI)


@pytest.fixture(scope="module")
def screening() -> sd_model.Model:
    return sd_model.load(SCREENING)


@pytest.fixture(scope="module")
def sobol_8192(ishigami: sd_model.Model) -> xr.Dataset:
    return sensitivity(ishigami, CUBE, outputs="y", method="sobol", n=8192, seed=1, times=0)


class _Spy:
    """Records the batches `evaluate` is called with, and calls it."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: list[tuple[int, str]] = []

    def __call__(self, model: Any, param_sets: Any, **kw: Any) -> Any:
        self.calls.append((len(param_sets), kw["backend"]))
        return self.real(model, param_sets, **kw)


# --------------------------------------------------------------------------- known values
def test_analytic_ishigami_indices_are_the_published_ones() -> None:
    s1, st = ishigami_indices()
    np.testing.assert_allclose(s1, [0.314, 0.442, 0.0], atol=5e-4)
    np.testing.assert_allclose(st, [0.558, 0.442, 0.244], atol=5e-4)


def test_sobol_indices_of_the_ishigami_model_match_the_analytic_values(
    ishigami: sd_model.Model, sobol_8192: xr.Dataset
) -> None:
    # n = 8192 base samples (40960 runs), seed 1: within 0.01 of the analytic values
    # (over seeds 0-9 the largest error is 0.0034), and inside the 95 % intervals.
    si = sobol_8192
    s1, st = ishigami_indices()
    assert si["S1"].dims == ("parameter",)
    assert list(si["parameter"].values) == ["x1", "x2", "x3"]
    np.testing.assert_allclose(si["S1"].values, s1, atol=0.01)
    np.testing.assert_allclose(si["ST"].values, st, atol=0.01)
    assert (np.abs(si["S1"].values - s1) <= si["S1_conf"].values).all()
    assert (np.abs(si["ST"].values - st) <= si["ST_conf"].values).all()
    assert (si["S1_conf"].values < 0.03).all() and (si["ST_conf"].values < 0.03).all()
    assert si.attrs["backend"] == "compiled"
    assert si.attrs["n_runs"] == 8192 * (3 + 2)
    assert si.attrs["sensitivity_method"] == "sobol" and si.attrs["seed"] == 1
    np.testing.assert_array_equal(si["lower"].values, [-PI] * 3)
    assert json.loads(si.attrs["parameters"])["x2"] == [-PI, PI]


def test_fast_indices_of_the_ishigami_model_match_the_analytic_values(
    ishigami: sd_model.Model,
) -> None:
    # eFAST at n = 1024 runs per parameter, seed 1: S1 within 0.01 and ST within 0.03
    # (the method's own bias: ST of x2 comes out 0.02 high at every n and seed tried).
    si = sensitivity(ishigami, CUBE, outputs="y", method="fast", n=1024, seed=1, times=0)
    s1, st = ishigami_indices()
    np.testing.assert_allclose(si["S1"].values, s1, atol=0.01)
    np.testing.assert_allclose(si["ST"].values, st, atol=0.03)
    assert si.attrs["n_runs"] == 3 * 1024


def test_morris_gives_zero_to_an_inert_parameter_and_the_slope_of_a_linear_one(
    screening: sd_model.Model,
) -> None:
    # total[r](t) = t * (rate[r] + bonus^2 / reference rate): at t = 10 an elementary
    # effect of rate[North] on total[North] is 10 * (upper - lower) = 20 (SALib's effects
    # are per unit of the normalised range), with no spread; rate[North] does not reach
    # total[South]; 'inert' reaches nothing; bonus enters non-linearly (spread > 0).
    params = {"rate[North]": [0, 2], "bonus": [0, 0.1], "inert": [0, 1]}
    si = sensitivity(screening, params, outputs="total", method="morris", n=20, seed=4, times=10)
    assert si["mu_star"].dims == ("parameter", "Region")
    mu_star = si["mu_star"].to_pandas()
    sigma = si["sigma"].to_pandas()
    assert mu_star.loc["inert"].abs().max() <= 1e-12
    assert sigma.loc["inert"].abs().max() <= 1e-12
    assert mu_star.loc["rate[North]", "North"] == pytest.approx(20.0, rel=1e-12)
    assert sigma.loc["rate[North]", "North"] <= 1e-9
    assert mu_star.loc["rate[North]", "South"] <= 1e-12
    assert mu_star.loc["bonus", "North"] > 0.01 and sigma.loc["bonus", "North"] > 0.001
    np.testing.assert_allclose(mu_star.loc["bonus", "North"], mu_star.loc["bonus", "South"])
    assert si["mu_star"].attrs["units"] == "Widget"
    assert si.attrs["n_runs"] == 20 * (3 + 1)


def test_element_parameters_time_dim_and_outputs_that_do_not_vary(
    screening: sd_model.Model,
) -> None:
    params = {"rate[North]": [0.5, 1.5], "rate[South]": [0.5, 1.5]}
    si = sensitivity(screening, params, outputs="total", n=512, seed=2, times=[0, 5, 10])
    assert si["S1"].dims == ("parameter", "time", "Region")
    np.testing.assert_array_equal(si["time"].values, [0.0, 5.0, 10.0])
    assert si["time"].attrs["units"] == "Year"
    # At the initial time the stock is 0 in every run: no variance, no index.
    assert np.isnan(si["S1"].sel(time=0).values).all()
    later = si.sel(time=[5, 10])
    # Each region's stock depends on its own rate only (S1 = ST = 1 up to sampling error,
    # exactly 0 for the other region's rate: its runs are bitwise equal).
    for own, other in (("North", "South"), ("South", "North")):
        np.testing.assert_allclose(
            later["ST"].sel(parameter=f"rate[{own}]", Region=own), 1.0, atol=0.05
        )
        np.testing.assert_allclose(
            later["S1"].sel(parameter=f"rate[{own}]", Region=own), 1.0, atol=0.05
        )
        assert (later["ST"].sel(parameter=f"rate[{other}]", Region=own) == 0).all()


def test_a_subscripted_name_varies_every_element_together(screening: sd_model.Model) -> None:
    si = sensitivity(
        screening,
        {"rate": [0, 2], "inert": [0, 1]},
        outputs="total",
        method="morris",
        n=4,
        seed=1,
        times=10,
    )
    np.testing.assert_allclose(si["mu_star"].sel(parameter="rate").values, [20.0, 20.0])


def test_several_outputs_share_an_output_dim(
    screening: sd_model.Model, capsys: pytest.CaptureFixture[str]
) -> None:
    params = {"rate[North]": [0, 2], "bonus": [0, 0.1]}
    si = sensitivity(
        screening,
        params,
        outputs=["Rate", "total", "grand total"],
        method="morris",
        n=6,
        seed=3,
        progress=True,
    )
    assert "sensitivity runs: 100%" in capsys.readouterr().err
    assert si["mu_star"].dims == ("output", "parameter", "time", "Region")
    assert list(si["output"].values) == ["rate", "total", "grand_total"]
    # A constant's index has no time axis of its own: it repeats along time too. Varied
    # itself, its effect is its range (Morris effects are per normalised range).
    rate = si["mu_star"].sel(output="rate", parameter="rate[North]")
    np.testing.assert_allclose(rate.sel(Region="North"), 2.0)
    np.testing.assert_allclose(rate.sel(Region="South"), 0.0)
    assert json.loads(si.attrs["output_dims"]) == {
        "rate": ["Region"],
        "total": ["Region"],
        "grand_total": [],
    }
    grand = si["mu_star"].sel(output="grand_total")
    # A scalar output repeats along the dims of the others ...
    np.testing.assert_array_equal(grand.sel(Region="North"), grand.sel(Region="South"))
    # ... and rate[North] moves the grand total as much as it moves total[North].
    np.testing.assert_allclose(
        grand.sel(parameter="rate[North]", Region="North", time=10),
        si["mu_star"].sel(output="total", parameter="rate[North]", Region="North", time=10),
    )
    np.testing.assert_allclose(
        grand.sel(parameter="rate[North]", Region="North").values, 2.0 * si["time"].values
    )


# --------------------------------------------------------------------------- seeds, batches
@pytest.mark.parametrize(
    ("method", "n", "extra"),
    [("sobol", 256, {}), ("morris", 10, {}), ("fast", 128, {})],
)
def test_the_same_seed_gives_the_same_result(
    ishigami: sd_model.Model, method: str, n: int, extra: dict
) -> None:
    kw = {"outputs": "y", "method": method, "n": n, "times": 0, **extra}
    state = np.random.get_state()  # noqa: NPY002 - checking the global generator is kept
    first = sensitivity(ishigami, CUBE, seed=7, **kw)
    after = np.random.get_state()  # noqa: NPY002
    again = sensitivity(ishigami, CUBE, seed=7, **kw)
    other = sensitivity(ishigami, CUBE, seed=8, **kw)
    xr.testing.assert_equal(first, again)
    stat = "mu_star" if method == "morris" else "S1"
    assert not np.array_equal(first[stat].values, other[stat].values)
    # SALib's FAST seeds NumPy's global generator: the caller's stream is left as it was.
    assert all(np.array_equal(a, b) for a, b in zip(state, after, strict=True))


def test_no_seed_draws_one_and_records_it(ishigami: sd_model.Model) -> None:
    first = sensitivity(ishigami, CUBE, outputs="y", method="morris", n=4, times=0)
    seed = first.attrs["seed"]
    assert isinstance(seed, int) and seed >= 0
    again = sensitivity(ishigami, CUBE, outputs="y", method="morris", n=4, times=0, seed=seed)
    xr.testing.assert_equal(first, again)


@pytest.mark.parametrize(
    ("method", "n", "runs"),
    [("sobol", 64, 64 * 5), ("morris", 30, 30 * 4), ("fast", 100, 100 * 3)],
)
def test_every_method_runs_in_batches_on_the_compiled_backend(
    ishigami: sd_model.Model, monkeypatch: pytest.MonkeyPatch, method: str, n: int, runs: int
) -> None:
    spy = _Spy(sensitivity_module.evaluate)
    monkeypatch.setattr(sensitivity_module, "evaluate", spy)
    chunked = sensitivity(
        ishigami, CUBE, outputs="y", method=method, n=n, seed=1, times=0, chunk_size=50
    )
    assert [size for size, _ in spy.calls] == [50] * (runs // 50) + (
        [runs % 50] if runs % 50 else []
    )
    assert {backend for _, backend in spy.calls} == {"compiled"}
    spy.calls.clear()
    whole = sensitivity(ishigami, CUBE, outputs="y", method=method, n=n, seed=1, times=0)
    assert spy.calls == [(runs, "compiled")]
    xr.testing.assert_allclose(chunked, whole, rtol=1e-12)


@pytest.mark.parametrize(
    ("method", "n", "extra"),
    [("sobol", 16, {}), ("morris", 4, {}), ("fast", 17, {"harmonics": 2})],
)
def test_every_method_falls_back_to_a_pysd_loop_with_a_warning(
    ishigami: sd_model.Model,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    n: int,
    extra: dict,
) -> None:
    fresh = sd_model.load(ISHIGAMI)

    def refuse() -> None:
        raise sd_model.UnsupportedFeatureError("pretend the compiler lacks something")

    monkeypatch.setattr(fresh, "compiled", refuse)
    spy = _Spy(sensitivity_module.evaluate)
    monkeypatch.setattr(sensitivity_module, "evaluate", spy)
    kw = {"outputs": "y", "method": method, "n": n, "seed": 3, "times": 0, **extra}
    with pytest.warns(SDModelWarning, match="sensitivity analysis with the PySD backend") as rec:
        looped = sensitivity(fresh, CUBE, **kw)
    assert len([w for w in rec if issubclass(w.category, SDModelWarning)]) == 1
    assert looped.attrs["backend"] == "pysd"
    assert "pretend the compiler" in looped.attrs["backend_note"]
    assert {backend for _, backend in spy.calls} == {"pysd"}
    batched = sensitivity(ishigami, CUBE, **kw)
    assert batched.attrs["backend"] == "compiled"
    xr.testing.assert_allclose(looped, batched, rtol=1e-10)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("params", "kw", "error", "match"),
    [
        ({"x4": (0, 1)}, {}, ParameterError, "unknown parameter 'x4'"),
        ({"x1": (3, -3)}, {}, ParameterError, r"bounds of 'x1' are reversed \(3 > -3\)"),
        ({"x1": (1, 1)}, {}, ParameterError, "bounds of 'x1' are equal"),
        ({"x1": (0, "pi")}, {}, ParameterError, r"bounds of 'x1' as \[lower, upper\]"),
        ({"x1": (0, 1, 2)}, {}, ParameterError, r"bounds of 'x1' as \[lower, upper\]"),
        ({"x1": (0, math.inf)}, {}, ParameterError, "bounds of 'x1' must be finite"),
        ({}, {}, ParameterError, "at least one parameter"),
        ({"y": (0, 1)}, {}, ParameterError, "'y' is a computed variable"),
        ({"x1": (0, 1)}, {"base": {"X1": 2}}, ParameterError, "name the same parameter"),
        ({"x1": (0, 1)}, {"outputs": "z"}, SDModelError, "unknown variable 'z'"),
        ({"x1": (0, 1)}, {"outputs": ["y", "Y"]}, SDModelError, "'Y' is given twice"),
        ({"x1": (0, 1)}, {"n": 1000}, SettingsError, "n=1000: .*power of two .*512 or 1024"),
        ({"x1": (0, 1)}, {"n": 1}, SettingsError, "n=1: .*power of two"),
        ({"x1": (0, 1)}, {"n": 2.5}, SettingsError, "n must be a positive whole number"),
        ({"x1": (0, 1)}, {"method": "sobolev"}, SettingsError, "Unknown sensitivity method"),
        ({"x1": (0, 1)}, {"levels": 4}, SettingsError, "levels is an option of method='morris'"),
        ({"x1": (0, 1)}, {"method": "morris", "levels": 3}, SettingsError, "even number"),
        ({"x1": (0, 1)}, {"method": "fast", "n": 64}, SettingsError, "n > 4 \\* harmonics"),
        ({"x1": (0, 1)}, {"times": 0.5}, SettingsError, "times: 0.5 is not a saved time"),
        ({"x1": (0, 1)}, {"seed": -1}, SettingsError, "seed must be a non-negative"),
        ({"x1": (0, 1)}, {"conf_level": 95}, SettingsError, "conf_level must be between"),
    ],
)
def test_bad_input_is_an_error_naming_the_thing(
    ishigami: sd_model.Model, params: dict, kw: dict, error: type, match: str
) -> None:
    kw = {"outputs": "y", **kw}
    with pytest.raises(error, match=match):
        sensitivity(ishigami, params, **kw)


def test_one_element_varied_twice_is_an_error(screening: sd_model.Model) -> None:
    with pytest.raises(ParameterError, match="'rate' and 'rate\\[North\\]' both set"):
        sensitivity(screening, {"rate": [0, 1], "rate[North]": [0, 1]}, outputs="total")
    with pytest.raises(ParameterError, match="'Regio' is not an element|'North ' .*element"):
        sensitivity(screening, {"rate[Regio]": [0, 1]}, outputs="total")


# --------------------------------------------------------------------------- files and CLI
def test_netcdf_and_csv_files_hold_the_indices(sobol_8192: xr.Dataset, tmp_path: Path) -> None:
    nc = write_sensitivity(sobol_8192, tmp_path / "si.nc")
    back = xr.open_dataset(nc)
    xr.testing.assert_identical(back.load(), sobol_8192)
    csv = write_sensitivity(sobol_8192, tmp_path / "si.csv")
    import pandas as pd

    table = pd.read_csv(csv)
    assert list(table["parameter"]) == ["x1", "x2", "x3"]
    np.testing.assert_allclose(table["ST"], sobol_8192["ST"].values)
    with pytest.raises(SDModelError, match="use .nc or .csv"):
        write_sensitivity(sobol_8192, tmp_path / "si.zarr")


def test_cli_reads_a_yaml_file_and_flags_override_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "ishigami.yaml"
    spec.write_text(
        f"model: {ISHIGAMI}\n"
        "method: sobol\nn: 64\nseed: 5\ntimes: [0]\n"
        "parameters: {x1: [-3.14159, 3.14159], x2: [-3.14159, 3.14159], "
        "x3: [-3.14159, 3.14159]}\n"
        "outputs: [y]\n"
        "set: {a: 7}\n"
    )
    out = tmp_path / "si.nc"
    assert main(["sensitivity", str(spec), "-o", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "sobol sensitivity of ishigami.mdl: 320 runs (compiled backend), seed 5" in printed
    ds = xr.open_dataset(out)
    assert ds["S1"].dims == ("output", "parameter", "time")
    direct = sensitivity(
        ISHIGAMI,
        {key: [-3.14159, 3.14159] for key in ("x1", "x2", "x3")},
        outputs=["y"],
        n=64,
        seed=5,
        base={"a": 7},
    )
    np.testing.assert_allclose(ds["ST"].values, direct["ST"].values, rtol=1e-12)
    # Flags replace the file's entries.
    csv = tmp_path / "si.csv"
    argv = ["sensitivity", str(spec), "--method", "morris", "-n", "4", "--seed", "1"]
    assert main([*argv, "--param", "x2=0,1", "-o", str(csv), "--quiet"]) == 0
    import pandas as pd

    table = pd.read_csv(csv)
    assert list(table["parameter"]) == ["x2"] and "mu_star" in table.columns


def test_cli_with_flags_and_errors_name_the_thing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "si.png"
    argv = ["sensitivity", str(SCREENING), "--var", "total", "--time", "10", "--quiet"]
    morris = ["--param", "rate[North]=0,2", "--method", "morris", "-n", "4", "--seed", "1"]
    assert main([*argv, *morris, "--plot", str(png), "--plot-select", "Region=South"]) == 0
    printed = capsys.readouterr().out
    assert "morris sensitivity of screening.mdl: 8 runs" in printed and png.stat().st_size > 0
    for extra, message in [
        ([*morris, "--plot", str(png)], "--plot-select Region=North"),
        ([*morris, "--plot", str(png), "--plot-select", "Region"], "expected DIM=ELEMENT"),
        ([*morris, "--plot", str(tmp_path / "si.xyz")], "unknown image extension '.xyz'"),
        (["--param", "rate[North]=2,0"], r"bounds of 'rate\[North\]' are reversed"),
        (["--param", "rate[North]=0"], "expected NAME=LOWER,UPPER"),
        (["--param", "rate[North]=0,1", "-n", "100"], "n=100: .*power of two"),
        (["--param", "nope=0,1"], "unknown parameter 'nope'"),
        ([], "give --param NAME=LOWER,UPPER"),
    ]:
        assert main([*argv, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and re.search(message, err), err
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"model: {SCREENING}\nparameters: {{rate: [0, 1]}}\noutputs: [total]\nn_: 4\n")
    assert main(["sensitivity", str(bad)]) == 2
    assert "unknown key(s) n_" in capsys.readouterr().err


def test_read_sensitivity_file_resolves_the_model_next_to_the_file(tmp_path: Path) -> None:
    spec = tmp_path / "sub" / "a.yaml"
    spec.parent.mkdir()
    spec.write_text(
        "model: ../m.mdl\nparameters: {k: [0, 1]}\noutputs: [x]\n"
        "time: {final_time: 5}\nsolver: {method: RK45, rtol: 1.0e-8}\n"
    )
    read = read_sensitivity_file(spec)
    assert read["model"] == (tmp_path / "m.mdl").resolve()
    assert read["time"].final_time == 5 and read["solver"].rtol == 1e-8
    spec.write_text("model: m.mdl\noutputs: [x]\n")
    with pytest.raises(sd_model.ScenarioError, match="missing parameters"):
        read_sensitivity_file(spec)


# --------------------------------------------------------------------------- plot
def test_plot_draws_the_indices_with_their_intervals(
    sobol_8192: xr.Dataset, screening: sd_model.Model
) -> None:
    ax = plot_sensitivity(sobol_8192)
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights[:3], sobol_8192["S1"].values)
    np.testing.assert_allclose(heights[3:], sobol_8192["ST"].values)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x1", "x2", "x3"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["S1", "ST"]
    si = sensitivity(
        screening,
        {"rate[North]": [0, 2], "inert": [0, 1]},
        outputs=["total", "grand total"],
        method="morris",
        n=4,
        seed=1,
    )
    ax = plot_sensitivity(si, output="total", select={"Region": "North"})
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights[:2], [20.0, 0.0], atol=1e-12)  # mu_star at time 10
    assert "time 10" in ax.get_title()
    with pytest.raises(PlotError, match="Several outputs"):
        plot_sensitivity(si)
    with pytest.raises(PlotError, match="still have dims \\['Region'\\]"):
        plot_sensitivity(si, output="total")
    with pytest.raises(PlotError, match="No Region 'Nord'"):
        plot_sensitivity(si, output="total", select={"Region": "Nord"})
    # A scalar output among subscripted ones needs no element.
    ax = plot_sensitivity(si, output="grand_total", time=5, select={"Region": "South"})
    np.testing.assert_allclose([p.get_height() for p in ax.patches][:2], [10.0, 0.0])
    with pytest.raises(PlotError, match="No time 3.5"):
        plot_sensitivity(si, output="grand_total", time=3.5)
