"""Benchmark the compiled NumPy backend against PySD's own ``run()``.

Run from the repository root::

    .venv/bin/python benchmarks/bench_compiled.py            # everything
    .venv/bin/python benchmarks/bench_compiled.py --no-pysd  # skip the slow PySD run

Measured in the same process, on the same model (``benchmarks/models/regions20.mdl``:
20 regions, population and capital stocks, migration through SUM over regions, a
SMOOTH and a subscripted lookup) and the same time step (1/16 year, 50 years):

1. single Euler run, compiled vs PySD ``run()`` (ratio);
2. adaptive RK45 reaching 1e-6 relative accuracy vs fixed Euler at dt 1/16;
3. a batch of 1,000 scenarios (time per scenario, ratio vs one PySD run);
4. peak memory vs batch size;
5. compile time of a generated 1,000-variable model.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import statistics
import tempfile
import time
import tracemalloc
import warnings

import numpy as np

from sd_model.compiler import compile_model
from sd_model.integrate import SolverOptions, TimeGrid, integrate

HERE = pathlib.Path(__file__).resolve().parent
MODEL = HERE / "models" / "regions20.mdl"


def _abstract(path: pathlib.Path):
    from pysd.translators.vensim.vensim_file import VensimFile

    vf = VensimFile(path)
    vf.parse()
    return vf.get_abstract_model()


def _best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_pysd(grid: TimeGrid) -> tuple[float, np.ndarray]:
    import pysd

    with tempfile.TemporaryDirectory() as tmp:
        copy = pathlib.Path(tmp) / MODEL.name
        shutil.copy(MODEL, copy)
        model = pysd.read_vensim(str(copy))
        t0 = time.perf_counter()
        df = model.run(return_columns=["total population"])
        elapsed = time.perf_counter() - t0
    return elapsed, df["total population"].to_numpy()


def bench_sde() -> dict[str, float] | None:
    """Time SDEverywhere's generated JavaScript on the same model, if installed."""
    import json
    import subprocess

    sde_dir = HERE / "sde"
    node = shutil.which("node")
    if node is None or not (sde_dir / "node_modules" / "@sdeverywhere" / "compile").is_dir():
        return None
    proc = subprocess.run(
        [node, "run_sde.mjs", str(MODEL), "total population", "50"],
        cwd=sde_dir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        print(f"SDEverywhere failed: {proc.stderr.strip()[-300:]}")
        return None
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-pysd", action="store_true", help="skip PySD's run()")
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    t0 = time.perf_counter()
    am = _abstract(MODEL)
    t_parse = time.perf_counter() - t0
    t0 = time.perf_counter()
    cm = compile_model(am, model_dir=MODEL.parent)
    t_compile = time.perf_counter() - t0
    grid = cm.default_grid()
    print(f"model: {MODEL.name}, dt={grid.time_step}, {grid.final_time - grid.initial_time} years")
    print(f"PySD parse: {t_parse * 1e3:.0f} ms, compile_model: {t_compile * 1e3:.1f} ms")

    # 1. single Euler run
    euler = SolverOptions(method="euler")
    system = cm.system([{}], grid)
    y0 = system.initial_state()
    t_rhs = _best(lambda: [system.derivative(0.0, y0) for _ in range(1000)], 3) / 1000
    t_euler = _best(lambda: integrate(cm.system([{}], grid), grid, euler))
    t_system = _best(lambda: cm.system([{}], grid))
    res_euler = integrate(system, grid, euler)
    print(f"right-hand side: {t_rhs * 1e6:.1f} us per call ({system.n_state} states)")
    print(
        f"compiled Euler run: {t_euler * 1e3:.1f} ms, of which system() "
        f"(binding + initialisation) {t_system * 1e3:.1f} ms"
    )
    ours_total = np.array([o["total_population"][0] for o in res_euler.observations])
    if not args.no_pysd:
        t_pysd, pysd_total = bench_pysd(grid)
        err = float(np.max(np.abs(ours_total - pysd_total) / np.abs(pysd_total)))
        print(
            f"PySD run(): {t_pysd:.2f} s  -> speed-up {t_pysd / t_euler:.0f}x "
            f"(max rel. difference {err:.1e})"
        )
    else:
        t_pysd = float("nan")
    # the optional numba kernel: the whole Euler run in one compiled function
    t0 = time.perf_counter()
    fast = cm.system([{}], grid).run_euler()
    t_first = time.perf_counter() - t0
    t_kernel = float("nan")
    if fast is None:
        print("numba kernel: not available (numba missing or construct not covered)")
    else:
        t_kernel = _best(lambda: cm.system([{}], grid).run_euler())
        diff = float(np.max(np.abs(fast.states - res_euler.states) / np.abs(res_euler.states)))
        line = (
            f"numba kernel Euler run: {t_kernel * 1e3:.2f} ms (first call incl. numba "
            f"compilation {t_first:.1f} s; max rel. difference to NumPy {diff:.1e})"
        )
        if not args.no_pysd:
            line += f" -> {t_pysd / t_kernel:.0f}x PySD"
        print(line)
    sde = bench_sde()
    if sde is not None:
        rel = abs(sde["final"] - ours_total[-1]) / abs(ours_total[-1])
        print(
            f"SDEverywhere generated JS: {sde['ms_best']:.2f} ms per run "
            f"(generate {sde['generate_ms']:.0f} ms) -> compiled NumPy Euler is "
            f"{t_euler * 1e3 / sde['ms_best']:.1f}x slower, the numba kernel "
            f"{t_kernel * 1e3 / sde['ms_best']:.2f}x SDEverywhere's time "
            f"(final value rel. diff {rel:.1e})"
        )
    else:
        print("SDEverywhere: not installed (see benchmarks/README.md), skipped")

    # 2. adaptive accuracy vs Euler
    ref = integrate(
        cm.system([{}], grid), grid, SolverOptions(method="DOP853", rtol=1e-12, atol=1e-6)
    )

    def rel_err(res) -> float:
        return float(np.max(np.abs(res.states - ref.states) / np.maximum(np.abs(ref.states), 1e-9)))

    print(f"Euler dt 1/16: rel. error {rel_err(res_euler):.1e}, {t_euler * 1e3:.1f} ms")
    for method, rtol in [("RK45", r) for r in (1e-6, 1e-8, 1e-9)] + [
        ("DOP853", r) for r in (1e-7, 1e-8, 1e-9)
    ]:
        opts = SolverOptions(method=method, rtol=rtol, atol=1e-3)
        res = integrate(cm.system([{}], grid), grid, opts)
        t_ad = _best(lambda o=opts: integrate(cm.system([{}], grid), grid, o), 3)
        print(
            f"{method} rtol={rtol:g}: rel. error {rel_err(res):.1e}, nfev {res.nfev}, "
            f"{t_ad * 1e3:.1f} ms ({t_euler / t_ad:.1f}x faster than Euler)"
        )

    # 3. batch of scenarios
    rng = np.random.default_rng(0)
    nb = args.batch
    overrides = [
        {"savings_rate": float(s), "migration_rate": float(m), "perception_time": float(p)}
        for s, m, p in zip(
            rng.uniform(0.1, 0.3, nb), rng.uniform(0, 0.03, nb), rng.uniform(1, 5, nb), strict=True
        )
    ]
    t_batch = _best(lambda: integrate(cm.system(overrides, grid), grid, euler), 2)
    per = t_batch / nb
    line = f"batch of {nb} (NumPy): {t_batch:.2f} s, {per * 1e6:.0f} us per scenario"
    if not args.no_pysd:
        line += f" -> {t_pysd / per:.0f}x PySD per scenario"
    print(line)
    if fast is not None:
        t_kb = _best(lambda: cm.system(overrides, grid).run_euler(), 2)
        print(f"batch of {nb} (numba kernel): {t_kb:.2f} s, {t_kb / nb * 1e6:.0f} us per scenario")

    # 4. memory vs batch size
    for b in (1, 10, 100, 1000):
        tracemalloc.start()
        integrate(cm.system(overrides[:b] if b <= nb else overrides, grid), grid, euler)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"peak memory, batch {b:5d}: {peak / 1e6:8.1f} MB ({peak / b / 1e3:.0f} kB/scenario)")

    # 5. compile time of a generated 1,000-variable model
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "big.mdl"
        path.write_text(_big_model(1000))
        t0 = time.perf_counter()
        big = _abstract(path)
        t_p = time.perf_counter() - t0
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            cm_big = compile_model(big, model_dir=path.parent)
            times.append(time.perf_counter() - t0)
        n_vars = len(cm_big.variables)
        print(
            f"1,000-variable model ({n_vars} variables): compile_model "
            f"{statistics.median(times):.2f} s (PySD parse {t_p:.2f} s)"
        )


def _big_model(n: int) -> str:
    """A chain of stocks, flows and auxiliaries with n variables in total."""
    eq = "{name} =\n\t{rhs}\n\t~\t\n\t~\t\n\t|\n\n"
    parts = ["{UTF-8}\n"]
    k = 0
    i = 0
    while k < n - 4:
        parts.append(eq.format(name=f"stock {i}", rhs=f"INTEG(flow {i}, 1)"))
        prev = f"stock {i - 1}" if i else "1"
        parts.append(eq.format(name=f"flow {i}", rhs=f"rate {i} * ({prev} - stock {i})"))
        parts.append(eq.format(name=f"rate {i}", rhs=f"0.1 + {i % 7} / 100"))
        parts.append(eq.format(name=f"aux {i}", rhs=f"MAX(stock {i}, 0) * 2 + flow {i}"))
        k += 4
        i += 1
    parts.append(
        "FINAL TIME = 10\n\t~\t\n\t~\t\n\t|\n\nINITIAL TIME = 0\n\t~\t\n\t~\t\n\t|\n\n"
        "SAVEPER = 1\n\t~\t\n\t~\t\n\t|\n\nTIME STEP = 0.25\n\t~\t\n\t~\t\n\t|\n\n"
    )
    return "".join(parts)


if __name__ == "__main__":
    main()
