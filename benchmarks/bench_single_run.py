"""Single ``Model.run`` (default settings) against PySD's ``run()``, per model.

Both warm (the model loaded and run once before timing), CPU time
(:func:`time.process_time`), best of N, measured in the same process. Writes
``benchmarks/results/single_run.md``.

Usage::

    python benchmarks/bench_single_run.py [--repeat 5] [--out benchmarks/results/single_run.md]
"""

from __future__ import annotations

import argparse
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


def measure(path: Path, repeat: int) -> tuple[float, float, str]:
    """(PySD run seconds, sd_model run seconds, sd_model backend) for one model."""
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
    ds = m.run()
    t_sd = best_cpu(m.run, repeat)
    return t_pysd, t_sd, str(ds.attrs.get("backend", ""))


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
    ratios = []
    for p in paths:
        t_pysd, t_sd, backend = measure(p, args.repeat)
        ratio = t_pysd / t_sd
        ratios.append(ratio)
        name = p.relative_to(SAMPLES) if p.is_relative_to(SAMPLES) else p.relative_to(ROOT)
        rows.append(
            f"| {name} | {backend} | {t_pysd * 1e3:.2f} | {t_sd * 1e3:.2f} | {ratio:.2f}x |"
        )
        print(rows[-1], flush=True)
    lines = [
        "# Single run: `Model.run()` vs PySD `run()`",
        "",
        f"Warm, CPU time, best of {args.repeat}, same process. Ratio > 1: sd_model faster.",
        "",
        "| model | backend | PySD ms | sd_model ms | PySD / sd_model |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Median ratio: {statistics.median(ratios):.2f}x; minimum: {min(ratios):.2f}x.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print(lines[-2])


if __name__ == "__main__":
    main()
