"""Running a check file's scenarios as one batch, judging the tests, and the report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from sd_model._errors import IntegrationError
from sd_model.checks._schema import SYMBOLS, CheckFile, Predicate, Test

if TYPE_CHECKING:
    from sd_model.evaluate import Evaluation
    from sd_model.model import Model

COLUMNS = [
    "group",
    "check",
    "variable",
    "scenario",
    "element",
    "status",
    "time",
    "location",
    "value",
    "expected",
    "margin",
    "predicate",
    "message",
    "line",
]


def evaluate_runs(f: CheckFile) -> tuple[Evaluation | None, list[str]]:
    """Every run of ``f`` as one batch, and an error message per run ('' when it ran).

    When the batch fails, each run is integrated alone, so that one scenario that blows up
    is reported as an ERROR of the tests that use it instead of stopping every test.
    """
    from sd_model.evaluate import Evaluation, evaluate

    params = [dict(r.params) for r in f.runs]
    kw: dict[str, Any] = {
        "solver": f.solver,
        "grid": f.grid,
        "backend": f.backend,
        "outputs": list(f.outputs),
    }
    try:
        return evaluate(f.model, params, **kw), [""] * len(params)
    except IntegrationError:
        pass
    errors: list[str] = []
    done: list[Evaluation] = []
    for p in params:
        try:
            done.append(evaluate(f.model, [p], **kw))
            errors.append("")
        except IntegrationError as exc:
            errors.append(f"the run failed: {exc}")
    if not done:
        return None, errors
    first = done[0]
    values = {}
    for v in first.variables:
        ran = iter(d.values[v.py_name] for d in done)
        nan = np.full(first.values[v.py_name].shape, np.nan)
        values[v.py_name] = np.concatenate([nan if e else next(ran) for e in errors])
    return Evaluation(first.times, values, first.variables, first.backend, first.note), errors


def arrays(ev: Evaluation, model: Model) -> dict[str, xr.DataArray]:
    """The batch's values as DataArrays with dims ``scenario``, ``time`` and the model's."""
    out = {"time": xr.DataArray(ev.times, dims=("time",), coords={"time": ev.times})}
    for v in ev.variables:
        dims = ("scenario", "time", *v.dims) if v.time_dependent else ("scenario", *v.dims)
        coords: dict[str, Any] = {d: model.coords[d] for d in v.dims}
        if v.time_dependent:
            coords["time"] = ev.times
        out[v.py_name] = xr.DataArray(
            np.asarray(ev.values[v.py_name], float), dims=dims, coords=coords
        )
    return out


def _statement(pred: Predicate, value: float, expected: float, passed: bool) -> str:
    ref = pred.ref.text() if pred.ref.number is not None else f"{pred.ref.text()} ({expected:.6g})"
    tol = ""
    if pred.op == "approx":
        parts = [f"{pred.tolerance:g}"] if pred.tolerance else []
        parts += [f"{pred.rel_tolerance:g} relative"] if pred.rel_tolerance else []
        tol = " ± " + " + ".join(parts)
    return f"{value:.6g} {'' if passed else 'is not '}{SYMBOLS[pred.op]} {ref}{tol}"


def _aligned(value: xr.DataArray, ref: xr.DataArray) -> tuple[xr.DataArray, np.ndarray]:
    """``value`` and the expected values on its points, as an array of its shape.

    The reader makes a reference's dims a subset of the variable's, on the same elements;
    that case is done in NumPy (xarray's broadcast costs milliseconds a call). A reference
    with a time axis against a constant variable goes through xarray.
    """
    if set(ref.dims) <= set(value.dims):
        order = [d for d in value.dims if d in ref.dims]
        shape = [value.sizes[d] if d in ref.dims else 1 for d in value.dims]
        r = np.asarray(ref.transpose(*order).values, float).reshape(shape)
        return value, np.broadcast_to(r, value.shape)
    a, b = xr.broadcast(value, ref)
    return a, np.asarray(b.transpose(*a.dims).values, float)


def judge(value: xr.DataArray, refs: Sequence[tuple[Predicate, xr.DataArray]]) -> dict[str, Any]:
    """PASS when every predicate holds at every point; the worst point either way.

    The worst point is the most violated one of a failing predicate, or for a pass the one
    with the smallest margin (in the variable's units). NaN fails.
    """
    worst: tuple[Any, ...] | None = None
    ok = True
    for pred, ref in refs:
        a, rv = _aligned(value, ref)
        av = np.asarray(a.values, float)
        with np.errstate(invalid="ignore"):
            if pred.op in ("gt", "gte"):
                margin = av - rv
            elif pred.op in ("lt", "lte"):
                margin = rv - av
            else:
                margin = pred.tolerance + pred.rel_tolerance * np.abs(rv) - np.abs(av - rv)
            passed = margin > 0 if pred.op in ("gt", "lt") else margin >= 0
        margin = np.where(np.isnan(margin), -np.inf, margin).ravel()
        all_pass = bool(passed.all())
        i = int(np.argmin(margin if all_pass else np.where(passed.ravel(), np.inf, margin)))
        key = (all_pass, float(margin[i]))
        if worst is None or key < worst[0]:
            idx = np.unravel_index(i, a.shape)
            point = {str(d): a.coords[d].values[j] for d, j in zip(a.dims, idx, strict=True)}
            worst = (key, pred, point, float(av.ravel()[i]), float(rv.ravel()[i]))
        ok = ok and all_pass
    assert worst is not None
    (passed_here, margin_here), pred, point, val, expected = worst
    t = point.pop("time", None)
    return {
        "status": "PASS" if ok else "FAIL",
        "time": float(t) if t is not None else math.nan,
        "location": ", ".join(f"{d}={e}" for d, e in point.items()),
        "value": val,
        "expected": expected,
        "margin": margin_here,
        "message": _statement(pred, val, expected, passed_here),
    }


def results(f: CheckFile, data: dict[str, xr.DataArray], errors: list[str]) -> pd.DataFrame:
    """One row per test, variable, scenario (and element with ``for_each``)."""
    rows: list[dict[str, Any]] = []
    cache: dict[str, xr.DataArray] = {}

    def values(expr: Any) -> xr.DataArray:
        if expr.text not in cache:
            cache[expr.text] = expr.evaluate(data)
        return cache[expr.text]

    for t in f.tests:
        for expr in t.variables:
            text = " and ".join(p.text() for p in t.predicates)
            for run, label in t.scenarios:
                row = {"group": t.group, "check": t.it, "variable": expr.text, "line": t.line}
                row |= {"scenario": label, "predicate": text}
                needed = [run] + [f.named[p.ref.scenario] for p in t.predicates if p.ref.scenario]
                failed = [errors[i] for i in needed if errors[i]]
                if failed:
                    rows.append(row | {"status": "ERROR", "element": "", "message": failed[0]})
                    continue
                rows += [row | r for r in _judge_test(t, expr, run, f, values)]
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.fillna({"element": "", "location": "", "message": ""})


def _run(da: xr.DataArray, run: int) -> xr.DataArray:
    """One run's values (an expression of numbers and Time alone is the same in all)."""
    return da.isel(scenario=run) if "scenario" in da.dims else da


def _judge_test(t: Test, expr: Any, run: int, f: CheckFile, values: Any) -> list[dict[str, Any]]:
    actual = _run(values(expr), run)
    refs: list[tuple[Predicate, xr.DataArray]] = []
    for p in t.predicates:
        if p.ref.number is not None:
            refs.append((p, xr.DataArray(p.ref.number)))
        else:
            where = run if p.ref.scenario is None else f.named[p.ref.scenario]
            refs.append((p, _run(values(p.ref.expr or expr), where)))
    if t.times is not None:
        actual = _at(actual, t.times)
        refs = [(p, _at(v, t.times)) for p, v in refs]
    if t.for_each is None:
        return [{"element": ""} | judge(actual, refs)]
    out = []
    for e in f.model.coords[t.for_each]:
        sel = {t.for_each: e}
        here = [(p, v.sel(sel) if t.for_each in v.dims else v) for p, v in refs]
        out.append({"element": e} | judge(actual.sel(sel), here))
    return out


def _at(da: xr.DataArray, times: tuple[float, ...]) -> xr.DataArray:
    return da.sel(time=list(times)) if "time" in da.dims else da


@dataclass(frozen=True)
class CheckReport:
    """The outcome of a check file: one row per test, variable, scenario (and element).

    Attributes
    ----------
    source : str
        The check file.
    model : str
        The model file.
    table : pandas.DataFrame
        Columns ``group``, ``check`` (the test's ``it``), ``variable``, ``scenario``,
        ``element`` (with ``for_each``), ``status`` (PASS, FAIL or ERROR); the worst point
        (the most violated, or for a pass the closest to failing): its ``time``, ``location``
        (the other elements), ``value``, ``expected`` value and ``margin`` (how far inside the
        predicate, in the variable's units; negative or zero on a failure); the test's
        ``predicate``, a ``message`` (the worst point in words, or why a run failed) and
        the test's ``line`` in the check file.
    scenarios : int
        Number of simulations run.
    backend : str
        The backend that ran them.
    method : str
        The integration method.
    seconds : float
        Wall time of the simulations and judging (model loading excluded).

    Examples
    --------
    >>> report = sd_model.check_model("models/kazakhstan_checks.yaml")  # doctest: +SKIP
    >>> report.ok, report.counts()  # doctest: +SKIP
    (True, {'PASS': 849, 'FAIL': 0, 'ERROR': 0})
    >>> report.failures[["check", "scenario", "message"]]  # doctest: +SKIP
    """

    source: str
    model: str
    table: pd.DataFrame
    scenarios: int
    backend: str
    method: str
    seconds: float

    @property
    def ok(self) -> bool:
        """True when every result passed (and there was at least one)."""
        return bool(len(self.table)) and bool((self.table["status"] == "PASS").all())

    @property
    def failures(self) -> pd.DataFrame:
        """The rows that did not pass (FAIL or ERROR)."""
        return self.table[self.table["status"] != "PASS"]

    def counts(self) -> dict[str, int]:
        """Number of results by status."""
        return {s: int((self.table["status"] == s).sum()) for s in ("PASS", "FAIL", "ERROR")}

    def to_text(self, *, failures_only: bool = False) -> str:
        """The report: one line per test and scenario (and element), grouped as in the file.

        Parameters
        ----------
        failures_only : bool
            Leave out the lines that passed (the totals still count them).
        """
        lines = [
            f"Model checks {self.source} on {Path(self.model).name}: {self.scenarios} "
            f"scenario(s), {self.method}, {self.backend} backend, {self.seconds:.1f} s"
        ]
        table = self.failures if failures_only else self.table
        labels = [
            s + (f" [{e}]" if e else "")
            for s, e in zip(table["scenario"], table["element"], strict=True)
        ]
        width = min(40, max(map(len, labels), default=8))
        group = test = None
        for row, label in zip(table.itertuples(index=False), labels, strict=True):
            if row.group != group:
                group, test = row.group, None
                lines += ["", row.group or "(no group)"]
            if (row.line, row.variable) != test:
                test = (row.line, row.variable)
                lines.append(f"  {row.check}: {row.variable}  ({row.line})")
            lines.append(f"    {row.status:5s} {label:{width}s}  {_where(row)}{row.message}")
        c = self.counts()
        lines += ["", f"{c['PASS']} passed, {c['FAIL']} failed, {c['ERROR']} error(s)"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def _where(row: Any) -> str:
    if row.status == "ERROR":
        return ""
    when = f"{row.time:g}" if not math.isnan(row.time) else ""
    text = ", ".join(x for x in (when, row.location) if x)
    return f"{text}: " if text else ""
