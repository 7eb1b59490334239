"""Forecast bands of the Kazakhstan regional model for the baseline and every policy package.

Each scenario file declares its uncertainty (``uncertainty:``: the parameter draws that
``sd-model calibrate models/kazakhstan_calibration.yaml`` writes, how many, which quantiles
and outputs), so ``sd-model run scenarios/<name>.yaml -o <name>.nc`` writes the central run
and its bands. This script does that for every policy scenario and draws the README's fan
chart (baseline: total population and GDP with the BNS data).

Run from the repository root::

    python models/kazakhstan_bands.py                 # all scenarios; the fan chart
    python models/kazakhstan_bands.py baseline green

writes ``results/bands/<scenario>.nc`` and ``docs/kazakhstan_fan.png``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCENARIOS = (
    "baseline",
    "equalization",
    "industrial_sites",
    "loans_incentives",
    "transport",
    "green",
)


def fan_chart(ds, path: Path) -> Path:
    """Total population and GDP bands of the run ``ds`` with the observed history."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sd_model.plots import plot_fan

    pop = pd.read_csv(HERE / "data" / "series_population.csv", index_col="year")
    grp = pd.read_csv(HERE / "data" / "series_grp_real.csv", index_col="year")
    regions = [c for c in pop.columns if c not in ("unit", "source")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    plot_fan(ds, "total_population_band", observed=pop[regions].sum(axis=1), ax=axes[0])
    plot_fan(ds, "gdp_band", observed=grp[regions].sum(axis=1), ax=axes[1])
    axes[0].set_title("Total population (persons)")
    axes[1].set_title("GDP (bn KZT/yr, 2022 prices)")
    fig.suptitle(
        "Kazakhstan baseline forecast (sd-model run scenarios/baseline.yaml): 5-95 % and "
        "25-75 % bands\nover the fitted parameters and the TFP-growth and birth-trend priors "
        f"({ds.attrs['bands_n_draws']} parameter draws); dots: BNS data",
        fontsize=9,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    import sd_model
    from sd_model.results import write_results

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("-o", "--output", default=str(ROOT / "results" / "bands"))
    args = parser.parse_args(argv)
    out = Path(args.output)
    for name in args.scenarios:
        start = time.perf_counter()
        ds = sd_model.Scenario.from_yaml(ROOT / "scenarios" / f"{name}.yaml").run_with_bands()
        path = write_results(ds, out / f"{name}.nc")
        print(f"wrote {path} ({time.perf_counter() - start:.1f} s)")
        for var in ("total_population", "gdp", "williamson_index", "total_emissions"):
            q = ds[f"{var}_band"].sel(time=2050)
            print(f"  {var} 2050: " + ", ".join(f"{float(v):.4g}" for v in q.values))
        if name == "baseline":
            print(f"wrote {fan_chart(ds, ROOT / 'docs' / 'kazakhstan_fan.png')}")


if __name__ == "__main__":
    main()
