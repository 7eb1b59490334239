"""Tests of sd_model.plots: what each figure draws, its labels, and ``sd-model plot``."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: the tests never open a window

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

import sd_model
from sd_model import _errors
from sd_model.compare import compare
from sd_model.plots import (
    PlotError,
    add_plot_parser,
    plot_disparity,
    plot_fit,
    plot_regions,
    plot_scenarios,
)

REGIONS = ["North", "Centre", "South"]
TIMES = [2022.0, 2023.0, 2024.0, 2025.0]
INCOME_UNITS = "thousand KZT/(person*Year)"


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def _run(seed: int, *, scenario: str = "base", sha: str = "abc") -> xr.Dataset:
    rng = np.random.default_rng(seed)
    shape = (len(TIMES), len(REGIONS))
    ds = xr.Dataset(
        {
            "income_per_capita": (
                ("time", "Region"),
                rng.uniform(1.0, 10.0, shape),
                {"long_name": "Income per Capita", "units": INCOME_UNITS},
            ),
            "population": (
                ("time", "Region"),
                rng.uniform(1e5, 1e6, shape),
                {"long_name": "Population", "units": "persons"},
            ),
            "unemployment_rate": (
                ("time", "Region"),
                rng.uniform(0.02, 0.1, shape),
                {"long_name": "Unemployment Rate", "units": "Dmnl"},
            ),
            "gdp": (("time",), rng.uniform(1.0, 2.0, len(TIMES)), {"long_name": "GDP"}),
            "capital_share": ((), 0.4, {"long_name": "capital share", "units": "Dmnl"}),
        },
        coords={"time": ("time", TIMES, {"units": "Year"}), "Region": REGIONS},
    )
    ds.attrs = {"scenario": scenario, "model_sha256": sha, "model_file": "toy.mdl"}
    return ds


def _lines(ax: matplotlib.axes.Axes) -> dict[str, np.ndarray]:
    return {str(line.get_label()): np.asarray(line.get_ydata(), float) for line in ax.lines}


# --------------------------------------------------------------------------- plot_regions
def test_plot_regions_draws_one_line_per_region_with_units() -> None:
    ds = _run(1)
    ax = plot_regions(ds, "population")
    lines = _lines(ax)
    assert sorted(lines) == sorted(REGIONS)
    for region in REGIONS:
        assert np.array_equal(lines[region], ds.population.sel(Region=region).values)
        line = next(ln for ln in ax.lines if ln.get_label() == region)
        assert np.array_equal(line.get_xdata(), TIMES)
    assert ax.get_ylabel() == "Population [persons]"
    assert ax.get_xlabel() == "time [Year]"
    # The legend lists regions by their final value, highest first.
    final = ds.population.isel(time=-1).to_series().sort_values(ascending=False)
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == list(final.index)


def test_plot_regions_subset_axes_and_national_variable() -> None:
    ds = _run(2)
    _, ax = plt.subplots()
    assert plot_regions(ds, "income_per_capita", ["South", "North"], ax=ax) is ax
    lines = _lines(ax)
    assert sorted(lines) == ["North", "South"]
    for region in ("North", "South"):
        assert np.array_equal(lines[region], ds.income_per_capita.sel(Region=region).values)
    assert ax.get_ylabel() == f"Income per Capita [{INCOME_UNITS}]"
    ax2 = plot_regions(ds, "gdp")
    assert len(ax2.lines) == 1 and ax2.get_ylabel() == "GDP"
    assert np.array_equal(ax2.lines[0].get_ydata(), ds.gdp.values)
    assert np.array_equal(ax2.lines[0].get_xdata(), TIMES)


def test_the_regional_dimension_is_named_or_the_only_one() -> None:
    # Nothing assumes a dim called "Region": a model subscripted by Zone draws the same way.
    ds = _run(6).rename({"Region": "Zone"})
    lines = _lines(plot_regions(ds, "population", ["Centre"]))
    assert np.array_equal(lines["Centre"], ds.population.sel(Zone="Centre").values)
    named = _lines(plot_regions(ds, "population", ["Centre"], dim="Zone"))
    assert np.array_equal(named["Centre"], lines["Centre"])
    with pytest.raises(PlotError, match=r"not 'Region'; pass dim= one of 'time', 'Zone'"):
        plot_regions(ds, "population", dim="Region")
    # Two candidate dims: the error names both and how to choose.
    ds["by_age"] = xr.DataArray(
        np.ones((len(TIMES), len(REGIONS), 2)),
        dims=("time", "Zone", "Age"),
        coords={"Age": ["young", "old"]},
    )
    with pytest.raises(PlotError, match=r"several dims.*'Zone', 'Age'.*dim='Zone'"):
        plot_regions(ds, "by_age")


def test_plot_regions_errors() -> None:
    ds = _run(3)
    with pytest.raises(PlotError, match=r"No Region 'Sout'.*'South'"):
        plot_regions(ds, "population", ["Sout"])
    with pytest.raises(PlotError, match="did you mean 'population'"):
        plot_regions(ds, "populaton")
    with pytest.raises(PlotError, match="constant"):
        plot_regions(ds, "capital_share")
    both = compare({"a": ds, "b": _run(4)})
    with pytest.raises(PlotError, match="select all but one"):
        plot_regions(both, "population")


def test_unknown_region_suggests_only_close_names() -> None:
    # Kazakhstan's units: "Narnia" is as close to "Astana" (difflib ratio 0.5) as to nothing.
    names = ["Astana", "Almaty city", "Shymkent", "Kostanay", "Turkistan"]
    ds = xr.Dataset(
        {"population": (("time", "Region"), np.ones((2, len(names))))},
        coords={"time": [2022.0, 2023.0], "Region": names},
    )
    with pytest.raises(PlotError) as caught:
        plot_regions(ds, "population", ["Narnia"])
    message = str(caught.value)
    assert "did you mean" not in message
    assert message.endswith("the Region elements are " + ", ".join(names) + ".")
    with pytest.raises(PlotError, match=r"No Region 'almaty City'.*did you mean 'Almaty city'\?$"):
        plot_regions(ds, "population", ["almaty City"])
    with pytest.raises(PlotError, match=r"did you mean 'Turkistan'\?$"):
        plot_scenarios(compare({"a": ds, "b": ds}), "population", "Turkestan")


def test_plot_error_is_defined_once_and_importable_from_plots() -> None:
    assert PlotError is _errors.PlotError
    assert PlotError.__module__ == "sd_model._errors"
    with pytest.raises(_errors.PlotError, match="Unknown index"):
        plot_disparity(_run(1), "atkinson", var="income_per_capita", weight=None)


# --------------------------------------------------------------------------- plot_scenarios
def test_plot_scenarios_one_region_and_national_aggregates() -> None:
    a, b = _run(1, scenario="a"), _run(2, scenario="b")
    both = compare({"baseline": a, "policy": b})
    ax = plot_scenarios(both, "population", "Centre")
    lines = _lines(ax)
    assert list(lines) == ["baseline", "policy"]
    assert np.array_equal(lines["policy"], b.population.sel(Region="Centre").values)
    assert ax.get_ylabel() == "Population [persons]"
    assert ax.get_xlabel() == "time [Year]"
    # Persons are summed into a national total.
    total = plot_scenarios(both, "population")
    assert np.allclose(_lines(total)["baseline"], a.population.values.sum(axis=1))
    assert "total" in total.get_title()
    # Per-person units are averaged with the weights the caller names.
    mean = plot_scenarios(both, "income_per_capita", weight="population")
    p, y = a.population.values, a.income_per_capita.values
    assert np.allclose(_lines(mean)["baseline"], (p * y).sum(axis=1) / p.sum(axis=1))
    assert mean.get_ylabel() == f"Income per Capita [{INCOME_UNITS}]"
    # So are dimensionless rates, unless asked otherwise.
    rate = plot_scenarios(both, "unemployment_rate", national="mean")
    assert np.allclose(_lines(rate)["policy"], b.unemployment_rate.values.mean(axis=1))
    national = _lines(plot_scenarios(both, "gdp"))
    assert np.array_equal(national["baseline"], a.gdp.values)
    assert np.array_equal(national["policy"], b.gdp.values)


def test_plot_scenarios_errors() -> None:
    both = compare({"a": _run(1), "b": _run(2)})
    with pytest.raises(PlotError, match="national"):
        plot_scenarios(both, "gdp", "North")
    with pytest.raises(PlotError, match="Unknown national"):
        plot_scenarios(both, "population", national="median")  # type: ignore[arg-type]
    # A rate's national value is a mean: without weights it must be asked for.
    with pytest.raises(PlotError, match=r"'unemployment_rate'.*weight='population'.*'mean'"):
        plot_scenarios(both, "unemployment_rate")
    with pytest.raises(PlotError, match="needs a weight variable.*'populaton'"):
        plot_scenarios(both, "unemployment_rate", weight="populaton")


# --------------------------------------------------------------------------- plot_disparity
def test_plot_disparity_draws_the_hand_computed_williamson_index() -> None:
    a, b = _run(1), _run(2)
    ax = plot_disparity(
        compare({"baseline": a, "policy": b}), var="income_per_capita", weight="population"
    )
    lines = _lines(ax)
    assert list(lines) == ["baseline", "policy"]
    for name, run in (("baseline", a), ("policy", b)):
        y, p = run.income_per_capita.values, run.population.values
        mean = (p * y).sum(axis=1) / p.sum(axis=1)
        sd = np.sqrt((p * (y - mean[:, None]) ** 2).sum(axis=1) / p.sum(axis=1))
        assert np.allclose(lines[name], sd / mean)
    assert ax.get_ylabel() == "Williamson index of Income per Capita [Dmnl]"
    single = plot_disparity(a, "max_min", var="income_per_capita", weight="population")
    expected = a.income_per_capita.max("Region") / a.income_per_capita.min("Region")
    assert np.allclose(single.lines[0].get_ydata(), expected.values)
    with pytest.raises(PlotError, match="Unknown index 'atkinson'"):
        plot_disparity(a, "atkinson", var="income_per_capita", weight="population")
    # Equal weights: the Williamson index is the CV with the population (ddof=0) std.
    equal = plot_disparity(a, var="income_per_capita", weight=None)
    y = a.income_per_capita.values
    assert np.allclose(equal.lines[0].get_ydata(), y.std(axis=1) / y.mean(axis=1))


# --------------------------------------------------------------------------- plot_fit
def test_plot_fit_panels_lines_and_points() -> None:
    sim = _run(5)
    rows = [
        {"region": r, "year": int(t), "variable": "pop_obs", "value": 1000.0 * i + j}
        for i, t in enumerate(TIMES[:3])
        for j, r in enumerate(REGIONS)
    ]
    fig = plot_fit(
        sim,
        pd.DataFrame(rows),
        "population",
        ["North", "South"],
        observed_var="pop_obs",
        calibration=(2022, 2023),
    )
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["North", "South"]
    south = visible[1]
    sim_line, obs_points = south.lines
    assert np.array_equal(sim_line.get_ydata(), sim.population.sel(Region="South").values)
    assert np.array_equal(obs_points.get_xdata(), TIMES[:3])
    assert np.array_equal(obs_points.get_ydata(), [2.0, 1002.0, 2002.0])
    assert fig.get_supylabel() == "Population [persons]"
    assert fig.get_supxlabel() == "time [Year]"
    with pytest.raises(PlotError, match="No observed series 'population'"):
        plot_fit(sim, pd.DataFrame(rows), "population")


# --------------------------------------------------------------------------- CLI
def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sd-model")
    add_plot_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_writes_readable_images_without_pyplot(tmp_path: Path) -> None:
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    _run(1, scenario="baseline").to_netcdf(a)
    _run(2, scenario="policy").to_netcdf(b)
    before = plt.get_fignums()
    png = tmp_path / "fig.png"
    assert _cli(["plot", str(a), "--var", "population", "--region", "North", "-o", str(png)]) == 0
    with Image.open(png) as im:
        assert im.format == "PNG"
        assert im.size[0] > 300 and im.size[1] > 200
    pixels = mpimg.imread(png)
    assert pixels.ndim == 3 and pixels.std() > 0  # not a blank image
    out = tmp_path / "scen.png"
    income = ["--var", "income_per_capita", "--weight", "population"]
    assert _cli(["plot", str(a), str(b), *income, "-o", str(out)]) == 0
    assert mpimg.imread(out).shape[2] in (3, 4)
    pdf = tmp_path / "w.pdf"
    assert _cli(["plot", str(a), str(b), "--disparity", "gini", *income, "-o", str(pdf)]) == 0
    assert pdf.read_bytes().startswith(b"%PDF")
    assert plt.get_fignums() == before  # the command does not leave pyplot figures behind
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.nc",
        "b.nc",
        "fig.png",
        "scen.png",
        "w.pdf",
    ]


def test_cli_user_errors(tmp_path: Path) -> None:
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    _run(1).to_netcdf(a)
    _run(2, sha="other").to_netcdf(b)
    with pytest.raises(sd_model.SDModelError, match="unknown image extension '.xyz'"):
        _cli(["plot", str(a), "--var", "population", "-o", str(tmp_path / "f.xyz")])
    with pytest.raises(sd_model.SDModelError, match="--var NAME"):
        _cli(["plot", str(a), "-o", str(tmp_path / "f.png")])
    with pytest.raises(PlotError, match="--disparity needs.*--var NAME --weight NAME"):
        _cli(["plot", str(a), "--disparity", "gini", "-o", str(tmp_path / "f.png")])
    with pytest.raises(PlotError, match="--disparity needs"):
        argv = ["plot", str(a), "--disparity", "gini", "--var", "income_per_capita"]
        _cli([*argv, "-o", str(tmp_path / "f.png")])
    with pytest.raises(sd_model.SDModelError, match="different models"):
        _cli(["plot", str(a), str(b), "--var", "population", "-o", str(tmp_path / "f.png")])
    argv = ["plot", str(a), str(b), "--any-model", "--var", "population"]
    with pytest.raises(sd_model.SDModelError, match="at most one --region"):
        _cli([*argv, "--region", "North", "--region", "South", "-o", str(tmp_path / "f.png")])
    assert not (tmp_path / "f.png").exists()
    assert not list(tmp_path.glob(".*tmp"))
