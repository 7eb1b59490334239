"""Model checks (``sd-model check``): every predicate passing and failing, scenarios, lever
ranges, errors with file and line, the command, and the Kazakhstan model's check file.

The small model (tests/models/check_regions.mdl) has exact solutions: with growth rate g and
transfer rate m, the total is 300 exp(g t) and South - North is 100 exp((g - 2m) t), so
North = 100 exp(g t) when m = 0. The checks' expected values below come from these
formulas, not from sd_model.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sd_model
from sd_model.checks import CheckFileError, CheckReport, check_model
from sd_model.checks._schema import merge
from sd_model.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = ROOT / "tests" / "models" / "check_regions.mdl"
BLOWUP = ROOT / "tests" / "models" / "sweep_blowup.mdl"
KAZAKHSTAN_CHECKS = ROOT / "models" / "kazakhstan_checks.yaml"

HEADER = f"""\
model: {SMALL}
solver: {{method: RK45, rtol: 1.0e-10, atol: 1.0e-10}}
"""


@pytest.fixture(scope="module")
def small() -> sd_model.Model:
    return sd_model.load(SMALL)


def write(tmp_path: Path, body: str, header: str = HEADER, name: str = "checks.yaml") -> Path:
    path = tmp_path / name
    path.write_text(header + textwrap.dedent(body))
    return path


def one_test(tmp_path: Path, test: str, header: str = HEADER, **extra: str) -> Path:
    """A check file with one group holding ``test`` (YAML of one test, unindented)."""
    body = "".join(f"{k}:\n{textwrap.indent(textwrap.dedent(v), '  ')}" for k, v in extra.items())
    body += "checks:\n  - describe: G\n    tests:\n"
    body += textwrap.indent(textwrap.dedent(test), "      ")
    return write(tmp_path, body, header)


def run(tmp_path: Path, small: sd_model.Model, test: str, **extra: str) -> CheckReport:
    return check_model(one_test(tmp_path, test, **extra), model=small)


def only(report: CheckReport) -> pd.Series:
    assert len(report.table) == 1, report.table
    return report.table.iloc[0]


# --------------------------------------------------------------------------- predicates
N10 = 100 * math.exp(0.2)  # North at t = 10 with g = 0.02, m = 0
TOTAL10 = 300 * math.exp(0.2)


@pytest.mark.parametrize(
    ("predicate", "status", "time", "where", "value"),
    [
        # Strict at the boundary: North starts at exactly 100.
        ("gt: 100", "FAIL", 0.0, "Region=North", 100.0),
        ("gte: 100", "PASS", 0.0, "Region=North", 100.0),
        ("gt: 99", "PASS", 0.0, "Region=North", 100.0),
        # South grows to 200 exp(0.2) = 244.28 by t = 10.
        ("lt: 244", "FAIL", 10.0, "Region=South", 200 * math.exp(0.2)),
        ("lte: 245", "PASS", 10.0, "Region=South", 200 * math.exp(0.2)),
        ("lte: 200", "FAIL", 10.0, "Region=South", 200 * math.exp(0.2)),
        # Both bounds at once: the failing one is reported.
        ("gte: 100\n  lte: 240", "FAIL", 10.0, "Region=South", 200 * math.exp(0.2)),
        # Both hold; the closest to failing is South's 244.28 against 245.
        ("gt: 99\n  lt: 245", "PASS", 10.0, "Region=South", 200 * math.exp(0.2)),
    ],
)
def test_inequalities_pass_and_fail_at_the_worst_point(
    tmp_path: Path, small: sd_model.Model, predicate: str, status: str, time: float, where: str,
    value: float,
) -> None:  # fmt: skip
    report = run(tmp_path, small, f"- it: bounds\n  variable: Population\n  {predicate}\n")
    row = only(report)
    assert (row.status, row.time, row.location) == (status, time, where), row.message
    assert row.value == pytest.approx(value, rel=1e-8)
    assert report.ok is (status == "PASS")
    if status == "FAIL":
        assert row.margin <= 0 and "is not" in row.message
    else:
        assert row.margin >= 0 and "is not" not in row.message


@pytest.mark.parametrize(
    ("approx", "expected", "status"),
    [
        (f"approx: {TOTAL10:.10f}\n  tolerance: 1.0e-6", TOTAL10, "PASS"),
        ("approx: 366\n  tolerance: 0.4", 366.0, "FAIL"),  # 366.42 is 0.42 away
        ("approx: 366\n  tolerance: 0.5", 366.0, "PASS"),
        ("approx: 366\n  rel_tolerance: 1.0e-3", 366.0, "FAIL"),  # allows 0.366
        ("approx: 366\n  rel_tolerance: 2.0e-3", 366.0, "PASS"),  # allows 0.732
        ("approx: 366\n  tolerance: 0.2\n  rel_tolerance: 1.0e-3", 366.0, "PASS"),  # 0.566
    ],
)
def test_approx_absolute_and_relative_tolerance(
    tmp_path: Path, small: sd_model.Model, approx: str, expected: float, status: str
) -> None:
    test = f"- it: total\n  variable: Total Population\n  at: final\n  {approx}\n"
    row = only(run(tmp_path, small, test))
    assert row.status == status
    assert row.time == 10.0
    assert row.value == pytest.approx(TOTAL10, rel=1e-8)
    assert row.expected == pytest.approx(expected, rel=1e-9)


def test_approx_against_an_exact_solution_expression(tmp_path: Path, small: sd_model.Model) -> None:
    test = """\
    - it: grows exponentially
      scenarios: [baseline, {lever: growth rate, at: max}, {set: {growth rate: -0.05}}]
      variable: Total Population
      approx: {variable: 300 * EXP(growth rate * Time)}
      rel_tolerance: 1.0e-7
    - it: grows exponentially, wrongly
      variable: Total Population
      approx: {variable: 300 * EXP(0.021 * Time)}
      rel_tolerance: 1.0e-7
    """
    table = run(tmp_path, small, test).table
    assert list(table.status) == ["PASS", "PASS", "PASS", "FAIL"]
    assert table.scenario.tolist()[:3] == [
        "baseline",
        "growth rate at max",
        "set growth rate=-0.05",
    ]
    wrong = table.iloc[3]
    assert wrong.time == 10.0  # the error grows with time
    assert wrong.expected == pytest.approx(300 * math.exp(0.21), rel=1e-12)


def test_comparison_with_another_scenario(tmp_path: Path, small: sd_model.Model) -> None:
    # Transfers close the gap: 100 exp(-0.98 t) < 100 exp(0.02 t) for t > 0, equal at t = 0.
    test = """\
    - it: transfers close the gap
      scenarios: [fast]
      variable: Gap
      lt: baseline
    - it: transfers close the gap after the start
      scenarios: [fast]
      variable: Gap
      lt: baseline
      at: {from: 1}
    - it: the gap shrinks by exp(-2 m t) relative to the baseline
      scenarios: [fast]
      variable: Gap
      approx: {scenario: baseline, variable: Gap * EXP(-2 * 0.5 * Time)}
      tolerance: 1.0e-6  # the gap of ~0.005 is a difference of two populations of ~150
      rel_tolerance: 1.0e-7
    - it: transfers leave the total alone
      scenarios: [fast]
      variable: Total Population
      approx: baseline
      rel_tolerance: 1.0e-9
    """
    table = run(tmp_path, small, test, scenarios="fast: {lever: transfer rate, at: max}\n").table
    assert list(table.status) == ["FAIL", "PASS", "PASS", "PASS"]
    first = table.iloc[0]
    assert (first.time, first.value, first.expected) == (0.0, 100.0, 100.0)
    assert first.message == "100 is not < baseline (100)"
    assert table.iloc[1].time == 1.0  # closest to failing: the earliest time judged
    assert table.iloc[1].value == pytest.approx(100 * math.exp(-0.98), rel=1e-8)


def test_for_each_gives_one_result_per_element(tmp_path: Path, small: sd_model.Model) -> None:
    test = "- it: above 150\n  variable: Population\n  gt: 150\n  for_each: region\n"
    table = run(tmp_path, small, test).table
    assert table.element.tolist() == ["North", "South"]
    assert table.status.tolist() == ["FAIL", "PASS"]
    assert table.location.tolist() == ["", ""]
    assert table.iloc[0].value == 100.0  # the furthest below, at t = 0


@pytest.mark.parametrize(
    ("at", "times"),
    [
        ("2", [2.0]),
        ("[2, 5]", [2.0, 5.0]),
        ("{from: 3}", [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]),
        ("{from: 2.5, to: 4}", [3.0, 4.0]),
        ("initial", [0.0]),
        ("final", [10.0]),
    ],
)
def test_at_selects_the_times_judged(
    tmp_path: Path, small: sd_model.Model, at: str, times: list[float]
) -> None:
    # North = 100 exp(0.02 t) is increasing, so the tightest point of "gt: 0" is the first
    # time judged and of "lt: 1000" the last.
    test = f"- it: t\n  variable: Population[North]\n  gt: 0\n  at: {at}\n"
    assert only(run(tmp_path, small, test)).time == times[0]
    test = f"- it: t\n  variable: Population[North]\n  lt: 1000\n  at: {at}\n"
    assert only(run(tmp_path, small, test)).time == times[-1]


def test_reductions_and_functions(tmp_path: Path, small: sd_model.Model) -> None:
    test = """\
    - it: the range of the regions is the gap
      variable: VMAX(Population[Region!]) - VMIN(Population[Region!])
      approx: {variable: Gap}
      rel_tolerance: 1.0e-12
    - it: the product and the min and max
      variable: PROD(Population[Region!])
      approx: {variable: "MIN(Population[North], Population[South])
                          * MAX(Population[north], Population[SOUTH])"}
      rel_tolerance: 1.0e-12
    - it: arithmetic and precedence
      variable: "-2 ^ 2 + 3 * 4 / 2 - ABS(-1) + SQRT(16) + LN(EXP(2)) + 0 * Gap"
      approx: 7  # -(2^2) + 6 - 1 + 4 + 2
      tolerance: 1.0e-12
    - it: total population
      variable: total_population
      approx: {variable: "SUM(Population[Region!])"}
      rel_tolerance: 1.0e-12
    """
    table = run(tmp_path, small, test).table
    assert table.status.tolist() == ["PASS"] * 4, table.message.tolist()


# --------------------------------------------------------------------------- scenarios
def labels(report: CheckReport) -> list[str]:
    return report.table.scenario.tolist()


def test_lever_ranges_come_from_the_model_units_field(
    tmp_path: Path, small: sd_model.Model
) -> None:
    test = """\
    - it: matrix
      scenarios: [{preset: matrix}]
      variable: Total Population
      gt: 0
    - it: growth rate at its maximum, 0.1
      scenarios: [{lever: growth rate, at: max}]
      variable: Total Population
      approx: 300 * 2.718281828459045
      rel_tolerance: 1.0e-7
      at: final
    """
    report = run(tmp_path, small, test.replace("300 * 2.718281828459045", str(300 * math.e)))
    assert labels(report)[:7] == [
        "baseline",
        "growth rate at min",
        "transfer rate at min",
        "growth rate at max",
        "transfer rate at max",
        "all levers at min",
        "all levers at max",
    ]
    assert report.ok, report.failures


def test_lever_ranges_from_the_base_scenario_and_the_check_file(
    tmp_path: Path, small: sd_model.Model
) -> None:
    scenario = tmp_path / "base.yaml"
    scenario.write_text(
        f"model: {SMALL}\nset: {{transfer rate: 0.1}}\n"
        "levers:\n  growth rate: [0, 0.03]\n  transfer rate: {min: 0, max: 0.2, step: 0.1}\n"
    )
    header = "base_scenario: base.yaml\nsolver: {method: RK45, rtol: 1.0e-10, atol: 1.0e-10}\n"
    test = """\
    - it: totals
      scenarios: [baseline, {each_lever: all, at: max}, {all_levers: max}]
      variable: Total Population
      gt: 0
      at: final
    """
    table = check_model(one_test(tmp_path, test, header), model=small).table
    assert labels_of(table) == [
        "baseline", "growth rate at max", "transfer rate at max", "all levers at max",
    ]  # fmt: skip
    # The base scenario's range (0.03) for growth, and the total does not depend on transfers.
    expected = [300 * math.exp(0.2), 300 * math.exp(0.3), 300 * math.exp(0.2), 300 * math.exp(0.3)]
    np.testing.assert_allclose(table.value, expected, rtol=1e-7)
    # The check file's range replaces the scenario's.
    levers = "growth rate: [0, 0.05]\n"
    table = check_model(one_test(tmp_path, test, header, levers=levers), model=small).table
    np.testing.assert_allclose(table.value[1], 300 * math.exp(0.5), rtol=1e-7)
    # The baseline is the base scenario's: transfer rate 0.1 closes the gap as exp(-0.18 t).
    gap = 100 * math.exp(-0.18 * 10)
    test = f"- it: gap\n  variable: Gap\n  approx: {gap}\n  rel_tolerance: 1e-7\n  at: final\n"
    assert check_model(one_test(tmp_path, test, header), model=small).ok


def labels_of(table: pd.DataFrame) -> list[str]:
    return table.scenario.tolist()


def test_scenario_files_named_scenarios_and_labels(tmp_path: Path, small: sd_model.Model) -> None:
    (tmp_path / "fast.yaml").write_text(
        f"name: fast transfers\nmodel: {SMALL}\nset: {{transfer rate: 0.5, growth rate: 0.01}}\n"
    )
    test = """\
    - it: gap
      scenarios:
        - {file: fast.yaml}
        - {file: fast.yaml, set: {growth rate: 0.02}}
        - {file: fast.yaml, name: mine}
        - slow
        - {set: {transfer rate: 0.5}}
      variable: Gap
      approx: {variable: 100 * EXP((growth rate - 2 * transfer rate) * Time)}
      tolerance: 1.0e-6  # a difference of two populations of ~150
      rel_tolerance: 1.0e-7
    """
    report = run(tmp_path, small, test, scenarios="slow: {set: {transfer rate: 0.01}}\n")
    assert labels(report) == [
        "fast transfers",
        "fast transfers + set growth rate=0.02",
        "mine",
        "slow",
        "set transfer rate=0.5",
    ]
    assert report.ok, report.failures
    # One run per distinct set of overrides ("mine" is the first one again), and no
    # baseline run, which no test uses.
    assert report.scenarios == 4


def test_all_scenarios_run_as_one_batch(
    tmp_path: Path, small: sd_model.Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sd_model.evaluate as ev

    calls: list[int] = []
    real = ev.evaluate

    def counting(model: sd_model.Model, param_sets: list, **kw: object) -> object:
        calls.append(len(param_sets))
        return real(model, param_sets, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(ev, "evaluate", counting)
    test = """\
    - it: a
      scenarios: [{preset: matrix}]
      variable: Population
      gt: 0
    - it: b
      scenarios: [{lever: transfer rate, at: 0.3}]
      variable: Gap
      lt: baseline
      at: {from: 1}
    """
    report = run(tmp_path, small, test)
    assert report.ok
    assert calls == [8] and report.scenarios == 8


def test_merge_layers_whole_values_and_elements() -> None:
    assert merge({"x": 1, "x[A]": 2}, {"X": 3}) == {"X": 3}
    assert merge({"x[A]": 1}, {"x[ a ]": 2}) == {"x[ a ]": 2}
    assert merge({"x": 1}, {"x[A]": 2}) == {"x": 1, "x[A]": 2}
    assert merge({"x[A]": 1, "y": 0}, {"x[B]": 2}) == {"x[A]": 1, "y": 0, "x[B]": 2}


def test_a_failing_run_is_an_error_of_its_tests_only(tmp_path: Path) -> None:
    # x' = r x^2 - x blows up in finite time for r = 20 (and is finite for r = 0.1).
    header = f"model: {BLOWUP}\nsolver: {{method: RK45}}\n"
    test = """\
    - it: stays finite
      scenarios: [baseline, {set: {growth rate: 20}}]
      variable: x
      gt: 0
      lte: 1
    """
    report = check_model(one_test(tmp_path, test, header))
    assert report.table.status.tolist() == ["PASS", "ERROR"]
    assert "the run failed" in report.table.message[1] and "x" in report.table.message[1]
    assert not report.ok and report.counts() == {"PASS": 1, "FAIL": 0, "ERROR": 1}


# --------------------------------------------------------------------------- errors
POP = "  variable: Population\n  gt: 0\n"  # lines 7 and 8 of the file one_test writes


@pytest.mark.parametrize(
    ("test", "line", "message"),
    [
        ("  variable: Populaton\n  gt: 0\n", 7, r"unknown variable 'Populaton'\. Did you mean"),
        ("  variable: Population[Nort]\n  gt: 0\n", 7, r"'Nort' is not an element of 'Region'"),
        (POP + "  at: 2.5\n", 9, r"2\.5 is not a saved time \(saved times: 0 to 10 every 1\)"),
        ("  variable: Population\n  approx: 1\n", 8, r"approx needs 'tolerance'"),
        ("  variable: Population\n  lt: baselin\n", 8, r"scenario 'baselin'\. Did you mean"),
        (
            POP + "  scenarios: [{lever: initial population, at: max}]\n",
            9,
            r"no range for lever 'initial population'",
        ),
        (
            POP + "  scenarios: [{set: {growth rat: 1}}]\n",
            9,
            r"unknown parameter 'growth rat'.*Did you mean 'growth rate'",
        ),
        ("  variable: SUM(Population)\n  gt: 0\n", 7, r"SUM needs a dim marked with '!'"),
        ("  variable: Population[Region!]\n  gt: 0\n", 7, r"must be inside SUM, PROD, VMIN"),
        (
            "  variable: Total Population\n  lt: {variable: Population}\n",
            8,
            r"has dims \['Region'\] that 'Total Population' has not",
        ),
        (
            POP + "  gte: {variable: SUM(x[Region!])}\n",
            9,
            r"Inside \{\.\.\.\} or \[\.\.\.\], quote",
        ),
        ("  varible: Population\n  gt: 0\n", 7, r"unknown key 'varible' in a test\. Did you mean"),
        (POP + "  scenarios: [{lever: growth rate}]\n", 9, r"'at' \(min, max or a number\) goes"),
        (POP + "  for_each: Place\n", 9, r"'Place' is not a dim; dims: Region"),
        (
            POP + "  scenarios: [{lever: growth rate, at: max, file: x.yaml}]\n",
            9,
            r"scenario is one",
        ),
    ],
)
def test_errors_name_the_file_line_and_fix(
    tmp_path: Path, small: sd_model.Model, test: str, line: int, message: str
) -> None:
    path = one_test(tmp_path, "- it: a\n" + test)
    with pytest.raises(sd_model.SDModelError, match=rf"checks\.yaml:{line}: .*{message}"):
        check_model(path, model=small)


def test_file_level_errors(tmp_path: Path, small: sd_model.Model) -> None:
    path = write(tmp_path, "chekcs: []\n")
    with pytest.raises(CheckFileError, match=r"checks\.yaml:3: unknown key 'chekcs'.*'checks'"):
        check_model(path, model=small)
    path = write(tmp_path, "checks: []\n", header="solver: {method: RK45}\n")
    with pytest.raises(CheckFileError, match="give either 'model'.*or 'base_scenario'"):
        check_model(path, model=small)
    path = write(tmp_path, "checks: []\n", header="model: nowhere.mdl\n")
    with pytest.raises(CheckFileError, match=r"checks\.yaml:1: 'nowhere\.mdl' not found"):
        check_model(path)
    path = write(tmp_path, "checks: [{describe: a, tests: []}]\n")
    with pytest.raises(CheckFileError, match=r"checks\.yaml:3: a group has 'describe'"):
        check_model(path, model=small)
    with pytest.raises(CheckFileError, match="Check file not found"):
        check_model(tmp_path / "missing.yaml")
    test = "- it: a\n  variable: Population\n  gt: 0\n"
    path = one_test(tmp_path, test, levers="initial population:\n")
    with pytest.raises(CheckFileError, match=r"checks\.yaml:4: lever 'initial population' has no"):
        check_model(path, model=small)
    path = one_test(tmp_path, test, levers="growth rat: [0, 1]\n")
    with pytest.raises(
        sd_model.ParameterError, match=r"checks\.yaml:4: .*Did you mean 'growth rate'"
    ):
        check_model(path, model=small)
    other = sd_model.load(BLOWUP)
    path = one_test(tmp_path, "- it: a\n  variable: Population\n  gt: 0\n")
    with pytest.raises(CheckFileError, match="the file checks .*check_regions.mdl, not"):
        check_model(path, model=other)


# --------------------------------------------------------------------------- report and CLI
def test_report_text_table_and_public_api(tmp_path: Path, small: sd_model.Model) -> None:
    test = """\
    - it: North stays below 120
      scenarios: [baseline, {lever: growth rate, at: min}]
      variable: Population[North]
      lt: 120
    """
    report = sd_model.check_model(one_test(tmp_path, test), model=small)
    assert isinstance(report, sd_model.CheckReport)
    text = str(report)
    assert "  North stays below 120: Population[North]  (" in text and "checks.yaml:6)" in text
    assert f"FAIL  baseline            10: {N10:.6g} is not < 120" in text
    assert "PASS  growth rate at min  0: 100 < 120" in text  # constant: the first time
    assert text.endswith("1 passed, 1 failed, 0 error(s)")
    assert "PASS" not in report.to_text(failures_only=True).splitlines()[3]
    assert list(report.table.columns[:6]) == [
        "group", "check", "variable", "scenario", "element", "status",
    ]  # fmt: skip


def test_command_exit_status_and_csv(
    tmp_path: Path, small: sd_model.Model, capsys: pytest.CaptureFixture[str]
) -> None:
    passing = one_test(tmp_path, "- it: a\n  variable: Population\n  gt: 0\n")
    assert main(["check", str(passing)]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out
    failing = write(
        tmp_path,
        "checks:\n  - describe: G\n    tests:\n      - {it: a, variable: Population, gt: 150}\n",
        name="failing.yaml",
    )
    out = tmp_path / "results.csv"
    assert main(["check", str(failing), "--failures", "-o", str(out), "--method", "RK45"]) == 1
    printed = capsys.readouterr().out
    assert "FAIL  baseline  0, Region=North: 100 is not > 150" in printed
    assert pd.read_csv(out).status.tolist() == ["FAIL"]
    bad = one_test(tmp_path, "- it: a\n  variable: Populaton\n  gt: 0\n")
    assert main(["check", str(bad)]) == 2
    assert "error: " in capsys.readouterr().err
    assert main(["check", str(passing), "-o", str(tmp_path / "x.nc")]) == 2


# --------------------------------------------------------------------------- Kazakhstan
def test_kazakhstan_checks_all_pass() -> None:
    report = check_model(KAZAKHSTAN_CHECKS)
    assert report.ok, report.to_text(failures_only=True)
    table = report.table
    assert set(table.group) >= {
        "Conservation",
        "Bounds",
        "Policy timing",
        "Extreme conditions",
        "Policy direction",
    }
    # Every lever of the base scenario at its minimum and maximum, and the policy packages.
    scenarios = set(table.scenario)
    assert {"all levers at max", "transport programme at max", "green"} <= scenarios
    # The base scenario's solver (scenarios/baseline.yaml: RK4 at the time step 0.25).
    assert report.backend == "compiled" and report.method == "rk4"


def test_pysd_backend_gives_the_same_results(tmp_path: Path, small: sd_model.Model) -> None:
    test = """\
    - it: grows exponentially
      scenarios: [{set: {growth rate: 0.03}}]
      variables: [Total Population, 'SUM(Population[Region!])']
      approx: {variable: 300 * EXP(growth rate * Time)}
      rel_tolerance: 1.0e-7
    """
    path = one_test(tmp_path, test)
    compiled = check_model(path, model=small)
    reference = check_model(path, model=small, backend="pysd")
    assert reference.backend == "pysd" and compiled.backend == "compiled"
    assert reference.ok and compiled.ok
    np.testing.assert_allclose(reference.table.value, compiled.table.value, rtol=1e-8)
