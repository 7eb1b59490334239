"""Declarative model checks: predicates on a model's variables over scenarios.

A check file states what must be true of a model's runs, the way SDEverywhere's model-check
does for En-ROADS: groups (``describe``) of tests (``it``), each naming scenarios, a variable
(or an expression of variables) and predicates against numbers or against another scenario.
:func:`check_model` runs every scenario of a file as one batch and reports PASS or FAIL per
test and scenario, with the worst time and element; ``sd-model check FILE`` prints it and
exits with 0 (all pass), 1 (a test fails) or 2 (the file is wrong).

```yaml
model: ../models/example_regions.mdl     # or base_scenario: ../scenarios/example.yaml
time: {final: 2040}                       # optional; as in scenario files
solver: {method: RK45, rtol: 1.0e-6}      # optional; as in scenario files
levers:                                   # [min, max] of levers (see "Lever ranges")
  transfer intensity: [0, 1]
scenarios:                                # named scenarios, for `scenarios:` and references
  half transfers: {set: {transfer intensity: 0.5}}
checks:
  - describe: Population
    tests:
      - it: stays positive with every lever at its extremes
        scenarios: [{preset: matrix}]
        variable: Population
        gt: 0
      - it: national total is the sum of the regions
        variable: total population
        approx: {variable: 'SUM(Population[Region!])'}   # quoted: [] inside {}
        rel_tolerance: 1.0e-12
      - it: full transfers narrow the income range more than half transfers by 2040
        scenarios: [{lever: transfer intensity, at: max}]
        variable: VMAX(income per capita[Region!]) - VMIN(income per capita[Region!])
        lt: half transfers
        at: 2040
```

**Tests.** ``it`` (what is expected, in words), ``scenarios`` (default ``[baseline]``),
``variable`` (or ``variables``: a list, each judged alike), one or more predicates, and
optionally ``at`` (a saved time, a list of them, ``{from: T1, to: T2}`` inclusive,
``initial`` or ``final``; default every saved time) and ``for_each`` (a dim: one result per
element). A subscripted variable must satisfy the predicates at every element; the report
names the worst one.

**Predicates.** ``gt``, ``gte``, ``lt``, ``lte`` and ``approx`` (with ``tolerance``,
absolute, and/or ``rel_tolerance``, relative to the expected value: it passes when
``|value - expected| <= tolerance + rel_tolerance * |expected|``). The expected value is a
number, the name of a scenario (the same variable there: ``lt: baseline``), or
``{scenario: NAME, variable: EXPR}`` (leave out ``scenario`` for the test's own scenario,
``variable`` for the test's own variable). A test may combine predicates (``gte: 0, lte: 1``).

**Variables** are expressions in Vensim's notation: model names in any case (or PySD's
names), ``name[Element]`` (or a subrange), numbers, ``+ - * / ^``, parentheses,
``MIN(a, b)``, ``MAX(a, b)``, ``ABS``, ``SQRT``, ``EXP``, ``LN``, and ``SUM``, ``PROD``,
``VMIN``, ``VMAX`` over the dims marked with ``!`` (``SUM(Net Migration[Region!])``), and
``Time``. Names with operator characters are written in double quotes.

**Scenarios.** ``baseline`` (the model as written, or the base scenario file's ``set``), a
name from ``scenarios:``, or a mapping: ``{set: {...}}``; ``{file: ../scenarios/x.yaml}``
(that file's ``set``; time and solver are the check file's); ``{lever: NAME, at: min|max|
NUMBER}``; ``{each_lever: all | [NAMES], at: min|max}`` (one scenario per lever);
``{all_levers: min|max}``; ``{preset: matrix}`` (the baseline, each lever at its minimum and
at its maximum, all at their minimum, all at their maximum). ``set:`` beside ``file`` or a
lever key adds overrides on top; ``name:`` labels a single scenario; ``NAME[Element]`` moves
one element of a subscripted lever. Overrides take the forms ``sd-model run --set`` and
scenario files accept.

**Lever ranges** come from the check file's ``levers:`` (``NAME: [min, max]``), else the
base scenario file's ``levers:`` section, else the model's ``[min, max]`` units field.
``all`` is every lever with a range.

All scenarios of a file run as one batch (:func:`sd_model.evaluate.evaluate`); when the
batch fails, each scenario runs alone and the tests of a failing one report ERROR.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sd_model.checks._report import CheckReport, arrays, evaluate_runs, results
from sd_model.checks._schema import CheckFileError, Reader

if TYPE_CHECKING:
    from sd_model.model import Model

__all__ = ["CheckFileError", "CheckReport", "check_model"]


def check_model(
    path: str | os.PathLike[str],
    *,
    backend: str | None = None,
    method: str | None = None,
    model: Model | None = None,
) -> CheckReport:
    """Run a check file and report PASS or FAIL for each test and scenario.

    Parameters
    ----------
    path : path-like
        The check file (YAML; the schema is in :mod:`sd_model.checks`).
    backend : {"auto", "compiled", "pysd"}, optional
        Replaces the file's ``solver.backend``.
    method : {"euler", "rk4", "RK45", "DOP853", "LSODA", "BDF", "Radau", "RK23"}, optional
        Replaces the file's ``solver.method``.
    model : Model, optional
        The model the file names, already loaded (saves loading it again).

    Returns
    -------
    CheckReport
        ``.ok``, ``.table`` (a DataFrame, one row per test, variable and scenario) and a
        readable ``str()``.

    Raises
    ------
    CheckFileError
        A malformed check file; the message names the file, the line and the fix.
    ParameterError, ScenarioError, ModelLoadError
        Unknown parameters or elements, bad scenario files, a missing model.

    Examples
    --------
    >>> import sd_model
    >>> report = sd_model.check_model("models/kazakhstan_checks.yaml")  # doctest: +SKIP
    >>> report.ok  # doctest: +SKIP
    True
    >>> print(report.to_text(failures_only=True))  # doctest: +SKIP
    """
    f = Reader(Path(path), backend=backend, method=method, model=model).file
    start = time.perf_counter()
    ev, errors = evaluate_runs(f)
    table = results(f, arrays(ev, f.model) if ev is not None else {}, errors)
    return CheckReport(
        source=f.source,
        model=str(f.model.path),
        table=table,
        scenarios=len(f.runs),
        backend=ev.backend if ev is not None else f.backend,
        method=f.solver.method,
        seconds=time.perf_counter() - start,
    )
