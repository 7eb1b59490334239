"""The ``sd-model`` command and scenario files, run as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import sd_model
from sd_model.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "models" / "example_regions.mdl"
SCENARIO = ROOT / "scenarios" / "example.yaml"


def _scenario(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text.replace("MODEL", str(EXAMPLE)))
    return path


def test_run_scenario_writes_netcdf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "example.nc"
    assert main(["run", str(SCENARIO), "-o", str(out), "--final-time", "2030"]) == 0
    ds = xr.open_dataset(out)
    assert ds.attrs["scenario"] == "example"
    assert ds.attrs["solver_method"] == "RK45"
    assert float(ds["transfer_intensity"]) == 0.5
    assert ds["population"].attrs["units"] == "Person"
    assert float(ds["time"][-1]) == 2030
    assert "wrote" in capsys.readouterr().out


def test_scenario_api_matches_cli(tmp_path: Path) -> None:
    out = tmp_path / "example.nc"
    assert main(["run", str(SCENARIO), "-o", str(out), "--final-time", "2026"]) == 0
    ds = sd_model.Scenario.from_yaml(SCENARIO).run(final_time=2026)
    xr.testing.assert_allclose(xr.open_dataset(out)["capital"], ds["capital"])


def test_set_flags_on_a_model(tmp_path: Path) -> None:
    out = tmp_path / "run.tab"
    code = main(
        [
            "run",
            str(EXAMPLE),
            "-o",
            str(out),
            "--method",
            "RK45",
            "--backend",
            "pysd",
            "--final-time",
            "2024",
            "--set",
            "birth rate=0.03",
            "--set",
            "productivity[South]=2",
            "--set",
            "Initial Capital={North: 1000}",
        ]
    )
    assert code == 0
    table = pd.read_csv(out, sep="\t")
    assert np.allclose(table["birth rate"], 0.03)
    assert np.allclose(table["productivity[South]"], 2.0)
    assert table["Capital[North]"].iloc[0] == 1000
    assert list(table["Time"]) == [2022.0, 2023.0, 2024.0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "MODEL", "--set", "brith rate=1"], "Did you mean 'birth rate'"),
        (["run", "MODEL", "--set", "productivity=[1, 2]"], "shape"),
        (["run", "MODEL", "-o", "x.xlsx"], "unknown extension"),
        (["run", "missing.mdl"], "not found"),
        (["info", "missing.xmile"], "not found"),
    ],
)
def test_user_errors_are_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(EXAMPLE) if a == "MODEL" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert message in err
    assert "Traceback" not in err


def test_scenario_unknown_key_names_file_and_line(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "model: MODEL\ntime:\n  final: 2030\n  finall: 2040\n")
    with pytest.raises(sd_model.ScenarioError, match=r"s\.yaml:4: unknown key 'finall'.*'final'"):
        sd_model.Scenario.from_yaml(path)
    path = _scenario(tmp_path, "model: MODEL\nsolvers: {method: RK45}\n")
    with pytest.raises(sd_model.ScenarioError, match=r"s\.yaml:2: unknown key 'solvers'"):
        sd_model.Scenario.from_yaml(path)


def test_scenario_unknown_parameter_names_file(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "model: MODEL\nset:\n  birth rte: 0.1\n")
    with pytest.raises(
        sd_model.ParameterError, match=r"s\.yaml:3 \(set\): unknown parameter 'birth rte'"
    ):
        sd_model.Scenario.from_yaml(path).run(backend="pysd")


def test_scenario_bad_values(tmp_path: Path) -> None:
    bad = {
        "model: MODEL\nsolver: {method: RK99}\n": "unknown method 'RK99'",
        "model: MODEL\ntime: {final: soon}\n": "time.final must be a number",
        "model: nothere.mdl\n": "not found",
        "model: MODEL\nset: [1, 2]\n": "'set' must be a mapping",
        "model: MODEL\n  bad: : indent\n": "invalid YAML",
        "name: no model\n": "missing key 'model'",
    }
    for text, message in bad.items():
        with pytest.raises(sd_model.ScenarioError, match=message):
            sd_model.Scenario.from_yaml(_scenario(tmp_path, text))


def test_yaml_is_safe_loaded(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "model: MODEL\nset: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(sd_model.ScenarioError, match="invalid YAML"):
        sd_model.Scenario.from_yaml(path)


def test_info_lists_parameters_stocks_and_dims(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "Region (3): North, Centre, South" in out
    assert "Population[Region]" in out
    assert "birth rate = 0.018 1/Year" in out


def test_info_describes_lookups(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(EXAMPLE)]) == 0
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if "attractiveness lookup" in ln]
    # (0,0.2),(0.5,0.5),(1,1),(1.5,1.4),(2,1.6),(3,1.7) in models/example_regions.mdl
    assert "6 points" in line and "0 to 3" in line


def test_example_scenario_description_is_true() -> None:
    sc = sd_model.Scenario.from_yaml(SCENARIO)
    text = " ".join(sc.description.split())
    assert "Kazakhstan model lands" not in text  # it has landed: models/kazakhstan_regions.mdl
    model = sc.load_model()
    defaults = model.parameters["default"]
    # "three-region model (North, Centre, South ...), 2022-2050"
    assert list(model.coords["Region"]) == ["North", "Centre", "South"]
    assert "North, Centre, South" in text and "2022-2050" in text
    assert (sc.time.get("initial_time"), sc.time.get("final_time")) == (2022.0, 2050.0)
    # "the equalization transfer lever at 0.5 (the model's default is 0, off)"
    assert sc.set == {"transfer intensity": 0.5} and "at 0.5" in text
    assert defaults["transfer intensity"] == 0.0 and "default is 0" in text
    # "switched on in 2025 and ramped in over two years"
    assert defaults["policy start year"] == 2025.0 and "in 2025" in text
    assert defaults["ramp years"] == 2.0 and "over two years" in text
    transfer = sc.run(model, final_time=2030)["transfer"].sel(Region="South")
    assert float(abs(transfer.sel(time=2025))) == 0.0 < float(transfer.sel(time=2026))
    for name in ("baseline.yaml", "equalization.yaml"):
        assert name in text and (SCENARIO.parent / name).is_file()


def test_console_script_runs_in_a_subprocess(tmp_path: Path) -> None:
    # The installed entry point, as a user calls it; a user error exits 2 without traceback.
    exe = Path(sys.executable).with_name("sd-model")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sd_model.cli"]
    done = subprocess.run(
        [*cmd, "run", str(EXAMPLE), "--set", "nope=1"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "unknown parameter 'nope'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "flags",
    [["--rtol", "0"], ["--final-time", "2000"], ["--time-step", "0"], ["--saveper", "-1"]],
)
def test_bad_settings_at_the_cli(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(EXAMPLE), "--backend", "pysd", "--method", "RK45", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_unwritable_output_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "taken.nc"
    folder.mkdir()
    code = main(["run", str(EXAMPLE), "--final-time", "2023", "-o", str(folder)])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_run_time_set_replaces_the_scenarios_element_edits(tmp_path: Path) -> None:
    path = _scenario(tmp_path, "model: MODEL\nset:\n  productivity[South]: 0.8\n")
    sc = sd_model.Scenario.from_yaml(path)
    kw = dict(backend="pysd", method="RK45", final_time=2023)
    np.testing.assert_allclose(sc.run(**kw)["productivity"].values, [0.9, 1.2, 0.8])
    ds = sc.run(params={"productivity": 0.5}, **kw)
    np.testing.assert_allclose(ds["productivity"].values, [0.5, 0.5, 0.5])


def test_scenario_numbers_and_duplicates(tmp_path: Path) -> None:
    # YAML 1.1 reads 1e-8 (no dot) as text; a scenario accepts it as the number it means.
    sc = sd_model.Scenario.from_yaml(_scenario(tmp_path, "model: MODEL\nsolver: {rtol: 1e-8}\n"))
    assert sc.solver["rtol"] == 1e-8
    text = "model: MODEL\nset:\n  birth rate: 0.01\nset:\n  death rate: 0.01\n"
    with pytest.raises(sd_model.ScenarioError, match=r"s\.yaml:4: key 'set' repeats .* line 2"):
        sd_model.Scenario.from_yaml(_scenario(tmp_path, text))
    for text, message in {
        "model: MODEL\ntime: {time_step: 0}\n": "time_step must be positive",
        "model: MODEL\ntime: {initial: 2030, final: 2022}\n": "before time.initial",
        "model: MODEL\ntime: {saveper: .nan}\n": "must be a number",
    }.items():
        with pytest.raises(sd_model.ScenarioError, match=message):
            sd_model.Scenario.from_yaml(_scenario(tmp_path, text))
