"""Forecast bands of the Kazakhstan regional model, for the baseline and every policy package.

The fitted parameters of ``params/forecast/params.yaml`` are drawn from their normal
approximation (the fit's estimate and covariance, written by ``sd-model calibrate``; draws
are clipped to the calibration bounds), and each scenario file runs with every draw on the
compiled backend (one batched integration per scenario) from 2022 to 2050. The bands hold
the quantiles 5, 25, 50, 75 and 95 % of the outputs below.

Run from the repository root::

    python models/kazakhstan_bands.py            # all scenarios, 300 draws; the fan chart
    python models/kazakhstan_bands.py -n 100 baseline green

writes ``results/bands/<scenario>.nc`` and ``docs/kazakhstan_fan.png`` (baseline: total
population and GDP).
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PARAMS = HERE / "params" / "forecast" / "params.yaml"
CALIBRATION = HERE / "kazakhstan_calibration.yaml"
SCENARIOS = (
    "baseline",
    "equalization",
    "industrial_sites",
    "loans_incentives",
    "transport",
    "green",
)
OUTPUTS = (
    "Total Population",
    "Population",
    "GDP",
    "GRP",
    "Employment",
    "Unemployment Rate",
    "National Unemployment Rate",
    "Emissions",
    "Total Emissions",
    "Williamson Index",
    "Theil Index",
    "Williamson Index GRP",
)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
# Priors of assumptions that are not fitted: TFP growth after 2014 (World Bank: 0.4-1.1 %/yr
# in 2015-18; design notes s.4), one value for every region, and the birth-rate trend that
# stands in for ageing (BNS CBR 20.6 per 1000 in 2022, 19.5 in 2023).
PRIORS = {"TFP growth rate": (0.01, 0.005), "birth rate trend": (-0.01, 0.005)}


def parameter_draws(n: int, seed: int) -> pd.DataFrame:
    """``n`` draws of the fitted parameters from N(estimate, covariance), clipped to bounds."""
    doc = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))
    cov = doc["fit"]["covariance"]
    names = list(cov["parameters"])
    mean = np.array([float(doc["set"][k]) for k in names])
    rng = np.random.default_rng(seed)
    x = rng.multivariate_normal(mean, np.asarray(cov["matrix"], dtype=float), size=n)
    bounds = yaml.safe_load(CALIBRATION.read_text(encoding="utf-8"))["params"]
    for j, k in enumerate(names):
        spec = bounds[k]
        low, high = spec["bounds"] if isinstance(spec, dict) else spec
        x[:, j] = np.clip(x[:, j], low, high)
    out = pd.DataFrame(x, columns=names)
    # Two assumptions the data cannot fit, drawn from their priors (independent normals).
    for name, (mean_, sd) in PRIORS.items():
        out[name] = rng.normal(mean_, sd, size=n)
    return out


def scenario_bands(name: str, draws: pd.DataFrame, seed: int = 1):
    """Quantile bands of :data:`OUTPUTS` for ``scenarios/<name>.yaml`` over ``draws``."""
    import sd_model
    from sd_model.integrate import SolverOptions
    from sd_model.options import TimeSettings

    sc = sd_model.Scenario.from_yaml(ROOT / "scenarios" / f"{name}.yaml")
    drawn = {k.split("[")[0].strip().lower() for k in draws.columns}
    levers = {k: v for k, v in sc.set.items() if k.split("[")[0].strip().lower() not in drawn}
    model = sd_model.load(sc.model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sd_model.forecast_bands(
            model,
            draws,
            quantiles=QUANTILES,
            outputs=list(OUTPUTS),
            fixed=levers,
            seed=seed,
            time=TimeSettings(initial_time=2022, final_time=2050, saveper=1),
            solver=SolverOptions("RK45", rtol=1e-6, atol=1e-6),
            backend="compiled",
        )


def fan_chart(bands, path: Path) -> Path:
    """Total population and GDP of ``bands`` with the observed history."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sd_model.plots import plot_fan

    pop = pd.read_csv(HERE / "data" / "series_population.csv", index_col="year")
    grp = pd.read_csv(HERE / "data" / "series_grp_real.csv", index_col="year")
    regions = [c for c in pop.columns if c not in ("unit", "source")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    plot_fan(bands, "total_population", observed=pop[regions].sum(axis=1), ax=axes[0])
    plot_fan(bands, "gdp", observed=grp[regions].sum(axis=1), ax=axes[1])
    axes[0].set_title("Total population (persons)")
    axes[1].set_title("GDP (bn KZT/yr, 2022 prices)")
    fig.suptitle(
        "Kazakhstan baseline forecast: 5-95 % and 25-75 % bands over the fitted parameters and "
        f"the TFP-growth and birth-trend priors ({bands.attrs['n_draws']} draws); dots: BNS data",
        fontsize=9,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("-n", type=int, default=300, help="parameter draws")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("-o", "--output", default=str(ROOT / "results" / "bands"))
    args = parser.parse_args(argv)
    draws = parameter_draws(args.n, args.seed)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.scenarios:
        bands = scenario_bands(name, draws, args.seed)
        bands.to_netcdf(out / f"{name}.nc")
        print(f"wrote {out / f'{name}.nc'}")
        for var in ("total_population", "gdp", "williamson_index", "total_emissions"):
            q = bands[var].sel(time=2050)
            print(f"  {var} 2050: " + ", ".join(f"{float(v):.4g}" for v in q.values))
        if name == "baseline":
            print(f"wrote {fan_chart(bands, ROOT / 'docs' / 'kazakhstan_fan.png')}")


if __name__ == "__main__":
    main()
