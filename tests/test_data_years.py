"""Years that follow the data (sd_model.data_years), and the files that use them.

Truths are set by the tests: small CSV files written here, whose latest complete year is
known by construction.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sd_model._errors import CalibrationError, ScenarioError
from sd_model.calibrate.config import CalibrationFile
from sd_model.data_years import (
    DataYearError,
    latest_complete_year,
    resolve_window,
)
from sd_model.scenarios import Scenario

ROOT = Path(__file__).resolve().parents[1]

POPULATION = """year,North,South,unit,source
2020,10,20,person,test
2021,11,21,person,test
2022,12,22,person,test
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_latest_year_with_every_value(tmp_path):
    write(tmp_path, "data/pop.csv", POPULATION)
    assert latest_complete_year({"latest_year_in": "data/pop.csv"}, tmp_path, "f.yaml") == 2022


def test_gaps_in_earlier_years_do_not_matter(tmp_path):
    write(tmp_path, "data/pop.csv", POPULATION.replace("2020,10,", "2020,,"))
    assert latest_complete_year({"latest_year_in": "data/pop.csv"}, tmp_path, "f.yaml") == 2022


def test_several_files_take_the_year_complete_in_all(tmp_path):
    write(tmp_path, "data/series_pop.csv", POPULATION)
    write(tmp_path, "data/series_jobs.csv", POPULATION.replace("2022,12,22,person,test\n", ""))
    spec = {"latest_year_in": ["data/series_pop.csv", "data/series_jobs.csv"]}
    assert latest_complete_year(spec, tmp_path, "f.yaml") == 2021
    assert latest_complete_year({"latest_year_in": "data/series_*.csv"}, tmp_path, "f") == 2021


def test_other_year_column_and_note_columns(tmp_path):
    text = "t,a,b,note\n1990,1,2,x\n1991,1,2,\n"
    write(tmp_path, "d.csv", text)
    spec = {"latest_year_in": "d.csv", "time": "t", "ignore": ["note"]}
    assert latest_complete_year(spec, tmp_path, "f.yaml") == 1991


@pytest.mark.parametrize(
    ("spec", "files", "message"),
    [
        ({"latest_year_in": "data/none.csv"}, {}, "data file 'data/none.csv' not found"),
        ({"latest_year_in": "data/x_*.csv"}, {}, "no file matches 'data/x_\\*.csv'"),
        ({"latest_year_in": "p.csv", "time": "yr"}, {"p.csv": POPULATION}, "no year column 'yr'"),
        (
            {"latest_year_in": "p.csv"},
            {"p.csv": POPULATION + "2023,13,,person,test\n"},
            "incomplete data for 2023 \\(no value for South\\); complete that row or remove it",
        ),
        (
            {"latest_year_in": "p.csv"},
            {"p.csv": "year,a,unit\n2020,,x\n"},
            "no year in which every column \\(a\\) has a value",
        ),
        ({"latest_year_in": "p.csv", "colum": "a"}, {"p.csv": POPULATION}, "unknown key 'colum'"),
        ({"latest_year_in": 5}, {}, "must be a path or a list of paths"),
    ],
)
def test_bad_references_name_the_file_and_key(tmp_path, spec, files, message):
    for name, text in files.items():
        write(tmp_path, name, text)
    with pytest.raises(DataYearError, match=f"^cal.yaml: time.initial: .*{message}"):
        latest_complete_year(spec, tmp_path, "cal.yaml: time.initial")


def test_window_of_given_length():
    assert resolve_window({"final": 2021, "years": 7}, ".", "f") == (2015, 2021)
    assert resolve_window({"final": 2021, "years": 1}, ".", "f") == (2021, 2021)


def test_window_never_spans_a_break():
    rule = {"years": 7, "breaks": [2014, 2022]}
    # before the break, up to it, and after it
    assert resolve_window({**rule, "final": 2021}, ".", "f") == (2015, 2021)
    assert resolve_window({**rule, "final": 2025}, ".", "f") == (2022, 2025)
    # the break year alone is too short (min_years 2): the window ends the year before it
    assert resolve_window({**rule, "final": 2022}, ".", "f") == (2015, 2021)
    assert resolve_window({**rule, "final": 2022, "min_years": 1}, ".", "f") == (2022, 2022)
    # twice: 2014 is too short too, so the window ends in 2013
    assert resolve_window({**rule, "final": 2014, "breaks": [2014]}, ".", "f") == (2007, 2013)


def test_window_follows_the_data(tmp_path):
    write(tmp_path, "data/pop.csv", POPULATION)
    spec = {"final": {"latest_year_in": "data/pop.csv"}, "years": 2}
    assert resolve_window(spec, tmp_path, "f") == (2021, 2022)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"years": 7}, "missing key 'final'"),
        ({"final": 2021}, "missing key 'years'"),
        ({"final": 2021, "years": 0}, "window.years: must be at least 1"),
        ({"final": 2021.5, "years": 7}, "window.final: expected a whole number"),
        ({"final": 2021, "years": 7, "breaks": 2022}, "window.breaks must be a list"),
        ({"final": 2021, "years": 7, "brakes": [2022]}, "unknown key 'brakes'"),
        ([2015, 2021], "window: give"),
    ],
)
def test_bad_windows(spec, message):
    with pytest.raises(DataYearError, match=message):
        resolve_window(spec, ".", "f.yaml")


CALIBRATION = """
model: {model}
window: {{final: {{latest_year_in: data/pop.csv}}, years: 2}}
data:
  - {{file: data/pop.csv, time: year, variable: Population, ignore: [unit, source]}}
  - file: data/pop.csv
    variable: Population
    time: year
    ignore: [unit, source]
    times: [2020, {{latest_year_in: data/pop.csv}}]
params:
  growth: [0, 1]
"""


def test_calibration_file_window_sets_time_and_times(tmp_path):
    write(tmp_path, "data/pop.csv", POPULATION)
    model = ROOT / "models" / "example_regions.mdl"
    path = write(tmp_path, "cal.yaml", CALIBRATION.format(model=model))
    cfg = CalibrationFile.from_yaml(path)
    assert (cfg.time["initial_time"], cfg.time["final_time"]) == (2021, 2022)
    assert isinstance(cfg.data, dict)
    # the second item gives its own times (the later item wins for the same variable)
    assert list(cfg.data["Population[North]"].index) == [2020, 2021, 2022]


def test_calibration_file_errors_name_the_file(tmp_path):
    model = ROOT / "models" / "example_regions.mdl"
    path = write(tmp_path, "cal.yaml", CALIBRATION.format(model=model))
    with pytest.raises(CalibrationError, match="cal.yaml: window.final: latest_year_in: data"):
        CalibrationFile.from_yaml(path)
    write(tmp_path, "data/pop.csv", POPULATION)
    text = CALIBRATION.format(model=model) + "time: {initial: 2020}\n"
    with pytest.raises(CalibrationError, match="time.initial and window: both set"):
        CalibrationFile.from_yaml(write(tmp_path, "cal.yaml", text))


SCENARIO = """
model: {model}
time: {{initial: {{latest_year_in: data/pop.csv}}, final: 2030}}
"""


def test_scenario_initial_time_follows_the_data(tmp_path):
    model = ROOT / "models" / "example_regions.mdl"
    path = write(tmp_path, "sc.yaml", SCENARIO.format(model=model))
    with pytest.raises(ScenarioError, match=r"sc.yaml:3: time.initial: latest_year_in: data"):
        Scenario.from_yaml(path)
    write(tmp_path, "data/pop.csv", POPULATION)
    assert Scenario.from_yaml(path).time["initial_time"] == 2022
    write(tmp_path, "data/pop.csv", POPULATION + "2023,13,23,person,test\n")
    assert Scenario.from_yaml(path).time["initial_time"] == 2023
