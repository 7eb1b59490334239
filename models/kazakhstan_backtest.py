"""Rolling-origin backtest of the Kazakhstan regional model against naive forecasts.

For each origin year the model is fitted as ``kazakhstan_calibration.yaml`` fits the forecast
(same parameters, bounds, priors and error models) on the years up to the origin, then
re-based at the origin (every initial value is that year's data, as the forecast starts from
the latest year) and run three years ahead. Its forecasts are scored with MAPE and MASE
(Hyndman & Koehler 2006) next to three naive forecasts:

- ``no change``: the origin's value;
- ``own trend``: each region's own trend over the three years to the origin (linear for
  population, employment and the unemployment rate; compound growth for GRP and GDP);
- ``national trend`` (GRP only): the national GDP's three-year compound growth, the same in
  every region.

Growth of real GRP (regional) and GDP (national) is scored on the level it implies,
GRP(origin + h) = GRP(origin) x cumulative growth: the error in percent of the level is the
error of the cumulative growth. MASE divides the mean absolute error by the mean absolute
one-year change of the series up to the origin.

Run from the repository root::

    python models/kazakhstan_backtest.py --refit   # fit every origin (minutes), write params
    python models/kazakhstan_backtest.py           # forecasts from the stored fits; README table

The fits are stored in ``models/params/backtest/origin_<year>.yaml``;
``tests/test_kazakhstan_backtest.py`` recomputes the table from them and the current model and
compares it with models/README.md.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import yaml

if TYPE_CHECKING:
    from sd_model.backends import BackendName
    from sd_model.calibrate.config import CalibrationFile
    from sd_model.integrate import SolverOptions

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
CALIBRATION = HERE / "kazakhstan_calibration.yaml"
FITS = HERE / "params" / "backtest"
README = HERE / "README.md"
ORIGINS = (2014, 2015, 2016, 2017, 2018, 2019)
HORIZON = 3
TRAINING_YEARS = 6  # as the forecast fit: 2015-2021 (six years of change)
TREND_YEARS = 3
# series: (model variable, data file, kind); kind "growth" scores cumulative growth.
SERIES = {
    "population": ("population", "series_population.csv", "level"),
    "employment": ("employment", "series_employment.csv", "level"),
    "unemployment rate": ("unemployment_rate", "series_unemployment_rate.csv", "level"),
    "real GRP growth": ("grp", "series_grp_real.csv", "growth"),
    "national real GDP growth": ("gdp", "series_grp_real.csv", "growth"),
}
BENCHMARKS = ("no change", "own trend", "national trend")
# Candidate spans of the migration trend (years of population change before the base year)
# and the census re-basing no span may cross (the model's `census rebasing year`).
MIGRATION_WINDOWS = (1, 2, 3)
CENSUS_YEAR = 2022
MARKERS = ("<!-- BEGIN BACKTEST -->", "<!-- END BACKTEST -->")


def observed(name: str) -> pd.DataFrame:
    """The observed series of ``name`` (year x region; one column ``Kazakhstan`` for GDP)."""
    _, file, _ = SERIES[name]
    df = pd.read_csv(DATA / file, index_col="year").drop(columns=["unit", "source"])
    if name == "national real GDP growth":
        return df.sum(axis=1, min_count=len(df.columns)).to_frame("Kazakhstan")
    return df


def forecast_solver(cfg: CalibrationFile) -> tuple[float | None, SolverOptions, BackendName]:
    """The time step, solver and backend of the calibration file ``cfg`` (``time:`` and
    ``solver:``): the backtest fits and forecasts with the method the forecast is fitted and
    run with."""
    from sd_model.integrate import SolverOptions

    solver = dict(cfg.solver)
    backend: BackendName = solver.pop("backend", "auto")
    options = SolverOptions(solver.pop("method"), **{k: float(v) for k, v in solver.items()})
    return cfg.time.get("time_step"), options, backend


def training_window(origin: int) -> tuple[int, int]:
    """First and last year of the fit for ``origin`` (the data start in 2010)."""
    return max(2010, origin - TRAINING_YEARS), origin


def fit_origin(origin: int, *, seed: int = 1, progress: bool = False) -> Path:
    """Fit the forecast's parameters on the years up to ``origin``; write the parameter file."""
    import sd_model
    from sd_model.calibrate.config import CalibrationFile
    from sd_model.options import TimeSettings

    first, last = training_window(origin)
    # The forecast's calibration file with the training window instead of its own.
    doc = yaml.safe_load(CALIBRATION.read_text(encoding="utf-8"))
    doc["model"] = str(HERE / doc["model"])
    # The forecast's window follows the data (window:, paths relative to the file); the
    # backtest sets its own window, below and in calibrate(time=...).
    doc.pop("window", None)
    for item in doc["data"]:
        item["file"] = str(HERE / item["file"])
        item["times"] = [first, last]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "calibration.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        cfg = CalibrationFile.from_yaml(path)
    model = sd_model.load(cfg.model)
    time_step, solver, backend = forecast_solver(cfg)
    fit = sd_model.calibrate(
        model,
        cfg.data,
        cfg.params,
        error=cfg.error,
        priors=cfg.priors or None,
        # One growth regime over the window (as the forecast fit, which starts after the
        # 2014 break): the fitted rates then act over the whole window.
        fixed={**cfg.fixed, "growth regime break year": first},
        method=cfg.method,  # type: ignore[arg-type]
        seed=seed,
        time=TimeSettings(initial_time=first, final_time=last, time_step=time_step),
        solver=solver,
        backend=backend,
        progress=progress,
    )
    FITS.mkdir(parents=True, exist_ok=True)
    return fit.to_yaml(FITS / f"origin_{origin}.yaml")


def model_forecasts(origins=ORIGINS) -> pd.DataFrame:
    """The model's forecasts from each origin with the stored fits (tidy table)."""
    import sd_model
    from sd_model.calibrate.config import CalibrationFile
    from sd_model.options import TimeSettings

    model = sd_model.load(HERE / "kazakhstan_regions.mdl")
    time_step, solver, _ = forecast_solver(CalibrationFile.from_yaml(CALIBRATION))
    rows = []
    for origin in origins:
        params = yaml.safe_load((FITS / f"origin_{origin}.yaml").read_text(encoding="utf-8"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = model.run(
                params["set"],
                time=TimeSettings(
                    initial_time=origin, final_time=origin + HORIZON, time_step=time_step
                ),
                solver=solver,
                backend="compiled",
            )
        for name, (var, _, _) in SERIES.items():
            da = ds[var]
            for h in range(1, HORIZON + 1):
                values = np.atleast_1d(da.sel(time=origin + h).values)
                regions = list(da["Region"].values) if "Region" in da.dims else ["Kazakhstan"]
                for region, value in zip(regions, values, strict=True):
                    rows.append((origin, name, region, h, "model", float(value)))
    return pd.DataFrame(rows, columns=["origin", "series", "region", "step", "method", "forecast"])


def _trend(hist: pd.Series, origin: int, h: int, kind: str) -> float:
    """Extrapolate the trend of the last ``TREND_YEARS`` years of ``hist`` to origin + h."""
    past = hist.loc[origin - TREND_YEARS : origin].dropna()
    if origin not in past.index or len(past) < 2:
        return np.nan
    t0, y0 = past.index[0], past.iloc[0]
    span, last = origin - t0, past.loc[origin]
    if kind == "growth":
        return float(last * (last / y0) ** (h / span))
    return float(last + (last - y0) / span * h)


def inner_window_choice(
    last_year: int,
    windows: tuple[int, ...] = MIGRATION_WINDOWS,
    population: pd.DataFrame | None = None,
) -> tuple[int, dict[int, float]]:
    """The span of the population-growth trend that forecast best on the data to ``last_year``.

    An inner rolling-origin backtest that sees no data after ``last_year``: from every inner
    origin with enough years before it for the longest window, each region's population is
    extrapolated at its growth rate over the last ``w`` years (the compound form of the model's
    migration trend plus natural increase) to every horizon up to ``HORIZON`` that is not after
    ``last_year``. No window or target crosses the census re-basing. The window with the
    lowest MAPE, pooled over regions, inner origins and horizons, wins (the shorter on a tie).

    ``population`` (year x region) replaces the observed series. Returns the chosen window and
    every window's MAPE in percent (NaN: no inner forecast).
    """
    pop = (observed("population") if population is None else population).loc[:last_year]
    first, longest = int(pop.index.min()), max(windows)
    errors: dict[int, list[float]] = {w: [] for w in windows}
    for origin in range(first + longest, last_year):
        for h in range(1, HORIZON + 1):
            target = origin + h
            if target > last_year or origin - longest < CENSUS_YEAR <= target:
                continue
            actual = pop.loc[target]
            for w in windows:
                forecast = pop.loc[origin] * (pop.loc[origin] / pop.loc[origin - w]) ** (h / w)
                errors[w].extend((100 * (forecast - actual).abs() / actual).tolist())
    mape = {w: float(np.mean(e)) if e else float("nan") for w, e in errors.items()}
    scored = [w for w in windows if np.isfinite(mape[w])]
    if not scored:
        raise ValueError(f"no inner forecast can be scored on the population data to {last_year}")
    return min(scored, key=lambda w: (mape[w], w)), mape


def benchmark_forecasts(origins=ORIGINS) -> pd.DataFrame:
    """The naive forecasts (tidy table, as :func:`model_forecasts`)."""
    rows = []
    gdp = observed("national real GDP growth")["Kazakhstan"]
    for name, (_, _, kind) in SERIES.items():
        obs = observed(name)
        for origin in origins:
            for region in obs.columns:
                hist = obs[region]
                last = hist.get(origin, np.nan)
                for h in range(1, HORIZON + 1):
                    rows.append((origin, name, region, h, "no change", float(last)))
                    rows.append(
                        (origin, name, region, h, "own trend", _trend(hist, origin, h, kind))
                    )
                    if name == "real GRP growth":
                        factor = _trend(gdp, origin, h, kind) / gdp.loc[origin]
                        rows.append((origin, name, region, h, "national trend", last * factor))
    return pd.DataFrame(rows, columns=["origin", "series", "region", "step", "method", "forecast"])


def scores(forecasts: pd.DataFrame) -> pd.DataFrame:
    """MAPE (%) and MASE per series, method and step, averaged over regions and origins."""
    out = []
    for (name, origin, region), g in forecasts.groupby(["series", "origin", "region"]):
        hist = observed(str(name))[region]
        train = hist.loc[:origin].dropna()
        scale = float(np.mean(np.abs(np.diff(train.to_numpy())) / np.diff(train.index.to_numpy())))
        for _, row in g.iterrows():
            actual = hist.get(origin + row["step"], np.nan)
            if not np.isfinite(actual) or not np.isfinite(row["forecast"]):
                continue
            err = abs(actual - row["forecast"])
            out.append(
                (
                    name,
                    origin,
                    region,
                    row["method"],
                    row["step"],
                    100 * err / abs(actual),
                    err / scale,
                )
            )
    df = pd.DataFrame(out, columns=["series", "origin", "region", "method", "step", "ape", "ase"])
    # Score every method on the same forecasts: where a benchmark has none (no data at the
    # origin, e.g. employment 2015), the model is not scored either.
    keys = ["series", "origin", "region", "step"]
    df = df[
        df.groupby(keys)["method"].transform("size")
        == df.groupby("series")["method"].transform("nunique")
    ]
    table = df.groupby(["series", "method", "step"]).agg(
        n=("ape", "size"), mape_pct=("ape", "mean"), mase=("ase", "mean")
    )
    return table.reset_index()


def backtest_table(origins=ORIGINS) -> pd.DataFrame:
    """Scores of the model and the naive forecasts, from the stored fits."""
    return scores(pd.concat([model_forecasts(origins), benchmark_forecasts(origins)]))


def window_choices(origins=ORIGINS) -> dict[int, tuple[int, dict[int, float]]]:
    """:func:`inner_window_choice` at every origin."""
    return {origin: inner_window_choice(origin) for origin in origins}


def markdown(table: pd.DataFrame, choices: dict[int, tuple[int, dict[int, float]]]) -> str:
    """The README table (one row per series and method, MAPE and MASE per horizon) and the
    migration windows the inner backtests chose."""
    lines = [
        f"Origins {ORIGINS[0]}-{ORIGINS[-1]}, horizons 1-{HORIZON} years; mean over regions "
        "and origins (n = forecasts scored per horizon). Model: fitted on the "
        f"{TRAINING_YEARS} years to each origin, re-based at the origin. Generated by "
        "`python models/kazakhstan_backtest.py`; `tests/test_kazakhstan_backtest.py` "
        "recomputes it.",
        "",
        "| series | method | n | MAPE h=1 | MAPE h=2 | MAPE h=3 | MASE h=1 | MASE h=2 | MASE h=3 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    order = {m: i for i, m in enumerate(("model", *BENCHMARKS))}
    for name in SERIES:
        sub = table[table.series == name]
        for method in sorted(sub.method.unique(), key=order.__getitem__):
            r = sub[sub.method == method].set_index("step")
            mape = " | ".join(f"{r.loc[h, 'mape_pct']:.2f}" for h in range(1, HORIZON + 1))
            mase = " | ".join(f"{r.loc[h, 'mase']:.2f}" for h in range(1, HORIZON + 1))
            n = "/".join(str(int(r.loc[h, "n"])) for h in range(1, HORIZON + 1))
            lines.append(f"| {name} | {method} | {n} | {mape} | {mase} |")
    lines += [
        "",
        "Migration trend window chosen by the inner backtest on the population data to each "
        "origin (`inner_window_choice`; MAPE % of the windows of "
        + "/".join(str(w) for w in MIGRATION_WINDOWS)
        + " years):",
        "",
        "| origin | chosen | inner MAPE |",
        "|---|---|---|",
    ]
    for origin, (chosen, inner) in choices.items():
        scores = " / ".join(f"{inner[w]:.3f}" for w in MIGRATION_WINDOWS)
        lines.append(f"| {origin} | {chosen} | {scores} |")
    return "\n".join(lines) + "\n"


def readme_block(text: str) -> str:
    """The text between the backtest markers of ``text``."""
    start, end = (text.index(m) for m in MARKERS)
    return text[start + len(MARKERS[0]) : end].strip("\n") + "\n"


def update_readme(body: str) -> None:
    text = README.read_text(encoding="utf-8")
    start, end = (text.index(m) for m in MARKERS)
    README.write_text(text[: start + len(MARKERS[0])] + "\n" + body + text[end:], encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--refit", action="store_true", help="fit every origin first")
    args = parser.parse_args()
    if args.refit:
        for origin in ORIGINS:
            print(f"wrote {fit_origin(origin)}")
    body = markdown(backtest_table(), window_choices())
    update_readme(body)
    print(body)


if __name__ == "__main__":
    main()
