"""Calibration and sampling speed on the batched backend, against PySD one run at a time.

Run from the repository root (takes a few minutes on the 2-core development machine):

    python benchmarks/bench_calibrate.py            # all
    python benchmarks/bench_calibrate.py --quick    # smaller budgets

1. A 6-parameter fit of an oscillating predator-prey model (tests/models/predator_prey.mdl)
   from no starting guess: wall time of sd_model.calibrate (target: under 30 s).
2. The same optimiser (differential evolution, same seed, same generations, no polish)
   evaluating its populations as one batch on the compiled backend, and driving PySD runs
   one at a time (backend="pysd"): wall time of both, per evaluation, and the ratio.
3. Ensemble MCMC (emcee, vectorized walkers) on the SIR model of the boarding-school
   outbreak: model evaluations per second, and the time of 50,000 evaluations (target:
   under 2 minutes).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import sd_model
from sd_model import SDModelWarning

ROOT = Path(__file__).resolve().parents[1]
PP_TRUTH = {
    "prey birth rate": 1.1,
    "predation rate": 0.12,
    "predator efficiency": 0.06,
    "predator death rate": 1.3,
    "initial prey": 14.0,
    "initial predators": 4.0,
}
PP_BOUNDS = {
    "prey birth rate": (0.2, 3),
    "predation rate": (0.01, 0.5),
    "predator efficiency": (0.01, 0.3),
    "predator death rate": (0.2, 3),
    "initial prey": (1, 40),
    "initial predators": (1, 20),
}


def _predator_prey() -> tuple[sd_model.Model, dict[str, pd.Series]]:
    model = sd_model.load(ROOT / "tests" / "models" / "predator_prey.mdl")
    run = model.run(PP_TRUTH)
    rng = np.random.default_rng(1)
    data = {
        "Prey": run["prey"].to_series() * np.exp(rng.normal(0, 0.05, run.sizes["time"])),
        "Predators": run["predators"].to_series() * np.exp(rng.normal(0, 0.05, run.sizes["time"])),
    }
    return model, data


def bench_fit() -> None:
    model, data = _predator_prey()
    model.run()  # compile outside the timing
    started = time.perf_counter()
    fit = sd_model.calibrate(model, data, PP_BOUNDS, error="lognormal", seed=1)
    seconds = time.perf_counter() - started
    worst = max(abs(fit.params[k] / v - 1) for k, v in PP_TRUTH.items())
    print(
        f"6-parameter predator-prey fit: {seconds:.1f} s, {fit.n_evaluations} runs "
        f"({fit.n_failed} failed), {fit.n_evaluations / seconds:.0f} runs/s; "
        f"largest relative error vs truth {worst:.3f} (5 % noise)"
    )


def bench_versus_pysd(generations: int) -> None:
    model, data = _predator_prey()
    times = {}
    evals = {}
    for backend in ("compiled", "pysd"):
        started = time.perf_counter()
        fit = sd_model.calibrate(
            model,
            data,
            PP_BOUNDS,
            error="lognormal",
            seed=1,
            maxiter=generations,
            polish=False,
            backend=backend,
        )
        times[backend] = time.perf_counter() - started
        evals[backend] = fit.n_evaluations
        print(
            f"  {backend:8s}: {times[backend]:7.2f} s for {fit.n_evaluations} runs "
            f"({1000 * times[backend] / fit.n_evaluations:.2f} ms/run), payoff {fit.payoff:.4f}"
        )
    print(
        f"differential evolution, {generations} generations, same seed: compiled batches are "
        f"{times['pysd'] / times['compiled']:.0f}x faster than PySD one run at a time"
    )


def bench_mcmc(evaluations: int) -> None:
    model = sd_model.load(ROOT / "models" / "sir_boarding_school.mdl")
    in_bed = pd.read_csv(ROOT / "models" / "data" / "boarding_school_influenza.csv")
    data = {"Infected": in_bed.set_index("day")["in_bed"]}
    bounds = {"contact rate": (0.5, 5.0), "recovery rate": (0.05, 2.0)}
    fit = sd_model.calibrate(model, data, bounds, error="negative_binomial", seed=1)
    for walkers in (64, 128):
        steps = evaluations // walkers
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SDModelWarning)
            post = sd_model.sample_posterior(
                model,
                data,
                bounds,
                error="negative_binomial",
                start=fit,
                walkers=walkers,
                tune=steps // 3,
                draws=steps - steps // 3,
                seed=1,
            )
        seconds = time.perf_counter() - started
        n = post.attrs["n_evaluations"]
        print(
            f"MCMC (SIR, Euler dt 1/32 day, {walkers} walkers): {n} evaluations in "
            f"{seconds:.1f} s = {n / seconds:.0f} evaluations/s; R-hat "
            f"{max(post[v].attrs['rhat'] for v in post.data_vars):.3f}, min ESS "
            f"{min(post[v].attrs['ess'] for v in post.data_vars):.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller budgets")
    args = parser.parse_args()
    warnings.simplefilter("ignore", SDModelWarning)
    bench_fit()
    bench_versus_pysd(2 if args.quick else 4)
    bench_mcmc(10_000 if args.quick else 50_000)


if __name__ == "__main__":
    main()
