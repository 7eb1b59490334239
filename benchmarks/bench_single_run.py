"""Single ``Model.run`` (default settings) against PySD's ``run()``, per model.

Both warm (the model loaded and run once before timing), CPU time
(:func:`time.process_time`), best of N, measured in the same process. Besides the
default run (whichever fixed-step tier :func:`sd_model.integrate.fixed_step_tiers`
picks: C when its library is ready, else the plain-Python tier for one scenario, else
NumPy), the same ``Model.run`` is timed with ``SD_MODEL_TIER=python`` (C skipped) and
``SD_MODEL_TIER=numpy`` (the NumPy loop only). Writes
``benchmarks/results/single_run.md``.

Usage::

    python benchmarks/bench_single_run.py [--repeat 5] [--out benchmarks/results/single_run.md]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "test-models" / "samples"

MODELS = [
    "teacup/teacup.mdl",
    "teacup/teacup.xmile",
    "teacup/teacup.stmx",
    "Lotka_Volterra/Lotka_Volterra.mdl",
    "SIR/SIR.mdl",
    "SIR/SIR.xmile",
    "SIR/SIR.stmx",
    "Roessler_Chaos/roessler_chaos.mdl",
    "simple_harmonic_oscillator/simple_harmonic_oscillator.mdl",
    "Query_file/Query_file.mdl",
    "Population/Subscripted Population Model.mdl",
]
OWN = ["models/example_regions.mdl", "models/kazakhstan_regions.mdl"]


def best_cpu(fn: Callable[[], object], repeat: int) -> float:
    """Best-of-``repeat`` CPU seconds of ``fn()``."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def measure(path: Path, repeat: int) -> tuple[float, dict[str, float], str, str]:
    """PySD run seconds, sd_model run seconds per tier setting, backend, default tier."""
    import pysd

    import sd_model

    # PySD writes its translation beside the model file: translate a copy of the folder.
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / path.parent.name
        shutil.copytree(path.parent, folder, ignore=shutil.ignore_patterns("*.py", "*.nc"))
        copy = folder / path.name
        if path.suffix.lower() == ".mdl":
            pm = pysd.read_vensim(str(copy))
        else:
            pm = pysd.read_xmile(str(copy))

        def pysd_run() -> None:
            pm.reload()
            pm.run()

        pysd_run()
        t_pysd = best_cpu(pysd_run, repeat)
    m = sd_model.load(path)
    times: dict[str, float] = {}
    backend = ""
    for setting in ("", "python", "numpy"):
        os.environ["SD_MODEL_TIER"] = setting
        try:
            ds = m.run()
            backend = str(ds.attrs.get("backend", ""))
            times[setting or "default"] = best_cpu(m.run, repeat)
        finally:
            del os.environ["SD_MODEL_TIER"]
    return t_pysd, times, backend, _default_tier(m) if backend == "compiled" else "-"


def _default_tier(model: object) -> str:
    """The tier a default run of ``model`` uses now (C once its library is built)."""
    from sd_model.integrate import integrate
    from sd_model.options import resolve_solver

    options = resolve_solver(model, None, method=None, rtol=None, atol=None, max_step=None)
    grid = model.time_grid()  # type: ignore[attr-defined]
    if options.adaptive:
        return "adaptive"
    system = model.compiled().system([{}], grid)  # type: ignore[attr-defined]
    return integrate(system, grid, options).tier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "single_run.md"))
    ap.add_argument("--own", action="store_true", help="also the models/ files")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    paths = [SAMPLES / p for p in MODELS]
    if args.own:
        paths += [ROOT / p for p in OWN]
    rows = []
    ratios: dict[str, list[float]] = {"default": [], "python": [], "numpy": []}
    for p in paths:
        t_pysd, t_sd, backend, tier = measure(p, args.repeat)
        cells = []
        for key, values in ratios.items():
            values.append(t_pysd / t_sd[key])
            cells.append(f"{t_sd[key] * 1e3:.2f} | {values[-1]:.2f}x")
        name = p.relative_to(SAMPLES) if p.is_relative_to(SAMPLES) else p.relative_to(ROOT)
        rows.append(f"| {name} | {backend} | {tier} | {t_pysd * 1e3:.2f} | {' | '.join(cells)} |")
        print(rows[-1], flush=True)
    summary = "; ".join(
        f"{key}: median {statistics.median(v):.2f}x, minimum {min(v):.2f}x"
        for key, v in ratios.items()
    )
    lines = [
        "# Single run: `Model.run()` vs PySD `run()`",
        "",
        f"Warm, CPU time, best of {args.repeat}, same process. Ratio > 1: sd_model faster. "
        "*default*: `Model.run()` as users call it (the tier it used, for the compiled "
        "backend); *python*: with `SD_MODEL_TIER=python` (the plain-Python tier, C "
        "skipped); *numpy*: with `SD_MODEL_TIER=numpy` (the NumPy loop, the path before "
        "the tiers).",
        "",
        "| model | backend | default tier | PySD ms | default ms | PySD / default "
        "| python ms | PySD / python | numpy ms | PySD / numpy |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Ratios to PySD, {summary}.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print(lines[-2])


if __name__ == "__main__":
    main()
