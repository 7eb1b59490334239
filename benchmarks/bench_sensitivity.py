"""Sensitivity analysis throughput: runs per second, batched on the compiled backend
against the PySD backend's loop, for each SALib method.

Run from the repository root::

    .venv/bin/python benchmarks/bench_sensitivity.py              # Ishigami and regions20
    .venv/bin/python benchmarks/bench_sensitivity.py --pysd-runs 0   # skip the slow PySD loop

``ishigami`` is tests/models/ishigami.mdl (no stocks, one saved time): the cost is the
overhead per parameter set. ``regions20`` is benchmarks/models/regions20.mdl (20 regions,
30 years): the cost is integration. The PySD backend is timed on a small Sobol' sample
of the same model and reported per run; the ratio is compiled runs per second over
PySD runs per second.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "ishigami": {
        "path": ROOT / "tests" / "models" / "ishigami.mdl",
        "params": {f"x{i}": (-3.141592653589793, 3.141592653589793) for i in (1, 2, 3)},
        "outputs": "y",
        "time": {},
    },
    "regions20": {
        "path": ROOT / "benchmarks" / "models" / "regions20.mdl",
        "params": {
            "migration rate": (0.001, 0.02),
            "savings rate": (0.1, 0.3),
            "life expectancy": (60, 80),
        },
        "outputs": "population",
        "time": {"final_time": 30.0},
    },
}
SIZES = {"sobol": 1024, "morris": 256, "fast": 1024}


def main() -> None:
    import sd_model
    from sd_model.options import TimeSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=list(CASES), action="append")
    parser.add_argument("--pysd-runs", type=int, default=64, help="Sobol' n for the PySD loop")
    args = parser.parse_args()
    for name in args.case or list(CASES):
        case = CASES[name]
        model = sd_model.load(case["path"])
        time_settings = TimeSettings(**case["time"])
        sd_model.sensitivity(
            model, case["params"], outputs=case["outputs"], n=8, seed=0, time=time_settings
        )  # compile and warm up
        rates = {}
        for method, n in SIZES.items():
            start = time.perf_counter()
            si = sd_model.sensitivity(
                model,
                case["params"],
                outputs=case["outputs"],
                method=method,
                n=n,
                seed=1,
                time=time_settings,
                progress=False,
            )
            elapsed = time.perf_counter() - start
            runs = int(si.attrs["n_runs"])
            rates[method] = runs / elapsed
            print(
                f"{name:10s} {method:7s} {runs:6d} runs  {elapsed:7.2f} s  "
                f"{runs / elapsed:9.0f} runs/s"
            )
        if args.pysd_runs:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                si = sd_model.sensitivity(
                    model,
                    case["params"],
                    outputs=case["outputs"],
                    n=args.pysd_runs,
                    seed=1,
                    time=time_settings,
                    backend="pysd",
                    progress=False,
                )
            elapsed = time.perf_counter() - start
            runs = int(si.attrs["n_runs"])
            pysd_rate = runs / elapsed
            print(f"{name:10s} pysd    {runs:6d} runs  {elapsed:7.2f} s  {pysd_rate:9.1f} runs/s")
            print(f"{name:10s} batched/loop (sobol): {rates['sobol'] / pysd_rate:.0f}x")


if __name__ == "__main__":
    main()
