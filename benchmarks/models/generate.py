"""Generate scalar Vensim stand-in models for the benchmark corpus, deterministically.

The published models the speed issue was measured on (World3-03, the COVID-19 US model,
Industrial Dynamics) are not available here, so the corpus uses generated models of the
same shape: many scalar equations, goal-seeking stocks, SMOOTH / DELAY structures,
graphical lookups, IF THEN ELSE policy switches, and (COVID-shaped) a subscripted core
plus a macro. Each model is a function of its size and seed only: the same arguments
give byte-identical text.

Run as a script to write the corpus into a folder::

    .venv/bin/python benchmarks/models/generate.py OUT_DIR

Every initial value is written with a fractional part: PySD 3.14 mishandles integer
initial values of SMOOTHI / DELAY3I (``..., 1)``), where Vensim's semantics are float.
"""

from __future__ import annotations

import argparse
import pathlib
from dataclasses import dataclass

import numpy as np

_EQ = "{lhs} =\n\t{rhs}\n\t~\t{units}\n\t~\t{doc}\n\t|\n\n"
_CONTROL = (
    "FINAL TIME = {final}\n\t~\tYear\n\t~\tThe final time for the simulation.\n\t|\n\n"
    "INITIAL TIME = 0\n\t~\tYear\n\t~\tThe initial time for the simulation.\n\t|\n\n"
    "SAVEPER = {saveper}\n\t~\tYear [0,?]\n\t~\tThe frequency with which output is stored.\n\t|\n\n"
    "TIME STEP = {dt}\n\t~\tYear [0,?]\n\t~\tThe time step for the simulation.\n\t|\n\n"
)
_TAIL = (
    "\\\\\\---/// Sketch information - do not modify anything except names\n"
    "V300  Do not put anything below this section - it will be ignored\n"
)

#: The stand-ins of the corpus: name -> (kind, size). Sizes count model variables
#: (equations, control variables excluded), not subscript cells.
CORPUS: dict[str, tuple[str, int]] = {
    "scalar50": ("scalar", 50),
    "scalar100": ("scalar", 100),
    "scalar250": ("scalar", 250),
    "scalar500": ("scalar", 500),
    "plain100": ("plain", 100),
    "plain250": ("plain", 250),
    "world3_like": ("world3", 300),
    "covid_like": ("covid", 250),
}


def _num(rng: np.random.Generator, lo: float, hi: float) -> str:
    """A float literal with a fractional part (never an integer literal)."""
    value = round(float(rng.uniform(lo, hi)), 3)
    if value == int(value):
        value += 0.125
    return f"{value:.3f}"


@dataclass
class _Writer:
    parts: list[str]
    count: int = 0

    def eq(self, lhs: str, rhs: str, units: str = "", doc: str = "") -> None:
        self.parts.append(_EQ.format(lhs=lhs, rhs=rhs, units=units, doc=doc))
        self.count += 1

    def lookup(self, name: str, points: str, units: str = "Dmnl") -> None:
        self.parts.append(f"{name}(\n\t{points})\n\t~\t{units}\n\t~\t\n\t|\n\n")
        self.count += 1


def _lookup_points(rng: np.random.Generator) -> str:
    """A rising S-shaped table on x in [0, 2] with outputs in [0.4, 1.6]."""
    xs = np.linspace(0.0, 2.0, 6)
    ys = np.sort(rng.uniform(0.4, 1.6, 6))
    pts = ",".join(f"({x:.2f},{y:.3f})" for x, y in zip(xs, ys, strict=True))
    return f"[(0,0)-(2,2)],{pts}"


def _sector(w: _Writer, rng: np.random.Generator, i: int, driver: str, flavour: str) -> str:
    """One goal-seeking sector (15 variables); returns its output for the next sector."""
    s = f"stock {i}"
    smooth_fn = {
        "scalar": ("SMOOTH", "SMOOTHI", "SMOOTH3")[i % 3],
        "world3": ("SMOOTH", "SMOOTHI")[i % 2],
        "covid": "SMOOTH",
        "plain": "SMOOTH",
    }[flavour]
    delay_fn = {
        "scalar": ("DELAY1", "DELAY3", "DELAY3I")[i % 3],
        "world3": "DELAY3",
        "covid": ("DELAY1", "DELAY3")[i % 2],
        "plain": "DELAY1",
    }[flavour]
    w.eq(s, f"INTEG(inflow {i} - outflow {i}, {_num(rng, 50, 150)})", "Unit")
    w.eq(
        f"inflow {i}",
        f"MAX(0, (target {i} - {s}) / adjustment time {i} + delayed outflow {i} * policy {i})",
        "Unit/Year",
    )
    w.eq(f"outflow {i}", f"{s} / lifetime {i}", "Unit/Year")
    if flavour == "plain":
        w.eq(f"target {i}", f"base target {i} * effect {i}", "Unit")
    else:
        w.eq(f"target {i}", f"base target {i} * effect {i} lookup(ratio {i})", "Unit")
    w.eq(f"ratio {i}", f"{driver} / reference {i}", "Dmnl")
    if smooth_fn == "SMOOTHI":
        smooth_rhs = f"SMOOTHI({s}, smoothing time {i}, {s})"
    else:
        smooth_rhs = f"{smooth_fn}({s}, smoothing time {i})"
    w.eq(f"smoothed {i}", smooth_rhs, "Unit")
    if delay_fn == "DELAY3I":
        delay_rhs = f"DELAY3I(outflow {i}, delay time {i}, {_num(rng, 0.5, 2)})"
    else:
        delay_rhs = f"{delay_fn}(outflow {i}, delay time {i})"
    w.eq(f"delayed outflow {i}", delay_rhs, "Unit/Year")
    if flavour == "plain":
        w.eq(f"effect {i}", f"MIN(MAX(ratio {i}, {_num(rng, 0.3, 0.6)}), 1.5)", "Dmnl")
    else:
        w.lookup(f"effect {i} lookup", _lookup_points(rng))
    w.eq(
        f"policy {i}",
        f"IF THEN ELSE(Time >= policy year, {_num(rng, 0.3, 0.9)}, {_num(rng, 0.6, 1)})",
        "Dmnl",
    )
    w.eq(f"adjustment time {i}", _num(rng, 1, 5), "Year")
    w.eq(f"lifetime {i}", _num(rng, 5, 20), "Year")
    w.eq(f"base target {i}", _num(rng, 80, 120), "Unit")
    w.eq(f"reference {i}", _num(rng, 80, 120), "Unit")
    w.eq(f"smoothing time {i}", _num(rng, 1, 4), "Year")
    w.eq(f"delay time {i}", _num(rng, 1, 6), "Year")
    return f"smoothed {i}"


def _fill(w: _Writer, rng: np.random.Generator, n: int, sectors: int) -> None:
    """Indicator auxiliaries until the model has ``n`` variables."""
    k = 0
    while w.count < n:
        i = int(rng.integers(sectors))
        j = int(rng.integers(sectors))
        form = k % 3
        if form == 0:
            rhs = f"stock {i} * {_num(rng, 0.5, 2)} + delayed outflow {j}"
        elif form == 1:
            rhs = f"IF THEN ELSE(ratio {i} > 1, smoothed {i}, stock {j})"
        else:
            rhs = f"MIN(target {i}, stock {j}) / MAX(reference {i}, 1)"
        w.eq(f"indicator {k}", rhs, "")
        k += 1


def _scalar(n: int, seed: int, flavour: str, *, final: float) -> str:
    rng = np.random.default_rng(seed)
    w = _Writer(["{UTF-8}\n"])
    w.eq("policy year", _num(rng, 30, 60), "Year")
    sectors = max((n - 1) // 15, 1)
    driver = "reference 0"  # sector 0 is driven by a constant: ratio 1
    for i in range(sectors):
        driver = _sector(w, rng, i, driver, flavour)
    _fill(w, rng, n, sectors)
    w.parts.append(_CONTROL.format(final=final, saveper=1, dt=1 if flavour == "world3" else 0.5))
    w.parts.append(_TAIL)
    return "".join(w.parts)


def scalar_model(n: int, seed: int = 0) -> str:
    """A scalar model of ``n`` variables: goal-seeking sectors chained through lookups.

    Each sector of 15 variables has a stock with an inflow and an outflow, a SMOOTH,
    SMOOTHI or SMOOTH3 of the stock, a DELAY1, DELAY3 or DELAY3I of the outflow, a
    graphical lookup and an IF THEN ELSE policy switch; the next sector's target
    depends on this one's smoothed stock. Indicator auxiliaries fill up to ``n``.
    50 years at a time step of 0.5 (100 Euler steps).
    """
    return _scalar(n, seed, "scalar", final=50.0)


def plain_model(n: int, seed: int = 0) -> str:
    """As :func:`scalar_model` without lookups: SMOOTH, DELAY1 and MIN/MAX only.

    PySD evaluates a lookup between its points through ``xarray.DataArray.interp``
    (milliseconds per call), which dominates its time on lookup-heavy models; these
    models measure the case where PySD's plain-float arithmetic is fast.
    """
    return _scalar(n, seed, "plain", final=50.0)


def world3_like(n: int = 300, seed: int = 3) -> str:
    """A World3-shaped scalar model: SMOOTH/SMOOTHI, DELAY3, a lookup per sector.

    World3-03 runs 1900-2100 at a time step of 0.5 (400 steps); this one runs 100 steps
    of 1 year, to keep PySD's run within the benchmark's time limit on a shared machine
    (step count scales both PySD's and sd_model's time alike).
    """
    return _scalar(n, seed, "world3", final=100.0)


def covid_like(n: int = 250, seed: int = 19) -> str:
    """A COVID-model-shaped model: a subscripted SEIR core, a macro, scalar sectors.

    The core is an SEIR chain over eight age cohorts (infection through ``SUM`` over
    cohorts); a macro ``RELAXED`` (a first-order smooth written as a macro with its own
    stock) is called on scalar arguments; scalar goal-seeking sectors, driven by the
    infected share through lookups, fill up to ``n`` variables. 100 days, step 1 day.
    """
    rng = np.random.default_rng(seed)
    cohorts = [f"c{k}" for k in range(8)]
    w = _Writer(["{UTF-8}\n"])
    w.parts.append(
        ":MACRO: RELAXED(input, relax time)\n"
        "RELAXED = INTEG((input - RELAXED) / relax time, input)\n\t~\tinput\n\t~\t\n\t|\n\n"
        ":END OF MACRO:\n\n"
    )
    w.parts.append(f"Cohort:\n\t{', '.join(cohorts)}\n\t~\t\n\t~\t\n\t|\n\n")
    pop = ", ".join(_num(rng, 1e5, 1e6) for _ in cohorts)
    contact = ", ".join(_num(rng, 2, 12) for _ in cohorts)
    fatality = ", ".join(_num(rng, 0.0005, 0.05) for _ in cohorts)
    w.eq("initial population[Cohort]", pop, "Person")
    w.eq("contact rate[Cohort]", contact, "1/Day")
    w.eq("fatality fraction[Cohort]", fatality, "Dmnl")
    w.eq(
        "Susceptible[Cohort]",
        "INTEG(-infection[Cohort], initial population[Cohort] - 10.5)",
        "Person",
    )
    w.eq("Exposed[Cohort]", "INTEG(infection[Cohort] - onset[Cohort], 10.5)", "Person")
    w.eq(
        "Infected[Cohort]",
        "INTEG(onset[Cohort] - recovery[Cohort] - death[Cohort], 0.5)",
        "Person",
    )
    w.eq("Recovered[Cohort]", "INTEG(recovery[Cohort], 0.5)", "Person")
    w.eq("Deceased[Cohort]", "INTEG(death[Cohort], 0.5)", "Person")
    w.eq(
        "infection[Cohort]",
        "contact rate[Cohort] * transmissibility * behaviour effect * Susceptible[Cohort]"
        " * infected share",
        "Person/Day",
    )
    w.eq("onset[Cohort]", "Exposed[Cohort] / incubation time", "Person/Day")
    w.eq(
        "recovery[Cohort]",
        "Infected[Cohort] * (1 - fatality fraction[Cohort]) / illness time",
        "Person/Day",
    )
    w.eq(
        "death[Cohort]",
        "Infected[Cohort] * fatality fraction[Cohort] / illness time",
        "Person/Day",
    )
    w.eq(
        "infected share",
        "SUM(Infected[Cohort!]) / SUM(initial population[Cohort!])",
        "Dmnl",
    )
    w.eq("total deaths", "SUM(Deceased[Cohort!])", "Person")
    w.eq("reported deaths", "DELAY3(SUM(death[Cohort!]), reporting delay)", "Person/Day")
    w.eq("perceived risk", "RELAXED(reported deaths / 100, perception time)", "Dmnl")
    w.eq("behaviour effect", "behaviour lookup(perceived risk) * policy switch", "Dmnl")
    w.lookup("behaviour lookup", "[(0,0)-(10,1)],(0,1),(1,0.8),(3,0.5),(10,0.3)")
    w.eq(
        "policy switch",
        f"IF THEN ELSE(Time >= policy year, {_num(rng, 0.4, 0.8)}, 1.0)",
        "Dmnl",
    )
    w.eq("transmissibility", _num(rng, 0.02, 0.05), "Dmnl")
    w.eq("incubation time", _num(rng, 3, 6), "Day")
    w.eq("illness time", _num(rng, 7, 14), "Day")
    w.eq("reporting delay", _num(rng, 3, 10), "Day")
    w.eq("perception time", _num(rng, 5, 15), "Day")
    w.eq("policy year", _num(rng, 40, 60), "Day")
    w.eq("economic activity", "RELAXED(behaviour effect, perception time)", "Dmnl")
    core = w.count
    sectors = max((n - core) // 15, 1)
    driver = "economic activity * reference 0"
    for i in range(sectors):
        driver = _sector(w, rng, i, driver, "covid")
    _fill(w, rng, n, sectors)
    w.parts.append(_CONTROL.format(final=100, saveper=1, dt=1))
    w.parts.append(_TAIL)
    return "".join(w.parts)


def generate(name: str) -> str:
    """The text of the corpus model ``name`` (a key of :data:`CORPUS`)."""
    kind, size = CORPUS[name]
    if kind == "scalar":
        return scalar_model(size, seed=size)
    if kind == "plain":
        return plain_model(size, seed=size)
    if kind == "world3":
        return world3_like(size)
    return covid_like(size)


def write_corpus(folder: pathlib.Path, names: list[str] | None = None) -> list[pathlib.Path]:
    """Write the corpus models (default: all of :data:`CORPUS`) as ``folder/<name>.mdl``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names or list(CORPUS):
        path = folder / f"{name}.mdl"
        path.write_text(generate(name), encoding="utf-8")
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=pathlib.Path, help="folder to write the .mdl files into")
    args = parser.parse_args()
    for path in write_corpus(args.out):
        print(path)


if __name__ == "__main__":
    main()
