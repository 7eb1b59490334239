"""The ``sd-model`` command and scenario reader against hostile or mistaken input.

Alias bombs, a sweep file given to ``run``, one parameter set twice, empty output paths,
and the cost of starting the command at all.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import sd_model
from sd_model import cli
from sd_model.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "models" / "example_regions.mdl"
SWEEP = ROOT / "scenarios" / "example_sweep.yaml"


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter: what a module imports shows only there."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


# --------------------------------------------------------------------------- YAML aliases
def _alias_bomb(levels: int, width: int = 9) -> str:
    """The "billion laughs" document: ``width ** levels`` leaves once aliases expand."""
    names = [f"l{i}" for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [{', '.join(['lol'] * width)}]"]
    for prev, cur in itertools.pairwise(names):
        lines.append(f"{cur}: &{cur} [{', '.join([f'*{prev}'] * width)}]")
    return "\n".join(lines) + f"\nmodel: {EXAMPLE}\n"


def test_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(9))  # 9**9 = 387,420,489 leaves expanded
    start = time.perf_counter()
    with pytest.raises(sd_model.ScenarioError, match=r"bomb\.yaml:\d+: YAML aliases expand"):
        sd_model.Scenario.from_yaml(path)
    assert time.perf_counter() - start < 1.0
    # The same refusal from the command line: one line, exit status 2.
    start = time.perf_counter()
    assert main(["run", str(path)]) == 2
    assert time.perf_counter() - start < 1.0


def test_alias_bomb_as_a_mapping_key_is_refused(tmp_path: Path) -> None:
    # A key is compared as text when repeated keys are checked; a bomb there must not be.
    text = _alias_bomb(9).replace("model:", "set: {? *l8 : 1}\nmodel:")
    path = tmp_path / "key.yaml"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(sd_model.ScenarioError, match="YAML aliases expand"):
        sd_model.Scenario.from_yaml(path)
    assert time.perf_counter() - start < 1.0


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text(f"model: {EXAMPLE}\nset: &s {{transfer intensity: *s}}\n")
    with pytest.raises(sd_model.ScenarioError, match=r"loop\.yaml:2: .*cannot be recursive"):
        sd_model.Scenario.from_yaml(path)


def test_modest_aliases_and_repeated_keys_behind_them(tmp_path: Path) -> None:
    # Aliases that repeat a few values are fine (a shared time section, a list reused).
    path = tmp_path / "ok.yaml"
    path.write_text(
        f"model: {EXAMPLE}\n"
        "name: &n shared\n"
        "description: *n\n"
        "time: &t {initial: 2022, final: 2030}\n"
        "outputs: &o [population, capital]\n"
    )
    sc = sd_model.Scenario.from_yaml(path)
    assert sc.description == "shared"
    assert sc.time == {"initial_time": 2022.0, "final_time": 2030.0}
    assert sc.outputs == ("population", "capital")
    # A repeated key inside an anchored mapping is reported once, at its own line.
    path.write_text(f"model: {EXAMPLE}\nx: &x {{a: 1,\n  a: 2}}\nset: *x\n")
    with pytest.raises(sd_model.ScenarioError, match=r"ok\.yaml:3: key 'a' repeats .* line 2"):
        sd_model.Scenario.from_yaml(path)


def test_deeply_nested_yaml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(f"model: {EXAMPLE}\nset: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(sd_model.ScenarioError, match="nested too deeply"):
        sd_model.Scenario.from_yaml(path)


# --------------------------------------------------------------------------- run a sweep file
def test_run_refuses_a_sweep_file_and_names_the_sweep_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", str(SWEEP)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "'sweep:' section" in err
    assert f"sd-model sweep {SWEEP} -o" in err


# --------------------------------------------------------------------------- --set twice
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["transfer_intensity=0.5", "Transfer Intensity=0.7"],
            "'transfer_intensity' and --set 'Transfer Intensity' are two spellings of one "
            "parameter",
        ),
        (
            ["productivity[South]=0.8", "Productivity[ south ]=0.9"],
            "'productivity[South]' and --set 'Productivity[ south ]' are two spellings of one "
            "element",
        ),
        (["birth rate=0.01", "birth rate=0.02"], "'birth rate' is given twice"),
    ],
)
def test_set_refuses_one_parameter_given_twice(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", str(EXAMPLE), "--final-time", "2023"]
    for flag in flags:
        argv += ["--set", flag]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --set ")
    assert message in err
    assert all(repr(flag) in err for flag in flags)  # both flags quoted as given


def test_set_whole_parameter_then_one_element(tmp_path: Path) -> None:
    # Not a repeat: the element edit applies on top of the whole value.
    out = tmp_path / "run.nc"
    argv = ["run", str(EXAMPLE), "--final-time", "2023", "-o", str(out)]
    argv += ["--set", "productivity=0.5", "--set", "productivity[South]=0.8"]
    assert main(argv) == 0
    ds = sd_model.open_results(out)
    np.testing.assert_array_equal(ds["productivity"].values, [0.5, 0.5, 0.8])


# --------------------------------------------------------------------------- empty -o
@pytest.mark.parametrize(
    "argv",
    [
        ["run", str(EXAMPLE), "-o", ""],
        ["run", str(EXAMPLE), "--output", "  "],
        ["sweep", str(SWEEP), "-o", ""],
        ["compare", "a.nc", "-o", ""],
        ["plot", "a.nc", "--var", "population", "-o", ""],
    ],
)
def test_empty_output_path_is_an_error(
    argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: sd-model {argv[0]}: the output path")
    assert captured.out == ""  # no summary printed in place of the file


# --------------------------------------------------------------------------- startup cost
HEAVY = ("numpy", "pandas", "xarray", "scipy", "pysd", "dask", "matplotlib", "seaborn")


def test_help_and_argument_errors_import_no_numerical_library() -> None:
    done = _python(
        f"""
        import sys
        from sd_model.cli import main
        for argv in (["--help"], ["run", "--help"], ["info"], ["run"], ["bogus"]):
            try:
                main(argv)
            except SystemExit:
                pass
        heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
        print("HEAVY", heavy, file=sys.stderr)
        """
    )
    assert "HEAVY []" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_cli_copies_of_option_tables_match_their_modules() -> None:
    from sd_model.backends import BACKENDS
    from sd_model.integrate import METHODS
    from sd_model.sweeps import ON_ERROR

    assert cli._METHODS == METHODS
    assert cli._BACKENDS == BACKENDS
    assert cli._ON_ERROR == ON_ERROR
    for name, cmd in cli._LAZY_COMMANDS.items():
        sub = argparse.ArgumentParser().add_subparsers()
        getattr(importlib.import_module(cmd.module), cmd.add_parser)(sub)
        (action,) = sub._choices_actions
        assert (action.dest, action.help) == (name, cmd.help)


def test_each_lazy_command_parses_with_its_own_parser(tmp_path: Path) -> None:
    args = cli._parser("compare").parse_args(["compare", "a.nc", "--time", "2030"])
    assert args.func.__module__ == "sd_model.compare" and args.time == [2030.0]
    args = cli._parser("plot").parse_args(["plot", "a.nc", "-o", "f.png"])
    assert args.func.__module__ == "sd_model.plots" and args.dpi == 150.0
    args = cli._parser("sweep").parse_args(["sweep", "s.yaml", "-o", "o.zarr"])
    assert args.func.__module__ == "sd_model.cli" and args.workers == 1


# --------------------------------------------------------------------------- the package
def test_import_is_light_and_submodules_are_attributes() -> None:
    done = _python(
        f"""
        import sys
        import sd_model
        heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)
        print("HEAVY", heavy)
        print("PLOTS", sd_model.plots.plot_regions.__name__, sd_model.metrics.__name__)
        import sd_model.compare  # binds the submodule to the package attribute...
        print("COMPARE", type(sd_model.compare).__name__)  # ...which stays the function
        print("ALL", all(getattr(sd_model, n) is not None for n in sd_model.__all__))
        print("DIR", set(sd_model.__all__) <= set(dir(sd_model)))
        print("MISSING", hasattr(sd_model, "no_such_thing"))
        """
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "HEAVY []" in out
    assert "PLOTS plot_regions sd_model.metrics" in out
    assert "COMPARE function" in out
    assert "ALL True" in out and "DIR True" in out and "MISSING False" in out
