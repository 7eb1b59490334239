"""Calibration files and the ``sd-model calibrate`` command.

```yaml
model: sir_boarding_school.mdl             # relative to this file
data:                                      # one mapping or a list of them
  file: data/boarding_school_influenza.csv
  time: day                                # the time column (default: time)
  columns: {in_bed: Infected}              # wide layout: column -> variable ("name[elem]")
  # without columns: a tidy file (time, variable, one column per subscript range, value)
  # or `variable: Population` (wide, one column per element of the variable's one dim;
  # `ignore: [unit, source]` skips note columns), and `times: [2015, 2021]` keeps rows
  # of those years only (the fitting window)
params:
  contact rate: [0.5, 5]                   # bounds
  recovery rate: {bounds: [0.05, 2], prior: {dist: lognorm, s: 1.0, scale: 0.5}}
fixed: {population: 763}                   # overrides held fixed
error: poisson                             # or {Infected: {kind: normal, sigma: 10}}
weights: {Infected: 1}
method: differential_evolution             # or multistart, local
seed: 1
options: {popsize: 15, maxiter: 300, tol: 0.01}
time: {final: 14}                          # initial/final: a year or {latest_year_in: ...}
window:                                    # optional: the fitting window, which follows the data
  final: {latest_year_in: data/*.csv}      # a year, or the latest year with complete data
  years: 7                                 # at most 7 years, ending in final
  breaks: [2022]                           # never span a break (sd_model.data_years)
solver: {method: RK45, backend: auto, rtol: 1.0e-8, atol: 1.0e-8}
confidence: {level: 0.95, method: profile} # profile, payoff or hessian
posterior: {draws: 1000, tune: 500, walkers: 64}       # optional (or --posterior)
bands: {quantiles: [0.05, 0.5, 0.95], final: 30}       # optional (or --bands)
draws:                                     # optional: the parameter draws written to draws.csv
  n: 1000                                  # draws of the fitted parameters (default 1000; 0: none)
  unfitted:                                # assumptions the data cannot fit, drawn from these
    mixing rate: {dist: norm, loc: 0.5, scale: 0.1}
```

A year in ``time:`` and in the data items' ``times:`` may be a reference to the data,
``{latest_year_in: data/series.csv}``: the latest year in which every value column of
the file (or of every file of a list or glob) has a value, the paths relative to this
file. ``window:`` sets ``time: initial`` and ``final`` and the ``times:`` of the data items
that give none; see :mod:`sd_model.data_years` for its rule. So appending rows for a newer
year to the data moves the fit without editing this file.

Priors are ``scipy.stats`` distributions by name with their keyword arguments. The
command writes ``params.yaml`` (a parameter file for scenario files' ``params_file:``),
``fit_report.csv`` and ``fit_report.md``, ``parameters.csv``, ``best_run.nc`` and
``fit.png``, and ``draws.csv``: parameter draws for a scenario file's ``uncertainty:``
section (one row per draw: the posterior sample when there is one, else draws from the
fit's normal approximation, truncated to the bounds), with the ``draws.unfitted``
parameters drawn independently from their distributions; ``params.yaml``'s ``draws:``
section says what they are. With a posterior also ``posterior.nc``, with bands
``bands.nc`` and ``fan.png``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from sd_model.calibrate.errors import CalibrationError
from sd_model.data_years import DataYearError, is_year_reference, resolve_window, resolve_year

TOP_KEYS = (
    "model",
    "data",
    "params",
    "fixed",
    "error",
    "weights",
    "method",
    "seed",
    "options",
    "time",
    "window",
    "solver",
    "confidence",
    "posterior",
    "bands",
    "draws",
    "name",
    "description",
)
DATA_KEYS = ("file", "time", "columns", "variable", "ignore", "times")
OPTION_KEYS = ("popsize", "maxiter", "tol", "polish")
POSTERIOR_KEYS = ("draws", "tune", "walkers", "method", "kind", "block_length")
BANDS_KEYS = ("quantiles", "final", "n", "outputs")
DRAWS_KEYS = ("n", "unfitted")
TIME_KEYS = {
    "initial": "initial_time",
    "final": "final_time",
    "saveper": "saveper",
    "time_step": "time_step",
}
SOLVER_KEYS = ("method", "backend", "rtol", "atol", "max_step")


@dataclass(frozen=True)
class CalibrationFile:
    """A checked calibration file (see the module docstring for the layout)."""

    source: Path
    model: Path
    data: pd.DataFrame | dict[str, pd.Series]
    params: dict[str, tuple[float, float]]
    priors: dict[str, Any] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    error: Any = "normal"
    weights: dict[str, float] = field(default_factory=dict)
    method: str = "differential_evolution"
    seed: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    time: dict[str, float] = field(default_factory=dict)
    solver: dict[str, Any] = field(default_factory=dict)
    confidence: dict[str, Any] = field(default_factory=dict)
    posterior: dict[str, Any] | None = None
    bands: dict[str, Any] | None = None
    draws: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | Path) -> CalibrationFile:
        """Read and check a calibration file; errors name the file and the key."""
        p = Path(path)
        if not p.is_file():
            raise CalibrationError(f"Calibration file not found: {p}")
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise CalibrationError(f"{p}: invalid YAML: {exc}") from exc
        if not isinstance(doc, Mapping):
            raise CalibrationError(f"{p}: a calibration file is a mapping of keys to values.")
        _keys(doc, TOP_KEYS, str(p))
        for key in ("model", "data", "params"):
            if key not in doc:
                raise CalibrationError(f"{p}: missing key {key!r}.")
        model = (p.parent / str(doc["model"])).expanduser()
        if not model.is_file():
            raise CalibrationError(
                f"{p}: model: file {doc['model']!r} not found (looked for "
                f"{model.resolve()}; paths are relative to this file)."
            )
        params, priors = _params(doc["params"], str(p))
        try:
            time, window = _time(doc, p)
        except DataYearError as exc:
            raise CalibrationError(str(exc)) from exc
        seed = doc.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise CalibrationError(f"{p}: seed must be an integer, got {seed!r}.")
        return cls(
            source=p,
            model=model.resolve(),
            data=_data(doc["data"], p.parent, str(p), window),
            params=params,
            priors=priors,
            fixed=dict(_mapping(doc, "fixed", str(p))),
            error=doc.get("error", "normal"),
            weights=dict(_mapping(doc, "weights", str(p))),
            method=str(doc.get("method", "differential_evolution")),
            seed=seed,
            options=_section(doc, "options", OPTION_KEYS, str(p)),
            time=time,
            solver=_section(doc, "solver", SOLVER_KEYS, str(p)),
            confidence=_section(doc, "confidence", ("level", "method"), str(p)),
            posterior=_section(doc, "posterior", POSTERIOR_KEYS, str(p))
            if "posterior" in doc
            else None,
            bands=_section(doc, "bands", BANDS_KEYS, str(p)) if "bands" in doc else None,
            draws=_draws(doc, str(p)),
        )


def _time(doc: Mapping[str, Any], p: Path) -> tuple[dict[str, float], tuple[int, int] | None]:
    """The ``time:`` section (years resolved from the data) and the ``window:``, if any."""
    where = str(p)
    section = _section(doc, "time", tuple(TIME_KEYS), where)
    time: dict[str, float] = {}
    for key, value in section.items():
        if key in ("initial", "final") and is_year_reference(value):
            time[TIME_KEYS[key]] = float(resolve_year(value, p.parent, f"{where}: time.{key}"))
        else:
            time[TIME_KEYS[key]] = number(value, f"{where}: time.{key}")
    if "window" not in doc:
        return time, None
    both = [k for k in ("initial", "final") if k in section]
    if both:
        raise CalibrationError(
            f"{where}: time.{both[0]} and window: both set the fitting window; "
            f"remove time.{both[0]} (window: sets time: initial and final)."
        )
    first, last = resolve_window(doc["window"], p.parent, where)
    time["initial_time"], time["final_time"] = float(first), float(last)
    return time, (first, last)


def _keys(doc: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    import difflib

    for key in doc:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise CalibrationError(
                f"{where}: unknown key {key!r}{hint} (keys: {', '.join(allowed)})."
            )


def _mapping(doc: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = doc.get(key) or {}
    if not isinstance(value, Mapping):
        raise CalibrationError(f"{where}: {key!r} must be a mapping.")
    return value


def _section(doc: Mapping[str, Any], key: str, allowed: tuple[str, ...], where: str) -> dict:
    value = _mapping(doc, key, where)
    _keys(value, allowed, f"{where}: {key}")
    return dict(value)


def _params(section: Any, where: str) -> tuple[dict[str, tuple[float, float]], dict[str, Any]]:
    if not isinstance(section, Mapping) or not section:
        raise CalibrationError(f"{where}: 'params' must map parameter names to [low, high].")
    bounds: dict[str, Any] = {}
    priors: dict[str, Any] = {}
    for name, spec in section.items():
        if isinstance(spec, Mapping):
            _keys(spec, ("bounds", "prior"), f"{where}: params.{name}")
            if "bounds" not in spec:
                raise CalibrationError(f"{where}: params.{name}: missing 'bounds'.")
            bounds[str(name)] = spec["bounds"]
            if "prior" in spec:
                priors[str(name)] = prior_from_spec(spec["prior"], f"{where}: params.{name}")
        else:
            bounds[str(name)] = spec
    return bounds, priors


def _draws(doc: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The ``draws:`` section: ``n`` (positive integer) and ``unfitted`` distributions."""
    section = _section(doc, "draws", DRAWS_KEYS, where)
    n = section.get("n", 1000)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise CalibrationError(
            f"{where}: draws.n must be a non-negative integer (0: write no draws), got {n!r}."
        )
    unfitted = section.get("unfitted") or {}
    if not isinstance(unfitted, Mapping):
        raise CalibrationError(
            f"{where}: draws.unfitted must map parameter names to distributions, e.g. "
            "{TFP growth rate: {dist: norm, loc: 0.01, scale: 0.005}}."
        )
    params = doc.get("params")
    fitted = set(params) if isinstance(params, Mapping) else set()
    for name in unfitted:
        if name in fitted:
            raise CalibrationError(
                f"{where}: draws.unfitted.{name}: {name!r} is fitted (it is in 'params'); "
                "its draws come from the fit."
            )
    return {
        "n": n,
        "unfitted": {
            str(k): prior_from_spec(v, f"{where}: draws.unfitted.{k}") for k, v in unfitted.items()
        },
        "specs": {str(k): dict(v) for k, v in unfitted.items()},
    }


def prior_from_spec(spec: Any, where: str) -> Any:
    """A frozen ``scipy.stats`` distribution from ``{dist: name, **keywords}``."""
    from scipy import stats

    if not isinstance(spec, Mapping) or "dist" not in spec:
        raise CalibrationError(
            f"{where}: a prior is {{dist: <scipy.stats name>, ...keywords}}, e.g. "
            f"{{dist: norm, loc: 1, scale: 0.2}}; got {spec!r}."
        )
    name = str(spec["dist"])
    dist = getattr(stats, name, None)
    if not isinstance(dist, stats.rv_continuous):
        raise CalibrationError(f"{where}: {name!r} is not a continuous scipy.stats distribution.")
    kwargs = {k: v for k, v in spec.items() if k != "dist"}
    try:
        frozen = dist(**kwargs)
        frozen.logpdf(frozen.median())
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"{where}: prior {name}{kwargs}: {exc}") from exc
    return frozen


def _data(
    section: Any, base: Path, where: str, window: tuple[int, int] | None = None
) -> pd.DataFrame | dict[str, pd.Series]:
    items = section if isinstance(section, list) else [section]
    frames: list[pd.DataFrame] = []
    series: dict[str, pd.Series] = {}
    for n, item in enumerate(items):
        label = f"{where}: data[{n}]" if isinstance(section, list) else f"{where}: data"
        if not isinstance(item, Mapping) or "file" not in item:
            raise CalibrationError(f"{label}: give {{file: ..., time: ..., columns: ...}}.")
        _keys(item, DATA_KEYS, label)
        path = (base / str(item["file"])).expanduser()
        if not path.is_file():
            raise CalibrationError(f"{label}: data file {item['file']!r} not found ({path}).")
        df = pd.read_csv(path)
        time = str(item.get("time", "time"))
        if time not in df.columns:
            raise CalibrationError(
                f"{label}: {path.name} has no time column {time!r} (columns: "
                f"{', '.join(map(str, df.columns))})."
            )
        times = item.get("times", None if window is None else list(window))
        df = _window(df, time, times, label, base)
        columns = item.get("columns")
        if item.get("variable") is not None:
            if columns is not None:
                raise CalibrationError(f"{label}: give 'columns' or 'variable', not both.")
            ignore = item.get("ignore") or []
            if not isinstance(ignore, list):
                raise CalibrationError(f"{label}: 'ignore' must be a list of column names.")
            columns = {
                c: f"{item['variable']}[{c}]" for c in df.columns if c != time and c not in ignore
            }
        if columns is None:
            frames.append(df.rename(columns={time: "time"}))
            continue
        if not isinstance(columns, Mapping) or not columns:
            raise CalibrationError(f"{label}: 'columns' must map data columns to variables.")
        for col, var in columns.items():
            if col not in df.columns:
                raise CalibrationError(f"{label}: {path.name} has no column {col!r}.")
            series[str(var)] = pd.Series(df[col].to_numpy(float), index=df[time].to_numpy(float))
    if frames and series:
        raise CalibrationError(f"{where}: data: mix of tidy files and 'columns:'; use one layout.")
    return pd.concat(frames, ignore_index=True) if frames else series


def _window(df: pd.DataFrame, time: str, times: Any, label: str, base: Path) -> pd.DataFrame:
    """Rows with ``times[0] <= time <= times[1]`` (all rows when ``times`` is None); either
    bound may be a ``{latest_year_in: ...}`` reference."""
    if times is None:
        return df
    if not isinstance(times, list) or len(times) != 2:
        raise CalibrationError(f"{label}: 'times' must be [first, last], got {times!r}.")
    try:
        lo, hi = (
            float(resolve_year(t, base, f"{label}: times"))
            if is_year_reference(t)
            else number(t, f"{label}: times")
            for t in times
        )
    except DataYearError as exc:
        raise CalibrationError(str(exc)) from exc
    t = pd.to_numeric(df[time], errors="coerce")
    return df[(t >= lo) & (t <= hi)]


# --------------------------------------------------------------------------- CLI
def add_calibrate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``calibrate`` sub-command to ``sd-model``'s sub-parsers."""
    p = subparsers.add_parser(
        "calibrate",
        help="fit a model to data from a calibration file; write parameters, report, best run",
        description="Fit a model to data (see sd_model.calibrate.config for the file layout).",
    )
    p.add_argument("file", help="calibration file (.yaml)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument(
        "--posterior",
        action="store_true",
        help="also sample the posterior (the file's posterior: section, or defaults)",
    )
    p.add_argument(
        "--bands",
        action="store_true",
        help="also write forecast bands (the file's bands: section, or defaults)",
    )
    p.add_argument("--seed", type=int, help="replace the file's seed")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Run ``sd-model calibrate``."""
    from sd_model.calibrate.outputs import run_calibration_file

    cfg = CalibrationFile.from_yaml(args.file)
    written = run_calibration_file(
        cfg,
        Path(args.output),
        posterior=args.posterior or cfg.posterior is not None,
        bands=args.bands or cfg.bands is not None,
        seed=args.seed,
        progress=not args.quiet,
    )
    for path in written:
        print(f"wrote {path}")
    return 0


def number(value: Any, where: str) -> float:
    """A finite float from a YAML value (YAML 1.1 reads ``1e-8`` as text)."""
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"{where}: expected a number, got {value!r}.") from exc
    if not math.isfinite(out):
        raise CalibrationError(f"{where}: expected a finite number, got {value!r}.")
    return out
