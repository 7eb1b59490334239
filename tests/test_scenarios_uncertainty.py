"""Scenario files that declare their uncertainty: ``sd-model calibrate`` writes parameter
draws, and ``sd-model run`` writes the central run plus quantile bands over them.

Truths: the straight line y = intercept + slope * t (exact under Euler), whose quantiles
over draws of the slope are intercept + t * (the slopes' quantiles), and least squares by
hand for the normal approximation of a fit to noisy line data.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

import sd_model
from sd_model._errors import ScenarioError
from sd_model.calibrate import CalibrationError
from sd_model.calibrate.config import CalibrationFile, cmd_calibrate
from sd_model.cli import main

MODELS = Path(__file__).parent / "models"
LINE = MODELS / "linear_trend.mdl"  # y = intercept + slope * t, t = 0..10, Euler step 1


def _draws_file(path: Path, **columns: np.ndarray) -> Path:
    """A draws file: ``.csv`` as sd-model calibrate writes it (one row per draw), or
    ``.nc`` as sample_posterior does ((chain, draw) variables)."""
    if path.suffix == ".csv":
        pd.DataFrame(columns).rename_axis("draw").to_csv(path)
        return path
    ds = xr.Dataset(
        {k: (("chain", "draw"), np.asarray(v, float)[None, :]) for k, v in columns.items()},
        coords={"chain": [0], "draw": np.arange(len(next(iter(columns.values()))))},
    )
    ds.attrs["parameters"] = json.dumps(list(columns))
    ds.to_netcdf(path)
    return path


def _scenario(tmp_path: Path, uncertainty: dict | None, **extra) -> Path:
    doc = {"model": str(LINE), "solver": {"method": "euler"}, **extra}
    if uncertainty is not None:
        doc["uncertainty"] = uncertainty
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


SLOPES = np.array([0.5, 1.0, 1.5, 2.0, 4.0])  # quantiles 0.25/0.5/0.75 are order statistics


@pytest.mark.parametrize("suffix", [".csv", ".nc"])
def test_run_writes_the_central_run_and_bands_over_the_draws(tmp_path: Path, suffix) -> None:
    _draws_file(tmp_path / f"draws{suffix}", slope=SLOPES)
    (tmp_path / "fitted.yaml").write_text("set: {slope: 1.2}\n", encoding="utf-8")
    path = _scenario(
        tmp_path,
        {"draws": f"draws{suffix}", "quantiles": [0.25, 0.5, 0.75], "outputs": ["y"]},
        params_file="fitted.yaml",
        set={"intercept": 3},
    )
    out = tmp_path / "out.nc"
    assert main(["run", str(path), "-o", str(out)]) == 0
    ds = xr.open_dataset(out)
    t = ds.time.values
    # The central run has the fitted slope of the parameter file (1.2).
    np.testing.assert_allclose(ds.y.values, 3 + 1.2 * t)
    # The bands replace the fitted slope by its draws and keep the scenario's intercept.
    assert ds.y_band.dims == ("quantile", "time")
    for q, k in ((0.25, 1), (0.5, 2), (0.75, 3)):
        np.testing.assert_allclose(ds.y_band.sel(quantile=q).values, 3 + np.sort(SLOPES)[k] * t)
    assert ds.y_band.attrs["band_of"] == "y"
    assert ds.attrs["bands_n_draws"] == len(SLOPES)
    assert list(ds.data_vars).count("intercept_band") == 0  # only the outputs asked for


def test_n_draws_are_picked_with_the_seed_and_no_bands_skips_them(tmp_path: Path) -> None:
    slopes = np.linspace(0.0, 10.0, 101)
    _draws_file(tmp_path / "draws.csv", slope=slopes)
    spec = {"draws": "draws.csv", "n": 7, "seed": 3, "quantiles": [0.5], "outputs": ["y"]}
    sc = sd_model.Scenario.from_yaml(_scenario(tmp_path, spec))
    a, b = sc.run_with_bands(), sc.run_with_bands()
    assert a.attrs["bands_n_draws"] == 7
    xr.testing.assert_identical(a.y_band, b.y_band)  # the same seed picks the same draws
    picked = np.random.default_rng(3).choice(101, size=7, replace=False)
    median = np.median(slopes[np.sort(picked)])
    np.testing.assert_allclose(a.y_band.sel(quantile=0.5).values, median * a.time.values)
    out = tmp_path / "central.nc"
    assert main(["run", str(tmp_path / "line.yaml"), "--no-bands", "-o", str(out)]) == 0
    assert "y_band" not in xr.open_dataset(out)


def test_a_drawn_parameter_the_scenario_sets_is_held_in_every_draw(tmp_path: Path) -> None:
    intercepts = np.array([-1.0, 0.0, 1.0])
    _draws_file(tmp_path / "draws.csv", slope=SLOPES[:3], intercept=intercepts)
    spec = {"draws": "draws.csv", "quantiles": [0.5], "outputs": ["y"]}
    sc = sd_model.Scenario.from_yaml(_scenario(tmp_path, spec))
    ds = sc.run_with_bands(params={"slope": 2.0})
    # slope held at 2, intercept still drawn (median 0): the band's median is 2 t.
    np.testing.assert_allclose(ds.y_band.sel(quantile=0.5).values, 2.0 * ds.time.values)
    with pytest.raises(ScenarioError, match="every drawn parameter is held fixed"):
        sc.run_with_bands(params={"slope": 2.0, "intercept": 0.0})
    # The same assumption written in the scenario file's own set: holds it too.
    sc = sd_model.Scenario.from_yaml(_scenario(tmp_path, spec, set={"Slope": 2.0}))
    ds = sc.run_with_bands()
    np.testing.assert_allclose(ds.y_band.sel(quantile=0.5).values, 2.0 * ds.time.values)


@pytest.mark.parametrize(
    ("uncertainty", "message"),
    [
        ({"draws": "missing.nc"}, r"line.yaml:\d+: uncertainty.draws: file 'missing.nc' not found"),
        ({"n": 5}, r"line.yaml:\d+: uncertainty.draws must be the path"),
        ({"draws": "draws.csv", "n": 0}, r"uncertainty.n must be a positive integer, got 0"),
        ({"draws": "draws.csv", "n": 2.5}, r"uncertainty.n must be a positive integer"),
        ({"draws": "draws.csv", "seed": "one"}, r"uncertainty.seed must be a non-negative"),
        ({"draws": "draws.csv", "quantiles": [0.5, 1.0]}, r"uncertainty.quantiles must be"),
        ({"draws": "draws.csv", "quantiles": 0.5}, r"uncertainty.quantiles must be a list"),
        ({"draws": "draws.csv", "quantiles": [0.5, 0.5]}, r"lists a value twice"),
        ({"draws": "draws.csv", "outputs": [1]}, r"uncertainty.outputs must be a list"),
        ({"draws": "draws.csv", "quantile": [0.5]}, r"unknown key 'quantile'.*'quantiles'"),
        ("draws.csv", r"line.yaml:\d+: 'uncertainty' must be a mapping"),
    ],
)
def test_bad_uncertainty_sections_name_the_file_line_and_key(
    tmp_path: Path, uncertainty, message
) -> None:
    _draws_file(tmp_path / "draws.csv", slope=SLOPES)
    with pytest.raises(ScenarioError, match=message):
        sd_model.Scenario.from_yaml(_scenario(tmp_path, uncertainty))


def test_draws_that_do_not_fit_the_model_are_errors_naming_the_scenario(tmp_path: Path) -> None:
    _draws_file(tmp_path / "draws.csv", growth=SLOPES)
    sc = sd_model.Scenario.from_yaml(_scenario(tmp_path, {"draws": "draws.csv"}))
    with pytest.raises(ScenarioError, match=r"line.yaml:\d+: uncertainty.*growth"):
        sc.run_with_bands()
    bad_output = {"draws": "draws.csv", "outputs": ["z"]}
    _draws_file(tmp_path / "draws.csv", slope=SLOPES)
    sc = sd_model.Scenario.from_yaml(_scenario(tmp_path, bad_output))
    with pytest.raises(ScenarioError, match=r"line.yaml:\d+: uncertainty.*'z'"):
        sc.run_with_bands()


def test_calibrate_writes_draws_of_the_fits_normal_approximation(tmp_path: Path) -> None:
    # Noisy line data; with a known sigma the estimate's covariance is sigma^2 (X'X)^-1.
    rng = np.random.default_rng(7)
    t = np.arange(11.0)
    sigma = 0.5
    y = 2.0 + 0.8 * t + rng.normal(0.0, sigma, t.size)
    pd.DataFrame({"time": t, "y": y}).to_csv(tmp_path / "line.csv", index=False)
    doc = {
        "model": str(LINE),
        "data": {"file": "line.csv", "columns": {"y": "y"}},
        "params": {"slope": [-5, 5], "intercept": [-20, 20]},
        "error": {"y": {"kind": "normal", "sigma": sigma}},
        "method": "local",
        "seed": 1,
        "solver": {"method": "euler"},
        "confidence": {"method": "hessian"},
        "draws": {"n": 4000, "unfitted": {"extra": {"dist": "norm", "loc": 1.0, "scale": 0.1}}},
    }
    (tmp_path / "cal.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")

    class Args:
        file = str(tmp_path / "cal.yaml")
        output = str(tmp_path / "fit")
        posterior = bands = False
        quiet = True
        seed = None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cmd_calibrate(Args()) == 0
    draws = pd.read_csv(tmp_path / "fit" / "draws.csv", index_col="draw")
    about = yaml.safe_load((tmp_path / "fit" / "params.yaml").read_text())["draws"]
    assert sorted(draws.columns) == ["extra", "intercept", "slope"]
    assert sorted(about["fitted"]) == ["intercept", "slope"]
    assert about["model_sha256"] == sd_model.load(LINE).sha256
    x = np.column_stack([t, np.ones_like(t)])
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    cov = sigma**2 * np.linalg.inv(x.T @ x)
    sample = draws[["slope", "intercept"]].to_numpy()
    assert sample.shape == (4000, 2)
    se = np.sqrt(np.diag(cov))
    # Sample mean within 4 standard errors of the mean (se / sqrt(n)); covariance to 10 %.
    np.testing.assert_array_less(np.abs(sample.mean(axis=0) - beta), 4 * se / np.sqrt(4000))
    np.testing.assert_allclose(np.cov(sample.T), cov, rtol=0.1, atol=0.1 * se.prod())
    extra = draws["extra"].to_numpy()
    assert abs(extra.mean() - 1.0) < 4 * 0.1 / np.sqrt(4000)
    assert abs(extra.std() - 0.1) < 0.01


def test_unfitted_draws_cannot_name_a_fitted_parameter(tmp_path: Path) -> None:
    doc = {
        "model": str(LINE),
        "data": {"file": "line.csv", "columns": {"y": "y"}},
        "params": {"slope": [-5, 5]},
        "draws": {"unfitted": {"slope": {"dist": "norm", "loc": 1, "scale": 1}}},
    }
    pd.DataFrame({"time": [0.0, 1.0], "y": [0.0, 1.0]}).to_csv(tmp_path / "line.csv", index=False)
    (tmp_path / "cal.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(CalibrationError, match=r"draws.unfitted.slope"):
        CalibrationFile.from_yaml(tmp_path / "cal.yaml")
    doc["draws"] = {"n": -1}
    (tmp_path / "cal.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(CalibrationError, match="draws.n must be a non-negative integer"):
        CalibrationFile.from_yaml(tmp_path / "cal.yaml")


def test_draws_files_of_other_formats_are_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "draws.txt").write_text("slope\n1\n", encoding="utf-8")
    (tmp_path / "bad.csv").write_text("slope\none\n", encoding="utf-8")
    for name, message in (("draws.txt", r"\.csv .* or \.nc"), ("bad.csv", r"bad.csv.*numeric")):
        sc = sd_model.Scenario.from_yaml(_scenario(tmp_path, {"draws": name}))
        with pytest.raises(ScenarioError, match=r"line.yaml:\d+: uncertainty.draws.*" + message):
            sc.run_with_bands()


def test_a_scenario_keeps_its_uncertainty_through_replace(tmp_path: Path) -> None:
    _draws_file(tmp_path / "draws.csv", slope=SLOPES)
    sc = sd_model.Scenario.from_yaml(_scenario(tmp_path, {"draws": "draws.csv"}))
    assert sc.uncertainty["draws"] == (tmp_path / "draws.csv").resolve()
    assert sc.uncertainty["quantiles"] == (0.05, 0.25, 0.5, 0.75, 0.95)
    plain = dataclasses.replace(sc, uncertainty={})
    assert "y_band" not in plain.run_with_bands()
