"""Policy explorer logic, without a browser: levers, runs, address, saved scenarios.

The numbers the page shows are checked against ``Model.run`` and ``sd_model.metrics`` on
the same inputs (tests/test_explore_browser.py checks the page itself).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

import sd_model
from sd_model._errors import (
    IntegrationError,
    ParameterError,
    ScenarioError,
    SDModelError,
    UnsupportedFeatureError,
)
from sd_model.explore import (
    Runner,
    ViewChoice,
    decode_query,
    discover_levers,
    encode_query,
    load_setup,
    save_scenario,
    summary_rows,
)
from sd_model.explore.export import results_bytes, run_dataset
from sd_model.explore.levers import nice_step
from sd_model.metrics import theil_index, williamson_index

ROOT = Path(__file__).resolve().parents[1]
KZ_SCENARIOS = [
    "baseline",
    "equalization",
    "green",
    "industrial_sites",
    "loans_incentives",
    "transport",
]

# A three-region model whose constants carry Vensim's [min, max, step] units ranges.
REGIONS_MDL = """{UTF-8}
Region: North, Centre, South
\t~\t
\t~\tThree regions.
\t|
Population[Region] = INTEG(Population[Region] * (birth rate - death rate) + Migration[Region],
\tinitial population[Region])
\t~\tperson
\t~\tResidents.
\t|
initial population[Region] = 1000, 2000, 1500
\t~\tperson
\t~\tResidents at the start.
\t|
birth rate = 0.02
\t~\t1/Year [0, 0.05, 0.005]
\t~\tBirths per resident and year.
\t|
death rate = 0.01
\t~\t1/Year [0, 0.05]
\t~\tDeaths per resident and year.
\t|
productivity[Region] = 10, 6, 4
\t~\tthousand KZT/(person*Year) [1, 20, 1]
\t~\tOutput per resident.
\t|
transfer share = 0
\t~\tDmnl [0, 1, 0.1]
\t~\tShare of the income gap closed by transfers.
\t|
openness = 0.5
\t~\tDmnl [0, ?]
\t~\tNot a lever: no maximum.
\t|
mobility = 0.01
\t~\t1/Year
\t~\tNot a lever: no range.
\t|
Income per Capita[Region] = productivity[Region] + transfer share * (National Income per Capita
\t- productivity[Region])
\t~\tthousand KZT/(person*Year)
\t~\tIncome after transfers.
\t|
National Income per Capita = SUM(productivity[Region!] * Population[Region!]) / Total Population
\t~\tthousand KZT/(person*Year)
\t~\tPopulation-weighted mean.
\t|
Migration[Region] = mobility * Population[Region] * (Income per Capita[Region]
\t/ National Income per Capita - 1)
\t~\tperson/Year
\t~\tTowards higher incomes.
\t|
Total Population = SUM(Population[Region!])
\t~\tperson
\t~\tAll regions.
\t|
INITIAL TIME = 2022
\t~\tYear
\t~\t|
FINAL TIME = 2040
\t~\tYear
\t~\t|
TIME STEP = 0.25
\t~\tYear
\t~\t|
SAVEPER = 1
\t~\tYear
\t~\t|
"""


@pytest.fixture(scope="module")
def regions_mdl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("explore_models") / "regions.mdl"
    path.write_text(REGIONS_MDL, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def regions_model(regions_mdl: Path) -> sd_model.Model:
    return sd_model.load(regions_mdl)


@pytest.fixture(scope="module")
def kz_setup() -> object:
    return load_setup(ROOT / "scenarios" / "equalization.yaml")


def _scenario(tmp_path: Path, model: Path, body: str) -> Path:
    path = tmp_path / "sc.yaml"
    path.write_text(f"name: sc\nmodel: {model}\n{body}", encoding="utf-8")
    return path


# ---------------------------------------------------------------------- levers
def test_levers_from_units_field(regions_model: sd_model.Model) -> None:
    levers = discover_levers(regions_model)
    # File order; 'openness' ([0, ?]) and 'mobility' (no range) are not levers.
    assert levers.keys == [
        "birth rate",
        "death rate",
        "productivity[North]",
        "productivity[Centre]",
        "productivity[South]",
        "transfer share",
    ]
    birth = levers["birth rate"]
    assert (birth.min, birth.max, birth.step, birth.baseline) == (0, 0.05, 0.005, 0.02)
    assert birth.units == "1/Year"
    assert birth.description == "Births per resident and year."
    # No step in the units field: about 100 round positions.
    assert levers["death rate"].step == 0.0005
    south = levers["productivity[South]"]
    assert (south.element, south.baseline, south.step) == (("South",), 4.0, 1.0)
    assert levers["PRODUCTIVITY[south]"] is south  # Vensim names ignore case
    assert levers.overrides(levers.baseline())["productivity"] == {
        "North": 10.0,
        "Centre": 6.0,
        "South": 4.0,
    }


def test_nice_step() -> None:
    assert [nice_step(s) for s in (1.0, 3000.0, 0.05, 7.0)] == [0.01, 50.0, 0.0005, 0.1]


def test_levers_section_replaces_units_field(tmp_path: Path, regions_mdl: Path) -> None:
    path = _scenario(
        tmp_path,
        regions_mdl,
        "set: {birth rate: 0.03, productivity: {South: 5}}\n"
        "levers:\n"
        "  transfer share: [0, 0.8, 0.05]\n"
        "  productivity: {min: 2, max: 12, group: Economy, label: Output,"
        " baseline: {South: 3}}\n"
        "  Birth_Rate: {min: 0, max: 0.04, description: Fertility lever.}\n",
    )
    setup = load_setup(path)
    levers = setup.levers
    assert levers.keys == [
        "transfer share",
        "productivity[North]",
        "productivity[Centre]",
        "productivity[South]",
        "birth rate",
    ]
    assert levers["transfer share"].max == 0.8
    assert levers["productivity[South]"].baseline == 3.0  # the section's baseline
    assert levers["productivity[South]"].default == 4.0  # the model file's value
    assert levers["productivity[North]"].group == "Economy"
    assert levers["birth rate"].description == "Fertility lever."
    assert levers["birth rate"].step == nice_step(0.04)
    # The page opens at the scenario's values; the baseline run uses the section's.
    assert setup.start["birth rate"] == 0.03
    assert setup.start["productivity[South]"] == 5.0
    assert setup.start["productivity[North]"] == 10.0
    assert set(levers.groups()) == {"Levers", "Economy"}


@pytest.mark.parametrize(
    ("levers_yaml", "line", "message"),
    [
        ("  transfer share: {min: 0, max: 1, stpe: 0.1}\n", 5, "unknown key 'stpe'.*'step'"),
        ("  transfer share: [1, 0]\n", 5, "min \\(1\\) must be below max \\(0\\)"),
        ("  transfer share: [0, 1, 2]\n", 5, "step \\(2\\) is larger than the range"),
        ("  transfer share: [0, one]\n", 5, "max must be a number"),
        ("  transfer share: {min: 0}\n", 5, "give both min and max"),
        ("  transfer share: 5\n", 5, "must be \\[min, max\\]"),
        ("  transfer share: {min: 0, max: 1, baseline: x}\n", 5, "baseline must be a number"),
        ("  transfer share: {min: 0, max: 1, label: 3}\n", 5, "label must be text"),
    ],
)
def test_levers_section_errors_name_file_and_line(
    tmp_path: Path, regions_mdl: Path, levers_yaml: str, line: int, message: str
) -> None:
    path = _scenario(tmp_path, regions_mdl, "set: {}\nlevers:\n" + levers_yaml)
    with pytest.raises(ScenarioError, match=re.escape(f"{path}:{line}:") + ".*" + message):
        sd_model.Scenario.from_yaml(path)


@pytest.mark.parametrize(
    ("levers_yaml", "message"),
    [
        ("  transfer shares: [0, 1]\n", "not a constant of regions.mdl.*'transfer share'"),
        ("  Population: [0, 1]\n", "not a constant"),
        ("  mobility:\n", "has no range"),
        ("  transfer share: {min: 0.5, max: 1}\n", "baseline of transfer share \\(0\\) is outside"),
        ("  productivity: {min: 0, max: 20, baseline: {East: 1}}\n", "'East' is not an element"),
    ],
)
def test_levers_checked_against_the_model(
    tmp_path: Path, regions_mdl: Path, levers_yaml: str, message: str
) -> None:
    path = _scenario(tmp_path, regions_mdl, "set: {}\nlevers:\n" + levers_yaml)
    with pytest.raises(ScenarioError, match=re.escape(f"{path}:5:") + ".*" + message):
        load_setup(path)


def test_scenario_start_value_outside_range_is_refused(tmp_path: Path, regions_mdl: Path) -> None:
    path = _scenario(tmp_path, regions_mdl, "set:\n  transfer share: 2\n")
    with pytest.raises(
        ParameterError, match=re.escape(f"{path}:4 (set)") + ".*outside its range 0 to 1"
    ):
        load_setup(path)


def test_models_without_levers_are_refused_with_the_fix(tmp_path: Path) -> None:
    text = re.sub(r" \[[^\]]*\]", "", REGIONS_MDL)  # drop every units range
    path = tmp_path / "plain.mdl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SDModelError, match="no levers to show.*'levers:' section"):
        load_setup(path)


def _policy_constants() -> list[str]:
    """The constants of the .mdl's 'Policy levers' group, read from the file's text."""
    text = (ROOT / "models" / "kazakhstan_regions.mdl").read_text(encoding="utf-8")
    section = text.split(".Policy levers", 1)[1].split("*****\n\t.", 1)[0]
    names = []
    for m in re.finditer(r"^([a-z][^=\n\[]*?)(\[Region\])?\s*=\n\t([^\n]*)", section, re.M):
        if re.fullmatch(r"[-\d.]+", m.group(3).strip()):  # a constant, not an equation
            names.append(m.group(1).strip())
    return names


def test_kazakhstan_scenarios_have_every_policy_lever() -> None:
    policy = _policy_constants()
    assert len(policy) == 10, policy  # the model's 8 instruments and the 2 timing constants
    sections = {}
    for name in KZ_SCENARIOS:
        sc = sd_model.Scenario.from_yaml(ROOT / "scenarios" / f"{name}.yaml")
        sections[name] = sc.levers
        assert sorted(sc.levers) == sorted(policy), name
        # Whatever a package sets itself is a lever of the page (its params_file holds
        # fitted values of other parameters).
        own = yaml.safe_load((ROOT / "scenarios" / f"{name}.yaml").read_text()).get("set") or {}
        for key in own:
            assert key.split("[")[0] in sc.levers, (name, key)
    first = sections[KZ_SCENARIOS[0]]
    assert all(s == first for s in sections.values())  # one set of sliders for all packages


def test_kazakhstan_page_opens_at_the_scenario(kz_setup) -> None:
    green = load_setup(ROOT / "scenarios" / "green.yaml", model=kz_setup.model)
    assert green.start["abatement investment[Pavlodar]"] == 60
    assert green.start["abatement investment[Astana]"] == 0
    assert green.start["clean technology rate"] == 0.02
    # Every override of the package is a lever; the rest are the fitted parameters.
    fitted = yaml.safe_load((ROOT / "models" / "params" / "forecast" / "params.yaml").read_text())
    assert green.base == fitted["set"]
    assert len(green.levers) == 6 + 4 * 20
    assert kz_setup.start["equalization transfer intensity"] == 0.8
    assert kz_setup.levers.baseline()["equalization transfer intensity"] == 0


def test_out_of_range_values_are_refused(kz_setup) -> None:
    with pytest.raises(ParameterError, match="'equalization transfer intensity' = 1.5 is outside"):
        kz_setup.levers.check({"equalization transfer intensity": 1.5})
    with pytest.raises(ParameterError, match="needs a number"):
        kz_setup.levers.check({"transport programme": "lots"})
    with pytest.raises(ParameterError, match="unknown lever 'transport program'.*programme"):
        kz_setup.levers.check({"transport program": 1})
    # The last slider step of a float range may overshoot by rounding: accepted, clipped.
    assert (
        kz_setup.levers.check({"clean technology rate": 0.05000000000000001})[
            "clean technology rate"
        ]
        == 0.05
    )


# ---------------------------------------------------------------------- runs
def test_page_numbers_equal_model_run(kz_setup) -> None:
    setup = kz_setup
    runner = Runner(setup)
    values = dict(setup.start)
    values["equalization transfer intensity"] = 0.55
    values["abatement investment[Pavlodar]"] = 40
    run = runner.run(values)
    assert runner.run(values) is run  # cached
    # The scenario's own run, with its fitted parameters (params_file) and solver.
    scenario = sd_model.Scenario.from_yaml(ROOT / "scenarios" / "equalization.yaml")
    assert scenario.solver["method"] == setup.solver.method == "rk4"
    ds = scenario.run(
        setup.model,
        params={"equalization transfer intensity": 0.55, "abatement investment[Pavlodar]": 40},
    )
    np.testing.assert_allclose(run.times, ds.time.values)
    for var in ("population", "income_per_capita", "gdp", "national_fund"):
        np.testing.assert_allclose(run.data[var], ds[var].values, rtol=1e-10, err_msg=var)
    choice = ViewChoice("income_per_capita", "gdp", "income_per_capita", 2050.0)
    rows = {r.key: r for r in summary_rows(runner.baseline, run, setup.view, choice)}
    y = ds.income_per_capita.sel(time=2050)
    p = ds.population.sel(time=2050)
    # Truths computed apart from the explorer: sd_model.metrics and the model's own index.
    w = float(williamson_index(y, p, dim="Region"))
    assert rows["williamson"].current == pytest.approx(w, rel=1e-10)
    assert rows["williamson"].current == pytest.approx(
        float(ds.williamson_index.sel(time=2050)), rel=1e-9
    )
    assert rows["theil"].current == pytest.approx(float(theil_index(y, p, dim="Region")), rel=1e-10)
    assert rows["national"].current == pytest.approx(float(ds.gdp.sel(time=2050)), rel=1e-10)
    assert rows["region:Jetisu"].current == pytest.approx(float(y.sel(Region="Jetisu")), rel=1e-10)
    base = sd_model.Scenario.from_yaml(ROOT / "scenarios" / "baseline.yaml").run(setup.model)
    assert rows["williamson"].baseline == pytest.approx(
        float(base.williamson_index.sel(time=2050)), rel=1e-9
    )
    with pytest.raises(ParameterError, match="outside its range"):
        runner.run({"equalization transfer intensity": -0.1})


FAILING_MDL = """{UTF-8}
x = INTEG(growth * x + feedback * x * x, 1)
\t~\tDmnl
\t~\tBlows up in finite time when the feedback is strong.
\t|
growth = 0.02
\t~\t1/Year [0, 0.1, 0.01]
\t~\tLinear growth.
\t|
feedback = 0
\t~\t1/Year [0, 1, 0.1]
\t~\tQuadratic feedback: x = 1/(1 - feedback t) blows up at t = 1/feedback.
\t|
INITIAL TIME = 0
\t~\tYear
\t~\t|
FINAL TIME = 5
\t~\tYear
\t~\t|
TIME STEP = 0.125
\t~\tYear
\t~\t|
SAVEPER = 0.5
\t~\tYear
\t~\t|
"""


def test_a_failing_run_raises_and_leaves_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "failing.mdl"
    path.write_text(FAILING_MDL, encoding="utf-8")
    setup = load_setup(path)
    runner = Runner(setup)
    good = runner.run({"growth": 0.05})
    with pytest.raises(IntegrationError, match="x"):
        runner.run({"feedback": 1.0})
    assert runner.run({"growth": 0.05}) is good
    assert good.data["x"][-1] == pytest.approx(
        float(setup.model.run({"growth": 0.05}).x[-1]), rel=1e-12
    )


# ---------------------------------------------------------------------- address
def test_address_round_trip(kz_setup) -> None:
    levers = kz_setup.levers
    values = dict(kz_setup.start)
    values["abatement investment[East Kazakhstan]"] = 35
    values["clean technology rate"] = 0.0075
    view = {"view.regional": "population", "view.year": "2040"}
    query = encode_query(levers, values, view)
    assert "equalization_transfer_intensity=0.8" in query
    assert "abatement_investment[East+Kazakhstan]=35" in query
    assert "policy_start_year" not in query  # at its baseline
    state = decode_query(levers, "?" + query, kz_setup.start)
    assert state.values == values
    assert state.view == view
    assert state.errors == ()
    # All levers at the baseline is a state of its own, not "no state".
    base_query = encode_query(levers, levers.baseline())
    assert decode_query(levers, base_query, kz_setup.start).values == levers.baseline()
    assert decode_query(levers, "", kz_setup.start).values is None


def test_bad_address_entries_are_reported_and_skipped(kz_setup) -> None:
    state = decode_query(
        kz_setup.levers,
        "equalization_transfer_intensity=3&transport_programme=abc&nonsense=1"
        "&special_subsidy_pool=200&view.colour=red",
        kz_setup.start,
    )
    assert state.values is not None
    assert state.values["equalization transfer intensity"] == 0.8  # kept at the start value
    assert state.values["transport programme"] == 0
    assert state.values["special subsidy pool"] == 200
    text = "\n".join(state.errors)
    assert "'equalization transfer intensity' = 3 is outside its range 0 to 1" in text
    assert "Kept 0.8" in text
    assert "'transport programme' needs a number" in text
    assert "unknown lever 'nonsense'" in text
    assert "unknown setting 'view.colour'" in text


# ---------------------------------------------------------------------- keeping
def test_saved_scenario_reproduces_the_page(tmp_path: Path, kz_setup) -> None:
    setup = kz_setup
    values = dict(setup.start)
    values["transport programme"] = 700
    values["investment incentive rate[Turkistan]"] = 0.12
    path = save_scenario(setup, values, tmp_path, "my_package", description="Test package.")
    assert path == tmp_path / "my_package.yaml"
    doc = yaml.safe_load(path.read_text())
    assert doc["set"]["transport programme"] == 700
    assert doc["set"]["investment incentive rate"]["Turkistan"] == 0.12
    assert doc["set"]["investment incentive rate"]["Astana"] == 0
    assert "preferential loan rate discount" not in doc["set"]  # unchanged from the model
    assert doc["levers"] == {k: dict(v) for k, v in setup.scenario_levers.items()}
    assert doc["description"].startswith("Test package. Saved from the policy explorer")
    # `sd-model run` runs Scenario.run: the same numbers as the page.
    ds = sd_model.Scenario.from_yaml(path).run(model=setup.model)
    run = Runner(setup).run(values)
    for var in ("population", "williamson_index", "national_fund"):
        np.testing.assert_allclose(run.data[var], ds[var].values, rtol=1e-10, err_msg=var)
    # The file reopens in the explorer where it was left.
    again = load_setup(path, model=setup.model)
    assert again.start == pytest.approx(values)
    assert again.solver == setup.solver and again.grid == setup.grid
    with pytest.raises(SDModelError, match="exists already"):
        save_scenario(setup, values, tmp_path, "my_package")
    with pytest.raises(SDModelError, match="letters, digits"):
        save_scenario(setup, values, tmp_path, "../elsewhere")


def test_results_download_is_the_scenario_run(tmp_path: Path, kz_setup) -> None:
    values = dict(kz_setup.start)
    values["special subsidy pool"] = 300
    ds = run_dataset(kz_setup, values)
    run = Runner(kz_setup).run(values)
    np.testing.assert_allclose(run.data["gdp"], ds.gdp.values, rtol=1e-10)
    assert ds.attrs["scenario"] == kz_setup.name
    table = pd.read_csv(io.BytesIO(results_bytes(ds, ".csv")))
    np.testing.assert_allclose(table["GDP"], run.data["gdp"], rtol=1e-12)
    nc_file = tmp_path / "page.nc"
    nc_file.write_bytes(results_bytes(ds, ".nc"))
    with xr.open_dataset(nc_file) as nc:
        np.testing.assert_allclose(nc.gdp.values, run.data["gdp"], rtol=1e-12)
    with pytest.raises(SDModelError, match=".nc, .csv"):
        results_bytes(ds, ".xlsx")


# ---------------------------------------------------------------------- bands
def test_calibration_draws_give_bands(tmp_path: Path, regions_mdl: Path) -> None:
    draws = tmp_path / "draws.csv"
    draws.write_text(
        "draw,mobility,initial population[North]\n0,0.0,800\n1,0.01,1000\n2,0.03,1300\n"
    )
    setup = load_setup(regions_mdl, draws=draws)
    runner = Runner(setup)
    run = runner.run({"transfer share": 0.3})
    model = setup.model
    each = np.stack(
        [
            model.run(
                {"transfer share": 0.3, "mobility": m, "initial population[North]": n}
            ).population.values
            for m, n in ((0.0, 800), (0.01, 1000), (0.03, 1300))
        ]
    )
    lo, hi = np.quantile(each, (0.05, 0.95), axis=0)
    np.testing.assert_allclose(run.bands["population"][0], lo, rtol=1e-10)
    np.testing.assert_allclose(run.bands["population"][1], hi, rtol=1e-10)
    bad = tmp_path / "bad.csv"
    bad.write_text("transfer share\n0.5\n")
    with pytest.raises(ParameterError, match="lever of the page"):
        load_setup(regions_mdl, draws=bad)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("mobilty\n0.5\n")
    with pytest.raises(ParameterError, match="unknown.csv.*'mobilty'.*mobility"):
        load_setup(regions_mdl, draws=unknown)


def test_a_move_sends_only_the_current_run(tmp_path: Path, regions_mdl: Path) -> None:
    """A view per choice (baseline, labels), then one frame of current-run arrays per move."""
    from sd_model.explore.figures import FigureData, unpack

    draws = tmp_path / "draws.csv"
    draws.write_text("draw,mobility\n0,0.0\n1,0.01\n2,0.03\n")
    setup = load_setup(regions_mdl, draws=draws)
    runner = Runner(setup)
    spec = setup.view
    choice = ViewChoice(
        spec.default_regional(), spec.default_national(), spec.default_disparity(), 2040.0
    )
    data = FigureData(spec, time_units="Year", bands=True)
    view, first = data.update(runner.baseline, runner.baseline, choice, run_number=0)
    assert view is not None and first["view"] == view["key"]
    run = runner.run({"transfer share": 0.5})
    again, frame = data.update(run, runner.baseline, choice, run_number=1)
    # The same choice: no view (baseline, times, labels) is sent again.
    assert again is None
    assert frame["run"] == 1 and frame["view"] == view["key"]
    # One float64 array for every series: one binary buffer on the websocket.
    assert frame["values"].dtype == np.float64 and frame["values"].flags.c_contiguous
    series = unpack(frame)
    lines = ("williamson", "theil", "national")
    assert set(series) == {"regional", "bars"} | {
        f"{line}.{part}" for line in lines for part in ("current", "lo", "hi")
    }
    assert sum(a.size for a in series.values()) == frame["values"].size
    # The numbers are the run's: regional (T, regions) row-major, the bars at the year,
    # the national variable with its band; the indices by metrics' own formulas.
    income = run.data[choice.regional]
    np.testing.assert_array_equal(series["regional"], income.ravel())
    year = int(np.flatnonzero(run.times == 2040.0)[0])
    np.testing.assert_array_equal(series["bars"], income[year])
    np.testing.assert_array_equal(series["national.current"], run.data[choice.national])
    np.testing.assert_array_equal(series["national.lo"], run.bands[choice.national][0])
    np.testing.assert_array_equal(series["national.hi"], run.bands[choice.national][1])
    pop = run.data[spec.population]
    np.testing.assert_allclose(
        series["theil.current"], theil_index(income, pop, axis=-1), rtol=1e-12
    )
    # The baseline went once, in the view, with titles and units for the axes.
    base_income = runner.baseline.data[choice.regional]
    np.testing.assert_array_equal(view["regional"]["baseline"], base_income.ravel())
    np.testing.assert_array_equal(view["bars"]["baseline"], base_income[year])
    assert view["regional"]["y_label"] == spec.units[choice.regional]
    assert view["bars"]["title"].endswith("in 2040")
    assert [line["id"] for line in view["lines"]] == ["williamson", "theil", "national"]
    assert view["band_label"]
    # A new choice (another year) sends a new view, and frames name it.
    later = ViewChoice(*list(vars(choice).values())[:3], 2030.0)
    view2, frame2 = data.update(run, runner.baseline, later, run_number=2)
    assert view2 is not None and view2["key"] == frame2["view"] != view["key"]
    year = int(np.flatnonzero(run.times == 2030.0)[0])
    np.testing.assert_array_equal(unpack(frame2)["bars"], income[year])


def test_indices_are_computed_once_per_run(regions_mdl: Path) -> None:
    """The graphs and the table share a run's indices (computed once, kept with the run)."""
    from sd_model.explore import views

    runner = Runner(load_setup(regions_mdl))
    spec = runner.setup.view
    run = runner.run({"transfer share": 0.3})
    first = views.disparity(run, spec, spec.default_disparity())
    second = views.disparity(run, spec, spec.default_disparity())
    assert first["theil"] is second["theil"]  # the same array: not recomputed
    y = run.data[spec.default_disparity()]
    np.testing.assert_allclose(
        first["williamson"], williamson_index(y, run.data[spec.population], axis=-1)
    )


# ---------------------------------------------------------------------- fallback
def test_a_model_the_compiler_does_not_cover_falls_back(
    regions_mdl: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = sd_model.load(regions_mdl)

    def refuse() -> None:
        # What the compiler raises for a construct it lacks (the compiled backend now
        # covers every construct of this small model, so the refusal is simulated).
        raise UnsupportedFeatureError("the function FANCY in element 'noise'")

    monkeypatch.setattr(model, "compiled", refuse)
    setup = load_setup(regions_mdl, model=model)
    assert setup.backend == "pysd"
    assert "FANCY" in setup.backend_note
    run = Runner(setup).run({"transfer share": 0.5})
    assert run.backend == "pysd"
    ds = model.run({"transfer share": 0.5}, backend="pysd")
    np.testing.assert_allclose(run.data["population"], ds.population.values, rtol=1e-12)


# ---------------------------------------------------------------------- command
def test_explore_command_is_lazy_and_documented() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from sd_model.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        "        main(['explore', '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(out.getvalue())\n"
        "print('PANEL LOADED' if 'panel' in sys.modules else 'no panel')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "--port" in res.stdout and "--no-browser" in res.stdout and "--draws" in res.stdout
    assert "127.0.0.1" in res.stdout
    assert "no panel" in res.stdout


def test_explore_command_reports_bad_targets(tmp_path: Path, capsys) -> None:
    from sd_model.cli import main

    path = tmp_path / "sc.yaml"
    path.write_text("model: nowhere.mdl\n")
    assert main(["explore", str(path), "--no-browser"]) == 2
    assert "model file 'nowhere.mdl' not found" in capsys.readouterr().err


NOISY_MDL = """{UTF-8}
amp = 1
	~	widgets/Month [0,5,0.1]
	~	scale of the noise
	|
noise = amp * RANDOM NORMAL(-3, 3, 0, 1, 42)
	~	widgets/Month
	~		|
level = INTEG(noise, 0)
	~	widgets
	~		|
FINAL TIME = 30
	~	Month
	~		|
INITIAL TIME = 0
	~	Month
	~		|
SAVEPER = TIME STEP
	~	Month
	~		|
TIME STEP = 1
	~	Month
	~		|
"""


def test_random_models_keep_their_draws_across_moves_and_saves(tmp_path: Path) -> None:
    path = tmp_path / "noisy.mdl"
    path.write_text(NOISY_MDL, encoding="utf-8")
    setup = load_setup(path)
    assert setup.seed == 0
    runner = Runner(setup)
    one, two = runner.run({"amp": 1.0}), runner.run({"amp": 2.0})
    # only the lever moved: the same draws, scaled (level is linear in amp)
    np.testing.assert_allclose(two.data["level"], 2 * one.data["level"], rtol=1e-12)
    assert np.ptp(one.data["level"]) > 0.5
    saved = save_scenario(setup, {"amp": 2.0}, tmp_path, "noisy_saved")
    assert yaml.safe_load(saved.read_text())["seed"] == 0
    ds = sd_model.Scenario.from_yaml(saved).run(model=setup.model)
    np.testing.assert_array_equal(ds["level"].values, two.data["level"])


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler on this machine")
def test_the_page_compiles_the_c_tier_before_its_first_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Without the explorer, a handful of short runs would not compile C (tier policy).
    monkeypatch.setenv("SD_MODEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SD_MODEL_TIER", raising=False)
    # a model no other test compiles (one more equation: another C source)
    path = tmp_path / "regions_c.mdl"
    extra = "doubled time = Time * 2\n\t~\tyear\n\t~\t\t|\n\n"
    path.write_text(REGIONS_MDL.replace("{UTF-8}\n", "{UTF-8}\n" + extra, 1), encoding="utf-8")
    model = sd_model.load(path)
    assert model.run().attrs["solver_tier"] != "c"
    runner = Runner(load_setup(path, model=model))
    assert runner.c_note == ""
    ds = model.run()
    assert ds.attrs["solver_tier"] == "c"
    np.testing.assert_allclose(
        runner.baseline.data["population"], ds["population"].values, rtol=1e-12
    )
