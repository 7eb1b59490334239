"""Benchmark sd_model against PySD's own ``run()`` over a corpus of models.

Run from the repository root::

    .venv/bin/python benchmarks/bench_corpus.py --quick   # a subset, a few minutes
    .venv/bin/python benchmarks/bench_corpus.py           # the whole corpus

The corpus: the SDXorg sample models in ``../shared/test-models/samples`` (skipped when
that folder is absent), ``models/kazakhstan_regions.mdl``, and generated stand-ins
(``benchmarks/models/generate.py``): scalar models of 50, 100, 250 and 500 variables, a
World3-shaped one (300 scalar variables) and a COVID-model-shaped one (250 variables,
a macro, subscripts), written into a temporary folder at run time.

Each model is measured in a process of its own (so that a first numba compilation is a
first one, and a crash or a hang costs one row), every figure against PySD in that same
process:

* PySD: ``pysd.read_vensim(copy).run()`` (``read_xmile`` for XMILE), the model file's
  folder copied to a temporary folder; the best of up to 3 runs; a model whose
  ``run()`` takes over ``--pysd-limit`` (default 60 s; its read, twice that) is skipped
  with a note;
* single run: ``sd_model.load(path).run()`` with default settings on the compiled
  backend, after one run that compiles; the best of repeated runs;
* jit: ``Model.run(jit=True)`` with ``SD_MODEL_CACHE`` pointing at an empty folder:
  the first call (numba compilation included, in seconds and as a ratio) and warm
  calls; "no kernel" when the kernel does not cover the model (the run then was plain
  Euler), "n/a" for a model whose method is not Euler;
* batch: :func:`sd_model.evaluate.evaluate` of 100 scenarios in one call (up to three
  scalar constants scaled by factors in [0.9, 1.1]); PySD's single run time divided by
  the time per scenario.

Ratios are PySD's time divided by sd_model's: above 1 sd_model is faster. The table,
with the median and the worst ratio over the models, goes to
``benchmarks/results/corpus.md`` (written atomically) and to standard output.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import pathlib
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
SAMPLES = ROOT.parent / "shared" / "test-models" / "samples"
KAZAKHSTAN = ROOT / "models" / "kazakhstan_regions.mdl"
RESULTS = HERE / "results" / "corpus.md"
MODEL_SUFFIXES = (".mdl", ".xmile", ".stmx")
QUICK_SAMPLES = ("teacup.mdl", "SIR.xmile", "Lotka_Volterra.mdl")
QUICK_GENERATED = ("scalar50", "plain100", "world3_like")
BATCH = 100

sys.path.insert(0, str(HERE / "models"))
from generate import CORPUS, write_corpus  # noqa: E402


class Timeout(Exception):
    """A measurement ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`Timeout` in the main thread after ``seconds`` (SIGALRM)."""

    def handler(signum: int, frame: Any) -> None:
        raise Timeout(f"over {seconds:g} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def best_of(fn: Callable[[], Any], *, budget: float, max_runs: int, first: float) -> float:
    """The least time of repeated calls of ``fn``, ``first`` being one already timed."""
    times = [first]
    spent = first
    while len(times) < max_runs and spent + min(times) < budget:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        spent += times[-1]
    return min(times)


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# --------------------------------------------------------------------------- one model
def measure(path: pathlib.Path, *, pysd_limit: float, jit_limit: float) -> dict[str, Any]:
    """Every measurement of one model, in this process (see the module docstring)."""
    import numpy as np
    import pysd

    import sd_model
    from sd_model.evaluate import evaluate
    from sd_model.options import resolve_solver

    warnings.simplefilter("ignore")
    row: dict[str, Any] = {"model": path.name, "notes": []}
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-corpus-"))
    try:
        os.environ["SD_MODEL_CACHE"] = str(work / "cache")
        # sd_model first: a model the compiled backend does not run is skipped quickly.
        t_load, model = _timed(lambda: sd_model.load(path))
        am = model.abstract_model
        row["variables"] = sum(
            1
            for el in am.sections[0].elements
            if " ".join(el.name.lower().split())
            not in {"initial time", "final time", "time step", "saveper"}
        )
        grid = model.time_grid()
        row["steps"] = round((grid.final_time - grid.initial_time) / grid.time_step)
        try:
            t_compile, _ = _timed(model.compiled)
        except sd_model.UnsupportedFeatureError as exc:
            row["skip"] = f"compiled backend: {' '.join(str(exc).split())[:160]}"
            return row
        row["load_s"] = t_load
        row["compile_s"] = t_compile
        t_first, ds = _timed(lambda: model.run(backend="compiled"))
        row["first_run_s"] = t_first

        # PySD on a copy of the model's folder: read_vensim writes next to the file.
        copy_dir = work / "pysd"
        if path.parent == KAZAKHSTAN.parent:
            copy_dir.mkdir()
            shutil.copytree(path.parent / "data", copy_dir / "data")
            shutil.copy(path, copy_dir / path.name)
        else:
            shutil.copytree(path.parent, copy_dir)
        reader = pysd.read_vensim if path.suffix == ".mdl" else pysd.read_xmile
        try:
            with time_limit(2 * pysd_limit):
                pm = reader(str(copy_dir / path.name))
        except Timeout:
            row["skip"] = f"PySD's read_vensim/read_xmile took over {2 * pysd_limit:g} s"
            return row
        except Exception as exc:  # PySD cannot read every sample
            row["skip"] = f"PySD: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
            return row
        try:
            with time_limit(pysd_limit):
                t_pysd, df = _timed(pm.run)
        except Timeout:
            row["skip"] = f"PySD's run() took over {pysd_limit:g} s"
            return row
        except Exception as exc:  # PySD cannot run every sample
            row["skip"] = f"PySD: {type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
            return row
        try:
            with time_limit(max(pysd_limit - t_pysd, 0.01)):
                t_pysd = best_of(pm.run, budget=min(pysd_limit, 6.0), max_runs=3, first=t_pysd)
        except Timeout:
            pass
        row["pysd_s"] = t_pysd

        # Agreement of the single run with PySD (time-dependent scalar variables).
        worst = 0.0
        for name in ds.data_vars:
            da = ds[name]
            long = da.attrs.get("long_name")
            if da.dims != ("time",) or long not in df.columns:
                continue
            ours = np.asarray(da.values, dtype=float)
            theirs = df[long].to_numpy(dtype=float)
            if ours.shape == theirs.shape:
                scale = np.maximum(np.abs(theirs), 1e-9)
                worst = max(worst, float(np.nanmax(np.abs(ours - theirs) / scale)))
        row["max_rel_diff"] = worst

        t_run = best_of(
            lambda: model.run(backend="compiled"), budget=2.0, max_runs=20, first=t_first
        )
        # the first run compiled; one more so that the best is a warm one
        t_run = min(t_run, _timed(lambda: model.run(backend="compiled"))[0])
        row["run_s"] = t_run

        # jit: fresh kernel cache, first call then warm calls.
        solver = resolve_solver(model, None)
        if solver.method != "euler":
            row["jit"] = f"n/a ({solver.method})"
        else:
            os.environ["SD_MODEL_CACHE"] = str(work / "jit-cache")
            try:
                with time_limit(jit_limit):
                    t_jit_first, _ = _timed(lambda: model.run(backend="compiled", jit=True))
            except Timeout:
                row["jit"] = f"first compile over {jit_limit:g} s"
            else:
                system = model.compiled().system([{}], grid)
                if system.run_euler() is None:
                    why = " ".join(str(system.kernel_note).split())[:120]
                    row["jit"] = f"no kernel ({why})" if why else "no kernel"
                    row["jit_first_s"] = t_jit_first
                else:
                    row["jit_first_s"] = t_jit_first
                    row["jit_s"] = best_of(
                        lambda: model.run(backend="compiled", jit=True),
                        budget=2.0,
                        max_runs=20,
                        first=_timed(lambda: model.run(backend="compiled", jit=True))[0],
                    )

        # batch of 100 scenarios through the batched evaluation entry point
        params = model.parameters
        scalars = [
            str(name)
            for name, r in params.iterrows()
            if r["kind"] == "constant"
            and r["dims"] == ""
            and isinstance(r["default"], int | float)
            and not isinstance(r["default"], bool)
            and r["default"] != 0
            and r["py_name"] not in {"initial_time", "final_time", "time_step", "saveper"}
        ][:3]
        rng = np.random.default_rng(0)
        sets = [
            {
                name: float(params.loc[name, "default"]) * float(rng.uniform(0.9, 1.1))
                for name in scalars
            }
            for _ in range(BATCH)
        ]
        row["batch_params"] = scalars

        def batch() -> Any:
            return evaluate(model, sets, solver=solver, grid=grid, backend="compiled", warn=False)

        t_batch, _ = _timed(batch)
        t_batch = best_of(batch, budget=5.0, max_runs=3, first=t_batch)
        row["batch_s"] = t_batch
        return row
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- the corpus
def corpus(quick: bool, gen_dir: pathlib.Path) -> list[tuple[str, pathlib.Path]]:
    """(source label, model path) of every model to measure."""
    # the generated models first: the speed issue's targets are measured on them
    items: list[tuple[str, pathlib.Path]] = []
    names = list(QUICK_GENERATED) if quick else list(CORPUS)
    for p in write_corpus(gen_dir, names):
        kind, size = CORPUS[p.stem]
        items.append((f"generated ({kind}, {size} variables)", p))
    if not quick:
        items.append(("this repository", KAZAKHSTAN))
    if SAMPLES.is_dir():
        for p in sorted(SAMPLES.rglob("*")):
            if p.suffix in MODEL_SUFFIXES and (not quick or p.name in QUICK_SAMPLES):
                items.append(("SDXorg sample", p))
    else:
        print(f"note: {SAMPLES} is absent; the SDXorg samples are skipped")
    return items


def run_child(path: pathlib.Path, args: argparse.Namespace) -> dict[str, Any]:
    """Measure one model in a fresh process; a crash or a hang becomes a skip note."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = pathlib.Path(fh.name)
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(path),
        "--json-out",
        str(out),
        "--pysd-limit",
        str(args.pysd_limit),
        "--jit-limit",
        str(args.jit_limit),
    ]
    # PySD twice (read + run, repeats), sd_model, jit compile, batch
    limit = 3 * args.pysd_limit + args.jit_limit + 300
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=False)
        if proc.returncode != 0:
            tail = " ".join(proc.stderr.strip().splitlines()[-1:])[:200]
            return {"model": path.name, "skip": f"benchmark process failed: {tail}"}
        return dict(json.loads(out.read_text()))
    except subprocess.TimeoutExpired:
        return {"model": path.name, "skip": f"benchmark process over {limit:g} s"}
    finally:
        out.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the table
def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def _fmt_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    if r >= 100:
        return f"{r:,.0f}x"
    return f"**{r:.2f}x**" if r < 1 else f"{r:.1f}x"


def ratios(row: dict[str, Any]) -> dict[str, float | None]:
    """The four ratios of a measured row (PySD time / sd_model time)."""
    pysd_s = row.get("pysd_s")
    batch = row.get("batch_s")
    return {
        "single": _ratio(pysd_s, row.get("run_s")),
        "jit_first": _ratio(pysd_s, row.get("jit_first_s")),
        "jit_warm": _ratio(pysd_s, row.get("jit_s")),
        "batch": _ratio(pysd_s, batch / BATCH if batch else None),
    }


def table(rows: list[tuple[str, dict[str, Any]]], header: str) -> str:
    """The markdown report: one row per measured model, summary rows, skipped models."""
    lines = [
        header,
        "",
        "| model | source | variables | steps | PySD run() | single run vs PySD "
        "| jit first call (s) vs PySD | jit warm vs PySD | batch of 100, per scenario, vs PySD "
        "| max rel. diff to PySD |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    columns: dict[str, list[tuple[float, str]]] = {
        k: [] for k in ("single", "jit_first", "jit_warm", "batch")
    }
    skipped = []
    for source, row in rows:
        if "skip" in row:
            skipped.append(f"- {row['model']} ({source}): {row['skip']}")
            continue
        r = ratios(row)
        for key, value in r.items():
            if value is not None:
                columns[key].append((value, row["model"]))
        jit_first = (
            f"{row['jit_first_s']:.1f} s ({_fmt_ratio(r['jit_first'])})"
            if row.get("jit_first_s") is not None
            else "-"
        )
        jit_warm = _fmt_ratio(r["jit_warm"]) if row.get("jit_s") else row.get("jit", "-")
        lines.append(
            f"| {row['model']} | {source} | {row['variables']} | {row['steps']} "
            f"| {row['pysd_s'] * 1e3:,.0f} ms | {_fmt_ratio(r['single'])} "
            f"({row['run_s'] * 1e3:,.1f} ms) | {jit_first} | {jit_warm} "
            f"| {_fmt_ratio(r['batch'])} | {row['max_rel_diff']:.1e} |"
        )
    for label, pick in (("median", statistics.median), ("worst", min)):
        cells = []
        for key in ("single", "jit_first", "jit_warm", "batch"):
            values = columns[key]
            if not values:
                cells.append("-")
            elif label == "median":
                cells.append(_fmt_ratio(pick(v for v, _ in values)))
            else:
                v, name = min(values)
                cells.append(f"{_fmt_ratio(v)} ({name})")
        lines.append(
            f"| **{label}** | | | | | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} | |"
        )
    slower = [name for v, name in sorted(columns["single"]) if v < 1]
    lines += [
        "",
        "Single runs slower than PySD's run(): " + (", ".join(slower) if slower else "none") + ".",
    ]
    if skipped:
        lines += ["", "Not measured:", "", *skipped]
    return "\n".join(lines) + "\n"


def write_atomic(path: pathlib.Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a subset of the corpus")
    parser.add_argument("--pysd-limit", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--jit-limit", type=float, default=300.0, help="seconds (default 300)")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    parser.add_argument("--only", nargs="*", help="measure only models with these file names")
    parser.add_argument("--child", type=pathlib.Path, help=argparse.SUPPRESS)
    parser.add_argument("--json-out", type=pathlib.Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child is not None:
        row = measure(args.child, pysd_limit=args.pysd_limit, jit_limit=args.jit_limit)
        args.json_out.write_text(json.dumps(row))
        return

    import pysd

    import sd_model

    started = datetime.datetime.now(datetime.UTC)
    rows: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-corpus-models-") as gen:
        for source, path in corpus(args.quick, pathlib.Path(gen)):
            if args.only and path.name not in args.only:
                continue
            t0 = time.perf_counter()
            row = run_child(path, args)
            r = ratios(row)
            shown = ", ".join(f"{k} {_fmt_ratio(v)}" for k, v in r.items())
            note = row.get("skip") or shown
            print(f"{path.name}: {note} [{time.perf_counter() - t0:.0f} s]", flush=True)
            rows.append((source, row))
            # rewritten after every model: a long run interrupted still leaves its rows
            write_atomic(args.out, table(rows, _header(args, started, pysd, sd_model)))
    text = table(rows, _header(args, started, pysd, sd_model))
    write_atomic(args.out, text)
    print()
    print(text)


def _header(args: argparse.Namespace, started: datetime.datetime, pysd: Any, sd_model: Any) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"# Corpus benchmark: sd_model against PySD's run()\n\n"
        f"{'Quick subset' if args.quick else 'Full corpus'}, {started:%Y-%m-%d %H:%M} UTC, "
        f"sd_model {sd_model.__version__}, PySD {pysd.__version__}, Python "
        f"{platform.python_version()}, {os.cpu_count()} cores (load average {load:.1f} when "
        "written). Each model measured in a process of its own; every ratio is PySD's time "
        "/ sd_model's time in that process (above 1: sd_model is faster). Command: "
        f"`{shlex.join(['.venv/bin/python', 'benchmarks/bench_corpus.py', *sys.argv[1:]])}`; "
        "method in the docstring of `benchmarks/bench_corpus.py`."
    )


if __name__ == "__main__":
    main()
