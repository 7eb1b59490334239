"""Sweep throughput: scenarios per second, compiled and batched, against PySD run serially.

Run from the repository root::

    /work/venv/bin/python benchmarks/bench_sweep.py            # 10,000 scenarios, 1 and 2 workers
    /work/venv/bin/python benchmarks/bench_sweep.py --n 2000 --pysd-runs 1   # quicker
    /work/venv/bin/python benchmarks/bench_sweep.py --model kazakhstan

``regions20`` is the 20-region stand-in (benchmarks/models/regions20.mdl), run for 30
years; ``kazakhstan`` is models/kazakhstan_regions.mdl (20 regions, 2022-2050), both
with their own Euler step. Each sweep is a Latin hypercube over three parameters, with
every variable kept, written into a zarr store: the whole pipeline a user runs. PySD is
timed on the same model and horizon, one scenario after another, through its own
``Model.run``. Targets (issue 5): at least 500x PySD's per-scenario throughput, and
10,000 scenarios in under two minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = {
    "regions20": {
        "path": HERE / "models" / "regions20.mdl",
        "final_time": 30.0,
        "parameters": {
            "migration rate": [0.001, 0.02],
            "savings rate": [0.1, 0.3],
            "life expectancy": [60, 80],
        },
    },
    "kazakhstan": {
        "path": HERE.parent / "models" / "kazakhstan_regions.mdl",
        "final_time": None,  # the model's own 2050
        "parameters": {
            "equalization transfer intensity": [0.0, 1.0],
            "investment rate": [0.1, 0.16],
            "internal migration multiplier": [0.5, 1.5],
        },
    },
}


def time_pysd(model: object, setup: dict, runs: int) -> float:
    """Seconds per scenario of PySD's own runtime (translation loaded once)."""
    import pysd

    runtime = pysd.load(str(model._py_file))  # type: ignore[attr-defined]
    start = time.perf_counter()
    for k in range(runs):
        params = {
            name: lo + (hi - lo) * (k + 1) / (runs + 1)
            for name, (lo, hi) in setup["parameters"].items()
        }
        kw = {"final_time": setup["final_time"]} if setup["final_time"] else {}
        runtime.run(params=params, progress=False, **kw)
    return (time.perf_counter() - start) / runs


def time_sweep(model: object, setup: dict, n: int, workers: int, store: Path) -> float:
    """Seconds for a sweep of ``n`` scenarios into ``store``."""
    from sd_model.sweeps import sweep

    shutil.rmtree(store, ignore_errors=True)
    samples = {"method": "lhs", "n": n, "seed": 2026, "parameters": setup["parameters"]}
    start = time.perf_counter()
    ds = sweep(model, samples=samples, store=store, final_time=setup["final_time"], workers=workers)
    elapsed = time.perf_counter() - start
    assert int(ds.attrs["sweep_n_failed"]) == 0 and ds.attrs["backend"] == "compiled"
    ds.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="scenarios per sweep")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--pysd-runs", type=int, default=2, help="PySD scenarios to time")
    parser.add_argument("--model", choices=sorted(MODELS), default="regions20")
    args = parser.parse_args()

    import sd_model

    warnings.simplefilter("ignore")
    setup = MODELS[args.model]
    path = Path(setup["path"])
    model = sd_model.load(path)
    model.compiled()
    grid = model.time_grid(final_time=setup["final_time"])
    print(
        f"model {path.name}: {len(model.coords['Region'])} regions, {len(model.stocks)} stocks, "
        f"{len(model.variables)} variables, {grid.final_time - grid.initial_time:g} years, "
        f"time step {grid.time_step:g} ({grid.n_steps()} Euler steps)"
    )
    print(f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"python {sys.version.split()[0]}, sd_model {sd_model.__version__}")

    pysd_s = time_pysd(model, setup, args.pysd_runs)
    print(f"PySD serial: {pysd_s:.2f} s per scenario = {1 / pysd_s:.4f} scenarios/s")

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "bench.zarr"
        time_sweep(model, setup, min(args.n, 500), 1, store)  # warm caches (compile)
        for workers in (int(w) for w in args.workers.split(",")):
            elapsed = time_sweep(model, setup, args.n, workers, store)
            rate = args.n / elapsed
            print(
                f"sweep, {workers} worker(s): {args.n} scenarios in {elapsed:.1f} s = "
                f"{rate:.0f} scenarios/s = {rate * pysd_s:,.0f}x PySD"
            )
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
