"""What ``sd-model calibrate`` writes: parameter file, reports, best run, draws, bands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sd_model._errors import import_optional
from sd_model.calibrate.config import CalibrationFile, number
from sd_model.calibrate.errors import CalibrationError

if TYPE_CHECKING:
    from sd_model.backends import BackendName
    from sd_model.calibrate.fit import SearchMethod


def run_calibration_file(
    cfg: CalibrationFile,
    out: Path,
    *,
    posterior: bool,
    bands: bool,
    seed: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """Fit as the file says and write the results into the folder ``out``.

    Returns
    -------
    list of pathlib.Path
        The files written, in order.
    """
    from sd_model.calibrate.fit import calibrate
    from sd_model.integrate import SolverOptions
    from sd_model.model import load
    from sd_model.options import TimeSettings
    from sd_model.results import write_results

    if out.exists() and not out.is_dir():
        raise CalibrationError(f"-o {out}: exists and is not a folder.")
    out.mkdir(parents=True, exist_ok=True)
    model = load(cfg.model)
    where = str(cfg.source)
    solver_kw = dict(cfg.solver)
    backend = str(solver_kw.pop("backend", "auto"))
    for key in ("rtol", "atol", "max_step"):
        if key in solver_kw:
            solver_kw[key] = number(solver_kw[key], f"{where}: solver.{key}")
    solver = SolverOptions(method=model.resolve_method(solver_kw.pop("method", None)), **solver_kw)
    time = TimeSettings(**cfg.time) if cfg.time else None
    seed = cfg.seed if seed is None else seed
    common: dict[str, Any] = dict(
        error=cfg.error,
        weights=cfg.weights or None,
        priors=cfg.priors or None,
        fixed=cfg.fixed or None,
        time=time,
        solver=solver,
        backend=backend,
    )
    options = dict(cfg.options)
    if "tol" in options:
        options["tol"] = number(options["tol"], f"{where}: options.tol")
    fit = calibrate(
        model,
        cfg.data,
        cfg.params,
        method=cast("SearchMethod", cfg.method),
        seed=seed,
        progress=progress,
        **options,
        **common,
    )
    written = [fit.to_yaml(out / "params.yaml")]
    level = float(cfg.confidence.get("level", 0.95))
    method = str(cfg.confidence.get("method", "profile"))
    table = fit.parameters_table(None)
    ci = fit.confidence(level, method)  # type: ignore[arg-type]
    table["lower"], table["upper"] = ci["lower"].to_numpy(), ci["upper"].to_numpy()
    table.to_csv(out / "parameters.csv", index=False)
    fit.report().to_csv(out / "fit_report.csv", index=False)
    (out / "fit_report.md").write_text(
        fit.summary(None) + _interval_note(table, level, method), encoding="utf-8"
    )
    written += [out / "parameters.csv", out / "fit_report.csv", out / "fit_report.md"]
    written.append(write_results(fit.dataset, out / "best_run.nc"))
    written.append(_fit_figure(fit, out / "fit.png"))
    draws = None
    if posterior:
        draws = _posterior(cfg, model, fit, seed, progress, common)
        draws.to_netcdf(out / "posterior.nc")
        written.append(out / "posterior.nc")
    parameter_draws = _parameter_draws(cfg, fit, draws, seed)
    if parameter_draws is not None:
        written.append(write_draws(*parameter_draws, out))
    if bands:
        written += _bands(cfg, model, fit, draws, seed, progress, solver, backend, out)
    return written


def _parameter_draws(
    cfg: CalibrationFile, fit: Any, posterior: Any, seed: int | None
) -> tuple[Any, dict[str, Any]] | None:
    """Draws of the parameters for scenario bands, and what they are.

    The posterior sample if there is one, else the fit's normal approximation; plus the
    ``draws.unfitted`` distributions. ``None`` (with a warning) when the fit's covariance
    is not finite and there is no posterior: a parameter the data do not inform has no
    normal approximation.
    """
    import warnings

    import numpy as np

    from sd_model._errors import SDModelWarning
    from sd_model.calibrate.bands import _laplace_draws, _table

    spec = cfg.draws or {"n": 1000, "unfitted": {}, "specs": {}}
    if spec["n"] == 0:
        return None
    # A generator of its own (seeded from the fit's seed) so that writing the draws does
    # not shift the random stream of anything else.
    rng = np.random.default_rng(None if seed is None else [seed, 1])
    if posterior is not None:
        table, _ = _table(posterior)
        kind = "posterior sample"
        if len(table) > spec["n"]:
            table = table.iloc[np.sort(rng.choice(len(table), size=spec["n"], replace=False))]
        table = table.reset_index(drop=True)
    else:
        try:
            table = _laplace_draws(fit, spec["n"], rng)
        except CalibrationError as exc:
            warnings.warn(f"{cfg.source}: no draws written: {exc}", SDModelWarning, stacklevel=3)
            return None
        kind = "normal approximation of the fit (estimate and covariance, truncated to bounds)"
    fitted = [str(c) for c in table.columns]
    for name, dist in spec["unfitted"].items():
        table[name] = dist.rvs(size=len(table), random_state=rng)
    model = fit._payoff.evaluator.model
    about = {
        "file": "draws.csv",
        "kind": kind,
        "n": len(table),
        "fitted": fitted,
        "unfitted": spec["specs"],
        "model_sha256": model.sha256,
        "seed": seed,
    }
    return table, about


def write_draws(table: Any, about: dict[str, Any], out: Path) -> Path:
    """Write the draws as ``out/draws.csv`` (one row per draw, one column per parameter,
    the layout ``sd-model explore --draws`` reads too) and record what they are in the
    ``draws:`` section of ``out/params.yaml``."""
    import yaml

    from sd_model.results import write_atomic

    path = out / about["file"]
    csv = table.rename_axis("draw")
    write_atomic(path, lambda tmp: csv.to_csv(tmp, float_format="%.17g"))
    # Appended as text: the parameter file keeps its own layout and comments.
    params = out / "params.yaml"
    text = params.read_text(encoding="utf-8").rstrip("\n") + "\n"
    if "draws" in (yaml.safe_load(text) or {}):
        raise CalibrationError(f"{params}: already has a 'draws:' section.")
    params.write_text(text + yaml.safe_dump({"draws": about}, sort_keys=False), encoding="utf-8")
    return path


def _interval_note(table: Any, level: float, method: str) -> str:
    from sd_model.calibrate.fit import _markdown

    cols = ["parameter", "estimate", "lower", "upper"]
    return f"\n## {level:.0%} intervals ({method})\n\n{_markdown(table[cols])}\n"


def _posterior(
    cfg: CalibrationFile,
    model: Any,
    fit: Any,
    seed: int | None,
    progress: bool,
    common: dict[str, Any],
) -> Any:
    from sd_model.calibrate.posterior import sample_posterior

    spec = dict(cfg.posterior or {})
    kw: dict[str, Any] = {k: spec[k] for k in ("draws", "tune", "walkers") if k in spec}
    for extra in ("kind", "block_length"):
        if extra in spec:
            kw[extra] = spec[extra]
    return sample_posterior(
        model,
        cfg.data,
        cfg.params,
        method=spec.get("method", "emcee"),
        seed=seed,
        start=fit,
        progress=progress,
        **kw,
        **common,
    )


def _bands(
    cfg: CalibrationFile,
    model: Any,
    fit: Any,
    draws: Any,
    seed: int | None,
    progress: bool,
    solver: Any,
    backend: str,
    out: Path,
) -> list[Path]:
    import pandas as pd

    from sd_model.calibrate.bands import forecast_bands
    from sd_model.options import TimeSettings
    from sd_model.plots import plot_fan

    spec = dict(cfg.bands or {})
    time = dict(cfg.time)
    if "final" in spec:
        time["final_time"] = number(spec["final"], f"{cfg.source}: bands.final")
    outputs = spec.get("outputs") or [s.variable.name for s in fit.series]
    result = forecast_bands(
        model,
        draws if draws is not None else fit,
        quantiles=spec.get("quantiles", (0.05, 0.25, 0.5, 0.75, 0.95)),
        outputs=outputs,
        n=spec.get("n"),
        seed=seed,
        time=TimeSettings(**time) if time else None,
        solver=solver,
        backend=cast("BackendName", backend),
        progress=progress,
    )
    result.to_netcdf(out / "bands.nc")
    first = fit.series[0]
    observed = pd.Series(first.values, index=first.times)

    def draw(fig: Any) -> None:
        ax = fig.subplots()
        plot_fan(
            result,
            first.variable.py_name,
            element=dict(zip(first.variable.dims, first.elements, strict=True)) or None,
            observed=observed,
            ax=ax,
        )

    return [out / "bands.nc", _figure(draw, out / "fan.png")]


#: Panels up to which the fit figure uses matplotlib's constrained layout; it takes seconds
#: per dozen panels, and a fit of 120 series spent 20 s of a 2.5-minute calibration there.
CONSTRAINED_PANELS = 24


def _fit_figure(fit: Any, path: Path) -> Path:
    """The fit against the data, one panel per series, in a figure sized for the panels."""
    Figure = import_optional("matplotlib.figure", "plot", "Calibration figures").Figure

    n = len(fit.series)
    ncols = max(1, min(3, n))
    nrows = -(-n // ncols)
    height = 2.6 * nrows + 0.8
    many = n > CONSTRAINED_PANELS
    fig = Figure(figsize=(3.6 * ncols + 1.0, height), layout=None if many else "constrained")
    fit.plot(fig=fig)
    if many:
        # Fixed margins in inches (the figure is tall), and room for each panel's title.
        fig.subplots_adjust(
            left=0.08,
            right=0.98,
            wspace=0.3,
            hspace=0.55,
            top=1 - 0.5 / height,
            bottom=0.5 / height,
        )
    fig.savefig(path, dpi=80 if many else 110)
    return path


def _figure(draw: Any, path: Path) -> Path:
    Figure = import_optional("matplotlib.figure", "plot", "Calibration figures").Figure

    fig = Figure(figsize=(8, 5), layout="constrained")
    draw(fig)
    fig.savefig(path, dpi=110)
    return path
