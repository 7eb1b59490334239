"""Units checking: each rule on a small model, balanced and unbalanced; the project's models;
the SDXorg corpus.

The expected units in these tests are worked out by hand from the equations (dimensional
analysis), not computed by the checker.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

import sd_model
from sd_model.cli import main
from sd_model.units import (
    DIMENSIONLESS,
    Units,
    UnitsReport,
    check_units,
    equivalence_map,
    parse_units,
    read_equivalents,
)
from tests._canonical import MODEL_SUFFIXES

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "models" / "example_regions.mdl"

CONTROL = """
INITIAL TIME = 0
\t~\tYear
\t~\t|
FINAL TIME = 10
\t~\tYear
\t~\t|
TIME STEP = 0.25
\t~\tYear [0,?]
\t~\t|
SAVEPER = 1
\t~\tYear [0,?]
\t~\t|
"""
SKETCH = (
    "\\\\\\---/// Sketch information - do not modify anything except names\n"
    "V300  Do not put anything below this section - it will be ignored\n*View 1\n"
    "$192-192-192,0,Times New Roman|12||0-0-0|0-0-0|0-0-255|-1--1--1|-1--1--1|96,96,100,0\n"
    "///---\\\\\\\n:L<%^E!@\n"
)


def mdl(tmp_path: Path, equations: str, *, equivalents: str = "", name: str = "m.mdl") -> Path:
    """A Vensim model: ``equations`` as ``name = expr ~ units`` lines, plus Year controls."""
    blocks = []
    for line in equations.strip().splitlines():
        head, _, units = line.partition("~")
        blocks.append(f"{head.strip()}\n\t~\t{units.strip()}\n\t~\t\n\t|\n")
    text = "{UTF-8}\n" + "\n".join(blocks) + CONTROL + SKETCH + equivalents
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def check(tmp_path: Path, equations: str, **kw: str) -> UnitsReport:
    return check_units(mdl(tmp_path, equations, **kw))


def errors(report: UnitsReport) -> list[tuple[str, str, str]]:
    return sorted(
        zip(report.errors.variable, report.errors.expected, report.errors.computed, strict=True)
    )


# ------------------------------------------------------------------------- parsing units
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Person/Year", {"person": 1, "year": -1}),
        ("m/s/s", {"m": 1, "s": -2}),  # '/' binds left to right
        ("1/(Year*Year)", {"year": -2}),
        ("thousand KZT/(person*Year)", {"thousand kzt": 1, "person": -1, "year": -1}),
        (
            "bn KZT/(Year*bn KZT^0.4*person^0.6)",
            {"bn kzt": Fraction(3, 5), "person": Fraction(-3, 5), "year": -1},
        ),
        ("x^(1/2) * x^-1", {"x": Fraction(-1, 2)}),
        ("Months", {"month": 1}),  # built-in plural of a time unit
        ("  BN   kzt ", {"bn kzt": 1}),  # case and spacing do not matter
        ("Dmnl", {}),
        ("1", {}),
        ("fraction", {}),
        ("1000", {}),  # Vensim units carry no scale factor
    ],
)
def test_parse_units(text: str, expected: dict[str, int | Fraction]) -> None:
    assert dict(parse_units(text)) == {k: Fraction(v) for k, v in expected.items()}


@pytest.mark.parametrize(
    "text",
    [
        "Person/(Year",
        "Person)",
        "Person^Year",
        "x^2000",
        "Person/",
        "*Year",
        "a" * 1001,
        "x^1e99999",  # untrusted input: no huge numbers built on the way to a refusal
        "x^(1/" + "9" * 900 + ")",
    ],
)
def test_parse_units_refuses_what_is_not_units(text: str) -> None:
    with pytest.raises(ValueError):
        parse_units(text)


def test_units_algebra_and_spelling() -> None:
    person, year = Units({"person": 1}), Units({"year": 1})
    rate = person / year
    assert rate * year == person and rate / rate == DIMENSIONLESS
    assert (rate**2)["year"] == -2 and hash(rate) == hash(parse_units("person/year"))
    assert str(rate) == "person/year" and str(DIMENSIONLESS) == "Dmnl"
    assert str(DIMENSIONLESS / (person * year)) == "1/(person*year)"
    assert str(person ** Fraction(3, 5)) == "person^0.6"
    assert str(person ** Fraction(1, 3)) == "person^(1/3)"


def test_equivalents_merge_groups_keeping_the_first_name() -> None:
    groups = [["Person", "People"], ["people", "Persons"], ["$", "Dollar"]]
    eq = equivalence_map(groups)
    assert eq == {"people": "person", "persons": "person", "dollar": "$"}
    assert parse_units("Persons/Dollar", eq) == parse_units("person/$")


# ------------------------------------------------------------------------- + - MIN MAX
def test_sum_of_equal_units_balances(tmp_path: Path) -> None:
    r = check(tmp_path, "a = 1 ~ Person\nb = 2 ~ Person\nc = a + b - a ~ Person")
    assert r.ok and r.table.empty


def test_sum_of_different_units_is_an_error(tmp_path: Path) -> None:
    r = check(tmp_path, "a = 1 ~ Person\nb = 2 ~ Year\nc = a + b ~ Person")
    assert errors(r) == [("c", "Person", "Year")]
    assert "'a' and 'b' are added or subtracted" in r.errors.message[0]


@pytest.mark.parametrize("fn", ["MIN", "MAX"])
def test_min_max(tmp_path: Path, fn: str) -> None:
    good = check(tmp_path, f"a = 1 ~ Person\nb = 2 ~ Person\nc = {fn}(a, b) ~ Person")
    assert good.ok
    bad = check(tmp_path, f"a = 1 ~ Person\nb = 2 ~ Year\nc = {fn}(a, b) ~ Person")
    assert errors(bad) == [("c", "Person", "Year")]
    assert f"The arguments of {fn}" in bad.errors.message[0]


def test_if_then_else_branches(tmp_path: Path) -> None:
    good = check(
        tmp_path, "a = 1 ~ Person\nb = 2 ~ Person\nc = IF THEN ELSE(Time > 5, a, b) ~ Person"
    )
    assert good.ok
    bad = check(tmp_path, "a = 1 ~ Person\nb = 2 ~ Year\nc = IF THEN ELSE(Time > 5, a, b) ~ Person")
    assert errors(bad) == [("c", "Person", "Year")]
    assert "branches of IF THEN ELSE" in bad.errors.message[0]


def test_comparisons_need_equal_units_and_are_dimensionless(tmp_path: Path) -> None:
    good = check(tmp_path, "a = 1 ~ Person\nb = 2 ~ Person\nc = a > b ~ Dmnl")
    assert good.ok
    bad = check(tmp_path, "a = 1 ~ Person\nb = 2 ~ Year\nc = a > b ~ Dmnl")
    assert errors(bad) == [("c", "Person", "Year")]
    not_dmnl = check(tmp_path, "a = 1 ~ Person\nb = 2 ~ Person\nc = a >= b ~ Person")
    assert errors(not_dmnl) == [("c", "Person", "Dmnl")]


# ------------------------------------------------------------------------- * / ^
def test_products_and_quotients_combine(tmp_path: Path) -> None:
    good = check(
        tmp_path,
        "p = 100 ~ Person\nr = 0.02 ~ 1/Year\nb = p * r ~ Person/Year\nd = b / p ~ 1/Years",
    )
    assert good.ok
    bad = check(tmp_path, "p = 100 ~ Person\nr = 0.02 ~ Dmnl\nb = p * r ~ Person/Year")
    assert errors(bad) == [("b", "Person/Year", "Person")]
    assert bad.errors.message[0] == "Right hand and left hand units do not match"
    assert "time unit" in bad.errors.hint[0]  # they differ by exactly the time unit


def test_power_with_a_constant_exponent(tmp_path: Path) -> None:
    good = check(
        tmp_path,
        "side = 2 ~ m\nshare = 0.4 ~ Dmnl\narea = side ^ 2 ~ m*m\n"
        "cd = side ^ share * side ^ (1 - share) ~ m",  # 0.4 + 0.6 = 1, exactly
    )
    assert good.ok
    bad = check(tmp_path, "side = 2 ~ m\nvolume = side ^ 3 ~ m^2")
    assert errors(bad) == [("volume", "m^2", "m^3")]


def test_power_needs_a_constant_dimensionless_exponent(tmp_path: Path) -> None:
    varying = check(tmp_path, "side = 2 ~ m\nk = Time / FINAL TIME ~ Dmnl\nx = side ^ k ~ m")
    assert list(varying.errors.variable) == ["x"]
    assert "not a constant" in varying.errors.message[0]
    with_units = check(tmp_path, "side = 2 ~ Dmnl\nx = side ^ Time ~ Dmnl")
    assert errors(with_units) == [("x", "Dmnl", "Year")]
    ratio = check(
        tmp_path,
        "side = 2 ~ m\nref = 1 ~ m\nk = Time / FINAL TIME ~ Dmnl\nx = (side / ref) ^ k ~ Dmnl",
    )
    assert ratio.ok


# ------------------------------------------------------------------------- built-in functions
def test_smooth_and_delay_pass_their_input_through(tmp_path: Path) -> None:
    good = check(
        tmp_path,
        "x = 5 ~ Person\nt = 2 ~ Year\ns = SMOOTH(x, t) ~ Person\nd = DELAY1(x, t) ~ Person\n"
        "f = DELAY FIXED(x, t, x) ~ Person\ntr = TREND(x, t, 0) ~ 1/Year",
    )
    assert good.ok
    bad = check(tmp_path, "x = 5 ~ Person\nt = 2 ~ Year\ns = SMOOTH(x, t) ~ Year")
    assert errors(bad) == [("s", "Year", "Person")]


def test_smooth_and_delay_times_must_be_times(tmp_path: Path) -> None:
    r = check(
        tmp_path,
        "x = 5 ~ Person\nt = 2 ~ Person\ns = SMOOTH(x, t) ~ Person\nd = DELAY3(x, t) ~ Person",
    )
    assert errors(r) == [("d", "Year", "Person"), ("s", "Year", "Person")]
    assert all("must be a time" in m for m in r.errors.message)


def test_step_ramp_and_pulse_take_times(tmp_path: Path) -> None:
    good = check(
        tmp_path,
        "h = 5 ~ Person\nt0 = 2 ~ Year\ns = STEP(h, t0) ~ Person\n"
        "slope = 1 ~ Person/Year\nr = RAMP(slope, t0, t0 + 1) ~ Person\np = PULSE(t0, 1) ~ Dmnl",
    )
    assert good.ok
    bad = check(tmp_path, "h = 5 ~ Person\ns = STEP(h, h) ~ Person")
    assert errors(bad) == [("s", "Year", "Person")]


def test_exp_and_ln_take_dimensionless_arguments(tmp_path: Path) -> None:
    good = check(tmp_path, "k = 0.1 ~ 1/Year\ng = EXP(k * Time) ~ Dmnl\nl = LN(g) ~ Dmnl")
    assert good.ok
    bad = check(tmp_path, "g = EXP(Time) ~ Dmnl")
    assert errors(bad) == [("g", "Dmnl", "Year")]
    assert "EXP takes a dimensionless argument" in bad.errors.message[0]


def test_xidz_zidz_divide_and_xidz_fallback_has_the_quotient_units(tmp_path: Path) -> None:
    good = check(
        tmp_path,
        "a = 1 ~ Person\nb = 2 ~ Year\nq = ZIDZ(a, b) ~ Person/Year\n"
        "fallback = 0 ~ Person/Year\nx = XIDZ(a, b, fallback) ~ Person/Year",
    )
    assert good.ok
    bad = check(
        tmp_path,
        "a = 1 ~ Person\nb = 2 ~ Year\nfallback = 0 ~ Person\n"
        "x = XIDZ(a, b, fallback) ~ Person/Year",
    )
    assert errors(bad) == [("x", "Person/Year", "Person")]


def test_time_and_control_variables_carry_the_time_unit(tmp_path: Path) -> None:
    good = check(tmp_path, "start = 3 ~ Year\nelapsed = Time - start ~ Year\nh = TIME STEP ~ Year")
    assert good.ok and good.time_unit == "Year"
    bad = check(tmp_path, "start = 3 ~ Person\nelapsed = Time - start ~ Year")
    assert errors(bad) == [("elapsed", "Year", "Person")]


def test_a_control_variable_in_another_unit_is_an_error(tmp_path: Path) -> None:
    path = mdl(tmp_path, "x = 1 ~ Dmnl")
    path.write_text(path.read_text().replace("SAVEPER = 1\n\t~\tYear", "SAVEPER = 1\n\t~\tMonth"))
    r = check_units(path)
    assert errors(r) == [("SAVEPER", "Year", "Month")]


def test_lookups_return_their_units_and_warn_on_arguments_with_units(tmp_path: Path) -> None:
    table = "effect([(0,0)-(2,2)],(0,0.5),(1,1),(2,1.5)) ~ Dmnl"
    good = check(
        tmp_path,
        f"{table}\nprice = 2 ~ $\nref = 1 ~ $\ne = effect(price / ref) ~ Dmnl\nm = e * ref ~ $",
    )
    assert good.table.empty
    r = check(tmp_path, f"{table}\nprice = 2 ~ $\ne = effect(price) ~ $")
    assert errors(r) == [("e", "$", "Dmnl")]  # the lookup returns its table's units
    assert list(r.warnings.variable) == ["e"] and r.warnings.computed[0] == "$"
    assert "not dimensionless" in r.warnings.message[0]


def test_with_lookup_takes_the_variables_units_and_checks_its_argument(tmp_path: Path) -> None:
    r = check(tmp_path, "x = WITH LOOKUP(Time, ([(0,0)-(10,10)],(0,0),(10,10))) ~ Person")
    assert r.ok and list(r.warnings.variable) == ["x"]


# ------------------------------------------------------------------------- stocks and flows
def test_flows_need_the_stock_units_per_time_unit(tmp_path: Path) -> None:
    model = (
        "P = INTEG(births - deaths, p0) ~ Person\np0 = 100 ~ Person\n"
        "births = P * 0.02 ~ Person/Year\ndeaths = P / life ~ {deaths}\nlife = 70 ~ Year"
    )
    assert check(tmp_path, model.format(deaths="Person/Year")).ok
    bad = check(tmp_path, model.format(deaths="Person"))
    # The flow's equation gives Person/Year, so its declaration is wrong twice over: as an
    # equation and as a flow of P. Both rows name the flow, and nothing else is reported.
    assert set(bad.errors.variable) == {"deaths"}
    assert ("deaths", "Person/Year", "Person") in errors(bad)
    assert any("flow of stock 'P'" in m for m in bad.errors.message)


def test_stock_initial_value_needs_the_stock_units(tmp_path: Path) -> None:
    r = check(tmp_path, "P = INTEG(0, p0) ~ Person\np0 = 100 ~ Year")
    assert errors(r) == [("P", "Person", "Year")]


def test_a_deliberate_error_in_a_flow_of_the_example_model(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    wrong = text.replace(
        "Deaths[Region]=\n\tPopulation[Region] * death rate\n\t~\tPerson/Year",
        "Deaths[Region]=\n\tPopulation[Region] * death rate\n\t~\tPerson",
    )
    assert wrong != text
    path = tmp_path / "example_regions.mdl"
    path.write_text(wrong)
    r = check_units(path)
    assert set(r.errors.variable) == {"Deaths"}
    line = int(r.errors.line[0])
    assert path.read_text().splitlines()[line - 1].startswith("Deaths[Region]")


# ------------------------------------------------------------------------- literals, inference
def test_numbers_take_the_units_their_context_needs(tmp_path: Path) -> None:
    r = check(
        tmp_path, "p = 1 ~ Person\na = p + 1 ~ Person\nb = MAX(0, p) ~ Person\nc = p * 1000 ~ $"
    )
    assert r.table.empty


def test_undeclared_units_are_inferred_forward_and_backward(tmp_path: Path) -> None:
    r = check(
        tmp_path,
        "P = INTEG(inflow, 10) ~ Person\ninflow = P * rate ~\nrate = 0.1 ~\ntotal = P + P ~\n"
        "Q = INTEG(0, q0) ~\nq0 = 3 ~ m",
    )
    assert r.ok and r.unknown.empty
    # inflow is a flow of P (Person/Year), so rate = inflow / P (1/Year); total = P + P;
    # a stock has the units of its initial value.
    assert dict(r.inferred) == {
        "inflow": "Person/Year",
        "rate": "1/Year",
        "total": "Person",
        "Q": "m",
    }


def test_units_the_equations_leave_open_are_unknown(tmp_path: Path) -> None:
    # A number in a product may carry any units, so 2 * P says nothing about 'doubled'.
    r = check(tmp_path, "k = 5 ~\nx = k * 2 ~\nP = 1 ~ Person\ndoubled = 2 * P ~")
    assert r.ok and not r.inferred
    assert sorted(r.unknown.variable) == ["doubled", "k", "x"]


def test_a_clash_on_inferred_units_is_a_warning(tmp_path: Path) -> None:
    # u has no declared units: the first use makes it Person, the second needs Year.
    r = check(
        tmp_path, "p = 1 ~ Person\ny = 1 ~ Year\nu = 3 ~\na = u + p ~ Person\nb = u + y ~ Year"
    )
    assert r.ok and r.inferred["u"] == "Person"
    assert list(r.warnings.variable) == ["b"] and "inferred for u" in r.warnings.message[0]


def test_unreadable_units_are_a_warning_and_count_as_undeclared(tmp_path: Path) -> None:
    r = check(tmp_path, "p = 1 ~ Person\nq = p ~ Person/(Year")
    assert r.ok and list(r.warnings.variable) == ["q"]
    assert "Cannot read the units 'Person/(Year'" in r.warnings.message[0]
    assert r.inferred == {"q": "Person"}


# ------------------------------------------------------------------------- equivalents
def test_vensim_units_equiv_records(tmp_path: Path) -> None:
    model = "P = 10 ~ Person\nQ = P ~ People"
    assert errors(check(tmp_path, model)) == [("Q", "People", "Person")]
    path = mdl(tmp_path, model, equivalents="22:Person,People,Persons\n")
    assert read_equivalents(path) == [["Person", "People", "Persons"]]
    assert check_units(path).ok


def test_xmile_units_aliases_and_time_units(tmp_path: Path) -> None:
    template = """<?xml version="1.0" encoding="utf-8"?>
<xmile version="1.0" xmlns="http://docs.oasis-open.org/xmile/ns/XMILE/v1.0">
<header><name>t</name></header>
<sim_specs time_units="Days"><start>0</start><stop>10</stop><dt>1</dt></sim_specs>
{units}
<model><variables>
<stock name="S"><eqn>10</eqn><outflow>out</outflow><units>people</units></stock>
<flow name="out"><eqn>S / residence</eqn><units>person/day</units></flow>
<aux name="residence"><eqn>5</eqn><units>days</units></aux>
</variables></model>
</xmile>
"""
    path = tmp_path / "t.xmile"
    path.write_text(template.format(units=""))
    r = check_units(path)
    # Two rows for 'out': its equation (people/day) against its declaration (person/day),
    # and its declaration against what a flow of S needs (people/day).
    pairs = {
        (parse_units(e), parse_units(c))
        for e, c in zip(r.errors.expected, r.errors.computed, strict=True)
    }
    people_per_day, person_per_day = parse_units("people/day"), parse_units("person/day")
    assert set(r.errors.variable) == {"out"}
    assert pairs == {(person_per_day, people_per_day), (people_per_day, person_per_day)}
    aliases = '<model_units><unit name="People"><eqn/><alias>person</alias></unit></model_units>'
    path.write_text(template.format(units=aliases))
    assert check_units(path).ok


# ------------------------------------------------------------------------- report, API, CLI
def test_report_table_and_text(tmp_path: Path) -> None:
    path = mdl(tmp_path, "p = 100 ~ Person\nr = 0.02 ~ Dmnl\nb = p * r ~ Person/Year")
    r = check_units(path)
    assert list(r.table.columns) == [
        "variable",
        "file",
        "line",
        "severity",
        "expected",
        "computed",
        "message",
        "hint",
    ]
    row = r.errors.iloc[0]
    assert row.file == str(path)
    assert path.read_text().splitlines()[int(row.line) - 1].startswith("b =")
    text = str(r)
    assert f"{path}:{row.line}: error: b: Right hand and left hand units do not match." in text
    assert "expected: Person/Year" in text and "computed: Person" in text
    assert "units do not balance" in text.splitlines()[-1]


def test_model_check_units_and_the_package_name(tmp_path: Path) -> None:
    model = sd_model.load(mdl(tmp_path, "p = 1 ~ Person\nq = p ~ Year"))
    r = model.check_units()
    assert errors(r) == [("q", "Year", "Person")]
    assert errors(sd_model.check_units(model.path)) == errors(r)


def test_cli_units_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = mdl(tmp_path, "p = 1 ~ Person\nq = p ~ Person", name="good.mdl")
    bad = mdl(tmp_path, "p = 1 ~ Person\nq = p ~ Year", name="bad.mdl")
    assert main(["units", str(good)]) == 0
    assert "units balance" in capsys.readouterr().out
    out_csv = tmp_path / "problems.csv"
    assert main(["units", str(bad), "-o", str(out_csv)]) == 1
    assert "Right hand and left hand units do not match" in capsys.readouterr().out
    assert "q," + str(bad) in out_csv.read_text()


def test_run_check_units_refuses_an_unbalanced_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = mdl(tmp_path, "p = 1 ~ Person\nq = p ~ Year", name="bad.mdl")
    assert main(["run", str(bad), "--check-units"]) == 2
    err = capsys.readouterr().err
    assert "bad.mdl: 1 equation with units that do not balance" in err
    assert "Right hand and left hand units do not match" in err
    good = mdl(tmp_path, "p = 1 ~ Person\nq = p ~ Person", name="good.mdl")
    assert main(["run", str(good), "--check-units", "--final-time", "1"]) == 0


# ------------------------------------------------------------------------- the project's models
@pytest.mark.parametrize(
    "path",
    [
        "models/example_regions.mdl",
        "models/kazakhstan_regions.mdl",
        "benchmarks/models/regions20.mdl",
    ],
)
def test_project_models_balance(path: str) -> None:
    r = check_units(ROOT / path)
    assert r.ok, str(r)
    assert r.warnings.empty and r.unknown.empty, str(r)


# ------------------------------------------------------------------------- the SDXorg corpus
# Models of the corpus that declare units but do not balance, and why. Every other model
# that declares units must check without errors.
UNBALANCED = {
    # Fox/Foxes and Hare/Hares are different names and no Units Equiv declares them equal.
    "samples/Lotka_Volterra/Lotka_Volterra.mdl": {"Predator Births", "Prey Births", "Prey Deaths"},
    # duration is in days, but the model's time unit (and the flows' units) is 'Time'.
    "samples/SIR/SIR.stmx": {"recovering"},
    # as SIR.stmx, and without <model_units> person and people are different units.
    "samples/SIR/SIR.xmile": {"recovering", "succumbing"},
    "samples/SIR/SIR_reciprocal-dt.xmile": {"recovering", "succumbing"},
    # characteristic time is in minutes, the time unit is 'Time'.
    "samples/teacup/teacup.stmx": {"heat loss to room"},
    # as teacup.stmx, and deg/degrees are not declared equal.
    "samples/teacup/teacup_w_diagram.xmile": {"heat_loss_to_room"},
    # 'special giveaways' (units) is an outflow of a stock in units: it needs units/Month;
    # 'sales' takes the SIN of a time.
    "tests/except/test_except.mdl": {"sales", "special giveaways"},
    # 'input level 1' (Dmnl) flows into a Dmnl stock: it needs 1/Month.
    "tests/subscript_copy/test_subscript_copy.mdl": {"input level 1"},
    "tests/subscript_copy/test_subscript_copy2.mdl": {"input level 1"},
    # births and aging are in People/year; the time unit is Month.
    "tests/subscript_mapping_vensim/test_subscript_mapping_vensim.mdl": {"aging", "births"},
}


def test_corpus_models_that_declare_units(corpus: Path) -> None:
    from sd_model._errors import ModelLoadError
    from sd_model.translate import parse_abstract_model

    control = {"initial time", "final time", "time step", "saveper"}
    checked, found = 0, {}
    for path in sorted(p for p in corpus.rglob("*") if p.suffix.lower() in MODEL_SUFFIXES):
        try:
            am = parse_abstract_model(path)
        except ModelLoadError:
            continue  # files PySD cannot parse are covered by the conformance tests
        elements = am.sections[0].elements
        if not any(el.units for el in elements if el.name.lower().replace("_", " ") not in control):
            continue
        checked += 1
        bad = set(check_units(am).errors.variable)
        if bad:
            found[path.relative_to(corpus).as_posix()] = bad
    assert checked == 22  # of the 186 files PySD parses
    assert found == UNBALANCED
