"""Benchmark the C tier: first compile and warm runs, as ratios to PySD's ``run()``.

Run from the repository root::

    .venv/bin/python benchmarks/bench_fast_tier.py            # the models below
    .venv/bin/python benchmarks/bench_fast_tier.py --quick    # teacup and world3_like only

Models: the generated stand-ins ``world3_like`` (300 scalar variables) and
``covid_like`` (250 variables, a macro, subscripts) of ``benchmarks/models/generate.py``,
the 20-region benchmark model ``benchmarks/models/regions20.mdl``, the Kazakhstan model
``models/kazakhstan_regions.mdl`` and SDXorg samples from ``../shared/test-models``
(skipped when absent).

Each model is measured in a process of its own with an empty ``SD_MODEL_CACHE``, so that
the first compile is a first one (generation, the C compiler, loading), and every figure
is compared with PySD's ``run()`` in that same process (the model's folder copied, the
best of up to 3 runs):

* first compile: ``CompiledSystem.run_c("euler")`` with no library anywhere, split into
  generating the C source and the C compiler's own time (wall clock, and the CPU time
  the compiler used: on a shared machine the wall clock is several times the CPU time);
* warm run: the best ``run_c("euler")`` of repeated calls (a new system each, binding
  excluded), and ``Model.run()`` on the compiled backend with the library cached (the
  C tier chosen by ``integrate``; metadata, overrides and Dataset assembly included);
* the C function alone (``sd_run``, without marshalling its arguments), in ns per
  time-dependent cell and step;
* a batch of 100 scenarios (three constants scaled in [0.9, 1.1]) in one ``run_c``,
  against the NumPy path on the same batch (the best of up to 3 each).

When Node.js and ``benchmarks/sde`` are installed (see ``benchmarks/README.md``), the
20-region model is also run by SDEverywhere's generated JavaScript (best of 50 runs).
The table goes to ``benchmarks/results/fast_tier.md`` and to standard output.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
SAMPLES = ROOT.parent / "shared" / "test-models" / "samples"
KAZAKHSTAN = ROOT / "models" / "kazakhstan_regions.mdl"
REGIONS20 = HERE / "models" / "regions20.mdl"
RESULTS = HERE / "results" / "fast_tier.md"
SAMPLE_FILES = (
    "teacup/teacup.mdl",
    "SIR/SIR.mdl",
    "Lotka_Volterra/Lotka_Volterra.mdl",
    "Roessler_Chaos/roessler_chaos.mdl",
    "Population/Subscripted Population Model.mdl",
)
BATCH = 100

sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "models"))
from bench_corpus import Timeout, best_of, copy_for_pysd, time_limit  # noqa: E402
from generate import write_corpus  # noqa: E402


def _pysd_time(path: pathlib.Path, work: pathlib.Path, limit: float) -> tuple[float | None, str]:
    """PySD's ``run()`` on a copy of the model's folder (best of up to 3), or why not."""
    import pysd

    copy = copy_for_pysd(path, work)
    reader = pysd.read_vensim if path.suffix == ".mdl" else pysd.read_xmile
    try:
        with time_limit(2 * limit):
            pm = reader(str(copy))
        with time_limit(limit):
            t0 = time.perf_counter()
            pm.run()
            first = time.perf_counter() - t0
        return best_of(pm.run, budget=min(limit, 6.0), max_runs=3, first=first), ""
    except Timeout:
        return None, f"PySD took over {limit:g} s"
    except Exception as exc:  # PySD cannot run every model
        return None, f"PySD: {type(exc).__name__}: {' '.join(str(exc).split())[:120]}"


def _best_batch(run: Any, cm: Any, overrides: list[dict[str, float]], grid: Any) -> float:
    """Best time of ``run(system)`` over up to 3 fresh systems (binding not timed)."""
    times: list[float] = []
    while len(times) < 3 and sum(times) < 10.0:
        system = cm.system(overrides, grid)
        t0 = time.perf_counter()
        run(system)
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(path: pathlib.Path, pysd_limit: float) -> dict[str, Any]:
    """Every measurement of one model, in this process (see the module docstring)."""
    import numpy as np

    warnings.simplefilter("ignore")
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-fast-"))
    os.environ["SD_MODEL_CACHE"] = str(work / "cache")
    os.environ["SD_MODEL_TIER"] = "c"  # compile at the first run, whatever its length
    import sd_model
    from sd_model.compiler import _cbuild
    from sd_model.integrate import SolverOptions, integrate

    row: dict[str, Any] = {"model": path.stem}
    try:
        model = sd_model.load(path)
        cm = model.compiled()
        grid = model.time_grid()
        system = cm.system([{}], grid)
        row["steps"] = grid.n_steps()
        row["dynamic_cells"] = sum(
            int(np.prod(cm._program.elements[i].shape)) for i in system.code.dynamic
        )
        row["variables"] = len([v for v in cm.variables if v.sd_kind != "lookup"]) - 4
        t0 = time.perf_counter()
        src = _cbuild.c_source(cm._program, system.code.dynamic, system.code.obs_names)
        row["generate_s"] = time.perf_counter() - t0
        if isinstance(src, _cbuild.CUnsupported):
            row["skip"] = f"not covered by the C tier: {src}"
            return row
        row["source_kb"] = len(src.src) / 1024
        calls: list[float] = []
        builds: list[float] = []
        real_call, real_build = _cbuild.call, _cbuild._build

        def timed_call(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            out = real_call(*a, **k)
            calls.append(time.perf_counter() - t)
            return out

        def timed_build(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
            out = real_build(*a, **k)
            builds.append(time.perf_counter() - t)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            row["cc_cpu_s"] = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
            return out

        _cbuild.call, _cbuild._build = timed_call, timed_build  # type: ignore[assignment]
        _cbuild._SOURCES.clear()  # the first run generates the source again
        t0 = time.perf_counter()
        res = system.run_c("euler")
        row["first_s"] = time.perf_counter() - t0
        if res is None:
            row["skip"] = f"C tier: {system.c_note}"
            return row
        row["cc_s"] = builds[0] if builds else None

        # the C function itself, without the marshalling of its arguments
        key = _cbuild.library_key(src, _cbuild.find_compiler())
        raw_fn = _cbuild._LIBS[key]
        loops: list[float] = []

        def timed_fn(*a: Any) -> Any:
            t = time.perf_counter()
            out = raw_fn(*a)
            loops.append(time.perf_counter() - t)
            return out

        _cbuild._LIBS[key] = timed_fn

        def warm() -> None:
            s = cm.system([{}], grid)
            t = time.perf_counter()
            s.run_c("euler")
            warm_times.append(time.perf_counter() - t)

        warm_times: list[float] = []
        calls.clear()
        for _ in range(20):
            warm()
        row["warm_s"] = min(warm_times)
        row["c_loop_s"] = min(loops)
        row["call_s"] = min(calls)
        row["ns_per_cell_step"] = min(loops) / (row["steps"] * row["dynamic_cells"]) * 1e9
        # Model.run with the library cached: integrate's tier rule picks C (the first
        # call also builds the model's output tables once; it is not timed)
        os.environ["SD_MODEL_TIER"] = "auto"
        import sd_model.backends as backends

        tiers: list[str] = []
        real_integrate = backends.integrate

        def spy(*a: Any, **k: Any) -> Any:
            out = real_integrate(*a, **k)
            tiers.append(out.tier)
            return out

        backends.integrate = spy  # type: ignore[assignment]
        model.run()
        t0 = time.perf_counter()
        model.run()
        row["model_run_s"] = best_of(
            model.run, budget=3.0, max_runs=10, first=time.perf_counter() - t0
        )
        row["model_run_tier"] = tiers[-1]
        # equality with the NumPy path (the reference)
        os.environ["SD_MODEL_TIER"] = "numpy"
        ref = integrate(cm.system([{}], grid), grid, SolverOptions(method="euler"))
        scale = np.maximum(np.max(np.abs(ref.states), axis=0), 1e-300)
        row["max_rel_diff"] = float(np.max(np.abs(res.states - ref.states) / scale))
        # a batch of BATCH scenarios, C and NumPy
        names = [
            v.py_name
            for v in cm.variables
            if v.sd_kind == "constant"
            and not v.dims
            and v.py_name not in ("initial_time", "final_time", "time_step", "saveper")
        ][:3]
        obs0 = system.observe(grid.initial_time, system.initial_state())
        base = {n: float(np.asarray(obs0[n]).flat[0]) for n in names}
        factors = np.linspace(0.9, 1.1, BATCH)
        overrides = [{n: v * float(f) for n, v in base.items()} for f in factors]
        # the best of up to 3 (the first call of a batch also pays its page faults)
        os.environ["SD_MODEL_TIER"] = "c"
        row["batch_c_s"] = _best_batch(lambda s: s.run_c("euler"), cm, overrides, grid)
        os.environ["SD_MODEL_TIER"] = "numpy"
        row["batch_numpy_s"] = _best_batch(
            lambda s: integrate(s, grid, SolverOptions(method="euler")), cm, overrides, grid
        )
        os.environ["SD_MODEL_TIER"] = "c"
        row["pysd_s"], note = _pysd_time(path, work, pysd_limit)
        if note:
            row["note"] = note
        return row
    finally:
        shutil.rmtree(work, ignore_errors=True)


def sde_time(path: pathlib.Path, var: str) -> dict[str, float] | None:
    """SDEverywhere's generated JavaScript on the model (best of 50), if installed."""
    node = shutil.which("node")
    sde_dir = HERE / "sde"
    if node is None or not (sde_dir / "node_modules" / "@sdeverywhere" / "compile").is_dir():
        return None
    proc = subprocess.run(
        [node, "run_sde.mjs", str(path), var, "50"],
        cwd=sde_dir,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        print(f"SDEverywhere failed: {proc.stderr.strip()[-300:]}")
        return None
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def run_child(path: pathlib.Path, pysd_limit: float) -> dict[str, Any]:
    """Measure one model in a fresh process."""
    cmd = [sys.executable, __file__, "--child", str(path), "--pysd-limit", str(pysd_limit)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, check=False)
    except subprocess.TimeoutExpired:
        return {"model": path.stem, "skip": "benchmark process over 1200 s"}
    if proc.returncode != 0:
        tail = " ".join(proc.stderr.strip().splitlines()[-1:])[:200]
        return {"model": path.stem, "skip": f"benchmark process failed: {tail}"}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _f(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _ratio(num: float | None, den: float | None) -> str:
    if not num or not den:
        return "-"
    r = num / den
    return f"{r:,.0f}x" if r >= 100 else f"{r:.1f}x" if r >= 1 else f"{r:.2g}x"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| model | vars | steps | C source | first compile (generate + cc + run) | "
        "first compile / PySD run | warm `run_c` | PySD run / warm `run_c` | "
        "PySD run / `Model.run` (C tier) | C loop, ns per cell-step | "
        f"batch {BATCH}: C vs NumPy | max rel. diff vs NumPy |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        if "skip" in r:
            lines.append(f"| {r['model']} | | | | {r['skip']} | | | | | | | |")
            continue
        first = (
            f"{r['first_s']:.2f} s ({r['generate_s'] * 1e3:.0f} ms + {_f(r.get('cc_s'), '.2f')} s"
            f" + run); cc CPU {_f(r.get('cc_cpu_s'), '.2f')} s"
        )
        lines.append(
            f"| {r['model']} | {r['variables']} | {r['steps']} | {r['source_kb']:.0f} kB | "
            f"{first} | {_ratio(r['first_s'], r.get('pysd_s'))} | "
            f"{r['warm_s'] * 1e3:.2f} ms | {_ratio(r.get('pysd_s'), r['warm_s'])} | "
            f"{_ratio(r.get('pysd_s'), r['model_run_s'])} ({r['model_run_tier']} tier) | "
            f"{r['ns_per_cell_step']:.1f} | "
            f"{r['batch_c_s'] * 1e3:.0f} ms vs {r['batch_numpy_s'] * 1e3:.0f} ms "
            f"({_ratio(r['batch_numpy_s'], r['batch_c_s'])}) | {r['max_rel_diff']:.1e} |"
        )
    return head + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="teacup and world3_like only")
    parser.add_argument("--pysd-limit", type=float, default=240.0, help="seconds per PySD run")
    parser.add_argument("--child", type=pathlib.Path, help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.pysd_limit)))
        return
    gen = pathlib.Path(tempfile.mkdtemp(prefix="bench-fast-gen-"))
    paths = write_corpus(gen, ["world3_like"] if args.quick else ["world3_like", "covid_like"])
    if not args.quick:
        paths += [REGIONS20, KAZAKHSTAN]
    samples = SAMPLE_FILES[:1] if args.quick else SAMPLE_FILES
    paths += [SAMPLES / s for s in samples if (SAMPLES / s).exists()]
    started = datetime.datetime.now(datetime.UTC)
    rows = []
    for p in paths:
        print(f"measuring {p.name} ...", flush=True)
        rows.append(run_child(p, args.pysd_limit))
        print(f"  {rows[-1]}", flush=True)
    shutil.rmtree(gen, ignore_errors=True)
    sde = None if args.quick else sde_time(REGIONS20, "total population")
    text = report(rows, started, sde, regions=not args.quick)
    print(text)
    if not args.no_write:
        tmp = RESULTS.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(RESULTS)


def report(
    rows: list[dict[str, Any]],
    started: datetime.datetime,
    sde: dict[str, float] | None,
    *,
    regions: bool,
) -> str:
    """The results file: header, table and the summary lines."""
    import pysd

    import sd_model
    from sd_model.compiler import _cbuild

    cc = _cbuild.find_compiler()
    text = (
        "# C tier: first compile and warm runs against PySD's run()\n\n"
        f"Measured {started:%Y-%m-%d %H:%M} UTC by `benchmarks/bench_fast_tier.py` on "
        f"{platform.machine()} ({os.cpu_count()} cores, shared with other jobs), Python "
        f"{platform.python_version()}, PySD {pysd.__version__}, sd_model "
        f"{sd_model.__version__}, compiler `{cc[1]}` with `{' '.join(_cbuild.FLAGS)}`.\n"
        "Ratios are PySD's time divided by ours (above 1: faster than PySD), except "
        "'first compile / PySD run'.\n\n" + table(rows)
    )
    built = [r for r in rows if "skip" not in r and r.get("cc_cpu_s") is not None]
    if built:
        worst = max(built, key=lambda r: r["cc_cpu_s"])
        text += (
            f"\nFirst compile: the C compiler used at most {worst['cc_cpu_s']:.2f} s of CPU "
            f"({worst['model']}); wall-clock times above include waiting for a core on this "
            "shared machine.\n"
        )
    done = [r for r in rows if "skip" not in r and r.get("pysd_s")]
    if done:
        med = statistics.median(r["pysd_s"] / r["model_run_s"] for r in done)
        text += f"\nMedian PySD run / `Model.run` on the C tier: {med:,.0f}x.\n"
    if regions:
        r20 = next((r for r in rows if r["model"] == "regions20" and "skip" not in r), None)
        if sde is not None and r20 is not None:
            text += (
                f"\n20-region model, single Euler run: SDEverywhere's generated JS "
                f"{sde['ms_best']:.2f} ms (best of 50); C tier `run_c` "
                f"{r20['warm_s'] * 1e3:.2f} ms "
                f"({r20['warm_s'] * 1e3 / sde['ms_best']:.2f}x SDEverywhere's time), its C loop "
                f"alone {r20['c_loop_s'] * 1e3:.2f} ms "
                f"({r20['c_loop_s'] * 1e3 / sde['ms_best']:.2f}x).\n"
            )
        else:
            text += "\nSDEverywhere: not installed (see benchmarks/README.md).\n"
    return text


if __name__ == "__main__":
    main()
